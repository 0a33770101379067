"""Checking CT inputs and moving them between the input grid and the model grid.

The model grid is the input's own orientation reduced to the nearest of ITK's LPS axis order
(``DICOMOrient``: only permutations and flips, so the network always sees the patient in the
orientation it was trained on), resampled to the bundle's spacing. Labels go back to the exact
input grid (size, spacing, origin, direction) by nearest-neighbour resampling in physical space.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


class InputImageError(ValueError):
    """The input is not a 3D CT volume; the message names the source and the problem."""


def check_ct_image(image: sitk.Image, source: str = "input image") -> None:
    """Raise :class:`InputImageError` unless ``image`` is a scalar 3D volume with real data."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError(f"{source}: has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                              "(an RGB or vector image); a CT volume has one")
    if image.GetDimension() != 3:
        raise InputImageError(f"{source}: is {image.GetDimension()}D; a CT volume is 3D (one series, one time point)")
    size = image.GetSize()
    if min(size) == 0:
        raise InputImageError(f"{source}: is empty (size {size})")
    if min(size) < 2:
        raise InputImageError(f"{source}: is a single slice (size {size}); a CT volume needs several slices")
    stats = sitk.StatisticsImageFilter()
    stats.Execute(sitk.Cast(image, sitk.sitkFloat32))
    if not np.isfinite(stats.GetSum()):
        arr = sitk.GetArrayViewFromImage(image)
        if not np.isfinite(arr).any():
            raise InputImageError(f"{source}: holds no finite values (all NaN or infinite)")
        raise InputImageError(f"{source}: holds NaN or infinite values")
    if stats.GetMaximum() == stats.GetMinimum():
        raise InputImageError(f"{source}: every voxel has the value {stats.GetMinimum():g}; no CT data")


def to_model_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """Reorient to the nearest LPS axis order and resample (linear) to ``spacing`` mm (x, y, z).

    The field of view is kept: the new size is ceil(extent / spacing).
    """
    oriented = sitk.DICOMOrient(image, "LPS")
    old_spacing = np.array(oriented.GetSpacing())
    new_spacing = np.array(spacing, dtype=float)
    if np.allclose(old_spacing, new_spacing, rtol=1e-6):
        return sitk.Cast(oriented, sitk.sitkFloat32)
    size = np.maximum(1, np.ceil(np.array(oriented.GetSize()) * old_spacing / new_spacing - 1e-6)).astype(int)
    # keep the physical position of the first voxel's corner: shift the origin by half a voxel change
    direction = np.array(oriented.GetDirection()).reshape(3, 3)
    origin = np.array(oriented.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return sitk.Resample(oriented, [int(s) for s in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         new_spacing.tolist(), oriented.GetDirection(), -1024.0, sitk.sitkFloat32)


def labels_to_input_grid(labels: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Nearest-neighbour resample of a label map onto ``reference``'s grid (uint8 output)."""
    out = sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    out.CopyInformation(reference)
    return out


@dataclass(frozen=True)
class ModelGrid:
    """Where a model-grid array lies in physical space, to carry labels back to the input grid."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "ModelGrid":
        """The grid of a model-grid image (from :func:`to_model_grid`)."""
        return cls(image.GetOrigin(), image.GetSpacing(), image.GetDirection())

    def labels_to_input_grid(self, labels: np.ndarray, reference: sitk.Image) -> sitk.Image:
        """A (z, y, x) label array on this grid, resampled (nearest) onto ``reference``'s grid."""
        image = sitk.GetImageFromArray(labels)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return labels_to_input_grid(image, reference)
