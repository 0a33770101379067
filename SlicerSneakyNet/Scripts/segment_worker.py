#!/usr/bin/env python
"""The SneakyNet module's worker process: one CT file in, one label map file out.

Started by ``SneakyNetLib.worker.WorkerProcessJob`` with Slicer's ``PythonSlicer`` (or plain
Python under slicer-core), never loaded by Slicer as a module (it lives in ``Scripts/``)::

    PythonSlicer segment_worker.py --model BUNDLE --device cpu [--fast] [--overlap 0.5] [--postprocess anatomy]
        --input ct.nrrd --output labels.nrrd --parent-pid PID

It reports on stdout, one line per event (``@sneakynet {json}``: progress, done, or error with
the module's error class name); its log goes to stderr. It exits when the process ``PID``
(Slicer) is gone, so nothing keeps computing after a Slicer crash.

Exit codes: 0 done, 1 failed, 2 bad input or model, 3 the parent process is gone.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from pathlib import Path

# SneakyNetLib sits next to this script's folder, in the source tree and in an installed extension
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ORPHANED = 0, 1, 2, 3
WATCH_INTERVAL_S = 0.5


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment_worker.py", description="SneakyNet worker: segment one CT file.")
    parser.add_argument("--input", required=True, type=Path, help="CT image file")
    parser.add_argument("--output", required=True, type=Path, help="label map file to write (.nrrd)")
    parser.add_argument("--model", default=None, help="model bundle folder (default: the bundled demo model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--postprocess", choices=["none", "anatomy", "full"], default="anatomy",
                        help="clean-up preset of sneakynet.postprocess (default anatomy)")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    return parser


def report(**fields) -> None:
    """One protocol line on stdout, flushed at once (the parent reads line by line)."""
    from SneakyNetLib.worker import encodeMessage

    print(encodeMessage(**fields), flush=True)


def watchParent(pid: int) -> None:
    """Daemon thread: end this process at once when the parent (Slicer) has died."""
    from sneakynet.io import pid_alive

    def watch() -> None:
        while pid_alive(pid):
            time.sleep(WATCH_INTERVAL_S)
        print(f"segment_worker.py: parent process {pid} is gone; stopping", file=sys.stderr, flush=True)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent watchdog", daemon=True).start()


def segment(args: argparse.Namespace) -> str:
    """Predict and write the label map; returns the device used."""
    from sneakynet.infer import Predictor
    from sneakynet.io import read_image, write_image
    from sneakynet.postprocess import preset_options

    report(progress=0.0, message="loading the model")
    predictor = Predictor(args.model, device=args.device, overlap=args.overlap, fast=args.fast,
                          log=lambda text: print(text, file=sys.stderr, flush=True),
                          postprocess=preset_options(args.postprocess))
    image = read_image(args.input)
    labels = predictor.predict_image(image, progress=lambda fraction, message: report(progress=fraction,
                                                                                       message=message))
    write_image(labels, args.output, compress=False)
    return str(predictor.device)


def main(argv: list[str] | None = None) -> int:
    args = buildParser().parse_args(argv)
    if args.parent_pid is not None:  # first, before the slow imports
        watchParent(args.parent_pid)
    from SneakyNetLib.errors import InputVolumeError, ModelError, SneakyNetError
    from SneakyNetLib.job import translateError

    try:
        if not args.input.is_file():
            raise InputVolumeError(f"{args.input}: the CT file to segment does not exist")
        device = segment(args)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one message for the module
        error = translateError(exc)
        if not isinstance(exc, SneakyNetError) and "Segmentation failed" in str(error):
            traceback.print_exc(file=sys.stderr)
        report(error=str(error), kind=type(error).__name__)
        return EXIT_BAD_INPUT if isinstance(error, (InputVolumeError, ModelError)) else EXIT_FAILED
    report(done=True, device=device)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
