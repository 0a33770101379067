"""What a phantom is made of, independent of any voxel grid.

An :class:`Anatomy` lists the bones (with their label names, shapes and intensities, in
drawing order: later bones win where shapes touch), the soft-tissue envelope (a trunk of
z-dependent ellipses plus head, neck and limb shapes), the lungs and the unlabelled soft
structures (organs, cartilage, discs, air spaces). All coordinates are anatomy LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sneakynet.phantom.shapes import Shape, union_bounds

_F32 = np.float32


@dataclass(frozen=True)
class BoneModel:
    """One labelled bone: union of ``parts``; the outer ``cortex_mm`` is cortical bone."""

    name: str
    parts: tuple[Shape, ...]
    cortex_mm: float
    hu_cortex: float
    hu_core: float
    anchor: np.ndarray  # a point inside the bone; its voxel is kept if the bone misses every voxel centre

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return union_bounds(list(self.parts))

    def mirrored(self, name: str) -> "BoneModel":
        """The mirror twin (x -> -x) with the same shape and intensities, named ``name``."""
        return BoneModel(name, tuple(p.mirrored() for p in self.parts), self.cortex_mm,
                         self.hu_cortex, self.hu_core, self.anchor * np.array([-1.0, 1.0, 1.0]))


@dataclass(frozen=True)
class Tissue:
    """An unlabelled structure of constant HU: union of ``parts``.

    ``within`` restricts it to the visceral cavity ("cavity"), the body ("body"), the lungs drawn
    so far ("lung") or nothing ("").
    """

    name: str
    parts: tuple[Shape, ...]
    hu: float
    within: str = ""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return union_bounds(list(self.parts))


@dataclass(frozen=True)
class EllipseStack:
    """Axial ellipses tabulated along z: half-width ``a`` (x), half-depth ``b`` (y), centre (xc, yc).

    Between ``z_lo`` and ``z_hi`` the cross-section at height z is the ellipse interpolated
    linearly from the table; outside that range the stack is empty.
    """

    z: np.ndarray  # ascending
    a: np.ndarray
    b: np.ndarray
    yc: np.ndarray
    z_lo: float
    z_hi: float
    xc: float = 0.0

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Approximate signed distance (mm) to the stack grown outward by ``grow`` mm."""
        a = np.interp(z, self.z, self.a).astype(_F32) + _F32(grow)
        b = np.interp(z, self.z, self.b).astype(_F32) + _F32(grow)
        np.maximum(a, 1.0, out=a)
        np.maximum(b, 1.0, out=b)
        yc = np.interp(z, self.z, self.yc).astype(_F32)
        qx = (x - _F32(self.xc)) / a
        qy = (y - yc) / b
        k0 = np.sqrt(qx * qx + qy * qy)
        k1 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2)
        d = k0 * (k0 - 1) / np.maximum(k1, _F32(1e-6))
        d = np.maximum(d, _F32(self.z_lo - grow) - z)
        return np.maximum(d, z - _F32(self.z_hi + grow))

    def bounds(self, grow: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        sel = (self.z >= self.z_lo - 1e-6) & (self.z <= self.z_hi + 1e-6)
        zz = np.concatenate([[self.z_lo, self.z_hi], self.z[sel]])
        a = np.interp(zz, self.z, self.a) + grow
        b = np.interp(zz, self.z, self.b) + grow
        yc = np.interp(zz, self.z, self.yc)
        lo = np.array([self.xc - a.max(), (yc - b).min(), self.z_lo - grow])
        hi = np.array([self.xc + a.max(), (yc + b).max(), self.z_hi + grow])
        return lo, hi

    def outline_points(self, z_values: np.ndarray, grow: float = 0.0, n: int = 32) -> np.ndarray:
        """Points on the ellipses at ``z_values`` (for fitting the field of view), shape (M, 3)."""
        zz = np.asarray(z_values, float)
        zz = zz[(zz >= self.z_lo) & (zz <= self.z_hi)]
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        a = np.interp(zz, self.z, self.a)[:, None] + grow
        b = np.interp(zz, self.z, self.b)[:, None] + grow
        yc = np.interp(zz, self.z, self.yc)[:, None]
        zc = np.broadcast_to(zz[:, None], (len(zz), n))
        pts = np.stack([self.xc + a * np.cos(t), yc + b * np.sin(t), zc], axis=-1)
        return pts.reshape(-1, 3)


@dataclass(frozen=True)
class Lungs:
    """Both lungs: inside ``cage`` (the inner rib-cage surface), above the diaphragm domes,
    outside the mediastinum ``|x - mediastinum_x| < mediastinum_half_width``."""

    cage: EllipseStack
    dome_z: tuple[float, float]  # (right dome at -x, left dome at +x) apex heights
    dome_x: float  # |x| of the dome apices
    dome_y: float
    dome_curvature: float  # mm of descent per mm^2 of horizontal distance from the apex
    mediastinum_x: float
    mediastinum_half_width: np.ndarray  # tabulated on cage.z
    spine_x: float  # |x| of the paravertebral boundary
    spine_y: float  # lungs stay anterior of this y near the midline

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inside = self.cage.sdf(x, y, z) < 0
        side_z = np.where(x < 0, _F32(self.dome_z[0]), _F32(self.dome_z[1]))
        dx = np.abs(x) - _F32(self.dome_x)
        dy = y - _F32(self.dome_y)
        inside &= z > side_z - _F32(self.dome_curvature) * (dx * dx + dy * dy)
        half = np.interp(z, self.cage.z, self.mediastinum_half_width).astype(_F32)
        inside &= np.abs(x - _F32(self.mediastinum_x)) > half
        inside &= ~((np.abs(x) < _F32(self.spine_x)) & (y > _F32(self.spine_y)))
        return inside

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cage.bounds()


@dataclass(frozen=True)
class TissueHU:
    """Soft-tissue intensities (HU) of one case."""

    air: float = -1000.0
    skin: float = 40.0
    fat: float = -100.0
    muscle: float = 50.0
    viscera: float = 30.0
    lung: float = -850.0


@dataclass
class Anatomy:
    """Everything needed to draw one case on any grid (anatomy LPS mm)."""

    bones: list[BoneModel]
    trunk: EllipseStack  # lean (muscle) envelope of the trunk
    cavity: EllipseStack  # visceral cavity inside the trunk wall
    envelope: list[tuple[Shape, float]]  # (lean shape, fat thickness mm) of head, neck, limbs
    trunk_fat_mm: float
    skin_mm: float
    lungs: Lungs
    organs_before_lungs: list[Tissue]
    organs_after_lungs: list[Tissue]
    hu: TissueHU
    fov_top: float  # highest anatomy z that must be inside (vertex)
    fov_bottom: float  # lowest anatomy z that must be inside (fingertips, lesser trochanters)
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
