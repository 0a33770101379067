"""Training of the A/B/C/D networks (paper §2.2): Adam, CE + Dice, target + context losses.

One entry point, :func:`train`, used by ``sneakynet train``, by scripts, and by every rank under
``torchrun --nproc_per_node N`` (DistributedDataParallel; NCCL on GPUs, gloo on CPUs); the run
itself is a :class:`sneakynet.trainer.Trainer`, its folder a :class:`sneakynet.run_folder.RunFolder`.

Data: cases are read from an nnU-Net-style dataset folder, reoriented to LPS and resampled to the
model spacing exactly as the predictor does (:mod:`sneakynet.training_cases`; labels
nearest-neighbour on the same grid), normalised (:mod:`sneakynet.intensity`) and sampled by
:class:`sneakynet.sampler.PatchDataset` (from the predictor's context pyramid,
:mod:`sneakynet.pyramid`), whose sample ``j`` of rank ``r`` is a pure function of
``(seed, r, j)``. Each rank therefore draws its own patches, and a resumed run continues the
stream at the next sample.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sneakynet.distributed import init_distributed, shutdown_distributed
from sneakynet.run_folder import RunFolder
from sneakynet.train_options import DEFAULT_SPACING, TrainError, TrainOptions
from sneakynet.trainer import Trainer, amp_settings, determinism, train_step
from sneakynet.training_cases import case_on_model_grid, load_cases, load_fold

if TYPE_CHECKING:
    from sneakynet.evaluate import EvaluationResult


def train(options: TrainOptions, on_step: Callable[[int, dict], None] | None = None) -> Path:
    """Train one network as ``options`` say and return the run folder.

    Works alone and on every rank under ``torchrun`` (only rank 0 writes). ``on_step(iteration,
    loss_parts)`` is called after every optimizer step (progress for GUIs and tests). Thread count,
    deterministic algorithms and global RNG states are as before when it returns.
    """
    try:
        ctx = init_distributed(options.device)
    except ValueError as exc:
        raise TrainError(f"--device: {exc}") from None
    try:
        with determinism(options, ctx.device, ctx.is_main):
            trainer = Trainer(options, ctx, on_step)
            trainer.setup()
            trainer.run()
            return trainer.finish()
    finally:
        shutdown_distributed()


def train_and_test(options: TrainOptions, test_eval: bool = True,
                   on_step: Callable[[int, dict], None] | None = None) -> tuple[Path, "EvaluationResult | None"]:
    """:func:`train`, then on rank 0 (when ``test_eval`` and the fold has test cases) segment the fold's
    test cases with the final bundle and score them (:func:`sneakynet.fold_eval.evaluate_fold`)."""
    run = train(options, on_step)
    folder = RunFolder(run)
    if not test_eval or int(os.environ.get("RANK", "0")) != 0 or not folder.read_json(folder.splits, OSError).get("test"):
        return run, None
    from sneakynet.fold_eval import evaluate_fold

    return run, evaluate_fold(run, device=options.device, progress=options.progress)


__all__ = ["DEFAULT_SPACING", "TrainError", "TrainOptions", "amp_settings", "case_on_model_grid", "load_cases",
           "load_fold", "train", "train_and_test", "train_step"]
