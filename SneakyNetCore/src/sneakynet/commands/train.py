"""``sneakynet train``: train network A/B/C/D on a dataset folder (also under ``torchrun``).

Examples::

    sneakynet train --dataset data/phantoms --fold 0 --variant D --context 1 --patch 32 --out runs/d32
    sneakynet train --dataset data/phantoms --out runs/d32 --resume          # continue after a crash
    torchrun --nproc_per_node 4 -m sneakynet.cli train --dataset ... --out runs/d64 --preset paper

The flags are :class:`sneakynet.train_options.TrainOptions`' fields (one schema).
"""
from __future__ import annotations

import argparse
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sneakynet.train_options import add_train_arguments

    add_train_arguments(parser)
    parser.add_argument("--no-test-eval", action="store_true",
                        help="skip segmenting and scoring the fold's test cases at the end")


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


def run(args: argparse.Namespace) -> int:
    from sneakynet.bundle import BundleError
    from sneakynet.console import UserError
    from sneakynet.io import made_folders
    from sneakynet.run_folder import RunFolder
    from sneakynet.train import TrainError, train_and_test
    from sneakynet.train_options import options_from_args

    try:
        options = options_from_args(args)
        options.net_config()
        with _discard_if_new(Path(args.out)), made_folders(args.out):  # a failed start leaves no run folder
            run_dir, result = train_and_test(options, test_eval=not args.no_test_eval)
    except (TrainError, BundleError) as exc:
        raise UserError(str(exc)) from None
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        folder = RunFolder(run_dir)
        print(f"sneakynet train: done; model bundle {folder.bundle}, metrics {folder.metrics}")
        if result is not None:
            from sneakynet.evaluate import format_report

            print(f"test cases of fold {options.fold} (reports in {folder.test}):")
            print(format_report(result, name=f"fold {options.fold}"))
    return 0
