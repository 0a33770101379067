"""The ``sneakynet`` command line: one sub-command per pipeline step.

Each sub-command lives in ``sneakynet.commands.<module>`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``--help`` is fast.

Exit codes: 0 success, 1 runtime failure (a bug or a failure we could not classify), 2 bad input
or usage, 3 environment failure (full disk, permission denied, read-only location, an output path
that is a folder, out of memory), 130 cancelled (Ctrl-C), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from sneakynet.console import UserError

# (command, module under sneakynet.commands, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("info", "info", "show the label table, presets and parameter counts"),
    ("phantom", "phantom", "write synthetic upper-body CT phantoms with all 125 bone labels"),
    ("import-dataset", "import_dataset", "import an nnU-Net raw or TotalSegmentator-style dataset"),
    ("split", "split", "write k-fold cross-validation splits.json for a dataset folder"),
    ("train", "train", "train network A/B/C/D on a dataset folder (resumable; torchrun for several GPUs)"),
    ("ablation", "ablation", "the paper's A/B/C/D ablation (Table 2) on phantoms: train, test, results document"),
    ("build-demo", "build_demo", "rebuild the bundled phantom-trained demo model (about 1.5 hours on 2 CPU cores)"),
    ("demo", "demo", "phantom CT -> demo model -> labels, meshes, preview and DSC (phantom-trained, not clinical)"),
    ("segment", "segment", "segment the bones of a CT (file, DICOM folder or folder of cases)"),
    ("evaluate", "evaluate", "score predicted label maps against references (DSC, HD95, confusion)"),
    ("realct-eval", "realct_eval", "score a label map on a real CT against a partial reference (TotalSegmentator)"),
    ("export-meshes", "export_meshes", "per-bone meshes for VR/AR/Slicer: GLB, glTF, OBJ+MTL, STL, PLY"),
    ("render", "render", "class-coloured PNG preview of a label map (anterior + lateral, optional skin)"),
    ("export-onnx", "export_onnx", "export a model bundle as one ONNX graph (target + context nets) for other runtimes"),
    ("view", "view", "show an export's bones in a browser, or on a phone/headset on the local network (AR)"),
]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_CANCELLED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and its sub-parsers by command; each sub-parser is filled by its command
    module on demand."""
    parser = argparse.ArgumentParser(
        prog="sneakynet",
        description="SneakyNet: distinct-bone segmentation of upper-body CT (125 bones) "
        "with multi-resolution 3D U-Nets.",
    )
    from sneakynet import __version__

    parser.add_argument("--version", action="version", version=f"sneakynet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {name: sub.add_parser(name, help=help_text, description=help_text)
                  for name, _module, help_text in COMMANDS}
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser, subparsers = build_parser()
    known = {name: module for name, module, _ in COMMANDS}
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in known:
        args = parser.parse_args(argv)  # prints help/version/usage errors
        parser.print_help()
        return EXIT_OK if not argv else EXIT_BAD_INPUT
    module = importlib.import_module(f"sneakynet.commands.{known[command]}")
    module.add_arguments(subparsers[command])
    args = parser.parse_args(argv)
    return _run_command(command, module, args)


class _Terminated(BaseException):
    """SIGTERM as an exception, so ``finally`` blocks remove temporary files before the exit."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def _run_command(command: str, module: object, args: argparse.Namespace) -> int:
    """Run a command and map its failures to one line on stderr and a documented exit code."""
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except UserError as exc:
        print(f"sneakynet {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # full disk, permission denied, read-only location, a folder in the way
        print(f"sneakynet {command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except MemoryError:
        print(f"sneakynet {command}: error: out of memory", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print(f"sneakynet {command}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except _Terminated:
        print(f"sneakynet {command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def describe_os_error(exc: OSError) -> str:
    """``<path>: <cause>`` for an ``OSError`` (both paths of a failed rename), else its text."""
    cause = exc.strerror or str(exc)
    if exc.errno in (28, 122):  # ENOSPC, EDQUOT
        cause += " (free some space and run again)"
    elif exc.errno in (27,):  # EFBIG
        cause += " (a file-size limit was hit)"
    paths = [p for p in (exc.filename, exc.filename2) if p]
    return f"{' -> '.join(str(p) for p in paths)}: {cause}" if paths else cause


if __name__ == "__main__":
    sys.exit(main())
