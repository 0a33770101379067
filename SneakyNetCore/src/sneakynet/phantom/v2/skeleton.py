"""Phantom v2 skeleton: adult size, v2 bone shapes, CT-like bone density, and real arm poses.

Placement comes from :class:`sneakynet.phantom.skeleton.SkeletonBuilder` (spine curve, ribs
from their vertebra with cartilage to the sternum, sternum, skull, femurs, arms and hands).
What v2 changes:

- shapes: vertebrae C2-L5 and the sacrum (:mod:`.spine`), the hip bones (:mod:`.pelvis`),
  flat ribs (:mod:`.ribs`), scapulae and clavicles that turn with a raised arm (:mod:`.shoulder`);
- size: body scale about 0.85-1.15 of the adult table values (v1 shrinks bodies to ~0.62),
  chest width and depth, shoulder and pelvis width varied further (about ±10 %);
- spine: v1's kyphosis and lordosis, plus a mild scoliosis (4-14 mm lateral shift, C or S) in
  a third of the cases;
- density: each bone is a thin cortex (0.5-2.3 mm) around marrow. Cancellous bones (spine,
  pelvis, ribs, sternum, scapula, skull, carpals) have red marrow of 25-240 HU, forearm,
  hand and clavicle fatty marrow of -45-55 HU, femur and humerus (cancellous head, fatty
  shaft) the mean of both; all scaled by one density per case from osteoporotic (0) to
  young (1; drawn from 0.25-1), plus a per-bone spread; the cortex is 600-950 HU (what a
  sub-millimetre cortex of ~1500 HU gives after partial volume at 1-5 mm). Over 100 chest and
  abdomen cases at 3 mm the bone voxels then give real CT's bone histogram (median 182 HU,
  5-95 % 24..596, 38 % below 150; real: 179, -6..600, 42 %);
- arms: "sides", "raised" (above the head, the usual chest/abdomen position), "one_up"
  (one raised, one at the side) or "crossed" (forearms over the belly). Raised and crossed
  arms swing the forearm and hand about the upper arm's axis (shoulder rotation).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sneakynet.phantom.model import BoneModel
from sneakynet.phantom.shapes import Shape, rotation_matrix, unit
from sneakynet.phantom.skeleton import ArmFrame, ArmPose, SkeletonBuilder, Vertebra
from sneakynet.phantom.v2.pelvis import hip_parts
from sneakynet.phantom.v2.ribs import flattened
from sneakynet.phantom.v2.rigid import about_axis
from sneakynet.phantom.v2.shoulder import Girdle, girdle, head_offset, upward_rotation_deg
from sneakynet.phantom.v2.spine import sacrum_parts, vertebra_parts

ARM_POSES = ("sides", "raised", "one_up", "crossed")
X_AXIS = np.array([1.0, 0.0, 0.0])
LONG_BONES = ("radius", "ulna", "metacarpal", "phalanx", "clavicle")  # fatty (yellow) marrow
MIXED_BONES = ("femur", "humerus")  # a cancellous head on a shaft of yellow marrow: the mean of both
CORTEX_FACTOR = 0.45  # v1's cortex widths (adult mm) are about twice real cortices
# HU at density 0 (osteoporotic) and the rise to density 1 (young)
# (chosen so that bone voxels of chest and abdomen cases at 3 mm give CT's bone histogram)
CORTEX_HU = (600.0, 350.0)
RED_MARROW_HU = (25.0, 215.0)
FAT_MARROW_HU = (-45.0, 100.0)
MARROW_JITTER_HU = 55.0  # per-bone spread around the case's marrow value
MIN_CORTEX_MM = 0.5
SWING_STEPS = 8  # a raised forearm swings over the head in this many steps until the hands would meet


class SkeletonV2(SkeletonBuilder):
    """All 125 bones at adult size with v2 densities and arm pose ``arms`` (see module docstring)."""

    def __init__(self, rng: np.random.Generator, arms: str) -> None:
        if arms not in ARM_POSES:
            raise ValueError(f"unknown arm pose {arms!r}; choose one of {', '.join(ARM_POSES)}")
        super().__init__(rng)
        size = float(rng.uniform(0.88, 1.12))
        self.s = self.s / 0.62 * size
        self.hs = self.hs / 0.68 * self.s * 0.95
        self.arms = arms
        # proportions vary beyond v1's few per cent: narrow or broad chest, shoulders and pelvis
        self.chest_w *= float(rng.uniform(0.92, 1.1))
        self.chest_d *= float(rng.uniform(0.9, 1.12))
        self.shoulder_w *= float(rng.uniform(0.95, 1.06))
        self.pelvis_w *= float(rng.uniform(0.93, 1.08))
        # mild scoliosis in a third of the cases: lateral shift of T1..L5, one C-curve or an S
        self.scoliosis_mm = float(rng.uniform(4, 14) * rng.choice([-1, 1])) if rng.random() < 0.33 else 0.0
        self.scoliosis_s = bool(rng.random() < 0.4)
        self.hu_rng = np.random.default_rng(rng.integers(2**63))
        self.density = float(rng.uniform(0.25, 1.0))  # 0 osteoporotic .. 1 young
        d = self.density
        self.cortex_hu = CORTEX_HU[0] + CORTEX_HU[1] * d
        self.marrow_red = RED_MARROW_HU[0] + RED_MARROW_HU[1] * d
        self.marrow_fat = FAT_MARROW_HU[0] + FAT_MARROW_HU[1] * d
        self._swing: dict[str, tuple[float, float]] = {}
        self._poses: tuple[ArmPose, ArmPose] | None = None
        self._side = "left"

    def build_spine(self) -> None:
        """v1's spine (kyphosis, lordosis), then the thoracolumbar vertebrae shifted sideways (scoliosis)."""
        super().build_spine()
        if self.scoliosis_mm == 0:
            return
        t = np.clip((np.arange(24) - 7) / 16, 0, 1)  # 0 at C7..T1, 1 at L5
        shape = np.sin(2 * np.pi * t) * 0.6 if self.scoliosis_s else np.sin(np.pi * t)
        centres = np.array([v.centre for v in self.vertebrae]) + np.outer(shape * self.scoliosis_mm, X_AXIS)
        for i, v in enumerate(self.vertebrae):
            up = unit(centres[max(i - 1, 0)] - centres[min(i + 1, 23)])
            lateral = unit(X_AXIS - np.dot(X_AXIS, up) * up)
            axes = np.stack([lateral, np.cross(up, lateral), up], axis=1)
            self.vertebrae[i] = replace(v, centre=centres[i], axes=axes)
            self.landmarks[v.name] = centres[i]
            self._vertebra(self.vertebrae[i])

    def _vertebra(self, v: Vertebra) -> None:
        """C1 as in v1; C2-L5 with v2's body, arch and plate-like processes (:mod:`.spine`)."""
        if v.name == "C1":
            super()._vertebra(v)
            return
        parts, marks = vertebra_parts(v, self.s)
        self.landmarks.update(marks)
        self.add(f"vertebra_{v.name}", parts, cortex_adult=1.6, anchor=v.centre)

    def _sacrum_coccyx(self) -> None:
        """v1's sacral curve and coccyx; the sacrum redrawn with canal, foramina and lateral masses."""
        super()._sacrum_coccyx()
        parts = sacrum_parts(self.landmarks["S1_top"], self.landmarks["S1"], self.s, self.pelvis_w)
        self.add("sacrum", parts, cortex_adult=1.6, anchor=self.landmarks["S1"])

    def _ribs(self) -> np.ndarray:
        """v1's ribs with a flat band for a shaft (:mod:`.ribs`); returns their anterior ends."""
        ends = super()._ribs()
        for i, info in enumerate(self.ribs_info):
            left = self.bones[f"rib_left_{i + 1}"]
            centre = np.array([0.0, info["y_ce"], info["z_head"]])
            bone = replace(left, parts=tuple(flattened(left.parts, centre)))
            self.bones[left.name] = bone
            self.bones[f"rib_right_{i + 1}"] = bone.mirrored(f"rib_right_{i + 1}")
        return ends

    def build_pelvis_femur(self) -> None:
        """v1's femurs and hip joint centres; the hip bones redrawn (:mod:`.pelvis`)."""
        super().build_pelvis_femur()
        parts, marks = hip_parts(self.landmarks["S1_top"], self.landmarks["hip_left"], self.s, self.pelvis_w)
        self.landmarks.update(marks)
        above_joint = self.landmarks["hip_left"] + np.array([0, 0, 30 * self.s])
        self.add("hip_left", parts, cortex_adult=1.8, anchor=above_joint, mirror=True)

    def build_shoulders(self) -> None:
        """Scapulae and clavicles per side, rotated upwards with a raised arm (:mod:`.shoulder`)."""
        s = self.s
        t1, t2, t7 = self.vert("T1"), self.vert("T2"), self.vert("T7")
        G = np.array([140 * s * self.shoulder_w, t2.centre[1] - 20 * s, t2.centre[2] - 4 * s])
        sa = np.array([68 * s, t2.centre[1] + 44 * s, t1.centre[2] + 4 * s])
        ia = np.array([85 * s, t7.centre[1] + 38 * s, t7.centre[2] - 6 * s])
        self.landmarks["glenoid_left"] = G  # the resting shoulder: the trunk's outline follows it
        self._girdles: dict[str, Girdle] = {}
        for side, pose in zip(("left", "right"), self.arm_pose()):
            g = girdle(G, sa, ia, self.landmarks["jugular"], s, upward_rotation_deg(pose.abduction))
            self._girdles[side] = g
            mirror = side == "right"  # built on the left, mirrored
            flip = np.array([-1.0, 1, 1]) if mirror else np.ones(3)
            scapula, clavicle = ([p.mirrored() for p in parts] if mirror else parts
                                 for parts in (g.scapula, g.clavicle))
            self.add(f"scapula_{side}", scapula, cortex_adult=1.5, anchor=g.anchor * flip)
            self.add(f"clavicle_{side}", clavicle, cortex_adult=2.0, anchor=clavicle[len(clavicle) // 2].center())
            self.landmarks[f"glenoid_fossa_{side}"] = g.glenoid * flip  # where the humeral head sits
            self.landmarks[f"acromion_{side}"] = g.acromion * flip

    def _arm_frame(self, pose: ArmPose) -> ArmFrame:
        """v1's arm frame moved so that the humeral head sits on this side's (possibly turned) glenoid."""
        f = super()._arm_frame(pose)
        g = self._girdles[self._side]
        d = head_offset(g.glenoid, g.glenoid_normal, f.head, self.s)
        return replace(f, head=f.head + d, elbow=f.elbow + d, wrist=f.wrist + d)

    def add(self, name: str, parts: list[Shape], cortex_adult: float, family: float = 1.0,
            anchor: np.ndarray | None = None, mirror: bool = False, min_cortex: float = 1.4) -> None:
        """As v1's ``add``, but with v2 cortex widths and marrow values (``family``/``min_cortex`` unused)."""
        if name.startswith(MIXED_BONES):
            core = (self.marrow_fat + self.marrow_red) / 2
        else:
            core = self.marrow_fat if name.startswith(LONG_BONES) else self.marrow_red
        core += self.hu_rng.normal(0, MARROW_JITTER_HU)
        cortex_hu = self.cortex_hu * self.hu_rng.uniform(0.92, 1.08)
        cortex = max(cortex_adult * self.s * CORTEX_FACTOR, MIN_CORTEX_MM)
        bone = BoneModel(name, tuple(parts), cortex, float(cortex_hu), float(core),
                         np.asarray(anchor if anchor is not None else parts[0].center(), float))
        self.bones[name] = bone
        if mirror:
            right = name.replace("_left", "_right")
            self.bones[right] = bone.mirrored(right)

    def _pose(self, kind: str) -> tuple[ArmPose, tuple[float, float]]:
        """One side's pose of ``kind`` plus its swing (degrees about the upper arm, minimum |x| of the wrist)."""
        rng = self.rng
        if kind == "raised":
            base = dict(abduction=rng.uniform(160, 178), flexion=rng.uniform(-25, -5), elbow=rng.uniform(80, 125))
            swing = (float(rng.uniform(50, 90)), 45.0 * self.s)
        elif kind == "crossed":
            base = dict(abduction=rng.uniform(4, 14), flexion=rng.uniform(10, 32), elbow=rng.uniform(75, 105))
            swing = (float(rng.uniform(45, 70)), -1e9)
        else:
            base = dict(abduction=rng.uniform(4, 16), flexion=rng.uniform(-6, 8), elbow=rng.uniform(0, 20))
            swing = (0.0, 0.0)
        base.update(pronation=rng.uniform(-15, 25), wrist=rng.uniform(-8, 15), spread=rng.uniform(3, 8))
        fingers = np.clip(rng.uniform([5, 5, 0], [35, 40, 25], size=(5, 3)), 0, 60)
        pose = ArmPose(fingers=tuple(tuple(float(a) for a in row) for row in fingers),
                       **{k: float(v) for k, v in base.items()})
        return pose, swing

    def arm_pose(self) -> tuple[ArmPose, ArmPose]:
        """Left and right poses of this case's arm position (drawn once: the shoulders need them first)."""
        if self._poses is not None:
            return self._poses
        kinds = {"sides": ("sides", "sides"), "raised": ("raised", "raised"), "crossed": ("crossed", "crossed"),
                 "one_up": ("raised", "sides") if self.rng.random() < 0.5 else ("sides", "raised")}[self.arms]
        left, self._swing["left"] = self._pose(kinds[0])
        right, self._swing["right"] = self._pose(kinds[1])
        if self.arms == "crossed":  # one forearm above the other, so that they do not collide
            right = replace(right, flexion=left.flexion + 14.0, elbow=left.elbow - 18.0)
        self._poses = (left, right)
        return self._poses

    def build_arm(self, pose: ArmPose, side: str) -> None:
        """v1's arm, then the forearm and hand swung about the upper arm's axis (raised, crossed)."""
        before, n_env = set(self.bones), len(self.envelope)
        self._side = side
        super().build_arm(pose, side)
        angle, min_x = self._swing.get(side, (0.0, 0.0))
        if angle == 0:
            return
        hh, elbow = self.landmarks[f"humeral_head_{side}"], self.landmarks[f"elbow_{side}"]
        wrist = self.landmarks[f"wrist_{side}"]
        axis = elbow - hh
        # medial is the sign that brings the wrist nearer the midline; a raised forearm stops before
        # the hands meet over the head
        sign = min((1.0, -1.0), key=lambda sg: abs(about_axis_point(wrist, elbow, axis, sg * angle)[0]))
        for step in range(SWING_STEPS, -1, -1):
            theta = np.radians(sign * angle * step / SWING_STEPS)
            if abs(about_axis_point(wrist, elbow, axis, np.degrees(theta))[0]) >= min_x:
                break
        moved = [n for n in self.bones if n not in before and not n.startswith("humerus")]
        for name in moved:
            bone = self.bones[name]
            parts = tuple(about_axis(p, elbow, axis, theta) for p in bone.parts)
            anchor = about_axis_point(bone.anchor, elbow, axis, np.degrees(theta))
            self.bones[name] = replace(bone, parts=parts, anchor=anchor)
        self.envelope[n_env + 1:] = [(about_axis(shp, elbow, axis, theta), region)
                                     for shp, region in self.envelope[n_env + 1:]]
        self.landmarks[f"wrist_{side}"] = about_axis_point(wrist, elbow, axis, np.degrees(theta))


def about_axis_point(p: np.ndarray, pivot: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Point ``p`` rotated by ``angle_deg`` about the line through ``pivot`` along ``axis``."""
    rot = rotation_matrix(axis, np.radians(angle_deg))
    return rot @ (np.asarray(p, float) - pivot) + pivot
