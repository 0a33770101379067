"""Reading a real CT's reference and prediction onto the CT's own grid.

References come as TotalSegmentator ``total`` label maps (mapped to the SneakyNet table through
``resources/totalseg_mapping.json``) or as SneakyNet label maps. Both the reference and the
prediction are resampled onto the CT grid in physical (LPS) space by nearest neighbour, so a
reference stored with flipped rows or another orientation (``example_seg_dicom.nii.gz`` is LAS
while its DICOM slab is LPS) lands on the right voxels.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import SimpleITK as sitk

from sneakynet.importers import BACKGROUND, load_totalseg_mapping
from sneakynet.io import ImageReadError, read_volume
from sneakynet.labels import NUM_CLASSES, load_label_table

REFERENCE_FORMATS = ("totalseg", "sneakynet")

# A TotalSegmentator class that covers several SneakyNet bones: the prediction's finer labels are
# merged into the label the mapping produces before scoring (skull = cranium + mandible,
# sternum = manubrium + body). Checked against the mapping in :func:`coarse_merges`.
TOTALSEG_COARSE = {"sternum_manubrium": "sternum_body", "mandible": "cranium"}


class RealCTInputError(ValueError):
    """A CT, prediction, reference or case description cannot be scored; the message names the file."""


def read_ct(path: str | os.PathLike) -> sitk.Image:
    """The CT (file or DICOM folder) as a float32 image; errors name the path."""
    return sitk.Cast(_read(path, "a CT must be a 3-D scalar image"), sitk.sitkFloat32)


def _read_labels(path: str | os.PathLike | sitk.Image, what: str) -> tuple[sitk.Image, str]:
    if isinstance(path, sitk.Image):
        return path, f"<in-memory {what}>"
    return _read(path, f"a {what} must be a 3-D scalar label map"), str(path)


def _read(path: str | os.PathLike, problem: str) -> sitk.Image:
    try:
        return read_volume(path, problem)
    except ImageReadError as exc:
        raise RealCTInputError(str(exc)) from None


def totalseg_lut() -> np.ndarray:
    """Lookup table TotalSegmentator ``total`` value -> SneakyNet id (0 for unmapped classes)."""
    mapping = load_totalseg_mapping()
    table = load_label_table()
    lut = np.zeros(max(mapping.classes) + 1, dtype=np.uint8)
    for value, name in mapping.classes.items():
        target = mapping.to_sneakynet.get(name, BACKGROUND)
        lut[value] = 0 if target == BACKGROUND else table.by_name(target).id
    return lut


def coarse_merges(reference_format: str) -> np.ndarray:
    """Lookup table applied to the prediction so its labels match a coarse reference's classes."""
    table = load_label_table()
    lut = np.arange(NUM_CLASSES, dtype=np.uint8)
    if reference_format == "totalseg":
        produced = set(load_totalseg_mapping().to_sneakynet.values())
        for fine, coarse in TOTALSEG_COARSE.items():
            if coarse in produced and fine not in produced:
                lut[table.by_name(fine).id] = table.by_name(coarse).id
    return lut


def _on_grid(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """``image``'s values on ``grid`` (nearest neighbour in physical space) as a (k, j, i) array."""
    same = (image.GetSize() == grid.GetSize()
            and np.allclose(image.GetOrigin(), grid.GetOrigin(), atol=1e-3)
            and np.allclose(image.GetSpacing(), grid.GetSpacing(), rtol=1e-5)
            and np.allclose(image.GetDirection(), grid.GetDirection(), atol=1e-6))
    if not same:
        image = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    return sitk.GetArrayFromImage(image)


def _check_values(arr: np.ndarray, limit: int, source: str, what: str) -> np.ndarray:
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise RealCTInputError(f"{source}: {what} holds non-integer values; expected a label map")
    values = np.unique(arr)
    bad = values[(values < 0) | (values >= limit)]
    if bad.size:
        raise RealCTInputError(f"{source}: {what} values {bad[:8].astype(int).tolist()} are outside 0..{limit - 1}")
    return arr.astype(np.intp)


def reference_on_grid(reference: str | os.PathLike | sitk.Image, grid: sitk.Image,
                      reference_format: str = "totalseg") -> np.ndarray:
    """The reference as SneakyNet ids (uint8, (k, j, i)) on ``grid``'s voxels."""
    if reference_format not in REFERENCE_FORMATS:
        raise RealCTInputError(f"reference format {reference_format!r} is not one of {', '.join(REFERENCE_FORMATS)}")
    image, source = _read_labels(reference, "reference")
    raw = sitk.GetArrayViewFromImage(image)
    if reference_format == "totalseg":
        lut = totalseg_lut()
        _check_values(raw, lut.size, source, "TotalSegmentator 'total'")
    else:
        lut = np.arange(NUM_CLASSES, dtype=np.uint8)
        _check_values(raw, NUM_CLASSES, source, "SneakyNet label")
    mapped = lut[_on_grid(image, grid).astype(np.intp)]  # nearest neighbour: only values checked above
    if np.any(lut[raw.astype(np.intp)]) and not mapped.any():
        raise RealCTInputError(f"{source}: no bone of the reference lies inside the CT's field of view "
                               "(do the two images share a physical space?)")
    return mapped


def prediction_on_grid(prediction: str | os.PathLike | sitk.Image, grid: sitk.Image) -> np.ndarray:
    """The predicted SneakyNet label map (uint8, (k, j, i)) on ``grid``'s voxels."""
    image, source = _read_labels(prediction, "prediction")
    return _check_values(_on_grid(image, grid), NUM_CLASSES, source, "SneakyNet label").astype(np.uint8)


def exclusion_ids(names: Iterable[str], source: str = "bones to leave out") -> list[int]:
    """SneakyNet ids of the bones to leave out; unknown names raise an error naming ``source``."""
    table = load_label_table()
    ids = []
    for name in names:
        try:
            ids.append(table.by_name(name).id)
        except KeyError:
            raise RealCTInputError(f"{source}: {name!r} is not a SneakyNet bone name (see sneakynet info)") from None
    return ids
