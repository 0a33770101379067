"""The context pyramid, one for training and inference (paper §2.1, DESIGN.md §2).

For a target patch size ``S`` and ``K`` context levels, a target patch of ``S^3`` voxels at full
resolution comes with ``K`` context patches; context ``k`` covers the ``(2^k S)^3`` cube with the
same centre, average-pooled by ``2^k`` (kernel = stride), so it is again ``S^3``.

How the pooling is made exact and cheap:

* ``levels[0]`` is the volume, edge-padded on the high side only so that the last target patch
  (origin ``max_origin``) fits: it covers voxels ``0 .. max_origin + S``;
* ``levels[k]`` covers ``-P_k .. max_origin + S + P_k`` with ``P_k = (2^k - 1) S / 2``: it is
  ``levels[k-1]`` edge-padded by ``S/2`` per side and average-pooled by 2. Pooling a pair of
  edge copies gives the edge itself, and halving is exact in float32, so this equals average
  pooling of the edge-padded full-resolution volume by ``2^k`` in pairwise order;
* **alignment rule**: target origins (array order z, y, x) are multiples of ``2^K`` between 0 and
  ``max_origin``. The context-k patch of origin ``o`` is then the plain slice
  ``levels[k][o/2^k : o/2^k + S]``.

Labels (:class:`LabelPyramid`) are padded with 0 = background, not edge values: the padding is not
anatomy. Context labels use the **block-centre (nearest) rule**: the label of context voxel ``b`` at
level ``k`` is the label at full-resolution voxel ``-P_k + b 2^k + 2^(k-1)`` per axis.

The sampler cuts training patches from these pyramids and the predictor cuts its tiles from them
(tile origins are multiples of 16, so they follow the alignment rule for K <= 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Origin = tuple[int, int, int]


@dataclass(frozen=True)
class PyramidGeometry:
    """Valid target origins and level extents for one volume shape (voxels, array order z, y, x)."""

    shape: Origin  # volume shape
    patch_size: int  # S
    num_context: int  # K
    max_origin: Origin  # largest valid target origin per axis (a multiple of alignment)

    @property
    def alignment(self) -> int:
        """Target origins must be multiples of this (2^K)."""
        return 2 ** self.num_context

    def level_pad(self, k: int) -> int:
        """``P_k = (2^k - 1) S / 2``: how far level k reaches beyond the target extent per side."""
        return (2 ** k - 1) * self.patch_size // 2

    @property
    def target_shape(self) -> Origin:
        """Extent of ``levels[0]``: the volume plus the overhang of the last target patch."""
        return tuple(m + self.patch_size for m in self.max_origin)  # type: ignore[return-value]

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

    def slices(self, origin: Sequence[int]) -> list[tuple[slice, slice, slice]]:
        """Index slices into ``levels[k]`` for the target (k = 0) and context patches of ``origin``."""
        o, s = self.check_origin(origin), self.patch_size
        return [tuple(slice(v // 2 ** k, v // 2 ** k + s) for v in o)  # type: ignore[misc]
                for k in range(self.num_context + 1)]


def pyramid_geometry(shape: Sequence[int], patch_size: int, num_context: int) -> PyramidGeometry:
    """The geometry of a volume of ``shape`` (z, y, x).

    ``max_origin = ceil(max(n - S, 0) / 2^K) * 2^K``, so the last target patch reaches the last voxel
    row (it may overhang by fewer than 2^K voxels, or by ``S - n`` for a volume thinner than ``S``).
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"volume shape must be 3 positive sizes (z, y, x), got {tuple(shape)}")
    if patch_size < 2 or patch_size % 2:
        raise ValueError(f"patch size must be a positive even number, got {patch_size}")
    if num_context < 0:
        raise ValueError(f"number of context levels must be >= 0, got {num_context}")
    a = 2 ** num_context
    max_origin = tuple(-(-max(int(n) - patch_size, 0) // a) * a for n in shape)
    return PyramidGeometry(tuple(int(n) for n in shape), patch_size, num_context, max_origin)  # type: ignore[arg-type]


def pool2(a: np.ndarray) -> np.ndarray:
    """Exact 2x2x2 average pooling (kernel = stride = 2) of an array with even sizes, float32."""
    a = a[0::2] + a[1::2]
    a = a[:, 0::2] + a[:, 1::2]
    a = a[:, :, 0::2] + a[:, :, 1::2]
    a *= np.float32(0.125)
    return a


def pool2_edge_padded(volume: np.ndarray, pad: Sequence[tuple[int, int]]) -> np.ndarray:
    """``pool2(np.pad(volume, pad, mode="edge"))`` without building the padded volume.

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
        pairs = [slice(None)] * axis
        a = out[tuple(pairs + [slice(0, n + ext, 2)])] + out[tuple(pairs + [slice(1, n + ext, 2)])]  # views: no copies
        a *= np.float32(0.5)
        out = np.concatenate(
            [np.repeat(first, lo // 2, axis=axis), a, np.repeat(last, (hi - ext) // 2, axis=axis)], axis=axis
        )
    return out


def _pad_high(volume: np.ndarray, target_shape: Sequence[int], mode: str) -> np.ndarray:
    """``volume`` padded on the high side to ``target_shape`` (no copy when it already has it)."""
    over = [(0, t - n) for t, n in zip(target_shape, volume.shape)]
    if not any(hi for _, hi in over):
        return volume
    return np.pad(volume, over, mode=mode)  # type: ignore[call-overload]


class _Pyramid:
    """Shared cutting logic: ``levels[k]`` holds level k (see the module docstring)."""

    geometry: PyramidGeometry
    levels: list[np.ndarray]

    @property
    def shape(self) -> Origin:
        """Volume shape (z, y, x)."""
        return self.geometry.shape

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.levels)

    def slices(self, origin: Sequence[int]) -> list[tuple[slice, slice, slice]]:
        """Index slices into ``levels[k]`` for the target (k = 0) and context patches of ``origin``."""
        return self.geometry.slices(origin)

    def cut(self, origin: Sequence[int]) -> list[np.ndarray]:
        """``[target, context_1, ..., context_K]``, each a new ``(S, S, S)`` array.

        The target covers voxels ``origin .. origin + S`` (z, y, x); context k covers the ``2^k S``
        cube with the same centre at ``2^k`` coarser resolution. ``origin`` must follow the
        alignment rule (multiples of 2^K within ``0..max_origin``), else ValueError.
        """
        return [np.array(self.levels[k][sl]) for k, sl in enumerate(self.slices(origin))]


class ContextPyramid(_Pyramid):
    """Edge-padded, average-pooled pyramid of one (z, y, x) volume, built once, cut for every patch
    or tile. ``levels[k]`` is float32; a float32 volume that needs no high-side pad is kept as
    ``levels[0]`` without a copy (the predictor's padded input)."""

    def __init__(self, volume: np.ndarray, patch_size: int, num_context: int) -> None:
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise ValueError(f"ContextPyramid needs a 3-D (z, y, x) volume, got shape {volume.shape}")
        self.geometry = g = pyramid_geometry(volume.shape, patch_size, num_context)
        levels = [_pad_high(volume.astype(np.float32, copy=False), g.target_shape, "edge")]
        half = patch_size // 2
        for _ in range(num_context):
            if half % 2 == 0:
                levels.append(pool2_edge_padded(levels[-1], [(half, half)] * 3))
            else:  # odd half patch (S not a multiple of 4): pool the padded level directly
                levels.append(pool2(np.pad(levels[-1], half, mode="edge")))
        self.levels = levels


class LabelPyramid(_Pyramid):
    """Zero-padded label map with block-centre (nearest) context labels; same geometry and ``cut``."""

    def __init__(self, labels: np.ndarray, patch_size: int, num_context: int) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 3:
            raise ValueError(f"LabelPyramid needs a 3-D (z, y, x) label map, got shape {labels.shape}")
        if labels.dtype != np.uint8:
            if labels.size and (labels.min() < 0 or labels.max() > 255):
                raise ValueError("LabelPyramid: label values must be in 0..255")
            labels = labels.astype(np.uint8)
        self.geometry = g = pyramid_geometry(labels.shape, patch_size, num_context)
        levels = [_pad_high(labels, g.target_shape, "constant")]
        levels += [_nearest_level(labels, g, k) for k in range(1, num_context + 1)]
        self.levels = levels


def _nearest_level(labels: np.ndarray, geometry: PyramidGeometry, k: int) -> np.ndarray:
    """Block-centre labels of level k, 0 outside the volume, built without a padded map."""
    f, pad = 2 ** k, geometry.level_pad(k)
    shape = [(t + 2 * pad) // f for t in geometry.target_shape]
    out = np.zeros(shape, dtype=np.uint8)
    dst, src = [], []
    for axis, n in enumerate(labels.shape):
        q = np.arange(shape[axis]) * f + f // 2 - pad  # volume coordinate of each block centre
        valid = np.flatnonzero((q >= 0) & (q < n))
        dst.append(slice(int(valid[0]), int(valid[-1]) + 1))
        src.append(slice(int(q[valid[0]]), int(q[valid[-1]]) + 1, f))
    out[tuple(dst)] = labels[tuple(src)]
    return out


__all__ = ["ContextPyramid", "LabelPyramid", "Origin", "PyramidGeometry", "pool2", "pool2_edge_padded",
           "pyramid_geometry"]
