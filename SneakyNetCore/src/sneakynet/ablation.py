"""The paper's A/B/C/D ablation (Table 2, Fig. 4) on synthetic phantoms, end to end.

One study folder holds everything::

    <out>/phantoms/            the phantom dataset (generated once; or ``dataset=`` reuses a folder)
    <out>/study.json           the settings every run shares (a rerun must agree with them)
    <out>/runs/<X>/            the training run of config X (sneakynet.train) and its test reports
                               (sneakynet.fold_eval: <out>/runs/<X>/test/summary.json, confusion_*.csv)
    <out>/runs/<X>/ablation.json   evaluation time of config X

Every config trains on the same dataset, fold 0 split, seed, iteration budget and batch size and
is scored on the same held-out test cases with the predictor users run. The results document
(Markdown, written atomically after every config) reads its numbers back from the run folders'
``test/summary.json`` and ``test/confusion_all.csv``, so the document and the reports cannot
disagree. A rerun skips configs whose training (``summary.json``) and evaluation
(``test/summary.json``) are complete and resumes an interrupted training from its last checkpoint.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sneakynet.io import json_safe, read_json, write_json
from sneakynet.run_folder import RunFolder

CONFIG_NAMES = {"A": "A 3D U-Net", "B": "B HookNet", "C": "C MRN", "D": "D SneakyNet"}
# Paper Table 2 (real upper-body CT, 100 000 iterations): median, +sigma, -sigma, non-zero DSC %
PAPER_TABLE2: dict[int, dict[str, tuple[float, float, float, float]]] = {
    32: {"A": (0.64, 0.19, 0.34, 94.5), "B": (0.66, 0.17, 0.34, 94.1),
         "C": (0.69, 0.16, 0.37, 95.1), "D": (0.75, 0.14, 0.33, 95.3)},
    64: {"A": (0.83, 0.09, 0.27, 94.5), "B": (0.85, 0.09, 0.32, 95.3),
         "C": (0.84, 0.09, 0.31, 96.0), "D": (0.86, 0.08, 0.28, 96.7)},
}
PAPER_ITERATIONS = 100_000
FOLD = 0
STUDY_FILE = "study.json"
RUN_INFO_FILE = "ablation.json"
# settings that change the numbers: a rerun of a study folder must keep them
_STUDY_FIXED = ("dataset", "cases", "spacing", "patch", "iterations", "batch_size", "seed", "widths", "lr")
# options.json keys a finished run must match to be reused
_RUN_FIXED = ("fold", "variant", "context", "patch", "preset", "widths", "iterations", "batch_size", "lr", "seed",
              "spacing")


class AblationError(ValueError):
    """Bad ablation input or a study folder that does not match the request; the message names it."""


@dataclass
class AblationOptions:
    """What the study runs. ``spacing`` (mm, isotropic) is both the phantom and the model spacing.

    ``dataset`` reuses an existing nnU-Net-style dataset folder instead of generating ``cases``
    phantoms (its own ``splits.json`` fold 0 is used when present). ``doc`` defaults to
    ``<out>/ablation.md``; the PNGs go to the folder named like the document without ``.md``.
    """

    out: Path
    configs: tuple[str, ...] = ("A", "B", "C", "D")
    cases: int = 12
    spacing: float = 4.0
    patch: int = 32
    iterations: int = 500
    batch_size: int = 2
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1
    workers: int = 1
    widths: tuple[int, ...] | None = None
    preset: str = "lite"
    dataset: Path | None = None
    doc: Path | None = None
    device: str = "cpu"
    val_every: int = 0  # 0: validate once, at the end (patch-based validation, see below)
    command: str = ""  # the command line recorded in the document
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.configs = tuple(str(c).strip().upper() for c in self.configs)
        if self.widths is not None:
            self.widths = tuple(int(w) for w in self.widths)
        if self.dataset is not None:
            self.dataset = Path(self.dataset)
        if self.doc is not None:
            self.doc = Path(self.doc)
        bad = [c for c in self.configs if c not in CONFIG_NAMES]
        checks = [
            (not bad and self.configs, f"configs must be some of A,B,C,D, got {','.join(self.configs) or 'none'}"),
            (len(set(self.configs)) == len(self.configs), f"configs repeat: {','.join(self.configs)}"),
            (self.dataset is not None or self.cases >= 3,
             f"cases must be at least 3 (train/val/test), got {self.cases}"),
            (math.isfinite(self.spacing) and 0.25 <= self.spacing <= 12,
             f"spacing must be 0.25..12 mm, got {self.spacing}"),
            (self.patch > 0 and self.patch % 32 == 0, f"patch must be a positive multiple of 32, got {self.patch}"),
            (self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.threads >= 0 and self.workers >= 0, "threads and workers must be >= 0"),
            (self.val_every >= 0, f"val_every must be >= 0, got {self.val_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise AblationError(message)

    @property
    def doc_path(self) -> Path:
        return self.doc if self.doc is not None else self.out / "ablation.md"

    @property
    def png_dir(self) -> Path:
        """PNGs live beside the document: ``docs/ablation.md`` -> ``docs/ablation/``."""
        return self.doc_path.with_suffix("")

    @property
    def dataset_dir(self) -> Path:
        return (self.dataset if self.dataset is not None else self.out / "phantoms").resolve()

    def run_dir(self, config: str) -> Path:
        return self.out / "runs" / config

    def study_dict(self) -> dict:
        """The settings all runs share (``study.json``)."""
        return {"dataset": str(self.dataset_dir), "cases": None if self.dataset is not None else self.cases,
                "spacing": self.spacing, "patch": self.patch, "iterations": self.iterations,
                "batch_size": self.batch_size, "seed": self.seed,
                "widths": list(self.widths) if self.widths else None, "lr": self.lr, "preset": self.preset,
                "fold": FOLD}

    def train_options(self, config: str):
        """The :class:`sneakynet.train.TrainOptions` of one config (A: K=0, B/C/D: K=1)."""
        from sneakynet.train import TrainOptions

        run = self.run_dir(config)
        return TrainOptions(
            dataset=str(self.dataset_dir), out=str(run), fold=FOLD, variant=config,
            context=0 if config == "A" else 1, patch=self.patch, preset=self.preset, widths=self.widths,
            iterations=self.iterations, batch_size=self.batch_size, lr=self.lr, workers=self.workers,
            threads=self.threads, val_every=self.val_every, val_mode="patches",
            ckpt_every=max(50, self.iterations // 4),
            spacing=(self.spacing,) * 3, seed=self.seed, device=self.device, progress=self.progress,
            resume=RunFolder(run).options.is_file())


@dataclass
class ConfigResult:
    """Numbers of one config, read back from its run folder."""

    config: str
    parameters: int
    network: str
    widths: list[int]
    test_cases: list[str] = field(default_factory=list)
    summary: dict | None = None  # <run>/test/summary.json
    confusion: np.ndarray | None = None  # (126, 126) voxels summed over the test cases
    train: dict | None = None  # <run>/summary.json
    eval_seconds: float | None = None
    eval_threads: int | None = None
    evaluated_at: str | None = None  # ISO time (UTC) of the test evaluation
    split: dict | None = None

    @property
    def done(self) -> bool:
        return self.summary is not None and self.confusion is not None


# ----------------------------------------------------------------------------- the study


def run_ablation(options: AblationOptions, log: Callable[[str], None] = print) -> Path:
    """Generate/reuse the data, train and evaluate every config, write the document; return its path."""
    start = time.perf_counter()
    options.out.mkdir(parents=True, exist_ok=True)
    _check_study(options)
    dataset = prepare_dataset(options, log)
    _update_study(options)
    for config in options.configs:
        run_config(options, config, log)
        write_document(options, collect_results(options), time.perf_counter() - start)
        log(f"ablation: {config} done; document updated: {options.doc_path}")
    results = collect_results(options)
    _check_same_split(results)
    doc = write_document(options, results, time.perf_counter() - start, finished=True)
    _update_study(options, dataset_cases=len(dataset.cases))
    return doc


def portable_path(path: str | os.PathLike, *bases: str | os.PathLike) -> str:
    """``path`` relative to the first base it lies under, else its name alone.

    The document is committed and read elsewhere, so it names folders by where they sit
    (e.g. ``study/phantoms``), never by this machine's absolute paths.
    """
    full = Path(path).resolve()
    for base in bases:
        base_full = Path(base).resolve()
        if full == base_full or base_full in full.parents:
            return Path(os.path.relpath(full, base_full)).as_posix()
    return full.name


def _update_study(options: AblationOptions, **extra) -> None:
    """Write ``study.json``: the shared settings plus what earlier invocations recorded (phantom time)."""
    path = options.out / STUDY_FILE
    old = _read_json_or_none(path) or {}
    _write_json(path, {**old, **options.study_dict(), **extra})


def _check_study(options: AblationOptions) -> None:
    """A study folder reused with other shared settings would mix incomparable runs: refuse."""
    path = options.out / STUDY_FILE
    if not path.is_file():
        return
    old = read_json(path, AblationError, "study file")
    new = options.study_dict()
    changed = [f"{k} ({old.get(k)} -> {new.get(k)})" for k in _STUDY_FIXED if old.get(k) != new.get(k)]
    if changed:
        raise AblationError(f"{path}: this study folder was run with other settings: {', '.join(changed)}; "
                            "rerun with the original settings or choose another --out")


def prepare_dataset(options: AblationOptions, log: Callable[[str], None] = print):
    """The dataset of the study: ``options.dataset`` as is, or phantoms generated once (fold splits written)."""
    from sneakynet.dataset import DatasetError, load_dataset, make_splits, write_splits

    folder = options.dataset_dir
    if options.dataset is None and not (folder / "dataset.json").is_file():  # dataset.json is written last
        from sneakynet.phantom import PhantomOptions, write_cases

        log(f"ablation: generating {options.cases} phantom cases at {options.spacing:g} mm in {folder}")
        t0 = time.perf_counter()
        write_cases(folder, options.cases, options.seed, PhantomOptions(spacing=(options.spacing,) * 3),
                    progress=options.progress, version=1)
        seconds = time.perf_counter() - t0
        log(f"ablation: phantoms written in {seconds:.0f} s")
        options.out.mkdir(parents=True, exist_ok=True)
        _update_study(options, phantom_seconds=seconds)
    try:
        dataset = load_dataset(folder)
    except DatasetError as exc:
        raise AblationError(str(exc)) from None
    if options.dataset is None:
        if len(dataset.cases) != options.cases:
            raise AblationError(f"{folder}: holds {len(dataset.cases)} phantom cases, the study asks for "
                                f"{options.cases}; choose another --out")
        if not (folder / "splits.json").is_file():
            write_splits(folder, make_splits(dataset.cases, n_folds=5, seed=options.seed), seed=options.seed)
    return dataset


def run_config(options: AblationOptions, config: str, log: Callable[[str], None] = print) -> None:
    """Train (or resume) and evaluate one config; a finished, evaluated run is left as it is."""
    from sneakynet.fold_eval import evaluate_fold
    from sneakynet.train import TrainError, train

    run = options.run_dir(config)
    train_options = options.train_options(config)
    if _training_finished(run):
        _check_finished_run(run, train_options.to_dict())
        log(f"ablation: {config}: training already finished in {run}, skipped")
    else:
        log(f"ablation: training {CONFIG_NAMES[config]} for {options.iterations} iterations in {run}")
        try:
            train(train_options)
        except TrainError as exc:
            raise AblationError(f"config {config}: {exc}") from None
    if _evaluation_finished(run):
        log(f"ablation: {config}: test evaluation already in {RunFolder(run).test}, skipped")
        return
    shutil.rmtree(RunFolder(run).test, ignore_errors=True)  # an interrupted evaluation: start it again
    import torch

    # the training's thread count: on a shared machine OpenMP threads == cores stall each other
    threads_before = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        t0 = time.perf_counter()
        evaluate_fold(run, device=options.device, progress=options.progress, log=log)
        seconds, threads = time.perf_counter() - t0, torch.get_num_threads()
    finally:
        torch.set_num_threads(threads_before)
    _write_json(run / RUN_INFO_FILE, {"eval_seconds": seconds, "eval_threads": threads,
                                      "evaluated_at": _now().isoformat(timespec="seconds")})


def _training_finished(run: Path) -> bool:
    return RunFolder(run).training_finished()


def _evaluation_finished(run: Path) -> bool:
    """``test/summary.json`` is written last by the evaluation and must cover the split's test cases."""
    folder = RunFolder(run)
    try:
        summary, split = folder.read_json(folder.test_summary), folder.read_json(folder.splits)
    except (OSError, ValueError):
        return False
    return sorted(summary.get("cases", [])) == sorted(split["test"]) and folder.test_confusion.is_file()


def _check_finished_run(run: Path, wanted: dict) -> None:
    path = RunFolder(run).options
    stored = read_json(path, AblationError, "finished run's options")
    changed = [f"{k} ({stored.get(k)} -> {wanted.get(k)})" for k in _RUN_FIXED if stored.get(k) != wanted.get(k)]
    if Path(stored.get("dataset", "")).resolve() != Path(wanted["dataset"]).resolve():
        changed.append(f"dataset ({stored.get('dataset')} -> {wanted['dataset']})")
    if changed:
        raise AblationError(f"{path}: finished run differs from the request: {', '.join(changed)}; "
                            "choose another --out")


# ----------------------------------------------------------------------------- results


def collect_results(options: AblationOptions) -> list[ConfigResult]:
    """What is on disk for every requested config (pending configs have no summary)."""
    from sneakynet.models import build_network, count_parameters

    results = []
    for config in options.configs:
        run = options.run_dir(config)
        net = options.train_options(config).net_config()
        params = count_parameters(build_network(net))
        res = ConfigResult(config=config, parameters=params, network=net.describe(), widths=list(net.widths))
        folder = RunFolder(run)
        res.train = _read_json_or_none(folder.summary) if _training_finished(run) else None
        res.split = _read_json_or_none(folder.splits)
        if _evaluation_finished(run):
            res.summary = _read_json_or_none(folder.test_summary)
            res.confusion = read_confusion_csv(folder.test_confusion)
            res.test_cases = list(res.summary.get("cases", [])) if res.summary else []
            info = _read_json_or_none(run / RUN_INFO_FILE) or {}
            res.eval_seconds = info.get("eval_seconds")
            res.eval_threads = info.get("eval_threads")
            res.evaluated_at = info.get("evaluated_at")
        results.append(res)
    return results


def _check_same_split(results: Sequence[ConfigResult]) -> None:
    splits = {r.config: (r.split or {}) for r in results}
    keys = {c: tuple(tuple(sorted(s.get(k, []))) for k in ("train", "val", "test")) for c, s in splits.items()}
    if len(set(keys.values())) > 1:
        raise AblationError("the configs were trained on different splits: "
                            + "; ".join(f"{c}: test {list(k[2])}" for c, k in keys.items()))


def read_confusion_csv(path: Path) -> np.ndarray:
    """The 126 x 126 voxel confusion matrix written by :mod:`sneakynet.evaluate` (rows = reference)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    try:
        m = np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)
    except ValueError as exc:
        raise AblationError(f"{path}: not a confusion matrix of integers ({exc})") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise AblationError(f"{path}: confusion matrix is not square ({m.shape})")
    return m


def confusion_stats(cm: np.ndarray) -> dict[str, int | float]:
    """Left/right and long-bone confusion of a 126 x 126 matrix (voxels; rows = reference).

    ``lr_voxels``: sided bones predicted as their opposite twin; ``lr_pct``: of all reference
    voxels of sided bones. ``limb_*``: within the paper's Fig. 4 bones (humerus, femur, radius,
    ulna, clavicle, scapula, left and right): all off-diagonal voxels, left<->right twins, and
    arm (humerus, radius, ulna) <-> leg (femur) in both directions.
    """
    from sneakynet.evaluate import LIMB_BONES
    from sneakynet.labels import load_label_table
    from sneakynet.metrics import left_right_confusion, sub_confusion

    table = load_label_table()
    lut = np.asarray(table.mirror_lut())
    ids = np.arange(len(lut))
    sided = ids[(lut != ids) & (ids > 0)]
    lr = left_right_confusion(cm, lut)
    sided_voxels = int(cm[sided].sum())
    limb_ids = [table.by_name(n).id for n in LIMB_BONES]
    sub = sub_confusion(cm, limb_ids)
    twins = sum(int(sub[i, i + 1] + sub[i + 1, i]) for i in range(0, len(limb_ids), 2))
    groups = table.groups()
    arm, leg = np.asarray(groups["arm"]), np.asarray(groups["leg"])
    arm_leg = int(cm[np.ix_(arm, leg)].sum() + cm[np.ix_(leg, arm)].sum())
    limb_total = int(sub.sum())
    limb_off = limb_total - int(np.trace(sub))
    return {"lr_voxels": int(lr), "lr_pct": 100.0 * lr / sided_voxels if sided_voxels else math.nan,
            "limb_offdiag": limb_off, "limb_offdiag_pct": 100.0 * limb_off / limb_total if limb_total else math.nan,
            "limb_lr": twins, "arm_leg": arm_leg}


def collapsed_twins(cm: np.ndarray) -> list[tuple[str, str]]:
    """Long-bone twin pairs whose both sides are mostly predicted with the same side's label.

    For each left/right pair of the Fig. 4 bones present in the reference, the 2 x 2 block of the
    confusion matrix (reference twin x predicted twin) is read row by row; if both rows have
    their maximum in the same column, the network has not learnt to tell the sides apart for
    that bone. Returns ``(bone, chosen side)``, e.g. ``("femur", "left")``.
    """
    from sneakynet.evaluate import LIMB_BONES
    from sneakynet.labels import load_label_table

    table = load_label_table()
    out = []
    for i in range(0, len(LIMB_BONES), 2):
        a, b = table.by_name(LIMB_BONES[i]), table.by_name(LIMB_BONES[i + 1])
        block = np.asarray(cm)[np.ix_([a.id, b.id], [a.id, b.id])]
        if block[0].sum() and block[1].sum() and int(np.argmax(block[0])) == int(np.argmax(block[1])):
            chosen = (a, b)[int(np.argmax(block[0]))]
            out.append((LIMB_BONES[i].rsplit("_", 1)[0], chosen.side))
    return out


# ----------------------------------------------------------------------------- document


def machine_description() -> dict[str, str]:
    """CPU model (from /proc/cpuinfo), logical cores, OS, Python and torch versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def measured_row(result: ConfigResult) -> str:
    """The config's Markdown row in the paper's Table 2 layout, from its ``test/summary.json``."""
    from sneakynet.metrics import format_table_row

    name = f"{CONFIG_NAMES[result.config]}, measured"
    if result.summary is None:
        return f"| {name} | pending | | | |"
    return format_table_row(name, result.summary)


def paper_row(config: str, patch: int) -> str | None:
    from sneakynet.metrics import format_table_row

    ref = PAPER_TABLE2.get(patch, {}).get(config)
    if ref is None:
        return None
    median, plus, minus, nonzero = ref
    return format_table_row(f"{CONFIG_NAMES[config]}, paper (real CT)",
                            {"median": median, "plus": plus, "minus": minus, "nonzero_pct": nonzero})


def _fmt(x, fmt: str = "{:.2f}", none: str = "n/a") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return none
    return fmt.format(x)


def _copy_png(src: Path, dst: Path) -> Path | None:
    if not src.is_file():
        return None
    from sneakynet.io import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def document_text(options: AblationOptions, results: Sequence[ConfigResult], wall_seconds: float,
                  finished: bool, pngs: dict[str, dict[str, Path]]) -> str:
    """The Markdown results document (see :func:`write_document`)."""
    lines = _doc_header(options, results, wall_seconds, finished)
    lines += _doc_setup(options, results)
    lines += _doc_timing(results)
    lines += _doc_dsc(options, results)
    lines += _doc_confusions(options, results, pngs)
    lines += _doc_groups(results)
    lines += _reading(results, options)
    lines += _doc_files(options, results, pngs)
    return "\n".join(lines)


def _doc_header(options: AblationOptions, results: Sequence[ConfigResult], wall_seconds: float,
                finished: bool) -> list[str]:
    """Title, date, compute, machine, version and command."""
    machine = machine_description()
    now = _now()
    done = [r for r in results if r.done]
    lines = ["# A/B/C/D ablation on synthetic phantoms (paper Table 2, Fig. 4)", ""]
    lines += ["Phantom-trained, CPU-sized (lite) networks at a small training budget: this measures the paper's "
              "comparison on `sneakynet phantom` data with our pipeline, not the paper's numbers on real CT.", ""]
    status = "finished" if finished else f"in progress ({len(done)} of {len(results)} configs evaluated)"
    study = _read_json_or_none(options.out / STUDY_FILE) or {}
    recorded = [study.get("phantom_seconds")] + [(r.train or {}).get("seconds_total") for r in results] + \
        [r.eval_seconds for r in results]
    total = sum(float(x) for x in recorded if isinstance(x, (int, float)))
    evaluated = [r.evaluated_at.replace("T", " ")[:16] for r in results if r.evaluated_at]
    lines += [
        f"- Date: document written {now:%Y-%m-%d %H:%M} UTC, {status}"
        + (f"; last test evaluation {max(evaluated)} UTC" if evaluated else ""),
        f"- Compute: phantom generation + training + test {total / 60:.1f} min as recorded by the runs "
        f"(this invocation: {wall_seconds / 60:.1f} min wall time)",
        f"- Machine: {machine['cpu']}, {machine['cores']} logical cores, {machine['os']}; Python "
        f"{machine['python']}, torch {machine['torch']}; GPU: {machine['cuda']}; device used: {options.device}",
        f"- sneakynet {_version()}, git commit {_git_commit()} (when the document was written)",
        f"- Command: `{options.command or '(library call)'}`",
        "",
        "## Setup",
        "",
    ]
    return lines


def _doc_setup(options: AblationOptions, results: Sequence[ConfigResult]) -> list[str]:
    """Data, split, budget, networks, validation and evaluation of the study."""
    lines: list[str] = []
    split = next((r.split for r in results if r.split), None)
    if options.dataset is None:
        lines.append(f"- Data: {options.cases} phantom cases (`sneakynet phantom`, seeds {options.seed}.."
                     f"{options.seed + options.cases - 1}), {options.spacing:g} mm isotropic; model spacing "
                     f"{options.spacing:g} mm")
    else:
        shown = portable_path(options.dataset_dir, options.doc_path.parent, options.out.resolve().parent)
        lines.append(f"- Data: `{shown}`; model spacing {options.spacing:g} mm")
    if split:
        lines.append(f"- Split: fold {FOLD}, the same for every config: train {len(split['train'])} "
                     f"({', '.join(split['train'])}), validation {len(split['val'])} ({', '.join(split['val'])}), "
                     f"test {len(split['test'])} ({', '.join(split['test'])})")
    lines.append(f"- Budget, the same for every config: {options.iterations} iterations x batch {options.batch_size} "
                 f"patches of {options.patch}^3 voxels, Adam lr {options.lr:g}, seed {options.seed}, "
                 f"{options.threads} torch thread(s) + {options.workers} loader worker(s); the paper trained "
                 f"{PAPER_ITERATIONS:,} iterations ({PAPER_ITERATIONS / options.iterations:.0f} x more)")
    lines.append("- Networks: preset `{}`{}; K = 0 for A, K = 1 (context FOV {} voxels at {:g} mm) for B, C, D"
                 .format(options.preset, f", widths overridden to {list(options.widths)}" if options.widths else "",
                         2 * options.patch, 2 * options.spacing))
    lines.append("- Validation: sampled patches of the validation cases (training curve only); the final "
                 "bundle, not the best-validation one, is tested")
    lines.append("- Evaluation: the final bundle of each run predicts the test cases with the sliding-window "
                 "predictor (`sneakynet.fold_eval`); class-wise DSC = mean over test cases where the bone is "
                 "present; median and 16/84 % quantiles over classes with DSC > 0, as the paper")
    threads = sorted({r.eval_threads for r in results if r.eval_threads})
    if threads:
        lines.append(f"- Test prediction ran with {'/'.join(str(t) for t in threads)} torch thread(s)")
    return lines


def _doc_timing(results: Sequence[ConfigResult]) -> list[str]:
    """Per-config network size, training and test time."""
    lines = ["", "| Config | network | widths | parameters | train time | s / iteration | final loss | test time |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        t = r.train or {}
        lines.append(f"| {r.config} | {r.network} | {r.widths} | {r.parameters:,} | "
                     f"{_fmt(t.get('seconds_total'), '{:.0f} s', 'pending')} | "
                     f"{_fmt(t.get('seconds_per_iteration_median'), '{:.2f}')} | {_fmt(t.get('final_loss'), '{:.3f}')} "
                     f"| {_fmt(r.eval_seconds, '{:.0f} s', 'pending')} |")

    return lines


def _doc_dsc(options: AblationOptions, results: Sequence[ConfigResult]) -> list[str]:
    """The measured rows beside the paper's Table 2 rows."""
    done = [r for r in results if r.done]
    lines = ["", f"## DSC in the layout of Table 2 (target patch {options.patch})", ""]
    from sneakynet.metrics import TABLE_HEADER

    lines.append(TABLE_HEADER)
    for r in results:
        lines.append(measured_row(r))
        ref = paper_row(r.config, options.patch)
        if ref:
            lines.append(ref)
    if options.patch not in PAPER_TABLE2:
        lines.append("\nThe paper reports Table 2 for target patches 32 and 64 only; "
                     f"no reference rows for {options.patch}.")
    n_test = len(done[0].test_cases) if done else 0
    lines += ["", f"Measured rows: {n_test} held-out phantom case(s) per config; paper rows: real upper-body CT, "
              "5-fold cross-validation, 100k iterations, Table 1 network sizes.", ""]

    return lines


def _doc_confusions(options: AblationOptions, results: Sequence[ConfigResult],
                    pngs: dict[str, dict[str, Path]]) -> list[str]:
    """Left/right and long-bone confusions (paper Fig. 4) with the confusion-matrix images."""
    doc_dir = options.doc_path.parent
    lines = ["## Confusions: left/right and long bones (paper Fig. 4)", "",
              "Voxel counts summed over the test cases (rows = reference, columns = prediction).", "",
              "| Config | left/right confused voxels | % of sided-bone voxels | long-bone off-diagonal voxels "
              "| % of long-bone voxels | long-bone left/right | arm/leg (humerus, radius, ulna <-> femur) "
              "| confusion matrix |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if not r.done:
            lines.append(f"| {r.config} | pending | | | | | | |")
            continue
        s = confusion_stats(r.confusion)
        png = pngs.get(r.config, {}).get("limbs")
        link = f"[long bones]({os.path.relpath(png, doc_dir)})" if png else "n/a"
        lines.append(f"| {r.config} | {s['lr_voxels']:,} | {_fmt(s['lr_pct'], '{:.2f} %')} | {s['limb_offdiag']:,} "
                     f"| {_fmt(s['limb_offdiag_pct'], '{:.2f} %')} | {s['limb_lr']:,} | {s['arm_leg']:,} | {link} |")
    lines.append("")
    for r in results:
        p = pngs.get(r.config, {})
        if p.get("limbs"):
            lines.append(f"![{r.config}: confusion among long bones]({os.path.relpath(p['limbs'], doc_dir)})")
    lines.append("")

    return lines


def _doc_groups(results: Sequence[ConfigResult]) -> list[str]:
    """Median DSC per bone group of the evaluated configs."""
    done = [r for r in results if r.done]
    lines: list[str] = []
    if done:
        lines += ["## Median DSC per bone group", "", "| Group | " + " | ".join(r.config for r in done) + " |",
                  "|---|" + "---:|" * len(done)]
        groups = list((done[0].summary or {}).get("groups", {}))
        for g in groups:
            cells = [_fmt(((r.summary or {}).get("groups", {}).get(g) or {}).get("median")) for r in done]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        lines.append("")

    return lines


def _doc_files(options: AblationOptions, results: Sequence[ConfigResult],
               pngs: dict[str, dict[str, Path]]) -> list[str]:
    """Links to the training curves and where the reports are."""
    doc_dir = options.doc_path.parent
    lines: list[str] = []
    curves = [(r.config, pngs.get(r.config, {}).get("curve")) for r in results]
    if any(c for _, c in curves):
        lines += ["## Training curves", ""]
        lines += [f"- [{c}]({os.path.relpath(p, doc_dir)})" for c, p in curves if p]
        lines.append("")
    lines += ["## Files", "",
              f"- Study folder: `{portable_path(options.out, doc_dir)}` (runs in `runs/<config>/`, test reports in "
              "`runs/<config>/test/`: per-case and per-class CSVs, `summary.json`, `confusion_all.csv`)",
              "- Every number above is read back from those reports; rerunning the command skips finished configs.",
              ""]
    return lines


def _reading(results: Sequence[ConfigResult], options: AblationOptions) -> list[str]:
    """Plain comparisons of the measured numbers (no judgement beyond what the numbers say)."""
    by = {r.config: r for r in results if r.done}
    lines = ["## Reading the numbers", ""]
    if "A" in by:
        a = by["A"]
        sa = confusion_stats(a.confusion)
        for c in ("B", "C", "D"):
            if c not in by:
                continue
            r = by[c]
            dm = _num(r.summary["median"]) - _num(a.summary["median"])
            s = confusion_stats(r.confusion)
            change = ("fewer" if s["lr_voxels"] < sa["lr_voxels"] else
                      "more" if s["lr_voxels"] > sa["lr_voxels"] else "as many")
            lines.append(f"- {CONFIG_NAMES[c]} vs A: median DSC {_fmt(r.summary['median'])} vs "
                         f"{_fmt(a.summary['median'])} ({_fmt(dm, '{:+.2f}')}); non-zero DSC "
                         f"{_fmt(r.summary['nonzero_pct'], '{:.1f} %')} vs "
                         f"{_fmt(a.summary['nonzero_pct'], '{:.1f} %')}; "
                         f"left/right confused voxels {s['lr_voxels']:,} vs {sa['lr_voxels']:,} ({change}); "
                         f"arm/leg confused voxels {s['arm_leg']:,} vs {sa['arm_leg']:,}")
    else:
        lines.append("- (A, the baseline, is not among the evaluated configs; no comparison)")
    if by:
        counts = ", ".join(f"{c} {by[c].summary.get('n_nonzero')}/{by[c].summary.get('n_evaluated')}" for c in by)
        lines.append(f"- Classes with DSC > 0 (the ones the median and quantiles are taken over): {counts}")
        low = [c for c in by if _num(by[c].summary.get("nonzero_pct")) < 50]
        if low:
            lines.append(f"- {', '.join(low)}: fewer than half of the bones found at all, so the median describes "
                         "only the few bones each network found and is not comparable across configs the way the "
                         "paper's (94-97 % non-zero) is")
    for r in results:
        if r.done:
            twins = collapsed_twins(r.confusion)
            text = ", ".join(f"{bone} (both as {side})" for bone, side in twins) or "none"
            lines.append(f"- {r.config}: long-bone twins predicted with one side's label for both sides: {text}")
    lines += ["", f"Budget: {options.iterations} iterations is {100 * options.iterations / PAPER_ITERATIONS:.2g} % of "
              "the paper's 100k, with lite networks (about 2.8 M parameters instead of 37-58 M), one fold and "
              "phantom anatomy: one seed, one split; no error bars across seeds or folds.", ""]
    return lines


def write_document(options: AblationOptions, results: Sequence[ConfigResult], wall_seconds: float,
                   finished: bool = False) -> Path:
    """Copy the PNGs next to the document and write the document atomically (temporary file + rename)."""
    from sneakynet.io import atomic_path

    pngs: dict[str, dict[str, Path]] = {}
    for r in results:
        run = options.run_dir(r.config)
        entry = {}
        if r.done:
            p = _copy_png(RunFolder(run).test / "confusion_limbs.png", options.png_dir / f"confusion_limbs_{r.config}.png")
            if p:
                entry["limbs"] = p
        if r.train is not None:
            p = _copy_png(RunFolder(run).curve, options.png_dir / f"training_curve_{r.config}.png")
            if p:
                entry["curve"] = p
        pngs[r.config] = entry
    text = document_text(options, results, wall_seconds, finished, pngs)
    with atomic_path(options.doc_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return options.doc_path


def parse_table_rows(text: str) -> dict[str, tuple[float, float, float, float]]:
    """Measured rows of a document's Table 2: config letter -> (median, plus, minus, non-zero %).

    ``plus`` and ``minus`` are magnitudes (>= 0), as ``summary.json`` stores them; n/a reads as NaN.
    """
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].endswith(", measured") and cells[1] != "pending":
            values = [math.nan if v == "n/a" else float(v) for v in (cells[1], cells[2], cells[3],
                                                                      cells[4].rstrip("%"))]
            values[2] = -values[2]  # the cell reads "-0.34"; the summary's ``minus`` is the magnitude
            rows[cells[0][0]] = tuple(values)
    return rows


# ----------------------------------------------------------------------------- helpers


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _version() -> str:
    from sneakynet import __version__

    return __version__


def _read_json_or_none(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    write_json(json_safe(data), path)


__all__ = ["AblationError", "AblationOptions", "ConfigResult", "CONFIG_NAMES", "PAPER_TABLE2", "collect_results",
           "collapsed_twins", "confusion_stats", "document_text", "machine_description", "parse_table_rows",
           "prepare_dataset", "read_confusion_csv", "run_ablation", "run_config", "write_document"]
