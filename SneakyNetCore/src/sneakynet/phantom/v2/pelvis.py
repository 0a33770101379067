"""Phantom v2 hip bone: iliac wing as a curved shell, a solid acetabular cup, rami around the obturator foramen.

The iliac wing is a piece of a bowl-shaped ellipsoid surface (lateral and upright at the crest,
turning medially towards the acetabulum, concave on its inner side: the iliac fossa), thick
enough for cortex around marrow (6.5 mm at adult size), cut to a fan-shaped outline whose
upper edge carries the thick iliac crest from the posterior superior to the anterior superior
iliac spine; behind and below, the greater sciatic notch is cut out of it. Behind, the iliac
tuberosity reaches the sacrum's ala at the sacroiliac joint; below, the body of the ilium
joins the acetabulum, a solid cup around the femoral head with a 2 mm joint space, open
laterally, forwards and down. The superior pubic ramus, the pubic body (a few millimetres from
its twin at the symphysis), the ischiopubic ramus and the ischium with its tuberosity ring the
obturator foramen. Built for the left side (x > 0) and mirrored.
"""
from __future__ import annotations

import numpy as np

from sneakynet.phantom.shapes import Capsule, Clip, Cylinder, Difference, Ellipsoid, Intersection, Shape, Shell
from sneakynet.phantom.shapes import Sphere, frame, tube, unit

X, Y, Z = np.eye(3)
WING_MM = 6.5  # adult thickness of the iliac wing
CREST_RADIUS_MM = 6.5
FEMORAL_HEAD_MM = 23.0  # v1's femoral head radius (adult)


def _wing_surface(S1: np.ndarray, s: float, pw: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and radii of the ellipsoid whose surface is the wing's mid-surface."""
    return np.array([40 * s * pw, S1[1] - 45 * s, S1[2] + 30 * s]), np.array([88 * s * pw, 90 * s, 130 * s])


def _on_surface(c: np.ndarray, r: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Points (N x 3) on the lateral side of ellipsoid (c, r) at the given y and z."""
    q = 1 - ((y - c[1]) / r[1]) ** 2 - ((z - c[2]) / r[2]) ** 2
    return np.stack([c[0] + r[0] * np.sqrt(np.maximum(q, 0.0)), y, z], axis=1)


def _ilium(S1: np.ndarray, H: np.ndarray, s: float, pw: float) -> tuple[list[Shape], np.ndarray]:
    """Wing, crest, iliac tuberosity and body of the ilium; returns them and the crest points."""
    c, r = _wing_surface(S1, s, pw)
    yo, ay, zo, az = S1[1] - 24 * s, 62 * s, S1[2] - 25 * s, 70 * s
    outline = Cylinder(np.array([c[0] + r[0] / 2, yo, zo]), frame(X, Y), ay, az, r[0], rounding=1.0)
    medial = Clip(Shell(Ellipsoid(c, r + WING_MM * s / 2), WING_MM * s), np.array([53 * s * pw, 0, 0]), -X)
    notch = Cylinder(np.array([c[0] + r[0] / 2, S1[1] + 34 * s, S1[2] - 88 * s]), frame(X, Y), 27 * s, 27 * s, r[0])
    wing = Difference(Intersection((medial, outline)), (notch,))  # the bowl's lateral wall, fan-shaped
    theta = np.radians(np.linspace(12, 180, 12))
    crest = _on_surface(c, r, yo + ay * np.cos(theta), zo + az * np.sin(theta))
    parts: list[Shape] = [wing, *tube(crest, np.interp(np.arange(12), [0, 4, 11], [8, 6.5, 5.5]) * s)]
    parts.append(Ellipsoid(np.array([62 * s * pw, S1[1] + 22 * s, S1[2] - 28 * s]), np.array([11, 20, 28]) * s))
    parts.append(Ellipsoid(H + np.array([0, 6, 36]) * s, np.array([15, 24, 24]) * s))
    return parts, crest


def _acetabulum(H: np.ndarray, s: float) -> Shape:
    """A solid cup: an ellipsoid block around the femoral head, hollowed to the head plus 2 mm, open
    laterally, forwards and down."""
    n_open = unit(np.array([1.0, -0.45, -0.6]))
    block = Ellipsoid(H + np.array([-7, 2, 4]) * s, np.array([31, 34, 34]) * s)
    cup = Difference(block, (Sphere(H, (FEMORAL_HEAD_MM + 2) * s),))
    return Clip(cup, H + n_open * 3 * s, n_open)


def hip_parts(S1: np.ndarray, H: np.ndarray, s: float, pw: float) -> tuple[list[Shape], dict[str, np.ndarray]]:
    """Parts of the left hip bone (sacrum top ``S1``, hip centre ``H``, body scale ``s``, pelvis width
    factor ``pw``) and its landmarks (crest, anterior superior iliac spine, ischial tuberosity)."""
    ilium, crest = _ilium(S1, H, s, pw)
    pub_body = np.array([11.5 * s, H[1] - 60 * s, H[2] - 26 * s])
    it = np.array([60 * s * pw, H[1] + 38 * s, H[2] - 62 * s])
    rami: list[Shape] = [
        Capsule(H + np.array([-16, -16, 6]) * s, pub_body + np.array([2, 0, 10]) * s, 8.5 * s, 7 * s),
        Ellipsoid(pub_body, np.array([8.5, 10, 17]) * s),
        Capsule(H + np.array([-8 * s, 16 * s, -22 * s]), it, 11 * s, 10 * s),
        Ellipsoid(it, np.array([12, 14, 13]) * s),
        Capsule(it, pub_body + np.array([0, 6 * s, -14 * s]), 6.5 * s, 6 * s),
    ]
    marks = {"iliac_crest_left": crest[np.argmax(crest[:, 0])], "asis_left": crest[-1],
             "ischial_tuberosity_left": it, "pubis_left": pub_body}
    return [_acetabulum(H, s), *ilium, *rami], marks
