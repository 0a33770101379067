"""``sneakynet import-dataset``: nnU-Net raw or TotalSegmentator-style data -> a SneakyNet dataset."""
from __future__ import annotations

import argparse

from sneakynet.commands.argtypes import int_in


def _folds(text: str) -> int:
    """0 (no splits.json) or a fold count >= 2."""
    value = int_in(0, 1000)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (no splits) or at least 2 folds, got 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="source dataset folder")
    parser.add_argument("dst", metavar="DST", help="new SneakyNet dataset folder (written atomically)")
    parser.add_argument("--format", required=True, choices=("nnunet", "totalseg"),
                        help="nnunet: nnU-Net raw dataset (dataset.json, imagesTr, labelsTr); totalseg: folder per "
                             "case with ct.nii.gz and segmentations/*.nii.gz or a segmentations.nii.gz multilabel map")
    parser.add_argument("--mapping", metavar="JSON",
                        help="extra label-name mapping {source name: SneakyNet bone name or 'background'}; "
                             "overrides the built-in TotalSegmentator mapping for the names it lists")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists and is not empty")
    parser.add_argument("--splits", type=_folds, metavar="K", default=5,
                        help="also write splits.json with K folds (0: none; default 5, needs >= 3 cases); a TotalSegmentator "
                             "meta.csv beside the case folders gives its own train/val/test split instead")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="seed of the splits (default 0)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sneakynet.console import UserError
    from sneakynet.dataset import DatasetError, write_splits
    from sneakynet.importers import IMPORTERS, read_user_mapping

    try:
        user_mapping = read_user_mapping(args.mapping) if args.mapping else None
        bars: list[tqdm] = []  # created on the first finished case, so input errors print cleanly

        def progress(done: int, total: int, case: str) -> None:
            if not bars:
                bars.append(tqdm(total=total, unit="case", desc="import"))
            bars[0].set_postfix_str(case)
            bars[0].update(1)

        try:
            report = IMPORTERS[args.format](args.src, args.dst, user_mapping=user_mapping,
                                            overwrite=args.overwrite, progress=progress)
        finally:
            for bar in bars:
                bar.close()
        print(report.summary())
        if report.split is not None:
            print(f"wrote {args.dst}/splits.json from the source's meta.csv (one fold: its train/val/test split)"
                  if report.split["train"] else "no splits.json: meta.csv puts no imported case in train")
        elif args.splits:
            if len(report.cases) >= 3:
                path = write_splits(args.dst, n_folds=args.splits, seed=args.seed)
                print(f"wrote {path}")
            else:
                print(f"no splits.json: {len(report.cases)} case(s), cross-validation needs at least 3")
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    return 0
