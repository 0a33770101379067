"""ONNX export: one graph for target + context nets, documented, and equal to PyTorch on phantom tiles.

Parity runs onnxruntime on the CPU on the phantom tiles that hold the most bone, built exactly as
the predictor builds them (normalised, edge-padded, context pyramid from sneakynet.pyramid).
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import SimpleITK as sitk
import torch

from sneakynet.bundle import demo_bundle_path, load_bundle
from sneakynet.cli import main
from sneakynet.infer import fold_batchnorm
from sneakynet.intensity import normalize_ct
from sneakynet.onnx_export import export_onnx, input_names
from sneakynet.phantom import PhantomOptions, generate_case
from sneakynet.pyramid import ContextPyramid

TILES = 6


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "demo.onnx"
    export_onnx(None, path)
    return path


def phantom_tiles(info, n: int) -> list[np.ndarray]:
    """Target and context patches (each (n, 1, S, S, S)) of the ``n`` tiles with the most bone voxels,
    cut from the context pyramid that training and the predictor share."""
    ct, truth = generate_case(7, PhantomOptions(spacing=info.spacing, fov_scale=0.6))  # already on the model grid
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    bone = sitk.GetArrayFromImage(truth) > 0
    S, K = info.patch_size, info.num_context
    pyramid = ContextPyramid(normalize_ct(hu, info.normalization()), S, K)
    step = max(S // 2, pyramid.geometry.alignment)
    top = pyramid.geometry.max_origin
    origins = [(z, y, x) for z in range(0, top[0] + 1, step) for y in range(0, top[1] + 1, step)
               for x in range(0, top[2] + 1, step)]
    origins = sorted(origins, key=lambda o: -bone[o[0]:o[0] + S, o[1]:o[1] + S, o[2]:o[2] + S].sum())[:n]
    patches = [pyramid.cut(o) for o in origins]
    return [np.stack([p[k] for p in patches])[:, None] for k in range(K + 1)]


def test_onnx_labels_match_pytorch_on_phantom_tiles(exported):
    model, info = load_bundle(demo_bundle_path())
    inputs = phantom_tiles(info, TILES)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == input_names(info.num_context) == ["target", "context_1"]
    onnx_logits = session.run(["logits"], dict(zip(input_names(info.num_context), inputs)))[0]
    net = fold_batchnorm(model).float().eval()
    with torch.no_grad():
        torch_logits = net.forward(torch.from_numpy(inputs[0]), [torch.from_numpy(c) for c in inputs[1:]]).target
    torch_labels, onnx_labels = torch_logits.argmax(1).numpy(), onnx_logits.argmax(1)
    agreement = float((torch_labels == onnx_labels).mean())
    print(f"ONNX vs PyTorch: {agreement:.5%} of {torch_labels.size} voxels equal, "
          f"{len(np.unique(torch_labels)) - 1} bone labels present, max |dlogit| "
          f"{np.abs(onnx_logits - torch_logits.numpy()).max():.2e}")
    assert onnx_logits.shape == (TILES, info.num_classes, *inputs[0].shape[2:])
    assert len(np.unique(torch_labels)) > 5  # the tiles really hold bones, not just background
    assert agreement >= 0.999


def test_onnx_metadata_documents_inputs_and_outputs(exported):
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    _, info = load_bundle(demo_bundle_path())
    assert json.loads(meta["sneakynet.spacing_mm"]) == list(info.spacing)
    assert json.loads(meta["sneakynet.intensity_normalization"])["scale"] == info.normalization().scale
    assert "context_k" in meta["sneakynet.inputs"] and "argmax" in meta["sneakynet.outputs"]
    assert json.loads(meta["sneakynet.labels"])["125"] == "femur_right"
    assert "clinical" in meta["sneakynet.disclaimer"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [1, info.patch_size, info.patch_size, info.patch_size]


def test_export_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["export-onnx", "demo", str(tmp_path / "model.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert main(["export-onnx", str(tmp_path / "nope"), str(tmp_path / "m.onnx")]) == 2
    assert "not a model bundle folder" in capsys.readouterr().err
