"""The real-CT benchmark table: one row per measure, one column per case (Markdown)."""
from __future__ import annotations

import math
from typing import Sequence

from sneakynet.realct.scoring import RealCTScore, bone_groups


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or not math.isfinite(x) else fmt.format(x)


def _count(flags: Sequence[bool]) -> str:
    return f"{sum(flags)} of {len(flags)}" if flags else "–"


def _pair(pred: float, ref: float) -> str:
    return f"{_num(100 * pred, '{:.0f}')} % (ref {_num(100 * ref, '{:.0f}')} %)"


def measure_rows(score: RealCTScore) -> dict[str, str]:
    """Measure name -> cell text for one case."""
    rows = {
        "bones scored": f"{len(score.bone_dsc)}",
        "left out": ", ".join(score.excluded) or "none",
        "median per-bone DSC": _num(score.median_bone_dsc),
        "bones with DSC > 0": _count([v > 0 for v in score.bone_dsc.values()]),
    }
    for group in bone_groups():
        rows[f"group DSC: {group}"] = _num(score.group_dsc.get(group))
    rows["any-bone DSC"] = _num(score.any_bone_dsc)
    rows["vertebra level exact"] = _count([c.exact for c in score.levels])
    rows["vertebra level within one"] = _count([c.within_one for c in score.levels])
    rows["reference's sided bones on the correct side"] = (
        f"{_count([s.correct for s in score.sides])} (ref {_count([s.correct for s in score.reference_sides])})")
    rows["ref-free: predicted sided labels on the correct side"] = _count([s.correct for s in score.predicted_sides])
    rows["ref-free: labelled voxels > 150 HU"] = _pair(score.checks["bone_like_share"],
                                                       score.reference_checks["bone_like_share"])
    rows["ref-free: body voxels > 300 HU labelled"] = _pair(score.checks["dense_labelled_share"],
                                                            score.reference_checks["dense_labelled_share"])
    rows["ref-free: labelled voxels outside the body"] = _pair(score.checks["outside_body_share"],
                                                               score.reference_checks["outside_body_share"])
    return rows


def format_table(cases: Sequence[tuple[str, RealCTScore]], extra: dict[str, Sequence[str]] | None = None) -> str:
    """Markdown table of ``(case name, score)`` pairs; ``extra`` adds rows (one cell per case)."""
    columns = [measure_rows(score) for _, score in cases]
    lines = ["| measure | " + " | ".join(name for name, _ in cases) + " |",
             "|---|" + "---:|" * len(cases)]
    for key in columns[0] if columns else []:
        lines.append(f"| {key} | " + " | ".join(col[key] for col in columns) + " |")
    for key, cells in (extra or {}).items():
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_bones(score: RealCTScore) -> str:
    """One line per scored bone: DSC, and its level or side check where there is one."""
    levels = {c.vertebra: c for c in score.levels}
    sides = {s.bone: s for s in score.sides}
    out = []
    for bone, dsc in score.bone_dsc.items():
        note = ""
        if bone in levels:
            c = levels[bone]
            note = f"  level: {c.predicted or 'no spine label'}"
        elif bone in sides:
            s = sides[bone]
            note = "  side: not predicted" if s.offset_mm is None else \
                f"  side: centre {abs(s.offset_mm):.0f} mm {'left' if s.offset_mm > 0 else 'right'} of midline"
        out.append(f"  {bone:<16} DSC {_num(dsc)}{note}")
    return "\n".join(out)
