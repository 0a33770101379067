"""Training: options, run folder, checkpoints, data on the model grid, CLI errors, a short real run."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet import cli
from sneakynet.bundle import load_bundle
from sneakynet.checkpoint import (CheckpointError, capture_rng, latest_checkpoint, list_checkpoints, load_checkpoint,
                                  pack_model, pack_optimizer, remove_stale_temporaries, restore_rng, save_checkpoint,
                                  unpack_model, unpack_optimizer)
from sneakynet.distributed import weights_digest
from sneakynet.intensity import CTNormalization
from sneakynet.models import NetConfig, build_network
from sneakynet.train import TrainError, TrainOptions, amp_settings, case_on_model_grid, train
from sneakynet.train_options import DEFAULT_CT_WINDOW
from train_helpers import TINY_WIDTHS, _one_thread, dataset  # noqa: F401 (fixtures)


def _options(dataset, out, **kw):
    base = dict(dataset=dataset, out=out, patch=32, widths=TINY_WIDTHS, iterations=4, batch_size=2, workers=0,
                val_every=2, val_mode="cases", ckpt_every=2, log_every=1, spacing=(4, 4, 4), device="cpu",
                deterministic=True, threads=1, progress=False, seed=1)
    base.update(kw)
    return TrainOptions(**base)


@pytest.mark.parametrize("kw,message", [
    (dict(spacing=(1, 0, 1)), "--spacing"),
    (dict(iterations=0), "--iterations"),
    (dict(val_mode="volumes"), "--val-mode"),
    (dict(device="tpu"), "--device"),
    (dict(amp="fp8"), "--amp"),
    (dict(grad_clip=-1.0), "--grad-clip"),
    (dict(lr_schedule="cosine"), "--lr-schedule"),
    (dict(normalization={"clip_min": 5, "clip_max": 1, "center": 0, "scale": 1}), "normalization"),
])
def test_bad_options_are_rejected(tmp_path, kw, message):
    with pytest.raises(TrainError, match=message):
        _options(tmp_path, tmp_path / "run", **kw)


def test_train_flags_come_from_the_options_schema():
    import argparse
    from dataclasses import fields

    from sneakynet.train_options import add_train_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    assert options_from_args(parser.parse_args(["--dataset", "d", "--out", "o"])) == TrainOptions(dataset="d", out="o")
    o = options_from_args(parser.parse_args(["--dataset", "d", "--out", "o", "--no-augment", "--spacing", "1.5,1.5,2",
                                             "--grad-clip", "12", "--lr-schedule", "poly", "--no-progress",
                                             "--ct-window=-250,1250"]))
    assert (o.augment, o.spacing, o.grad_clip, o.lr_schedule, o.progress) == (False, (1.5, 1.5, 2.0), 12.0, "poly", False)
    assert CTNormalization.from_dict(o.normalization) == CTNormalization(-250.0, 1250.0, 500.0, 750.0)
    flagged = {f.name for f in fields(TrainOptions) if "group" in f.metadata}
    assert set(f.name for f in fields(TrainOptions)) - flagged == {"datasets"}  # no flag of its own


@pytest.mark.parametrize("text", ["-250", "a,b", "1250,-250", "-4000,1000", "0,50", "-250,5000"])
def test_bad_ct_windows_are_refused_by_name(text):
    import argparse

    from sneakynet.train_options import parse_ct_window

    with pytest.raises(argparse.ArgumentTypeError, match="CT window"):
        parse_ct_window(text)


def test_the_wide_window_is_the_plain_ct_normalisation():
    assert CTNormalization.window(-1000, 2000) == CTNormalization()


def test_network_from_options():
    assert _options("d", "o").net_config() == NetConfig("D", 1, 32, TINY_WIDTHS, preset="custom")
    lite = TrainOptions(dataset="d", out="o", variant="A", context=0, patch=32, preset="lite").net_config()
    assert lite.preset == "lite" and lite.num_context == 0
    with pytest.raises(TrainError, match="variant A needs K"):
        TrainOptions(dataset="d", out="o", variant="A", context=1).net_config()
    assert amp_settings(torch.device("cpu"), "auto") == (None, False)


def test_short_run_writes_bundles_metrics_curve_and_resume_rules(dataset, tmp_path):
    out = tmp_path / "run"
    steps = []
    run = train(_options(dataset, out), on_step=lambda i, parts: steps.append((i, parts["total"])))
    assert [i for i, _ in steps] == [1, 2, 3, 4]
    model, info = load_bundle(run / "bundle")
    assert info.spacing == (4.0, 4.0, 4.0) and info.config.widths == TINY_WIDTHS and not info.demo
    assert info.normalization() == CTNormalization.window(*DEFAULT_CT_WINDOW)  # the training default: a bone window
    assert info.training["iterations"] == 4 and info.training["fold"] == 0
    assert info.training["train_cases"] == json.loads((run / "splits.json").read_text())["train"]
    # the shipped bundle and the run's splits.json name the dataset folder, never this machine's path
    assert info.training["dataset"] == Path(dataset).name
    assert json.loads((run / "splits.json").read_text())["dataset"] == Path(dataset).name
    assert 0.0 <= info.metrics["val_dsc"] <= 1.0
    best_model, best = load_bundle(run / "best")
    assert best.metrics["iteration"] in (2, 4)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["iteration"] for r in rows if r["kind"] == "val"] == [2, 4]
    assert [r["loss"] for r in rows if r["kind"] == "train"] == pytest.approx([s for _, s in steps])
    png = (run / "training_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["weights_sha256_per_rank"] == [weights_digest(model)]
    assert [p.name for p in list_checkpoints(run)] == ["iter_0000002", "iter_0000004"]
    ckpt = load_checkpoint(latest_checkpoint(run))
    assert ckpt.iteration == 4 and ckpt.meta["sampler"]["next_sample"] == 8
    # the final checkpoint's weights are the bundle's
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.tensors[f"model/{k}"], v)

    with pytest.raises(TrainError, match="already holds a training run"):
        train(_options(dataset, out))
    with pytest.raises(TrainError, match="changed option.*variant"):
        train(_options(dataset, out, resume=True, variant="C"))
    with pytest.raises(TrainError, match=r"changed option.*normalization \(the run.s --ct-window is -250,1250\)"):
        train(_options(dataset, out, resume=True, normalization=CTNormalization().to_dict()))
    # resuming a finished run with more iterations continues from the last checkpoint
    train(_options(dataset, out, resume=True, iterations=5, val_every=0))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5]
    assert load_checkpoint(latest_checkpoint(run)).iteration == 5


def test_a_ct_window_trains_into_the_bundle(dataset, tmp_path):
    window = CTNormalization.window(-1000, 2000)
    run = train(_options(dataset, tmp_path / "run", iterations=1, val_every=0, normalization=window.to_dict()))
    assert load_bundle(run / "bundle")[1].normalization() == window


def test_resume_with_damaged_options_file_is_one_clear_error(dataset, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "options.json").write_text("", encoding="utf-8")
    with pytest.raises(TrainError, match=r"options\.json: run file is empty"):
        train(_options(dataset, out, resume=True))
    (out / "options.json").write_text("{cut", encoding="utf-8")
    with pytest.raises(TrainError, match=r"options\.json: not valid JSON"):
        train(_options(dataset, out, resume=True))


def test_poly_schedule_and_gradient_clipping_are_options_and_settings_are_restored(dataset, tmp_path):
    """Off by default; on, the logged learning rate follows lr (1 - step / iterations)^0.9 and the
    clipped run ends with other weights. Threads, deterministic mode and RNG states are restored."""
    torch.manual_seed(123)
    rng_before, deterministic_before = torch.get_rng_state(), torch.are_deterministic_algorithms_enabled()
    plain = train(_options(dataset, tmp_path / "plain", val_every=0))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before and torch.get_num_threads() == 1
    tuned = train(_options(dataset, tmp_path / "tuned", val_every=0, lr_schedule="poly", grad_clip=1e-3))
    rows = [json.loads(line) for line in (tuned / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r["kind"] == "train"]
    assert lrs == pytest.approx([1e-3 * (1 - step / 4) ** 0.9 for step in range(4)])
    plain_rows = [json.loads(line) for line in (plain / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in plain_rows if r["kind"] == "train"] == [1e-3] * 4
    a, b = load_bundle(plain / "bundle")[0].state_dict(), load_bundle(tuned / "bundle")[0].state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainError, match="changed option.*grad_clip"):
        train(_options(dataset, tmp_path / "tuned", val_every=0, lr_schedule="poly", resume=True))


def test_bad_dataset_gives_clean_cli_error(tmp_path, capsys):
    code = cli.main(["train", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "run"),
                     "--device", "cpu", "--no-progress"])
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "missing: dataset folder does not exist" in err and "Traceback" not in err


def test_cli_rejects_bad_fold(dataset, tmp_path, capsys):
    code = cli.main(["train", "--dataset", str(dataset), "--fold", "9", "--out", str(tmp_path / "run"),
                     "--patch", "32", "--device", "cpu", "--no-progress"])
    assert code == cli.EXIT_BAD_INPUT
    assert "no fold 9" in capsys.readouterr().err


def test_cases_are_reoriented_and_resampled_like_the_predictor():
    # a RAS-stored volume (x and y flipped relative to LPS) with one marked voxel
    arr = np.zeros((6, 8, 10), dtype=np.int16)
    arr[1, 2, 3] = 1000
    labels = (arr > 0).astype(np.uint8) * 7
    images = []
    for a in (arr, labels):
        img = sitk.GetImageFromArray(a)
        img.SetSpacing((2.0, 2.0, 2.0))
        img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        images.append(img)
    case = case_on_model_grid("c", images[0], images[1], (2.0, 2.0, 2.0), CTNormalization())
    # LPS order: x and y reversed
    assert case.labels.shape == (6, 8, 10) and case.labels[1, 8 - 1 - 2, 10 - 1 - 3] == 7
    assert case.labels.sum() == 7
    assert case.image[1, 5, 6] == pytest.approx((1000 - 500) / 1500)
    assert case.lr_axis == 2 and case.si_axis == 0
    coarse = case_on_model_grid("c", images[0], images[1], (4.0, 4.0, 2.0), CTNormalization())
    assert coarse.labels.shape == (6, 4, 5) and coarse.spacing == (2.0, 4.0, 4.0)


# ----------------------------------------------------------------------------------------------
# checkpoints


def _trained_pair():
    torch.manual_seed(0)
    model = build_network(NetConfig("B", 1, 32, (2, 2, 2, 2, 2)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(1, 1, 32, 32, 32)
    out = model(x, [x])
    (out.target.mean() + out.context[0].mean()).backward()
    opt.step()
    return model, opt


def test_checkpoint_round_trip_is_exact(tmp_path):
    model, opt = _trained_pair()
    tensors = pack_model(model)
    ot, om = pack_optimizer(opt)
    rt, rm = capture_rng()
    expected_rand = (torch.rand(3), np.random.rand(), __import__("random").random())
    path = save_checkpoint(tmp_path, 7, {**tensors, **ot, **rt}, {"optimizer": om, "rng": rm, "x": float("nan")})
    ckpt = load_checkpoint(path)
    assert ckpt.iteration == 7 and ckpt.meta["x"] is None
    model2, opt2 = _trained_pair()
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(1.0)
    unpack_model(model2, ckpt.tensors, path)
    unpack_optimizer(opt2, ckpt.tensors, ckpt.meta["optimizer"], path)
    assert weights_digest(model2) == weights_digest(model)
    sa, sb = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sa.keys() == sb.keys() and len(sa) > 10
    for index in sa:
        for key in sa[index]:
            assert torch.equal(sa[index][key], sb[index][key]), (index, key)
    restore_rng(ckpt.tensors, ckpt.meta["rng"])
    got = (torch.rand(3), np.random.rand(), __import__("random").random())
    assert torch.equal(got[0], expected_rand[0]) and got[1:] == expected_rand[1:]


def test_checkpoint_folder_rules(tmp_path):
    model, _ = _trained_pair()
    tensors = pack_model(model)
    for it in (1, 2, 3):
        save_checkpoint(tmp_path, it, tensors, {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_0000002", "iter_0000003"]
    # an interrupted write (temporary folder) and an incomplete folder are ignored, then cleaned
    root = tmp_path / "checkpoints"
    (root / ".iter_0000004.tmp-abc").mkdir()
    (root / "iter_0000005").mkdir()
    assert latest_checkpoint(tmp_path).name == "iter_0000003"
    assert [p.name for p in remove_stale_temporaries(root)] == [".iter_0000004.tmp-abc"]
    # damage is detected
    f = root / "iter_0000003" / "state.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(root / "iter_0000003")
    # a checkpoint of another architecture is refused with a clear message
    other = build_network(NetConfig("D", 1, 32, (2, 2, 2, 2, 4)))
    with pytest.raises(CheckpointError, match="do not fit"):
        unpack_model(other, load_checkpoint(root / "iter_0000002").tensors, root)


def test_weights_digest_sees_one_changed_value():
    model, _ = _trained_pair()
    before = weights_digest(model)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert weights_digest(model) != before
    assert os.environ.get("WORLD_SIZE") in (None, "1")


def test_training_patches_put_labels_on_the_bones(dataset):
    """Through case_on_model_grid + the sampler, bone labels sit on bright voxels at every level."""
    from sneakynet.dataset import load_dataset
    from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions

    ds = load_dataset(dataset)
    ct, labels = ds.read_case(ds.cases[0])
    case = case_on_model_grid(ds.cases[0], ct, labels, (4.0, 4.0, 4.0), CTNormalization())
    patches = PatchDataset([case], SamplerOptions(32, 1, class_balance=1.0, seed=0, augment=AugmentOptions.none()))
    for j in range(4):
        sample = patches[j]
        for image, lab in zip(sample["image"], sample["labels"]):
            bone = lab > 0
            assert bone.any()
            # bones are ~700 HU, soft tissue 40 HU, air -1000 HU (pooled context blurs the edges)
            assert image[0][bone].mean() > (400 - 500) / 1500 > (100 - 500) / 1500 > image[0][~bone].mean()
