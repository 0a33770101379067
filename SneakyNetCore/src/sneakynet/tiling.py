"""Pure functions for sliding-window inference: the tile grid and the Gaussian tile weights.

Arrays are (z, y, x) voxel arrays on the model grid. Tile origins are multiples of the step
(a multiple of 16), so every tile follows the context pyramid's alignment rule
(:mod:`sneakynet.pyramid`) and its context patches are exact slices.
"""
from __future__ import annotations

import math

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
