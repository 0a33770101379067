"""``sneakynet evaluate``: score predicted label maps against references (DSC, HD95, confusion)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.console import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet evaluate``."""
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR",
                        help="folder of predicted label maps <case>.nii.gz (or .nrrd/.mha)")
    parser.add_argument("--ref", required=True, type=Path, metavar="DIR",
                        help="folder of reference label maps <case>.nii.gz, or an nnU-Net dataset "
                             "folder with labelsTr/labelsTs")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder for per_case.csv, summary.json, confusion CSV/PNG, box plot")
    parser.add_argument("--hd95", action="store_true",
                        help="also compute the symmetric 95 %% Hausdorff distance per class (mm)")
    parser.add_argument("--name", default="prediction",
                        help="row name of the printed summary table (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the reports and print a short table; bad input raises UserError."""
    from sneakynet.evaluate import EvaluationInputError, evaluate_folders, format_report
    from sneakynet.io import ImageReadError, made_folders

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    try:
        with made_folders(args.out):  # a failure leaves no empty report folder behind
            result = evaluate_folders(args.pred, args.ref, args.out, hd95=args.hd95, progress=not args.quiet)
    except (EvaluationInputError, ImageReadError) as exc:
        raise UserError(str(exc)) from None
    print(format_report(result, args.name))
    print(f"wrote {len(result.files)} files to {args.out}")
    return 0
