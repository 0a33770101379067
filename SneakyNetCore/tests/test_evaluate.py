"""Folder evaluation: pairing, geometry checks, reports (CSV, JSON, PNG) and the ``evaluate`` command."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.evaluate import (
    CaseMetrics,
    EvaluationInputError,
    evaluate_arrays,
    evaluate_folders,
    evaluate_images,
    format_report,
    pair_cases,
)
from sneakynet.labels import load_label_table

T = load_label_table()
HL, HR = T.by_name("humerus_left").id, T.by_name("humerus_right").id
FL = T.by_name("femur_left").id
RIB3 = T.by_name("rib_left_3").id
CRANIUM = T.by_name("cranium").id
SPACING = (0.8, 0.9, 2.0)  # SimpleITK order (x, y, z)


def _case_pair():
    """Reference and prediction (numpy z, y, x) with hand-countable errors."""
    ref = np.zeros((6, 10, 12), np.uint8)
    ref[0:2, 0:5, 0:4] = HL  # 40 voxels
    ref[0:2, 5:10, 0:4] = HR  # 40 voxels
    ref[3:5, 0:5, 6:12] = FL  # 60 voxels
    ref[3:5, 6:9, 6:12] = RIB3  # 36 voxels
    pred = ref.copy()
    pred[0:2, 0:5, 0] = HR  # 10 left-humerus voxels predicted as right humerus
    pred[0:1, 5:10, 0] = HL  # 5 right-humerus voxels predicted as left humerus
    pred[0:2, 5:10, 1] = FL  # 10 right-humerus voxels predicted as left femur
    pred[3:5, 6:9, 6:12] = 0  # rib missed entirely -> DSC 0
    pred[5, 9, 11] = CRANIUM  # hallucinated cranium voxel -> DSC 0
    return pred, ref


def _write(arr, path, spacing=SPACING, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), True)
    return path


@pytest.fixture()
def folders(tmp_path):
    pred, ref = _case_pair()
    _write(pred, tmp_path / "pred" / "case_a.nii.gz")
    _write(ref, tmp_path / "ref" / "case_a.nii.gz")
    _write(ref, tmp_path / "pred" / "case_b.nii.gz")  # perfect prediction
    _write(ref, tmp_path / "ref" / "case_b.nii.gz")
    _write(ref, tmp_path / "ref" / "case_unpredicted.nii.gz")  # reference without prediction: ignored
    return tmp_path


def test_evaluate_arrays_hand_counted_case():
    pred, ref = _case_pair()
    m = evaluate_arrays(pred, ref, spacing=SPACING[::-1], hd95=True, case="a")
    assert isinstance(m, CaseMetrics) and m.case == "a"
    tp_hl = 40 - 10  # 10 voxels lost to HR
    fp_hl = 5  # 5 HR voxels predicted HL
    assert m.dsc[HL - 1] == pytest.approx(2 * tp_hl / (2 * tp_hl + fp_hl + 10))
    tp_hr = 40 - 5 - 10
    assert m.dsc[HR - 1] == pytest.approx(2 * tp_hr / (2 * tp_hr + 10 + 15))
    assert m.dsc[FL - 1] == pytest.approx(2 * 60 / (2 * 60 + 10))
    assert m.dsc[RIB3 - 1] == 0.0 and m.dsc[CRANIUM - 1] == 0.0
    assert np.isfinite(m.dsc).sum() == 5
    assert m.confusion[HL, HR] == 10 and m.confusion[HR, HL] == 5 and m.confusion[HR, FL] == 10
    assert m.left_right_confusion == 15
    assert np.isnan(m.hd95[RIB3 - 1]) and np.isfinite(m.hd95[HL - 1])
    assert evaluate_arrays(pred, ref).hd95 is None


def test_evaluate_folders_writes_all_reports(folders):
    out = folders / "out"
    res = evaluate_folders(folders / "pred", folders / "ref", out, hd95=True, progress=False)
    assert [c.case for c in res.cases] == ["case_a", "case_b"]
    a = res.cases[0]
    # class-wise DSC = mean over the cases where the class is evaluated
    assert res.class_dsc[HL - 1] == pytest.approx((a.dsc[HL - 1] + 1.0) / 2)
    assert res.class_dsc[CRANIUM - 1] == 0.0  # only evaluated in case_a
    assert res.left_right_confusion == 15

    for name in ("per_case.csv", "per_class.csv", "summary.json", "confusion_all.csv", "confusion_limbs.csv",
                 "confusion_limbs.png", "confusion_ribs_spine.csv", "confusion_ribs_spine.png", "dsc_by_group.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    rows = list(csv.DictReader((out / "per_case.csv").open()))
    assert len(rows) == 2 * 125 and list(rows[0]) == ["case", "class", "name", "dsc", "hd95"]
    row = next(r for r in rows if r["case"] == "case_a" and int(r["class"]) == RIB3)
    assert row["name"] == "rib_left_3" and float(row["dsc"]) == 0.0 and row["hd95"] == "nan"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 2 and summary["left_right_confusion_voxels"] == 15
    # evaluated: HL, HR, FL, rib (0 in case_a, 1 in case_b -> 0.5), cranium (0, only in case_a)
    assert summary["n_evaluated"] == 5 and summary["n_nonzero"] == 4
    assert summary["nonzero_pct"] == pytest.approx(80.0)
    assert summary["median"] == pytest.approx(res.summary["median"])
    assert set(summary["groups"]) == set(T.groups())
    assert summary["groups"]["head"]["nonzero_pct"] == 0.0 and summary["groups"]["head"]["median"] is None
    assert summary["hd95_mm"]["n_classes"] == 4  # rib: undefined in case_a, 0 mm in case_b

    with (out / "confusion_limbs.csv").open() as f:
        table = list(csv.reader(f))
    names = table[0][1:]
    assert names[:4] == ["humerus_left", "humerus_right", "femur_left", "femur_right"]
    m = {r[0]: dict(zip(names, map(int, r[1:]))) for r in table[1:]}
    assert m["humerus_left"]["humerus_right"] == 10 and m["humerus_right"]["femur_left"] == 10
    assert m["humerus_left"]["humerus_left"] == 30 + 40  # case_a + perfect case_b

    import matplotlib.image

    for png in ("confusion_limbs.png", "confusion_ribs_spine.png", "dsc_by_group.png"):
        img = matplotlib.image.imread(out / png)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
        assert img[..., :3].std() > 0.05  # not blank


def test_nnunet_layout_and_input_image_names_are_paired(tmp_path):
    pred, ref = _case_pair()
    _write(ref, tmp_path / "Dataset001" / "labelsTr" / "bones_001.nii.gz")
    _write(ref, tmp_path / "Dataset001" / "labelsTs" / "bones_002.nii.gz")
    _write(pred, tmp_path / "pred" / "bones_001.nii.gz")
    _write(pred, tmp_path / "pred" / "bones_002_0000.nii.gz")
    (tmp_path / "pred" / "plans.json").write_text("{}")  # non-image files are ignored
    pairs = pair_cases(tmp_path / "pred", tmp_path / "Dataset001")
    assert [(c, p.name, r.parent.name) for c, p, r in pairs] == [
        ("bones_001", "bones_001.nii.gz", "labelsTr"), ("bones_002", "bones_002_0000.nii.gz", "labelsTs")]


def test_missing_reference_is_named(folders):
    _write(_case_pair()[0], folders / "pred" / "case_c.nii.gz")
    with pytest.raises(EvaluationInputError, match=r"no reference for prediction\(s\) case_c.nii.gz"):
        evaluate_folders(folders / "pred", folders / "ref", folders / "out", progress=False)
    assert not (folders / "out").exists()


def test_empty_or_missing_folders_and_duplicate_cases(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationInputError, match="does not exist"):
        pair_cases(tmp_path / "nope", tmp_path / "empty")
    with pytest.raises(EvaluationInputError, match="no label maps"):
        pair_cases(tmp_path / "empty", tmp_path / "empty")
    pred, ref = _case_pair()
    _write(pred, tmp_path / "pred" / "x.nii.gz")
    _write(pred, tmp_path / "pred" / "x.nrrd")
    _write(ref, tmp_path / "ref" / "x.nii.gz")
    with pytest.raises(EvaluationInputError, match="case 'x' has two files"):
        pair_cases(tmp_path / "pred", tmp_path / "ref")


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(spacing=(0.8, 0.9, 2.5)), "spacing"),
        (dict(origin=(0.0, 5.0, 0.0)), "origin"),
        (dict(shape=(6, 10, 11)), "size"),
    ],
)
def test_geometry_mismatch_names_both_files(tmp_path, change, match):
    pred, ref = _case_pair()
    if "shape" in change:
        pred = pred[..., :11]
    _write(pred, tmp_path / "pred" / "c.nii.gz", spacing=change.get("spacing", SPACING),
           origin=change.get("origin", (0.0, 0.0, 0.0)))
    _write(ref, tmp_path / "ref" / "c.nii.gz")
    with pytest.raises(EvaluationInputError, match=match) as err:
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out", progress=False)
    assert str(tmp_path / "pred" / "c.nii.gz") in str(err.value) and str(tmp_path / "ref" / "c.nii.gz") in str(err.value)
    assert not (tmp_path / "out").exists()


def test_out_of_range_labels_name_the_file(tmp_path):
    pred, ref = _case_pair()
    bad = pred.astype(np.int16)
    bad[0, 0, 0] = 200
    _write(bad, tmp_path / "pred" / "c.nii.gz")
    _write(ref, tmp_path / "ref" / "c.nii.gz")
    with pytest.raises(EvaluationInputError, match=r"pred/c.nii.gz: label values 200 are outside 0..125"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", None, progress=False)


def test_evaluate_images_checks_direction():
    pred, ref = _case_pair()
    a, b = sitk.GetImageFromArray(pred), sitk.GetImageFromArray(ref)
    b.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    with pytest.raises(EvaluationInputError, match="direction"):
        evaluate_images(a, b, pred_name="p.nii.gz", ref_name="r.nii.gz")


def test_cli_evaluate_prints_table_and_reports_bad_input(folders, capsys):
    rc = main(["evaluate", "--pred", str(folders / "pred"), "--ref", str(folders / "ref"),
               "--out", str(folders / "out"), "--hd95", "--quiet", "--name", "A 3D U-Net"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| **A 3D U-Net** |" in out and "80.0% |" in out and "left/right confusion: 15 voxels" in out
    assert (folders / "out" / "summary.json").is_file()

    rc = main(["evaluate", "--pred", str(folders / "ref"), "--ref", str(folders / "pred"),
               "--out", str(folders / "out2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "case_unpredicted.nii.gz" in err and "Traceback" not in err


def test_format_report_lists_groups(folders):
    res = evaluate_folders(folders / "pred", folders / "ref", None, progress=False)
    text = format_report(res, "demo")
    assert text.splitlines()[2].startswith("| **demo** |")
    assert "| ribs | 0.50 | +0.00 | -0.00 | 100.0% |" in text  # 0 in case_a, 1 in case_b
    assert "| head | n/a | n/a | n/a | 0.0% |" in text  # only the hallucinated cranium voxel
