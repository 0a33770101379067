"""``sneakynet split``: write the k-fold cross-validation splits.json of a dataset folder."""
from __future__ import annotations

import argparse

from sneakynet.commands.argtypes import int_in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="SneakyNet dataset folder (with dataset.json)")
    parser.add_argument("--folds", type=int_in(2, 1000), default=5, help="number of folds (default 5; at most the case count)")
    parser.add_argument("--val", type=int_in(0), default=None, metavar="N",
                        help="validation cases per fold (default: 1/8 of the cases, at least 1; 2 for 16 cases)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="shuffle seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from sneakynet.console import UserError
    from sneakynet.dataset import DatasetError, read_splits, write_splits

    try:
        path = write_splits(args.dataset, n_folds=args.folds, seed=args.seed, n_val=args.val)
        folds = read_splits(args.dataset)
    except (DatasetError, ValueError) as exc:
        raise UserError(str(exc)) from None
    for i, f in enumerate(folds):
        print(f"fold {i}: {len(f['train'])} train / {len(f['val'])} val / {len(f['test'])} test  "
              f"test = {', '.join(f['test'])}")
    print(f"wrote {path}")
    return 0
