"""``sneakynet train``: train network A/B/C/D on a dataset folder (also under ``torchrun``).

Examples::

    sneakynet train --dataset data/phantoms --fold 0 --variant D --context 1 --patch 32 --out runs/d32
    sneakynet train --dataset data/phantoms --out runs/d32 --resume          # continue after a crash
    torchrun --nproc_per_node 4 -m sneakynet.cli train --dataset ... --out runs/d64 --preset paper
"""
from __future__ import annotations

import argparse
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _spacing(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"spacing must be 1 or 3 numbers in mm (e.g. 2 or 1.5,1.5,2), got {text!r}")
    if len(values) == 1:
        values *= 3
    from sneakynet.bundle import MAX_SPACING_MM, MIN_SPACING_MM  # what a bundle may hold

    if len(values) != 3 or not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in values):
        raise argparse.ArgumentTypeError(f"spacing must be 1 or 3 numbers in {MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm, "
                                         f"got {text!r}")
    return tuple(values)  # type: ignore[return-value]


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be 5 comma-separated integers, got {text!r}")


@contextmanager
def _discard_if_new(run: Path) -> Iterator[None]:
    """Remove a run folder this call created if the run fails before its first checkpoint, so the
    same command can simply be run again (there is nothing to resume)."""
    from sneakynet.checkpoint import latest_checkpoint

    new = not run.exists()
    try:
        yield
    except BaseException:
        if new and run.is_dir() and latest_checkpoint(run) is None:
            shutil.rmtree(run, ignore_errors=True)
        raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sneakynet.train import DEFAULT_SPACING, TrainOptions

    d = TrainOptions(dataset="", out="")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, metavar="DIR",
                      help="nnU-Net-style dataset folder (dataset.json, imagesTr, labelsTr, splits.json)")
    data.add_argument("--fold", type=int, default=d.fold, help="cross-validation fold of splits.json (default 0)")
    data.add_argument("--spacing", type=_spacing, default=DEFAULT_SPACING, metavar="MM",
                      help="model spacing in mm, 1 or 3 values x,y,z; cases are resampled to it "
                           "(linear CT, nearest labels); default 2")
    data.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes per rank")
    data.add_argument("--class-balance", type=float, default=d.class_balance,
                      help="probability of a class-balanced patch centre (default 0.5)")
    data.add_argument("--no-augment", action="store_true", help="switch off mirroring and intensity augmentation")
    net = parser.add_argument_group("network")
    net.add_argument("--variant", choices=["A", "B", "C", "D"], default=d.variant,
                     help="A U-Net, B HookNet, C MRN, D SneakyNet (default D)")
    net.add_argument("--context", type=int, default=d.context, metavar="K",
                     help="context networks K (A: 0, B: 1, C/D: 1-3)")
    net.add_argument("--patch", type=int, default=d.patch, metavar="S", help="target patch size S (default 64)")
    net.add_argument("--preset", choices=["lite", "paper", "slim"], default=d.preset,
                     help="channel widths: lite (CPU-sized) or paper (Table 1 sizes); default lite")
    net.add_argument("--widths", type=_widths, default=None, metavar="W0,..,W4",
                     help="override the preset's five channel widths (small test networks)")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--iterations", type=int, default=d.iterations, help="optimizer steps (paper: 100000)")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help="patches per step and process")
    opt.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (paper: 1e-3)")
    opt.add_argument("--seed", type=int, default=d.seed)
    opt.add_argument("--deterministic", action="store_true",
                     help="deterministic algorithms (bit-exact resume on the same machine and thread count)")
    opt.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0 = torch default)")
    opt.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    opt.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default=d.amp,
                     help="mixed precision on CUDA (auto: bf16 where supported, else fp16); CPU runs fp32")
    opt.add_argument("--overfit-one-batch", action="store_true", help="train on one fixed batch (a sanity check)")
    run = parser.add_argument_group("run folder")
    run.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoints, metrics, bundles)")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    run.add_argument("--val-every", type=int, default=d.val_every, metavar="N",
                     help="validate every N iterations and at the end (0: only at the end)")
    run.add_argument("--val-mode", choices=["cases", "patches"], default=d.val_mode,
                     help="cases: sliding-window prediction of whole validation cases; patches: fixed sampled patches")
    run.add_argument("--val-patches", type=int, default=d.val_patches, help="patches for --val-mode patches")
    run.add_argument("--ckpt-every", type=int, default=d.ckpt_every, metavar="N",
                     help="checkpoint every N iterations and at the end (0: only at the end)")
    run.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, help="newest checkpoints kept")
    run.add_argument("--log-every", type=int, default=d.log_every, metavar="N", help="metrics.jsonl line every N steps")
    run.add_argument("--description", default="", help="description stored in the model bundles")
    run.add_argument("--demo", action="store_true",
                     help="mark the bundles as demo models (phantom data, not for clinical use)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-test-eval", action="store_true",
                     help="skip segmenting and scoring the fold's test cases at the end")


def run(args: argparse.Namespace) -> int:
    import json

    from sneakynet.bundle import BundleError
    from sneakynet.cli import UserError
    from sneakynet.io import made_folders
    from sneakynet.train import TrainError, TrainOptions, train

    try:
        options = TrainOptions(
            dataset=args.dataset, out=args.out, fold=args.fold, variant=args.variant, context=args.context,
            patch=args.patch, preset=args.preset, widths=args.widths, iterations=args.iterations,
            batch_size=args.batch_size, lr=args.lr, workers=args.workers, val_every=args.val_every,
            val_mode=args.val_mode, val_patches=args.val_patches, ckpt_every=args.ckpt_every,
            keep_checkpoints=args.keep_checkpoints, log_every=args.log_every, resume=args.resume, seed=args.seed,
            deterministic=args.deterministic, threads=args.threads, spacing=args.spacing, device=args.device,
            amp=args.amp, class_balance=args.class_balance, augment=not args.no_augment,
            overfit_one_batch=args.overfit_one_batch, description=args.description, demo=args.demo,
            progress=not args.no_progress,
        )
        options.net_config()
        with _discard_if_new(Path(args.out)), made_folders(args.out):  # a failed start leaves no run folder
            run_dir = train(options)
    except (TrainError, BundleError) as exc:
        raise UserError(str(exc)) from None
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"sneakynet train: done; model bundle {run_dir / 'bundle'}, metrics {run_dir / 'metrics.jsonl'}")
        if not args.no_test_eval and json.loads((run_dir / "splits.json").read_text()).get("test"):
            from sneakynet.evaluate import format_report
            from sneakynet.fold_eval import evaluate_fold

            result = evaluate_fold(run_dir, device=args.device, progress=not args.no_progress)
            print(f"test cases of fold {args.fold} (reports in {run_dir / 'test'}):")
            print(format_report(result, name=f"fold {args.fold}"))
    return 0
