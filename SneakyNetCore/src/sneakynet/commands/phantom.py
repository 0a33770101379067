"""``sneakynet phantom``: write a folder of synthetic CT phantoms (nnU-Net raw layout).

Version 2 (the default) looks like real CT: fields of view, arm poses, marrow-filled bones,
table, reconstruction circle. Version 1 is the phantom the bundled demo model was trained on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.commands.argtypes import float_in, int_in
from sneakynet.console import UserError

FOV_CHOICES = ("any", "chest", "abdomen_pelvis", "neck_chest", "whole", "random")
ARM_CHOICES = ("any", "sides", "raised", "one_up", "crossed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet phantom``."""
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="dataset folder: imagesTr/, labelsTr/ and dataset.json are written here")
    parser.add_argument("--n", type=int_in(1, 100000), default=1, metavar="N", help="number of cases (default: %(default)s)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, metavar="S",
                        help="seed of the first case; case i uses S + i (default: %(default)s)")
    parser.add_argument("--version", type=int, choices=(1, 2), default=2,
                        help="2: CT-like phantom v2 (default); 1: the phantom the demo model was trained on")
    parser.add_argument("--size", choices=("default", "small"), default="default",
                        help="default: v1 random 1.5-3 mm, v2 the scan's own spacing (0.6-1 mm in-plane, 1-5 mm "
                             "slices, capped at 12 million voxels); small: 4 mm isotropic for fast CPU training")
    parser.add_argument("--spacing", type=float_in(0.25, 12.0), nargs="+", metavar="MM",
                        help="voxel size in mm, one value (isotropic) or three (x y z); overrides --size")
    parser.add_argument("--noise", type=float_in(0.0, 1000.0), default=None, metavar="HU",
                        help="standard deviation of the noise (default: v1 20 HU, v2 drawn per case)")
    parser.add_argument("--fov", choices=FOV_CHOICES, default="any",
                        help="v2 field of view (default: drawn per case)")
    parser.add_argument("--arms", choices=ARM_CHOICES, default="any", help="v2 arm pose (default: drawn per case)")
    parser.add_argument("--fov-scale", type=float_in(0.1, 10.0), default=1.0, metavar="F",
                        help="v1 only: scale of the field of view; below 1 bones at the border are cut (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--layout", choices=("nnunet", "totalseg"), default="nnunet",
                        help="nnunet: imagesTr/labelsTr/dataset.json (default); totalseg: the TotalSegmentator "
                             "dataset's layout (<case>/ct.nii.gz, segmentations/<class>.nii.gz with its classes only: "
                             "no hand bones, sternum and skull merged; meta.csv with a train/val/test split)")


def _options(args: argparse.Namespace):
    """PhantomOptions (v1) or PhantomV2Options (v2) from the command line; ValueError if invalid."""
    from sneakynet.phantom import options_for_size
    from sneakynet.phantom.v2 import PhantomV2Options

    spacing = None
    if args.spacing is not None:
        if len(args.spacing) not in (1, 3):
            raise UserError(f"--spacing takes one value or three (x y z), got {len(args.spacing)}")
        spacing = tuple(args.spacing * 3 if len(args.spacing) == 1 else args.spacing)
    if args.version == 1:
        if args.fov != "any" or args.arms != "any":
            raise UserError("--fov and --arms need --version 2 (phantom v1 has one field of view and pose)")
        overrides: dict = {"noise_hu": 20.0 if args.noise is None else args.noise, "fov_scale": args.fov_scale}
        if spacing is not None:
            overrides["spacing"] = spacing
        return options_for_size(args.size, **overrides)
    if args.fov_scale != 1.0:
        raise UserError("--fov-scale is for --version 1; phantom v2 chooses fields of view with --fov")
    if spacing is None and args.size == "small":
        spacing = (4.0, 4.0, 4.0)
    return PhantomV2Options(spacing=spacing, fov=args.fov, arms=args.arms, noise_hu=args.noise)


def run(args: argparse.Namespace) -> int:
    """Generate the cases; bad options raise UserError."""
    from sneakynet.phantom import write_cases

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    try:
        options = _options(args)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.layout == "totalseg":
        return _run_totalseg(args, options)
    try:
        paths = write_cases(args.out, args.n, args.seed, options, progress=not args.quiet, version=args.version)
    except OSError as exc:
        raise UserError(f"{args.out}: cannot write the dataset ({exc.strerror or exc})") from None
    print(f"wrote {len(paths)} phantom v{args.version} case(s) (seeds {args.seed}..{args.seed + args.n - 1}) and "
          f"dataset.json to {args.out}")
    return 0


def _run_totalseg(args: argparse.Namespace, options) -> int:
    """Phantoms in the TotalSegmentator layout: generated as a dataset in a temporary folder, then
    rewritten (:func:`sneakynet.totalseg_layout.write_totalseg_layout`); meta.csv gets fold 0 of
    :func:`sneakynet.dataset.make_splits` (all train below 3 cases)."""
    import tempfile

    from sneakynet.dataset import make_splits
    from sneakynet.phantom import write_cases
    from sneakynet.totalseg_layout import write_totalseg_layout

    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".phantom-", dir=args.out.parent) as tmp:
            write_cases(tmp, args.n, args.seed, options, progress=not args.quiet, version=args.version)
            from sneakynet.dataset import load_dataset

            cases = load_dataset(tmp).cases
            fold = make_splits(cases)[0] if len(cases) >= 3 else {"train": cases}
            splits = {c: part for part, ids in fold.items() for c in ids}
            write_totalseg_layout(tmp, args.out, splits)
    except OSError as exc:
        raise UserError(f"{args.out}: cannot write the dataset ({exc.strerror or exc})") from None
    print(f"wrote {args.n} phantom v{args.version} case(s) in the TotalSegmentator layout (ct.nii.gz, "
          f"segmentations/, meta.csv) to {args.out}")
    return 0
