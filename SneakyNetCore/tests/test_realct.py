"""Real-CT scoring (sneakynet.realct): hand-made label maps with known answers, and the benchmark path."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.labels import load_label_table
from sneakynet.realct import RealCTInputError, evaluate_case, format_table
from sneakynet.realct.reference import reference_on_grid

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parents[1] / "shared" / "data"
T = load_label_table()


def bid(name: str) -> int:
    return T.by_name(name).id


def image(arr: np.ndarray, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), origin=(0.0, 0.0, 0.0),
          spacing=(2.0, 2.0, 2.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetDirection([float(d) for d in direction])
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    return img


def ct_like(labels: np.ndarray, **geometry) -> sitk.Image:
    """A CT: body (0 HU) filling all but a 1-voxel air rim, 1000 HU where ``labels`` has bone."""
    hu = np.full(labels.shape, -1000.0, dtype=np.float32)
    hu[1:-1, 1:-1, 1:-1] = 0.0
    hu[labels > 0] = 1000.0
    return image(hu, **geometry)


def sneaky_ref(arr: np.ndarray, ct: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(ct)
    return img


def test_known_dsc_groups_and_any_bone():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:6, 8:12, 8:12] = bid("vertebra_L1")  # 64 voxels
    ref[10:14, 4:8, 12:16] = bid("hip_left")
    pred = ref.copy()
    pred[2:6, 8:12, 8:12] = 0
    pred[3:7, 8:12, 8:12] = bid("vertebra_L1")  # shifted one slice: overlap 48 -> DSC 0.75
    ct = ct_like(ref)
    score = evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet")
    assert score.bone_dsc == pytest.approx({"vertebra_L1": 0.75, "hip_left": 1.0})
    assert score.median_bone_dsc == pytest.approx(0.875)
    assert score.group_dsc == pytest.approx({"lumbar": 0.75, "hips": 1.0})  # only groups the reference labels
    assert score.any_bone_dsc == pytest.approx(2 * (48 + 64) / (128 + 128))
    table = format_table([("case", score)])
    assert "| median per-bone DSC | 0.88 |" in table and "| group DSC: cervical | – |" in table


def test_vertebra_level_exact_within_one_and_missing():
    ref = np.zeros((30, 12, 12), np.uint8)
    blocks = {"vertebra_L1": slice(2, 6), "vertebra_L2": slice(8, 12), "vertebra_L3": slice(14, 18),
              "vertebra_L4": slice(20, 24)}
    for name, s in blocks.items():
        ref[s, 4:8, 4:8] = bid(name)
    pred = np.zeros_like(ref)
    pred[2:6, 4:8, 4:8] = bid("vertebra_L1")
    pred[2, 4:8, 4:8] = bid("femur_left")  # not a spine label: ignored by the level vote
    pred[8:12, 4:8, 4:8] = bid("vertebra_L3")  # one level too low
    pred[8, 4:8, 4:8] = bid("vertebra_L2")  # minority
    pred[14:18, 4:8, 4:8] = bid("sacrum")  # three levels too low (L4, L5, sacrum)
    ct = ct_like(ref)
    score = evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet")
    got = {c.vertebra: (c.predicted, c.offset, c.exact, c.within_one) for c in score.levels}
    assert got == {
        "vertebra_L1": ("vertebra_L1", 0, True, True),
        "vertebra_L2": ("vertebra_L3", 1, False, True),
        "vertebra_L3": ("sacrum", 3, False, False),
        "vertebra_L4": (None, None, False, False),
    }


@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),  # LPS
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),  # RAS, as the 3 mm example CT
    (0, 0, -1, 1, 0, 0, 0, -1, 0),  # i -> P, j -> I, k -> R: left-right runs along numpy axis 0
])
def test_side_comes_from_direction_cosines(direction):
    d = np.array(direction, float).reshape(3, 3)
    shape = (16, 16, 16)
    ref = np.zeros(shape, np.uint8)
    # where is the patient's left? the numpy axis whose index axis points along LPS x
    axis_ijk = int(np.argmax(np.abs(d[0])))  # index axis (i, j, k) most aligned with x
    np_axis = 2 - axis_ijk
    left_low = d[0, axis_ijk] > 0  # larger index -> more left?
    left_idx, right_idx = (slice(11, 14), slice(2, 5)) if left_low else (slice(2, 5), slice(11, 14))

    def place(arr, idx, value):
        sl = [slice(6, 10)] * 3
        sl[np_axis] = idx
        arr[tuple(sl)] = value

    place(ref, left_idx, bid("hip_left"))
    place(ref, right_idx, bid("hip_right"))
    swapped = np.zeros_like(ref)
    place(swapped, left_idx, bid("hip_right"))
    place(swapped, right_idx, bid("hip_left"))
    ct = ct_like(ref, direction=direction)
    good = evaluate_case(ct, sneaky_ref(ref, ct), sneaky_ref(ref, ct), "sneakynet")
    bad = evaluate_case(ct, sneaky_ref(swapped, ct), sneaky_ref(ref, ct), "sneakynet")
    assert [s.correct for s in good.sides] == [True, True]
    assert all(s.correct for s in good.reference_sides)
    assert [s.correct for s in bad.sides] == [False, False]
    assert [s.correct for s in bad.predicted_sides] == [False, False]
    left = next(s for s in good.sides if s.bone == "hip_left")
    assert left.offset_mm == pytest.approx(9.0)  # block centre 12 vs body centre 7.5 voxels, 2 mm each


def test_left_out_bones_are_not_scored_anywhere():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:8, 4:10, 4:10] = bid("femur_left")
    ref[10:14, 4:8, 4:8] = bid("femur_right")
    pred = ref.copy()
    pred[2:8, 4:10, 4:10] = bid("femur_right")  # wrong label, but inside the left-out bone
    ct = ct_like(ref)
    score = evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet", exclude=["femur_left"])
    assert score.bone_dsc == {"femur_right": 1.0}
    assert score.group_dsc["femurs"] == 1.0 and score.any_bone_dsc == 1.0
    assert score.excluded == ["femur_left"] and [s.bone for s in score.sides] == ["femur_right"]
    full = evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet")
    assert full.bone_dsc["femur_left"] == 0.0 and full.bone_dsc["femur_right"] < 1.0
    with pytest.raises(RealCTInputError, match="femur_lft"):
        evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet", exclude=["femur_lft"])


def test_totalseg_reference_with_flipped_rows_is_resampled_physically():
    ct_labels = np.zeros((6, 10, 8), np.uint8)
    ct_labels[1:5, 1:4, 2:6] = bid("vertebra_T12")  # anterior rows (low j in LPS)
    ct_labels[1:5, 6:9, 2:4] = bid("sternum_manubrium")
    ct_labels[1:5, 6:9, 4:6] = bid("sternum_body")
    ct = ct_like(ct_labels, spacing=(1.0, 0.5, 2.0), origin=(-3.0, 40.0, 7.0))
    ts = np.zeros_like(ct_labels)
    ts[ct_labels == bid("vertebra_T12")] = 32  # TotalSegmentator vertebrae_T12
    ts[np.isin(ct_labels, [bid("sternum_manubrium"), bid("sternum_body")])] = 116  # one coarse 'sternum'
    # store it as example_seg_dicom.nii.gz does: rows reversed, y axis pointing anterior (LAS)
    flipped = image(ts[:, ::-1, :].copy(), direction=(1, 0, 0, 0, -1, 0, 0, 0, 1),
                    origin=(-3.0, 40.0 + 9 * 0.5, 7.0), spacing=(1.0, 0.5, 2.0))
    on_grid = reference_on_grid(flipped, ct, "totalseg")
    expected = ct_labels.copy()
    expected[expected == bid("sternum_manubrium")] = bid("sternum_body")
    np.testing.assert_array_equal(on_grid, expected)
    assert not np.array_equal(sitk.GetArrayFromImage(flipped), ts)  # raw arrays would be a-p flipped
    score = evaluate_case(ct, sneaky_ref(ct_labels, ct), flipped, "totalseg")
    assert score.bone_dsc == {"vertebra_T12": 1.0, "sternum_body": 1.0}  # manubrium merged into the coarse sternum
    far = image(ts, origin=(500.0, 0.0, 0.0), spacing=(1.0, 0.5, 2.0))
    with pytest.raises(RealCTInputError, match="field of view"):
        reference_on_grid(far, ct, "totalseg")
    with pytest.raises(RealCTInputError, match="outside"):
        reference_on_grid(image(np.full((2, 2, 2), 200, np.uint8)), ct, "totalseg")


def test_reference_free_checks_known_values():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[3:7, 3:7, 3:7] = bid("sacrum")  # 64 voxels at 1000 HU
    ct = ct_like(ref)
    pred = ref.copy()
    pred[3:7, 3:7, 3] = 0  # misses 16 dense voxels
    pred[1:3, 1:3, 1:5] = bid("sacrum")  # labels 16 soft-tissue voxels
    pred[0, 0, :8] = bid("sacrum")  # and 8 air voxels outside the body
    score = evaluate_case(ct, sneaky_ref(pred, ct), sneaky_ref(ref, ct), "sneakynet")
    assert score.checks["bone_like_share"] == pytest.approx(48 / 72)
    assert score.checks["dense_labelled_share"] == pytest.approx(48 / 64)
    assert score.checks["outside_body_share"] == pytest.approx(8 / 72)
    assert score.reference_checks["outside_body_share"] == 0.0
    assert score.reference_checks["bone_like_share"] == 1.0
    assert score.reference_checks["dense_labelled_share"] == 1.0


def test_cli_realct_eval(tmp_path, capsys):
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[3:8, 3:6, 3:6] = bid("hip_right")
    ct = ct_like(ref)
    for name, img in (("ct.nii.gz", ct), ("pred.nii.gz", sneaky_ref(ref, ct))):
        sitk.WriteImage(img, str(tmp_path / name))
    ts = sneaky_ref(np.where(ref > 0, 78, 0), ct)  # TotalSegmentator hip_right
    sitk.WriteImage(ts, str(tmp_path / "ref.nii.gz"))
    args = ["realct-eval", str(tmp_path / "ct.nii.gz"), str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz")]
    assert main(args + ["--json", str(tmp_path / "s.json")]) == 0
    assert "| group DSC: hips | 1.00 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())["bone_dsc"] == {"hip_right": 1.0}
    assert main(args + ["--exclude", "hip_rite"]) == 2
    assert "hip_rite" in capsys.readouterr().err
    assert main(args[:-1] + [str(tmp_path / "missing.nii.gz")]) == 2
    assert "missing.nii.gz" in capsys.readouterr().err


def _bench():
    """The benchmark script as a module (it lives outside the package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_realct
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench_realct


@pytest.mark.skipif(not (DATA / "totalseg_example").is_dir(), reason="shared/data/totalseg_example not available")
def test_benchmark_end_to_end_on_the_dicom_slab(tmp_path):
    bench_realct = _bench()
    cases = [c for c in bench_realct.load_cases(bench_realct.DEFAULT_CASES) if c["ct"].endswith("example_ct_dicom")]
    table, records = bench_realct.run_benchmark(cases, DATA, fast=True)
    assert "| bones scored | 18 |" in table and "phantom-trained, not for clinical use" in records[0]["model"]
    score = records[0]["score"]
    assert score["reference_checks"]["bone_like_share"] > 0.5  # the reference on the right voxels (not a-p flipped)
    assert all(s["correct"] for s in score["reference_sides"]) and len(score["reference_sides"]) == 16
    bench_realct.write_records(records, tmp_path / "r.jsonl")
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])["case"] == cases[0]["name"]


def test_body_keeps_an_arm_apart_from_the_trunk_but_not_the_table():
    from sneakynet.realct.checks import body_parts, midline_x

    hu = np.full((12, 40, 60), -1000.0, np.float32)
    hu[:, 5:30, 10:40] = 0.0  # trunk
    hu[:, 10:20, 44:52] = 0.0  # an arm, apart from the trunk (patient left: high i in LPS)
    hu[:, 34:35, 5:55] = 200.0  # a thin table shell below the patient
    ct = image(hu, spacing=(1.0, 1.0, 1.0))
    body, torso = body_parts(ct)
    assert body[:, 15, 48].all() and not body[:, 34, :].any() and not torso[:, 15, 48].any()
    assert midline_x(ct, torso) == pytest.approx(24.5)  # the trunk's centre, not pulled by the arm


def test_case_figure_writes_a_png(tmp_path):
    pytest.importorskip("vtkmodules.vtkRenderingOpenGL2")
    from matplotlib.image import imread

    from sneakynet.realct.figure import case_figure, slice_positions, top_labels

    ref = np.zeros((16, 24, 24), np.uint8)
    ref[4:12, 14:20, 10:14] = bid("vertebra_L2")
    ref[6:10, 8:12, 2:6] = bid("hip_right")
    pred = np.where(ref == bid("hip_right"), bid("hip_left"), ref).astype(np.uint8)
    ct = ct_like(ref, direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert slice_positions(ref) == (8, 15, 12)  # axial/coronal through all bones (j 14.75), sagittal: spine
    assert top_labels(pred, 1) == "vertebra_L2 75 %"  # 192 of 256 labelled voxels
    png = case_figure(ct, pred, ref, [bid("hip_right")], tmp_path / "case.png", "tiny case")
    image = imread(str(png))
    assert image.shape[0] > 500 and image.shape[1] > 500 and image[..., :3].std() > 0.05


def test_benchmark_names_any_bundle_by_folder_and_hash():
    from types import SimpleNamespace

    bench_realct = _bench()
    info = SimpleNamespace(demo=False, path=Path("runs") / "v2_bundle", sha256="0123456789abcdef")
    assert bench_realct.predictor_name(SimpleNamespace(info=info)) == "v2_bundle (sha256 0123456789ab)"


def test_benchmark_selects_post_processing_steps_by_name():
    bench_realct = _bench()
    only = bench_realct.postprocess_options(["sides", "ribs"])
    assert (only.drop_below_hu, only.fragments, only.fill_cavities) == (None, False, False)
    assert (only.sides, only.vertebra_order, only.rib_numbers) == (True, None, True)
    assert bench_realct.postprocess_options(["vertebra-pieces"]).vertebra_order == "pieces"
    assert bench_realct.postprocess_options(None) is None
    with pytest.raises(ValueError, match="unknown post-processing step.*'spine'"):
        bench_realct.postprocess_options(["spine"])


@pytest.mark.skipif(not (DATA / "totalseg_example").is_dir(), reason="shared/data/totalseg_example not available")
def test_benchmark_scores_each_lever_on_one_prediction():
    bench_realct = _bench()
    cases = [c for c in bench_realct.load_cases(bench_realct.DEFAULT_CASES) if c["ct"].endswith("example_ct_dicom")]
    table, records = bench_realct.run_levers(cases, DATA, ["none", "sides,vertebrae,ribs"], fast=True)
    assert [r["steps"] for r in records] == ["none", "sides,vertebrae,ribs"]
    assert "| measure | none | sides,vertebrae,ribs |" in table and "| bones scored | 18 | 18 |" in table
