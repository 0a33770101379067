"""DICOM Segmentation out, read back with pydicom alone (no highdicom, which wrote it).

The source is the shared real DICOM slab (blank Study/Series/SOP Instance UIDs, JPEG 2000
lossless): segment numbers, codes, colours, references and every frame's geometry and pixels are
checked against the label map through physical space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.dicomseg import DicomSegError, dicom_series_files, write_dicom_seg
from sneakynet.labels import load_label_table

SLAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg_example" / "example_ct_dicom"
needs_slab = pytest.mark.skipif(not SLAB.is_dir(), reason="shared/data/totalseg_example not available")
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
TABLE = load_label_table()


def slab_with_labels() -> tuple[list[str], sitk.Image, sitk.Image]:
    """The slab's files, its CT and a label map on its grid: bone split left/mid/right into hip and L1 labels,
    plus a body-of-sternum label on the first slices only (so segments differ in the frames they cover)."""
    files = dicom_series_files(SLAB)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    ct = reader.Execute()
    hu = sitk.GetArrayFromImage(ct)
    x = np.arange(hu.shape[2])[None, None, :]
    labels = np.zeros(hu.shape, np.uint8)
    bone = hu > 250
    labels[bone & (x < 200)] = TABLE.by_name("hip_right").id
    labels[bone & (x >= 200) & (x < 300)] = TABLE.by_name("vertebra_L1").id
    labels[bone & (x >= 300)] = TABLE.by_name("hip_left").id
    labels[:4][(hu[:4] > 100) & (hu[:4] <= 250)] = TABLE.by_name("sternum_body").id
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return files, ct, image


def check_seg_against_labels(path: Path, labels: sitk.Image, files: list[str]) -> None:
    """Everything a reader needs, read with pydicom only, against the label map it came from."""
    seg = pydicom.dcmread(str(path))
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.SegmentationType == "BINARY"
    assert seg.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    referenced = {item.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence
                  for item in s.ReferencedInstanceSequence}
    assert referenced == {ds.file_meta.MediaStorageSOPInstanceUID for ds in source}
    array = sitk.GetArrayViewFromImage(labels)
    present = [int(v) for v in np.unique(array) if v]
    segment_to_label = {}
    for number, item in enumerate(seg.SegmentSequence, start=1):
        bone = TABLE.by_id(present[number - 1])
        assert item.SegmentNumber == number and item.SegmentLabel == bone.display and item.TrackingID == bone.name
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        assert (prop.CodeValue, prop.CodingSchemeDesignator) == (bone.type.code, "SCT")
        modifier = prop.get("SegmentedPropertyTypeModifierCodeSequence")
        assert (modifier[0].CodeValue if modifier else None) == (bone.modifier.code if bone.modifier else None)
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == bone.category.code
        assert len(item.RecommendedDisplayCIELabValue) == 3
        segment_to_label[number] = bone.id
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                               np.asarray(labels.GetDirection()).reshape(3, 3)[:, :2].T.ravel(), atol=1e-6)
    np.testing.assert_allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                               labels.GetSpacing()[1::-1], atol=1e-6)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    covered = set()
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        x, y, z = labels.TransformPhysicalPointToIndex(position)
        np.testing.assert_allclose(labels.TransformIndexToPhysicalPoint((x, y, z)), position, atol=1e-3)
        label = segment_to_label[int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        assert (x, y) == (0, 0) and np.array_equal(frame.astype(bool), array[z] == label), (z, label)
        covered.add((z, label))
    assert covered == {(z, v) for z in range(array.shape[0]) for v in present if (array[z] == v).any()}


@needs_slab
def test_dicom_seg_of_slab_without_identifiers_reads_back(tmp_path):
    files, _, labels = slab_with_labels()
    warnings: list[str] = []
    result = write_dicom_seg(labels, files, tmp_path / "bones.dcm", warn=warnings.append)
    assert any("StudyInstanceUID was blank; generated" in w for w in warnings)
    assert any("SeriesInstanceUID was blank; generated" in w for w in warnings)
    assert result.label_ids == sorted(TABLE.by_name(n).id for n in ("hip_right", "vertebra_L1", "hip_left",
                                                                     "sternum_body"))
    check_seg_against_labels(result.path, labels, files)
    seg = pydicom.dcmread(str(result.path), stop_before_pixels=True)
    assert seg.StudyInstanceUID in " ".join(warnings)  # the generated study UID is the one reported


@needs_slab
def test_array_input_and_grid_mismatch(tmp_path):
    files, _, labels = slab_with_labels()
    array = sitk.GetArrayFromImage(labels)
    result = write_dicom_seg(array, files, tmp_path / "a.dcm", warn=lambda m: None)
    check_seg_against_labels(result.path, labels, files)
    shifted = sitk.Image(labels)
    shifted.SetOrigin([o + 0.5 for o in labels.GetOrigin()])
    with pytest.raises(DicomSegError, match="do not share one grid"):
        write_dicom_seg(shifted, files, tmp_path / "b.dcm", warn=lambda m: None)
    with pytest.raises(DicomSegError, match="no bone"):
        write_dicom_seg(array * 0, files, tmp_path / "c.dcm", warn=lambda m: None)
    assert not (tmp_path / "b.dcm").exists() and not (tmp_path / "c.dcm").exists()


@needs_slab
def test_segment_cli_writes_dicom_seg(tmp_path, capsys):
    out, seg = tmp_path / "labels.nii.gz", tmp_path / "bones.dcm"
    assert main(["segment", str(SLAB), str(out), "--fast", "--dicom-seg", str(seg)]) == 0
    printed = capsys.readouterr()
    assert "generated" in printed.out + printed.err and "DICOM SEG" in printed.out
    check_seg_against_labels(seg, sitk.ReadImage(str(out)), dicom_series_files(SLAB))
    assert main(["segment", str(out), str(tmp_path / "x.nii.gz"), "--dicom-seg", str(seg)]) == 2
    assert "--dicom-seg needs a DICOM series folder" in capsys.readouterr().err
