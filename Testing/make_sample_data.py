#!/usr/bin/env python
"""Make the phantom CT that the module registers with Slicer's Sample Data module.

    .venv/bin/python Testing/make_sample_data.py

Writes ``SlicerSneakyNet/Resources/SampleData/SneakyNetPhantomCT.nrrd`` (a synthetic upper-body
CT from ``sneakynet phantom``'s generator, all 125 bones, 4 mm voxels, the demo model's spacing)
and a 128-pixel coronal maximum-intensity thumbnail next to it, then prints the file's sha256 for
``SneakyNetLib/sampledata.py``. Deterministic: the same seed gives the same voxels.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SlicerSneakyNet"))
SEED = 2026  # not among the demo model's training phantoms (seeds 0-13)
SPACING = (4.0, 4.0, 4.0)
THUMBNAIL_PX = 128


def sample_ct():
    """(CT, labels) SimpleITK images of the sample phantom."""
    from sneakynet.phantom import PhantomOptions, generate_case

    return generate_case(SEED, PhantomOptions(spacing=SPACING))


def thumbnail(ct) -> np.ndarray:
    """Coronal maximum intensity projection, bone window, head up, fitted into 128 x 128 (uint8)."""
    import SimpleITK as sitk
    from scipy.ndimage import zoom

    array = sitk.GetArrayFromImage(ct).astype(np.float32)  # (z, y, x), LPS: z up, y posterior
    mip = array.max(axis=1)[::-1]  # (z, x) with the head on top
    scaled = np.clip((mip + 200.0) / 1400.0, 0.0, 1.0)
    factor = THUMBNAIL_PX / max(scaled.shape)
    small = np.clip(zoom(scaled, factor, order=1), 0.0, 1.0)
    canvas = np.zeros((THUMBNAIL_PX, THUMBNAIL_PX), np.float32)
    top, left = (THUMBNAIL_PX - small.shape[0]) // 2, (THUMBNAIL_PX - small.shape[1]) // 2
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    return (canvas * 255).round().astype(np.uint8)


def write_png(gray: np.ndarray, path: Path) -> None:
    """8-bit greyscale PNG, written atomically."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    from sneakynet.io import atomic_path

    image = vtk.vtkImageData()
    image.SetDimensions(gray.shape[1], gray.shape[0], 1)
    image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(gray[::-1]).ravel(), deep=True))
    with atomic_path(path) as tmp:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(tmp))
        writer.SetInputData(image)
        writer.Write()


def main() -> int:
    from sneakynet.io import write_image
    from SneakyNetLib import sampledata

    ct, _labels = sample_ct()
    write_image(ct, sampledata.SAMPLE_FILE, compress=True)
    write_png(thumbnail(ct), sampledata.THUMBNAIL_FILE)
    digest = hashlib.sha256(sampledata.SAMPLE_FILE.read_bytes()).hexdigest()
    size_kb = sampledata.SAMPLE_FILE.stat().st_size / 1024
    print(f"{sampledata.SAMPLE_FILE.relative_to(REPO)}: {ct.GetSize()} voxels, {size_kb:.0f} KB, sha256 {digest}")
    print(f"{sampledata.THUMBNAIL_FILE.relative_to(REPO)}: {THUMBNAIL_PX} px thumbnail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
