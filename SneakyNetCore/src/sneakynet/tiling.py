"""Sliding-window inference: the tile grid, the tile plan (parts, rows, air filter), Gaussian weights.

Arrays are (z, y, x) voxel arrays on the model grid. Tile origins are multiples of the step
(a multiple of 16), so every tile follows the context pyramid's alignment rule
(:mod:`sneakynet.pyramid`) and its context patches are exact slices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

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


TileFilter = Callable[[int, int, int], bool]


def air_tile_filter(padded: torch.Tensor, patch_size: int, air_level: float) -> TileFilter:
    """Keep a tile unless its whole target patch is below ``air_level`` (normalised units): such a
    tile would predict background, which is what uncovered voxels get anyway."""
    block_max = torch.nn.functional.max_pool3d(padded[None, None], 16)[0, 0].cpu().numpy()
    n = patch_size // 16
    return lambda z, y, x: bool(block_max[z // 16:z // 16 + n, y // 16:y // 16 + n, x // 16:x // 16 + n].max()
                                >= air_level)


@dataclass
class TilePlan:
    """Which tiles run, in which order: the volume is cut along y into ``parts`` ``(y0, y1)`` that
    share one global tile grid; ``rows[p][i]`` are the kept tile origins of part ``p`` at the
    ``i``-th z start."""

    z_starts: list[int]
    parts: list[tuple[int, int]]
    rows: list[list[list[tuple[int, int, int]]]]

    @property
    def tiles(self) -> int:
        """Number of tiles to run (at least 1, for progress fractions)."""
        return max(1, sum(len(r) for part in self.rows for r in part))


def plan_tiles(padded_shape: Sequence[int], shape: Sequence[int], patch_size: int, step: int, row_bytes: int,
               buffer_bytes: int, keep: TileFilter | None = None) -> TilePlan:
    """The tile plan of a volume of ``shape`` padded to ``padded_shape``: split along y when the slab
    buffer (``row_bytes`` per y row) would exceed ``buffer_bytes``; ``keep`` filters tiles."""
    S = patch_size
    starts = [tile_starts(n, S, step) for n in padded_shape]
    part_rows = shape[1]
    if shape[1] * row_bytes > buffer_bytes:  # split along y; parts share the global tile grid
        part_rows = max(step, buffer_bytes // row_bytes // step * step)
    parts = [(y0, min(y0 + part_rows, shape[1])) for y0 in range(0, shape[1], part_rows)]
    keep = keep or (lambda z, y, x: True)
    rows = []
    for y0, y1 in parts:
        ys = [y for y in starts[1] if y < y1 and y + S > y0]
        rows.append([[(z, y, x) for y in ys for x in starts[2] if keep(z, y, x)] for z in starts[0]])
    return TilePlan(starts[0], parts, rows)
