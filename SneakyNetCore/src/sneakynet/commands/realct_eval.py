"""``sneakynet realct-eval``: score a label map on a real CT against a partial reference.

For references such as TotalSegmentator's that label only some bones, some of them coarser
than ours: per-bone and group DSC, vertebra level, sides, and reference-free checks
(see ``docs/realct.md``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.console import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet realct-eval``."""
    parser.add_argument("ct", type=Path, help="the CT (NIfTI/NRRD/MHA file or DICOM series folder)")
    parser.add_argument("prediction", type=Path, help="predicted SneakyNet label map")
    parser.add_argument("reference", type=Path, help="reference label map (any grid: resampled physically)")
    parser.add_argument("--reference-format", default="totalseg", choices=["totalseg", "sneakynet"],
                        help="totalseg: TotalSegmentator 'total' values, mapped with totalseg_mapping.json "
                             "(default); sneakynet: our label ids")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="BONE",
                        help="SneakyNet bone names not to score (e.g. femur_left vertebra_T11)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write every measure as JSON")


def run(args: argparse.Namespace) -> int:
    """Score, print the table and the per-bone lines; bad input raises UserError."""
    from sneakynet.io import json_safe, write_json
    from sneakynet.realct import RealCTInputError, evaluate_case, format_bones, format_table

    try:
        score = evaluate_case(args.ct, args.prediction, args.reference, args.reference_format, args.exclude)
    except RealCTInputError as exc:
        raise UserError(str(exc)) from None
    print(format_table([(args.prediction.name, score)]))
    print(format_bones(score))
    if args.json is not None:
        write_json(json_safe(score.to_dict()), args.json)
        print(f"wrote {args.json}")
    return 0
