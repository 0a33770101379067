"""Scoring a predicted label map against a partial, coarse reference on a real CT.

A TotalSegmentator reference labels a few dozen bones, some coarser than ours, and a case's
notes may say a bone must not be scored (a metal implant, a bone cut by the field of view).
So, on the CT grid:

* voxels the reference gives to a left-out bone are ignored everywhere (neither a hit nor a
  false positive);
* the prediction's finer labels are merged into the reference's coarse class first
  (:func:`sneakynet.realct.reference.coarse_merges`);
* per-bone DSC is reported for every bone the reference labels, group DSC for every group it
  labels, and any-bone DSC for "bone or not" -- all from one confusion matrix
  (:mod:`sneakynet.metrics`);
* vertebra level: per reference vertebra, the prediction's most frequent label among the spine
  levels C1..L5 and the sacrum (in that order) inside it -- exact, or within one level;
* sides: each sided bone's predicted centre against the body midline (:mod:`.checks`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

from sneakynet.labels import load_label_table
from sneakynet.metrics import confusion_matrix, dice_from_confusion
from sneakynet.realct.checks import (
    SideCheck,
    body_parts,
    label_centroids,
    midline_x,
    reference_free,
    side_checks,
)

_LEVELS = [f"vertebra_{p}{n}" for p, k in (("C", 7), ("T", 12), ("L", 5)) for n in range(1, k + 1)] + ["sacrum"]


def bone_groups() -> dict[str, list[int]]:
    """Scoring groups -> SneakyNet ids (vertebrae by region; table groups for the rest)."""
    table = load_label_table()
    groups = table.groups()

    def ids(prefix: str) -> list[int]:
        return [table.by_name(n).id for n in _LEVELS if n.startswith(f"vertebra_{prefix}")]

    return {
        "cervical": ids("C"), "thoracic": ids("T"), "lumbar": ids("L"), "ribs": groups["ribs"],
        "sternum": groups["sternum"], "sacrum": [table.by_name("sacrum").id], "hips": groups["pelvis"],
        "femurs": groups["leg"], "shoulder girdle": groups["shoulder"], "arms": groups["arm"],
    }


def level_ids() -> list[int]:
    """SneakyNet ids of the spine levels C1..L5 then the sacrum, top to bottom."""
    table = load_label_table()
    return [table.by_name(n).id for n in _LEVELS]


@dataclass
class LevelCheck:
    """One reference vertebra and the level the prediction gives it."""

    vertebra: str
    predicted: str | None  # most frequent spine label inside it; None = no spine label there
    offset: int | None  # predicted level minus the true level (+ = too low in the spine)

    @property
    def exact(self) -> bool:
        return self.offset == 0

    @property
    def within_one(self) -> bool:
        return self.offset is not None and abs(self.offset) <= 1


@dataclass
class RealCTScore:
    """All measures of one case; ``reference_*`` fields are the reference scored as a prediction."""

    bone_dsc: dict[str, float]
    group_dsc: dict[str, float]
    any_bone_dsc: float
    levels: list[LevelCheck]
    sides: list[SideCheck]  # reference's sided bones, at the predicted centres
    predicted_sides: list[SideCheck]  # every sided label the prediction uses
    reference_sides: list[SideCheck]  # reference's sided bones, at the reference's centres
    checks: dict[str, float]
    reference_checks: dict[str, float]
    excluded: list[str] = field(default_factory=list)
    midline_x_mm: float = float("nan")

    @property
    def median_bone_dsc(self) -> float:
        vals = list(self.bone_dsc.values())
        return float(np.median(vals)) if vals else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dict with the summary values and every per-bone record."""
        data = asdict(self)
        data["median_bone_dsc"] = self.median_bone_dsc
        for key in ("levels", "sides", "predicted_sides", "reference_sides"):
            for record, obj in zip(data[key], getattr(self, key)):
                record.update({k: getattr(obj, k) for k in ("exact", "within_one", "correct") if hasattr(obj, k)})
        return data


def _group_dsc(cm: np.ndarray, ids: list[int]) -> float:
    g = np.asarray(ids, dtype=np.intp)
    tp = cm[np.ix_(g, g)].sum()
    total = cm[g, :].sum() + cm[:, g].sum()
    return float(2 * tp / total) if total else float("nan")


def level_checks(cm: np.ndarray, reference_ids: list[int]) -> list[LevelCheck]:
    """Vertebra level per reference vertebra (C1..L5) from the confusion matrix."""
    table = load_label_table()
    ladder = level_ids()
    out = []
    for v in reference_ids:
        if v not in ladder[:-1]:
            continue
        row = cm[v, ladder]
        if not row.sum():
            out.append(LevelCheck(table.by_id(v).name, None, None))
            continue
        best = int(np.argmax(row))
        out.append(LevelCheck(table.by_id(v).name, table.by_id(ladder[best]).name, best - ladder.index(v)))
    return out


def overlap_scores(pred: np.ndarray, ref: np.ndarray, exclude: list[int], merge_lut: np.ndarray) -> dict:
    """Per-bone, group and any-bone DSC and vertebra levels of (k, j, i) maps on one grid."""
    table = load_label_table()
    keep = ~np.isin(ref, exclude) if exclude else np.ones(ref.shape, dtype=bool)
    cm = confusion_matrix(merge_lut[pred][keep], ref[keep])
    dsc = dice_from_confusion(cm)
    present = [int(c) for c in np.flatnonzero(cm.sum(axis=1)) if c]
    groups = {name: _group_dsc(cm, ids) for name, ids in bone_groups().items() if cm[ids, :].sum()}
    return {
        "bone_dsc": {table.by_id(c).name: float(dsc[c - 1]) for c in present},
        "group_dsc": groups,
        "any_bone_dsc": _group_dsc(cm, list(range(1, cm.shape[0]))),
        "levels": level_checks(cm, present),
        "present": present,
    }


def score_case(ct: sitk.Image, pred: np.ndarray, ref: np.ndarray, exclude: list[int],
               merge_lut: np.ndarray) -> RealCTScore:
    """Score ``pred`` against ``ref`` (SneakyNet ids, both (k, j, i) on ``ct``'s grid)."""
    if pred.shape != ref.shape or pred.shape != ct.GetSize()[::-1]:
        raise ValueError(f"prediction {pred.shape}, reference {ref.shape} and CT {ct.GetSize()[::-1]} "
                         "must share one grid")
    table = load_label_table()
    overlap = overlap_scores(pred, ref, exclude, merge_lut)
    hu = sitk.GetArrayViewFromImage(ct)
    body, torso = body_parts(ct)
    midline = midline_x(ct, torso)
    pred_centres, ref_centres = label_centroids(ct, pred), label_centroids(ct, ref)
    present = overlap["present"]
    return RealCTScore(
        bone_dsc=overlap["bone_dsc"], group_dsc=overlap["group_dsc"], any_bone_dsc=overlap["any_bone_dsc"],
        levels=overlap["levels"],
        sides=side_checks(pred_centres, midline, present),
        predicted_sides=side_checks(pred_centres, midline, sorted(pred_centres)),
        reference_sides=side_checks(ref_centres, midline, present),
        checks=reference_free(hu, pred, body), reference_checks=reference_free(hu, ref, body),
        excluded=[table.by_id(c).name for c in exclude], midline_x_mm=midline,
    )
