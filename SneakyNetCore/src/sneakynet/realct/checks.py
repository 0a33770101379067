"""Geometry and reference-free checks of a label map on a real CT.

Everything physical is done in ITK's LPS world space: +x points to the patient's left whatever
the image's orientation, so the side of a bone is read from the direction cosines, not from
array axes.

* body mask: CT above ``BODY_HU`` (-500 HU): the largest connected piece (the torso) and every
  other big piece that is not thin (arms apart from the trunk), not the scanner table;
* midline: the torso's centre of mass along the patient's left-right (LPS x) axis;
* ``bone_like_share``: share of labelled voxels above ``BONE_LIKE_HU`` (150 HU) -- labels on
  soft tissue or air pull it down;
* ``dense_labelled_share``: share of dense voxels (above ``DENSE_HU``, 300 HU) inside the body
  that carry a label -- bone the labels miss pulls it down;
* ``outside_body_share``: share of labelled voxels outside the body mask (the scanner table, air).
Both are calibrated on the references (the reference's own values are reported beside them):
real bone is mostly marrow, so even a perfect label map is far from 1 on the first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from sneakynet.labels import load_label_table

BODY_HU = -500.0
BONE_LIKE_HU = 150.0
DENSE_HU = 300.0
OPENING_MM = 3.0


def body_parts(ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (k, j, i) masks ``(body, torso)``.

    Pieces above ``BODY_HU`` (6-connected); the torso is the largest, the body adds every piece
    of at least 1 % of its size that is not thin: half of it must survive a 3 mm morphological
    opening. That keeps arms lying apart from the trunk and drops the scanner table's shells.
    """
    above = sitk.BinaryThreshold(ct, BODY_HU, 1e9, 1, 0)
    pieces = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(above), sortByObjectSize=True))
    radius = [max(1, int(round(OPENING_MM / s))) for s in ct.GetSpacing()]
    thick = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(above, radius, sitk.sitkBall)) > 0  # a copy: the image is a temporary
    size = np.bincount(pieces.reshape(-1))
    kept = np.bincount(pieces[thick], minlength=size.size)
    if size.size < 2:
        return np.zeros(pieces.shape, bool), np.zeros(pieces.shape, bool)
    body_ids = [c for c in range(1, size.size) if size[c] >= 0.01 * size[1] and kept[c] >= 0.5 * size[c]]
    return np.isin(pieces, body_ids), pieces == 1


def physical_centroid(image: sitk.Image, mask: np.ndarray) -> np.ndarray | None:
    """Centre of mass of a (k, j, i) mask in LPS millimetres; None for an empty mask."""
    idx = np.nonzero(mask)
    if not idx[0].size:
        return None
    centre = [float(np.mean(axis)) for axis in idx[::-1]]  # (i, j, k)
    return np.array(image.TransformContinuousIndexToPhysicalPoint(centre))


def label_centroids(image: sitk.Image, labels: np.ndarray) -> dict[int, np.ndarray]:
    """LPS centre of mass (mm) of every label present in a (k, j, i) label map, in one pass."""
    idx = np.nonzero(labels)
    if not idx[0].size:
        return {}
    lab = labels[idx].astype(np.intp)
    counts = np.bincount(lab)
    present = [int(c) for c in np.flatnonzero(counts)]
    sums = [np.bincount(lab, weights=axis) for axis in idx[::-1]]  # i, j, k
    return {c: np.array(image.TransformContinuousIndexToPhysicalPoint(
        [float(s[c] / counts[c]) for s in sums])) for c in present}


def midline_x(ct: sitk.Image, torso: np.ndarray) -> float:
    """LPS x (mm, + = patient left) of the torso's centre along the left-right axis."""
    centre = physical_centroid(ct, torso)
    if centre is None:
        raise ValueError("the CT has no body voxels above -500 HU, so it has no midline")
    return float(centre[0])


@dataclass
class SideCheck:
    """One sided bone's predicted centre relative to the midline."""

    bone: str
    side: str  # the side the label says
    offset_mm: float | None  # centre's LPS x minus the midline; + = patient left; None = not predicted

    @property
    def correct(self) -> bool:
        if self.offset_mm is None:
            return False
        return self.offset_mm > 0 if self.side == "left" else self.offset_mm < 0


def side_checks(centroids: dict[int, np.ndarray], midline: float, ids: list[int]) -> list[SideCheck]:
    """Side of each sided bone in ``ids`` (midline bones are skipped)."""
    table = load_label_table()
    out = []
    for c in ids:
        bone = table.by_id(c)
        if bone.side == "none":
            continue
        centre = centroids.get(c)
        out.append(SideCheck(bone.name, bone.side, None if centre is None else float(centre[0] - midline)))
    return out


def reference_free(ct_hu: np.ndarray, labels: np.ndarray, body: np.ndarray) -> dict[str, float]:
    """The two intensity checks of a (k, j, i) label map on its CT (see the module docstring)."""
    labelled = labels > 0
    dense = body & (ct_hu > DENSE_HU)
    n_lab, n_dense = int(labelled.sum()), int(dense.sum())
    return {
        "bone_like_share": float((ct_hu[labelled] > BONE_LIKE_HU).sum() / n_lab) if n_lab else float("nan"),
        "dense_labelled_share": float((dense & labelled).sum() / n_dense) if n_dense else float("nan"),
        "outside_body_share": float((labelled & ~body).sum() / n_lab) if n_lab else float("nan"),
        "labelled_voxels": n_lab,
        "dense_voxels": n_dense,
    }
