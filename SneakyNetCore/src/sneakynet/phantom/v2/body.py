"""Phantom v2 soft tissue: v1's body layout with CT values of a real scan and its bright non-bone.

On top of :func:`sneakynet.phantom.body.build_body` (placed from the skeleton's landmarks,
so it follows size, curvature and arm pose) v2 sets per case:

- a contrast phase (none, arterial, portal venous) that sets the HU of aorta, heart blood
  pool, lung vessels, liver, spleen and kidneys;
- subcutaneous fat of 6-40 mm; mesenteric fat filling the lower abdomen with bowel loops in
  it (fewer in fatter bodies); the psoas muscles; fat, muscle, organ and lung HU drawn from
  their CT ranges;
- bowel with gas and, in some cases, oral contrast (150-500 HU);
- calcifications along the aorta (300-900 HU) and, in some cases, metal implants (a hip
  stem, pedicle screws with rods, or sternal wires) painted over bone after rendering.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sneakynet.phantom.body import build_body
from sneakynet.phantom.model import Anatomy, Tissue, TissueHU
from sneakynet.phantom.shapes import Capsule, Ellipsoid, Shape, Sphere, unit
from sneakynet.phantom.v2.skeleton import SkeletonV2

PHASES = ("none", "arterial", "venous")
# HU ranges per tissue and contrast phase (none, arterial, portal venous)
ORGAN_HU: dict[str, tuple[tuple[float, float], ...]] = {
    "liver": ((50, 70), (60, 85), (100, 130)),
    "spleen": ((40, 55), (90, 140), (100, 130)),
    "kidneys": ((25, 40), (150, 220), (140, 200)),
    "lung_vessels": ((25, 50), (150, 350), (120, 200)),
    "heart": ((35, 50), (60, 90), (70, 100)),
    "heart_blood": ((35, 50), (250, 450), (130, 180)),
    "aorta": ((35, 50), (250, 450), (130, 180)),
    "bladder": ((0, 15),) * 3,
    "cartilage": ((90, 180),) * 3,  # costal cartilage (unlabelled), partly calcified with age
    "discs": ((70, 110),) * 3,
}
METAL_HU = 3071.0


@dataclass
class BodyV2:
    """The anatomy to draw plus what v2 paints after the v1 renderer (metal, table, marrow texture)."""

    anatomy: Anatomy
    metal: list[Shape]
    table_hu: tuple[float, float]  # (carbon shell, foam core)
    texture: np.ndarray  # marrow texture waves, rows (kx, ky, kz, phase, amplitude) in rad/mm, rad, HU
    streaks: np.ndarray  # metal streaks, rows (angle rad, amplitude HU): dark and bright lines through metal
    phase: str


def _organ_hu(anat: Anatomy, phase: int, rng: np.random.Generator) -> None:
    """Redraw every organ's HU for the contrast ``phase`` (index into PHASES)."""
    for name in ("organs_before_lungs", "organs_after_lungs"):
        tissues = getattr(anat, name)
        for k, t in enumerate(tissues):
            if t.name in ORGAN_HU:
                lo, hi = ORGAN_HU[t.name][phase]
                tissues[k] = replace(t, hu=float(rng.uniform(lo, hi)))


def _heart_blood(anat: Anatomy, phase: int, rng: np.random.Generator) -> Tissue:
    heart = next(t for t in anat.organs_after_lungs if t.name == "heart").parts[0]
    lo, hi = ORGAN_HU["heart_blood"][phase]
    pool = Ellipsoid(heart.centre, np.asarray(heart.radii) * 0.68, heart.axes)
    return Tissue("heart_blood", (pool,), float(rng.uniform(lo, hi)))


def _bowel_contrast(sk: SkeletonV2, rng: np.random.Generator) -> Tissue:
    s, lm = sk.s, sk.landmarks
    l2, crest = sk.vert("L2").centre, lm["iliac_crest_left"]
    loops = []
    for _ in range(int(rng.integers(5, 14))):
        c = np.array([rng.uniform(-85, 85) * s, l2[1] - rng.uniform(30, 100) * s,
                      rng.uniform(crest[2] - 50 * s, sk.vert("L1").centre[2])])
        loops.append(Ellipsoid(c, rng.uniform(8, 18, size=3) * s))
    return Tissue("bowel_contrast", tuple(loops), float(rng.uniform(150, 500)), "cavity")


def _abdominal_fat_and_psoas(sk: SkeletonV2, hu: TissueHU, fat_mm: float, rng: np.random.Generator
                             ) -> list[Tissue]:
    """Mesenteric fat filling the lower abdomen, bowel loops in it (fewer in fatter bodies), the psoas."""
    s, lm = sk.s, sk.landmarks
    l1, l2, hip = sk.vert("L1"), sk.vert("L2").centre, lm["hip_left"]
    z_top, z_bottom = l1.centre[2] + 30 * s, hip[2] - 30 * s
    centre = np.array([0.0, l2[1] - 70 * s, (z_top + z_bottom) / 2])
    region = Ellipsoid(centre, np.array([125 * s, 85 * s, (z_top - z_bottom) / 2]))
    loops = []
    for _ in range(int(rng.uniform(200, 280) - 3 * fat_mm)):
        c = centre + rng.uniform(-1, 1, size=3) * region.radii * np.array([0.8, 0.8, 0.9])
        loops.append(Ellipsoid(c, rng.uniform(10, 22, size=3) * s))
    top = l1.at(l1.rx + 6 * s, 2 * s, 0)
    bottom = hip + np.array([-14 * s, -14 * s, 10 * s])
    psoas = Capsule(top, bottom, 11 * s, 21 * s)
    return [Tissue("mesenteric_fat", (region,), hu.fat + float(rng.uniform(0, 15)), "cavity"),
            Tissue("bowel_loops", tuple(loops), hu.viscera + float(rng.uniform(-5, 10)), "cavity"),
            Tissue("psoas", (psoas, psoas.mirrored()), hu.muscle + float(rng.uniform(-8, 8)), "cavity")]


def _calcifications(anat: Anatomy, rng: np.random.Generator) -> Tissue | None:
    aorta = next(t for t in anat.organs_after_lungs if t.name == "aorta")
    n = int(rng.integers(0, 16))
    if n == 0:
        return None
    spots = []
    for _ in range(n):
        seg = aorta.parts[int(rng.integers(len(aorta.parts)))]
        t = rng.uniform(0, 1)
        c = seg.a + (seg.b - seg.a) * t
        d = unit(rng.normal(size=3) * np.array([1, 1, 0.2]))
        spots.append(Sphere(c + d * (seg.ra + t * (seg.rb - seg.ra)), float(rng.uniform(1.0, 3.0))))
    return Tissue("calcification", tuple(spots), float(rng.uniform(300, 900)))


def _metal(sk: SkeletonV2, rng: np.random.Generator) -> list[Shape]:
    """Implants in some cases: a hip stem, lumbar pedicle screws with rods, or sternal wires."""
    kind = rng.choice(["none", "hip", "spine", "sternum"], p=[0.82, 0.07, 0.06, 0.05])
    s, lm = sk.s, sk.landmarks
    if kind == "hip":
        side = 1.0 if rng.random() < 0.5 else -1.0
        m = np.array([side, 1.0, 1.0])
        top, d = lm["femur_shaft_top_left"] * m, lm["femur_dir_left"] * m
        return [Sphere(lm["hip_left"] * m, 21 * s), Capsule(lm["hip_left"] * m, top, 6 * s, 7 * s),
                Capsule(top, top + d * 140 * s, 7 * s, 4 * s)]
    if kind == "spine":
        first = int(rng.integers(19, 23))
        parts: list[Shape] = []
        for level in (first, first + 1):
            v = sk.vertebrae[level]
            for side in (1, -1):
                entry = v.at(side * (v.rx + 4 * s), v.ry + 22 * s, 0)
                parts.append(Capsule(entry, v.at(side * 5 * s, -0.3 * v.ry, 0), 3.0, 2.5))
        for side in (1, -1):
            a, b = (sk.vertebrae[lv].at(side * (sk.vertebrae[lv].rx + 4 * s), sk.vertebrae[lv].ry + 24 * s, 0)
                    for lv in (first, first + 1))
            parts.append(Capsule(a, b, 3.0, 3.0))
        return parts
    if kind == "sternum":
        j, x = lm["sternal_angle"], lm["xiphoid"]
        return [Capsule(j + (x - j) * t + np.array([-12 * s, 0, 0]), j + (x - j) * t + np.array([12 * s, 0, 0]),
                        0.8, 0.8) for t in np.linspace(0.1, 0.9, int(rng.integers(3, 7)))]
    return []


def build_body_v2(sk: SkeletonV2, rng: np.random.Generator) -> BodyV2:
    """Soft tissue, organs, contrast, calcifications and implants around the built skeleton ``sk``."""
    anat = build_body(sk, rng)
    fat = float(rng.uniform(6, 40)) * sk.s
    ratio = fat / anat.trunk_fat_mm
    anat.trunk_fat_mm = fat
    anat.envelope = [(shape, f * ratio) for shape, f in anat.envelope]
    anat.hu = TissueHU(skin=float(rng.uniform(10, 50)), fat=float(rng.uniform(-115, -85)),
                       muscle=float(rng.uniform(35, 65)), viscera=float(rng.uniform(20, 45)),
                       lung=float(rng.uniform(-900, -820)))
    anat.organs_before_lungs[:0] = _abdominal_fat_and_psoas(sk, anat.hu, fat, rng)
    phase = int(rng.choice(3, p=[0.35, 0.2, 0.45]))
    _organ_hu(anat, phase, rng)
    anat.organs_after_lungs.append(_heart_blood(anat, phase, rng))
    if rng.random() < 0.4:
        anat.organs_before_lungs.append(_bowel_contrast(sk, rng))
    calc = _calcifications(anat, rng)
    if calc is not None:
        anat.organs_after_lungs.append(calc)
    metal = _metal(sk, rng)
    table_hu = (float(rng.uniform(150, 500)), float(rng.uniform(-950, -800)))
    streaks = np.stack([rng.uniform(0, np.pi, 8), rng.uniform(80, 300, 8) * rng.choice([-1.0, 1.0], 8)], axis=1)
    return BodyV2(anat, metal, table_hu, _texture_waves(rng), streaks, PHASES[phase])


def _texture_waves(rng: np.random.Generator, n: int = 10) -> np.ndarray:
    """Plane waves (4-25 mm) whose sum is the marrow's uneven density, 15-40 HU standard deviation."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = direction * (2 * np.pi / rng.uniform(4, 25, size=(n, 1)))
    amp = np.full((n, 1), rng.uniform(15, 40) * np.sqrt(2 / n))
    return np.hstack([k, rng.uniform(0, 2 * np.pi, size=(n, 1)), amp])
