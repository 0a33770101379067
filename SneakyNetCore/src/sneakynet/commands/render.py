"""``sneakynet render``: class-coloured offscreen PNG of a label map (anterior + lateral views)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.commands.argtypes import int_in
from sneakynet.console import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet render``."""
    parser.add_argument("labels", type=Path, metavar="LABELS", help="bone label map (values 0..125)")
    parser.add_argument("out", type=Path, metavar="OUT_PNG", help="PNG file to write")
    parser.add_argument("--ct", type=Path, default=None,
                        help="CT of the same patient: adds a translucent skin surface (-300 HU)")
    parser.add_argument("--views", nargs="+", default=["anterior", "lateral"],
                        choices=["anterior", "posterior", "lateral", "left", "right", "superior"],
                        help="views side by side (default: anterior lateral)")
    parser.add_argument("--size", nargs=2, type=int_in(16, 8192), default=[1200, 700], metavar=("W", "H"),
                        help="image size in pixels (default: 1200 700)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Render and write the PNG; bad input raises UserError (exit code 2)."""
    from sneakynet.console import progress_bar

    from sneakynet.export import render_labels

    if args.out.suffix.lower() != ".png":
        raise UserError(f"{args.out}: the output must be a .png file")
    try:
        with progress_bar("render", disable=args.quiet) as progress:
            path = render_labels(args.labels, args.out, ct=args.ct, views=tuple(args.views),
                                 size=tuple(args.size), progress=progress)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {path}")
    return 0
