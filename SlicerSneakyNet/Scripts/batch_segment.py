#!/usr/bin/env python
"""Segment the bones of every CT in a folder, headless, with the SneakyNet module's logic.

Runs inside Slicer or in plain Python with the slicer-core package::

    Slicer --no-main-window --python-script Scripts/batch_segment.py --input CTs/ --output out/ [--export-meshes]
    python Scripts/batch_segment.py --input CTs/ --output out/ --model my_bundle/ --device cpu

It lives in the module's ``Scripts/`` folder (a resource, as SlicerMONAIAuto3DSeg keeps its
inference script), so Slicer does not try to load it as a module at start-up.

For each case (a CT file .nrrd/.nii/.nii.gz/.mha/.mhd, or a sub-folder holding one DICOM series)
it writes ``<output>/<case>.seg.nrrd`` (one named, coloured segment per bone, SNOMED terminology)
and with ``--export-meshes`` ``<output>/<case>_meshes/`` (GLB by default). Finished cases are
skipped, so an interrupted run continues where it stopped; outputs are written under temporary
names and renamed when complete. A bad case is reported and the others still run.

Exit codes: 0 all cases done or skipped, 1 some case failed, 2 bad arguments / missing model or
packages, 130 interrupted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# Slicer's --python-script may run this without __file__; its sys.argv[0] is the script then.
# The module folder (SneakyNetLib) is the parent of Scripts/, in the source tree and installed.
MODULE_DIR = Path(globals().get("__file__") or sys.argv[0]).resolve().parent.parent
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch_segment.py",
        description="Segment the bones of every CT in a folder with SneakyNet (writes <case>.seg.nrrd).")
    parser.add_argument("--input", required=True, type=Path, help="folder of CT files or DICOM series folders")
    parser.add_argument("--output", required=True, type=Path, help="folder for <case>.seg.nrrd (and meshes)")
    parser.add_argument("--model", default=None,
                        help="model bundle folder (default: the bundled phantom-trained demo model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "gpu"],
                        help="auto: CUDA if PyTorch sees a GPU, else CPU (default)")
    parser.add_argument("--fast", action="store_true", help="no tile overlap: faster, slightly rougher")
    parser.add_argument("--export-meshes", action="store_true", help="also write <case>_meshes/ per case")
    parser.add_argument("--mesh-format", default="glb", choices=["glb", "gltf", "obj", "stl", "ply"],
                        help="mesh format with --export-meshes (default glb)")
    parser.add_argument("--decimate", type=float, default=0.0, help="fraction of mesh triangles to remove (0..0.95)")
    parser.add_argument("--no-smooth", action="store_true", help="keep the voxel staircase in meshes")
    parser.add_argument("--screenshot", action="store_true", help="also write <case>_3d.png (offscreen 3D view)")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs exist")
    return parser


def findCases(folder: Path, outputFolder: Path) -> list[Path]:
    """CT files (by suffix) and sub-folders (DICOM series) of ``folder``, sorted by name."""
    from SneakyNetLib.casenames import volumeSuffix

    cases = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.resolve() != outputFolder.resolve():
                cases.append(entry)
        elif volumeSuffix(entry):
            cases.append(entry)
    return cases


def getScene():
    """Slicer's scene inside the application; a fresh scene under slicer-core."""
    import slicer

    scene = getattr(slicer, "mrmlScene", None)
    return scene if scene is not None else slicer.vtkMRMLScene()


class SceneCleaner:
    """Removes the nodes a case added, so long runs keep memory flat and the user's scene intact."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}

    def __enter__(self) -> "SceneCleaner":
        return self

    def __exit__(self, *exc) -> None:
        added = [self.scene.GetNthNode(i) for i in range(self.scene.GetNumberOfNodes())]
        for node in added:
            if node is not None and node.GetID() not in self.before:
                self.scene.RemoveNode(node)


def progressBar(case: str):
    """A tqdm bar in percent, and the ``progress(fraction, message)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=case, unit="%", leave=False, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")

    def progress(fraction: float, message: str) -> None:
        target = int(round(100 * fraction))
        if target > bar.n:
            bar.update(target - bar.n)
        bar.set_postfix_str(message, refresh=False)

    return bar, progress


def processCase(logic, path: Path, args, options) -> str:
    """Segment one case; returns 'done' or 'skipped'. Raises SneakyNetError for user problems."""
    from SneakyNetLib.casenames import caseName

    name = caseName(path)
    segPath = args.output / f"{name}.seg.nrrd"
    meshDir = args.output / f"{name}_meshes"
    pngPath = args.output / f"{name}_3d.png"
    needSeg = args.overwrite or not segPath.is_file()
    needMeshes = args.export_meshes and (args.overwrite or not meshDir.is_dir())
    needPng = args.screenshot and (args.overwrite or not pngPath.is_file())
    if not (needSeg or needMeshes or needPng):
        return "skipped"
    with SceneCleaner(logic.scene):
        volume = logic.loadVolume(path, name)
        if needSeg:
            bar, progress = progressBar(name)
            try:
                result = logic.segment(volume, options, progress=progress)
            finally:
                bar.close()
            segmentation = result.segmentationNode
            logic.saveSegmentation(segmentation, segPath)
            summary = f"{len(result.labelIds)} bones in {result.seconds:.1f} s on {result.device}"
        else:  # the segmentation exists; only meshes or the picture are missing
            segmentation = logic.loadSegmentation(segPath)
            summary = "existing segmentation"
        if needMeshes:
            if meshDir.exists():
                shutil.rmtree(meshDir)
            files = logic.exportMeshes(segmentation, meshDir, fmt=args.mesh_format, smooth=not args.no_smooth,
                                       decimate=args.decimate, referenceVolumeNode=volume)
            summary += f", {len(files)} mesh file(s)"
        if needPng:
            logic.renderSegmentation3D(segmentation, pngPath, caption=f"{name} - SneakyNet")
    print(f"{name}: {summary}", flush=True)
    return "done"


def main(argv: list[str] | None = None) -> int:
    args = buildParser().parse_args(argv)
    # cheap checks first: they need neither PyTorch nor the Slicer libraries
    if not args.input.is_dir():
        print(f"batch_segment.py: error: {args.input}: input folder does not exist", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output.exists() and not args.output.is_dir():
        print(f"batch_segment.py: error: {args.output}: exists and is not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    cases = findCases(args.input, args.output)
    if not cases:
        print(f"batch_segment.py: error: {args.input}: no CT files (.nrrd, .nii, .nii.gz, .mha, .mhd) "
              "or DICOM folders found", file=sys.stderr)
        return EXIT_BAD_INPUT
    from SneakyNetLib.dependencies import missingDependencies

    missing = missingDependencies()
    if missing:
        print("batch_segment.py: error: missing Python packages: " + ", ".join(missing)
              + " (install them from the SneakyNet module in Slicer, or with pip)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from SneakyNetLib.errors import SneakyNetError
    from SneakyNetLib.logic import BoneSegmentationLogic, SegmentationOptions

    logic = BoneSegmentationLogic(getScene())
    options = SegmentationOptions(bundle=args.model, device=args.device, fast=args.fast)
    try:
        logic.normalizeDevice(args.device)
        info = logic.modelInfo(args.model)
    except SneakyNetError as exc:
        print(f"batch_segment.py: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if info.demo:
        print(f"batch_segment.py: note: {info.disclaimer}", file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)

    counts = {"done": 0, "skipped": 0, "failed": 0}
    start = time.monotonic()
    for path in cases:
        try:
            counts[processCase(logic, path, args, options)] += 1
        except SneakyNetError as exc:
            counts["failed"] += 1
            print(f"{path.name}: error: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print(f"batch_segment.py: interrupted during {path.name}; finished cases are kept", file=sys.stderr)
            return EXIT_INTERRUPTED
    print(f"batch_segment.py: {counts['done']} segmented, {counts['skipped']} skipped (already done), "
          f"{counts['failed']} failed, {time.monotonic() - start:.1f} s", flush=True)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _exit(code: int) -> None:
    """Leave Slicer through its own exit (it would keep running otherwise), plain Python via sys.exit."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        slicer.util.exit(code)
    else:
        sys.exit(code)


if __name__ == "__main__":
    try:
        status = main()
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        status = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    _exit(status)
