"""``sneakynet segment``: CT in, 125-bone label map out (one file, a DICOM folder, or a folder of cases).

INPUT   a NIfTI/NRRD/MHA file, a DICOM series folder, or a folder of CT files (folder mode)
OUTPUT  a label map (.nii.gz/.nii/.nrrd/.mha) or a Slicer segmentation (.seg.nrrd) with names and
        colours; in folder mode a folder, one ``<case>.nii.gz`` (or --format) per input case.
Exit codes: 0 success, 1 runtime failure, 2 bad input, 130 cancelled (Ctrl-C).
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sneakynet.devices import DEVICE_HELP, parse_device

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".seg.nrrd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="CT file, DICOM series folder, or folder of CT files")
    parser.add_argument("output", type=Path, help="label map file (.nii.gz/.nrrd/.mha/.seg.nrrd) or output folder")
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder (default: the bundled "
                        "phantom-trained demo model, not for clinical use)")
    parser.add_argument("--device", default="auto", type=parse_device, metavar="DEVICE", help=DEVICE_HELP)
    parser.add_argument("--overlap", type=float, default=0.5, help="tile overlap in [0, 1) (default 0.5)")
    parser.add_argument("--fast", action="store_true", help="quick preview: no tile overlap (about 8x fewer tiles)")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="network compute precision (default auto: float16 on CUDA, bfloat16 on CPUs with "
                        "AMX, else float32)")
    parser.add_argument("--series", default=None, help="DICOM series UID when the folder holds several")
    parser.add_argument("--format", default=".nii.gz", choices=OUTPUT_SUFFIXES, help="output type in folder mode")
    parser.add_argument("--overwrite", action="store_true", help="folder mode: redo cases whose output exists")


def _is_dicom_folder(folder: Path) -> bool:
    import SimpleITK as sitk

    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _case_name(path: Path) -> str:
    from sneakynet.io import image_suffix

    name = path.name[: -len(image_suffix(path))] if image_suffix(path) else path.name
    return name[:-5] if name.endswith("_0000") else name


def write_labels(labels, output: Path) -> None:
    """Write a label map or a ``.seg.nrrd`` (by suffix), atomically."""
    from sneakynet.io import image_suffix, write_image
    from sneakynet.segfile import write_seg_nrrd

    if image_suffix(output) == ".seg.nrrd":
        write_seg_nrrd(labels, output)
    else:
        write_image(labels, output)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sneakynet.bundle import BundleError
    from sneakynet.console import UserError, progress_bar
    from sneakynet.geometry import InputImageError
    from sneakynet.infer import Predictor
    from sneakynet.io import IMAGE_SUFFIXES, ImageReadError, image_suffix, read_image

    if not args.input.exists():
        raise UserError(f"{args.input}: input does not exist")
    folder_mode = args.input.is_dir() and not _is_dicom_folder(args.input)
    if folder_mode:
        cases = sorted(p for p in args.input.iterdir() if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)
        if not cases:
            raise UserError(f"{args.input}: holds neither a DICOM series nor CT files ({', '.join(IMAGE_SUFFIXES)})")
        if args.output.exists() and not args.output.is_dir():
            raise UserError(f"{args.output}: must be a folder when the input is a folder of cases")
        jobs = [(c, args.output / f"{_case_name(c)}{args.format}") for c in cases]
        todo = [(c, o) for c, o in jobs if args.overwrite or not o.exists()]
        if len(todo) < len(jobs):
            print(f"skipping {len(jobs) - len(todo)} finished case(s) (use --overwrite to redo them)")
    else:
        if image_suffix(args.output) not in OUTPUT_SUFFIXES:
            raise UserError(f"{args.output}: output must end in one of {', '.join(OUTPUT_SUFFIXES)}")
        todo = [(args.input, args.output)]
    try:
        predictor = Predictor(args.model, device=args.device, overlap=args.overlap, fast=args.fast,
                              batch_size=args.batch_size, precision=args.precision, log=lambda m: tqdm.write(m))
    except (BundleError, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None

    def load(path: Path):
        return read_image(path, args.series)

    with ThreadPoolExecutor(max_workers=1) as pool:  # reads the next case while this one runs
        pending = pool.submit(load, todo[0][0]) if todo else None
        for i, (case, output) in enumerate(todo):
            try:
                image = pending.result()
            except ImageReadError as exc:
                raise UserError(str(exc)) from None
            pending = pool.submit(load, todo[i + 1][0]) if i + 1 < len(todo) else None
            try:
                with progress_bar(case.name) as progress:
                    prediction = predictor.segment(image, progress=progress)
            except InputImageError as exc:
                raise UserError(f"{case}: {exc}".replace(f"{case}: input image: ", f"{case}: ")) from None
            write_labels(prediction.labels, output)
            stats = prediction.stats
            print(f"{case} -> {output}  ({stats.tiles} tiles on {stats.device} in {stats.precision}, "
                  f"{stats.seconds:.1f} s)")
    return 0
