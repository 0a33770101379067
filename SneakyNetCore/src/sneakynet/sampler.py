"""Multi-resolution patch sampling for SneakyNet training (paper §2.1, DESIGN.md §2).

For a target patch size ``S`` and ``K`` context levels, every sample is one target patch of ``S^3``
voxels at full resolution plus ``K`` context patches; context ``k`` covers the ``(2^k S)^3`` cube with
the same centre, average-pooled by ``2^k`` (kernel = stride), so it is again ``S^3``.

How the pooling is made exact and cheap (:class:`ContextPyramid`, shared with the predictor):

* each volume is edge-padded ONCE by ``P = (2^K S - S) / 2`` voxels per side (so a target patch
  anywhere inside the image has its whole context) plus a few extra voxels on the high side so
  that a target patch can touch the last voxel row and the padded length is a multiple of ``2^K``;
* the padded volume is average-pooled ONCE by 2, 4, ..., 2^K into ``levels[1..K]``;
* **alignment rule**: target patch origins (in unpadded voxels, array order z, y, x) are multiples
  of ``2^K``, between 0 and ``max_origin``. Then every context cube starts on a ``2^k`` block
  boundary of the padded volume, and a context patch is a plain slice of ``levels[k]`` that equals
  average pooling of the ``(2^k S)^3`` region exactly (up to float32 rounding).

Labels (:class:`LabelPyramid`) are padded with 0 = background, not edge values: the padding is not
anatomy and extruding a bone cut by the field of view would teach the network to paint bone into
the void. Context labels use the **block-centre (nearest) rule**: the label of context voxel ``b``
at level ``k`` is the label at padded voxel ``b*2^k + 2^(k-1)`` per axis (the upper of the two
central voxels of its block). A majority vote over ``8^k`` voxels would cost far more and is not
better defined at bone borders.

Patch centres are drawn uniformly (uniform aligned origin) or, with probability
``class_balance``, class-balanced: pick one of the bones present in the case uniformly, then one
of its voxels (per-class voxel index lists are built once per case), so rare bones (carpals,
sesamoids) are seen. Augmentation keeps anatomy honest: left-right mirroring flips the array axis
that runs along the patient's left-right direction (from the image direction cosines) and swaps
left/right labels with :meth:`LabelTable.mirror_lut`; intensity scale/shift/noise; optional small
rotations about the superior-inferior axis.

Determinism: sample ``j`` of rank ``r`` is a pure function of ``(seed, r, j)`` (its own NumPy
generator), independent of the number of DataLoader workers. :class:`PatchLoader` counts consumed
batches; its ``state_dict()`` resumes the stream exactly, and DDP ranks draw different patches.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from sneakynet.intensity import DEFAULT_CT_NORMALIZATION, CTNormalization, normalize_ct
from sneakynet.labels import NUM_CLASSES, load_label_table

__all__ = [
    "normalize_ct", "CTNormalization", "PyramidGeometry", "pyramid_geometry", "ContextPyramid", "LabelPyramid",
    "TrainingCase", "AugmentOptions", "SamplerOptions", "PatchDataset", "PatchLoader", "load_training_cases",
    "patient_axes", "resample_to_spacing", "collate_patches",
]

Origin = tuple[int, int, int]


# ----------------------------------------------------------------------------------------------
# geometry of the padded pyramid


@dataclass(frozen=True)
class PyramidGeometry:
    """Padding and valid target origins for one volume shape (all in voxels, array order z, y, x)."""

    shape: Origin  # unpadded volume shape
    patch_size: int  # S
    num_context: int  # K
    pad: tuple[tuple[int, int], ...]  # (low, high) per axis
    max_origin: Origin  # largest valid target origin per axis (a multiple of alignment)

    @property
    def alignment(self) -> int:
        """Target origins must be multiples of this (2^K)."""
        return 2 ** self.num_context

    @property
    def context_pad(self) -> int:
        """``P = (2^K S - S) / 2``, the low pad on every axis."""
        return (2 ** self.num_context - 1) * self.patch_size // 2

    @property
    def padded_shape(self) -> Origin:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.shape, self.pad))  # type: ignore[return-value]

    def check_origin(self, origin: Sequence[int]) -> Origin:
        """Validate a target origin; ValueError says which rule it breaks."""
        o = tuple(int(v) for v in origin)
        if len(o) != 3:
            raise ValueError(f"origin must have 3 values (z, y, x), got {origin!r}")
        a = self.alignment
        for axis, (v, hi) in enumerate(zip(o, self.max_origin)):
            if v % a:
                raise ValueError(f"origin {o}: axis {axis} value {v} is not a multiple of 2^K = {a}")
            if not 0 <= v <= hi:
                raise ValueError(f"origin {o}: axis {axis} value {v} is outside 0..{hi}")
        return o  # type: ignore[return-value]

    def origin_for_centre(self, centre: Sequence[int]) -> Origin:
        """The valid aligned origin whose target patch holds voxel ``centre`` nearest its middle.

        ``origin = clip(floor((c - S/2) / 2^K) * 2^K, 0, max_origin)``; the voxel always lies inside
        the patch (at most 2^K - 1 voxels past the middle, or nearer the border when clipped).
        """
        a, half = self.alignment, self.patch_size // 2
        return tuple(  # type: ignore[return-value]
            int(min(max(((int(c) - half) // a) * a, 0), hi)) for c, hi in zip(centre, self.max_origin)
        )

    def origins_along(self, axis: int) -> np.ndarray:
        """All valid origins on one axis."""
        return np.arange(0, self.max_origin[axis] + 1, self.alignment)


def pyramid_geometry(shape: Sequence[int], patch_size: int, num_context: int) -> PyramidGeometry:
    """Padding for a volume of ``shape`` (z, y, x): low ``P``, high ``P`` + what the alignment needs.

    ``max_origin = ceil(max(n - S, 0) / 2^K) * 2^K`` so the last target patch reaches the last voxel
    row (it may overhang into the pad by fewer than 2^K voxels, or by ``S - n`` for a volume thinner
    than ``S``); the high pad covers that patch's whole context and rounds the padded length up to
    a multiple of ``2^K``.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"volume shape must be 3 positive sizes (z, y, x), got {tuple(shape)}")
    if patch_size < 2 or patch_size % 2:
        raise ValueError(f"patch size must be a positive even number, got {patch_size}")
    if num_context < 0:
        raise ValueError(f"number of context levels must be >= 0, got {num_context}")
    a = 2 ** num_context
    p = (a - 1) * patch_size // 2
    pads, max_origin = [], []
    for n in shape:
        o_max = -(-max(int(n) - patch_size, 0) // a) * a
        hi = p + o_max + patch_size - int(n)
        hi += (-(p + int(n) + hi)) % a  # padded length a multiple of 2^K
        pads.append((p, hi))
        max_origin.append(o_max)
    return PyramidGeometry(tuple(int(n) for n in shape), patch_size, num_context, tuple(pads),  # type: ignore[arg-type]
                           tuple(max_origin))  # type: ignore[arg-type]


def _pool2(a: np.ndarray) -> np.ndarray:
    """Exact 2x2x2 average pooling (kernel = stride = 2) of an array with even sizes, float32."""
    a = a[0::2] + a[1::2]
    a = a[:, 0::2] + a[:, 1::2]
    a = a[:, :, 0::2] + a[:, :, 1::2]
    a *= np.float32(0.125)
    return a


def _pool2_edge_padded(volume: np.ndarray, pad: Sequence[tuple[int, int]]) -> np.ndarray:
    """``_pool2(np.pad(volume, pad, mode="edge"))`` without building the padded volume.

    Axis by axis: a pair of pad rows are two copies of the edge row, so its average is the edge
    row itself; only the real rows are averaged. Needs even low pads and even padded lengths.
    """
    out = volume.astype(np.float32, copy=False)
    for axis, (lo, hi) in enumerate(pad):
        n = out.shape[axis]
        ext = n % 2  # complete the last pair with one edge row taken from the high pad
        if ext:
            out = np.concatenate([out, np.take(out, [n - 1], axis=axis)], axis=axis)
        first = np.take(out, [0], axis=axis)
        last = np.take(out, [n - 1], axis=axis)
        a = np.take(out, np.arange(0, n + ext, 2), axis=axis)
        a += np.take(out, np.arange(1, n + ext, 2), axis=axis)
        a *= np.float32(0.5)
        out = np.concatenate(
            [np.repeat(first, lo // 2, axis=axis), a, np.repeat(last, (hi - ext) // 2, axis=axis)], axis=axis
        )
    return out


def _nearest_level(labels: np.ndarray, geometry: "PyramidGeometry", k: int) -> np.ndarray:
    """Block-centre labels of level k: ``padded[b*2^k + 2^(k-1)]`` of the zero-padded map, built
    without the padded map."""
    f = 2 ** k
    shape = [s // f for s in geometry.padded_shape]
    out = np.zeros(shape, dtype=np.uint8)
    dst, src = [], []
    for axis, n in enumerate(labels.shape):
        lo = geometry.pad[axis][0]
        q = np.arange(shape[axis]) * f + f // 2 - lo  # unpadded coordinate of each block centre
        valid = np.flatnonzero((q >= 0) & (q < n))
        dst.append(slice(int(valid[0]), int(valid[-1]) + 1))
        src.append(slice(int(q[valid[0]]), int(q[valid[-1]]) + 1, f))
    out[tuple(dst)] = labels[tuple(src)]
    return out


class _Pyramid:
    """Shared cutting logic: ``levels[k]`` holds level k; ``level_start[k]`` is the padded-volume
    coordinate (full-resolution voxels) where ``levels[k]`` begins on every axis."""

    geometry: PyramidGeometry
    levels: list[np.ndarray]
    level_start: list[int]

    @property
    def pad(self) -> tuple[tuple[int, int], ...]:
        """(low, high) pad per axis in full-resolution voxels."""
        return self.geometry.pad

    @property
    def alignment(self) -> int:
        return self.geometry.alignment

    @property
    def max_origin(self) -> Origin:
        return self.geometry.max_origin

    @property
    def shape(self) -> Origin:
        """Unpadded volume shape (z, y, x)."""
        return self.geometry.shape

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.levels)

    def origin_for_centre(self, centre: Sequence[int]) -> Origin:
        return self.geometry.origin_for_centre(centre)

    def slices(self, origin: Sequence[int]) -> list[tuple[slice, slice, slice]]:
        """Index slices into ``levels[k]`` for the target (k = 0) and context patches of ``origin``."""
        g = self.geometry
        o = g.check_origin(origin)
        s, p = g.patch_size, g.context_pad
        out = []
        for k in range(g.num_context + 1):
            f = 2 ** k
            starts = [(v + p - (f - 1) * s // 2 - self.level_start[k]) // f for v in o]
            out.append(tuple(slice(b, b + s) for b in starts))  # type: ignore[arg-type]
        return out

    def cut(self, origin: Sequence[int]) -> list[np.ndarray]:
        """``[target, context_1, ..., context_K]``, each a new ``(S, S, S)`` array.

        The target covers unpadded voxels ``origin .. origin + S`` (z, y, x); context k covers the
        ``2^k S`` cube with the same centre at ``2^k`` coarser resolution. ``origin`` must follow the
        alignment rule (multiples of 2^K within ``0..max_origin``), else ValueError.
        """
        return [np.array(self.levels[k][sl]) for k, sl in enumerate(self.slices(origin))]

    def _target_level(self, volume: np.ndarray, keep_padded_target: bool, mode: str) -> np.ndarray:
        g = self.geometry
        kw = {"constant_values": 0} if mode == "constant" else {}
        if keep_padded_target:
            self.level_start[0] = 0
            return np.pad(volume, g.pad, mode=mode, **kw)
        # only what target patches can reach: the volume plus the overhang of the last patch
        self.level_start[0] = g.context_pad
        over = [(0, m + g.patch_size - n) for m, n in zip(g.max_origin, g.shape)]
        return np.pad(volume, over, mode=mode, **kw)


class ContextPyramid(_Pyramid):
    """Edge-padded, average-pooled pyramid of one volume, built once, cut for every patch or tile.

    ``volume``: (D, H, W) = (z, y, x) array (normalised CT), ``patch_size`` S, ``num_context`` K.
    ``levels[0]`` is the edge-padded volume (pad ``.pad`` per axis), ``levels[k]`` the ``2^k``
    average pooling of it (shape = padded shape / 2^k, float32), computed without materialising
    the padded volume. With ``keep_padded_target=False`` ``levels[0]`` holds only what target
    patches can reach (the volume plus the high-side overhang), which saves much memory when the
    pad ``P`` is large (training caches, K = 3); ``level_start[0]`` then says where it begins.
    """

    def __init__(
        self, volume: np.ndarray, patch_size: int, num_context: int, keep_padded_target: bool = True
    ) -> None:
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise ValueError(f"ContextPyramid needs a 3-D (z, y, x) volume, got shape {volume.shape}")
        volume = volume.astype(np.float32, copy=False)
        self.geometry = g = pyramid_geometry(volume.shape, patch_size, num_context)
        self.level_start = [0] * (num_context + 1)
        levels = [self._target_level(volume, keep_padded_target, "edge")]
        if num_context:
            if g.context_pad % 2 == 0:
                levels.append(_pool2_edge_padded(volume, g.pad))
            else:  # odd pad (S not a multiple of 4): pool the padded volume directly
                levels.append(_pool2(np.pad(volume, g.pad, mode="edge")))
            for _ in range(2, num_context + 1):
                levels.append(_pool2(levels[-1]))
        self.levels = levels


class LabelPyramid(_Pyramid):
    """Zero-padded label map with block-centre (nearest) context labels; same geometry and ``cut``.

    ``levels[k][b] = padded[b * 2^k + 2^(k-1)]`` per axis for k >= 1 (uint8), padded with 0.
    """

    def __init__(
        self, labels: np.ndarray, patch_size: int, num_context: int, keep_padded_target: bool = True
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 3:
            raise ValueError(f"LabelPyramid needs a 3-D (z, y, x) label map, got shape {labels.shape}")
        if labels.dtype != np.uint8:
            if labels.size and (labels.min() < 0 or labels.max() > 255):
                raise ValueError("LabelPyramid: label values must be in 0..255")
            labels = labels.astype(np.uint8)
        self.geometry = pyramid_geometry(labels.shape, patch_size, num_context)
        self.level_start = [0] * (num_context + 1)
        levels = [self._target_level(labels, keep_padded_target, "constant")]
        levels += [_nearest_level(labels, self.geometry, k) for k in range(1, num_context + 1)]
        self.levels = levels


# ----------------------------------------------------------------------------------------------
# training cases


def patient_axes(direction: Sequence[float]) -> tuple[int, int]:
    """(left-right, superior-inferior) array axes of a (z, y, x) array from a SimpleITK direction.

    The direction (row-major 3x3, LPS) has one column per index axis i, j, k; the index axis with
    the largest |x| (R->L) component runs left-right, the one with the largest |z| runs S-I. Array
    axis = 2 - index axis because ``sitk.GetArrayFromImage`` returns (k, j, i).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    lr_index = int(np.argmax(np.abs(d[0])))
    si_index = int(np.argmax(np.abs(d[2])))
    if lr_index == si_index:
        raise ValueError(f"direction {tuple(np.round(d.ravel(), 3))} is degenerate (no distinct L-R and S-I axes)")
    return 2 - lr_index, 2 - si_index


def resample_to_spacing(image: sitk.Image, spacing_xyz: Sequence[float], is_label: bool) -> sitk.Image:
    """Resample onto a grid with ``spacing_xyz`` (mm, SimpleITK x, y, z order), same origin and
    direction, covering the same extent; linear for CT (float32), nearest for labels."""
    old_sp = np.array(image.GetSpacing(), dtype=float)
    new_sp = np.array(spacing_xyz, dtype=float)
    if new_sp.shape != (3,) or np.any(new_sp <= 0):
        raise ValueError(f"spacing must be 3 positive values in mm, got {tuple(spacing_xyz)}")
    size = [max(1, int(round(n * o / s))) for n, o, s in zip(image.GetSize(), old_sp, new_sp)]
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(tuple(float(s) for s in new_sp))
    f.SetSize(size)
    f.SetOutputOrigin(image.GetOrigin())
    f.SetOutputDirection(image.GetDirection())
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear)
    f.SetDefaultPixelValue(0 if is_label else -1024)
    if not is_label:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return f.Execute(image)


@dataclass
class TrainingCase:
    """One case held in memory for sampling: normalised CT and labels as (z, y, x) arrays."""

    case_id: str
    image: np.ndarray  # float32, normalize_ct applied
    labels: np.ndarray  # uint8, 0..125
    spacing: tuple[float, float, float]  # mm, array order (z, y, x)
    lr_axis: int  # array axis running patient left-right (mirroring)
    si_axis: int  # array axis running superior-inferior (rotations are about it)

    @classmethod
    def from_images(
        cls,
        case_id: str,
        ct: sitk.Image,
        labels: sitk.Image,
        spacing_xyz: Sequence[float] | None = None,
        normalization: CTNormalization = DEFAULT_CT_NORMALIZATION,
    ) -> "TrainingCase":
        """Build from SimpleITK images (HU CT, label map on the same grid), optionally resampled
        to ``spacing_xyz`` mm (x, y, z) as the model expects."""
        if spacing_xyz is not None:
            ct = resample_to_spacing(ct, spacing_xyz, is_label=False)
            labels = resample_to_spacing(labels, spacing_xyz, is_label=True)
        lr, si = patient_axes(ct.GetDirection())
        img = normalize_ct(sitk.GetArrayViewFromImage(ct), normalization)
        lab = sitk.GetArrayFromImage(labels)
        if lab.shape != img.shape:
            raise ValueError(f"case {case_id}: label shape {lab.shape} differs from CT shape {img.shape}")
        if lab.size and (lab.min() < 0 or lab.max() >= NUM_CLASSES):
            raise ValueError(f"case {case_id}: label values outside 0..{NUM_CLASSES - 1}")
        lab = lab.astype(np.uint8, copy=False)
        sp = tuple(float(v) for v in ct.GetSpacing()[::-1])
        return cls(case_id, img, lab, sp, lr, si)  # type: ignore[arg-type]


def load_training_cases(
    folder: str,
    case_ids: Sequence[str] | None = None,
    spacing_xyz: Sequence[float] | None = None,
    normalization: CTNormalization = DEFAULT_CT_NORMALIZATION,
) -> list[TrainingCase]:
    """Read cases of a dataset folder (all by default) as :class:`TrainingCase` objects."""
    from sneakynet.dataset import load_dataset

    ds = load_dataset(folder)
    ids = list(ds.cases if case_ids is None else case_ids)
    out = []
    for case_id in ids:
        ct, labels = ds.read_case(case_id)
        out.append(TrainingCase.from_images(case_id, ct, labels, spacing_xyz, normalization))
    return out


# ----------------------------------------------------------------------------------------------
# options


@dataclass
class AugmentOptions:
    """Augmentation parameters (intensities in normalised units: 1.0 = 1500 HU by default)."""

    p_mirror: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)
    shift_range: tuple[float, float] = (-0.05, 0.05)
    noise_std_max: float = 0.03  # target level; context k gets std / 2^(1.5 k), as pooling would
    p_rotate: float = 0.0  # small rotations about the S-I axis (off by default: they cost time)
    max_rotation_deg: float = 10.0

    @classmethod
    def none(cls) -> "AugmentOptions":
        """No augmentation at all (validation, tests)."""
        return cls(p_mirror=0.0, scale_range=(1.0, 1.0), shift_range=(0.0, 0.0), noise_std_max=0.0, p_rotate=0.0)


@dataclass
class SamplerOptions:
    """What the sampler draws; stored in training configs (JSON via :meth:`to_dict`)."""

    patch_size: int = 64
    num_context: int = 1
    class_balance: float = 0.5  # probability of a class-balanced centre, else a uniform origin
    seed: int = 0
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    def __post_init__(self) -> None:
        if self.patch_size % 16:
            raise ValueError(f"patch size must be a multiple of 16 (5-level U-Net), got {self.patch_size}")
        if not 0 <= self.num_context <= 4:
            raise ValueError(f"num_context must be 0..4, got {self.num_context}")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"class_balance must be in [0, 1], got {self.class_balance}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SamplerOptions":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        data = dict(data)
        aug = data.pop("augment", {})
        try:
            augment = AugmentOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()})
            return cls(augment=augment, **data)
        except TypeError as exc:
            raise ValueError(f"sampler options: {exc}") from None


# ----------------------------------------------------------------------------------------------
# the dataset


class _PreparedCase:
    """A case ready for sampling: image/label pyramids and per-class voxel index lists."""

    def __init__(self, case: TrainingCase, s: int, k: int) -> None:
        self.case_id, self.lr_axis, self.si_axis, self.spacing = case.case_id, case.lr_axis, case.si_axis, case.spacing
        self.image = ContextPyramid(case.image, s, k, keep_padded_target=False)
        self.labels = LabelPyramid(case.labels, s, k, keep_padded_target=False)
        flat = case.labels.reshape(-1)
        counts = np.bincount(flat, minlength=NUM_CLASSES)
        order = np.argsort(flat, kind="stable")  # radix sort for uint8: O(n)
        index_type = np.int32 if flat.size < 2**31 else np.int64
        fg = order[counts[0]:].astype(index_type)
        del order
        self.classes = np.flatnonzero(counts[1:]) + 1  # bones present
        ends = np.cumsum(counts[1:])
        starts = ends - counts[1:]
        self.class_voxels = {int(c): fg[starts[c - 1] : ends[c - 1]] for c in self.classes}
        self.shape = case.labels.shape

    @property
    def nbytes(self) -> int:
        return (sum(a.nbytes for a in self.image.levels) + sum(a.nbytes for a in self.labels.levels)
                + sum(v.nbytes for v in self.class_voxels.values()))


class PatchDataset(TorchDataset):
    """Map-style torch Dataset: item ``j`` is sample ``j`` of this rank's infinite patch stream.

    ``dataset[j]`` is ``dict(image=[target, ctx_1..ctx_K] float32 tensors (1, S, S, S),
    labels=[...] int64 tensors (S, S, S), case=str, origin=int64 (3,), mirrored=bool, index=int)``,
    a pure function of ``(options.seed, rank, j)``. ``len()`` is ``samples_per_epoch`` (any ``j >= 0``
    is valid). Pyramids and class index lists are built once here, in the main process, so forked
    DataLoader workers share them.
    """

    def __init__(
        self,
        cases: Sequence[TrainingCase],
        options: SamplerOptions,
        rank: int = 0,
        world_size: int = 1,
        samples_per_epoch: int = 1000,
    ) -> None:
        if not cases:
            raise ValueError("PatchDataset needs at least one case")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in 0..{world_size - 1}")
        self.options, self.rank, self.world_size = options, rank, world_size
        self.samples_per_epoch = samples_per_epoch
        self.compact_labels = False  # True: labels stay uint8 (PatchLoader widens them after transfer)
        s, k = options.patch_size, options.num_context
        self.cases = [_PreparedCase(c, s, k) for c in cases]
        self.mirror_lut = np.asarray(load_label_table().mirror_lut(), dtype=np.uint8)

    def __len__(self) -> int:
        return self.samples_per_epoch

    @property
    def nbytes(self) -> int:
        """Memory held by the cached pyramids and index lists."""
        return sum(c.nbytes for c in self.cases)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` (seeded by seed, rank, index)."""
        return np.random.default_rng([self.options.seed, self.rank, int(index)])

    def draw_origin(self, case: _PreparedCase, rng: np.random.Generator) -> Origin:
        """Class-balanced centre with probability ``class_balance``, else a uniform aligned origin."""
        g = case.image.geometry
        if case.classes.size and rng.random() < self.options.class_balance:
            cls = int(case.classes[rng.integers(case.classes.size)])
            voxels = case.class_voxels[cls]
            flat = int(voxels[rng.integers(voxels.size)])
            return g.origin_for_centre(np.unravel_index(flat, case.shape))
        a = g.alignment
        return tuple(int(rng.integers(m // a + 1)) * a for m in g.max_origin)  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        rng = self.rng(index)
        case = self.cases[int(rng.integers(len(self.cases)))]
        origin = self.draw_origin(case, rng)
        images, labels, mirrored = self._augment(case, case.image.cut(origin), case.labels.cut(origin), rng)
        return {
            "image": images,
            "labels": labels,
            "case": case.case_id,
            "origin": torch.tensor(origin, dtype=torch.int64),
            "mirrored": mirrored,
            "index": int(index),
        }

    def _augment(self, case: _PreparedCase, images: list[np.ndarray], labels: list[np.ndarray],
                 rng: np.random.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
        """Augment per-level patches (all centred on one point); return tensors (1,S,S,S) / (S,S,S)."""
        aug = self.options.augment
        # Draw every random number in a fixed order so the stream does not depend on options taken.
        u_mirror, u_rotate, angle = rng.random(), rng.random(), rng.uniform(-1.0, 1.0) * aug.max_rotation_deg
        scale, shift = rng.uniform(*aug.scale_range), rng.uniform(*aug.shift_range)
        noise_std = rng.uniform(0.0, aug.noise_std_max) if aug.noise_std_max > 0 else 0.0
        noise_seed = int(rng.integers(2**62))
        mirrored = bool(u_mirror < aug.p_mirror)
        if mirrored:
            # All patches share one centre, so flipping each about its own centre mirrors the scene
            # about one plane, and pooled context stays the pooling of the mirrored image.
            for i in range(len(images)):
                images[i] = np.ascontiguousarray(np.flip(images[i], axis=case.lr_axis))
                labels[i] = np.take(self.mirror_lut, np.flip(labels[i], axis=case.lr_axis))
        if u_rotate < aug.p_rotate and angle:
            _rotate_levels(images, labels, angle, case.si_axis, case.spacing)
        gen = torch.Generator().manual_seed(noise_seed) if noise_std > 0 else None
        out_images, out_labels = [], []
        # Element-wise work in NumPy: small torch ops are slow when intra-op threads contend.
        for k, (im, lab) in enumerate(zip(images, labels)):
            im = np.ascontiguousarray(im, dtype=np.float32)
            if scale != 1.0 or shift != 0.0:
                im *= np.float32(scale)
                im += np.float32(shift)
            if gen is not None:
                # pooling by 2^k averages 8^k voxels: noise std falls by 2^(1.5 k)
                noise = torch.randn(im.shape, generator=gen).numpy()  # 4x faster than NumPy's normal
                noise *= np.float32(noise_std / 2.0 ** (1.5 * k))
                im += noise
            out_images.append(torch.from_numpy(im)[None])
            out_labels.append(torch.from_numpy(np.ascontiguousarray(lab) if self.compact_labels
                                               else lab.astype(np.int64)))
        return out_images, out_labels, mirrored


def _rotate_levels(images: list[np.ndarray], labels: list[np.ndarray], angle_deg: float, axis: int,
                   spacing: Sequence[float]) -> None:
    """Rotate every level about ``axis`` through the common patch centre, in millimetres.

    Linear interpolation for images, nearest for labels; corners that rotate in from outside the
    patch repeat the nearest edge value (keep angles small).
    """
    from scipy.ndimage import affine_transform

    a, b = [i for i in range(3) if i != axis]
    t = math.radians(angle_deg)
    rot = np.eye(3)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    sp = np.diag(np.asarray(spacing, dtype=float))  # every level has spacing * 2^k: same ratios
    m = np.linalg.inv(sp) @ rot @ sp
    for i in range(len(images)):
        c = (np.array(images[i].shape) - 1) / 2.0
        offset = c - m @ c
        images[i] = affine_transform(images[i], m, offset=offset, order=1, mode="nearest")
        labels[i] = affine_transform(labels[i], m, offset=offset, order=0, mode="nearest")


# ----------------------------------------------------------------------------------------------
# loader with resumable state


class _CountFrom(torch.utils.data.Sampler):
    """Infinite sequential sampler ``start, start + 1, ...``."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _collate_packed(samples: list[dict]) -> dict:
    """Stack samples into few tensors (workers send each tensor separately: fewer is faster).

    image (L, B, 1, S, S, S) float32, labels (L, B, S, S, S), meta (B, 5) int64 = origin, mirrored,
    index; L = K + 1 levels. NumPy stacking: no torch intra-op threads involved.
    """
    levels = len(samples[0]["image"])
    image = np.stack([np.stack([s["image"][k].numpy() for s in samples]) for k in range(levels)])
    labels = np.stack([np.stack([s["labels"][k].numpy() for s in samples]) for k in range(levels)])
    meta = np.array([[*s["origin"].tolist(), int(s["mirrored"]), s["index"]] for s in samples], dtype=np.int64)
    return {"image": torch.from_numpy(image), "labels": torch.from_numpy(labels), "meta": torch.from_numpy(meta),
            "case": [s["case"] for s in samples]}


def _unpack(packed: dict) -> dict:
    """The batch layout of :func:`collate_patches` from :func:`_collate_packed` (views, labels int64)."""
    meta = packed["meta"]
    labels = packed["labels"]
    if labels.dtype != torch.int64:  # NumPy, not .long(): small torch ops stall when threads compete
        labels = torch.from_numpy(labels.numpy().astype(np.int64))
    return {
        "image": list(packed["image"].unbind(0)),
        "labels": list(labels.unbind(0)),
        "case": packed["case"],
        "origin": meta[:, :3],
        "mirrored": meta[:, 3].bool(),
        "index": meta[:, 4],
    }


def collate_patches(samples: list[dict]) -> dict:
    """Batch samples of :class:`PatchDataset`: ``dict(image=[(B, 1, S, S, S) float32 per level],
    labels=[(B, S, S, S) int64 per level], case=list[str], origin=(B, 3), mirrored=(B,), index=(B,))``."""
    return _unpack(_collate_packed(samples))


def _seed_worker(worker_id: int) -> None:
    """Give every worker distinct global RNG seeds (samples themselves use their own generators)."""
    info = torch.utils.data.get_worker_info()
    base = info.seed if info is not None else worker_id
    np.random.seed(base % 2**32)


class PatchLoader:
    """Batches of a :class:`PatchDataset` through a torch DataLoader, with exact resume.

    Batch ``b`` holds samples ``b*B .. b*B + B - 1`` (after ``load_state_dict``, counting on from
    where it stopped), whatever ``num_workers``. Each batch is ``dict(image=[(B, 1, S, S, S) float32,
    ...], labels=[(B, S, S, S) int64, ...], case=list[str], origin=(B, 3), mirrored=(B,), index=(B,))``.
    Iterating is endless; stop after the iterations you need.
    """

    def __init__(self, dataset: PatchDataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False,
                 prefetch_factor: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor
        self.next_sample = 0

    def __iter__(self) -> Iterator[dict]:
        kwargs = {}
        if self.num_workers > 0:
            kwargs = {"worker_init_fn": _seed_worker, "prefetch_factor": self.prefetch_factor or 2}
        # Workers send uint8 labels (8x less inter-process traffic); they become int64 here.
        dataset = copy.copy(self.dataset)
        dataset.compact_labels = True
        loader = DataLoader(
            dataset, batch_size=self.batch_size, sampler=_CountFrom(self.next_sample),
            num_workers=self.num_workers, pin_memory=self.pin_memory, drop_last=False,
            collate_fn=_collate_packed, **kwargs,
        )
        for packed in loader:
            self.next_sample += self.batch_size
            yield _unpack(packed)

    def state_dict(self) -> dict:
        """Sampling state for checkpoints: resume with :meth:`load_state_dict`."""
        return {"seed": self.dataset.options.seed, "rank": self.dataset.rank, "batch_size": self.batch_size,
                "next_sample": self.next_sample}

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream after the last batch consumed when ``state`` was taken."""
        for key in ("seed", "rank", "batch_size"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise ValueError(f"sampler state was saved with {key}={state.get(key)!r}, this loader has {mine!r}")
        self.next_sample = int(state["next_sample"])
