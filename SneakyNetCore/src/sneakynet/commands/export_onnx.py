"""``sneakynet export-onnx``: a model bundle as one ONNX graph (target and context nets), for other runtimes.

BUNDLE  model bundle folder, or "demo" for the bundled phantom-trained demo model (not for clinical use)
OUT     the .onnx file to write; inputs, outputs, spacing and normalisation are in its metadata_props
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help='model bundle folder, or "demo" for the bundled phantom-trained demo model')
    parser.add_argument("output", type=Path, help="ONNX file to write (.onnx)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")


def run(args: argparse.Namespace) -> int:
    from sneakynet.bundle import BundleError
    from sneakynet.console import UserError

    if args.output.suffix.lower() != ".onnx":
        raise UserError(f"{args.output}: output must end in .onnx")
    bundle = None if args.bundle == "demo" else Path(args.bundle)
    if bundle is not None and not bundle.is_dir():
        raise UserError(f"{bundle}: not a model bundle folder")
    try:
        from sneakynet.onnx_export import export_onnx
    except ImportError as exc:
        raise UserError(f"ONNX export needs the onnx extra: pip install 'sneakynet[onnx]' ({exc})") from None
    try:
        path = export_onnx(bundle, args.output, opset=args.opset)
    except (BundleError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"  inputs:  {meta['sneakynet.inputs']}")
    print(f"  outputs: {meta['sneakynet.outputs']}")
    if "sneakynet.disclaimer" in meta:
        print(f"  {meta['sneakynet.disclaimer']}")
    return 0
