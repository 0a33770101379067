"""Phantom v2 fields of view and acquisition settings, as real CT scans have them.

Kinds of field of view (z range from the case's own landmarks, ends jittered by centimetres):
``chest`` (C7 to L1), ``abdomen_pelvis`` (T10 to below the lesser trochanters), ``neck_chest``
(skull base to T12), ``whole`` (everything, hands included: every bone in view) and ``random``
(150-700 mm starting and stopping anywhere). In-plane the scanner reconstructs a square of
side D (320-500 mm; ``whole`` takes what holds every bone) whose inscribed circle is the image:
outside it the voxels hold a padding value (-1024, -2048 or -3024) and no label, so a body
wider than D is cut. Voxel centres lie on a lattice fixed to the anatomy (multiples of the
spacing), so two fields of view of one case at one spacing share their voxels.

Spacing, when not given, is in-plane D/512 and a slice thickness of 1-5 mm; cases above
``max_voxels`` are coarsened in-plane (the sampler resamples anyway).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.phantom.grid import Grid
from sneakynet.phantom.model import Anatomy, BoneModel
from sneakynet.phantom.shapes import rotation_matrix

FOV_KINDS = ("chest", "abdomen_pelvis", "neck_chest", "whole", "random")
FOV_WEIGHTS = (0.25, 0.25, 0.15, 0.15, 0.2)
PADDING_VALUES = (-1024, -2048, -3024)
SLICE_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)


@dataclass(frozen=True)
class Scan:
    """One acquisition: field of view kind, reconstruction circle (grid frame) and image quality."""

    kind: str
    circle_centre: tuple[float, float]  # (x, y) in the grid frame (anatomy mm before the tilt)
    circle_radius: float
    padding: int
    slice_mm: float  # slice thickness (FWHM of the z blur)
    kernel_mm: float  # in-plane blur sigma
    noise_hu: float
    rotation: np.ndarray  # patient tilt; the grid axes are the scanner's
    table_y: float  # grid-frame y of the table top: under the back of the trunk in this field of view


def _z_range(kind: str, anat: Anatomy, bones: list[BoneModel], rng: np.random.Generator) -> tuple[float, float]:
    lm = anat.landmarks
    z = {k: float(v[2]) for k, v in lm.items() if np.ndim(v) == 1 and len(v) == 3}
    others = [b.bounds() for b in bones if not b.name.startswith("femur")]
    top_all = max(hi[2] for _, hi in others) + rng.uniform(5, 20)
    bottom_all = min(min(lo[2] for lo, _ in others), z["lesser_trochanter_left"] - 20) - rng.uniform(5, 20)
    if kind == "chest":
        return z["L1"] + rng.uniform(-30, 20), z["C7"] + rng.uniform(-10, 35)
    if kind == "abdomen_pelvis":
        return z["lesser_trochanter_left"] - rng.uniform(0, 60), z["T10"] + rng.uniform(-20, 35)
    if kind == "neck_chest":
        return z["T12"] + rng.uniform(-40, 40), z["foramen_magnum"] + rng.uniform(-10, 35)
    if kind == "whole":
        return bottom_all, top_all
    length = min(rng.uniform(150, 700), top_all - bottom_all)
    start = rng.uniform(bottom_all, top_all - length)
    return start, start + length


def _whole_diameter(bones: list[BoneModel], centre: np.ndarray, z0: float, z1: float) -> float:
    """Diameter of the circle about ``centre`` (x, y) that holds every bone part between z0 and z1."""
    r = 0.0
    for bone in bones:
        for part in bone.parts:
            lo, hi = part.bounds()
            if hi[2] < z0 or lo[2] > z1:
                continue
            dx = max(abs(lo[0] - centre[0]), abs(hi[0] - centre[0]))
            dy = max(abs(lo[1] - centre[1]), abs(hi[1] - centre[1]))
            r = max(r, float(np.hypot(dx, dy)))
    return 2 * r + 30.0


def _table_y(anat: Anatomy, z0: float, z1: float) -> float:
    """Most posterior point of the trunk (with its fat) between z0 and z1: where the back lies on the table."""
    t = anat.trunk
    zs = np.clip(np.linspace(z0, z1, 64), t.z_lo, t.z_hi)
    return float(np.max(np.interp(zs, t.z, t.yc) + np.interp(zs, t.z, t.b)) + anat.trunk_fat_mm)


def _spacing(given, diameter: float, length: float, slice_mm: float, max_voxels: int) -> tuple[float, float, float]:
    if given is not None:
        return tuple(float(v) for v in given)
    sp_z = slice_mm
    sp_xy = diameter / 512
    n_xy = max_voxels / max(length / sp_z, 1.0)
    sp_xy = max(sp_xy, diameter / np.sqrt(n_xy))
    return sp_xy, sp_xy, sp_z


def _tilt(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.radians(rng.uniform(-1, 1, size=3) * max_deg * np.array([0.5, 0.5, 1.0]))
    return rotation_matrix(np.array([0, 0, 1.0]), az) @ rotation_matrix(np.array([0, 1.0, 0]), ay) @ \
        rotation_matrix(np.array([1.0, 0, 0]), ax)


def lattice_grid(lo: np.ndarray, hi: np.ndarray, spacing, rotation: np.ndarray, centre: np.ndarray
                 ) -> tuple[Grid, np.ndarray]:
    """Grid over the grid-frame box [lo, hi], its first voxel on the anatomy lattice (multiples of spacing).

    The patient is tilted by ``rotation`` about ``centre``: physical = anatomy, direction = rotation.
    Returns the grid and the snapped grid-frame corner.
    """
    sp = np.asarray(spacing, float)
    lo_s = np.floor(np.asarray(lo, float) / sp) * sp
    size = tuple(int(v) for v in np.maximum(np.ceil((np.asarray(hi, float) - lo_s) / sp) + 1, 2))
    origin = centre + rotation @ (lo_s - centre)
    grid = Grid(size, tuple(float(v) for v in sp), origin, rotation.copy(), origin.copy(), rotation @ np.diag(sp))
    return grid, lo_s


def fit_scan(anat: Anatomy, rng: np.random.Generator, kind: str, spacing, slice_mm: float | None,
             kernel_mm: float | None, noise_hu: float | None, padding: int | None, max_rotation_deg: float,
             max_voxels: int) -> tuple[Grid, Scan, np.ndarray]:
    """Draw this case's field of view and acquisition; returns grid, scan and the snapped grid-frame corner."""
    z0, z1 = _z_range(kind, anat, anat.bones, rng)
    zm = (z0 + z1) / 2
    yc = float(np.interp(np.clip(zm, anat.trunk.z_lo, anat.trunk.z_hi), anat.trunk.z, anat.trunk.yc))
    cx, cy = rng.uniform(-20, 20), yc + rng.uniform(-15, 25)
    if kind == "whole":
        diameter = _whole_diameter(anat.bones, np.array([cx, cy]), z0, z1) + 4 * max_rotation_deg
    else:
        diameter = float(rng.uniform(320, 500))
    thick = float(slice_mm) if slice_mm is not None else float(rng.choice(SLICE_MM))
    if spacing is not None and slice_mm is None:
        thick = max(thick, float(spacing[2]))
    sp = _spacing(spacing, diameter, z1 - z0, thick, max_voxels)
    rot = _tilt(rng, max_rotation_deg)
    centre = np.array([cx, cy, zm])
    half = diameter / 2
    grid, corner = lattice_grid(np.array([cx - half, cy - half, z0]), np.array([cx + half, cy + half, z1]),
                             sp, rot, centre)
    kern = float(kernel_mm) if kernel_mm is not None else float(rng.uniform(0.35, 0.9))
    if noise_hu is None:
        noise_hu = float(np.clip(rng.uniform(8, 30) * np.sqrt(2.5 / thick), 5, 60))
    pad = int(padding) if padding is not None else int(rng.choice(PADDING_VALUES))
    table_y = _table_y(anat, z0, z1) + 250.0 * float(np.linalg.norm(rot - np.eye(3))) + rng.uniform(0, 5)
    scan = Scan(kind, (float(cx), float(cy)), float(half), pad, thick, kern, float(noise_hu), rot, table_y)
    return grid, scan, corner
