"""Placement and shape of all 125 bones of the label table.

Dimensions are written as adult values in mm (from standard anatomy texts, rounded) and
multiplied by the case's body scale ``s`` (about 0.6-0.7: the whole upper body from the
vertex to the hands and proximal femurs then fits a ~640 mm field of view). Hand bones use
their own scale and a minimum radius so that every carpal, phalanx and the sesamoid still
covers a few voxels at 2 mm spacing.

Only the left side (x > 0, ITK LPS: +x is the patient's Left) is built; the right side is
its exact mirror image (x -> -x), so paired bones look alike, as do neighbouring ribs and
vertebrae, whose dimensions change smoothly with the level. Per-side pose (arm, hand,
fingers) varies by a few degrees, so the two sides are similar but not pixel-identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.phantom.model import BoneModel
from sneakynet.phantom.shapes import (
    Capsule,
    Clip,
    Cylinder,
    Ellipsoid,
    Shape,
    Shell,
    Slab,
    Sphere,
    frame,
    rotate_towards,
    tube,
    unit,
)

X, Y, Z = np.eye(3)
MOBILE_VERTEBRAE = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
HAND_MIN_RADIUS_MM = 2.4  # keeps every hand bone >= ~2.4 voxels across at 2 mm
MIN_RADIUS_MM = 2.0  # thinnest process / rib / hyoid radius anywhere
FINGERS = (1, 2, 3, 4, 5)


def catmull_rom(points: np.ndarray, per_segment: int = 4) -> np.ndarray:
    """Smooth curve through ``points`` (N x 3), ``per_segment`` samples per interval."""
    p = np.asarray(points, float)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        for t in np.linspace(0, 1, per_segment, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-1])
    return np.array(out)


def _table(level: float, anchors: dict[int, float]) -> float:
    """Piecewise-linear interpolation of a per-level dimension (level 0 = C1 ... 23 = L5)."""
    keys = sorted(anchors)
    return float(np.interp(level, keys, [anchors[k] for k in keys]))


@dataclass(frozen=True)
class Vertebra:
    """Placement of one mobile vertebra: centre of the body and its frame (lateral, posterior, up)."""

    name: str
    level: int
    centre: np.ndarray
    axes: np.ndarray  # columns: lateral (+x), posterior (+y), up (cranial)
    rx: float
    ry: float
    hz: float  # half-height of the body
    height: float  # body + disc

    def at(self, lateral: float, posterior: float, up: float) -> np.ndarray:
        return self.centre + self.axes @ np.array([lateral, posterior, up], float)


@dataclass(frozen=True)
class ArmPose:
    """Pose of one arm in degrees (left side; the right side is mirrored)."""

    abduction: float
    flexion: float  # shoulder: arm forward (+) or back (-)
    elbow: float
    pronation: float
    wrist: float  # palmar flexion (+)
    fingers: tuple[tuple[float, float, float], ...]  # (MCP, PIP, DIP) per finger 1..5
    spread: float  # finger fan, degrees between rays


@dataclass(frozen=True)
class ArmFrame:
    """Joint centres and axes of one (left) arm, from which its bones and soft tissue are placed."""

    head: np.ndarray  # humeral head centre
    elbow: np.ndarray
    wrist: np.ndarray
    dh: np.ndarray  # along the upper arm (shoulder -> elbow)
    lat: np.ndarray  # lateral, perpendicular to dh
    ant: np.ndarray  # anterior, perpendicular to dh
    df: np.ndarray  # along the forearm (elbow -> wrist)
    ant_f: np.ndarray  # anterior of the forearm
    u: np.ndarray  # hand frame: along the hand
    v: np.ndarray  # to the thumb side
    w: np.ndarray  # palmar


class SkeletonBuilder:
    """Builds the bones of one case from a seeded generator; see module docstring."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.s = float(0.62 * rng.uniform(0.93, 1.07))  # body scale: phantom mm per adult mm
        self.hs = float(0.68 * rng.uniform(0.95, 1.05))  # hand scale (relatively large hands)
        self.chest_w = float(rng.uniform(0.93, 1.08))
        self.chest_d = float(rng.uniform(0.92, 1.08))
        self.shoulder_w = float(rng.uniform(0.95, 1.06))
        self.pelvis_w = float(rng.uniform(0.94, 1.07))
        # intensities: one cortical and one cancellous level per case, family factors below
        self.hu_cortex = float(rng.uniform(1150, 1400))
        self.hu_core = float(rng.uniform(300, 420))
        self.bones: dict[str, BoneModel] = {}
        self.landmarks: dict[str, np.ndarray] = {}
        self.soft: dict[str, list[Shape]] = {}  # unlabelled structures built alongside the bones
        self.envelope: list[tuple[Shape, str]] = []  # (lean shape, region) for the body outline

    # ------------------------------------------------------------------ helpers
    def a(self, v: float) -> float:
        """Adult mm -> phantom mm."""
        return v * self.s

    def add(self, name: str, parts: list[Shape], cortex_adult: float, family: float = 1.0,
            anchor: np.ndarray | None = None, mirror: bool = False, min_cortex: float = 1.4) -> None:
        cortex = max(self.a(cortex_adult), min_cortex)
        bone = BoneModel(name, tuple(parts), cortex, self.hu_cortex * family, self.hu_core * family,
                         np.asarray(anchor if anchor is not None else parts[0].center(), float))
        self.bones[name] = bone
        if mirror:
            right = name.replace("_left", "_right")
            self.bones[right] = bone.mirrored(right)

    # ------------------------------------------------------------------ spine
    def build_spine(self) -> None:
        rng, s = self.rng, self.s
        heights = np.array([12, 28, 15, 15, 15.5, 16, 17]
                           + [19, 20, 21, 22, 23, 23.5, 24, 25, 26, 27, 28, 29]
                           + [33, 34, 35, 35, 34], float)
        region = np.r_[np.full(7, rng.uniform(0.95, 1.05)), np.full(12, rng.uniform(0.96, 1.04)),
                       np.full(5, rng.uniform(0.95, 1.05))]
        heights = heights * region * s
        z = np.zeros(24)
        for i in range(1, 24):
            z[i] = z[i - 1] - (heights[i - 1] + heights[i]) / 2
        kc, kt, kl = rng.uniform(0.6, 1.4, size=3)
        ctrl_lv = [0, 3, 6, 9, 13, 17, 19, 21, 23]
        ctrl_y = np.array([2, -6 * kc, 0, 12 * kt, 20 * kt, 12 * kt, 0, -10 * kl, -4 * kl]) * s
        y = np.interp(np.arange(24), ctrl_lv, ctrl_y)
        y = np.convolve(np.r_[y[0], y, y[-1]], [0.25, 0.5, 0.25], mode="valid")  # smooth the kinks
        centres = np.stack([np.zeros(24), y, z], axis=1)
        self.vertebrae: list[Vertebra] = []
        for i, name in enumerate(MOBILE_VERTEBRAE):
            lo, hi = max(i - 1, 0), min(i + 1, 23)
            up = unit(centres[lo] - centres[hi])
            axes = np.stack([X, np.cross(up, X), up], axis=1)
            rx = _table(i, {1: 8.5, 2: 8, 6: 11, 7: 13, 12: 14.5, 18: 20, 19: 21, 23: 25}) * s
            ry = _table(i, {1: 8, 2: 7.5, 6: 8, 7: 9, 12: 13, 18: 15.5, 19: 16, 23: 17}) * s
            hz = _table(i, {1: 9, 2: 6, 6: 7, 7: 8, 12: 9.5, 18: 12, 19: 12.5, 23: 12.5}) * s
            self.vertebrae.append(Vertebra(name, i, centres[i], axes, rx, ry, hz, heights[i]))
        for v in self.vertebrae:
            self.landmarks[v.name] = v.centre
            self._vertebra(v)
        self._sacrum_coccyx()

    def vert(self, name: str) -> Vertebra:
        return self.vertebrae[MOBILE_VERTEBRAE.index(name)]

    def _vertebra(self, v: Vertebra) -> None:
        s, i = self.s, v.level
        r = lambda adult: max(adult * s, MIN_RADIUS_MM)  # noqa: E731
        cw = _table(i, {2: 12, 6: 12, 7: 10, 12: 8.5, 18: 9, 19: 10.5, 23: 12}) * s  # canal half-width
        cd = _table(i, {2: 11, 6: 11, 7: 12, 18: 12, 19: 14, 23: 14}) * s  # canal depth (AP)
        pr = r(_table(i, {2: 2.6, 6: 2.8, 7: 3.2, 18: 4.0, 19: 4.5, 23: 5}))
        lr = r(_table(i, {2: 2.6, 6: 2.8, 7: 3.2, 18: 3.8, 19: 4.3, 23: 4.8}))
        ar = r(_table(i, {2: 3.2, 6: 3.4, 7: 3.0, 18: 3.4, 19: 4.0, 23: 4.5}))
        sl = _table(i, {1: 20, 2: 12, 5: 18, 6: 28, 7: 32, 12: 38, 18: 28, 19: 30, 23: 25}) * s
        sa = np.radians(_table(i, {1: 15, 5: 15, 6: 10, 7: 25, 12: 60, 15: 50, 18: 20, 19: 8, 23: 5}))
        sr = r(_table(i, {1: 3.5, 2: 2.6, 6: 3.5, 7: 3.5, 18: 4.0, 19: 4.5, 23: 4.5}))
        tl = _table(i, {1: 10, 2: 11, 6: 13, 7: 28, 12: 25, 18: 12, 19: 22, 21: 30, 23: 26}) * s
        ta = np.radians(_table(i, {2: -25, 6: -20, 7: 20, 12: 35, 18: 40, 19: 5, 23: 0}))  # + = backwards
        tr = r(_table(i, {2: 2.6, 6: 2.8, 7: 4.2, 18: 4.0, 19: 3.6, 23: 4.0}))
        parts: list[Shape] = []
        if v.name == "C1":
            self._atlas(v)
            return
        parts.append(Cylinder(v.centre, v.axes, v.rx, v.ry, v.hz, rounding=max(1.5 * s, 1.0)))
        if v.name == "C2":  # the dens rises into the ring of C1
            parts.append(Capsule(v.at(0, -0.5 * s, v.hz), v.at(0, -1 * s, v.hz + 17 * s), 5 * s, 4.2 * s))
        left: list[Shape] = []
        ped_a = v.at(0.55 * v.rx, 0.55 * v.ry, 0.1 * v.hz)
        junction = v.at(cw + pr * 0.6, v.ry + cd * 0.5, 0)
        left.append(Capsule(ped_a, junction, pr, pr))
        spin_base = v.at(0, v.ry + cd + lr * 0.8, -0.2 * v.hz)
        left.append(Capsule(junction, spin_base, lr, lr))
        half_h = 0.40 * v.height
        left.append(Capsule(junction + v.axes[:, 2] * (-half_h), junction + v.axes[:, 2] * half_h, ar, ar))
        tdir = unit(np.cos(ta) * v.axes[:, 0] + np.sin(ta) * v.axes[:, 1] + 0.12 * v.axes[:, 2])
        tip = junction + tdir * tl
        left.append(Capsule(junction, tip, tr, tr * 1.15))
        self.landmarks[f"{v.name}_tp_tip"] = tip
        self.landmarks[f"{v.name}_tp_radius"] = np.array([tr * 1.15])
        parts += left + [p.mirrored() for p in left]
        sdir = np.cos(sa) * v.axes[:, 1] - np.sin(sa) * v.axes[:, 2]
        stip = spin_base + sdir * sl
        if 1 <= i <= 5:  # bifid cervical spinous process
            for side in (1, -1):
                parts.append(Capsule(spin_base, stip + v.axes[:, 0] * side * 3.5 * s, sr, sr * 1.1))
        else:
            parts.append(Capsule(spin_base, stip, sr, sr * 1.2))
            if i >= 19:  # lumbar: tall hatchet-shaped process
                parts.append(Capsule(spin_base + v.axes[:, 2] * 6 * s, stip + v.axes[:, 2] * 7 * s, sr * 0.8, sr))
        family = 0.92 + 0.02 * np.sin(0.45 * i)
        self.add(f"vertebra_{v.name}", parts, cortex_adult=1.6, family=family, anchor=v.centre)

    def _atlas(self, v: Vertebra) -> None:
        s = self.s
        parts: list[Shape] = [Capsule(v.at(-6 * s, -13 * s, 0), v.at(6 * s, -13 * s, 0), 4 * s, 4 * s)]
        left: list[Shape] = [
            Ellipsoid(v.at(16 * s, 1 * s, 0), np.array([7, 9, 8]) * s, v.axes),
            *tube(np.array([v.at(6 * s, -13 * s, 0), v.at(12 * s, -9 * s, 0)]), 4 * s),
            *tube(np.array([v.at(15 * s, 9 * s, 0), v.at(11 * s, 19 * s, 1 * s), v.at(0, 25 * s, 1 * s)]), 3.6 * s),
            Capsule(v.at(18 * s, 2 * s, 0), v.at(36 * s, 4 * s, 1 * s), 4 * s, 4.5 * s),
        ]
        parts += left + [p.mirrored() for p in left]
        self.add("vertebra_C1", parts, cortex_adult=1.6, family=0.92, anchor=v.at(16 * s, 1 * s, 0))

    def _sacrum_coccyx(self) -> None:
        rng, s = self.rng, self.s
        l5 = self.vert("L5")
        top = l5.at(0, 0, -l5.hz - 9 * s)
        tilt = np.radians(rng.uniform(28, 40))
        lengths = np.array([24, 22, 20, 18, 16]) * s
        angles = tilt - np.radians(12) * np.arange(5)
        rx, ry = np.array([24, 19, 15, 11, 8]) * s, np.array([16, 13, 11, 9, 7]) * s
        parts: list[Shape] = []
        p = top.copy()
        centres = []
        for k in range(5):
            d = np.cos(angles[k]) * -Z + np.sin(angles[k]) * Y
            c = p + d * lengths[k] / 2
            axes = np.stack([X, np.cross(-d, X), -d], axis=1)
            parts.append(Cylinder(c, axes, rx[k], ry[k], lengths[k] / 2 + 0.5 * s, rounding=1.5 * s))
            centres.append(c)
            p = p + d * lengths[k]
        c1 = centres[0]
        self.landmarks["S1"] = c1
        self.landmarks["S1_top"] = top
        ala = Ellipsoid(c1 + np.array([31 * s, 4 * s, -6 * s]), np.array([17, 15, 23]) * s)
        parts += [ala, ala.mirrored()]
        tip = centres[4] + Y * 5 * s
        dorsal = np.array([36, 14, -4]) * s
        parts.append(Slab(c1 + dorsal, c1 + dorsal * [-1, 1, 1], tip, 9 * s))
        crest = [centres[k] + np.array([0, ry[k] + 3 * s, 0]) for k in range(4)]
        parts += tube(np.array(crest), max(3.5 * s, MIN_RADIUS_MM))
        self.add("sacrum", parts, cortex_adult=1.6, family=0.92, anchor=c1)
        # coccyx: four small segments continuing the curve forwards
        parts = []
        cl, cr = np.array([10, 8, 7, 6]) * s, np.array([7, 6, 5, 4]) * s
        p = p + (np.cos(angles[4] - np.radians(15)) * -Z + np.sin(angles[4] - np.radians(15)) * Y) * 2 * s
        for k in range(4):
            ang = angles[4] - np.radians(15) * (k + 1)
            d = np.cos(ang) * -Z + np.sin(ang) * Y
            c = p + d * cl[k] / 2
            radii = np.array([max(cr[k], MIN_RADIUS_MM), max(cr[k] * 0.75, MIN_RADIUS_MM), cl[k] / 2 + 0.3 * s])
            parts.append(Ellipsoid(c, radii, np.stack([X, np.cross(-d, X), -d], axis=1)))
            p = p + d * cl[k]
        self.add("coccyx", parts, cortex_adult=1.0, family=0.92, anchor=parts[0].center())
        self.landmarks["coccyx_tip"] = p

    # ------------------------------------------------------------------ thorax
    def build_ribs_sternum(self) -> None:
        """Ribs 1-12 (both sides), manubrium and sternal body, and the unlabelled costal cartilages."""
        ends = self._ribs()
        jugular, angle_pt, xiphoid, man_axis = self._sternum(ends)
        self.soft["cartilage"] = self._costal_cartilages(ends, jugular, angle_pt, xiphoid, man_axis)

    def _ribs(self) -> np.ndarray:
        """Ribs as tubes from the vertebral head along a dropping ellipse; returns their anterior ends (12 x 3).

        Fills ``ribs_info`` (ellipse, height and end of each rib), which the body uses for the chest wall.
        """
        s, rng = self.s, self.rng
        A = np.array([58, 85, 100, 112, 122, 130, 135, 138, 138, 135, 125, 110]) * s * self.chest_w
        B = np.array([40, 55, 65, 75, 82, 88, 93, 97, 99, 100, 100, 100]) * s * self.chest_d
        phi_end = np.array([2.7, 2.68, 2.64, 2.6, 2.56, 2.52, 2.46, 2.3, 2.1, 1.9, 1.45, 1.1])
        drop = np.array([30, 55, 75, 90, 100, 105, 110, 115, 110, 100, 70, 45]) * s * rng.uniform(0.9, 1.1)
        radius = np.maximum(np.array([5.5, 5, 4.8, 4.8, 4.8, 4.8, 4.8, 4.8, 4.8, 4.5, 4, 3.6]) * s, MIN_RADIUS_MM)
        self.ribs_info = []
        ends = []
        for i in range(12):
            v = self.vert(f"T{i + 1}")
            r = radius[i]
            head = v.at(v.rx + 0.9 * r + 1.0 * s, 0.45 * v.ry, 0.75 * v.hz)
            tp = self.landmarks[f"{v.name}_tp_tip"]
            tpr = float(self.landmarks[f"{v.name}_tp_radius"][0])
            tub = tp - v.axes[:, 1] * (tpr + r + 0.6 * s) + v.axes[:, 2] * 0.5 * s
            phi0 = float(np.arcsin(np.clip((tub[0] + 9 * s) / A[i], 0.05, 0.9)))
            y_ce = tub[1] + 5 * s - B[i] * np.cos(phi0)
            phis = np.linspace(phi0, phi_end[i], 12)
            tau = (phis - phi0) / (phi_end[i] - phi0)
            ell = np.stack([A[i] * np.sin(phis), y_ce + B[i] * np.cos(phis), tub[2] - drop[i] * tau ** 1.4], axis=1)
            pts = np.vstack([head, tub, ell])
            pts = catmull_rom(pts, per_segment=2)
            radii = np.full(len(pts), r)
            radii[0] = r * 1.1
            parts = tube(pts, radii)
            self.add(f"rib_left_{i + 1}", parts, cortex_adult=1.5, family=0.97 + 0.015 * np.sin(0.6 * i),
                     anchor=pts[len(pts) // 2], mirror=True)
            self.ribs_info.append(dict(A=A[i], B=B[i], y_ce=y_ce, z_head=head[2], drop=drop[i], r=r,
                                       end=pts[-1], phi_end=phi_end[i]))
            ends.append(pts[-1])
        return np.array(ends)

    def _sternum(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Manubrium between the ends of ribs 1-2 and the body from rib 2 to rib 7.

        Returns the jugular notch, sternal angle, xiphoid and the manubrium's axis (the cartilages
        attach along them).
        """
        s = self.s
        front = lambda i: self.ribs_info[i]["y_ce"] - self.ribs_info[i]["B"]  # noqa: E731
        jugular = np.array([0, min(e[0, 1], front(0)) - 4 * s, e[0, 2] + 14 * s])
        angle_pt = np.array([0, e[1, 1] - 10 * s, e[1, 2] - 2 * s])
        xiphoid = np.array([0, e[6, 1] - 6 * s, e[6, 2] - 12 * s])
        self.landmarks.update(jugular=jugular, sternal_angle=angle_pt, xiphoid=xiphoid)
        man_axis = unit(jugular - angle_pt)
        man_c = (jugular + angle_pt) / 2
        man_len = np.linalg.norm(jugular - angle_pt)
        man = Cylinder(man_c, frame(man_axis, X), 24 * s, 6.5 * s, man_len / 2 - 1.2 * s, rounding=2 * s)
        self.add("sternum_manubrium", [man, Capsule(jugular + X * 12 * s - man_axis * 6 * s,
                                                      jugular - X * 12 * s - man_axis * 6 * s, 7 * s, 7 * s)],
                 cortex_adult=1.5, family=0.95, anchor=man_c)
        body_axis = unit(angle_pt - xiphoid)
        body_c = (angle_pt + xiphoid) / 2
        body_len = np.linalg.norm(angle_pt - xiphoid)
        body = Cylinder(body_c, frame(body_axis, X), 15 * s, 6 * s, body_len / 2 - 1.5 * s, rounding=2 * s)
        self.add("sternum_body", [body], cortex_adult=1.5, family=0.95, anchor=body_c)
        return jugular, angle_pt, xiphoid, man_axis

    def _costal_cartilages(self, e: np.ndarray, jugular: np.ndarray, angle_pt: np.ndarray, xiphoid: np.ndarray,
                           man_axis: np.ndarray) -> list[Shape]:
        """Costal cartilages (unlabelled, both sides): ribs 1-7 to the sternum edge, 8-10 to the cartilage above."""
        s = self.s
        cart: list[Shape] = []
        stern_pts = [jugular - man_axis * 10 * s + X * 20 * s, angle_pt + X * 16 * s]
        for k in range(5):
            t = (k + 1) / 5.5
            stern_pts.append(angle_pt + (xiphoid - angle_pt) * t + X * 13 * s)
        prev_mid = None
        for i in range(10):
            end = e[i]
            r = self.ribs_info[i]["r"] * 0.95
            if i < 7:
                target = stern_pts[i]
                mid = (end + target) / 2 + np.array([0, -4 * s, 3 * s])
                pts = catmull_rom(np.array([end, mid, target]), 3)
                prev_mid = pts[len(pts) * 2 // 3]
            else:
                target = prev_mid
                mid = (end + target) / 2 + np.array([0, -6 * s, -4 * s])
                pts = catmull_rom(np.array([end, mid, target]), 3)
                prev_mid = pts[len(pts) // 2]
            pts = pts.copy()
            pts[0] = end + unit(pts[1] - end) * (r + 1.5 * s)  # leave a gap to the bony rib
            for sh in tube(pts, r):
                cart += [sh, sh.mirrored()]
        return cart

    # ------------------------------------------------------------------ shoulder and arm
    def build_shoulders(self) -> None:
        s = self.s
        t2, t7, t1 = self.vert("T2"), self.vert("T7"), self.vert("T1")
        G = np.array([140 * s * self.shoulder_w, t2.centre[1] - 20 * s, t2.centre[2] - 4 * s])
        self.landmarks["glenoid_left"] = G
        sa = np.array([68 * s, t2.centre[1] + 44 * s, t1.centre[2] + 4 * s])
        ia = np.array([85 * s, t7.centre[1] + 38 * s, t7.centre[2] - 6 * s])
        la = G + np.array([-17 * s, 15 * s, 0])
        plate_t = max(5 * s, 3.6)
        parts: list[Shape] = [Slab(sa, ia, la, plate_t)]
        parts += tube(np.array([sa, ia]), max(3.6 * s, MIN_RADIUS_MM))
        parts += tube(np.array([ia, la]), max(5 * s, MIN_RADIUS_MM))
        sp_med = sa + (ia - sa) * 0.28 + Y * 3 * s
        ac_base = G + np.array([-4 * s, 30 * s, 24 * s])
        ac_tip = G + np.array([20 * s, 6 * s, 33 * s])
        parts += tube(catmull_rom(np.array([sp_med, (sp_med + ac_base) / 2 + Y * 9 * s, ac_base]), 2), 5 * s)
        parts.append(Capsule(ac_base, ac_tip, 6 * s, 6.5 * s))
        parts.append(Ellipsoid(G, np.array([6, 12, 17]) * s))
        coracoid = (G + np.array([-5, -4, 16]) * s, G + np.array([-8, -34, 12]) * s)
        parts.append(Capsule(*coracoid, 5 * s, 4.5 * s))
        self.add("scapula_left", parts, cortex_adult=1.5, family=0.97, anchor=la, mirror=True)
        self.landmarks["acromion_left"] = ac_tip
        # clavicle: S-shaped from the manubrium to the acromion
        j = self.landmarks["jugular"]
        med = np.array([20 * s, j[1] + 2 * s, j[2] + 2 * s])
        lat = ac_tip + np.array([-10 * s, -16 * s, 4 * s])
        c1 = med + (lat - med) * 0.33 + np.array([0, -12 * s, 4 * s])
        c2 = med + (lat - med) * 0.72 + np.array([0, 4 * s, 6 * s])
        pts = catmull_rom(np.array([med, c1, c2, lat]), 3)
        radii = np.interp(np.linspace(0, 1, len(pts)), [0, 0.5, 1], [8 * s, 5.5 * s, 6 * s])
        self.add("clavicle_left", tube(pts, radii), cortex_adult=2.0, family=1.0, anchor=pts[len(pts) // 2],
                 mirror=True)

    def arm_pose(self) -> tuple[ArmPose, ArmPose]:
        """One shared pose drawn within anatomical ranges, jittered a few degrees per side."""
        rng = self.rng
        base = dict(abduction=rng.uniform(4, 14), flexion=rng.uniform(-6, 10), elbow=rng.uniform(15, 50),
                    pronation=rng.uniform(-15, 25), wrist=rng.uniform(-8, 15), spread=rng.uniform(3, 8))
        fingers = rng.uniform([5, 5, 0], [35, 40, 25], size=(5, 3))
        poses = []
        for _side in range(2):
            jit = {k: v + rng.normal(0, 2.0) for k, v in base.items()}
            jit["spread"] = max(2.0, jit["spread"])
            f = np.clip(fingers + rng.normal(0, 4, size=fingers.shape), 0, 60)
            poses.append(ArmPose(fingers=tuple(tuple(float(a) for a in row) for row in f),
                                 **{k: float(v) for k, v in jit.items()}))
        return poses[0], poses[1]

    def build_arm(self, pose: ArmPose, side: str) -> None:
        """Humerus, radius, ulna and hand of one side; built at +x and mirrored for ``side='right'``."""
        f = self._arm_frame(pose)
        bones = self._arm_long_bones(f)
        bones.update(self._hand(f.wrist, f.u, f.v, f.w, pose))
        mirror = side == "right"
        self._add_arm_bones(bones, side, mirror)
        m = np.array([-1.0, 1, 1]) if mirror else np.ones(3)
        self.landmarks[f"humeral_head_{side}"] = f.head * m
        self.landmarks[f"elbow_{side}"] = f.elbow * m
        self.landmarks[f"wrist_{side}"] = f.wrist * m
        # soft-tissue envelope of the limb (lean: muscle), mirrored like the bones
        s = self.s
        env: list[Shape] = [
            Capsule(f.head + f.dh * 5 * s, f.elbow, 40 * s, 33 * s),
            Capsule(f.elbow, f.wrist - f.df * 10 * s, 34 * s, 22 * s),
            Ellipsoid(f.wrist + f.u * 18 * s, np.array([22, 13, 22]) * s, np.stack([f.v, f.w, f.u], axis=1)),
        ]
        env += self._hand_envelope
        for shp in env:
            self.envelope.append((shp.mirrored() if mirror else shp, "limb"))

    def _arm_frame(self, pose: ArmPose) -> ArmFrame:
        """Joint centres and axes of the left arm in ``pose`` (shoulder, elbow, wrist, hand frame)."""
        s = self.s
        G = self.landmarks["glenoid_left"]
        dh = rotate_towards(rotate_towards(-Z, X, np.radians(pose.abduction)), -Y, np.radians(pose.flexion))
        lat = unit(X - np.dot(X, dh) * dh)
        ant = unit(np.cross(dh, lat))  # dh x lat points anterior (-y) for a hanging arm
        if ant[1] > 0:
            ant = -ant
        HH = G + lat * (6 + 2 + 22) * s
        E = HH + dh * (300 * s)
        f = np.radians(pose.elbow)
        df = np.cos(f) * dh + np.sin(f) * ant
        ant_f = -np.sin(f) * dh + np.cos(f) * ant
        W = E + df * (245 * s)
        # hand frame: u along the hand, v to the thumb side, w palmar (u x v = w for the left hand)
        psi = np.radians(pose.pronation)
        v0, w0 = ant_f, -lat
        v_h = np.cos(psi) * v0 - np.sin(psi) * w0
        u_h = rotate_towards(df, np.cross(df, v_h), np.radians(pose.wrist))
        v_h = unit(v_h - np.dot(v_h, u_h) * u_h)
        return ArmFrame(HH, E, W, dh, lat, ant, df, ant_f, u_h, v_h, np.cross(u_h, v_h))

    def _arm_long_bones(self, f: ArmFrame) -> dict[str, tuple[list[Shape], float, float, np.ndarray]]:
        """Humerus, radius and ulna as (parts, adult cortex mm, HU family factor, anchor)."""
        s = self.s
        HH, E, W, dh, lat, ant, df, ant_f = f.head, f.elbow, f.wrist, f.dh, f.lat, f.ant, f.df, f.ant_f
        v_h, w_h, u_h = f.v, f.w, f.u
        humerus: list[Shape] = [
            Sphere(HH, 22 * s),
            Ellipsoid(HH + lat * 17 * s + dh * 9 * s - ant * 4 * s, np.array([10, 12, 12]) * s),
            Capsule(HH + dh * 12 * s + lat * 5 * s, HH + dh * 48 * s + lat * 5 * s, 14 * s, 11 * s),
            Capsule(HH + dh * 48 * s + lat * 5 * s, E - dh * 40 * s, 11 * s, 9.5 * s),
            Capsule(E - dh * 40 * s, E - dh * 12 * s + lat * 2 * s, 9.5 * s, 11 * s),
            Capsule(E - dh * 6 * s + lat * 28 * s, E - dh * 6 * s - lat * 30 * s, 8 * s, 9 * s),
            Capsule(E + lat * 16 * s, E - lat * 18 * s, 10 * s, 10 * s),
        ]
        RH = E + lat * 12 * s + df * 16 * s
        radius: list[Shape] = [
            Cylinder(RH, frame(df, lat), 10 * s, 10 * s, 5 * s, rounding=2 * s),
            Capsule(RH + df * 5 * s, RH + df * 30 * s, 7 * s, 6 * s),
            Capsule(RH + df * 30 * s, W - df * 45 * s + v_h * 8 * s, 6 * s, 7 * s),
            Capsule(W - df * 45 * s + v_h * 8 * s, W - df * 12 * s + v_h * 7 * s, 7 * s, 10 * s),
            Ellipsoid(W - u_h * 8 * s + v_h * 5 * s, np.array([16, 10, 7]) * s, np.stack([v_h, w_h, u_h], axis=1)),
        ]
        ulna: list[Shape] = [
            Capsule(E - ant_f * 13 * s - df * 22 * s, E - ant_f * 8 * s + df * 2 * s, 9 * s, 9 * s),
            Capsule(E - ant_f * 8 * s + df * 2 * s, E - lat * 6 * s + df * 28 * s, 9 * s, 8 * s),
            Capsule(E - lat * 6 * s + df * 28 * s, W - df * 22 * s - v_h * 10 * s, 8 * s, 5 * s),
            Sphere(W - df * 12 * s - v_h * 10 * s, 6.5 * s),
        ]
        return {"humerus": (humerus, 3.5, 1.04, HH + dh * 150 * s),
                "radius": (radius, 2.8, 1.03, (RH + W) / 2 + v_h * 4 * s),
                "ulna": (ulna, 2.8, 1.03, (E + W) / 2 - v_h * 6 * s)}

    def _add_arm_bones(self, bones: dict[str, tuple[list[Shape], float, float, np.ndarray]], side: str,
                       mirror: bool) -> None:
        """Add the bones of one arm under ``<name>_<side>``, mirrored to -x for the right side."""
        for name, (parts_, cortex, family, anchor) in bones.items():
            full = f"{name}_{side}"
            if mirror:
                parts_ = [p.mirrored() for p in parts_]
                anchor = anchor * np.array([-1.0, 1, 1])
            min_c = 1.0 if name not in ("humerus", "radius", "ulna") else 1.4
            self.add(full, parts_, cortex_adult=cortex, family=family, anchor=anchor, min_cortex=min_c)

    def _hand_point(self, W: np.ndarray, R: np.ndarray, uu: float, vv: float, ww: float) -> np.ndarray:
        """Point at hand coordinates (u, v, w) in adult mm from the wrist ``W`` (hand frame ``R``)."""
        return W + R @ (np.array([uu, vv, ww]) * self.hs)

    def _hand_radius(self, adult: float) -> float:
        """Adult hand-bone radius -> phantom mm, never below the hand's minimum radius."""
        return max(adult * self.hs, HAND_MIN_RADIUS_MM)

    def _hand(self, W: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, pose: ArmPose
              ) -> dict[str, tuple[list[Shape], float, float, np.ndarray]]:
        """Carpals, metacarpals, phalanges and the thumb sesamoid of a left hand at wrist ``W``.

        Also sets ``_hand_envelope`` (soft tissue of fingers and palm) and appends the fingertips.
        """
        R = np.stack([u, v, w], axis=1)
        out = self._carpals(W, R, u, v, w)
        # metacarpals: (base u, v, w), direction in (u, v, w), length, radii (base, shaft, head)
        spread = np.radians(pose.spread)
        mc = {
            1: ((31, 20, 5), unit(np.array([0.72, 0.55, 0.42])), 44, (5.5, 4.0, 5.5)),
            2: ((37, 8.5, 0), unit(np.array([1, np.tan(spread * 0.8), 0.03])), 64, (5.5, 3.8, 5.5)),
            3: ((41, -1.5, 0), unit(np.array([1, 0, 0.03])), 60, (5.5, 3.8, 5.5)),
            4: ((38.5, -10.5, 0), unit(np.array([1, -np.tan(spread * 0.8), 0.03])), 54, (4.8, 3.3, 4.8)),
            5: ((38, -18.5, 0), unit(np.array([1, -np.tan(spread * 1.7), 0.03])), 49, (4.8, 3.3, 4.8)),
        }
        env: list[Shape] = []
        for k, (base, d_local, length, radii) in mc.items():
            d = R @ d_local
            start = self._hand_point(W, R, *base)
            parts, end = self._hand_long_bone(start, d, length, radii, env)
            out[f"metacarpal_{k}"] = (parts, 1.4, 1.0, start + d * length * self.hs * 0.5)
            out.update(self._finger(k, end, d, radii[2], v, w, pose.fingers[k - 1], env))
        palm = [self._hand_point(W, R, *c) for c in ((37, 8.5, 0), (38, -18.5, 0), (95, 10, 2), (85, -26, 2))]
        env += [Slab(palm[0], palm[1], palm[2], 12 * self.hs), Slab(palm[1], palm[2], palm[3], 12 * self.hs)]
        self._hand_envelope = env
        return out

    def _carpals(self, W: np.ndarray, R: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray
                 ) -> dict[str, tuple[list[Shape], float, float, np.ndarray]]:
        """The eight carpal bones as ellipsoids: (centre u, v, w), (half-lengths along u, v, w) in adult mm."""
        carpals = {
            "scaphoid": ((10, 11.5, 1.5), (7.5, 5.5, 6)),
            "lunate": ((9, 0, 0), (6.5, 5, 7)),
            "triquetrum": ((10, -10.5, -1), (5.5, 4.5, 6)),
            "pisiform": ((12, -12, 10.5), (4.5, 4, 4)),
            "trapezium": ((24.5, 17, 3), (6, 6, 6)),
            "trapezoid": ((25, 7, 0), (6, 4, 5.5)),
            "capitate": ((27, -1.5, 0), (9, 5, 6.5)),
            "hamate": ((25.5, -11.5, 0.5), (8, 5, 6.5)),
        }
        out: dict[str, tuple[list[Shape], float, float, np.ndarray]] = {}
        for name, (c, r) in carpals.items():
            radii = np.array([self._hand_radius(r[1]), self._hand_radius(r[2]), self._hand_radius(r[0])])
            centre = self._hand_point(W, R, *c)
            out[name] = ([Ellipsoid(centre, radii, np.stack([v, w, u], axis=1))], 1.0, 0.98, centre)
        return out

    def _hand_long_bone(self, start: np.ndarray, d: np.ndarray, length: float, radii: tuple[float, float, float],
                        env: list[Shape]) -> tuple[list[Shape], np.ndarray]:
        """Metacarpal or phalanx from ``start`` along ``d``: two tapered capsules; adds its soft tissue to ``env``.

        Returns the parts and the bone's distal end.
        """
        hs = self.hs
        rb, rs, rh = (self._hand_radius(x) for x in radii)
        L = length * hs
        a = start + d * rb
        b = start + d * (L - rh)
        mid = start + d * (L * 0.5)
        parts: list[Shape] = [Capsule(a, mid, rb, rs), Capsule(mid, b, rs, rh)]
        env.append(Capsule(a, b, rb + 3.5 * hs, rh + 3.5 * hs))
        return parts, start + d * L

    def _finger(self, k: int, end: np.ndarray, d: np.ndarray, head_radius: float, v: np.ndarray, w: np.ndarray,
                flex: tuple[float, float, float], env: list[Shape]
                ) -> dict[str, tuple[list[Shape], float, float, np.ndarray]]:
        """Phalanges of finger ``k`` beyond metacarpal head ``end``, flexed by ``flex`` (MCP, PIP, DIP degrees).

        The thumb has no middle phalanx but a sesamoid; the fingertip is appended to ``_fingertips``.
        """
        hs = self.hs
        out: dict[str, tuple[list[Shape], float, float, np.ndarray]] = {}
        gap = 2.2 * hs
        thumb = k == 1
        scale = 1.15 if thumb else 1.0
        palmar = unit(w - np.dot(w, d) * d)
        if thumb:  # the thumb curls towards the index finger and the palm
            palmar = unit(0.6 * palmar - 0.8 * unit(v - np.dot(v, d) * d))
            head_c = end - d * self._hand_radius(head_radius)
            ses_r = max(3.2 * hs, HAND_MIN_RADIUS_MM + 0.2)
            ses_c = head_c + palmar * (self._hand_radius(head_radius) + ses_r + 0.8 * hs) + d * 1.5 * hs
            out["sesamoid_thumb"] = ([Sphere(ses_c, ses_r)], 0.8, 0.98, ses_c)
        prox_len = {1: 31, 2: 40, 3: 45, 4: 42, 5: 33}[k]
        d1 = rotate_towards(d, palmar, np.radians(flex[0]))
        p_parts, p_end = self._hand_long_bone(end + d1 * gap, d1, prox_len, (4.8 * scale, 3.6 * scale, 4.0 * scale),
                                              env)
        out[f"phalanx_proximal_{k}"] = (p_parts, 1.2, 1.0, end + d1 * (gap + prox_len * hs * 0.5))
        d2 = rotate_towards(d1, palmar, np.radians(flex[1]))
        if not thumb:
            mid_len = {2: 24, 3: 28, 4: 27, 5: 19}[k]
            m_parts, m_end = self._hand_long_bone(p_end + d2 * gap, d2, mid_len, (4.0, 3.0, 3.4), env)
            out[f"phalanx_middle_{k}"] = (m_parts, 1.0, 1.0, p_end + d2 * (gap + mid_len * hs * 0.5))
            d3 = rotate_towards(d2, palmar, np.radians(flex[2]))
            start3 = m_end + d3 * gap
        else:
            d3 = d2
            start3 = p_end + d3 * gap
        dist_len = {1: 23, 2: 18, 3: 19, 4: 19, 5: 17}[k]
        t_parts, t_end = self._hand_long_bone(start3, d3, dist_len, (3.6 * scale, 2.6 * scale, 3.0 * scale), env)
        out[f"phalanx_distal_{k}"] = (t_parts, 1.0, 1.0, start3 + d3 * dist_len * hs * 0.5)
        self._fingertips.append(t_end)
        return out

    # ------------------------------------------------------------------ head
    def build_head(self) -> None:
        s = self.s
        c1 = self.vert("C1")
        fm = c1.centre + np.array([0, -2 * s, 13 * s])  # foramen magnum
        cv = fm + np.array([0, -20 * s, 52 * s])  # vault centre
        rv = np.array([70, 92, 80]) * s * np.array([self.rng.uniform(0.95, 1.05), self.rng.uniform(0.95, 1.05), 1])
        t = 7 * s
        vault = Clip(Shell(Ellipsoid(cv, rv), t), cv + np.array([0, 0, -0.62 * rv[2]]), -Z)
        base = Ellipsoid(fm + np.array([0, -12 * s, 10 * s]), np.array([58, 72, 9]) * s)
        face_c = cv + np.array([0, -58 * s, -56 * s])
        face_r = np.array([46, 32, 42]) * s
        face = Shell(Ellipsoid(face_c, face_r), 6 * s)
        parts: list[Shape] = [vault, base, face]
        zyg = Capsule(face_c + np.array([36, 6, 6]) * s, cv + np.array([62, -28, -46]) * s, 4.5 * s, 4.5 * s)
        mast = Ellipsoid(fm + np.array([48 * s, 2 * s, 2 * s]), np.array([8, 9, 12]) * s)
        parts += [zyg, zyg.mirrored(), mast, mast.mirrored()]
        self.add("cranium", parts, cortex_adult=2.2, family=1.02, anchor=cv + np.array([0, 0, rv[2] - t / 2]))
        self.landmarks.update(vertex=cv + Z * rv[2], vault_centre=cv, foramen_magnum=fm, face_centre=face_c)
        self.head_info = dict(cv=cv, rv=rv, t=t, face_c=face_c, face_r=face_r, face_t=6 * s)
        # mandible: condyle - ramus - angle - body - chin, mirrored half + midline
        tmj = fm + np.array([48 * s, -24 * s, 2 * s])
        angle = tmj + np.array([-3 * s, 6 * s, -56 * s])
        body = tmj + np.array([-20 * s, -52 * s, -60 * s])
        chin = np.array([0, tmj[1] - 80 * s, tmj[2] - 64 * s])
        half = catmull_rom(np.array([tmj, angle, body, chin]), 3)
        half_upper = half + np.array([0, 0, 7 * s])
        half_upper = half_upper[3:]  # the alveolar rim starts at the angle
        parts = []
        for pts, r in ((half, 6.5 * s), (half_upper, 5.5 * s)):
            left = tube(pts, r)
            parts += left + [p.mirrored() for p in left]
        parts.append(Capsule(angle + np.array([-2, -12, 40]) * s, angle + np.array([-2, -10, 4]) * s, 4 * s, 6 * s))
        parts[-1:] = [parts[-1], parts[-1].mirrored()]
        self.add("mandible", parts, cortex_adult=2.2, family=1.02, anchor=chin + np.array([0, 4 * s, 0]))
        self.landmarks.update(chin=chin, tmj_left=tmj)
        # hyoid: small U at the level of C3, well behind the chin
        c3 = self.vert("C3")
        hb = np.array([0, c3.centre[1] - 40 * s, c3.centre[2] - 3 * s])
        rh = max(3.5 * s, 2.5)
        pts = np.array([hb + np.array([x, y, 0]) * s for x, y in ((20, 24), (13, 7), (0, 0))])
        pts = catmull_rom(pts, 3)
        left = tube(pts, rh)
        self.add("hyoid", left + [p.mirrored() for p in left], cortex_adult=1.0, family=0.98, anchor=hb)
        self.landmarks["hyoid"] = hb

    # ------------------------------------------------------------------ pelvis and femur
    def build_pelvis_femur(self) -> None:
        s = self.s
        S1 = self.landmarks["S1_top"]
        pw = self.pelvis_w
        H = np.array([88 * s * pw, S1[1] - 30 * s, S1[2] - 110 * s])
        self.landmarks["hip_left"] = H
        r_fh = 23 * s
        r_cup = r_fh + 2.0 * s + 7 * s
        n_open = unit(np.array([1.0, -0.45, -0.6]))
        acet = Clip(Shell(Sphere(H, r_cup), 7 * s), H + n_open * 2 * s, n_open)
        psis = np.array([56 * s * pw, S1[1] + 40 * s, S1[2] - 12 * s])
        si_low = np.array([56 * s * pw, S1[1] + 28 * s, S1[2] - 58 * s])
        crest = np.array([122 * s * pw, S1[1] + 6 * s, S1[2] + 42 * s])
        asis = np.array([118 * s * pw, H[1] - 55 * s, H[2] + 68 * s])
        roof = H + np.array([6 * s, 0, r_cup - 4 * s])
        plate = 8 * s
        # the wing is a fan of plates around a medially sunk centre: the concave iliac fossa
        fossa = (psis + crest + asis + roof) / 4 + np.array([-12 * s, -4 * s, 0])
        ring = [psis, crest, asis, roof, si_low]
        parts: list[Shape] = [acet] + [Slab(ring[k], ring[(k + 1) % 5], fossa, plate) for k in range(5)]
        rim = catmull_rom(np.array([psis, np.array([98 * s * pw, S1[1] + 28 * s, S1[2] + 34 * s]), crest,
                                    np.array([128 * s * pw, S1[1] - 28 * s, S1[2] + 32 * s]), asis]), 3)
        parts += tube(rim, 5.5 * s)
        pub_body = np.array([13 * s, H[1] - 60 * s, H[2] - 26 * s])
        parts += [Capsule(H + np.array([-16, -16, 6]) * s, pub_body + np.array([2, 0, 10]) * s, 8 * s, 7 * s),
                  Ellipsoid(pub_body, np.array([8, 9, 16]) * s)]
        it = np.array([60 * s * pw, H[1] + 38 * s, H[2] - 62 * s])
        parts += [Capsule(H + np.array([-8 * s, 16 * s, -22 * s]), it, 11 * s, 10 * s),
                  Ellipsoid(it, np.array([12, 14, 13]) * s),
                  Capsule(it, pub_body + np.array([0, 6 * s, -14 * s]), 6.5 * s, 6 * s)]
        self.add("hip_left", parts, cortex_adult=1.8, family=0.98, anchor=roof, mirror=True)
        self.landmarks["iliac_crest_left"] = crest
        self.landmarks["asis_left"] = asis
        self.landmarks["ischial_tuberosity_left"] = it
        # femur: head in the acetabulum, neck, trochanters, shaft leaving the field of view
        neck = unit(np.array([np.cos(np.radians(38)) * np.cos(np.radians(12)),
                              np.sin(np.radians(12)) * np.cos(np.radians(38)), -np.sin(np.radians(38))]))
        n1 = H + neck * 45 * s
        shaft_top = H + neck * 50 * s + np.array([0, 0, -22 * s])
        dshaft = unit(np.array([-np.sin(np.radians(9)), 0.03, -1]))
        parts = [Sphere(H, r_fh), Capsule(H + neck * 12 * s, n1, 15 * s, 16 * s),
                 Capsule(n1, shaft_top, 17 * s, 15 * s),
                 Ellipsoid(H + neck * 55 * s + np.array([0, 8 * s, 14 * s]), np.array([13, 15, 20]) * s),
                 Ellipsoid(shaft_top + np.array([-13 * s, 8 * s, -18 * s]), np.array([8, 7, 9]) * s),
                 Capsule(shaft_top, shaft_top + dshaft * 420 * s, 15 * s, 12.5 * s)]
        self.add("femur_left", parts, cortex_adult=5.0, family=1.05, anchor=n1, mirror=True)
        self.landmarks["lesser_trochanter_left"] = shaft_top + np.array([-13 * s, 8 * s, -18 * s])
        self.landmarks["femur_shaft_top_left"] = shaft_top
        self.landmarks["femur_dir_left"] = dshaft

    # ------------------------------------------------------------------ all
    def build(self) -> tuple[list[BoneModel], dict[str, np.ndarray]]:
        """All 125 bones in drawing order (big, central bones first; hand bones last)."""
        self._fingertips: list[np.ndarray] = []
        self.build_spine()
        self.build_head()
        self.build_ribs_sternum()
        self.build_pelvis_femur()
        self.build_shoulders()
        left, right = self.arm_pose()
        self.build_arm(left, "left")
        self.build_arm(right, "right")
        tips = np.array(self._fingertips)
        self.landmarks["lowest_fingertip"] = tips[np.argmin(tips[:, 2])]
        order = self._draw_order()
        return [self.bones[n] for n in order], self.landmarks

    def _draw_order(self) -> list[str]:
        first = ["cranium", "mandible", "hyoid"] + [f"vertebra_{v}" for v in MOBILE_VERTEBRAE] + ["sacrum", "coccyx"]
        first += ["hip_left", "hip_right", "femur_left", "femur_right", "sternum_manubrium", "sternum_body"]
        first += [f"rib_{side}_{i}" for i in range(1, 13) for side in ("left", "right")]
        arm = ["scapula", "clavicle", "humerus", "ulna", "radius", "scaphoid", "lunate", "triquetrum", "pisiform",
               "trapezium", "trapezoid", "capitate", "hamate"]
        arm += [f"metacarpal_{k}" for k in FINGERS] + [f"phalanx_proximal_{k}" for k in FINGERS]
        arm += [f"phalanx_middle_{k}" for k in (2, 3, 4, 5)] + [f"phalanx_distal_{k}" for k in FINGERS]
        arm += ["sesamoid_thumb"]
        order = first + [f"{b}_{side}" for b in arm for side in ("left", "right")]
        missing = set(self.bones) - set(order)
        extra = set(order) - set(self.bones)
        if missing or extra:
            raise RuntimeError(f"phantom skeleton: bones not in draw order {sorted(missing)}, unknown {sorted(extra)}")
        return order
