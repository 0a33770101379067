"""Training for real CT: the domain-randomisation switch and warm start from a bundle (--init-weights)."""
import argparse
import json

import pytest
import torch

from sneakynet import cli
from sneakynet.bundle import load_bundle
from sneakynet.train import TrainError, TrainOptions, train
from sneakynet.train_options import add_train_arguments, options_from_args
from train_helpers import TINY_WIDTHS, _one_thread, dataset  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def source(dataset, tmp_path_factory):
    """A trained run to start from."""
    return train(_options(dataset, tmp_path_factory.mktemp("src") / "run"))


def _options(dataset, out, **kw):
    base = dict(dataset=dataset, out=out, patch=32, widths=TINY_WIDTHS, iterations=2, batch_size=1, workers=0,
                val_every=0, val_mode="patches", val_patches=1, ckpt_every=1, log_every=1, spacing=(4, 4, 4),
                device="cpu", deterministic=True, threads=1, progress=False, seed=1)
    base.update(kw)
    return TrainOptions(**base)


def test_flags_defaults_and_old_options_files():
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    plain = options_from_args(parser.parse_args(["--dataset", "d", "--out", "o"]))
    assert (plain.domain_randomization, plain.init_weights) == (False, None)
    on = options_from_args(parser.parse_args(["--dataset", "d", "--out", "o", "--domain-randomization",
                                              "--init-weights", "runs/a/bundle"]))
    assert (on.domain_randomization, on.init_weights) == (True, "runs/a/bundle")
    off = options_from_args(parser.parse_args(["--dataset", "d", "--out", "o", "--no-domain-randomization"]))
    assert off.domain_randomization is False
    stored = plain.to_dict()
    del stored["domain_randomization"], stored["init_weights"]  # options.json of an older run
    assert plain.changed_for_resume(stored) == []
    assert on.changed_for_resume(stored) == ["domain_randomization", "init_weights"]


def test_domain_randomization_run_records_its_sampler(dataset, tmp_path):
    run = train(_options(dataset, tmp_path / "run", domain_randomization=True, iterations=1))
    augment = load_bundle(run / "bundle")[1].training["sampler"]["augment"]
    assert augment["p_intensity_remap"] > 0 and augment["p_fov_circle"] > 0
    assert json.loads((run / "options.json").read_text())["domain_randomization"] is True


def test_warm_start_copies_weights_and_records_the_source(dataset, source, tmp_path):
    src_model, src_info = load_bundle(source / "bundle")
    out = tmp_path / "warm"
    run = train(_options(dataset, out, iterations=1, lr=1e-12, init_weights=str(source / "bundle")))
    model, info = load_bundle(run / "bundle")
    src = dict(src_model.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, src[name], atol=1e-8, rtol=0)  # a 1e-12 step away from the source
    cold = load_bundle(train(_options(dataset, tmp_path / "cold", iterations=1, lr=1e-12)) / "bundle")[0]
    assert any(not torch.allclose(p, src[n]) for n, p in cold.named_parameters()), "random init differs"
    assert info.training["init_weights"] == {"bundle": "bundle", "sha256": src_info.sha256}
    assert "/" not in json.dumps(info.training["init_weights"]), "no path in the shipped metadata"
    assert json.loads((run / "options.json").read_text())["init_weights"] == str(source / "bundle")
    # resuming keeps the source recorded; leaving the flag out is a changed option
    train(_options(dataset, out, iterations=2, lr=1e-12, init_weights=str(source / "bundle"), resume=True))
    assert load_bundle(out / "bundle")[1].training["init_weights"]["sha256"] == src_info.sha256
    with pytest.raises(TrainError, match="changed option.*init_weights"):
        train(_options(dataset, out, iterations=3, lr=1e-12, resume=True))


def test_warm_start_from_another_network_is_one_clear_error(dataset, source, tmp_path, capsys):
    with pytest.raises(TrainError, match=r"--init-weights .*bundle.*widths \[4, 4, 8, 8, 16\] in the bundle, "
                                         r"\[4, 4, 8, 8, 8\] here"):
        train(_options(dataset, tmp_path / "a", widths=(4, 4, 8, 8, 8), init_weights=str(source / "bundle")))
    code = cli.main(["train", "--dataset", str(dataset), "--out", str(tmp_path / "b"), "--patch", "32",
                     "--widths", "4,4,8,8,16", "--iterations", "1", "--workers", "0", "--no-progress",
                     "--spacing", "4", "--init-weights", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 2 and "nothing" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists(), "a failed start leaves no run folder"
