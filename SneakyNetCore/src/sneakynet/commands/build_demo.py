"""``sneakynet build-demo``: rebuild the bundled phantom-trained demo model (about 1.5 hours on 2 CPU cores).

Phantom v2 data, stage 1 (usual augmentation), stage 2 warm-started from stage 1 with domain
randomisation, evaluation on the fold's held-out phantoms, install (``sneakynet.demo_model``).
Each step is kept in ``--workdir`` and skipped or resumed when the command runs again.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.commands.argtypes import int_in
from sneakynet.demo_model import (DEMO_CASES, DEMO_CT_WINDOW, DEMO_DR_ITERATIONS, DEMO_ITERATIONS, DEMO_NORMALIZATION,
                                  DEMO_PHANTOM_SEED)
from sneakynet.train_options import parse_ct_window


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("demo_model_build"),
                        help="phantoms, run folders of both stages and metrics (resumable; default ./demo_model_build)")
    parser.add_argument("--iterations", type=int_in(1), default=DEMO_ITERATIONS,
                        help=f"stage 1 iterations (default {DEMO_ITERATIONS})")
    parser.add_argument("--dr-iterations", type=int_in(1), default=DEMO_DR_ITERATIONS,
                        help=f"stage 2 iterations, warm start with domain randomisation (default {DEMO_DR_ITERATIONS})")
    parser.add_argument("--cases", type=int_in(5, 10000), default=DEMO_CASES,
                        help=f"number of phantom v2 cases (5-fold split, fold 0; default {DEMO_CASES})")
    parser.add_argument("--phantom-seed", type=int_in(0, 2**31 - 1), default=DEMO_PHANTOM_SEED,
                        help=f"seed of the first phantom (default {DEMO_PHANTOM_SEED})")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="seed of the split and of both stages")
    parser.add_argument("--ct-window", type=parse_ct_window, default=DEMO_NORMALIZATION.to_dict(), metavar="LO,HI",
                        help="CT window of both stages in HU (default {:g},{:g}, the shipped model's)".format(*DEMO_CT_WINDOW))
    parser.add_argument("--threads", type=int_in(0, 1024), default=1, help="torch threads (one more core feeds patches)")
    parser.add_argument("--install", type=Path, default=None,
                        help="bundle destination (default: the package's resources/demo_model)")


def run(args: argparse.Namespace) -> int:
    from sneakynet.demo_model import build_demo_model
    from sneakynet.intensity import CTNormalization

    target = build_demo_model(args.workdir, iterations=args.iterations, dr_iterations=args.dr_iterations,
                              cases=args.cases, seed=args.seed, phantom_seed=args.phantom_seed, threads=args.threads,
                              install=args.install,
                              normalization=CTNormalization.from_dict(args.ct_window))
    print(f"demo model (phantom-trained, not for clinical use) written to {target}")
    return 0

