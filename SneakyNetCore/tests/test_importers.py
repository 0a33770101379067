"""Importers: TotalSegmentator-style folders (real example CT) and nnU-Net raw datasets."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.dataset import load_dataset
from sneakynet.importers import (
    DatasetImportError,
    import_nnunet,
    import_totalseg,
    load_totalseg_mapping,
    read_user_mapping,
)
from sneakynet.labels import load_label_table

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "totalseg_example"
CT = DATA / "example_ct.nii.gz"
SEG = DATA / "example_seg_fast_force_split.nii.gz"
needs_data = pytest.mark.skipif(not SEG.is_file(), reason="shared/data/totalseg_example not available")

# Bone voxel counts of example_seg_fast_force_split.nii.gz (shared/data/README.md), in our names.
EXPECTED_BONES = {
    "sacrum": 5884 + 1796,  # sacrum + vertebrae_S1
    "vertebra_L5": 2508, "vertebra_L4": 2442, "vertebra_L3": 2446, "vertebra_L2": 2236,
    "vertebra_L1": 2220, "vertebra_T12": 1831, "vertebra_T11": 83,
    "femur_left": 4488, "femur_right": 4396, "hip_left": 13166, "hip_right": 13048,
    "rib_left_7": 100, "rib_left_8": 155, "rib_left_9": 196, "rib_left_10": 201, "rib_left_11": 230,
    "rib_left_12": 130, "rib_right_7": 68, "rib_right_8": 139, "rib_right_9": 162, "rib_right_10": 189,
    "rib_right_11": 187, "rib_right_12": 77,
}


def _label_counts(folder: Path, case: str) -> dict[str, int]:
    table = load_label_table()
    _, labels = load_dataset(folder).read_case(case)
    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=126)
    return {table.by_id(v).name: int(counts[v]) for v in np.flatnonzero(counts) if v}


def test_mapping_resource_is_consistent():
    m = load_totalseg_mapping()
    assert len(m.classes) == 117 and m.classes[26] == "vertebrae_S1" and m.classes[116] == "sternum"
    table = load_label_table()
    assert m.to_sneakynet["vertebrae_S1"] == "sacrum" and m.to_sneakynet["skull"] == "cranium"
    assert m.to_sneakynet["clavicula_left"] == "clavicle_left"
    assert m.to_sneakynet["sternum"] == "sternum_body"
    assert "costal_cartilages" not in m.to_sneakynet and "liver" not in m.to_sneakynet
    # all 62 TotalSegmentator bones are mapped, and left stays left
    assert len(m.to_sneakynet) == 62
    for src, dst in m.to_sneakynet.items():
        bone = table.by_name(dst)
        if "_left" in src or "_right" in src:
            assert bone.side == ("left" if "_left" in src else "right"), src
    assert {"sternum", "skull", "vertebrae_S1"} <= set(m.choices)


@needs_data
def test_import_totalseg_multilabel_real_example(tmp_path):
    case = tmp_path / "src" / "s0001"
    case.mkdir(parents=True)
    shutil.copyfile(CT, case / "ct.nii.gz")
    shutil.copyfile(SEG, case / "segmentations.nii.gz")
    report = import_totalseg(tmp_path / "src", tmp_path / "ds")
    assert _label_counts(tmp_path / "ds", "s0001") == EXPECTED_BONES
    assert report.mapped_voxels() == EXPECTED_BONES
    assert sum(EXPECTED_BONES.values()) == 58378  # the README's bone total
    unmapped = report.unmapped_voxels()
    assert unmapped["costal_cartilages"] == 2325 and unmapped["liver"] == 41692 and len(unmapped) == 36
    # the CT is copied byte for byte; the dataset validates
    assert (tmp_path / "ds" / "imagesTr" / "s0001_0000.nii.gz").read_bytes() == CT.read_bytes()
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert saved["mapped_voxels"]["sacrum"] == 7680
    assert load_dataset(tmp_path / "ds").meta["sneakynet_import"]["format"] == "totalseg"


@needs_data
def test_import_totalseg_binary_masks(tmp_path):
    """The TotalSegmentator training-data layout: segmentations/<class>.nii.gz per class."""
    seg = sitk.ReadImage(str(SEG))
    arr = sitk.GetArrayViewFromImage(seg)
    case = tmp_path / "src" / "s0002"
    (case / "segmentations").mkdir(parents=True)
    shutil.copyfile(CT, case / "ct.nii.gz")
    names = {25: "sacrum", 26: "vertebrae_S1", 31: "vertebrae_L1", 78: "hip_right", 98: "rib_left_7",
             5: "liver", 117: "costal_cartilages"}
    for value, name in names.items():
        mask = sitk.GetImageFromArray((arr == value).astype(np.uint8))
        mask.CopyInformation(seg)
        sitk.WriteImage(mask, str(case / "segmentations" / f"{name}.nii.gz"))
    report = import_totalseg(case, tmp_path / "ds")  # SRC may be the case folder itself
    assert _label_counts(tmp_path / "ds", "s0002") == {
        "sacrum": 7680, "vertebra_L1": 2220, "hip_right": 13048, "rib_left_7": 100}
    assert report.unmapped_voxels() == {"liver": 41692, "costal_cartilages": 2325}
    assert report.cases[0].overlap_voxels == 0


def _nnunet_case(folder: Path, case: str, labels: np.ndarray, spacing=(1.0, 1.0, 1.0), ending=".nii.gz") -> None:
    ct = sitk.GetImageFromArray(np.zeros(labels.shape, dtype=np.int16))
    lab = sitk.GetImageFromArray(labels)
    lab.SetSpacing(spacing)
    sitk.WriteImage(ct, str(folder / "imagesTr" / f"{case}_0000{ending}"))
    sitk.WriteImage(lab, str(folder / "labelsTr" / f"{case}{ending}"))


def _nnunet_dataset(folder: Path, labels_json: dict, n: int = 2, ending=".nii.gz") -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for i in range(n):
        lab = np.zeros((4, 5, 6), dtype=np.uint8)
        lab[0, 0, : i + 1] = 1
        lab[1, :2, :2] = 2
        lab[2, 0, 0] = 3
        _nnunet_case(folder, f"ds_{i:03d}", lab, ending=ending)
    meta = {"channel_names": {"0": "CT"}, "labels": labels_json, "numTraining": n, "file_ending": ending}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def test_import_nnunet_v2_name_mapping(tmp_path):
    src = _nnunet_dataset(tmp_path / "src", {"background": 0, "femur_left": 1, "vertebrae_L1": 2, "spleen": 3})
    report = import_nnunet(src, tmp_path / "ds")
    counts = _label_counts(tmp_path / "ds", "ds_001")
    assert counts == {"femur_left": 2, "vertebra_L1": 4}  # own name; TotalSegmentator name; spleen dropped
    assert report.unmapped_voxels() == {"spleen": 2}
    assert load_dataset(tmp_path / "ds").cases == ["ds_000", "ds_001"]


def test_import_nnunet_v1_labels_other_ending_and_user_mapping(tmp_path):
    src = _nnunet_dataset(tmp_path / "src", {"0": "background", "1": "Femur L", "2": "L1", "3": "spleen"},
                          ending=".mha")
    meta = json.loads((src / "dataset.json").read_text())
    del meta["channel_names"]
    meta["modality"] = {"0": "CT"}
    (src / "dataset.json").write_text(json.dumps(meta))
    mapping_file = tmp_path / "map.json"
    mapping_file.write_text(json.dumps({"Femur L": "femur_left", "L1": "vertebra_L1"}))
    import_nnunet(src, tmp_path / "ds", user_mapping=read_user_mapping(mapping_file))
    assert _label_counts(tmp_path / "ds", "ds_000") == {"femur_left": 1, "vertebra_L1": 4}
    assert (tmp_path / "ds" / "imagesTr" / "ds_000_0000.nii.gz").is_file()


def test_bad_user_mapping(tmp_path):
    p = tmp_path / "map.json"
    p.write_text(json.dumps({"spleen": "spleen"}))
    with pytest.raises(DatasetImportError, match="map.json: 'spleen' maps to 'spleen', which is neither"):
        read_user_mapping(p)


@pytest.mark.parametrize(
    "labels_json, message",
    [
        ({"background": 0, "femur_left": [1, 2]}, "region-based"),
        ({"background": 0, "femur_left": 1}, r"label value\(s\) \[2, 3\] are not listed"),
    ],
)
def test_import_nnunet_bad_labels(tmp_path, labels_json, message):
    src = _nnunet_dataset(tmp_path / "src", labels_json)
    with pytest.raises(DatasetImportError, match=message):
        import_nnunet(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds.partial-*"))  # nothing half-written left behind


def test_import_nnunet_geometry_mismatch_leaves_nothing(tmp_path):
    src = _nnunet_dataset(tmp_path / "src", {"background": 0, "femur_left": 1, "hip_left": 2, "sacrum": 3})
    _nnunet_case(src, "ds_001", np.zeros((4, 5, 6), dtype=np.uint8), spacing=(1.0, 2.0, 1.0))
    with pytest.raises(DatasetImportError, match=r"labelsTr/ds_001\.nii\.gz: spacing"):
        import_nnunet(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds.*"))


def test_existing_destination_needs_overwrite(tmp_path):
    src = _nnunet_dataset(tmp_path / "src", {"background": 0, "femur_left": 1, "hip_left": 2, "sacrum": 3})
    dst = tmp_path / "ds"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(DatasetImportError, match="folder exists and is not empty"):
        import_nnunet(src, dst)
    assert (dst / "keep.txt").exists()
    import_nnunet(src, dst, overwrite=True)
    assert not (dst / "keep.txt").exists() and load_dataset(dst).cases == ["ds_000", "ds_001"]


def test_totalseg_layout_errors(tmp_path):
    case = tmp_path / "src" / "s1"
    case.mkdir(parents=True)
    with pytest.raises(DatasetImportError, match=r"s1/ct\.nii\.gz: file is missing"):
        import_totalseg(tmp_path / "src", tmp_path / "ds")
    img = sitk.GetImageFromArray(np.zeros((3, 4, 5), dtype=np.int16))
    sitk.WriteImage(img, str(case / "ct.nii.gz"))
    with pytest.raises(DatasetImportError, match="needs segmentations/"):
        import_totalseg(tmp_path / "src", tmp_path / "ds")
    bad = sitk.GetImageFromArray(np.full((3, 4, 5), 200, dtype=np.uint8))
    sitk.WriteImage(bad, str(case / "segmentations.nii.gz"))
    with pytest.raises(DatasetImportError, match=r"value\(s\) \[200\] are not TotalSegmentator v2"):
        import_totalseg(tmp_path / "src", tmp_path / "ds")


def test_import_cli(tmp_path, capsys):
    src = _nnunet_dataset(tmp_path / "src", {"background": 0, "femur_left": 1, "hip_left": 2, "spleen": 3}, n=3)
    assert main(["import-dataset", str(src), str(tmp_path / "ds"), "--format", "nnunet"]) == 0
    out = capsys.readouterr().out
    assert "imported 3 case(s)" in out and "spleen: 3" in out
    assert (tmp_path / "ds" / "splits.json").is_file()
    assert main(["import-dataset", str(src), str(tmp_path / "ds"), "--format", "nnunet"]) == 2
    assert "not empty (use --overwrite" in capsys.readouterr().err
