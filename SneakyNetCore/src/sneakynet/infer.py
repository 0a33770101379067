"""Whole-volume prediction with bounded memory: the one predictor class.

Pipeline (DESIGN.md §5): check the CT -> reorient/resample to the model grid -> normalise ->
pad once to the tile grid and build the context pyramid once -> Gaussian-weighted tiles
(overlap 0.5 by default), batched -> accumulate logits in a slab buffer S voxels deep, and turn
every finished slab into argmax labels at once -> labels back onto the exact input grid.

The full (classes x volume) logit array is never built, not even per slab: the network's last
layer is a linear 1x1 head, so the Gaussian-weighted sum of tile logits equals the head applied to
the weighted sum of tile *features* plus the bias times the summed weights. The slab buffer holds
those few feature channels (8 for the lite nets, 32 for the paper's D, instead of 126 logits), and
the head runs once per voxel when a slab is final instead of once per voxel per overlapping tile.
When the buffer (features x S x Y_part x X) would exceed ``buffer_bytes`` the volume is cut into
parts along y that share one global tile grid, so the result does not depend on the split.
The Gaussian weights are not divided out: the argmax of a weighted sum equals the argmax of the
weighted mean. Test-time mirroring (``mirror=True``) keeps this: the mirrored pass's features,
flipped back, are a second block of feature channels whose head rows are the left/right twins' rows.

Speed on the CPU comes from channels-last (NDHWC) convolutions, which oneDNN runs about twice as
fast as the default layout for these small-channel 3D nets, and bfloat16 autocast where the CPU has
AMX tiles (Intel Sapphire Rapids and later); elsewhere the CPU stays in float32.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from .devices import resolve_device
from .intensity import CTNormalization, normalize_ct
from .labels import load_label_table
from .models import MultiResolutionUNet
from .pyramid import ContextPyramid, PyramidGeometry
from .slab import SlabAccumulator
from .tiling import TileFilter, air_tile_filter, gaussian_importance, padded_length, plan_tiles, tile_step

if TYPE_CHECKING:  # SimpleITK is needed only for images, not for arrays (GPU benchmarks)
    import SimpleITK as sitk

    from .postprocess import PostprocessOptions

    from .geometry import ModelGrid

ProgressCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """Prediction was cancelled through its :class:`CancelToken`; nothing was written."""


class CancelToken:
    """Thread-safe cancellation flag, checked by the predictor between tile batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class PredictionStats:
    """What one prediction did (for logs and benchmarks)."""

    model_grid: tuple[int, int, int] = (0, 0, 0)
    tiles: int = 0
    parts: int = 0
    seconds: float = 0.0
    device: str = ""
    batch_size: int = 0
    precision: str = ""
    channels_last: bool = False


@dataclass
class Prediction:
    """A label map (``sitk.Image`` from :meth:`Predictor.segment`, array from
    :meth:`Predictor.segment_array`) and the statistics of the run that made it."""

    labels: Any
    stats: PredictionStats


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype of the network: ``auto`` is float16 autocast on CUDA, bfloat16 on CPUs with
    AMX tiles (where oneDNN runs it 2-4x faster than float32) and float32 on other CPUs (where
    bfloat16 is emulated and slower)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        return torch.bfloat16 if amx else torch.float32
    return getattr(torch, precision)


def resolve_channels_last(request: bool | None, device: torch.device) -> bool:
    """Channels-last (NDHWC) convolutions: ``None`` means on for the CPU (measured ~2x faster
    there) and off for CUDA until measured on a GPU."""
    return device.type == "cpu" if request is None else bool(request)


def default_buffer_bytes(device: torch.device) -> int:
    """Slab-buffer budget before the volume is split along y: 3 GiB on CUDA, 768 MiB on the CPU."""
    return 3 << 30 if device.type == "cuda" else 768 << 20


class Predictor:
    """Segment CT volumes with one loaded model (like nnU-Net's predictor).

    >>> predictor = Predictor()                     # bundled demo model, device auto
    >>> labels = predictor.predict_image(ct_image)  # uint8 label map on ct_image's grid

    ``overlap``: tile overlap (0.5: 8 tiles per voxel); ``fast``: no overlap, for previews;
    ``buffer_bytes``: slab-buffer budget before the volume is split along y (3 GiB CUDA, 768 MiB
    CPU); ``skip_air``: skip tiles whose target patch is all air; ``precision``: ``auto``,
    ``float32``, ``bfloat16`` or ``float16`` (see :func:`resolve_precision`); ``channels_last``:
    NDHWC convolutions (default: on for the CPU, off for CUDA); ``postprocess``: clean the labels
    with the CT after prediction (:mod:`sneakynet.postprocess`; None = off); ``mirror``: test-time
    mirroring, each tile also predicted left-right mirrored with its sided labels swapped back, the two
    averaged (twice the forward passes; the model grid is LPS, so its x axis is left-right).
    """

    def __init__(self, bundle: str | os.PathLike | None = None, device: str = "auto", overlap: float = 0.5,
                 batch_size: int | None = None, fast: bool = False, buffer_bytes: int | None = None,
                 skip_air: bool = True, precision: str = "auto", channels_last: bool | None = None,
                 log: Callable[[str], None] = print, postprocess: "PostprocessOptions | None" = None,
                 mirror: bool = False) -> None:
        from .bundle import demo_bundle_path, load_bundle

        self.log = log
        self.device = resolve_device(device, log=log)
        path = demo_bundle_path() if bundle is None else Path(bundle)
        model, info = load_bundle(path, device="cpu")
        self.info = info
        if info.demo:
            log(f"sneakynet: {info.disclaimer}")
        self._setup(model, tuple(info.spacing), info.normalization(), overlap, batch_size, fast, buffer_bytes, skip_air,
                    precision, channels_last, mirror)
        self.postprocess = postprocess

    @classmethod
    def from_model(cls, model: MultiResolutionUNet, spacing: tuple[float, float, float],
                   normalization: CTNormalization = CTNormalization(), device: str = "cpu", overlap: float = 0.5,
                   batch_size: int | None = None, fast: bool = False, buffer_bytes: int | None = None,
                   skip_air: bool = True, precision: str = "auto", channels_last: bool | None = None,
                   log: Callable[[str], None] = print, mirror: bool = False) -> "Predictor":
        """A predictor around an in-memory network (tests, benchmarks, validation during training)."""
        self = cls.__new__(cls)
        self.log = log
        self.device = resolve_device(device, log=log)
        self.info = None
        self._setup(model, spacing, normalization, overlap, batch_size, fast, buffer_bytes, skip_air, precision,
                    channels_last, mirror)
        return self

    def _setup(self, model, spacing, normalization, overlap, batch_size, fast, buffer_bytes, skip_air, precision,
               channels_last, mirror) -> None:
        self.model = fold_batchnorm(model)
        self.mirror = bool(mirror)
        self.config = model.config
        self._precision_request, self._channels_last_request = precision, channels_last
        self._place_model()
        self.skip_air = skip_air
        self.spacing = tuple(float(s) for s in spacing)
        self.normalization = normalization
        # fast previews: no tile overlap (8x fewer tiles than overlap 0.5); same spacing, so the
        # anatomy keeps the scale the network was trained on
        self.overlap = 0.0 if fast else overlap
        self.step = tile_step(self.config.patch_size, self.overlap)
        cuda = self.device.type == "cuda"
        self.batch_size = batch_size or (4 if cuda else 2)
        self.buffer_bytes = buffer_bytes or default_buffer_bytes(self.device)
        if self.batch_size < 1 or self.buffer_bytes < 1:
            raise ValueError(f"batch size and buffer must be positive, got {self.batch_size} and {self.buffer_bytes}")
        self.postprocess = None

    def _place_model(self) -> None:
        """Move the network to ``self.device`` in the layout and precision chosen for that device."""
        self.dtype = resolve_precision(self._precision_request, self.device)
        # the slab buffer: float16 halves it on the GPU; on the CPU float32 adds faster and is small anyway
        self.accumulator_dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.channels_last = resolve_channels_last(self._channels_last_request, self.device)
        layout = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=layout)
        if self.device.type == "cuda":  # one tile shape: let cuDNN time its kernels once (as nnU-Net does)
            torch.backends.cudnn.benchmark = True
        head = self.model.head
        weight = head.weight.detach().float().reshape(head.out_channels, head.in_channels)
        bias = (head.bias.detach().float() if head.bias is not None
                else torch.zeros(head.out_channels, device=weight.device))
        if self.mirror:  # features of the mirrored pass come second; their logits take the twins' rows
            lut = load_label_table().mirror_lut()
            if len(lut) != head.out_channels:
                raise ValueError(f"mirroring needs a network with the label table's {len(lut)} classes, "
                                 f"this one has {head.out_channels}")
            twin = torch.as_tensor(lut, device=weight.device)
            weight = torch.cat([weight, weight[twin]], dim=1) / 2
            bias = (bias + bias[twin]) / 2
        # (features + 1) x classes: the last row is the bias, multiplied by the summed tile weights
        self._head_matrix = torch.cat([weight, bias[:, None]], dim=1).t().contiguous().to(self.device)

    # ------------------------------------------------------------------ public API
    def segment(self, image: "sitk.Image | str | os.PathLike", progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> "Prediction":
        """Label map (uint8, ids of the label table) on exactly ``image``'s grid, with run statistics."""
        import SimpleITK as sitk

        from .geometry import check_ct_image
        from .io import read_image

        source = str(image) if not isinstance(image, sitk.Image) else "input image"
        if not isinstance(image, sitk.Image):
            image = read_image(image)
        check_ct_image(image, source)
        progress = progress or (lambda fraction, message: None)
        t0 = time.perf_counter()
        progress(0.0, "resampling to the model grid")
        inputs, grid = self._image_inputs(image)
        labels, stats = self._predict_with_retry(inputs, progress, cancel)
        del inputs
        progress(0.99, "mapping labels back to the input grid")
        out = grid.labels_to_input_grid(labels, image)
        del labels
        if self.postprocess is not None:
            from .postprocess import postprocess_image

            progress(0.995, "cleaning up the labels with the CT")
            out = postprocess_image(out, image, self.postprocess)
        stats.seconds = time.perf_counter() - t0
        progress(1.0, "done")
        return Prediction(out, stats)

    def predict_image(self, image: "sitk.Image | str | os.PathLike", progress: ProgressCallback | None = None,
                      cancel: CancelToken | None = None) -> "sitk.Image":
        """The label map of :meth:`segment` alone."""
        return self.segment(image, progress, cancel).labels

    def segment_array(self, volume: np.ndarray, progress: ProgressCallback | None = None,
                      cancel: CancelToken | None = None) -> "Prediction":
        """Argmax labels (uint8, same shape) of a normalised (z, y, x) float32 volume on the model
        grid, with run statistics."""
        t0 = time.perf_counter()
        inputs = self._upload(self._padded(volume), volume.shape)
        labels, stats = self._predict_with_retry(inputs, progress or (lambda fraction, message: None), cancel)
        stats.seconds = time.perf_counter() - t0
        return Prediction(labels, stats)

    def predict_array(self, volume: np.ndarray, progress: ProgressCallback | None = None,
                      cancel: CancelToken | None = None) -> np.ndarray:
        """The labels of :meth:`segment_array` alone."""
        return self.segment_array(volume, progress, cancel).labels

    # ------------------------------------------------------------------ internals
    def _image_inputs(self, image: "sitk.Image") -> tuple["_Inputs", "ModelGrid"]:
        """The model-grid input of ``image``, padded and normalised in one buffer, and that grid.
        The resampled image is freed before prediction starts, so the host holds one float32 copy
        of the volume, not three."""
        import SimpleITK as sitk

        from .geometry import ModelGrid, to_model_grid

        model_image = to_model_grid(image, self.spacing)
        grid = ModelGrid.of(model_image)
        hu = sitk.GetArrayViewFromImage(model_image)
        padded = self._padded(hu, self.normalization)
        shape = hu.shape
        del hu, model_image
        return self._upload(padded, shape), grid

    def _padded(self, volume: np.ndarray, normalization: CTNormalization | None = None) -> np.ndarray:
        """``volume`` (optionally normalised from HU) in a new float32 array edge-padded to the tile grid."""
        S, step = self.config.patch_size, self.step
        padded = np.empty(tuple(padded_length(n, S, step) for n in volume.shape), dtype=np.float32)
        z, y, x = volume.shape
        core = padded[:z, :y, :x]
        if normalization is None:
            core[...] = volume
        else:
            normalize_ct(volume, normalization, out=core)
        padded[z:, :y, :x] = padded[z - 1:z, :y, :x]  # edge padding, one axis after the other
        padded[:, y:, :x] = padded[:, y - 1:y, :x]
        padded[:, :, x:] = padded[:, :, x - 1:x]
        return padded

    def _upload(self, padded: np.ndarray, shape: tuple[int, ...]) -> "_Inputs":
        """Tensors of the padded input and its context pyramid on the device (on CUDA the host copy
        can then be freed)."""
        pyramid = ContextPyramid(padded, self.config.patch_size, self.config.num_context)
        levels = [torch.from_numpy(level).to(self.device) for level in pyramid.levels[1:]]
        return _Inputs(torch.from_numpy(padded).to(self.device), levels, tuple(shape), pyramid.geometry)

    def _predict_with_retry(self, inputs: "_Inputs", progress: ProgressCallback,
                            cancel: CancelToken | None) -> tuple[np.ndarray, PredictionStats]:
        """Predict; on CUDA out-of-memory retry this call with a smaller batch, then a smaller
        buffer, then on the CPU (as nnU-Net does). The predictor's own settings stay as they are."""
        batch_size, buffer_bytes = self.batch_size, self.buffer_bytes
        while True:
            try:
                return self._predict_inputs(inputs, progress, cancel, batch_size, buffer_bytes)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch_size > 1:
                    batch_size //= 2
                    self.log(f"sneakynet: GPU out of memory, retrying with batch size {batch_size}")
                elif buffer_bytes > (256 << 20):
                    buffer_bytes //= 2
                    self.log("sneakynet: GPU out of memory, retrying with a smaller slab buffer")
                else:
                    self.log("sneakynet: GPU out of memory even with batch size 1; this volume runs on the CPU")
                    return self._predict_on_cpu(inputs, progress, cancel)

    def _predict_on_cpu(self, inputs: "_Inputs", progress: ProgressCallback,
                        cancel: CancelToken | None) -> tuple[np.ndarray, PredictionStats]:
        """One prediction on the CPU; the network goes back to its device afterwards."""
        device, requests = self.device, (self._precision_request, self._channels_last_request)
        self.device = torch.device("cpu")
        self._precision_request, self._channels_last_request = "auto", None
        try:
            self._place_model()
            inputs.padded, inputs.levels = inputs.padded.cpu(), [lvl.cpu() for lvl in inputs.levels]
            return self._predict_inputs(inputs, progress, cancel, 1, default_buffer_bytes(self.device))
        finally:
            self.device = device
            self._precision_request, self._channels_last_request = requests
            self._place_model()

    def _predict_inputs(self, inputs: "_Inputs", progress: ProgressCallback, cancel: CancelToken | None,
                        batch_size: int, buffer_bytes: int) -> tuple[np.ndarray, PredictionStats]:
        """Run the tile plan: forward passes in batches into one slab accumulator per y-part."""
        S, shape, padded_shape = self.config.patch_size, inputs.shape, tuple(inputs.padded.shape)
        element = torch.tensor([], dtype=self.accumulator_dtype).element_size()
        row_bytes = self._head_matrix.shape[0] * S * padded_shape[2] * element
        keep = self._tile_filter(inputs.padded)
        plan = plan_tiles(padded_shape, shape, S, self.step, row_bytes, buffer_bytes, keep)
        stats = PredictionStats(model_grid=shape, tiles=plan.tiles, parts=len(plan.parts), device=str(self.device),
                                batch_size=batch_size, precision=str(self.dtype).removeprefix("torch."),
                                channels_last=self.channels_last)
        weights = gaussian_importance(S).to(self.device, self.accumulator_dtype)
        labels = np.zeros(shape, dtype=np.uint8)
        done = 0
        with torch.inference_mode():
            for part, rows in zip(plan.parts, plan.rows):
                slab = SlabAccumulator(labels, part, padded_shape[2], weights, self._head_matrix, self.step)
                for zi, z in enumerate(plan.z_starts):
                    slab.reach(z)
                    for batch in _chunks(rows[zi], batch_size):
                        if cancel is not None and cancel.cancelled:
                            raise Cancelled("prediction cancelled")
                        slab.add(self._forward(inputs, batch), batch)
                        done += len(batch)
                        progress(0.02 + 0.96 * done / plan.tiles, f"tile {done}/{plan.tiles}")
                    slab.finish(plan.z_starts[zi + 1] if zi + 1 < len(plan.z_starts) else padded_shape[0])
        return labels, stats

    def _tile_filter(self, padded: torch.Tensor) -> TileFilter | None:
        """With ``skip_air``, skip tiles whose target patch is all air (< -500 HU, or at the window's
        floor when the CT window starts above -500 HU)."""
        if not self.skip_air:
            return None
        norm = self.normalization
        air_hu = max(-500.0, norm.clip_min + 1.0)
        return air_tile_filter(padded, self.config.patch_size, (air_hu - norm.center) / norm.scale)

    def _forward(self, inputs: "_Inputs", batch: list[tuple[int, int, int]]) -> torch.Tensor:
        cuts = [inputs.geometry.slices(o) for o in batch]
        target = torch.stack([inputs.padded[sl[0]] for sl in cuts])[:, None]
        contexts = [torch.stack([lvl[sl[k]] for sl in cuts])[:, None] for k, lvl in enumerate(inputs.levels, start=1)]
        if self.channels_last:
            target = target.contiguous(memory_format=torch.channels_last_3d)
            contexts = [c.contiguous(memory_format=torch.channels_last_3d) for c in contexts]
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            if not self.mirror:
                return self.model.forward_features(target, contexts)
            # every patch of a tile shares its centre, so flipping each mirrors the scene (as in training)
            both = self.model.forward_features(torch.cat([target, target.flip(-1)]),
                                               [torch.cat([c, c.flip(-1)]) for c in contexts])
            plain, mirrored = both.chunk(2)
            return torch.cat([plain, mirrored.flip(-1)], dim=1)


@dataclass
class _Inputs:
    """A prediction's input on the device: the edge-padded volume, its context levels, the unpadded
    shape and the pyramid geometry that cuts tiles from them."""

    padded: torch.Tensor
    levels: list[torch.Tensor]
    shape: tuple[int, ...]
    geometry: PyramidGeometry


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` with every Conv3d+BatchNorm3d pair of its ConvBlocks fused
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same function with fewer passes over memory."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from .models.blocks import ConvBlock

    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if isinstance(block, ConvBlock):
            for i in range(len(block) - 1):
                if isinstance(block[i], torch.nn.Conv3d) and isinstance(block[i + 1], torch.nn.BatchNorm3d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = torch.nn.Identity()
    return fused


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def estimate_full_logits_bytes(shape: tuple[int, ...], num_classes: int) -> int:
    """Memory a whole-volume float32 logit array would need (what MONAI's sliding window holds)."""
    return int(math.prod(shape)) * num_classes * 4
