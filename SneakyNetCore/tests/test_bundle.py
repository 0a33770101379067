"""Model bundles: round trip, and a clear BundleError for every way a bundle can be broken."""
import json
import pickle

import pytest
import torch

from sneakynet.bundle import (CONFIG_FILE, DEMO_DISCLAIMER, WEIGHTS_FILE, BundleError, demo_bundle_path,
                              intensity_spec, load_bundle, read_bundle_info, save_bundle)
from sneakynet.intensity import CTNormalization
from sneakynet.labels import load_label_table
from sneakynet.models import NetConfig, build_network

TINY = NetConfig(variant="D", num_context=1, patch_size=32, widths=(2, 3, 4, 5, 6), num_classes=126)


def _save(tmp_path, config=TINY, **kw):
    torch.manual_seed(0)
    model = build_network(config)
    with torch.no_grad():  # make BN buffers non-trivial too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-1, 1)
                m.num_batches_tracked.fill_(7)
    args = dict(spacing=(2.0, 2.5, 3.0), intensity=intensity_spec(CTNormalization()), description="unit test",
                training={"iterations": 3, "seed": 0})
    args.update(kw)
    return model, save_bundle(model, tmp_path / "bundle", **args)


def _edit_config(path, fn):
    cfg = json.loads((path / CONFIG_FILE).read_text())
    fn(cfg)
    (path / CONFIG_FILE).write_text(json.dumps(cfg))


def test_round_trip_gives_identical_network_and_info(tmp_path):
    model, path = _save(tmp_path, metrics={"val_dsc": 0.5, "nan": float("nan")})
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded, info = load_bundle(path)
    assert not loaded.training
    assert info.config == TINY and info.spacing == (2.0, 2.5, 3.0)
    assert info.label_table_version == load_label_table().version
    assert info.normalization() == CTNormalization()
    assert info.metrics == {"val_dsc": 0.5, "nan": None} and not info.demo
    assert info.training["iterations"] == 3 and info.patch_size == 32 and info.num_context == 1
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    x = torch.randn(1, 1, 32, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, [x]).target, loaded(x, [x]).target)
    # no temporary folders left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_save_replaces_existing_bundle_and_demo_gets_disclaimer(tmp_path):
    _save(tmp_path)
    _, path = _save(tmp_path, demo=True)
    info = read_bundle_info(path)
    assert info.demo and info.disclaimer == DEMO_DISCLAIMER
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_save_refuses_to_overwrite_unrelated_folder(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        _save(tmp_path)
    assert (tmp_path / "bundle" / "notes.txt").read_text() == "mine"


def test_missing_folder_and_missing_files(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    _, path = _save(tmp_path)
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match="weights file is missing"):
        load_bundle(path)
    (path / CONFIG_FILE).unlink()
    with pytest.raises(BundleError, match="config.json: file is missing"):
        load_bundle(path)


def test_truncated_weights_are_rejected(tmp_path):
    _, path = _save(tmp_path)
    w = path / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(BundleError, match="truncated, damaged or was modified"):
        load_bundle(path)


def test_tampered_weights_are_rejected(tmp_path):
    _, path = _save(tmp_path)
    w = path / WEIGHTS_FILE
    data = bytearray(w.read_bytes())
    data[-3] ^= 0x01  # flip one bit of the last weight
    w.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 .* does not match"):
        load_bundle(path)


@pytest.mark.parametrize("kind", ["torch_save", "pickle"])
def test_pickled_weights_are_refused_even_with_matching_hash(tmp_path, kind):
    model, path = _save(tmp_path)
    w = path / WEIGHTS_FILE
    if kind == "torch_save":
        torch.save(model.state_dict(), w)
    else:
        w.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    from sneakynet.bundle import file_sha256
    _edit_config(path, lambda c: c["weights"].update(sha256=file_sha256(w)))  # attacker fixed the hash
    with pytest.raises(BundleError, match="never unpickles"):
        load_bundle(path)


def test_garbage_weights_with_matching_hash_give_clear_error(tmp_path):
    _, path = _save(tmp_path)
    w = path / WEIGHTS_FILE
    w.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxxx")
    from sneakynet.bundle import file_sha256
    _edit_config(path, lambda c: c["weights"].update(sha256=file_sha256(w)))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        load_bundle(path)


def test_wrong_architecture_is_rejected(tmp_path):
    _, path = _save(tmp_path)
    # config claims wider channels than the stored weights have
    _edit_config(path, lambda c: c["network"].update(widths=[2, 3, 4, 5, 7]))
    with pytest.raises(BundleError, match="wrong shape"):
        load_bundle(path)
    # config claims a different variant: C has no context decoder -> unexpected tensors
    _edit_config(path, lambda c: c["network"].update(widths=[2, 3, 4, 5, 6], variant="C"))
    with pytest.raises(BundleError, match="unexpected tensor"):
        load_bundle(path)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c.clear(), "'format' is None"),
    (lambda c: c.update(format_version=99), "newer than this SneakyNet"),
    (lambda c: c["network"].update(colour="red"), "unknown network config keys"),
    (lambda c: c["network"].update(variant="Z"), "invalid network config"),
    (lambda c: c.update(label_table_version="0.0-other"), "label table version"),
    (lambda c: c.update(spacing_mm=[1, 0, 1]), "spacing must be three positive"),
    (lambda c: c.update(intensity={"name": "zscore", "parameters": {}}), "unknown intensity"),
    (lambda c: c.update(num_classes=5), "disagrees with the network"),
    (lambda c: c.update(demo="yes"), "'demo' has the wrong type"),
    (lambda c: c.pop("weights"), "missing key 'weights'"),
    (lambda c: c["weights"].update(file="model.pt"), "weights file must be"),
])
def test_malformed_config_is_rejected(tmp_path, edit, message):
    _, path = _save(tmp_path)
    _edit_config(path, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_config_that_is_not_json(tmp_path):
    _, path = _save(tmp_path)
    (path / CONFIG_FILE).write_text("{ truncated")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)


def test_demo_bundle_path_exists_or_explains(tmp_path):
    try:
        path = demo_bundle_path()
    except FileNotFoundError as exc:
        assert "demo model is not built" in str(exc)
    else:
        assert read_bundle_info(path).demo
