"""Pure functions for sliding-window inference: tile grid, Gaussian weights, context levels.

Arrays are (z, y, x) voxel arrays on the model grid. Tile origins are multiples of the step
S/2 (a multiple of 16), so every context crop is exact (see :func:`context_level`).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def tile_step(patch_size: int, overlap: float) -> int:
    """Step between tile origins: S * (1 - overlap), rounded down to a multiple of 16 (at least 16)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    step = int(patch_size * (1.0 - overlap)) // 16 * 16
    return max(16, min(step, patch_size))


def padded_length(n: int, patch_size: int, step: int) -> int:
    """Smallest length >= n (and >= S) whose tiles at multiples of ``step`` end exactly at the edge."""
    if n <= patch_size:
        return patch_size
    return patch_size + math.ceil((n - patch_size) / step) * step


def tile_starts(n_padded: int, patch_size: int, step: int) -> list[int]:
    """Tile origins along one axis of a volume already padded by :func:`padded_length`."""
    return list(range(0, n_padded - patch_size + 1, step))


def gaussian_importance(patch_size: int, sigma_scale: float = 0.125) -> torch.Tensor:
    """(S, S, S) Gaussian weights, sigma = S/8 as in nnU-Net and MONAI's "gaussian" mode.

    Normalised to max 1 and clamped away from 0 so border voxels still count.
    """
    coords = torch.arange(patch_size, dtype=torch.float64) - (patch_size - 1) / 2
    g1 = torch.exp(-0.5 * (coords / (sigma_scale * patch_size)) ** 2)
    g = g1[:, None, None] * g1[None, :, None] * g1[None, None, :]
    g = g / g.max()
    return g.clamp_min(1e-3).float()


def _pool_axis_edge_padded(v: np.ndarray, axis: int, factor: int, pad: int) -> np.ndarray:
    """Average-pool one axis by ``factor`` after edge-padding it by ``pad`` on both sides.

    Exact and cheap: the pad rows are copies of the edge row, so their pooled rows are the edge
    row itself; only the real rows need averaging. ``pad`` and the axis length must be multiples
    of ``factor``.
    """
    n = v.shape[axis]
    shape = v.shape[:axis] + (n // factor, factor) + v.shape[axis + 1:]
    pooled = v.reshape(shape).mean(axis=axis + 1, dtype=np.float32)
    reps = pad // factor
    first = np.repeat(np.take(v, [0], axis=axis), reps, axis=axis)
    last = np.repeat(np.take(v, [n - 1], axis=axis), reps, axis=axis)
    return np.concatenate([first, pooled, last], axis=axis).astype(np.float32, copy=False)


def context_level(volume: np.ndarray, patch_size: int, k: int) -> np.ndarray:
    """Level k of the context pyramid: ``volume`` edge-padded by P_k = (2^k - 1) S / 2, then
    average-pooled by 2^k (kernel = stride).

    The context patch of the tile with origin ``o`` (a multiple of 2^k) is then simply
    ``level[o/2^k : o/2^k + S]`` per axis: it covers the 2^k*S cube around the tile centre.
    Pooling is separable, so the padded full-resolution volume is never built.
    """
    factor = 2**k
    pad = (factor - 1) * patch_size // 2
    if pad % factor or any(n % factor for n in volume.shape):
        raise ValueError(f"context level {k}: pad {pad} and volume shape {volume.shape} must be multiples of {factor}")
    out = volume
    for axis in range(3):
        out = _pool_axis_edge_padded(out, axis, factor, pad)
    return out


def context_slice(origin: tuple[int, int, int], patch_size: int, k: int) -> tuple[slice, slice, slice]:
    """Index of the context-k patch of the tile at ``origin`` inside :func:`context_level`'s output."""
    f = 2**k
    return tuple(slice(o // f, o // f + patch_size) for o in origin)  # type: ignore[return-value]
