"""Dataset folder format: dataset.json, case listing, geometry/label checks, k-fold splits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.dataset import (
    DatasetError,
    load_dataset,
    make_dataset_json,
    make_splits,
    read_case,
    read_splits,
    write_splits,
)

SHAPE = (6, 7, 8)  # (z, y, x)


def _image(arr: np.ndarray, spacing=(1.5, 1.5, 2.0), origin=(10.0, -20.0, 5.0), direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _write_case(folder: Path, case: str, labels: np.ndarray | None = None, **label_geometry) -> None:
    ct = _image(np.full(SHAPE, -500, dtype=np.int16))
    if labels is None:
        labels = np.zeros(SHAPE, dtype=np.uint8)
        labels[1:3, 2:4, 3:6] = 58  # humerus_left
    lab = _image(labels, **label_geometry)
    sitk.WriteImage(ct, str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
    sitk.WriteImage(lab, str(folder / "labelsTr" / f"{case}.nii.gz"))


def _make_dataset(folder: Path, n: int = 3) -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for i in range(n):
        _write_case(folder, f"case{i:02d}")
    (folder / "dataset.json").write_text(json.dumps(make_dataset_json(n)))
    return folder


def test_dataset_json_is_nnunet_v2_compatible(tmp_path):
    data = make_dataset_json(3)
    assert data["channel_names"] == {"0": "CT"}
    assert data["labels"]["background"] == 0 and data["labels"]["femur_right"] == 125
    assert sorted(data["labels"].values()) == list(range(126))  # consecutive, as nnU-Net requires
    assert data["numTraining"] == 3 and data["file_ending"] == ".nii.gz"


def test_load_and_read_case(tmp_path):
    ds = load_dataset(_make_dataset(tmp_path / "ds"))
    assert ds.cases == ["case00", "case01", "case02"]
    assert ds.label_names[58] == "humerus_left"
    ct, labels = read_case(ds, "case01")
    assert labels.GetPixelID() == sitk.sitkUInt8
    assert labels.GetSize() == ct.GetSize() == SHAPE[::-1]
    assert labels.GetOrigin() == ct.GetOrigin() and labels.GetSpacing() == ct.GetSpacing()
    assert int((sitk.GetArrayViewFromImage(labels) == 58).sum()) == 2 * 2 * 3


def test_label_geometry_within_tolerance_is_accepted(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    _write_case(folder, "case00", origin=(10.0 + 1e-4, -20.0, 5.0), spacing=(1.5 * (1 + 1e-5), 1.5, 2.0))
    ct, labels = read_case(folder, "case00")
    assert labels.GetOrigin() == ct.GetOrigin()  # snapped onto the CT grid exactly


@pytest.mark.parametrize(
    "geometry, word",
    [
        ({"spacing": (1.5, 1.6, 2.0)}, "spacing"),
        ({"origin": (10.0, -20.0, 6.0)}, "origin"),
        ({"direction": (-1, 0, 0, 0, -1, 0, 0, 0, 1)}, "direction"),
    ],
)
def test_label_geometry_mismatch_names_file_and_problem(tmp_path, geometry, word):
    folder = _make_dataset(tmp_path / "ds")
    _write_case(folder, "case01", **geometry)
    with pytest.raises(DatasetError, match=rf"case01\.nii\.gz: {word}"):
        read_case(folder, "case01")


def test_label_size_mismatch(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    _write_case(folder, "case01", labels=np.zeros((6, 7, 9), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"labelsTr/case01\.nii\.gz: size \(9, 7, 6\)"):
        read_case(folder, "case01")


@pytest.mark.parametrize("value", [126, 200])
def test_label_values_outside_table(tmp_path, value):
    folder = _make_dataset(tmp_path / "ds")
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0, 0, :3] = value
    _write_case(folder, "case02", labels=labels)
    with pytest.raises(DatasetError, match=rf"case02\.nii\.gz: label value\(s\) {value} \(3 voxels\) outside"):
        read_case(folder, "case02")


def test_label_values_not_listed_in_dataset_json(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    data = json.loads((folder / "dataset.json").read_text())
    del data["labels"]["humerus_left"]
    (folder / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="58 .* outside the labels of dataset.json"):
        read_case(folder, "case00")


def test_float_labels_must_be_integral(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    labels = np.zeros(SHAPE, dtype=np.float32)
    labels[0, 0, 0] = 1.5
    _write_case(folder, "case00", labels=labels)
    with pytest.raises(DatasetError, match="non-integer"):
        read_case(folder, "case00")


def test_missing_files(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    (folder / "labelsTr" / "case01.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"case01\.nii\.gz: label map of case 'case01' is missing"):
        load_dataset(folder)
    with pytest.raises(DatasetError, match="dataset folder does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_unreadable_image(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    (folder / "imagesTr" / "case00_0000.nii.gz").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"case00_0000\.nii\.gz: not a readable image"):
        read_case(folder, "case00")


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "dataset.json: file is missing"),
        ("", "dataset.json: file is empty"),
        ("{not json", "dataset.json: not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"labels": {"background": 0}}', "missing key"),
    ],
)
def test_bad_dataset_json(tmp_path, text, message):
    folder = _make_dataset(tmp_path / "ds")
    if text is None:
        (folder / "dataset.json").unlink()
    else:
        (folder / "dataset.json").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(numTraining=5), "numTraining is 5 but .* holds 3"),
        (lambda d: d["labels"].update(pelvis=7), "label 'pelvis' is not in the SneakyNet label table"),
        (lambda d: d["labels"].update(femur_left=3), "label 'femur_left' has id 3, the label table says 124"),
        (lambda d: d["labels"].update(femur_left=[1, 2]), "region-based"),
        (lambda d: d.update(channel_names={"0": "CT", "1": "PET"}), "one CT channel"),
        (lambda d: d.update(channel_names={"0": "MRI"}), "channel 0 must be CT"),
        (lambda d: d.update(file_ending="nii"), "file_ending"),
        (lambda d: d["labels"].update(background=1), "'background' to 0"),
    ],
)
def test_invalid_dataset_json_content(tmp_path, change, message):
    folder = _make_dataset(tmp_path / "ds")
    data = json.loads((folder / "dataset.json").read_text())
    change(data)
    (folder / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder)


def test_extra_channel_is_rejected(tmp_path):
    folder = _make_dataset(tmp_path / "ds")
    (folder / "imagesTr" / "case00_0001.nii.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"case00_0001\.nii\.gz: extra channel _0001"):
        load_dataset(folder)


# ----------------------------------------------------------------------------------------------
# splits


def _check_partition(splits, ids):
    tested = [c for s in splits for c in s["test"]]
    assert sorted(tested) == sorted(ids)  # every case in exactly one test fold
    for s in splits:
        train, val, test = set(s["train"]), set(s["val"]), set(s["test"])
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(ids)
        assert train


def test_paper_scheme_16_cases():
    ids = [f"scan{i:02d}" for i in range(16)]
    splits = make_splits(ids, n_folds=5, seed=0)
    assert len(splits) == 5
    _check_partition(splits, ids)
    sizes = sorted((len(s["train"]), len(s["val"]), len(s["test"])) for s in splits)
    # 5 x 3 = 15 < 16: one fold tests 4 cases, the other four are exactly 11 / 2 / 3
    assert sizes == [(10, 2, 4)] + [(11, 2, 3)] * 4
    vals = [c for s in splits for c in s["val"]]
    assert len(vals) == len(set(vals))  # each case validates at most once


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 10, 17, 31])
def test_splits_any_case_count(n):
    ids = [f"c{i}" for i in range(n)]
    splits = make_splits(ids[::-1], n_folds=5, seed=3)
    assert len(splits) == min(5, n)
    _check_partition(splits, ids)
    assert all(len(s["val"]) >= 1 for s in splits)


def test_splits_deterministic_and_seeded():
    ids = [f"c{i}" for i in range(12)]
    assert make_splits(ids, seed=1) == make_splits(list(reversed(ids)), seed=1)
    assert make_splits(ids, seed=1) != make_splits(ids, seed=2)


def test_splits_bad_arguments():
    with pytest.raises(ValueError, match="at least 3 cases"):
        make_splits(["a", "b"])
    with pytest.raises(ValueError, match="n_val must be in 0..3"):
        make_splits(["a", "b", "c", "d", "e"], n_folds=5, n_val=4)
    with pytest.raises(ValueError, match="duplicate"):
        make_splits(["a", "a", "b"])


def test_write_and_read_splits(tmp_path):
    folder = _make_dataset(tmp_path / "ds", n=4)
    write_splits(folder, n_folds=4, seed=0)
    folds = read_splits(folder)
    assert folds == make_splits(load_dataset(folder).cases, n_folds=4, seed=0)
    data = json.loads((folder / "splits.json").read_text())
    data["folds"][0]["val"].append(data["folds"][0]["test"][0])
    (folder / "splits.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"splits.json: fold 0 has case\(s\) .* in both val and test"):
        read_splits(folder)


def test_split_cli(tmp_path, capsys):
    from sneakynet.cli import main

    folder = _make_dataset(tmp_path / "ds", n=3)
    assert main(["split", str(folder), "--folds", "3"]) == 0
    assert "fold 2: 1 train / 1 val / 1 test" in capsys.readouterr().out
    assert main(["split", str(tmp_path / "missing")]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err
