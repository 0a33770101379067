"""``sneakynet segment``: CT in, 125-bone label map out (one file, a DICOM folder, or a folder of cases).

INPUT   a NIfTI/NRRD/MHA file, a DICOM series folder, or a folder of CT files (folder mode)
OUTPUT  a label map (.nii.gz/.nii/.nrrd/.mha) or a Slicer segmentation (.seg.nrrd) with names and
        colours; in folder mode a folder, one ``<case>.nii.gz`` (or --format) per input case.
Exit codes: 0 success, 1 runtime failure, 2 bad input, 3 environment failure (disk full, permission
denied, ...), 130 cancelled (Ctrl-C). Folder mode goes on after a failed case, lists the failures at
the end and exits with the code of the worst one.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from sneakynet.commands.argtypes import float_in, int_in

from sneakynet.devices import DEVICE_HELP, parse_device

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".seg.nrrd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="CT file, DICOM series folder, or folder of CT files")
    parser.add_argument("output", type=Path, help="label map file (.nii.gz/.nrrd/.mha/.seg.nrrd) or output folder")
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder (default: the bundled "
                        "phantom-trained demo model, not for clinical use)")
    parser.add_argument("--device", default="auto", type=parse_device, metavar="DEVICE", help=DEVICE_HELP)
    parser.add_argument("--overlap", type=float_in(0.0, 1.0, hi_open=True), default=0.5,
                        help="tile overlap in [0, 1) (default 0.5)")
    parser.add_argument("--fast", action="store_true", help="quick preview: no tile overlap (about 8x fewer tiles)")
    parser.add_argument("--mirror", action="store_true",
                        help="test-time mirroring: also predict each tile left-right mirrored and average (2x time)")
    parser.add_argument("--batch-size", type=int_in(1, 1024), default=None, help="tiles per forward pass (1..1024)")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="network compute precision (default auto: float16 on CUDA, bfloat16 on CPUs with "
                        "AMX, else float32)")
    parser.add_argument("--series", default=None, help="DICOM series UID when the folder holds several")
    parser.add_argument("--format", default=".nii.gz", choices=OUTPUT_SUFFIXES, help="output type in folder mode")
    parser.add_argument("--overwrite", action="store_true", help="folder mode: redo cases whose output exists")
    parser.add_argument("--force", action="store_true", help="segment even an image that does not look like CT "
                        "in Hounsfield units (MR, values without rescale, 8-bit, a label map); labels are then "
                        "meaningless")
    add_postprocess_arguments(parser)
    parser.add_argument("--dicom-seg", type=Path, default=None, metavar="PATH",
                        help="DICOM input only: also write a DICOM Segmentation (.dcm) referencing the source series")


def add_postprocess_arguments(parser: argparse.ArgumentParser) -> None:
    """``--postprocess [PRESET]`` (default anatomy; bare: full) and ``--no-postprocess`` (= none)."""
    from sneakynet.postprocess import DEFAULT_PRESET, PRESETS

    parser.add_argument("--postprocess", nargs="?", choices=list(PRESETS), const="full", default=DEFAULT_PRESET,
                        metavar="PRESET", help="clean the labels with the CT (sneakynet.postprocess): none; anatomy "
                        "(default): sided bones onto their side of the body midline, vertebrae in order from head "
                        "to feet; full (also a bare --postprocess, given after the positional arguments): anatomy "
                        "plus merging stray pieces of a bone into the bone they touch, filling marrow cavities and "
                        "dropping labelled air")
    parser.add_argument("--no-postprocess", dest="postprocess", action="store_const", const="none",
                        help="the network's labels as they are (same as --postprocess none)")


def _is_dicom_folder(folder: Path) -> bool:
    import SimpleITK as sitk

    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _case_name(path: Path) -> str:
    from sneakynet.io import image_suffix

    name = path.name[: -len(image_suffix(path))] if image_suffix(path) else path.name
    return name[:-5] if name.endswith("_0000") else name


def write_labels(labels, output: Path) -> None:
    """Write a label map or a ``.seg.nrrd`` (by suffix), atomically and verified by reading it back."""
    from sneakynet.io import image_suffix, write_image
    from sneakynet.segfile import write_seg_nrrd

    if image_suffix(output) == ".seg.nrrd":
        write_seg_nrrd(labels, output)
    else:
        write_image(labels, output)


def _write_dicom_seg(args: argparse.Namespace, labels, predictor) -> None:
    """The ``--dicom-seg`` output: the label map as a DICOM Segmentation of the input series."""
    from sneakynet.console import UserError
    from sneakynet.dicomseg import DicomSegError, dicom_series_files, write_dicom_seg

    name = predictor.info.description if predictor.info is not None else "SneakyNet"
    try:
        result = write_dicom_seg(labels, dicom_series_files(args.input, args.series), args.dicom_seg, model_name=name)
    except DicomSegError as exc:
        raise UserError(f"{args.dicom_seg}: {exc}") from None
    print(f"{args.input} -> {args.dicom_seg}  (DICOM SEG, {len(result.label_ids)} segments, {result.frames} frames)")


def _jobs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) pairs still to do; refuses an output that would overwrite an input."""
    from sneakynet.console import UserError
    from sneakynet.io import CT_SUFFIXES, image_suffix, is_ct_file, same_file

    if not args.input.exists():
        raise UserError(f"{args.input}: input does not exist")
    if args.input.is_dir() and not _is_dicom_folder(args.input):
        cases = sorted(p for p in args.input.iterdir() if p.is_file() and is_ct_file(p))
        if not cases:
            raise UserError(f"{args.input}: holds neither a DICOM series nor CT files ({', '.join(CT_SUFFIXES)})")
        if args.output.exists() and not args.output.is_dir():
            raise UserError(f"{args.output}: must be a folder when the input is a folder of cases")
        jobs = [(c, args.output / f"{_case_name(c)}{args.format}") for c in cases]
        todo = [(c, o) for c, o in jobs if args.overwrite or not o.exists()]
        if len(todo) < len(jobs):
            print(f"skipping {len(jobs) - len(todo)} finished case(s) (use --overwrite to redo them)")
    else:
        if image_suffix(args.output) not in OUTPUT_SUFFIXES:
            raise UserError(f"{args.output}: output must end in one of {', '.join(OUTPUT_SUFFIXES)}")
        if args.output.is_dir():
            raise UserError(f"{args.output}: is an existing folder; give a label map file name")
        todo = [(args.input, args.output)]
    if args.dicom_seg is not None and not (args.input.is_dir() and len(todo) == 1 and todo[0][0] == args.input):
        raise UserError(f"{args.input}: --dicom-seg needs a DICOM series folder as input")
    for case, output in todo:
        if output.exists() and same_file(case, output):
            raise UserError(f"{output}: is the input CT itself; choose another output so the CT is not overwritten")
    return todo


def _segment_one(predictor, image, case: Path, output: Path, force: bool):
    """Check, predict and write one case and return its label image; bad input raises UserError naming
    the case."""
    import SimpleITK as sitk

    from sneakynet.console import UserError, progress_bar
    from sneakynet.geometry import InputImageError, check_ct_image
    from sneakynet.intensity import NotCTError, check_hounsfield

    try:
        check_ct_image(image, str(case))  # shape and finiteness first, then the intensities
        warning = check_hounsfield(sitk.GetArrayViewFromImage(image), str(case), force=force)
    except InputImageError as exc:
        raise UserError(str(exc)) from None
    except NotCTError as exc:
        raise UserError(f"{exc} (--force)") from None
    if warning:
        print(f"warning: {case}: {warning}; segmenting anyway (--force)")
    try:
        with progress_bar(case.name) as progress:
            prediction = predictor.segment(image, progress=progress)
    except InputImageError as exc:
        raise UserError(f"{case}: {exc}".replace(f"{case}: input image: ", f"{case}: ")) from None
    labels, stats = prediction.labels, prediction.stats
    write_labels(labels, output)
    print(f"{case} -> {output}  ({stats.tiles} tiles on {stats.device} in {stats.precision}, {stats.seconds:.1f} s)")
    return labels


def _failure(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) of a failed case."""
    from sneakynet.cli import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, describe_os_error
    from sneakynet.console import UserError
    from sneakynet.io import ImageReadError

    if isinstance(exc, (UserError, ImageReadError, ValueError)):
        return EXIT_BAD_INPUT, str(exc)
    if isinstance(exc, OSError):
        return EXIT_ENVIRONMENT, describe_os_error(exc)
    return EXIT_ENVIRONMENT, "out of memory"


def run(args: argparse.Namespace) -> int:
    from sneakynet.distributed import launched_by_torchrun

    if launched_by_torchrun():  # several ranks: the cases are shared out (sneakynet.batch_infer)
        from sneakynet.batch_infer import run_sharded

        return run_sharded(args)
    return _run_local(args)


def _load_predictor(args: argparse.Namespace, device: str | None = None,
                    log: Callable[[str], None] | None = None):
    """The Predictor the options ask for (``device`` overrides ``--device``); a bad bundle is a UserError."""
    from tqdm import tqdm

    from sneakynet.bundle import BundleError
    from sneakynet.console import UserError
    from sneakynet.infer import Predictor
    from sneakynet.postprocess import preset_options

    try:
        return Predictor(args.model, device=device or args.device, overlap=args.overlap, fast=args.fast,
                         batch_size=args.batch_size, precision=args.precision, log=log or (lambda m: tqdm.write(m)),
                         postprocess=preset_options(args.postprocess), mirror=args.mirror)
    except (BundleError, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _run_local(args: argparse.Namespace) -> int:
    """Every case in this process."""
    from sneakynet.console import UserError
    from sneakynet.io import ImageReadError, read_image

    todo = _jobs(args)
    predictor = _load_predictor(args)
    if len(todo) == 1:  # one case: its error is the command's error
        case, output = todo[0]
        try:
            image = read_image(case, args.series)
        except ImageReadError as exc:
            raise UserError(str(exc)) from None
        labels = _segment_one(predictor, image, case, output, args.force)
        if args.dicom_seg is not None:
            _write_dicom_seg(args, labels, predictor)
        return 0
    return _report_failures(_segment_cases(predictor, todo, args), len(todo))


def _segment_cases(predictor, todo: list[tuple[Path, Path]], args: argparse.Namespace) -> list[tuple[Path, int, str]]:
    """Segment ``todo`` in order, reading the next case while the current one runs; a failed case is
    reported and recorded as (case, exit code, message), and the others go on."""
    from tqdm import tqdm

    from sneakynet.console import UserError
    from sneakynet.io import read_image

    failures: list[tuple[Path, int, str]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:  # reads the next case while this one runs
        pending = pool.submit(read_image, todo[0][0], args.series) if todo else None
        for i, (case, output) in enumerate(todo):
            current = pending
            pending = pool.submit(read_image, todo[i + 1][0], args.series) if i + 1 < len(todo) else None
            try:
                _segment_one(predictor, current.result(), case, output, args.force)
            except (UserError, ValueError, OSError, MemoryError) as exc:
                code, message = _failure(exc)
                failures.append((case, code, message))
                tqdm.write(f"sneakynet segment: {case}: failed, going on with the other cases: {message}")
    return failures


def _report_failures(failures: list[tuple[Path, int, str]], total: int) -> int:
    """Print the failed cases (if any) and return the exit code of the worst one (0 if none)."""
    import sys

    if not failures:
        return 0
    print(f"sneakynet segment: {len(failures)} of {total} case(s) failed:", file=sys.stderr)
    for case, _code, message in failures:
        print(f"  {case}: {message}", file=sys.stderr)
    return max(code for _case, code, _message in failures)
