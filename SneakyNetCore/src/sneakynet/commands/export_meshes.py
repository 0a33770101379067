"""``sneakynet export-meshes``: one mesh per bone of a label map, for VR/AR, 3D printing or Slicer."""
from __future__ import annotations

import argparse
from pathlib import Path

from sneakynet.commands.argtypes import float_in, int_in
from sneakynet.console import UserError

FORMAT_CHOICES = ("glb", "gltf", "obj", "stl", "ply")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet export-meshes``."""
    parser.add_argument("labels", type=Path, metavar="LABELS",
                        help="bone label map (NIfTI/NRRD/MHA, values 0..125)")
    parser.add_argument("outdir", type=Path, metavar="OUTDIR",
                        help="output folder (created only when the export succeeds)")
    parser.add_argument("--format", dest="fmt", choices=FORMAT_CHOICES, default="glb",
                        help="glb/gltf: one scene, node per bone (metres, +Y up); obj: bones.obj+.mtl; "
                             "stl/ply: one file per bone (RAS mm) (default: %(default)s)")
    parser.add_argument("--smooth", type=int_in(0, 1000), default=20, metavar="N",
                        help="windowed-sinc smoothing iterations, 0 = none (default: %(default)s)")
    parser.add_argument("--decimate", type=float_in(0.0, 1.0, hi_open=True), default=0.0, metavar="F",
                        help="fraction of triangles to remove, e.g. 0.5 (default: %(default)s)")
    parser.add_argument("--triangles", type=int_in(100), default=None, metavar="N",
                        help="approximate total triangle budget over all bones (e.g. 300000 for a headset)")
    parser.add_argument("--merged", action="store_true", help="STL only: write all bones into one bones.stl")
    parser.add_argument("--method", choices=("surface_nets", "flying_edges"), default="surface_nets",
                        help="multi-label contouring algorithm (default: %(default)s)")
    parser.add_argument("--skin", type=Path, default=None, metavar="CT",
                        help="glb/gltf: add the CT's skin (-300 HU) as a translucent surface; the viewer page "
                             "gets a transparency control")
    parser.add_argument("--no-viewer", action="store_true",
                        help="glb: do not write bones.html (the offline web/AR viewer page) beside bones.glb")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Export and list the written files; bad input raises UserError (exit code 2)."""
    from sneakynet.console import progress_bar

    from sneakynet.export import export_meshes

    if args.merged and args.fmt != "stl":
        raise UserError("--merged applies to --format stl only")
    try:
        with progress_bar("export-meshes", disable=args.quiet) as progress:
            paths = export_meshes(args.labels, args.outdir, fmt=args.fmt, smooth=args.smooth,
                                  decimate=args.decimate, triangle_budget=args.triangles, merged_stl=args.merged,
                                  progress=progress, method=args.method, skin=args.skin,
                                  viewer_page=not args.no_viewer)
    except ValueError as exc:  # LabelMapError, ImageReadError and bad options
        raise UserError(str(exc)) from None
    print(f"wrote {len(paths)} file(s) to {args.outdir}")
    if any(p.suffix == ".html" for p in paths):
        print(f"  open {args.outdir / 'bones.html'} in a browser, or: sneakynet view {args.outdir} [--lan]")
    if len(paths) <= 4:
        for p in paths:
            print(f"  {p.name}")
    return 0
