"""Anatomical consistency of a predicted label map: vertebrae in order, ribs numbered from their
vertebra, sided bones on their side of the body midline (levers of :mod:`sneakynet.postprocess`).

A network that sees a patch and some context can put a level or a side on the wrong piece of
bone; anatomy says how the pieces must relate. Directions come from the image's direction cosines
(ITK's LPS world: +x patient left, +z head), so any orientation of the array works:

* :func:`order_vertebrae`: the vertebra voxels of each axial slice vote for their levels; the levels
  (C1..L5) that run monotone from head to feet and overrule the fewest votes (dynamic programming
  over slices x levels) are given to every vertebra voxel of the slice, so no level appears in two
  places with another level in between. :func:`order_vertebra_pieces` is the gentler variant: the
  units are the connected pieces of each vertebra label, and only out-of-order pieces change;
* :func:`number_ribs`: a rib piece whose medial end touches a thoracic vertebra (within
  ``reach_mm``) takes that vertebra's number (rib n articulates with vertebra Tn); untouched ribs
  keep their label;
* :func:`fix_sides`: a piece of a sided bone whose centre lies more than ``margin_mm`` on the other
  side of the body midline (the trunk's centre of mass: the largest piece above -500 HU) takes its
  twin's label.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from sneakynet.labels import load_label_table

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
VERTEBRAE = tuple(range(4, 28))  # vertebra_C1 .. vertebra_L5 in spine order
THORACIC_T1 = 11  # vertebra_T1; T1..T12 are 11..22
RIBS = {"left": 30, "right": 42}  # rib_<side>_1; ribs 1..12 are consecutive
BODY_HU = -500.0
_FULL = np.ones((3, 3, 3), dtype=bool)

__all__ = ["PatientFrame", "order_vertebrae", "order_vertebra_pieces", "number_ribs", "fix_sides", "body_midline_mm",
           "monotone_path", "monotone_levels"]


class PatientFrame:
    """Array (z, y, x) index -> LPS millimetres relative to the first voxel, from spacing and direction."""

    def __init__(self, spacing_zyx: Sequence[float], direction: Sequence[float] = IDENTITY) -> None:
        d = np.asarray(direction, dtype=float).reshape(3, 3)
        self.matrix = d @ np.diag(np.asarray(spacing_zyx, dtype=float)[::-1])  # xyz index -> LPS mm
        self.spacing = tuple(float(s) for s in spacing_zyx)

    def lps(self, index_zyx: Sequence[float]) -> np.ndarray:
        """LPS offset (mm) of a (possibly fractional) array index."""
        return self.matrix @ np.asarray(index_zyx, dtype=float)[::-1]


def _pieces(labels: np.ndarray, ids: Sequence[int]) -> list[tuple[int, tuple[slice, ...], np.ndarray]]:
    """``(label, box, mask)`` of every 26-connected piece of every label in ``ids`` (mask within box)."""
    out = []
    boxes = ndimage.find_objects(labels)
    for label in ids:
        if label > len(boxes) or boxes[label - 1] is None:
            continue
        box = boxes[label - 1]
        parts, count = ndimage.label(labels[box] == label, structure=_FULL)
        for i, sub in enumerate(ndimage.find_objects(parts), start=1):
            inner = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
            out.append((label, inner, parts[sub] == i))
    return out


def _centre(box: tuple[slice, ...], mask: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(mask)) + [s.start for s in box]


def monotone_path(costs: np.ndarray) -> list[int]:
    """The non-decreasing sequence ``a_0 <= a_1 <= ...`` minimising ``sum_i costs[i, a_i]`` (dynamic
    programming over rows x levels)."""
    total = np.zeros(costs.shape[1])
    back = []
    for row in costs:
        prefix = np.minimum.accumulate(total)  # best total over every level <= a
        arg = np.array([int(np.argmin(total[: a + 1])) for a in range(total.size)])
        back.append(arg)
        total = prefix + row
    out, a = [], int(np.argmin(total))
    for arg in reversed(back):
        out.append(a)
        a = int(arg[a])
    return out[::-1]


def monotone_levels(levels: Sequence[int], weights: Sequence[float], n_levels: int) -> list[int]:
    """Non-decreasing levels closest to ``levels`` (least total weight changed; among equals, changed
    units move to the nearest level)."""
    grid = np.arange(n_levels)
    return monotone_path(np.array([w * ((grid != lv) + 1e-6 * np.abs(grid - lv)) for lv, w in zip(levels, weights)]))


def si_axis(frame: PatientFrame) -> tuple[int, bool]:
    """The array axis nearest the body axis and whether its index grows towards the head."""
    column = int(np.argmax(np.abs(frame.matrix[2])))  # xyz index with the largest LPS z component
    return 2 - column, bool(frame.matrix[2, column] > 0)


def order_vertebrae(labels: np.ndarray, frame: PatientFrame) -> int:
    """In place: vertebra levels monotone from head to feet, slice by slice along the body axis.

    Each axial slice's vertebra voxels vote for their levels; the non-decreasing sequence of levels
    (head to feet) that disagrees with the fewest votes is found by :func:`monotone_path`, and every
    vertebra voxel of a slice takes its slice's level, so stray pieces with another level follow the
    slice and no level appears in two places. Returns the number of voxels relabelled.
    """
    axis, head_up = si_axis(frame)
    n = len(VERTEBRAE)
    moved = np.moveaxis(labels, axis, 0)  # a view: writes go to ``labels``
    level = moved.astype(np.int16) - VERTEBRAE[0]
    is_vertebra = (level >= 0) & (level < n)
    slice_index = np.broadcast_to(np.arange(moved.shape[0]).reshape(-1, 1, 1), moved.shape)
    votes = np.bincount(slice_index[is_vertebra] * n + level[is_vertebra], minlength=moved.shape[0] * n)
    votes = votes.reshape(moved.shape[0], n).astype(float)
    if votes.sum() == 0:
        return 0
    order = np.arange(moved.shape[0])[::-1] if head_up else np.arange(moved.shape[0])
    grid = np.arange(n)
    costs = [votes[i].sum() - votes[i] + 1e-6 * (votes[i][None, :] * np.abs(grid[:, None] - grid[None, :])).sum(1)
             for i in order]
    new_level = np.empty(moved.shape[0], np.int16)
    new_level[order] = monotone_path(np.array(costs))
    target = (new_level[:, None, None] + VERTEBRAE[0]).astype(labels.dtype)
    change = is_vertebra & (moved != target)
    moved[change] = np.broadcast_to(target, moved.shape)[change]
    return int(change.sum())


def order_vertebra_pieces(labels: np.ndarray, frame: PatientFrame) -> int:
    """In place: vertebra levels monotone from head to feet, piece by piece: each connected piece of a
    vertebra label is a unit; sorted head to feet by centre, the units get the non-decreasing levels
    that change the fewest voxels (:func:`monotone_levels`). Gentler than :func:`order_vertebrae`:
    only out-of-order pieces change. Returns the number of voxels relabelled."""
    units = _pieces(labels, VERTEBRAE)
    if len(units) < 2:
        return 0
    height = [frame.lps(_centre(box, mask))[2] for _, box, mask in units]  # LPS z: + = head
    order = np.argsort(-np.asarray(height), kind="stable")
    levels = [VERTEBRAE.index(units[i][0]) for i in order]
    sizes = [float(units[i][2].sum()) for i in order]
    new = monotone_levels(levels, sizes, len(VERTEBRAE))
    changed = 0
    for i, level in zip(order, new):
        label, box, mask = units[i]
        if VERTEBRAE[level] != label:
            labels[box][mask] = VERTEBRAE[level]
            changed += int(mask.sum())
    return changed


def number_ribs(labels: np.ndarray, frame: PatientFrame, reach_mm: float = 4.0) -> int:
    """In place: each rib piece touching thoracic vertebrae takes the number of the one it touches
    most; returns the number of voxels relabelled."""
    table = load_label_table()
    ribs = [RIBS[side] + n for side in RIBS for n in range(12)]
    grow = [max(1, int(round(reach_mm / s))) for s in frame.spacing]
    changed = 0
    for label, box, mask in _pieces(labels, ribs):
        big = tuple(slice(max(0, b.start - g), min(n, b.stop + g)) for b, g, n in zip(box, grow, labels.shape))
        local = np.zeros([b.stop - b.start for b in big], bool)
        local[tuple(slice(b.start - B.start, b.stop - B.start) for b, B in zip(box, big))] = mask
        near = ndimage.binary_dilation(local, structure=_ellipsoid(grow)) & ~local
        touched = labels[big][near]
        touched = touched[(touched >= THORACIC_T1) & (touched < THORACIC_T1 + 12)]
        if not touched.size:
            continue
        number = int(np.bincount(touched - THORACIC_T1).argmax())  # 0-based: T1 -> rib 1
        new = RIBS[table.by_id(label).side] + number
        if new != label:
            labels[box][mask] = new
            changed += int(mask.sum())
    return changed


def _ellipsoid(radius: Sequence[int]) -> np.ndarray:
    """A structuring element reaching ``radius`` voxels per axis."""
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    return sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius)) <= 1.0


def body_midline_mm(hu: np.ndarray, frame: PatientFrame) -> float | None:
    """LPS x (mm, relative to the first voxel) of the trunk's centre: the largest 6-connected piece
    above -500 HU; None when nothing is above."""
    parts, count = ndimage.label(hu > BODY_HU)
    if not count:
        return None
    trunk = int(np.argmax(np.bincount(parts.ravel())[1:])) + 1
    return float(frame.lps(ndimage.center_of_mass(parts == trunk))[0])


def fix_sides(labels: np.ndarray, hu: np.ndarray, frame: PatientFrame, margin_mm: float = 15.0) -> int:
    """In place: pieces of sided bones clearly on the other side of the midline take their twin's
    label; returns the number of voxels relabelled (0 when the CT has no body)."""
    midline = body_midline_mm(hu, frame)
    if midline is None:
        return 0
    table = load_label_table()
    twin = table.mirror_lut()
    sided = [b.id for b in table if b.side in ("left", "right")]
    changed = 0
    for label, box, mask in _pieces(labels, sided):
        offset = frame.lps(_centre(box, mask))[0] - midline  # + = patient left
        side = table.by_id(label).side
        if (side == "left" and offset < -margin_mm) or (side == "right" and offset > margin_mm):
            labels[box][mask] = twin[label]
            changed += int(mask.sum())
    return changed
