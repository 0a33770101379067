#!/usr/bin/env python
"""Benchmark: the module's 3D surfaces against Slicer's default closed-surface conversion.

Both run under slicer-core on the same segmentation node contents: the phantom's 125 bones at the
demo model's 4 mm, resampled (nearest neighbour) to a finer CT grid the way a prediction is
mapped back to the user's CT. Prints wall time of each, the ratio, and how many bones keep at
least half their voxel volume as a closed surface (thin bones that vanish from the 3D view
do not).

    .venv/bin/python Testing/bench_slicer_surfaces.py [--seed 0] [--spacing 1.0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SlicerSneakyNet"))
MODEL_SPACING = 4.0


def label_map(seed: int, spacing: float) -> sitk.Image:
    """Phantom truth at the model spacing, resampled to ``spacing`` mm (nearest neighbour)."""
    from sneakynet.phantom import PhantomOptions, generate_case

    _, coarse = generate_case(seed, PhantomOptions(spacing=(MODEL_SPACING,) * 3))
    factor = MODEL_SPACING / spacing
    grid = sitk.Image([round(n * factor) for n in coarse.GetSize()], sitk.sitkUInt8)
    grid.SetSpacing((spacing,) * 3)
    grid.SetDirection(coarse.GetDirection())
    grid.SetOrigin(coarse.TransformContinuousIndexToPhysicalPoint([0.5 / factor - 0.5] * 3))
    return sitk.Resample(coarse, grid, sitk.Transform(), sitk.sitkNearestNeighbor)


def kept_bones(node, labels: sitk.Image) -> tuple[int, int]:
    """(bones whose closed surface encloses >= half their voxel volume, bones)."""
    import vtk

    from SneakyNetLib import segments

    array = sitk.GetArrayViewFromImage(labels)
    counts = np.bincount(array.ravel(), minlength=256)
    voxel = float(np.prod(labels.GetSpacing()))
    segmentation = node.GetSegmentation()
    kept = 0
    for index in range(segmentation.GetNumberOfSegments()):
        labelId = segments.segmentLabelId(segmentation.GetNthSegment(index))
        mass = vtk.vtkMassProperties()
        mass.SetInputData(node.GetClosedSurfaceInternalRepresentation(segmentation.GetNthSegmentID(index)))
        mass.Update()
        kept += mass.GetVolume() >= 0.5 * counts[labelId] * voxel
    return kept, segmentation.GetNumberOfSegments()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", type=float, default=1.0, help="CT grid the labels are shown on (mm)")
    args = parser.parse_args()
    if args.spacing <= 0:
        parser.error("--spacing must be positive")

    import slicer
    import vtk

    from SneakyNetLib import segments

    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)  # vtkMassProperties warns on empty surfaces
    labels = label_map(args.seed, args.spacing)
    print(f"phantom {args.seed}: {MODEL_SPACING:g} mm labels on a {args.spacing:g} mm grid, "
          f"{np.prod(labels.GetSize()) / 1e6:.1f} M voxels {labels.GetSize()}")
    seconds = {}
    for name in ("slicer default", "sneakynet"):
        node = slicer.vtkMRMLSegmentationNode()
        segments.fillSegmentationNode(node, labels)
        start = time.perf_counter()
        if name == "sneakynet":
            segments.showIn3D(node, labels)
        else:
            node.CreateClosedSurfaceRepresentation()
        seconds[name] = time.perf_counter() - start
        kept, total = kept_bones(node, labels)
        print(f"{name:15s} {seconds[name]:6.1f} s   bones keeping >= half their volume: {kept}/{total}")
    print(f"speed-up: {seconds['slicer default'] / seconds['sneakynet']:.1f}x")


if __name__ == "__main__":
    main()
