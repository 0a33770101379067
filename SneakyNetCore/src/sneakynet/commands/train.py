"""``sneakynet train``: train network A/B/C/D on a dataset folder (also under ``torchrun``).

Examples::

    sneakynet train --dataset data/phantoms --fold 0 --variant D --context 1 --patch 32 --out runs/d32
    sneakynet train --dataset data/phantoms --out runs/d32 --resume          # continue after a crash
    torchrun --nproc_per_node 4 -m sneakynet.cli train --dataset ... --out runs/d64 --preset paper

The flags are :class:`sneakynet.train_options.TrainOptions`' fields (one schema).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sneakynet.train_options import add_train_arguments

    add_train_arguments(parser)
    parser.add_argument("--no-test-eval", action="store_true",
                        help="skip segmenting and scoring the fold's test cases at the end")


def run(args: argparse.Namespace) -> int:
    from sneakynet.bundle import BundleError
    from sneakynet.console import UserError
    from sneakynet.run_folder import RunFolder
    from sneakynet.train import TrainError, train_and_test
    from sneakynet.train_options import options_from_args

    try:
        options = options_from_args(args)
        options.net_config()
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
