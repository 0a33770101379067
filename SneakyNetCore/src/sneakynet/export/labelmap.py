"""Loading and checking a bone label map before any mesh work (no VTK here).

A label map is a 3D scalar integer image with values 0 (background) .. 125 (bones of the
SneakyNet label table). Anything else (a CT in HU, a probability map, an empty mask) is
rejected with a :class:`LabelMapError` that names the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sneakynet.dataset import LabelMapError, label_value_counts
from sneakynet.io import read_image
from sneakynet.labels import NUM_BONES


@dataclass(frozen=True)
class LabelMap:
    """A checked label map: the image, a uint8 (z, y, x) array view of it and what it holds."""

    image: sitk.Image
    array: np.ndarray  # uint8, numpy (z, y, x) order = SimpleITK (i, j, k) reversed
    present: tuple[int, ...]  # label ids with at least one voxel, ascending
    voxel_counts: dict[int, int]
    source: str  # file name, or "<in-memory label map>"


def describe_source(labels: sitk.Image | str | os.PathLike) -> str:
    """How error messages name the input."""
    return "<in-memory label map>" if isinstance(labels, sitk.Image) else str(Path(labels))


def load_label_map(labels: sitk.Image | str | os.PathLike) -> LabelMap:
    """Read (if a path) and check a label map; raise :class:`LabelMapError` if it is not one."""
    source = describe_source(labels)
    if isinstance(labels, sitk.Image):
        image = labels
    else:
        try:
            image = read_image(labels)
        except ValueError as exc:  # ImageReadError already names the file
            raise LabelMapError(str(exc)) from None
    return check_label_map(image, source)


def check_label_map(image: sitk.Image, source: str) -> LabelMap:
    """Check dimension, pixel type and values of ``image``; ``source`` names it in errors."""
    if image.GetDimension() != 3:
        raise LabelMapError(f"{source}: is a {image.GetDimension()}D image; a 3D label map is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LabelMapError(
            f"{source}: has {image.GetNumberOfComponentsPerPixel()} components per voxel "
            f"({image.GetPixelIDTypeAsString()}); a label map has one integer label per voxel"
        )
    arr = sitk.GetArrayViewFromImage(image)
    if arr.size == 0:
        raise LabelMapError(f"{source}: the image has no voxels (size {image.GetSize()})")
    counts = label_value_counts(arr, source, max_label=NUM_BONES)  # integers in 0..125, else LabelMapError
    counts = np.pad(counts, (0, NUM_BONES + 1 - counts.size))
    labels8 = arr.astype(np.uint8, copy=False)
    present = tuple(int(i) for i in np.nonzero(counts[1:])[0] + 1)
    if not present:
        raise LabelMapError(f"{source}: contains no bone labels (every voxel is 0)")
    return LabelMap(image, labels8, present, {i: int(counts[i]) for i in present}, source)
