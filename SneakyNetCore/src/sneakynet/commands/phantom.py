"""``sneakynet phantom``: write a folder of synthetic upper-body CT phantoms (nnU-Net raw layout)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.console import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet phantom``."""
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="dataset folder: imagesTr/, labelsTr/ and dataset.json are written here")
    parser.add_argument("--n", type=int, default=1, metavar="N", help="number of cases (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the first case; case i uses S + i (default: %(default)s)")
    parser.add_argument("--size", choices=("default", "small"), default="default",
                        help="default: random 1.5-3 mm spacing per case (~210x155x330 voxels at 2 mm); "
                             "small: 4 mm isotropic (~105x78x165) for fast CPU training and tests")
    parser.add_argument("--spacing", type=float, nargs="+", metavar="MM",
                        help="voxel size in mm, one value (isotropic) or three (x y z); overrides --size")
    parser.add_argument("--noise", type=float, default=20.0, metavar="HU",
                        help="standard deviation of the Gaussian noise (default: %(default)s HU)")
    parser.add_argument("--fov-scale", type=float, default=1.0, metavar="F",
                        help="scale of the field of view; below 1 bones at the border are cut (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Generate the cases; bad options raise UserError."""
    from sneakynet.phantom import options_for_size, write_cases

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    overrides: dict = {"noise_hu": args.noise, "fov_scale": args.fov_scale}
    if args.spacing is not None:
        if len(args.spacing) not in (1, 3):
            raise UserError(f"--spacing takes one value or three (x y z), got {len(args.spacing)}")
        overrides["spacing"] = tuple(args.spacing * 3 if len(args.spacing) == 1 else args.spacing)
    try:
        options = options_for_size(args.size, **overrides)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        paths = write_cases(args.out, args.n, args.seed, options, progress=not args.quiet)
    except OSError as exc:
        raise UserError(f"{args.out}: cannot write the dataset ({exc.strerror or exc})") from None
    print(f"wrote {len(paths)} phantom case(s) (seeds {args.seed}..{args.seed + args.n - 1}) and dataset.json to "
          f"{args.out}")
    return 0
