"""Soft tissue around the skeleton: body outline, fat and muscle layers, lungs and organs.

Everything is placed from the skeleton's landmarks, so the body follows the random skeleton
(size, spine curvature, chest shape) and the arms' pose. Organs are unlabelled (label 0);
they exist so that bones sit in a CT-like surrounding (lungs around the ribs, air in the
airway, gas in the bowel), not as segmentation targets.
"""
from __future__ import annotations

import numpy as np

from sneakynet.phantom.model import Anatomy, EllipseStack, Lungs, Tissue, TissueHU
from sneakynet.phantom.shapes import Capsule, Ellipsoid, Shape, rotation_matrix, tube
from sneakynet.phantom.skeleton import SkeletonBuilder


def _stack(rows: list[tuple[float, float, float, float]], z_lo: float, z_hi: float) -> EllipseStack:
    """EllipseStack from rows (z, half-width, front y, back y)."""
    rows = sorted(rows)
    z = np.array([r[0] for r in rows])
    a = np.array([r[1] for r in rows])
    front = np.array([r[2] for r in rows])
    back = np.array([r[3] for r in rows])
    return EllipseStack(z, a, (back - front) / 2, (back + front) / 2, z_lo, z_hi)


def build_body(sk: SkeletonBuilder, rng: np.random.Generator) -> Anatomy:
    """Soft tissue, lungs and organs for the bones of ``sk`` (which must be built).

    The helpers draw from ``rng`` in a fixed order (HU, fat, lungs, organs, discs, skin), so a
    seed always gives the same body.
    """
    hu = _tissue_hu(rng)
    fat = float(rng.uniform(3, 16))
    trunk, cavity = _trunk(sk), _cavity(sk)
    envelope = _envelope(sk, fat)
    lungs = _lungs(sk, rng)
    before = _organs_before_lungs(sk, rng)
    after = _organs_after_lungs(sk, rng)
    after.append(_discs(sk, rng))
    return Anatomy(
        bones=[], trunk=trunk, cavity=cavity, envelope=envelope, trunk_fat_mm=fat,
        skin_mm=float(rng.uniform(1.2, 2.2)), lungs=lungs, organs_before_lungs=before, organs_after_lungs=after,
        hu=hu, fov_top=float(sk.landmarks["vertex"][2]), fov_bottom=0.0, landmarks=dict(sk.landmarks),
    )


def _tissue_hu(rng: np.random.Generator) -> TissueHU:
    """Per-case HU of the soft-tissue layers (varies like real scans and scanners)."""
    return TissueHU(skin=float(rng.uniform(20, 50)), fat=float(rng.uniform(-115, -85)),
                    muscle=float(rng.uniform(40, 60)), viscera=float(rng.uniform(25, 40)),
                    lung=float(rng.uniform(-880, -820)))


def _spine_y(sk: SkeletonBuilder, z: float) -> float:
    """y of the vertebral body centres at height ``z`` (interpolated), to follow the spine's curve."""
    zs = np.array([x.centre[2] for x in sk.vertebrae])[::-1]
    ys = np.array([x.centre[1] for x in sk.vertebrae])[::-1]
    return float(np.interp(z, zs, ys))


def _waist(sk: SkeletonBuilder) -> float:
    """Half-width of the waist at L3: below the lowest ribs, never narrower than a minimum."""
    return max(sk.ribs_info[11]["A"] * 0.95, 118 * sk.s)


def _trunk(sk: SkeletonBuilder) -> EllipseStack:
    """Lean (muscle-surface) outline of the trunk from C7 to below the hips, around the rib cage and pelvis."""
    s, lm, ribs = sk.s, sk.landmarks, sk.ribs_info
    v = {x.name: x for x in sk.vertebrae}
    G, H, S1 = lm["glenoid_left"], lm["hip_left"], lm["S1_top"]
    crest, asis, it = lm["iliac_crest_left"], lm["asis_left"], lm["ischial_tuberosity_left"]
    c7, t1, t2 = v["C7"].centre, v["T1"].centre, v["T2"].centre
    rows = [
        (c7[2] + 4 * s, 55 * s, c7[1] - 48 * s, c7[1] + 52 * s),
        (t1[2], 95 * s, ribs[0]["y_ce"] - ribs[0]["B"] - 14 * s, t1[1] + 68 * s),
        (G[2] + 22 * s, G[0] + 8 * s, ribs[1]["y_ce"] - ribs[1]["B"] - 20 * s, t2[1] + 74 * s),
        (G[2] - 40 * s, G[0] - 4 * s, ribs[2]["y_ce"] - ribs[2]["B"] - 22 * s, t2[1] + 76 * s),
    ]
    for r in ribs[3:]:
        zm = r["z_head"] - 0.5 * r["drop"]
        rows.append((zm, r["A"] + 20 * s, r["y_ce"] - r["B"] - 16 * s, _spine_y(sk, zm) + 72 * s))
    l3 = v["L3"].centre
    rows += [
        (l3[2], _waist(sk) + 16 * s, l3[1] - 105 * s, l3[1] + 70 * s),
        (crest[2], crest[0] + 20 * s, asis[1] - 28 * s, S1[1] + 68 * s),
        (H[2], H[0] + 66 * s, H[1] - 72 * s, S1[1] + 84 * s),
        (H[2] - 55 * s, H[0] + 52 * s, H[1] - 58 * s, it[1] + 50 * s),
    ]
    return _stack(rows, H[2] - 62 * s, c7[2] + 4 * s)


def _cavity(sk: SkeletonBuilder) -> EllipseStack:
    """Visceral cavity: the rib cage interior above, inside the abdominal and pelvic walls below."""
    s, lm, ribs = sk.s, sk.landmarks, sk.ribs_info
    v = {x.name: x for x in sk.vertebrae}
    H, S1, crest, asis = lm["hip_left"], lm["S1_top"], lm["iliac_crest_left"], lm["asis_left"]
    cav_rows = []
    for r in ribs:
        zm = r["z_head"] - 0.5 * r["drop"]
        back = _spine_y(sk, zm) if r is ribs[-1] else r["y_ce"] + r["B"] - 2 * s
        cav_rows.append((zm, r["A"] - 2 * s, r["y_ce"] - r["B"] + 2 * s, back))
    l3 = v["L3"].centre
    cav_rows += [
        (l3[2], _waist(sk) - 12 * s, l3[1] - 90 * s, l3[1] + 8 * s),
        (crest[2], crest[0] - 22 * s, asis[1] - 10 * s, S1[1] + 6 * s),
        (H[2] - 10 * s, H[0] - 32 * s, H[1] - 50 * s, S1[1] + 20 * s),
    ]
    return _stack(cav_rows, H[2] - 40 * s, v["T1"].centre[2])


def _envelope(sk: SkeletonBuilder, fat: float) -> list[tuple[Shape, float]]:
    """(lean shape, fat mm) of the head, neck, limbs and thighs, which the trunk outline does not cover."""
    s, lm, hi = sk.s, sk.landmarks, sk.head_info
    v = {x.name: x for x in sk.vertebrae}
    fm, c7 = lm["foramen_magnum"], v["C7"].centre
    envelope: list[tuple[Shape, float]] = [
        (Ellipsoid(hi["cv"], hi["rv"] + 5 * s), 1.5),
        (Ellipsoid(np.array([0, fm[1] - 70 * s, fm[2] - 30 * s]), np.array([60, 56, 52]) * s), 2.0),
        (Capsule(np.array([0, v["C2"].centre[1] + 4 * s, v["C1"].centre[2]]),
                 np.array([0, c7[1] + 4 * s, c7[2] - 6 * s]), 50 * s, 54 * s), fat * 0.5),
    ]
    envelope += [(shape, fat * 0.6) for shape, _ in sk.envelope]
    H = lm["hip_left"]
    thigh_top = H + np.array([14 * s, 4 * s, -18 * s])
    thigh = Capsule(thigh_top, thigh_top + lm["femur_dir_left"] * 450 * s, 74 * s, 62 * s)
    envelope += [(thigh, fat * 0.8), (thigh.mirrored(), fat * 0.8)]
    return envelope


def _lungs(sk: SkeletonBuilder, rng: np.random.Generator) -> Lungs:
    """Lungs filling the rib cage down to random diaphragm domes, around the mediastinum and spine."""
    s, ribs = sk.s, sk.ribs_info
    v = {x.name: x for x in sk.vertebrae}
    cage_rows = []
    for r in ribs:
        zm = r["z_head"] - 0.45 * r["drop"]
        shrink = r["r"] + 3.5 * s
        cage_rows.append((zm, r["A"] - shrink, r["y_ce"] - r["B"] + shrink, r["y_ce"] + r["B"] - shrink))
    apex_z = ribs[0]["z_head"] + 16 * s
    cage_rows.append((apex_z, 22 * s, ribs[0]["y_ce"] - 10 * s, ribs[0]["y_ce"] + 26 * s))
    bottom_z = ribs[11]["z_head"] - ribs[11]["drop"] - 10 * s
    cage = _stack(cage_rows, bottom_z, apex_z)
    r9 = ribs[8]
    dome_r = v["T9"].centre[2] + float(rng.uniform(0, 15)) * s
    dome_l = dome_r - float(rng.uniform(5, 20)) * s
    post_dist = 0.95 * r9["B"]
    k = (dome_r - (ribs[11]["z_head"] - 15 * s)) / post_dist ** 2
    t6 = v["T6"]
    return Lungs(cage=cage, dome_z=(dome_r, dome_l), dome_x=48 * s, dome_y=r9["y_ce"] - 0.1 * r9["B"],
                 dome_curvature=float(k), mediastinum_x=4 * s,
                 mediastinum_half_width=np.full(len(cage.z), 17 * s),
                 spine_x=t6.rx + 14 * s, spine_y=t6.centre[1] - t6.ry - 4 * s)


def _organs_before_lungs(sk: SkeletonBuilder, rng: np.random.Generator) -> list[Tissue]:
    """Abdominal organs and bowel gas, confined to the cavity and drawn before the lungs."""
    s, H, crest = sk.s, sk.landmarks["hip_left"], sk.landmarks["iliac_crest_left"]
    v = {x.name: x for x in sk.vertebrae}
    t11, l1, l2 = v["T11"], v["L1"], v["L2"]
    before: list[Tissue] = [
        Tissue("liver", (Ellipsoid(np.array([-58 * s, t11.centre[1] - 55 * s, t11.centre[2] + 5 * s]),
                                   np.array([85, 70, 72]) * s),), float(rng.uniform(50, 70)), "cavity"),
        Tissue("spleen", (Ellipsoid(np.array([78 * s, t11.centre[1] - 5 * s, t11.centre[2] - 5 * s]),
                                    np.array([28, 45, 50]) * s),), float(rng.uniform(40, 55)), "cavity"),
        Tissue("kidneys", tuple(e for e in (Ellipsoid(np.array([56 * s, l1.centre[1] + 8 * s, l2.centre[2]]),
                                                      np.array([26, 22, 50]) * s),) for e in (e, e.mirrored())),
               float(rng.uniform(25, 40)), "cavity"),
        Tissue("bladder", (Ellipsoid(np.array([0, H[1] - 40 * s, H[2] - 5 * s]), np.array([40, 30, 30]) * s),),
               float(rng.uniform(0, 15)), "cavity"),
    ]
    gas = []
    for _ in range(int(rng.integers(6, 15))):
        c = np.array([rng.uniform(-80, 80) * s, l2.centre[1] - rng.uniform(25, 95) * s,
                      rng.uniform(crest[2] - 40 * s, l1.centre[2])])
        gas.append(Ellipsoid(c, rng.uniform(7, 20, size=3) * s))
    before.append(Tissue("bowel_gas", tuple(gas), float(rng.uniform(-980, -920)), "cavity"))
    return before


def _lung_vessels(sk: SkeletonBuilder, rng: np.random.Generator) -> list[Shape]:
    """Branching vessel trees from each hilum into the lung (CT-like bright structure in dark lung)."""
    s = sk.s
    t6c = sk.vert("T6").centre
    vessels: list[Shape] = []
    for side in (1.0, -1.0):
        hilum = np.array([side * 28 * s, t6c[1] - 38 * s, t6c[2] - 4 * s])
        for _ in range(int(rng.integers(5, 8))):
            d = np.array([side * rng.uniform(0.4, 1.0), rng.uniform(-0.6, 0.6), rng.uniform(-1.0, 0.8)])
            d /= np.linalg.norm(d)
            mid = hilum + d * rng.uniform(30, 50) * s
            vessels.append(Capsule(hilum, mid, 3.2 * s, 2.4 * s))
            for _ in range(2):
                d2 = d + rng.normal(0, 0.45, size=3)
                d2 /= np.linalg.norm(d2)
                vessels.append(Capsule(mid, mid + d2 * rng.uniform(30, 60) * s, 2.2 * s, 1.2 * s))
    return vessels


def _organs_after_lungs(sk: SkeletonBuilder, rng: np.random.Generator) -> list[Tissue]:
    """Vessels, mediastinum, airway, head soft tissue and cartilage, drawn over the lungs."""
    s, hi = sk.s, sk.head_info
    v = {x.name: x for x in sk.vertebrae}
    t1, t5, t8, l1, l4, c5, c2 = (v[n].centre for n in ("T1", "T5", "T8", "L1", "L4", "C5", "C2"))
    heart_axes = rotation_matrix(np.array([0.3, 1.0, 0.2]), np.radians(35))
    vessels = _lung_vessels(sk, rng)
    carina = [0, t5[1] - 30 * s, t5[2] + 8 * s]
    return [
        Tissue("lung_vessels", tuple(vessels), float(rng.uniform(20, 50)), "lung"),
        Tissue("heart", (Ellipsoid(np.array([22 * s, t8[1] - 62 * s, t8[2] + 10 * s]),
                                   np.array([62, 48, 55]) * s, heart_axes),), float(rng.uniform(35, 50))),
        Tissue("aorta", tuple(tube(np.array([
            [6 * s, t5[1] - 45 * s, t5[2] + 10 * s], [14 * s, t5[1] - 30 * s, t5[2] + 30 * s],
            [20 * s, t5[1] - 8 * s, t5[2] + 18 * s], [14 * s, t8[1] - 22 * s, t8[2]],
            [8 * s, l1[1] - 26 * s, l1[2]], [4 * s, l4[1] - 28 * s, l4[2]]]), 11 * s)),
            float(rng.uniform(35, 50))),
        Tissue("airway", tuple(tube(np.array([
            [0, c2[1] - 20 * s, c2[2] + 8 * s], [0, c5[1] - 24 * s, c5[2]],
            [0, t1[1] - 26 * s, t1[2]], carina]), 8 * s)
            + tube(np.array([carina, [26 * s, t5[1] - 28 * s, t5[2] - 10 * s]]), 6 * s)
            + tube(np.array([carina, [-24 * s, t5[1] - 28 * s, t5[2] - 6 * s]]), 6.5 * s)),
            float(rng.uniform(-990, -950))),
        Tissue("face", (Ellipsoid(hi["face_c"], hi["face_r"] - hi["face_t"] + 0.5),), float(rng.uniform(20, 45))),
        Tissue("sinus_air", (Ellipsoid(hi["face_c"] + np.array([17, 2, -4]) * s, np.array([11, 13, 15]) * s),
                             Ellipsoid(hi["face_c"] + np.array([-17, 2, -4]) * s, np.array([11, 13, 15]) * s),
                             Ellipsoid(hi["face_c"] + np.array([0, -4, 2]) * s, np.array([5, 20, 24]) * s)),
               float(rng.uniform(-960, -880))),
        Tissue("brain", (Ellipsoid(hi["cv"], hi["rv"] - hi["t"] + 0.5),), float(rng.uniform(28, 40))),
        Tissue("cartilage", tuple(sk.soft["cartilage"]), float(rng.uniform(100, 140)), "body"),
    ]


def _discs(sk: SkeletonBuilder, rng: np.random.Generator) -> Tissue:
    """Intervertebral discs between neighbouring mobile vertebrae (from C2/C3 down), inside the body."""
    s = sk.s
    v = {x.name: x for x in sk.vertebrae}
    discs = []
    names = [x.name for x in sk.vertebrae]
    for upper, lower in zip(names[1:-1], names[2:]):
        a, b = v[upper], v[lower]
        top, bot = a.at(0, 0, -a.hz), b.at(0, 0, b.hz)
        rx, ry = (a.rx + b.rx) / 2 - 0.5 * s, (a.ry + b.ry) / 2 - 0.5 * s
        half_h = max(np.linalg.norm(top - bot) / 2 + 1.0 * s, 1.0)
        discs.append(Ellipsoid((top + bot) / 2, np.array([rx, ry, half_h]), a.axes))
    return Tissue("discs", tuple(discs), float(rng.uniform(70, 100)), "body")
