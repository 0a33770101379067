"""The trainer object (shaped like nnU-Net's ``nnUNetTrainer``): setup, step, validation, finish.

:class:`Trainer` holds one run's network, optimizer, data stream, validator and run folder;
:func:`sneakynet.train.train` builds it and calls ``setup()``, ``run()`` (which calls ``step()``,
``validate()`` and ``checkpoint()``) and ``finish()``. :func:`determinism` sets the thread count,
deterministic algorithms and seeds for a run and restores every one of them afterwards.

Resume is exact: a checkpoint holds the weights and buffers, the Adam state, the RNG states of
torch/numpy/Python, the sampler position, the AMP scaler and the best validation score. With
``deterministic=True`` (CPU, same thread count) an interrupted and resumed run ends with
bit-identical weights.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from sneakynet.bundle import intensity_spec, save_bundle
from sneakynet.checkpoint import (CheckpointError, capture_rng, latest_checkpoint, load_newest_intact, pack_model,
                                  pack_optimizer, remove_stale_temporaries, restore_rng, save_checkpoint,
                                  unpack_model, unpack_optimizer)
from sneakynet.distributed import DistContext, barrier, broadcast_buffers, gather_digests
from sneakynet.intensity import CTNormalization
from sneakynet.losses import multires_loss
from sneakynet.models import NetConfig, build_network, count_parameters
from sneakynet.run_folder import MetricsLog, RunFolder, write_json
from sneakynet.train_options import TrainError, TrainOptions
from sneakynet.training_cases import load_cases, load_sources, merged_split
from sneakynet.training_curve import plot_curve

StepCallback = Callable[[int, dict], None]


def amp_settings(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed) for ``device``."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: list[torch.Tensor],
               labels: list[torch.Tensor], amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0,
               sets: torch.Tensor | None = None) -> dict[str, float]:
    """One Adam step on a batch: forward (autocast if ``amp_dtype``), CE + Dice loss, backward,
    optionally the gradient norm clipped to ``grad_clip`` (0 = off).

    ``images`` = [target, ctx_1..ctx_K] (B, 1, S, S, S); ``labels`` = [target, ctx_1..] (B, S, S, S);
    ``sets`` (B, 256, 126) bool: label sets of partially labelled cases (the marginal loss).
    Returns the loss parts (floats).
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = images[0].device.type
    autocast = torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with autocast:
        out = model(images[0], images[1:])
    loss, parts = multires_loss(out, labels[0], labels[1:], sets)  # the loss casts logits to float32
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return parts


@contextlib.contextmanager
def determinism(options: TrainOptions, device: torch.device, is_main: bool) -> Iterator[None]:
    """Thread count, deterministic algorithms, cuDNN flags and seeds for a run; everything set here
    (and the global RNG states) is restored on exit."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
             torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        _set_determinism(options, device, is_main)
        yield
    finally:
        threads, algorithms, warn_only, benchmark, cudnn_deterministic, cublas, torch_rng, np_rng, py_rng = saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_deterministic
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
        torch.set_rng_state(torch_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)


def _set_determinism(options: TrainOptions, device: torch.device, is_main: bool) -> None:
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # CUDA has no deterministic cross-entropy (nll_loss2d) kernel: warn there instead of failing.
        # Bit-exact runs and resumes are tested on the CPU (same thread count); on an H100 two runs and
        # a resumed run were also bit-identical, but PyTorch does not promise it.
        cuda = device.type == "cuda"
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        if cuda and is_main:
            print("sneakynet train: --deterministic on CUDA is best effort (PyTorch has no deterministic "
                  "cross-entropy kernel there); bit-exact runs are guaranteed on the CPU", flush=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = device.type == "cuda"
    # the same initial weights on every rank (DDP also broadcasts rank 0's); per-rank streams differ
    torch.manual_seed(options.seed)
    np.random.seed(options.seed % 2**32)
    random.seed(options.seed)


def _batch_to(batch: dict, device: torch.device) -> tuple[list, list]:
    images = [t.to(device, non_blocking=True) for t in batch["image"]]
    labels = [t.to(device, non_blocking=True) for t in batch["labels"]]
    return images, labels


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


def warm_start(model: nn.Module, config: NetConfig, bundle_dir: str) -> dict:
    """Copy the weights of the model bundle ``bundle_dir`` into ``model`` (``--init-weights``).

    The bundle must hold the same network (variant, K, widths, channels, classes; the patch size may
    differ: the weights do not depend on it), else :class:`TrainError` names the bundle and what
    differs. Returns what the new bundle records: the source's folder name and weights sha256 (no path).
    """
    from sneakynet.bundle import BundleError, check_architecture, load_bundle

    try:
        source, info = load_bundle(bundle_dir)
    except BundleError as exc:
        raise TrainError(f"--init-weights: {exc}") from None
    mine, theirs = config.to_dict(), info.config.to_dict()
    differ = [f"{k} {theirs[k]} in the bundle, {mine[k]} here" for k in mine
              if k not in ("preset", "patch_size") and mine[k] != theirs[k]]
    if differ:
        raise TrainError(f"--init-weights {bundle_dir}: the bundle's network differs from this run's: "
                         + "; ".join(differ))
    state = source.state_dict()
    try:
        check_architecture(state, model, info.path)
    except BundleError as exc:
        raise TrainError(f"--init-weights: {exc}") from None
    model.load_state_dict(state, strict=True)
    return {"bundle": info.path.name, "sha256": info.sha256}


class Trainer:
    """One training run: ``setup()``, ``run()`` (``step``, ``validate``, ``checkpoint``), ``finish()``."""

    def __init__(self, options: TrainOptions, ctx: DistContext, on_step: StepCallback | None = None) -> None:
        self.options, self.ctx, self.on_step = options, ctx, on_step
        self.config: NetConfig = options.net_config()
        self.folder = RunFolder(options.out)
        self.start, self.best, self.last_val = 0, {"val_dsc": -1.0, "iteration": 0}, None
        self.elapsed_before = 0.0

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Check the run folder, load the fold's cases, build sampler, network and optimizer, resume."""
        options, ctx = self.options, self.ctx
        if ctx.is_main:
            self._prepare_folder()
        barrier(ctx)  # other ranks read the run folder only after rank 0 has checked it
        ckpt_path = latest_checkpoint(self.folder.path) if options.resume else None
        self.sources = load_sources(options)
        self.dataset, self.split = self.sources[0].dataset, merged_split(self.sources)
        if ctx.is_main:
            write_json(self.folder.splits, self._splits_record())
        self.train_cases, val_cases = [], []
        for src in self.sources:
            self.train_cases += load_cases(src.dataset, src.split["train"], options, ctx.is_main, src.prefix)
            if ctx.is_main:
                val_cases += load_cases(src.dataset, src.split["val"], options, True, src.prefix)
        self._build_sampler()
        from sneakynet.validation import Validator

        self.validator = Validator(val_cases, self.config, options, ctx.device) if ctx.is_main else None
        self.model = build_network(self.config)
        self.init_weights = self._init_weights(ckpt_path is None)
        self.model.to(ctx.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options.lr)
        self.amp_dtype, needs_scaler = amp_settings(ctx.device, options.amp)
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
        if ckpt_path is not None:
            self._resume()
        elif ctx.is_main and self.folder.metrics.exists():
            self.folder.metrics.unlink()
        self._wrap_model()
        self.log = MetricsLog(self.folder.metrics)
        if ctx.is_main and self.start == 0:
            self.log.append({"kind": "start", "iteration": 0, "parameters": count_parameters(self.model),
                             "network": self.config.to_dict(), "train_cases": len(self.train_cases),
                             "val_cases": len(val_cases), "world_size": ctx.world_size, "device": str(ctx.device),
                             "amp": str(self.amp_dtype)})

    def _init_weights(self, load: bool) -> dict | None:
        """``--init-weights``: the source bundle's name and sha256; its weights are copied in when
        ``load`` (a fresh run; a resumed one takes its weights from the checkpoint)."""
        path = self.options.init_weights
        if path is None:
            return None
        if load:
            return warm_start(self.model, self.config, path)
        from sneakynet.bundle import BundleError, read_bundle_info

        try:
            info = read_bundle_info(path)
        except BundleError as exc:
            raise TrainError(f"--init-weights: {exc}") from None
        return {"bundle": info.path.name, "sha256": info.sha256}

    def _prepare_folder(self) -> None:
        """Check (resume rules) and create the run folder, write ``options.json``; rank 0 only."""
        options, ctx, run = self.options, self.ctx, self.folder.path
        ckpt = latest_checkpoint(run) if run.is_dir() else None
        stored = self.folder.options
        if options.resume:
            if stored.is_file():
                old = self.folder.read_json(stored, TrainError)
                changed = options.changed_for_resume(old)
                if old.get("world_size", ctx.world_size) != ctx.world_size:
                    changed.append(f"world_size ({old.get('world_size')} -> {ctx.world_size})")
                if changed:
                    raise TrainError(f"{stored}: cannot resume with changed option(s) {', '.join(changed)}; "
                                     "resume with the original options or start a new --out folder")
        elif ckpt is not None or stored.is_file():
            raise TrainError(f"{run}: already holds a training run; add --resume to continue it or choose another --out")
        run.mkdir(parents=True, exist_ok=True)
        for folder in (run, self.folder.checkpoints):
            remove_stale_temporaries(folder)
        write_json(stored, {**options.to_dict(), "world_size": ctx.world_size, "network": self.config.to_dict()})

    def _splits_record(self) -> dict:
        """The run's ``splits.json``: folder names only (run folders get copied and shared;
        options.json keeps the paths for resume); mixed runs list each dataset's own fold too."""
        record = {"dataset": Path(self.options.dataset).resolve().name, "fold": self.options.fold, **self.split}
        if len(self.sources) > 1:
            record["datasets"] = [{"dataset": Path(s.dataset.folder).resolve().name, "weight": s.weight,
                                   "prefix": s.prefix, **s.split} for s in self.sources]
        return record

    def _case_weights(self) -> list[float] | None:
        """Sampling weight per training case: a dataset's weight shared by its cases (None: one dataset)."""
        if len(self.sources) == 1:
            return None
        return [s.weight / len(s.split["train"]) for s in self.sources for _ in s.split["train"]]

    def _build_sampler(self) -> None:
        from sneakynet.patch_loader import PatchLoader
        from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions

        options, ctx, config = self.options, self.ctx, self.config
        augment = AugmentOptions() if options.augment else AugmentOptions.none()
        if options.domain_randomization:
            augment = augment.with_domain_randomization()
        self.sampler_options = SamplerOptions(
            patch_size=config.patch_size, num_context=config.num_context, class_balance=options.class_balance,
            seed=options.seed, augment=augment)
        self.patches = PatchDataset(self.train_cases, self.sampler_options, rank=ctx.rank, world_size=ctx.world_size,
                                    samples_per_epoch=options.iterations * options.batch_size,
                                    case_weights=self._case_weights(),
                                    normalization=CTNormalization.from_dict(options.normalization))
        self.loader = PatchLoader(self.patches, options.batch_size, num_workers=options.workers,
                                  pin_memory=ctx.device.type == "cuda")

    def _resume(self) -> None:
        """Weights, optimizer, scaler, sampler position, RNG states and scores of the newest intact
        checkpoint (a damaged newest one falls back to an older intact one, saying so)."""
        try:
            ckpt = load_newest_intact(self.folder.path, log=print if self.ctx.is_main else None)
        except CheckpointError as exc:
            raise TrainError(str(exc)) from None
        if ckpt is None:
            return
        unpack_model(self.model, ckpt.tensors, ckpt.path)
        unpack_optimizer(self.optimizer, ckpt.tensors, ckpt.meta["optimizer"], ckpt.path)
        if self.scaler is not None and ckpt.meta.get("scaler"):
            self.scaler.load_state_dict(ckpt.meta["scaler"])
        state = dict(ckpt.meta["sampler"], rank=self.ctx.rank)  # ranks share the position, differ in rank
        self.loader.load_state_dict(state)
        restore_rng({k: v for k, v in ckpt.tensors.items() if k.startswith("rng/")}, ckpt.meta["rng"])
        self.start, self.best, self.last_val = ckpt.iteration, ckpt.meta["best"], ckpt.meta.get("last_validation")
        self.elapsed_before = float(ckpt.meta.get("elapsed_seconds", 0.0))
        if self.ctx.is_main:
            MetricsLog(self.folder.metrics).truncate(self.start)
            print(f"sneakynet train: resuming {self.folder.path} at iteration {self.start} of "
                  f"{self.options.iterations}", flush=True)

    def _wrap_model(self) -> None:
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.ddp_model: nn.Module = DistributedDataParallel(self.model, device_ids=device_ids)
        else:
            self.ddp_model = self.model
        self.model.train()

    # ------------------------------------------------------------------ the loop
    @property
    def title(self) -> str:
        """The training curve's title."""
        c, o = self.config, self.options
        return (f"{c.describe()} ({c.preset}), fold {o.fold}, {self.ctx.world_size} x batch {o.batch_size}, "
                f"lr {o.lr:g}")

    def _batches(self) -> Iterator[dict]:
        if self.options.overfit_one_batch:  # always the stream's first batch, also after a resume
            from torch.utils.data import default_collate

            return itertools.repeat(default_collate([self.patches[j] for j in range(self.options.batch_size)]))
        return _rng_neutral(self.loader)

    def run(self) -> None:
        """Iterations ``start + 1 .. iterations``: step, log, validate and checkpoint when due."""
        from tqdm import tqdm

        options = self.options
        data = self._batches()
        bar = tqdm(total=options.iterations, initial=self.start, desc=f"train {self.config.describe()}",
                   disable=not (self.ctx.is_main and options.progress), dynamic_ncols=True)
        self.window: list[dict] = []
        self.t_window = time.perf_counter()
        self.t_start = time.perf_counter() - self.elapsed_before
        try:
            for iteration in range(self.start + 1, options.iterations + 1):
                self.step(iteration, next(data))
                bar.update(1)
                if iteration % options.log_every == 0 or iteration == options.iterations:
                    bar.set_postfix(**self._log_window(iteration))
                self._after_step(iteration)
        finally:
            bar.close()
            if hasattr(data, "close"):
                data.close()  # stops the DataLoader workers

    def step(self, iteration: int, batch: dict) -> dict[str, float]:
        """One optimizer step on ``batch`` (the learning rate of ``lr_schedule`` first)."""
        if self.options.lr_schedule != "constant":
            for group in self.optimizer.param_groups:
                group["lr"] = self.options.lr_at(iteration - 1)
        images, labels = _batch_to(batch, self.ctx.device)
        sets = batch["sets"].to(self.ctx.device, non_blocking=True) if "sets" in batch else None
        parts = train_step(self.ddp_model, self.optimizer, images, labels, self.amp_dtype, self.scaler,
                           self.options.grad_clip, sets)
        if not math.isfinite(parts["total"]) and self.scaler is None:
            last = latest_checkpoint(self.folder.path)
            raise FloatingPointError(f"training loss became {parts['total']} at iteration {iteration}; "
                                     f"last checkpoint: {last or 'none'} (try a lower --lr)")
        self.window.append(parts)
        if self.on_step is not None:
            self.on_step(iteration, parts)
        return parts

    def _log_window(self, iteration: int) -> dict[str, str]:
        """A metrics row of the mean loss parts since the last row; the progress-bar postfix."""
        window = self.window
        mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
        sec = (time.perf_counter() - self.t_window) / len(window)
        if self.ctx.is_main:
            self.log.append({"kind": "train", "iteration": iteration, "loss": mean.pop("total"), **mean,
                             "seconds_per_iteration": sec, "lr": self.optimizer.param_groups[0]["lr"]})
        postfix = {"loss": f"{np.mean([w['total'] for w in window]):.3f}", "s_it": f"{sec:.2f}"}
        self.window, self.t_window = [], time.perf_counter()
        return postfix

    def _after_step(self, iteration: int) -> None:
        options, is_last = self.options, iteration == self.options.iterations
        val_due = bool(options.val_every and iteration % options.val_every == 0)
        ckpt_due = is_last or bool(options.ckpt_every and iteration % options.ckpt_every == 0)
        if self.validator is not None and self.validator.enabled and (is_last or val_due):
            self.validate(iteration)
        if ckpt_due and self.ctx.is_main:
            self.checkpoint(iteration)
        if self.ctx.distributed and (ckpt_due or val_due):
            barrier(self.ctx)

    def validate(self, iteration: int) -> dict[str, float]:
        """Score the validation cases, log them, keep the best bundle, redraw the curve (rank 0)."""
        assert self.validator is not None
        self.last_val = result = self.validator(self.model)
        self.log.append({"kind": "val", "iteration": iteration, **result})
        if result["val_dsc"] > self.best["val_dsc"]:
            self.best = {"val_dsc": result["val_dsc"], "iteration": iteration}
            self.write_bundle(self.folder.best, iteration, {**result, "iteration": iteration})
        plot_curve(self.log.read(), self.folder.curve, self.title)
        self.t_window = time.perf_counter()  # validation time is not training time
        return result

    def checkpoint(self, iteration: int) -> None:
        """Save everything an exact resume needs (rank 0)."""
        tensors = pack_model(self.model)
        optim_tensors, optim_meta = pack_optimizer(self.optimizer)
        rng_tensors, rng_meta = capture_rng()
        tensors.update(optim_tensors)
        tensors.update(rng_tensors)
        meta = {"optimizer": optim_meta, "rng": rng_meta, "sampler": self.loader.state_dict(), "best": self.best,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "elapsed_seconds": time.perf_counter() - self.t_start, "network": self.config.to_dict(),
                "world_size": self.ctx.world_size, "last_validation": self.last_val}
        save_checkpoint(self.folder.path, iteration, tensors, meta, keep=self.options.keep_checkpoints)

    # ------------------------------------------------------------------ the end
    def _bundle_training(self, iteration: int) -> dict:
        options, ds, split = self.options, self.dataset, self.split
        optimizer = f"Adam lr {options.lr:g}"
        if options.lr_schedule != "constant":
            optimizer += f", {options.lr_schedule} schedule"
        if options.grad_clip:
            optimizer += f", gradient norm clipped at {options.grad_clip:g}"
        # the folder name, not the path: the bundle is shipped and must not carry this machine's paths
        return {"dataset": Path(options.dataset).resolve().name, "dataset_name": ds.meta.get("name", ""),
                "dataset_description": ds.meta.get("description", ""), "fold": options.fold,
                "train_cases": split["train"], "val_cases": split["val"], "test_cases": split["test"],
                "iterations": iteration, "batch_size_per_process": options.batch_size,
                "world_size": self.ctx.world_size, "optimizer": optimizer, "seed": options.seed,
                "sampler": self.sampler_options.to_dict(), "amp": str(self.amp_dtype), "device": self.ctx.device.type,
                "init_weights": self.init_weights,
                **({"datasets": self._splits_record()["datasets"]} if len(self.sources) > 1 else {})}

    def write_bundle(self, folder: Path, iteration: int, metrics: dict | None) -> Path:
        """A model bundle of the current weights in ``folder``."""
        options, config = self.options, self.config
        data_name = self.dataset.meta.get("name") or Path(options.dataset).name
        description = options.description or (
            f"SneakyNet {config.describe()} ({config.preset}) trained on {data_name}, fold {options.fold}, "
            f"{iteration} iterations")
        return save_bundle(self.model, folder, spacing=options.spacing,
                           intensity=intensity_spec(CTNormalization.from_dict(options.normalization)),
                           description=description, training=self._bundle_training(iteration), demo=options.demo,
                           metrics=metrics)

    def finish(self) -> Path:
        """Agree on the weights across ranks; rank 0 writes the final bundle, curve and summary."""
        ctx, options = self.ctx, self.options
        broadcast_buffers(ctx, self.model)  # the final forward pass updated each rank's BatchNorm statistics
        digests = gather_digests(ctx, self.model)
        if ctx.is_main:
            if len(set(digests)) != 1:
                raise RuntimeError(f"weights differ between ranks after training: {digests}")
            final_metrics = {**self.last_val, "iteration": options.iterations} if self.last_val else None
            final = self.write_bundle(self.folder.bundle, options.iterations, final_metrics)
            rows = self.log.read()
            plot_curve(rows, self.folder.curve, self.title)
            write_json(self.folder.summary, self._summary(rows, digests, final))
        barrier(ctx)
        return self.folder.path

    def _summary(self, rows: list[dict], digests: list[str], final: Path) -> dict:
        train_rows = [r for r in rows if r.get("kind") == "train"]
        seconds = [r["seconds_per_iteration"] for r in train_rows]
        return {
            "iterations": self.options.iterations, "network": self.config.to_dict(),
            "parameters": count_parameters(self.model),
            "final_loss": train_rows[-1]["loss"] if train_rows else None,
            "best": self.best if self.best["iteration"] else None, "last_validation": self.last_val,
            "seconds_total": time.perf_counter() - self.t_start,
            "seconds_per_iteration_median": float(np.median(seconds)) if seconds else None,
            "world_size": self.ctx.world_size, "device": str(self.ctx.device), "amp": str(self.amp_dtype),
            "weights_sha256_per_rank": digests, "bundle": str(final),
            "best_bundle": str(self.folder.best) if self.folder.best.is_dir() else None,
        }


__all__ = ["Trainer", "amp_settings", "determinism", "train_step", "warm_start"]
