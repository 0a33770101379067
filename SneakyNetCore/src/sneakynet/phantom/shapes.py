"""Shape primitives of the phantom as vectorised signed distance functions (SDFs).

Every shape lives in anatomy coordinates: millimetres, ITK LPS axes (x to patient Left,
y to Posterior, z to Superior). ``sdf(x, y, z)`` takes three float32 arrays of equal shape
and returns the (approximate) signed distance in mm: negative inside, positive outside.
The approximations are exact on the surface and good to a fraction of a millimetre within
a few mm of it, which is all the rasteriser needs (inside/outside and a cortical shell).

``bounds()`` gives an axis-aligned box (lo, hi) that contains the whole shape, so the
rasteriser can evaluate each shape only inside its box. ``mirrored()`` returns the copy
reflected through the mid-sagittal plane (x -> -x), which makes left and right bones exact
mirror images of each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
_F32 = np.float32
_EPS = 1e-6


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length one (float64)."""
    v = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError("cannot normalise a zero-length vector")
    return v / n


def rotate_towards(v: np.ndarray, target: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotate unit vector ``v`` by ``angle_rad`` in the plane of ``v`` and ``target``, towards ``target``."""
    v = unit(v)
    t = np.asarray(target, dtype=float)
    perp = t - np.dot(t, v) * v
    if np.linalg.norm(perp) < 1e-9:
        return v
    perp = unit(perp)
    return np.cos(angle_rad) * v + np.sin(angle_rad) * perp


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3x3 rotation about ``axis`` by ``angle_rad`` (right-hand rule, Rodrigues' formula)."""
    k = unit(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * (kx @ kx)


def frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal right-handed frame as matrix columns (a, b, c): c = ``primary``,
    a = ``secondary`` made orthogonal to c, b = c x a."""
    c = unit(primary)
    a = np.asarray(secondary, dtype=float)
    a = unit(a - np.dot(a, c) * c)
    b = np.cross(c, a)
    return np.stack([a, b, c], axis=1)


_MIRROR = np.array([-1.0, 1.0, 1.0])


def _mx(p: np.ndarray) -> np.ndarray:
    return np.asarray(p, dtype=float) * _MIRROR


def _local(p: Coords, center: np.ndarray, axes: np.ndarray) -> Coords:
    """Coordinates of points ``p`` in the frame whose columns are ``axes`` (origin ``center``)."""
    dx = p[0] - _F32(center[0])
    dy = p[1] - _F32(center[1])
    dz = p[2] - _F32(center[2])
    a = axes.astype(_F32)
    return (
        a[0, 0] * dx + a[1, 0] * dy + a[2, 0] * dz,
        a[0, 1] * dx + a[1, 1] * dy + a[2, 1] * dz,
        a[0, 2] * dx + a[1, 2] * dy + a[2, 2] * dz,
    )


class Shape:
    """Base class: an SDF with a bounding box and a mirror image."""

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def mirrored(self) -> "Shape":
        raise NotImplementedError

    def center(self) -> np.ndarray:
        """A point inside the shape (used to place tiny bones that fall between voxel centres)."""
        lo, hi = self.bounds()
        return (lo + hi) / 2


@dataclass(frozen=True)
class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``radii`` along the columns of ``axes`` (identity = world axes)."""

    centre: np.ndarray
    radii: np.ndarray
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def sdf(self, x, y, z):
        lx, ly, lz = _local((x, y, z), self.centre, self.axes)
        r = np.asarray(self.radii, dtype=_F32)
        # Quilez' bound: k0 (k0 - 1) / k1, exact on the surface.
        qx, qy, qz = lx / r[0], ly / r[1], lz / r[2]
        k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
        k1 = np.sqrt((qx / r[0]) ** 2 + (qy / r[1]) ** 2 + (qz / r[2]) ** 2)
        return k0 * (k0 - 1) / np.maximum(k1, _F32(_EPS))

    def bounds(self):
        half = np.sqrt(((self.axes * np.asarray(self.radii, float)[None, :]) ** 2).sum(axis=1))
        c = np.asarray(self.centre, float)
        return c - half, c + half

    def mirrored(self):
        return Ellipsoid(_mx(self.centre), np.asarray(self.radii, float), self.axes * _MIRROR[:, None])

    def center(self):
        return np.asarray(self.centre, float)


def Sphere(centre: np.ndarray, radius: float) -> Ellipsoid:  # noqa: N802 - reads like a class
    """A sphere as a round ellipsoid."""
    return Ellipsoid(np.asarray(centre, float), np.array([radius, radius, radius], float))


@dataclass(frozen=True)
class Capsule(Shape):
    """Segment a-b swept by a radius that changes linearly from ``ra`` to ``rb`` (a round cone)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float

    def sdf(self, x, y, z):
        a = np.asarray(self.a, float)
        ab = np.asarray(self.b, float) - a
        L2 = float(np.dot(ab, ab)) or _EPS
        px, py, pz = x - _F32(a[0]), y - _F32(a[1]), z - _F32(a[2])
        t = (px * _F32(ab[0]) + py * _F32(ab[1]) + pz * _F32(ab[2])) * _F32(1.0 / L2)
        np.clip(t, 0, 1, out=t)
        dx = px - t * _F32(ab[0])
        dy = py - t * _F32(ab[1])
        dz = pz - t * _F32(ab[2])
        return np.sqrt(dx * dx + dy * dy + dz * dz) - (_F32(self.ra) + t * _F32(self.rb - self.ra))

    def bounds(self):
        a, b = np.asarray(self.a, float), np.asarray(self.b, float)
        r = max(self.ra, self.rb)
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def mirrored(self):
        return Capsule(_mx(self.a), _mx(self.b), self.ra, self.rb)

    def center(self):
        return (np.asarray(self.a, float) + np.asarray(self.b, float)) / 2


def tube(points: np.ndarray, radii: np.ndarray | float) -> list[Capsule]:
    """A swept tube through ``points`` (N x 3) as N-1 capsules; ``radii`` per point or one value."""
    pts = np.asarray(points, float)
    r = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    return [Capsule(pts[i], pts[i + 1], float(r[i]), float(r[i + 1])) for i in range(len(pts) - 1)]


@dataclass(frozen=True)
class Cylinder(Shape):
    """Elliptic cylinder with rounded rims: semi-axes rx, ry across, half-height h along axes[:, 2]."""

    centre: np.ndarray
    axes: np.ndarray
    rx: float
    ry: float
    h: float
    rounding: float = 1.0

    def sdf(self, x, y, z):
        lx, ly, lz = _local((x, y, z), self.centre, self.axes)
        rr = _F32(self.rounding)
        ax, ay = _F32(max(self.rx - self.rounding, 0.5)), _F32(max(self.ry - self.rounding, 0.5))
        qx, qy = lx / ax, ly / ay
        k0 = np.sqrt(qx * qx + qy * qy)
        k1 = np.sqrt((qx / ax) ** 2 + (qy / ay) ** 2)
        d2 = k0 * (k0 - 1) / np.maximum(k1, _F32(_EPS))
        dz = np.abs(lz) - _F32(max(self.h - self.rounding, 0.5))
        outside = np.sqrt(np.maximum(d2, 0) ** 2 + np.maximum(dz, 0) ** 2)
        return outside + np.minimum(np.maximum(d2, dz), 0) - rr

    def bounds(self):
        half = (np.abs(self.axes) * np.array([self.rx, self.ry, self.h])[None, :]).sum(axis=1)
        c = np.asarray(self.centre, float)
        return c - half, c + half

    def mirrored(self):
        return Cylinder(_mx(self.centre), self.axes * _MIRROR[:, None], self.rx, self.ry, self.h, self.rounding)

    def center(self):
        return np.asarray(self.centre, float)


@dataclass(frozen=True)
class Slab(Shape):
    """Triangle a-b-c thickened to ``thickness`` with rounded edges (flat bones: scapula, ilium)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    thickness: float

    def sdf(self, x, y, z):
        A, B, C = (np.asarray(v, float) for v in (self.a, self.b, self.c))
        ba, cb, ac = B - A, C - B, A - C
        nor = np.cross(ba, ac)
        p = (x, y, z)

        def rel(q):
            return tuple(p[i] - _F32(q[i]) for i in range(3))

        def dot(u, v):  # u: constant vector, v: coords
            return _F32(u[0]) * v[0] + _F32(u[1]) * v[1] + _F32(u[2]) * v[2]

        pa, pb, pc = rel(A), rel(B), rel(C)
        inside = (
            np.sign(dot(np.cross(ba, nor), pa)) + np.sign(dot(np.cross(cb, nor), pb))
            + np.sign(dot(np.cross(ac, nor), pc))
        ) >= 2

        def edge2(e, pe):
            t = np.clip(dot(e, pe) * _F32(1.0 / np.dot(e, e)), 0, 1)
            return sum((_F32(e[i]) * t - pe[i]) ** 2 for i in range(3))

        d_edge = np.minimum(np.minimum(edge2(ba, pa), edge2(cb, pb)), edge2(ac, pc))
        d_face = dot(nor, pa) ** 2 * _F32(1.0 / np.dot(nor, nor))
        return np.sqrt(np.where(inside, d_face, d_edge)) - _F32(self.thickness / 2)

    def bounds(self):
        pts = np.stack([self.a, self.b, self.c]).astype(float)
        return pts.min(axis=0) - self.thickness / 2, pts.max(axis=0) + self.thickness / 2

    def mirrored(self):
        return Slab(_mx(self.a), _mx(self.b), _mx(self.c), self.thickness)

    def center(self):
        return (np.asarray(self.a, float) + np.asarray(self.b, float) + np.asarray(self.c, float)) / 3


@dataclass(frozen=True)
class Shell(Shape):
    """The outer ``thickness`` mm of ``inner`` (an onion layer: the skull vault, the acetabulum)."""

    inner: Shape
    thickness: float

    def sdf(self, x, y, z):
        d = self.inner.sdf(x, y, z)
        half = _F32(self.thickness / 2)
        return np.abs(d + half) - half

    def bounds(self):
        return self.inner.bounds()

    def mirrored(self):
        return Shell(self.inner.mirrored(), self.thickness)


@dataclass(frozen=True)
class Clip(Shape):
    """``inner`` cut by a plane: keeps the points with dot(p - point, normal) <= 0."""

    inner: Shape
    point: np.ndarray
    normal: np.ndarray

    def sdf(self, x, y, z):
        n = unit(self.normal)
        p0 = np.asarray(self.point, float)
        plane = (x - _F32(p0[0])) * _F32(n[0]) + (y - _F32(p0[1])) * _F32(n[1]) + (z - _F32(p0[2])) * _F32(n[2])
        return np.maximum(self.inner.sdf(x, y, z), plane)

    def bounds(self):
        return self.inner.bounds()

    def mirrored(self):
        return Clip(self.inner.mirrored(), _mx(self.point), _mx(self.normal))

    def center(self):
        return self.inner.center()


def mirror_all(shapes: list[Shape]) -> list[Shape]:
    """Mirror images (x -> -x) of ``shapes``, in the same order."""
    return [s.mirrored() for s in shapes]


def union_bounds(shapes: list[Shape]) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box around all ``shapes``."""
    los, his = zip(*(s.bounds() for s in shapes))
    return np.min(np.stack(los), axis=0), np.max(np.stack(his), axis=0)


@dataclass(frozen=True)
class Union(Shape):
    """All of ``parts`` as one shape (so that a :class:`Difference` can cut holes through all of them)."""

    parts: tuple[Shape, ...]

    def sdf(self, x, y, z):
        d = self.parts[0].sdf(x, y, z)
        for part in self.parts[1:]:
            d = np.minimum(d, part.sdf(x, y, z))
        return d

    def bounds(self):
        return union_bounds(list(self.parts))

    def mirrored(self):
        return Union(tuple(p.mirrored() for p in self.parts))

    def center(self):
        return self.parts[0].center()


@dataclass(frozen=True)
class Intersection(Shape):
    """Where all of ``parts`` overlap (a curved shell cut to an outline)."""

    parts: tuple[Shape, ...]

    def sdf(self, x, y, z):
        d = self.parts[0].sdf(x, y, z)
        for part in self.parts[1:]:
            d = np.maximum(d, part.sdf(x, y, z))
        return d

    def bounds(self):
        los, his = zip(*(p.bounds() for p in self.parts))
        lo, hi = np.max(np.stack(los), axis=0), np.min(np.stack(his), axis=0)
        return lo, np.maximum(hi, lo)

    def mirrored(self):
        return Intersection(tuple(p.mirrored() for p in self.parts))


@dataclass(frozen=True)
class Difference(Shape):
    """``inner`` with every one of ``holes`` cut out (foramina, a canal, a joint cavity)."""

    inner: Shape
    holes: tuple[Shape, ...]

    def sdf(self, x, y, z):
        d = self.inner.sdf(x, y, z)
        for hole in self.holes:
            d = np.maximum(d, -hole.sdf(x, y, z))
        return d

    def bounds(self):
        return self.inner.bounds()

    def mirrored(self):
        return Difference(self.inner.mirrored(), tuple(h.mirrored() for h in self.holes))

    def center(self):
        return self.inner.center()


def plate(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, thickness: float) -> list[Slab]:
    """The quadrilateral a-b-c-d (in order around its edge) thickened to ``thickness``: two slabs."""
    return [Slab(a, b, c, thickness), Slab(a, c, d, thickness)]
