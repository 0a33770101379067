"""Segmentation metrics of the paper (§2.3): class-wise DSC, its robust summary, confusion, HD95.

Conventions used throughout:

* Label maps are integer arrays with values 0..125 (0 = background, 1..125 = bones of
  :mod:`sneakynet.labels`). Arrays are in numpy index order, i.e. ``(k, j, i)`` for arrays
  from ``sitk.GetArrayFromImage``; ``spacing`` is given in the same order, in millimetres
  (so ``image.GetSpacing()[::-1]`` for a SimpleITK image).
* Per-class vectors have length 125: the value of bone id ``c`` is at index ``c - 1``.
  ``NaN`` means "not evaluated" (for DSC: the class is absent in both prediction and
  reference; for HD95: absent in at least one of them).
* Confusion matrices are 126 x 126 voxel counts, rows = reference class, columns =
  predicted class, index = label id (row/column 0 = background).

Summary statistic (paper §2.3, Tables 2/3): median and the 16 %/84 % quantiles (±1σ of a
normal distribution) of the class-wise DSC, over the classes with DSC > 0 only; the share
of evaluated classes with DSC > 0 is reported as "non-zero DSC". Quantiles use numpy's
default (linear interpolation) method.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from sneakynet.dataset import LabelMapError, label_value_counts
from sneakynet.labels import NUM_BONES, NUM_CLASSES

CLASS_IDS = np.arange(1, NUM_CLASSES)  # bone ids 1..125; per-class vectors are indexed by id - 1

# Voxels per bincount call: bounds the temporary int64 copy numpy makes to ~128 MB.
_CHUNK = 1 << 24


LabelRangeError = LabelMapError  # the one label-map exception (sneakynet.dataset), under its older name here


def check_label_array(labels: np.ndarray, what: str = "label map") -> np.ndarray:
    """Return ``labels`` as a uint8 array after checking it holds only integers in 0..125.

    Float arrays are accepted when every value is integral (some tools write label maps as
    float). The check is :func:`sneakynet.dataset.label_value_counts`; it raises
    :class:`LabelMapError` naming ``what`` and the offending values.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind == "b" or arr.size == 0:
        return arr.astype(np.uint8)
    if arr.dtype == np.uint8 and int(arr.max()) <= NUM_BONES:
        return arr  # the common case, without counting
    label_value_counts(arr, what, max_label=NUM_BONES)
    return arr.astype(np.uint8)


def confusion_matrix(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Full 126 x 126 voxel confusion matrix in one pass (rows = reference, columns = prediction).

    Computed with ``np.bincount`` on ``ref * 126 + pred`` in chunks, so memory stays bounded
    for whole-body volumes. Both maps must have the same shape and hold labels 0..125.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    p = check_label_array(pred, "prediction").reshape(-1)
    r = check_label_array(ref, "reference").reshape(-1)
    counts = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)
    for start in range(0, p.size, _CHUNK):
        idx = r[start:start + _CHUNK].astype(np.uint16) * NUM_CLASSES + p[start:start + _CHUNK]
        counts += np.bincount(idx, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


def dice_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class DSC = 2 TP / (2 TP + FP + FN) for ids 1..125 from a 126 x 126 confusion matrix.

    Returns a float64 vector of length 125; NaN where the class is absent in both maps
    (TP + FP + FN = 0), i.e. not evaluated rather than zero.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES}, got {cm.shape}")
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp  # reference c, predicted something else
    fp = cm.sum(axis=0) - tp  # predicted c, reference something else
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        dsc = np.where(denom > 0, 2 * tp / denom, np.nan)
    return dsc[1:]


def dice_per_class(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-class DSC (length 125, NaN = absent in both) between two label maps of equal shape."""
    return dice_from_confusion(confusion_matrix(pred, ref))


def summarize(dsc: np.ndarray | Sequence[float]) -> dict[str, float | int]:
    """Summarise a per-class DSC vector as the paper's Tables 2/3 do.

    NaN entries (classes not evaluated) are ignored. Of the evaluated classes, those with
    DSC = 0 (no true positive) are excluded from the quantiles and counted instead in
    ``nonzero_pct`` = 100 * (#classes with DSC > 0) / (#evaluated classes).

    Returns ``median``, ``plus`` = q84 - median, ``minus`` = median - q16 (both >= 0),
    ``q16``, ``q84``, ``nonzero_pct``, ``n_evaluated``, ``n_nonzero``. Statistics are NaN
    when no class has DSC > 0.
    """
    v = np.asarray(dsc, dtype=np.float64).ravel()
    evaluated = v[np.isfinite(v)]
    nonzero = evaluated[evaluated > 0]
    if nonzero.size:
        q16, median, q84 = (float(x) for x in np.quantile(nonzero, [0.16, 0.5, 0.84]))
    else:
        q16 = median = q84 = math.nan
    return {
        "median": median,
        "plus": q84 - median,
        "minus": median - q16,
        "q16": q16,
        "q84": q84,
        "nonzero_pct": 100.0 * nonzero.size / evaluated.size if evaluated.size else math.nan,
        "n_evaluated": int(evaluated.size),
        "n_nonzero": int(nonzero.size),
    }


def aggregate_cases(per_case: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """Class-wise value over several cases: the mean over the cases where the class is evaluated.

    ``per_case`` is ``(n_cases, 125)`` (NaN = not evaluated in that case). A class evaluated
    in no case stays NaN. This is the class-wise DSC that :func:`summarize` expects when
    pooling a test set: every case where a bone is present (or hallucinated) counts once,
    independent of the bone's voxel count in that case.
    """
    a = np.asarray(list(per_case) if not isinstance(per_case, np.ndarray) else per_case, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a (cases, classes) array, got shape {a.shape}")
    n = np.sum(np.isfinite(a), axis=0)
    total = np.nansum(a, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def format_table_row(name: str, summary: dict) -> str:
    """One Markdown row in the layout of the paper's Table 2: ``| A 3D U-Net | 0.64 | +0.19 | -0.34 | 94.5% |``."""
    def num(x: float, fmt: str) -> str:
        return "n/a" if x is None or not math.isfinite(x) else fmt.format(x)

    return (
        f"| {name} | {num(summary['median'], '{:.2f}')} | {num(summary['plus'], '+{:.2f}')} "
        f"| {num(summary['minus'], '-{:.2f}')} | {num(summary['nonzero_pct'], '{:.1f}%')} |"
    )


TABLE_HEADER = "| Config | Median DSC | +σ | -σ | non-zero DSC |\n|---|---:|---:|---:|---:|"


def sub_confusion(cm: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """The rows and columns of ``ids`` (label ids, in the given order) of a 126 x 126 confusion matrix."""
    ids = np.asarray(ids, dtype=np.intp)
    return np.asarray(cm)[np.ix_(ids, ids)]


def left_right_confusion(cm: np.ndarray, mirror_lut: Sequence[int]) -> int:
    """Voxels of a left bone predicted as its right twin plus voxels of a right bone predicted as its left twin.

    ``mirror_lut`` maps each label to its opposite-side twin (identity for midline bones and
    background), as :meth:`sneakynet.labels.LabelTable.mirror_lut` returns.
    """
    lut = np.asarray(mirror_lut, dtype=np.intp)
    ids = np.arange(len(lut))
    sided = ids[lut != ids]
    return int(np.asarray(cm)[sided, lut[sided]].sum())


# ----------------------------------------------------------------------------- Hausdorff


def surface_mask(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of surface voxels of every label at once (background excluded).

    A voxel is on the surface of its label if one of its 6 face neighbours has another
    label or lies outside the array; this equals ``mask XOR binary_erosion(mask)`` per class
    (6-connectivity, outside = background) but costs one pass for all 125 classes.
    """
    lab = np.asarray(labels)
    surf = np.zeros(lab.shape, dtype=bool)
    for axis in range(lab.ndim):
        n = lab.shape[axis]
        if n == 1:
            surf[...] = True
            break
        lo = [slice(None)] * lab.ndim
        hi = [slice(None)] * lab.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        diff = lab[tuple(lo)] != lab[tuple(hi)]
        surf[tuple(lo)] |= diff
        surf[tuple(hi)] |= diff
        edge = [slice(None)] * lab.ndim
        edge[axis] = 0
        surf[tuple(edge)] = True
        edge[axis] = n - 1
        surf[tuple(edge)] = True
    surf &= lab != 0
    return surf


def _surface_points(labels: np.ndarray, spacing: np.ndarray) -> dict[int, np.ndarray]:
    """Surface voxel centres in millimetres (index * spacing), grouped by label id."""
    surf = surface_mask(labels)
    idx = np.nonzero(surf)
    lab = labels[idx]
    order = np.argsort(lab, kind="stable")
    lab = lab[order]
    pts = np.stack([i[order] for i in idx], axis=1).astype(np.float64) * spacing
    ids, starts = np.unique(lab, return_index=True)
    ends = np.append(starts[1:], lab.size)
    return {int(c): pts[s:e] for c, s, e in zip(ids, starts, ends)}


def hd95_per_class(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    percentile: float = 95.0,
    classes: Iterable[int] | None = None,
) -> np.ndarray:
    """Symmetric 95 % Hausdorff distance per class in millimetres (length 125, NaN = undefined).

    Definition (as MONAI's ``compute_hausdorff_distance(percentile=95)`` and DeepMind's
    ``surface-distance``): take the surface voxels of the predicted and of the reference
    mask of class c (6-neighbourhood, see :func:`surface_mask`); for each predicted surface
    voxel the Euclidean distance in mm to the nearest reference surface voxel, and vice
    versa; HD95 = max(P95(pred -> ref), P95(ref -> pred)). Distances honour anisotropic
    ``spacing`` (mm per numpy axis). NaN where the class is missing in either map.

    Nearest-surface queries use ``scipy.spatial.cKDTree`` on surface points only, so the
    cost grows with the surface size, not with the volume or the class's bounding box.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    sp = np.asarray(spacing, dtype=np.float64)
    if sp.shape != (pred.ndim,) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {pred.ndim} positive values (mm per numpy axis), got {tuple(spacing)}")
    p = check_label_array(pred, "prediction")
    r = check_label_array(ref, "reference")
    pts_p = _surface_points(p, sp)
    pts_r = _surface_points(r, sp)
    out = np.full(NUM_BONES, np.nan)
    wanted = CLASS_IDS if classes is None else np.asarray(list(classes), dtype=int)
    for c in wanted:
        a, b = pts_p.get(int(c)), pts_r.get(int(c))
        if a is None or b is None:
            continue
        d_ab = cKDTree(b).query(a, k=1)[0]
        d_ba = cKDTree(a).query(b, k=1)[0]
        out[c - 1] = max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile))
    return out
