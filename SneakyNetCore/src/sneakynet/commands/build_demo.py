"""``sneakynet build-demo``: rebuild the bundled phantom-trained demo model (about 70 min on 2 CPU cores)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.commands.argtypes import int_in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("demo_model_build"),
                        help="phantoms, run folder and metrics (resumable; default ./demo_model_build)")
    parser.add_argument("--iterations", type=int_in(1), default=4000)
    parser.add_argument("--cases", type=int_in(5, 10000), default=14, help="number of phantom cases (5-fold split, fold 0)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0)
    parser.add_argument("--threads", type=int_in(0, 1024), default=1, help="torch threads (one more core feeds patches)")
    parser.add_argument("--install", type=Path, default=None,
                        help="bundle destination (default: the package's resources/demo_model)")


def run(args: argparse.Namespace) -> int:
    from sneakynet.demo_model import build_demo_model

    target = build_demo_model(args.workdir, iterations=args.iterations, cases=args.cases, seed=args.seed,
                              threads=args.threads, install=args.install)
    print(f"demo model (phantom-trained, not for clinical use) written to {target}")
    return 0
