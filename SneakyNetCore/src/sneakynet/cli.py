"""The ``sneakynet`` command line: one sub-command per pipeline step.

Each sub-command lives in ``sneakynet.commands.<module>`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``--help`` is fast.

Exit codes: 0 success, 1 runtime failure, 2 bad input or usage, 130 cancelled (Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
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
    ("build-demo", "build_demo", "rebuild the bundled phantom-trained demo model (about 70 min on 2 CPU cores)"),
    ("demo", "demo", "phantom CT -> demo model -> labels, meshes, preview and DSC (phantom-trained, not clinical)"),
    ("segment", "segment", "segment the bones of a CT (file, DICOM folder or folder of cases)"),
    ("evaluate", "evaluate", "score predicted label maps against references (DSC, HD95, confusion)"),
    ("export-meshes", "export_meshes", "per-bone meshes for VR/AR/Slicer: GLB, glTF, OBJ+MTL, STL, PLY"),
    ("render", "render", "class-coloured PNG preview of a label map (anterior + lateral, optional skin)"),
]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


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
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"sneakynet {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sneakynet {command}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
