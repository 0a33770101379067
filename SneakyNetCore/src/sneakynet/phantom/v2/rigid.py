"""A rigidly moved shape: how phantom v2 swings a forearm and hand about the upper arm's axis."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.phantom.shapes import Shape, rotation_matrix

_F32 = np.float32
_MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Rigid(Shape):
    """``inner`` moved by p -> ``rot`` @ p + ``shift`` (anatomy mm)."""

    inner: Shape
    rot: np.ndarray
    shift: np.ndarray

    def sdf(self, x, y, z):
        r = self.rot.astype(_F32)
        dx, dy, dz = x - _F32(self.shift[0]), y - _F32(self.shift[1]), z - _F32(self.shift[2])
        # inner coordinates = rot^T (p - shift); a rotation keeps distances, so the SDF carries over
        return self.inner.sdf(r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
                              r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
                              r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz)

    def bounds(self):
        lo, hi = self.inner.bounds()
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        moved = corners @ self.rot.T + self.shift
        return moved.min(axis=0), moved.max(axis=0)

    def mirrored(self):
        return Rigid(self.inner.mirrored(), _MIRROR @ self.rot @ _MIRROR, _MIRROR @ self.shift)

    def center(self):
        return self.rot @ self.inner.center() + self.shift

    def move_point(self, p: np.ndarray) -> np.ndarray:
        """Where this motion takes the point ``p``."""
        return self.rot @ np.asarray(p, float) + self.shift


def about_axis(shape: Shape, pivot: np.ndarray, axis: np.ndarray, angle_rad: float) -> Rigid:
    """``shape`` rotated by ``angle_rad`` about the line through ``pivot`` along ``axis``."""
    rot = rotation_matrix(axis, angle_rad)
    pivot = np.asarray(pivot, float)
    return Rigid(shape, rot, pivot - rot @ pivot)
