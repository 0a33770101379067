"""Phantom v2 vertebrae and sacrum: bone shapes as a CT at 1.5-4 mm shows them.

A mobile vertebra (C2-L5) is a body (elliptic, with a slightly concave waist, shallow end-plate
hollows and a flat back), pedicles taller than wide, laminae as plates that close the neural
arch behind the canal, a spinous process as a tapered plate pointing down and back (long and
steep in the thoracic spine, a tall hatchet in the lumbar spine, short and bifid in the neck),
transverse processes (rods whose tips carry the rib tubercles in the thoracic spine, long flat
plates in the lumbar spine, two bars around a transverse foramen in the neck) and superior and
inferior articular processes. The canal is cut out of the whole arch, so it is always empty.
Sizes follow v1's per-level tables, which grow from C3 to L5.

The sacrum is a curved (kyphotic) wedge of five fused segments with lateral masses, alae that
reach the iliac wings at the sacroiliac joints, a dorsal plate with the median crest, the
sacral canal and four pairs of anterior sacral foramina cut through it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sneakynet.phantom.shapes import (
    Capsule,
    Clip,
    Cylinder,
    Difference,
    Ellipsoid,
    Shape,
    Union,
    frame,
    plate,
    tube,
    unit,
)
from sneakynet.phantom.skeleton import MIN_RADIUS_MM, Vertebra, _table

X, Y, Z = np.eye(3)


def _dims(i: int, s: float) -> dict[str, float]:
    """Per-level sizes in phantom mm (level 0 = C1 ... 23 = L5; v1's tables, growing towards L5)."""
    r = lambda adult: max(adult * s, MIN_RADIUS_MM)  # noqa: E731
    return dict(
        cw=_table(i, {2: 12, 6: 12, 7: 10, 12: 8.5, 18: 9, 19: 10.5, 23: 12}) * s,  # canal half-width
        cd=_table(i, {2: 11, 6: 11, 7: 12, 18: 12, 19: 14, 23: 14}) * s,  # canal depth (AP)
        pr=r(_table(i, {2: 2.6, 6: 2.8, 7: 3.2, 18: 4.0, 19: 4.5, 23: 5})),  # pedicle half-width
        lt=max(_table(i, {2: 4.5, 6: 5, 7: 5.5, 18: 6.5, 19: 7, 23: 7.5}) * s, 3.0),  # lamina thickness
        ar=r(_table(i, {2: 3.2, 6: 3.4, 7: 3.0, 18: 3.4, 19: 4.0, 23: 4.5})),  # articular process radius
        sl=_table(i, {1: 20, 2: 12, 5: 18, 6: 28, 7: 32, 12: 38, 18: 28, 19: 30, 23: 25}) * s,  # spinous length
        sa=np.radians(_table(i, {1: 15, 5: 15, 6: 10, 7: 25, 12: 60, 15: 50, 18: 20, 19: 8, 23: 5})),
        st=max(_table(i, {2: 4.5, 6: 5.5, 7: 6, 18: 7, 19: 7.5, 23: 8}) * s, 3.2),  # spinous thickness
        tl=_table(i, {1: 10, 2: 11, 6: 13, 7: 28, 12: 25, 18: 12, 19: 22, 21: 30, 23: 26}) * s,
        ta=np.radians(_table(i, {2: -25, 6: -20, 7: 20, 12: 35, 18: 40, 19: 5, 23: 0})),  # + = backwards
        tr=r(_table(i, {2: 2.6, 6: 2.8, 7: 4.2, 18: 4.0, 19: 3.6, 23: 4.0})),
    )


def _body(v: Vertebra, s: float) -> Shape:
    """Vertebral body: end plates full size, a waist 7 % narrower, shallow end-plate hollows, flat back."""
    ax, up = v.axes, v.axes[:, 2]
    rim = max(1.5 * s, 1.0)
    ring = 0.28 * v.hz
    top = Cylinder(v.centre + up * (v.hz - ring), ax, v.rx, v.ry, ring, rounding=rim)
    bottom = Cylinder(v.centre - up * (v.hz - ring), ax, v.rx, v.ry, ring, rounding=rim)
    waist = Cylinder(v.centre, ax, 0.93 * v.rx, 0.93 * v.ry, v.hz - ring, rounding=rim)
    flat_back = Clip(Union((top, waist, bottom)), v.at(0, 0.86 * v.ry, 0), ax[:, 1])
    depth = max(1.2 * s, 0.8)
    hollows = tuple(Ellipsoid(v.centre + up * sign * (v.hz + 2.5 * s - depth), np.array([0.62 * v.rx, 0.58 * v.ry,
                                                                                            2.5 * s]), ax)
                    for sign in (1, -1))
    return Difference(flat_back, hollows)


def _arch_left(v: Vertebra, d: dict[str, float], yc: float) -> tuple[list[Shape], np.ndarray]:
    """Left pedicle and lamina of ``v`` (canal centre ``yc`` behind the body centre); also the arch corner."""
    ax = v.axes
    xp = d["cw"] + 0.8 * d["pr"]
    zp = 0.2 * v.hz
    front, back = v.at(xp, 0.55 * v.ry, zp), v.at(xp, yc + 0.15 * d["cd"], zp)
    pedicle = Cylinder((front + back) / 2, frame(ax[:, 1], ax[:, 0]), d["pr"], 1.45 * d["pr"],
                       float(np.linalg.norm(back - front)) / 2, rounding=0.5 * d["pr"])
    y_mid = yc + d["cd"] / 2 + 0.45 * d["lt"]
    lam = plate(v.at(xp, yc, 0.55 * v.hz), v.at(0, y_mid, 0.35 * v.hz),
                v.at(0, y_mid, -1.0 * v.hz), v.at(xp, yc, -0.85 * v.hz), d["lt"])
    return [pedicle, *lam], v.at(xp, yc, zp)


def _processes_left(v: Vertebra, d: dict[str, float], corner: np.ndarray) -> tuple[list[Shape], np.ndarray]:
    """Left articular and transverse processes from the arch ``corner``; returns them and the transverse tip."""
    ax, i, up = v.axes, v.level, v.axes[:, 2]
    half = 0.45 * v.height
    parts: list[Shape] = [Capsule(corner + ax[:, 0] * 0.3 * d["ar"], corner + up * half + ax[:, 0] * 0.4 * d["ar"],
                                  d["ar"], 0.85 * d["ar"]),
                          Capsule(corner, corner - up * half - ax[:, 0] * 0.4 * d["ar"] + ax[:, 1] * 0.4 * d["ar"],
                                  d["ar"], 0.85 * d["ar"])]
    tdir = unit(np.cos(d["ta"]) * ax[:, 0] + np.sin(d["ta"]) * ax[:, 1] + 0.12 * up)
    tr = d["tr"]
    if i >= 19:  # lumbar: long flat plates from the pedicle, lying in the axial plane
        base = corner - ax[:, 1] * 0.25 * d["cd"]
        tip = base + tdir * d["tl"]
        parts += plate(base + up * 1.6 * tr, tip + up * 1.1 * tr, tip - up * 1.1 * tr, base - up * 1.6 * tr,
                       max(1.1 * tr, 3.0))
    elif i >= 7:  # thoracic: a rod whose tip carries the rib's tubercle
        tip = corner + tdir * d["tl"]
        parts.append(Capsule(corner, tip, tr, tr * 1.15))
    else:  # cervical: anterior and posterior bars around the transverse foramen
        tip = v.at(v.rx + d["tl"], 0.35 * v.ry, 0)
        parts += [Capsule(v.at(0.8 * v.rx, -0.15 * v.ry, 0), tip, tr, tr),
                  Capsule(corner, tip + ax[:, 1] * 0.5 * tr, tr, tr)]
    return parts, tip


def _spinous(v: Vertebra, d: dict[str, float], yc: float) -> list[Shape]:
    """Spinous process: a plate tapering from the laminae's junction down and back to its tip."""
    ax, i = v.axes, v.level
    post, up = ax[:, 1], ax[:, 2]
    base = v.at(0, yc + d["cd"] / 2 + 0.6 * d["lt"], 0)
    sdir = np.cos(d["sa"]) * post - np.sin(d["sa"]) * up
    across = np.sin(d["sa"]) * post + np.cos(d["sa"]) * up  # perpendicular to sdir in the sagittal plane
    tip_half = (0.85 if i >= 19 else 0.3) * v.hz  # lumbar: a tall hatchet
    if 1 <= i <= 5:  # C2-C6: short, ending in two tubercles
        end = base + sdir * 0.7 * d["sl"]
        parts = plate(base + up * 0.45 * v.hz, end + across * 0.3 * v.hz, end - across * 0.3 * v.hz,
                      base - up * 0.9 * v.hz, d["st"])
        for side in (1, -1):
            parts.append(Capsule(end, base + sdir * d["sl"] + ax[:, 0] * side * 3.5 * v.rx / 8.5,
                                 0.5 * d["st"], 0.55 * d["st"]))
        return parts
    tip = base + sdir * d["sl"]
    return plate(base + up * 0.45 * v.hz, tip + across * tip_half, tip - across * tip_half,
                 base - up * 0.95 * v.hz, d["st"]) + [Capsule(tip + across * tip_half, tip - across * tip_half,
                                                              0.6 * d["st"], 0.6 * d["st"])]


def vertebra_parts(v: Vertebra, s: float) -> tuple[list[Shape], dict[str, np.ndarray]]:
    """All parts of mobile vertebra ``v`` (C2-L5) at body scale ``s`` and its landmarks (left transverse
    tip and radius, where the ribs attach, and the canal centre).

    The right half is built like the left in ``v``'s frame with its lateral axis reversed, so the
    vertebra stays symmetric about its own mid-plane when scoliosis tilts it.
    """
    d = _dims(v.level, s)
    yc = 0.86 * v.ry + d["cd"] / 2
    core: list[Shape] = [_body(v, s)]
    side_parts: list[Shape] = []
    tip = v.centre
    for flip in (1.0, -1.0):
        vs = replace(v, axes=v.axes * np.array([flip, 1.0, 1.0]))
        arch, corner = _arch_left(vs, d, yc)
        procs, t = _processes_left(vs, d, corner)
        core += arch
        side_parts += procs
        tip = t if flip > 0 else tip
    if v.name == "C2":  # the dens rises into the ring of C1
        core.append(Capsule(v.at(0, -0.5 * s, v.hz), v.at(0, -1 * s, v.hz + 17 * s), 5 * s, 4.2 * s))
    canal = Cylinder(v.at(0, yc, 0), v.axes, d["cw"], d["cd"] / 2, 3 * v.height, rounding=0.5)
    parts: list[Shape] = [Difference(Union(tuple(core)), (canal,))] + side_parts + _spinous(v, d, yc)
    marks = {f"{v.name}_tp_tip": tip, f"{v.name}_tp_radius": np.array([d["tr"] * 1.15]),
             f"{v.name}_canal": v.at(0, yc, 0)}
    return parts, marks


SACRUM_LENGTHS = np.array([24, 22, 20, 18, 16])  # adult mm per segment, S1..S5
SACRUM_BODY = np.array([[22, 16], [17, 13], [13, 11], [10, 9], [8, 7]])  # half width, half depth of the bodies
SACRUM_WIDTH = np.array([50, 43, 34, 24, 14])  # half width with the lateral masses
SACRAL_CANAL = np.array([9, 7.5, 6, 4.5, 3.5])  # canal radius per segment
FORAMINA = np.array([[27, 5.0], [24, 4.5], [20, 4.0], [16, 3.5]])  # |x| and radius of the anterior foramina


def _sacral_frames(top: np.ndarray, s1: np.ndarray, s: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(start, centre, axes) of S1..S5 along the kyphotic curve of v1's sacrum (from S1's top and centre).

    axes columns: lateral, posterior (dorsal surface normal), down the sacrum.
    """
    d0 = unit(s1 - top)
    tilt = np.arctan2(d0 @ Y, -(d0 @ Z))
    out, p = [], np.asarray(top, float)
    for k, length in enumerate(SACRUM_LENGTHS * s):
        ang = tilt - np.radians(12) * k
        d = np.cos(ang) * -Z + np.sin(ang) * Y
        axes = np.stack([X, np.cross(-d, X), d], axis=1)
        out.append((p, p + d * length / 2, axes))
        p = p + d * length
    return out


def sacrum_parts(top: np.ndarray, s1: np.ndarray, s: float, pw: float) -> list[Shape]:
    """The sacrum: curved wedge of five segments (bodies in front, lateral masses closing the canal
    behind them), alae, the median crest; canal and anterior foramina cut through it. ``pw``: the
    pelvis width factor, which also sets the width of the lateral masses and alae."""
    frames = _sacral_frames(top, s1, s)
    solid: list[Shape] = []
    holes: list[Shape] = []
    canal, crest = [], []
    for k, (start, c, ax) in enumerate(frames):
        half = SACRUM_LENGTHS[k] * s / 2 + 0.5 * s
        rx, ry = SACRUM_BODY[k] * s
        cr = SACRAL_CANAL[k] * s
        back = ry + 2 * cr + 4 * s  # dorsal surface behind the body centre
        solid.append(Cylinder(c, ax, rx, ry, half, rounding=1.5 * s))
        solid.append(Cylinder(c + ax[:, 1] * (back - 0.5 * ry) / 2, ax, SACRUM_WIDTH[k] * s * pw,
                              (back + 0.5 * ry) / 2, half, rounding=3 * s))
        canal.append(c + ax[:, 1] * (ry + cr))
        crest.append(c + ax[:, 1] * (back + 1.5 * s))
        if k > 0:  # a pair of anterior foramina where segments k-1 and k fused, through to the back
            fx, fr = FORAMINA[k - 1] * s
            for side in (1, -1):
                mid = start + ax[:, 0] * side * fx
                holes.append(Capsule(mid - ax[:, 1] * 2 * back, mid + ax[:, 1] * 2 * back, fr, fr))
    c1 = frames[0][1]
    for side in (1, -1):  # alae: rising to the sacroiliac joints
        solid.append(Ellipsoid(c1 + np.array([side * 31 * s * pw, 8 * s, 4 * s]), np.array([19, 18, 22]) * s))
    solid += tube(np.array(crest[:4]), max(3.5 * s, MIN_RADIUS_MM))
    holes += tube(np.array(canal), SACRAL_CANAL * s)
    return [Difference(Union(tuple(solid)), tuple(holes))]
