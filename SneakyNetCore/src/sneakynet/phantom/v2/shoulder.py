"""Phantom v2 shoulder girdle: scapula and clavicle that follow the arm.

The scapula is a triangular plate with thickened borders, a spine standing out behind it as a
plate that ends in the flat acromion, a hooked coracoid and the glenoid. Raising the arm
rotates it upwards (scapulohumeral rhythm: about 0.4 degrees per degree of abduction beyond
20, at most 60) about an antero-posterior axis between the root of its spine and the glenoid
and lifts it by up to 12 mm, so the glenoid turns up and out, the inferior angle swings
laterally and the acromion rises; the humeral
head is then placed on the turned glenoid. The S-shaped clavicle runs from the sternum to the
acromion, so it is elevated with it. Built for the left side (x > 0); the right side is the
mirror image of a left side built with the right arm's rotation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.phantom.shapes import Cylinder, Ellipsoid, Shape, Slab, frame, plate, rotation_matrix, tube, unit
from sneakynet.phantom.skeleton import MIN_RADIUS_MM, catmull_rom
from sneakynet.phantom.v2.rigid import Rigid

X, Y, Z = np.eye(3)
MAX_ROTATION_DEG = 60.0
PIVOT = 0.65  # the rotation axis passes this far from the root of the spine towards the glenoid
SHRUG_MM = 12.0  # the whole scapula rises this much (adult mm) at full rotation


def upward_rotation_deg(abduction_deg: float) -> float:
    """Scapular upward rotation for an arm abducted by ``abduction_deg`` (0 for an arm at the side)."""
    return float(np.clip(0.4 * (abduction_deg - 20.0), 0.0, MAX_ROTATION_DEG))


@dataclass(frozen=True)
class Girdle:
    """One (left-built) shoulder girdle: bone parts, glenoid centre and its outward normal, acromion tip."""

    scapula: list[Shape]
    clavicle: list[Shape]
    glenoid: np.ndarray
    glenoid_normal: np.ndarray
    acromion: np.ndarray
    anchor: np.ndarray


def _scapula(G: np.ndarray, sa: np.ndarray, ia: np.ndarray, s: float) -> tuple[list[Shape], np.ndarray, np.ndarray]:
    """Scapula parts around glenoid ``G`` with superior and inferior angles ``sa``, ``ia``; also the root of
    the spine and the acromion tip."""
    la = G + np.array([-17 * s, 15 * s, 0])
    parts: list[Shape] = [Slab(sa, ia, la, max(4 * s, 3.6))]
    parts += tube(np.array([sa, ia]), max(3.6 * s, MIN_RADIUS_MM)) + tube(np.array([ia, la]), max(5.5 * s, 2.5))
    root = sa + (ia - sa) * 0.28 + Y * 3 * s
    ac_base = G + np.array([-4 * s, 30 * s, 24 * s])
    ac_tip = G + np.array([20 * s, 6 * s, 33 * s])
    parts += plate(root, ac_base - Y * 4 * s, ac_base + Y * 12 * s, root + Y * 9 * s, max(5 * s, 3.6))  # spine
    parts.append(Cylinder((ac_base + ac_tip) / 2, frame(ac_tip - ac_base, Y - Z), 12 * s, 4.5 * s,
                          float(np.linalg.norm(ac_tip - ac_base)) / 2 + 4 * s, rounding=2 * s))  # acromion
    parts.append(Ellipsoid(G, np.array([6, 13, 18]) * s))  # glenoid
    hook = np.array([G + np.array([-5, -4, 16]) * s, G + np.array([-8, -20, 24]) * s, G + np.array([2, -34, 14]) * s])
    parts += tube(hook, np.array([5.5, 5, 4.5]) * s)  # coracoid
    return parts, root, ac_tip


def _clavicle(jugular: np.ndarray, ac_tip: np.ndarray, s: float) -> list[Shape]:
    """S-shaped clavicle from beside the jugular notch to just before the acromion tip."""
    med = np.array([20 * s, jugular[1] + 2 * s, jugular[2] + 2 * s])
    lat = ac_tip + np.array([-10 * s, -16 * s, 4 * s])
    c1 = med + (lat - med) * 0.33 + np.array([0, -12 * s, 4 * s])  # convex forwards medially
    c2 = med + (lat - med) * 0.72 + np.array([0, 4 * s, 6 * s])  # concave forwards laterally
    pts = catmull_rom(np.array([med, c1, c2, lat]), 3)
    radii = np.interp(np.linspace(0, 1, len(pts)), [0, 0.5, 1], [8 * s, 5.5 * s, 6 * s])
    return tube(pts, radii)


def girdle(G: np.ndarray, sa: np.ndarray, ia: np.ndarray, jugular: np.ndarray, s: float,
           rotation_deg: float) -> Girdle:
    """The left shoulder girdle rotated upwards by ``rotation_deg`` (see module docstring)."""
    parts, root, ac_tip = _scapula(G, sa, ia, s)
    rot = rotation_matrix(-Y, np.radians(rotation_deg))  # about the antero-posterior axis, lateral points rising
    pivot = root + PIVOT * (G - root)
    shift = pivot - rot @ pivot + Z * SHRUG_MM * s * rotation_deg / MAX_ROTATION_DEG
    if rotation_deg > 0:
        parts = [Rigid(p, rot, shift) for p in parts]
    move = lambda p: rot @ np.asarray(p, float) + shift  # noqa: E731
    ac = move(ac_tip)
    return Girdle(parts, _clavicle(jugular, ac, s), move(G), rot @ X, ac, move(ia + (G - ia) * 0.4))


def head_offset(glenoid: np.ndarray, normal: np.ndarray, head: np.ndarray, s: float) -> np.ndarray:
    """Shift that puts a humeral head centred at ``head`` on the glenoid: 30 mm (adult) along its normal."""
    return glenoid + unit(normal) * 30 * s - head
