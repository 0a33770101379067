"""Evaluate predicted label maps against references: per-case metrics, paper-style summary, reports.

``evaluate_folders`` pairs ``<case>`` files of a prediction folder with the reference folder
(plain folder or nnU-Net dataset root with ``labelsTr``/``labelsTs``), checks that each pair
shares one geometry, computes DSC (and optionally HD95) per class, and writes:

* ``per_case.csv``   case, class, name, dsc, hd95 (one row per case and bone; ``nan`` = not
  evaluated; hd95 empty when not computed)
* ``per_class.csv``  the class-wise values over all cases (see *Pooling* below)
* ``summary.json``   median, plus, minus, nonzero_pct, ... overall and per bone group,
  the left/right confusion count, HD95 summary
* ``confusion_all.csv``, ``confusion_limbs.csv/.png``, ``confusion_ribs_spine.csv/.png``
  voxel counts summed over cases, rows = reference, columns = prediction
* ``dsc_by_group.png`` box plot of the class-wise DSC per bone group

Pooling over cases: the class-wise DSC of the test set is the mean of the per-case DSC of
that class over the cases where the class is evaluated (present in the reference or the
prediction); :func:`sneakynet.metrics.summarize` then gives the paper's median and 16/84 %
quantiles over the classes with DSC > 0. ``summary.json`` also carries ``pooled``, the same
summary of voxel-pooled DSC (from the confusion matrix summed over cases) for comparison.

All files are written atomically (temporary file, then rename).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from sneakynet.io import IMAGE_SUFFIXES, ImageReadError, atomic_path, image_suffix, read_image, write_json
from sneakynet.labels import NUM_BONES, load_label_table
from sneakynet.metrics import (
    TABLE_HEADER,
    LabelRangeError,
    aggregate_cases,
    check_label_array,
    confusion_matrix,
    dice_from_confusion,
    format_table_row,
    hd95_per_class,
    left_right_confusion,
    sub_confusion,
    summarize,
)

# Look-alike bones of the paper's Fig. 4 (long bones, shoulder girdle), twins side by side.
LIMB_BONES: tuple[str, ...] = (
    "humerus_left", "humerus_right", "femur_left", "femur_right",
    "radius_left", "radius_right", "ulna_left", "ulna_right",
    "clavicle_left", "clavicle_right", "scapula_left", "scapula_right",
)
# Ribs (left 1-12, right 1-12) and vertebrae C1..coccyx: repeated, locally similar shapes.
RIBS_SPINE_GROUPS: tuple[str, ...] = ("ribs", "spine")

# Tolerances for "same geometry" (NIfTI stores float32 affines, so exact equality is too strict).
_SPACING_RTOL = 1e-4
_ORIGIN_ATOL_MM = 1e-3
_DIRECTION_ATOL = 1e-4


# Reports are for sharing: readable by all (atomic_path's mkstemp would leave them 0600).
_REPORT_MODE = 0o644


class EvaluationInputError(ValueError):
    """Input folders or files that cannot be evaluated; the message names the files."""


@dataclass
class CaseMetrics:
    """Metrics of one case. Per-class vectors have length 125 (bone id c at index c - 1)."""

    case: str
    dsc: np.ndarray  # (125,) float, NaN = class absent in both maps
    confusion: np.ndarray  # (126, 126) int64 voxel counts, rows = reference, columns = prediction
    hd95: np.ndarray | None = None  # (125,) mm, NaN = class missing in one map; None = not computed
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)  # mm per numpy axis

    def summary(self) -> dict:
        """Paper-style summary of this case's DSC (see :func:`sneakynet.metrics.summarize`)."""
        return summarize(self.dsc)

    @property
    def left_right_confusion(self) -> int:
        """Voxels of a sided bone predicted as its opposite-side twin (both directions summed)."""
        return left_right_confusion(self.confusion, load_label_table().mirror_lut())


@dataclass
class EvaluationResult:
    """Metrics of a set of cases and the paper-style summaries derived from them."""

    cases: list[CaseMetrics]
    class_dsc: np.ndarray  # (125,) mean over cases where evaluated
    class_hd95: np.ndarray | None  # (125,) mean over cases where defined; None = not computed
    confusion: np.ndarray  # (126, 126) summed over cases
    summary: dict  # summarize(class_dsc)
    pooled_summary: dict  # summarize(DSC of the summed confusion matrix)
    group_summaries: dict[str, dict]
    left_right_confusion: int
    files: dict[str, Path] = field(default_factory=dict)

    def table_row(self, name: str) -> str:
        """The overall summary as one Markdown row of the paper's Table 2."""
        return format_table_row(name, self.summary)


# ----------------------------------------------------------------------------- metrics


def evaluate_arrays(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    hd95: bool = False,
    case: str = "",
) -> CaseMetrics:
    """Metrics of one predicted label map against its reference (same shape, labels 0..125).

    ``spacing`` is the voxel size in mm per numpy axis (``image.GetSpacing()[::-1]`` for an
    array from ``sitk.GetArrayFromImage``); it only matters for HD95.
    """
    cm = confusion_matrix(pred, ref)
    dist = hd95_per_class(pred, ref, spacing) if hd95 else None
    return CaseMetrics(case=case, dsc=dice_from_confusion(cm), confusion=cm, hd95=dist,
                       spacing=tuple(float(s) for s in spacing))


def evaluate_images(
    pred: sitk.Image,
    ref: sitk.Image,
    hd95: bool = False,
    case: str = "",
    pred_name: str = "prediction",
    ref_name: str = "reference",
) -> CaseMetrics:
    """Metrics of two SimpleITK label images after checking they share one voxel grid."""
    check_same_geometry(pred, ref, pred_name, ref_name)
    p = _label_array(pred, pred_name)
    r = _label_array(ref, ref_name)
    return evaluate_arrays(p, r, spacing=pred.GetSpacing()[::-1], hd95=hd95, case=case)


def aggregate(cases: Sequence[CaseMetrics]) -> EvaluationResult:
    """Pool case metrics into class-wise values and the paper's summaries (see module docstring)."""
    if not cases:
        raise EvaluationInputError("no cases to evaluate")
    table = load_label_table()
    class_dsc = aggregate_cases(np.stack([c.dsc for c in cases]))
    with_hd = [c.hd95 for c in cases if c.hd95 is not None]
    class_hd = aggregate_cases(np.stack(with_hd)) if len(with_hd) == len(cases) else None
    total = np.sum([c.confusion for c in cases], axis=0)
    groups = {g: summarize(class_dsc[np.asarray(ids) - 1]) for g, ids in table.groups().items()}
    return EvaluationResult(
        cases=list(cases),
        class_dsc=class_dsc,
        class_hd95=class_hd,
        confusion=total,
        summary=summarize(class_dsc),
        pooled_summary=summarize(dice_from_confusion(total)),
        group_summaries=groups,
        left_right_confusion=left_right_confusion(total, table.mirror_lut()),
    )


# ----------------------------------------------------------------------------- input checks


def check_same_geometry(pred: sitk.Image, ref: sitk.Image, pred_name: str, ref_name: str) -> None:
    """Raise :class:`EvaluationInputError` naming both files if size, spacing, origin or direction differ."""
    def fmt(v: Iterable[float]) -> str:
        return "(" + ", ".join(f"{x:g}" for x in v) + ")"

    problems = []
    if pred.GetDimension() != ref.GetDimension():
        problems.append(f"dimension {pred.GetDimension()} vs {ref.GetDimension()}")
    elif pred.GetSize() != ref.GetSize():
        problems.append(f"size {fmt(pred.GetSize())} vs {fmt(ref.GetSize())}")
    else:
        if not np.allclose(pred.GetSpacing(), ref.GetSpacing(), rtol=_SPACING_RTOL, atol=0):
            problems.append(f"spacing {fmt(pred.GetSpacing())} vs {fmt(ref.GetSpacing())} mm")
        if not np.allclose(pred.GetOrigin(), ref.GetOrigin(), rtol=0, atol=_ORIGIN_ATOL_MM):
            problems.append(f"origin {fmt(pred.GetOrigin())} vs {fmt(ref.GetOrigin())} mm")
        if not np.allclose(pred.GetDirection(), ref.GetDirection(), rtol=0, atol=_DIRECTION_ATOL):
            problems.append(f"direction {fmt(pred.GetDirection())} vs {fmt(ref.GetDirection())}")
    if problems:
        raise EvaluationInputError(
            f"{pred_name} and {ref_name} are not on the same voxel grid: " + "; ".join(problems)
            + " (resample the prediction onto the reference grid first)"
        )


def _label_array(img: sitk.Image, name: str) -> np.ndarray:
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise EvaluationInputError(
            f"{name}: has {img.GetNumberOfComponentsPerPixel()} components per voxel; expected a label map"
        )
    try:
        return check_label_array(sitk.GetArrayViewFromImage(img), name)
    except LabelRangeError as exc:
        raise EvaluationInputError(str(exc)) from None


def label_files(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder`` by case name (file name without its image suffix)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        suffix = image_suffix(p)
        if suffix not in IMAGE_SUFFIXES or suffix == ".seg.nrrd":
            continue
        case = p.name[: -len(suffix)]
        if case in out:
            raise EvaluationInputError(f"{folder}: case {case!r} has two files: {out[case].name} and {p.name}")
        out[case] = p
    return out


def reference_files(ref_dir: Path) -> dict[str, Path]:
    """Reference label maps by case: files in ``ref_dir``, or in its nnU-Net ``labelsTr``/``labelsTs``."""
    files = label_files(ref_dir)
    if files:
        return files
    for sub in ("labelsTr", "labelsTs"):
        if (ref_dir / sub).is_dir():
            for case, path in label_files(ref_dir / sub).items():
                if case in files:
                    raise EvaluationInputError(f"{ref_dir}: case {case!r} is in both {files[case]} and {path}")
                files[case] = path
    return files


def pair_cases(pred_dir: str | os.PathLike, ref_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(case, prediction file, reference file)`` for every prediction in ``pred_dir``.

    Every prediction needs a reference (``<case>`` with any image suffix; a prediction named
    like an nnU-Net input image, ``<case>_0000``, also matches ``<case>``). References
    without a prediction are ignored, so a fold can be scored against a full ``labelsTr``.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    for d, what in ((pred_dir, "prediction"), (ref_dir, "reference")):
        if not d.is_dir():
            raise EvaluationInputError(f"{d}: {what} folder does not exist")
    preds = label_files(pred_dir)
    if not preds:
        raise EvaluationInputError(f"{pred_dir}: no label maps ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    refs = reference_files(ref_dir)
    if not refs:
        raise EvaluationInputError(f"{ref_dir}: no reference label maps here nor in labelsTr/labelsTs")
    pairs, missing = [], []
    for case, p in preds.items():
        key = case if case in refs else case[:-5] if case.endswith("_0000") and case[:-5] in refs else None
        if key is None:
            missing.append(p.name)
        else:
            pairs.append((key, p, refs[key]))
    if missing:
        raise EvaluationInputError(
            f"{ref_dir}: no reference for prediction(s) {', '.join(missing[:10])}"
            + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            + f" (looked for the same case names among {len(refs)} reference files)"
        )
    return pairs


# ----------------------------------------------------------------------------- folders


def evaluate_folders(
    pred_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None,
    hd95: bool = False,
    progress: bool = True,
    on_case: Callable[[CaseMetrics], None] | None = None,
) -> EvaluationResult:
    """Evaluate every prediction in ``pred_dir`` against ``ref_dir``; write reports to ``out_dir``.

    Every pair is checked (reference exists, same geometry, labels 0..125); nothing is written
    unless all cases evaluate. ``out_dir=None`` computes without writing. ``on_case`` is called
    after each case (e.g. for logging during training).
    """
    pairs = pair_cases(pred_dir, ref_dir)
    cases = []
    iterator: Iterable = pairs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc="evaluate", unit="case")
    for case, p_path, r_path in iterator:
        pred, ref = read_image(p_path), read_image(r_path)
        metrics = evaluate_images(pred, ref, hd95=hd95, case=case, pred_name=str(p_path), ref_name=str(r_path))
        cases.append(metrics)
        if on_case is not None:
            on_case(metrics)
    result = aggregate(cases)
    if out_dir is not None:
        result.files = write_reports(result, out_dir)
    return result


# ----------------------------------------------------------------------------- writing


def write_reports(result: EvaluationResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write CSVs, ``summary.json`` and PNGs of ``result`` into ``out_dir``; return them by key."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = load_label_table()
    files: dict[str, Path] = {}

    files["per_case"] = _write_text(out / "per_case.csv", _per_case_csv(result))
    files["per_class"] = _write_text(out / "per_class.csv", _per_class_csv(result))

    names_all = ["background"] + [b.name for b in table]
    files["confusion_all"] = _write_text(out / "confusion_all.csv", _matrix_csv(result.confusion, names_all))
    for key, ids, title, blocks in confusion_views():
        sub = sub_confusion(result.confusion, ids)
        files[f"confusion_{key}"] = _write_text(
            out / f"confusion_{key}.csv", _matrix_csv(sub, [table.by_id(i).name for i in ids]))
        files[f"confusion_{key}_png"] = plot_confusion(
            sub, [table.by_id(i).display for i in ids], out / f"confusion_{key}.png", title, blocks)
    files["dsc_box"] = plot_dsc_by_group(result.class_dsc, out / "dsc_by_group.png",
                                         title=f"Class-wise DSC, {len(result.cases)} case(s)")
    files["summary"] = out / "summary.json"
    payload = summary_dict(result)
    payload["files"] = {k: p.name for k, p in sorted(files.items())}
    write_json(_jsonable(payload), files["summary"], indent=2)
    return files


def confusion_views() -> list[tuple[str, list[int], str, list[int]]]:
    """The confusion sub-matrices written as CSV/PNG: (key, label ids, title, block separators)."""
    table = load_label_table()
    groups = table.groups()
    limbs = [table.by_name(n).id for n in LIMB_BONES]
    ribs_spine = [i for g in RIBS_SPINE_GROUPS for i in groups[g]]
    # blocks: left ribs | right ribs | vertebrae
    sides = [table.by_id(i).side for i in ribs_spine]
    rib_blocks = [k for k in range(1, len(ribs_spine)) if sides[k] != sides[k - 1]]
    return [
        ("limbs", limbs, "Confusion among long bones and shoulder girdle (voxels)", list(range(2, len(limbs), 2))),
        ("ribs_spine", ribs_spine, "Confusion among ribs and vertebrae (voxels)", rib_blocks),
    ]


def summary_dict(result: EvaluationResult) -> dict:
    """The content of ``summary.json`` (NaN kept as float here; written as null)."""
    d: dict = {
        "n_cases": len(result.cases),
        "cases": [c.case for c in result.cases],
        "aggregation": "class-wise DSC = mean over cases where the class is present in reference or prediction; "
                       "median and 16/84 % quantiles over classes with DSC > 0; plus = q84 - median, "
                       "minus = median - q16; nonzero_pct = share of evaluated classes with DSC > 0",
        **result.summary,
        "pooled": result.pooled_summary,
        "groups": result.group_summaries,
        "left_right_confusion_voxels": result.left_right_confusion,
    }
    if result.class_hd95 is not None:
        h = result.class_hd95[np.isfinite(result.class_hd95)]
        d["hd95_mm"] = {
            "definition": "symmetric: max of the 95th percentiles of pred->ref and ref->pred surface distances",
            "median": float(np.median(h)) if h.size else math.nan,
            "mean": float(np.mean(h)) if h.size else math.nan,
            "n_classes": int(h.size),
        }
    return d


def format_report(result: EvaluationResult, name: str = "prediction") -> str:
    """Short human-readable Markdown report: overall and per-group rows, left/right confusion, HD95."""
    lines = [TABLE_HEADER.replace("Config", "Set"), format_table_row(f"**{name}**", result.summary)]
    lines += [format_table_row(g, s) for g, s in result.group_summaries.items()]
    lines.append("")
    lines.append(f"cases: {len(result.cases)}; voxel-pooled: " + format_table_row(name, result.pooled_summary))
    lines.append(f"left/right confusion: {result.left_right_confusion} voxels")
    if result.class_hd95 is not None:
        h = result.class_hd95[np.isfinite(result.class_hd95)]
        if h.size:
            lines.append(f"HD95: median {np.median(h):.2f} mm over {h.size} classes")
    return "\n".join(lines)


def _per_case_csv(result: EvaluationResult) -> str:
    table = load_label_table()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "class", "name", "dsc", "hd95"])
    for c in result.cases:
        for b in table:
            hd = "" if c.hd95 is None else _num(c.hd95[b.id - 1])
            w.writerow([c.case, b.id, b.name, _num(c.dsc[b.id - 1]), hd])
    return buf.getvalue()


def _per_class_csv(result: EvaluationResult) -> str:
    table = load_label_table()
    stacked = np.stack([c.dsc for c in result.cases])
    n_eval = np.sum(np.isfinite(stacked), axis=0)
    pooled = dice_from_confusion(result.confusion)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "name", "group", "n_cases_evaluated", "dsc", "dsc_pooled", "hd95"])
    for b in table:
        i = b.id - 1
        hd = "" if result.class_hd95 is None else _num(result.class_hd95[i])
        w.writerow([b.id, b.name, b.group, int(n_eval[i]), _num(result.class_dsc[i]), _num(pooled[i]), hd])
    return buf.getvalue()


def _matrix_csv(m: np.ndarray, names: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["reference \\ predicted", *names])
    for name, row in zip(names, m):
        w.writerow([name, *(int(x) for x in row)])
    return buf.getvalue()


def _num(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, _REPORT_MODE)
    return path


# ----------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float):
    # Figure + Agg canvas directly: no pyplot state, no global backend switch (safe inside Slicer).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
        os.chmod(tmp, _REPORT_MODE)
    return path


def plot_confusion(
    matrix: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
    separators: Sequence[int] = (),
) -> Path:
    """Voxel-count confusion matrix as PNG: rows = reference, columns = prediction, log colour scale.

    Zero cells are left white; with at most 16 classes the counts are printed in the cells.
    ``separators`` are row/column indices before which a block line is drawn (e.g. between groups).
    """
    from matplotlib.colors import LogNorm

    m = np.asarray(matrix, dtype=np.float64)
    n = len(names)
    size = max(5.0, 0.22 * n + 2.5)
    fig = _new_figure(size + 1.2, size)
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_less_equal(m, 0)
    vmax = max(float(m.max()), 1.0)
    im = ax.imshow(masked, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(vmax, 10.0)), interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 8 if n <= 16 else 6
    ax.set_xticklabels(names, rotation=90, fontsize=fs)
    ax.set_yticklabels(names, fontsize=fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("reference class")
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="0.9", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    for k in separators:
        ax.axhline(k - 0.5, color="0.3", linewidth=0.8)
        ax.axvline(k - 0.5, color="0.3", linewidth=0.8)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if m[i, j] > 0:
                    bright = np.log10(m[i, j]) > 0.6 * np.log10(max(vmax, 10.0))
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=6,
                            color="black" if bright else "white")
    off = m.sum() - np.trace(m)
    share = 100.0 * off / m.sum() if m.sum() else 0.0
    ax.set_title(f"{title}\noff-diagonal: {int(off)} voxels ({share:.2f} % of these classes' voxels)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="voxels (log scale)")
    fig.tight_layout()
    return _save_png(fig, Path(path))


def plot_dsc_by_group(class_dsc: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Box plot of the class-wise DSC per bone group (evaluated classes, zeros included), points overlaid."""
    table = load_label_table()
    groups = table.groups()
    labels, data = [], []
    for g, ids in groups.items():
        v = np.asarray(class_dsc)[np.asarray(ids) - 1]
        v = v[np.isfinite(v)]
        if v.size:
            labels.append(f"{g}\n(n={v.size})")
            data.append(v)
    fig = _new_figure(max(6.0, 0.8 * len(labels) + 2), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    if data:
        ax.boxplot(data, whis=(5, 95), showfliers=False, widths=0.6)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, fontsize=8)
        rng = np.random.default_rng(0)
        zero_label = "DSC = 0 (excluded from median/quantiles)"
        for k, v in enumerate(data, start=1):
            x = k + rng.uniform(-0.15, 0.15, v.size)
            ax.scatter(x[v > 0], v[v > 0], s=8, alpha=0.6, color="tab:blue", zorder=3)
            if np.any(v == 0):
                ax.scatter(x[v == 0], v[v == 0], s=18, marker="x", color="tab:red", zorder=3, label=zero_label)
                zero_label = None
    else:
        ax.text(0.5, 0.5, "no evaluated classes", ha="center", va="center", transform=ax.transAxes)
    s = summarize(class_dsc)
    if math.isfinite(s["median"]):
        ax.axhline(s["median"], color="tab:red", linestyle="--", linewidth=0.8,
                   label=f"overall median of non-zero classes {s['median']:.2f}")
    ax.set_ylim(-0.04, 1.04)
    ax.set_ylabel("DSC (class-wise)")
    ax.set_title(f"{title}; box: quartiles, whiskers: 5-95 % of evaluated classes", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7, frameon=False)
    ax.grid(axis="y", color="0.9")
    fig.tight_layout()
    return _save_png(fig, Path(path))


__all__ = [
    "CaseMetrics", "EvaluationResult", "EvaluationInputError", "evaluate_arrays", "evaluate_images",
    "evaluate_folders", "aggregate", "pair_cases", "check_same_geometry", "write_reports", "format_report",
    "summary_dict", "plot_confusion", "plot_dsc_by_group", "confusion_views", "summarize", "format_table_row",
    "NUM_BONES", "ImageReadError",
]
