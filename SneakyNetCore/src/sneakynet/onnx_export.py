"""Export a model bundle to ONNX: target and context nets as one graph, documented in the file itself.

The graph is the network's inference forward pass on one tile: inputs ``target`` and
``context_1 .. context_K`` (float32, (batch, 1, S, S, S), normalised CT), output ``logits``
(float32, (batch, classes, S, S, S)); argmax over classes gives label ids of the label table.
BatchNorm is folded into the convolutions as :class:`sneakynet.infer.Predictor` does. Everything a
runtime needs to build those inputs (spacing, normalisation, how the context cubes are cut and
pooled) and to name the outputs is stored in the model's ``metadata_props``; see
:func:`describe_io`.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .bundle import BundleInfo, demo_bundle_path, load_bundle
from .infer import fold_batchnorm
from .io import atomic_path
from .labels import load_label_table
from .models.network import MultiResolutionUNet

OPSET = 18


class TileForward(nn.Module):
    """The network's inference forward pass with its context patches as separate positional inputs."""

    def __init__(self, model: MultiResolutionUNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, target: torch.Tensor, *contexts: torch.Tensor) -> torch.Tensor:
        return self.model(target, list(contexts), with_context_logits=False).target


def input_names(num_context: int) -> list[str]:
    """``target`` then ``context_1`` .. ``context_K``."""
    return ["target"] + [f"context_{k}" for k in range(1, num_context + 1)]


def describe_io(info: BundleInfo) -> dict[str, str]:
    """The metadata stored in the ONNX file (all values are strings, as ONNX requires)."""
    S, K = info.patch_size, info.num_context
    norm = info.normalization()
    table = load_label_table()
    contexts = (f" context_k (k = 1..{K}): float32 (batch, 1, {S}, {S}, {S}), the cube of 2^k*{S} voxels centred on "
                "the target tile, average-pooled by 2^k (kernel = stride); the volume is edge-padded where the cube "
                "leaves it (sneakynet.pyramid.ContextPyramid)." if K else "")
    return {
        "sneakynet.inputs": (
            f"target: float32 (batch, 1, {S}, {S}, {S}), a tile of the CT resampled to {list(info.spacing)} mm "
            f"(x, y, z; array order z, y, x), normalised as sneakynet.intensity_normalization says." + contexts),
        "sneakynet.outputs": (f"logits: float32 (batch, {info.num_classes}, {S}, {S}, {S}); argmax over axis 1 is the "
                              f"label id (0 = background, 1..{info.num_classes - 1} = sneakynet.labels)"),
        "sneakynet.spacing_mm": json.dumps(list(info.spacing)),
        "sneakynet.intensity_normalization": json.dumps(
            {"formula": "(clip(hu, clip_min, clip_max) - center) / scale", **norm.to_dict()}),
        "sneakynet.patch_size": str(S),
        "sneakynet.num_context": str(K),
        "sneakynet.network": json.dumps(info.config.to_dict()),
        "sneakynet.label_table_version": info.label_table_version,
        "sneakynet.labels": json.dumps({str(b.id): b.name for b in table}),
        "sneakynet.description": info.description,
        "sneakynet.weights_sha256": info.sha256,
        "sneakynet.tiling": "tiles overlap by half a patch with Gaussian weights (sigma S/8) in sneakynet.infer",
        **({"sneakynet.disclaimer": info.disclaimer} if info.demo else {}),
    }


def export_onnx(bundle: str | os.PathLike | None, out: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write the bundle's network (default: the bundled demo model) as one self-contained ONNX file.

    The batch axis is dynamic; the spatial size is the bundle's patch size. Written atomically.
    """
    import onnx

    model, info = load_bundle(demo_bundle_path() if bundle is None else bundle, device="cpu")
    wrapper = TileForward(fold_batchnorm(model).float()).eval()
    S, names = info.patch_size, input_names(info.num_context)
    example = tuple(torch.zeros(1, 1, S, S, S) for _ in names)
    batch = torch.export.Dim("batch")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))  # exporter internals, not the user's concern
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # torchvision ops
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(wrapper, example, str(raw), dynamo=True, opset_version=opset, input_names=names,
                          output_names=["logits"], dynamic_shapes=({0: batch}, ({0: batch},) * (len(names) - 1)),
                          verbose=False)
        proto = onnx.load(str(raw))  # pulls in the external weight file torch may have written
    proto.doc_string = f"SneakyNet {info.config.describe()}: 125-bone CT segmentation, one tile per call"
    for key, value in describe_io(info).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    with atomic_path(out) as tmp_out:
        onnx.save_model(proto, str(tmp_out), save_as_external_data=False)
    return Path(out)
