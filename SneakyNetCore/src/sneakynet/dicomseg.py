"""DICOM Segmentation objects from bone label maps, referencing the CT series they came from.

Written with highdicom (a well-kept library that implements the Segmentation IOD on pydicom):
one binary segment per bone present, numbered 1..n in label-id order, with the label table's
display name, SNOMED CT category/type/laterality codes and colour (as DICOM's CIELab). Frames
reference the source CT slices and carry their geometry.

Source series without identifiers (anonymised exports with blank Study/Series/SOP Instance UIDs)
are not refused: SOP class and instance come from the file meta header where present, the rest
are generated, and every such repair is reported through ``warn``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from .io import atomic_path
from .labels import Code, load_label_table

ALGORITHM_NAME = "SneakyNet"


class DicomSegError(ValueError):
    """The source series or the label map cannot make a DICOM Segmentation; the message names the file."""


@dataclass
class DicomSegResult:
    """What :func:`write_dicom_seg` wrote: the file, its segments (bone ids in segment order), frames, repairs."""

    path: Path
    label_ids: list[int]
    frames: int
    repairs: list[str] = field(default_factory=list)


def read_source_series(files: Sequence[str | os.PathLike]) -> list:
    """Headers (no pixel data) of the source slices; a file pydicom cannot read is named in the error."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(str(f), stop_before_pixels=True))
        except (InvalidDicomError, OSError) as exc:
            raise DicomSegError(f"{f}: not a readable DICOM file ({exc})") from None
    if not datasets:
        raise DicomSegError("no DICOM source files given")
    return datasets


def repair_identifiers(datasets: list, warn: Callable[[str], None] = print) -> list[str]:
    """Fill blank UIDs the Segmentation must reference (in memory only); return one line per repair."""
    from highdicom import UID

    repairs = []
    meta = [getattr(ds, "file_meta", None) for ds in datasets]
    meta_sop = [(getattr(m, "MediaStorageSOPClassUID", ""), getattr(m, "MediaStorageSOPInstanceUID", "")) for m in meta]
    if any(not ds.get("SOPClassUID") for ds in datasets):
        repairs.append("SOPClassUID taken from the file meta header")
    if any(not ds.get("SOPInstanceUID") for ds in datasets):
        repairs.append("SOPInstanceUID taken from the file meta header (generated where that is blank too)")
    for ds, (sop_class, sop_instance) in zip(datasets, meta_sop):
        ds.SOPClassUID = ds.get("SOPClassUID") or sop_class or "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or sop_instance or UID()
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(ds.get(keyword) or "") for ds in datasets}
        if values == {""}:
            uid = UID()
            for ds in datasets:
                setattr(ds, keyword, uid)
            repairs.append(f"{keyword} was blank; generated {uid}")
        elif "" in values or len(values) > 1:
            raise DicomSegError(f"source slices disagree on {keyword} ({len(values)} values): not one series")
    for line in repairs:
        warn(f"sneakynet: warning: DICOM source without identifiers: {line}")
    return repairs


def sort_by_position(datasets: list) -> list:
    """Slices in increasing position along the slice normal (the order SimpleITK/GDCM read them)."""
    for ds in datasets:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise DicomSegError(f"slice {ds.get('SOPInstanceUID', '?')} has no image position/orientation")
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(datasets, key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float))))


def label_frames(labels: "sitk.Image | np.ndarray", datasets: list) -> np.ndarray:
    """The label map as one (rows, columns) frame per source slice, in ``datasets`` order.

    An image is matched slice by slice through physical space (each slice's ImagePositionPatient);
    a (z, y, x) array must already be in :func:`sort_by_position` order.
    """
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    if isinstance(labels, np.ndarray):
        if labels.shape != (len(datasets), rows, cols):
            raise DicomSegError(f"label array has shape {labels.shape}, the source series "
                                f"{(len(datasets), rows, cols)} (slices, rows, columns)")
        return labels.astype(np.uint8, copy=False)
    array = sitk.GetArrayViewFromImage(labels)
    if array.shape[1:] != (rows, cols):
        raise DicomSegError(f"label map has {array.shape[2]}x{array.shape[1]} voxels per slice, "
                            f"the source {cols}x{rows}")
    frames = np.empty((len(datasets), rows, cols), dtype=np.uint8)
    for i, ds in enumerate(datasets):
        point = [float(v) for v in ds.ImagePositionPatient]
        x, y, z = labels.TransformPhysicalPointToIndex(point)
        back = np.asarray(labels.TransformIndexToPhysicalPoint((x, y, z)))
        off_grid = np.abs(back - point).max() > 0.01 * min(labels.GetSpacing())
        if (x, y) != (0, 0) or not 0 <= z < array.shape[0] or off_grid:
            raise DicomSegError(f"slice at {point} mm is not a slice of the label map: label map and "
                                "source series do not share one grid")
        frames[i] = array[z]
    return frames


def _coded(code: Code):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code.code, scheme_designator=code.scheme, meaning=code.meaning)


def segment_descriptions(label_ids: list[int], model_name: str) -> list:
    """One highdicom SegmentDescription per bone: name, SNOMED CT codes with laterality, CIELab colour."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from . import __version__

    table = load_label_table()
    algorithm = hd.AlgorithmIdentificationSequence(name=ALGORITHM_NAME, version=__version__,
                                                   family=codes.DCM.ArtificialIntelligence, source=model_name[:64])
    out = []
    for number, label in enumerate(label_ids, start=1):
        bone = table.by_id(label)
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=bone.display[:64], segmented_property_category=_coded(bone.category),
            segmented_property_type=_coded(bone.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, tracking_id=bone.name, tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*bone.color))
        if bone.modifier is not None:
            prop = desc.SegmentedPropertyTypeCodeSequence[0]  # DICOM nests the modifier in the type's item
            prop.SegmentedPropertyTypeModifierCodeSequence = [_coded(bone.modifier)]
        out.append(desc)
    return out


def write_dicom_seg(labels: "sitk.Image | np.ndarray", dicom_files: Sequence[str | os.PathLike],
                    output: str | os.PathLike, model_name: str = "SneakyNet",
                    warn: Callable[[str], None] = print) -> DicomSegResult:
    """Write ``labels`` (bone ids on the source grid) as a DICOM Segmentation referencing ``dicom_files``.

    ``labels``: a SimpleITK image on the grid of the series (what ``sneakynet segment`` returns for a
    DICOM input), or a (slices, rows, columns) array in :func:`sort_by_position` order (what a
    Slicer labelmap on the CT's grid gives). ``model_name`` names the model in the algorithm fields.
    """
    import highdicom as hd

    from . import __version__

    datasets = sort_by_position(read_source_series(dicom_files))
    repairs = repair_identifiers(datasets, warn)
    frames = label_frames(labels, datasets)
    label_ids = [int(v) for v in np.unique(frames) if v != 0]
    if not label_ids:
        raise DicomSegError("the label map holds no bone: a DICOM Segmentation needs at least one segment")
    lut = np.zeros(256, dtype=np.uint8)
    lut[label_ids] = np.arange(1, len(label_ids) + 1)
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=lut[frames], segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(label_ids, model_name), series_instance_uid=hd.UID(),
        series_number=900, sop_instance_uid=hd.UID(), instance_number=1, manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=model_name[:64], software_versions=__version__, device_serial_number="none",
        content_description="SneakyNet bone segmentation"[:64], content_label="BONES", omit_empty_frames=True)
    seg.SeriesDescription = f"{ALGORITHM_NAME} bones"
    with atomic_path(output) as tmp:
        seg.save_as(str(tmp))
    return DicomSegResult(Path(output), label_ids, int(seg.NumberOfFrames), repairs)


def dicom_series_files(folder: str | os.PathLike, series_id: str | None = None) -> list[str]:
    """The files of the DICOM series in ``folder`` that :func:`sneakynet.io.read_image` reads."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise DicomSegError(f"{folder}: no DICOM series found in this folder")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id or ids[0]))
