"""The voxel grid of a phantom case and the map from voxel indices to anatomy coordinates.

Arrays are indexed ``[k, j, i]`` (numpy/SimpleITK order), voxel (i, j, k) has its centre at
the LPS point ``origin + direction @ (spacing * (i, j, k))``, as in ITK.

Anatomy coordinates are the LPS millimetres in which the skeleton is built (patient upright,
facing -y). The small random patient rotation ``R`` goes either into the image direction
(``direction = R``: the anatomy is axis-aligned in physical space, the voxel axes are tilted)
or into the anatomy (``direction = I``: physical = anatomy rotated by ``R`` about the FOV
centre). In both cases anatomy(i, j, k) = ``anat_origin + anat_matrix @ (i, j, k)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.phantom.shapes import Coords

_F32 = np.float32


def checked_spacing(spacing) -> tuple[float, float, float]:
    """A phantom's voxel size as three floats in 0.25..12 mm (x, y, z); ValueError otherwise."""
    sp = tuple(float(v) for v in spacing)
    if len(sp) != 3 or not all(0.25 <= v <= 12 for v in sp):
        raise ValueError(f"phantom spacing must be three values in 0.25..12 mm, got {spacing!r}")
    return sp  # type: ignore[return-value]


@dataclass(frozen=True)
class Grid:
    """Image geometry (ITK order: size and spacing as (x, y, z)) plus the index -> anatomy map."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: np.ndarray  # LPS mm
    direction: np.ndarray  # 3x3, columns = directions of i, j, k in LPS
    anat_origin: np.ndarray
    anat_matrix: np.ndarray  # 3x3, anatomy mm per index step

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy array shape (nz, ny, nx)."""
        return self.size[2], self.size[1], self.size[0]

    @staticmethod
    def around(centre: np.ndarray, extent_mm: np.ndarray, spacing: tuple[float, float, float],
               rotation: np.ndarray, rotate_anatomy: bool) -> "Grid":
        """Grid of ``extent_mm`` (along its own axes) centred on anatomy point ``centre``.

        ``rotation`` is the patient rotation (see module docstring for where it goes).
        """
        sp = np.asarray(spacing, float)
        size = tuple(int(max(2, np.ceil(e / s))) for e, s in zip(extent_mm, sp))
        half = (np.asarray(size, float) - 1) / 2 * sp
        centre = np.asarray(centre, float)
        if rotate_anatomy:
            direction = np.eye(3)
            origin = centre - half
            # physical p = origin + S idx; anatomy a = R^T (p - centre) + centre
            anat_matrix = rotation.T @ np.diag(sp)
            anat_origin = rotation.T @ (origin - centre) + centre
        else:
            direction = rotation.copy()
            origin = centre - rotation @ half
            anat_matrix = rotation @ np.diag(sp)
            anat_origin = origin.copy()
        return Grid(size, tuple(float(s) for s in sp), origin, direction, anat_origin, anat_matrix)

    def index_box(self, lo: np.ndarray, hi: np.ndarray, pad_mm: float = 0.0
                  ) -> tuple[slice, slice, slice] | None:
        """Array slices (k, j, i) of all voxels whose centres may lie in the anatomy box [lo, hi]."""
        lo = np.asarray(lo, float) - pad_mm
        hi = np.asarray(hi, float) + pad_mm
        corners = np.array([[lo[0] if a else hi[0], lo[1] if b else hi[1], lo[2] if c else hi[2]]
                            for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        inv = np.linalg.inv(self.anat_matrix)
        idx = (corners - self.anat_origin) @ inv.T
        start = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
        stop = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.asarray(self.size))
        if np.any(stop <= start):
            return None
        return slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0])

    def coords(self, sl: tuple[slice, slice, slice]) -> Coords:
        """Anatomy coordinates (x, y, z), float32 arrays of the sub-grid shape, of the voxels in ``sl``."""
        k = np.arange(sl[0].start, sl[0].stop, dtype=np.float64)
        j = np.arange(sl[1].start, sl[1].stop, dtype=np.float64)
        i = np.arange(sl[2].start, sl[2].stop, dtype=np.float64)
        m, o = self.anat_matrix, self.anat_origin
        out = []
        for r in range(3):
            ci = (o[r] + m[r, 0] * i).astype(_F32)[None, None, :]
            cj = (m[r, 1] * j).astype(_F32)[None, :, None]
            ck = (m[r, 2] * k).astype(_F32)[:, None, None]
            out.append(ck + cj + ci)
        return out[0], out[1], out[2]

    def nearest_index(self, point: np.ndarray) -> tuple[int, int, int] | None:
        """Array index (k, j, i) of the voxel whose centre is nearest the anatomy ``point``; None if outside."""
        idx = np.linalg.solve(self.anat_matrix, np.asarray(point, float) - self.anat_origin)
        ijk = np.rint(idx).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.asarray(self.size)):
            return None
        return int(ijk[2]), int(ijk[1]), int(ijk[0])
