"""Training of the A/B/C/D networks (paper §2.2): Adam, CE + Dice, target + context losses.

One entry point, :func:`train`, used by ``sneakynet train``, by scripts, and by every rank under
``torchrun --nproc_per_node N`` (DistributedDataParallel; NCCL on GPUs, gloo on CPUs). A run
folder holds::

    <run>/options.json            the options (a resumed run must agree on what changes results)
    <run>/splits.json             train / val / test case ids of the fold used
    <run>/checkpoints/iter_*/     last checkpoints (safetensors + JSON, see sneakynet.checkpoint)
    <run>/metrics.jsonl           one JSON object per logged step and per validation
    <run>/training_curve.png      loss and validation DSC over iterations
    <run>/best/                   model bundle of the best validation DSC so far
    <run>/bundle/                 model bundle at the end of training
    <run>/summary.json            final numbers (loss, DSC, timing, weight hashes of all ranks)

Data: cases are read from an nnU-Net-style dataset folder, reoriented to LPS and resampled to the
model spacing exactly as the predictor does (:mod:`sneakynet.training_cases`; labels
nearest-neighbour on the same grid), normalised (:mod:`sneakynet.intensity`) and sampled by
:class:`sneakynet.sampler.PatchDataset` (from the predictor's context pyramid,
:mod:`sneakynet.pyramid`), whose sample ``j`` of rank ``r`` is a pure function of
``(seed, r, j)``. Each rank therefore draws its own patches, and a resumed run continues the
stream at the next sample.

Resume is exact: a checkpoint holds the weights and buffers, the Adam state, the RNG states of
torch/numpy/Python, the sampler position, the AMP scaler and the best validation score, and
``--resume`` continues from the newest complete checkpoint. With ``deterministic=True`` (CPU,
same thread count) an interrupted and resumed run ends with bit-identical weights.

Validation (every ``val_every`` iterations, on the fold's validation cases, rank 0 only):
``val_mode="cases"`` predicts whole cases with the sliding-window :class:`sneakynet.infer.Predictor`;
``val_mode="patches"`` scores a fixed set of sampled validation patches (cheap, for tests).
The score is the mean class-wise DSC over the bones present (NaN classes ignored).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from sneakynet.bundle import intensity_spec, save_bundle, unwrap_model
from sneakynet.checkpoint import (CheckpointError, capture_rng, latest_checkpoint, load_checkpoint, pack_model,
                                  pack_optimizer, remove_stale_temporaries, restore_rng, save_checkpoint,
                                  unpack_model, unpack_optimizer)
from sneakynet.distributed import (DistContext, barrier, broadcast_buffers, gather_digests, init_distributed,
                                   shutdown_distributed)
from sneakynet.intensity import DEFAULT_CT_NORMALIZATION, CTNormalization
from sneakynet.losses import multires_loss
from sneakynet.models import NetConfig, build_network, count_parameters, preset
from sneakynet.training_cases import case_on_model_grid

OPTIONS_FILE = "options.json"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
SUMMARY_FILE = "summary.json"
SPLITS_FILE = "splits.json"
BEST_DIR = "best"
BUNDLE_DIR = "bundle"
DEFAULT_SPACING = (2.0, 2.0, 2.0)  # mm; a 128^3 context then spans ~half an upper body, as in the paper (§3)

# options that change the numbers a run produces: a resumed run must keep them
_RESUME_FIXED = ("dataset", "fold", "variant", "context", "patch", "preset", "widths", "batch_size", "lr",
                 "seed", "spacing", "class_balance", "augment", "overfit_one_batch", "deterministic", "amp",
                 "normalization")


class TrainError(ValueError):
    """Bad training input (dataset, options, run folder); the message names the file or option."""


@dataclass
class TrainOptions:
    """Everything a training run depends on; stored as ``options.json`` in the run folder.

    ``batch_size`` is per process: under torchrun with N processes one step sees N x batch_size
    patches. ``widths`` overrides the preset's channel widths (tiny test networks).
    """

    dataset: str
    out: str
    fold: int = 0
    variant: str = "D"
    context: int = 1
    patch: int = 64
    preset: str = "lite"
    widths: tuple[int, ...] | None = None
    iterations: int = 1000
    batch_size: int = 2
    lr: float = 1e-3  # Adam, as the paper
    workers: int = 2
    val_every: int = 250
    val_mode: str = "cases"  # "cases" (sliding window on whole val cases) or "patches"
    val_patches: int = 16
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    seed: int = 0
    deterministic: bool = False
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    spacing: tuple[float, float, float] = DEFAULT_SPACING  # model spacing, mm (x, y, z)
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 if supported else fp16 on CUDA; off on CPU) | bf16 | fp16 | off
    class_balance: float = 0.5
    augment: bool = True
    overfit_one_batch: bool = False
    normalization: dict = field(default_factory=DEFAULT_CT_NORMALIZATION.to_dict)
    description: str = ""
    demo: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.dataset, self.out = str(self.dataset), str(self.out)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if self.widths is not None:
            self.widths = tuple(int(w) for w in self.widths)
        checks = [
            (len(self.spacing) == 3 and all(s > 0 and math.isfinite(s) for s in self.spacing),
             f"--spacing must be three positive numbers in mm, got {self.spacing}"),
            (self.iterations >= 1, f"--iterations must be >= 1, got {self.iterations}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (self.val_every >= 0 and self.ckpt_every >= 0,
             "--val-every and --ckpt-every must be >= 0 (0 = only at the end)"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.val_mode in ("cases", "patches"), f"--val-mode must be cases or patches, got {self.val_mode!r}"),
            (self.amp in ("auto", "bf16", "fp16", "off"), f"--amp must be auto, bf16, fp16 or off, got {self.amp!r}"),
            (0.0 <= self.class_balance <= 1.0, f"--class-balance must be in [0, 1], got {self.class_balance}"),
            (self.threads >= 0, f"--threads must be >= 0, got {self.threads}"),
            (self.device in ("auto", "cpu", "cuda", "gpu") or self.device.startswith("cuda:"),
             f"--device must be auto, cpu or cuda, got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        try:
            CTNormalization.from_dict(self.normalization)
        except (TypeError, ValueError) as exc:
            raise TrainError(f"normalization: {exc}") from None

    def net_config(self) -> NetConfig:
        """The network to build: the preset's, or ``widths`` when given."""
        try:
            config = preset(self.preset, self.variant, self.context, self.patch)
            if self.widths is not None:
                config = replace(config, widths=self.widths, preset="custom")
                config = NetConfig.from_dict(config.to_dict())  # re-validate
        except ValueError as exc:
            raise TrainError(f"network: {exc}") from None
        return config

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spacing"] = list(self.spacing)
        d["widths"] = list(self.widths) if self.widths is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TrainError(f"unknown training options {sorted(unknown)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# data


def load_fold(options: TrainOptions) -> tuple[Any, dict[str, list[str]]]:
    """The dataset and the train/val/test case ids of ``options.fold``.

    Uses ``<dataset>/splits.json`` when present, else the default :func:`make_splits` of the cases.
    """
    from sneakynet.dataset import SPLITS_JSON, DatasetError, load_dataset, make_splits, read_splits

    try:
        ds = load_dataset(options.dataset)
        if (Path(options.dataset) / SPLITS_JSON).is_file():
            folds = read_splits(options.dataset)
        else:
            folds = make_splits(ds.cases)
    except (DatasetError, ValueError) as exc:
        raise TrainError(str(exc)) from None
    if not 0 <= options.fold < len(folds):
        raise TrainError(f"{Path(options.dataset) / SPLITS_JSON}: no fold {options.fold} (the dataset has "
                         f"{len(folds)} folds, 0..{len(folds) - 1})")
    return ds, folds[options.fold]


def load_cases(ds, case_ids: Sequence[str], options: TrainOptions, show: bool) -> list:
    """Read, resample and normalise cases (tqdm progress on the main process)."""
    from tqdm import tqdm

    from sneakynet.dataset import DatasetError

    norm = CTNormalization.from_dict(options.normalization)
    out = []
    for case_id in tqdm(case_ids, desc="loading cases", disable=not (show and options.progress), leave=False):
        try:
            ct, labels = ds.read_case(case_id)
        except DatasetError as exc:
            raise TrainError(str(exc)) from None
        out.append(case_on_model_grid(case_id, ct, labels, options.spacing, norm))
    return out


def _batch_to(batch: dict, device: torch.device, channels_last: bool = False) -> tuple[list, list]:
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    images = [t.to(device, non_blocking=True, memory_format=fmt) for t in batch["image"]]
    labels = [t.to(device, non_blocking=True) for t in batch["labels"]]
    return images, labels


# ----------------------------------------------------------------------------------------------
# one step


def amp_settings(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed) for ``device``."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: list[torch.Tensor],
               labels: list[torch.Tensor], amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One Adam step on a batch: forward (autocast if ``amp_dtype``), CE + Dice loss, backward.

    ``images`` = [target, ctx_1..ctx_K] (B, 1, S, S, S); ``labels`` = [target, ctx_1..] (B, S, S, S).
    Returns the loss parts (floats).
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = images[0].device.type
    autocast = torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with autocast:
        out = model(images[0], images[1:])
    loss, parts = multires_loss(out, labels[0], labels[1:])  # the loss casts logits to float32
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return parts


# ----------------------------------------------------------------------------------------------
# validation


class Validator:
    """Scores the network on the fold's validation cases (rank 0); see the module docstring."""

    def __init__(self, cases: list, config: NetConfig, options: TrainOptions, device: torch.device) -> None:
        self.cases, self.config, self.options, self.device = cases, config, options, device
        self.patches: list[dict] = []
        if cases and options.val_mode == "patches":
            from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions

            sampler = SamplerOptions(patch_size=config.patch_size, num_context=config.num_context,
                                     class_balance=0.5, seed=options.seed + 7919, augment=AugmentOptions.none())
            ds = PatchDataset(cases, sampler, rank=0, world_size=1, samples_per_epoch=options.val_patches)
            self.patches = [ds[j] for j in range(options.val_patches)]

    @property
    def enabled(self) -> bool:
        return bool(self.cases)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        """``val_dsc`` (mean class-wise DSC over evaluated bones), the paper's summary, ``val_seconds``."""
        from sneakynet.metrics import aggregate_cases, confusion_matrix, dice_from_confusion, summarize

        t0 = time.perf_counter()
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        try:
            if self.options.val_mode == "patches":
                cm = 0
                for start in range(0, len(self.patches), max(1, self.options.batch_size)):
                    chunk = self.patches[start:start + max(1, self.options.batch_size)]
                    images = [torch.stack([p["image"][k] for p in chunk]).to(self.device)
                              for k in range(self.config.num_context + 1)]
                    ref = torch.stack([p["labels"][0] for p in chunk]).numpy().astype(np.uint8)
                    pred = net(images[0], images[1:], with_context_logits=False).target.argmax(1)
                    cm = cm + confusion_matrix(pred.to(torch.uint8).cpu().numpy(), ref)
                dsc = dice_from_confusion(cm)
            else:
                from sneakynet.infer import Predictor

                predictor = Predictor.from_model(net, self.options.spacing,
                                                 CTNormalization.from_dict(self.options.normalization),
                                                 device=str(self.device), log=lambda message: None)
                per_case = []
                for case in self.cases:
                    pred = predictor.predict_array(case.image)
                    per_case.append(dice_from_confusion(confusion_matrix(pred, case.labels)))
                dsc = aggregate_cases(per_case)
        finally:
            net.train(was_training)
        summary = summarize(dsc)
        finite = dsc[np.isfinite(dsc)]
        return {"val_dsc": float(finite.mean()) if finite.size else float("nan"),
                "val_median": summary["median"], "val_nonzero_pct": summary["nonzero_pct"],
                "val_n_evaluated": summary["n_evaluated"], "val_seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------------
# run folder: options, metrics, curve


def _write_json(path: Path, data: Any) -> None:
    from sneakynet.bundle import json_safe
    from sneakynet.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")


class MetricsLog:
    """Append-only JSON lines; on resume, lines past the checkpoint's iteration are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: the rest is not trustworthy
        return rows

    def truncate(self, iteration: int) -> None:
        from sneakynet.io import atomic_path

        rows = [r for r in self.read() if int(r.get("iteration", 0)) <= iteration]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows), encoding="utf-8")

    def append(self, row: dict) -> None:
        from sneakynet.bundle import json_safe

        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
            f.flush()


def plot_curve(rows: list[dict], path: Path, title: str) -> None:
    """Training loss (left axis, log scale) and validation DSC (right axis) over iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sneakynet.io import atomic_path

    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in rows if r.get("kind") == "val" and r.get("val_dsc") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        its = np.array([r["iteration"] for r in train])
        loss = np.array([r["loss"] for r in train], dtype=float)
        window = max(1, len(loss) // 25)
        if window > 1:  # raw values faint, moving average on top
            ax.plot(its, loss, color="tab:blue", lw=0.6, alpha=0.3)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax.plot(its[window - 1:], smooth, color="tab:blue", lw=1.4,
                    label=f"training loss (CE + Dice, all branches; mean of {window} logs)")
        else:
            ax.plot(its, loss, color="tab:blue", lw=1.2, label="training loss (CE + Dice, all branches)")
        if np.all(loss > 0) and loss.max() / loss.min() > 10:
            ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in val], [r["val_dsc"] for r in val], "o-", color="tab:red", lw=1.2, ms=3,
                 label="validation mean DSC")
        ax2.set_ylabel("validation mean DSC", color="tab:red")
        ax2.set_ylim(0, 1)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc="upper center", fontsize=8, framealpha=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# the run


def _set_determinism(options: TrainOptions, ctx: DistContext) -> None:
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # CUDA has no deterministic cross-entropy (nll_loss2d) kernel: warn there instead of failing.
        # Bit-exact runs and resumes are tested on the CPU (same thread count); on an H100 two runs and
        # a resumed run were also bit-identical, but PyTorch does not promise it.
        cuda = ctx.device.type == "cuda"
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        if cuda and ctx.is_main:
            print("sneakynet train: --deterministic on CUDA is best effort (PyTorch has no deterministic "
                  "cross-entropy kernel there); bit-exact runs are guaranteed on the CPU", flush=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = ctx.device.type == "cuda"
    # the same initial weights on every rank (DDP also broadcasts rank 0's); per-rank streams differ
    torch.manual_seed(options.seed)
    np.random.seed(options.seed % 2**32)
    random.seed(options.seed)


def _prepare_run_dir(options: TrainOptions, ctx: DistContext, config: NetConfig) -> None:
    """Check (resume rules) and create the run folder, write ``options.json``; rank 0 only."""
    run = Path(options.out)
    ckpt = latest_checkpoint(run) if run.is_dir() else None
    stored = run / OPTIONS_FILE
    if options.resume:
        if stored.is_file():
            try:
                old = json.loads(stored.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise TrainError(f"{stored}: not valid JSON ({exc})") from None
            mine = options.to_dict()
            changed = [k for k in _RESUME_FIXED if old.get(k) != mine.get(k)]
            if old.get("world_size", ctx.world_size) != ctx.world_size:
                changed.append(f"world_size ({old.get('world_size')} -> {ctx.world_size})")
            if changed:
                raise TrainError(f"{stored}: cannot resume with changed option(s) {', '.join(changed)}; "
                                 "resume with the original options or start a new --out folder")
    elif ckpt is not None or stored.is_file():
        raise TrainError(f"{run}: already holds a training run; add --resume to continue it or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    for folder in (run, run / "checkpoints"):
        remove_stale_temporaries(folder)
    _write_json(stored, {**options.to_dict(), "world_size": ctx.world_size, "network": config.to_dict()})


def _rng_neutral(loader) -> Iterator[dict]:
    """Iterate ``loader`` without touching the global torch RNG.

    Creating a DataLoader iterator draws its base seed from the global generator; a resumed run
    creates one more iterator than an uninterrupted run, so that draw is undone here (the patches
    themselves come from the sampler's own per-sample generators).
    """
    state = torch.get_rng_state()
    it = iter(loader)
    try:
        first = next(it)
    finally:
        torch.set_rng_state(state)
    yield first
    yield from it


def train(options: TrainOptions, on_step: Callable[[int, dict], None] | None = None) -> Path:
    """Train one network as ``options`` say and return the run folder.

    Works alone and on every rank under ``torchrun`` (only rank 0 writes). ``on_step(iteration,
    loss_parts)`` is called after every optimizer step (progress for GUIs and tests).
    """
    try:
        ctx = init_distributed(options.device)
    except ValueError as exc:
        raise TrainError(f"--device: {exc}") from None
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        return _train(options, ctx, on_step)
    finally:
        shutdown_distributed()
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _train(options: TrainOptions, ctx: DistContext, on_step: Callable[[int, dict], None] | None) -> Path:
    from tqdm import tqdm

    from sneakynet.patch_loader import PatchLoader
    from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions

    _set_determinism(options, ctx)
    config = options.net_config()
    run = Path(options.out)
    if ctx.is_main:
        _prepare_run_dir(options, ctx, config)
    barrier(ctx)  # other ranks read the run folder only after rank 0 has checked it
    ckpt_path = latest_checkpoint(run) if options.resume else None
    show = ctx.is_main and options.progress

    ds, split = load_fold(options)
    if ctx.is_main:
        _write_json(run / SPLITS_FILE, {"dataset": str(Path(options.dataset).resolve()), "fold": options.fold, **split})
    train_cases = load_cases(ds, split["train"], options, ctx.is_main)
    val_cases = load_cases(ds, split["val"], options, True) if ctx.is_main else []

    sampler_options = SamplerOptions(
        patch_size=config.patch_size, num_context=config.num_context, class_balance=options.class_balance,
        seed=options.seed, augment=AugmentOptions() if options.augment else AugmentOptions.none())
    patch_ds = PatchDataset(train_cases, sampler_options, rank=ctx.rank, world_size=ctx.world_size,
                            samples_per_epoch=options.iterations * options.batch_size)
    loader = PatchLoader(patch_ds, options.batch_size, num_workers=options.workers,
                         pin_memory=ctx.device.type == "cuda")
    validator = Validator(val_cases, config, options, ctx.device) if ctx.is_main else None

    model = build_network(config).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    amp_dtype, needs_scaler = amp_settings(ctx.device, options.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

    start, best, last_val = 0, {"val_dsc": -1.0, "iteration": 0}, None
    elapsed_before = 0.0
    if ckpt_path is not None:
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError as exc:
            raise TrainError(str(exc)) from None
        unpack_model(model, ckpt.tensors, ckpt.path)
        unpack_optimizer(optimizer, ckpt.tensors, ckpt.meta["optimizer"], ckpt.path)
        if scaler is not None and ckpt.meta.get("scaler"):
            scaler.load_state_dict(ckpt.meta["scaler"])
        state = dict(ckpt.meta["sampler"], rank=ctx.rank)  # ranks share the position, differ in rank
        loader.load_state_dict(state)
        rng_tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith("rng/")}
        restore_rng(rng_tensors, ckpt.meta["rng"])
        start, best, last_val = ckpt.iteration, ckpt.meta["best"], ckpt.meta.get("last_validation")
        elapsed_before = float(ckpt.meta.get("elapsed_seconds", 0.0))
        if ctx.is_main:
            MetricsLog(run / METRICS_FILE).truncate(start)
            print(f"sneakynet train: resuming {run} at iteration {start} of {options.iterations}", flush=True)
    elif ctx.is_main and (run / METRICS_FILE).exists():
        (run / METRICS_FILE).unlink()

    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model: nn.Module = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    else:
        ddp_model = model
    model.train()

    log = MetricsLog(run / METRICS_FILE)
    title = (f"{config.describe()} ({config.preset}), fold {options.fold}, "
             f"{ctx.world_size} x batch {options.batch_size}, lr {options.lr:g}")
    if ctx.is_main and start == 0:
        log.append({"kind": "start", "iteration": 0, "parameters": count_parameters(model),
                    "network": config.to_dict(), "train_cases": len(train_cases), "val_cases": len(val_cases),
                    "world_size": ctx.world_size, "device": str(ctx.device), "amp": str(amp_dtype)})

    def checkpoint(iteration: int, elapsed: float) -> None:
        tensors = pack_model(model)
        optim_tensors, optim_meta = pack_optimizer(optimizer)
        rng_tensors, rng_meta = capture_rng()
        tensors.update(optim_tensors)
        tensors.update(rng_tensors)
        meta = {"optimizer": optim_meta, "rng": rng_meta, "sampler": loader.state_dict(), "best": best,
                "scaler": scaler.state_dict() if scaler is not None else None, "elapsed_seconds": elapsed,
                "network": config.to_dict(), "world_size": ctx.world_size, "last_validation": last_val}
        save_checkpoint(run, iteration, tensors, meta, keep=options.keep_checkpoints)

    def bundle_training(iteration: int) -> dict:
        return {"dataset": str(Path(options.dataset).resolve()), "dataset_name": ds.meta.get("name", ""),
                "dataset_description": ds.meta.get("description", ""), "fold": options.fold,
                "train_cases": split["train"], "val_cases": split["val"], "test_cases": split["test"],
                "iterations": iteration, "batch_size_per_process": options.batch_size,
                "world_size": ctx.world_size, "optimizer": f"Adam lr {options.lr:g}", "seed": options.seed,
                "sampler": sampler_options.to_dict(), "amp": str(amp_dtype), "device": ctx.device.type}

    def write_bundle(folder: str, iteration: int, metrics: dict | None) -> Path:
        data_name = ds.meta.get("name") or Path(options.dataset).name
        description = options.description or (
            f"SneakyNet {config.describe()} ({config.preset}) trained on {data_name}, fold {options.fold}, "
            f"{iteration} iterations")
        return save_bundle(model, run / folder, spacing=options.spacing,
                           intensity=intensity_spec(CTNormalization.from_dict(options.normalization)),
                           description=description, training=bundle_training(iteration), demo=options.demo,
                           metrics=metrics)

    if options.overfit_one_batch:  # always the stream's first batch, also after a resume
        from torch.utils.data import default_collate

        fixed = default_collate([patch_ds[j] for j in range(options.batch_size)])
        data: Iterator[dict] = itertools.repeat(fixed)
    else:
        data = _rng_neutral(loader)
    bar = tqdm(total=options.iterations, initial=start, desc=f"train {config.describe()}", disable=not show,
               dynamic_ncols=True)
    window: list[dict] = []
    t_window = time.perf_counter()
    t_start = time.perf_counter() - elapsed_before
    try:
        for iteration in range(start + 1, options.iterations + 1):
            batch = next(data)
            images, labels = _batch_to(batch, ctx.device)
            parts = train_step(ddp_model, optimizer, images, labels, amp_dtype, scaler)
            if not math.isfinite(parts["total"]) and scaler is None:
                last = latest_checkpoint(run)
                raise FloatingPointError(f"training loss became {parts['total']} at iteration {iteration}; "
                                         f"last checkpoint: {last or 'none'} (try a lower --lr)")
            window.append(parts)
            if on_step is not None:
                on_step(iteration, parts)
            bar.update(1)
            if iteration % options.log_every == 0 or iteration == options.iterations:
                now = time.perf_counter()
                mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                sec = (now - t_window) / len(window)
                if ctx.is_main:
                    log.append({"kind": "train", "iteration": iteration, "loss": mean.pop("total"), **mean,
                                "seconds_per_iteration": sec, "lr": optimizer.param_groups[0]["lr"]})
                bar.set_postfix(loss=f"{np.mean([w['total'] for w in window]):.3f}", s_it=f"{sec:.2f}")
                window, t_window = [], time.perf_counter()
            is_last = iteration == options.iterations
            if validator is not None and validator.enabled and (
                    is_last or (options.val_every and iteration % options.val_every == 0)):
                last_val = validator(model)
                log.append({"kind": "val", "iteration": iteration, **last_val})
                if last_val["val_dsc"] > best["val_dsc"]:
                    best = {"val_dsc": last_val["val_dsc"], "iteration": iteration}
                    write_bundle(BEST_DIR, iteration, {**last_val, "iteration": iteration})
                plot_curve(log.read(), run / CURVE_FILE, title)
                t_window = time.perf_counter()  # validation time is not training time
            if is_last or (options.ckpt_every and iteration % options.ckpt_every == 0):
                if ctx.is_main:
                    checkpoint(iteration, time.perf_counter() - t_start)
            if ctx.distributed and (is_last or (options.ckpt_every and iteration % options.ckpt_every == 0)
                                    or (options.val_every and iteration % options.val_every == 0)):
                barrier(ctx)
    finally:
        bar.close()
        if hasattr(data, "close"):
            data.close()  # stops the DataLoader workers

    broadcast_buffers(ctx, model)  # the final forward pass updated each rank's BatchNorm statistics
    digests = gather_digests(ctx, model)
    if ctx.is_main:
        if len(set(digests)) != 1:
            raise RuntimeError(f"weights differ between ranks after training: {digests}")
        final = write_bundle(BUNDLE_DIR, options.iterations, {**last_val, "iteration": options.iterations}
                             if last_val else None)
        rows = log.read()
        plot_curve(rows, run / CURVE_FILE, title)
        train_rows = [r for r in rows if r.get("kind") == "train"]
        summary = {
            "iterations": options.iterations, "network": config.to_dict(), "parameters": count_parameters(model),
            "final_loss": train_rows[-1]["loss"] if train_rows else None,
            "best": best if best["iteration"] else None, "last_validation": last_val,
            "seconds_total": time.perf_counter() - t_start,
            "seconds_per_iteration_median": float(np.median([r["seconds_per_iteration"] for r in train_rows]))
            if train_rows else None,
            "world_size": ctx.world_size, "device": str(ctx.device), "amp": str(amp_dtype),
            "weights_sha256_per_rank": digests, "bundle": str(final),
            "best_bundle": str(run / BEST_DIR) if (run / BEST_DIR).is_dir() else None,
        }
        _write_json(run / SUMMARY_FILE, summary)
    barrier(ctx)
    return run


__all__ = ["TrainError", "TrainOptions", "Validator", "amp_settings", "case_on_model_grid", "load_fold",
           "plot_curve", "train", "train_step"]
