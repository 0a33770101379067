"""Metrics of the paper on hand-computed cases: DSC, summary quantiles, confusion, HD95."""
import math
import time

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial.distance import cdist

from sneakynet import metrics as M
from sneakynet.labels import load_label_table


def _maps(ref_list, pred_list, shape=(2, 2, 2)):
    return np.array(pred_list, dtype=np.uint8).reshape(shape), np.array(ref_list, dtype=np.uint8).reshape(shape)


def test_dice_known_values_on_tiny_arrays():
    # ref:  class 1 x4, class 2 x2; pred: class 1 on two of them, class 2 on one, class 3 hallucinated x2
    pred, ref = _maps([1, 1, 1, 1, 0, 2, 2, 0], [1, 1, 0, 0, 0, 2, 3, 3])
    dsc = M.dice_per_class(pred, ref)
    assert dsc.shape == (125,)
    assert dsc[0] == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))  # TP 2, FP 0, FN 2 -> 0.667
    assert dsc[1] == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))  # TP 1, FP 0, FN 1 -> 0.667
    assert dsc[2] == 0.0  # predicted only: evaluated, DSC 0
    assert np.isnan(dsc[3:]).all()  # absent in both: not evaluated, not zero


def test_identical_maps_give_dice_one_and_empty_maps_nothing_evaluated():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 126, size=(6, 7, 8)).astype(np.uint8)
    dsc = M.dice_per_class(lab, lab)
    present = np.unique(lab[lab > 0])
    assert np.allclose(dsc[present - 1], 1.0)
    assert np.isnan(np.delete(dsc, present - 1)).all()
    assert np.isnan(M.dice_per_class(np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3, 3), np.uint8))).all()


def test_confusion_counts_on_constructed_example():
    pred, ref = _maps([1, 1, 1, 1, 0, 2, 2, 0], [1, 1, 0, 0, 0, 2, 3, 3])
    cm = M.confusion_matrix(pred, ref)
    assert cm.shape == (126, 126) and cm.sum() == 8
    expected = {(1, 1): 2, (1, 0): 2, (0, 0): 1, (2, 2): 1, (2, 3): 1, (0, 3): 1}  # (reference, predicted)
    for (r, p), n in expected.items():
        assert cm[r, p] == n
    assert np.count_nonzero(cm) == len(expected)


def test_confusion_matches_brute_force_and_is_chunk_independent(monkeypatch):
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 126, size=(9, 10, 11)).astype(np.uint8)
    pred = np.where(rng.random(ref.shape) < 0.7, ref, rng.integers(0, 126, ref.shape)).astype(np.uint8)
    brute = np.zeros((126, 126), np.int64)
    for r, p in zip(ref.ravel(), pred.ravel()):
        brute[r, p] += 1
    assert np.array_equal(M.confusion_matrix(pred, ref), brute)
    monkeypatch.setattr(M, "_CHUNK", 37)  # many partial chunks
    assert np.array_equal(M.confusion_matrix(pred, ref), brute)
    # int32 / int64 input with valid values gives the same result
    assert np.array_equal(M.confusion_matrix(pred.astype(np.int32), ref.astype(np.int64)), brute)


def test_summarize_quantiles_exclude_zero_and_unevaluated_classes():
    values = np.array([0.9, 0.0, np.nan, 0.5, 0.8, 0.0, 0.95, np.nan, 0.7, 0.6, 0.85, 0.3])
    s = M.summarize(values)
    nonzero = np.array([0.9, 0.5, 0.8, 0.95, 0.7, 0.6, 0.85, 0.3])
    q16, med, q84 = np.quantile(nonzero, [0.16, 0.5, 0.84])
    assert s["median"] == pytest.approx(med) == pytest.approx(0.75)
    assert s["plus"] == pytest.approx(q84 - med) and s["plus"] > 0
    assert s["minus"] == pytest.approx(med - q16) and s["minus"] > 0
    assert s["n_evaluated"] == 10 and s["n_nonzero"] == 8
    assert s["nonzero_pct"] == pytest.approx(80.0)
    # including the zeros would have pulled the median down: they are really excluded
    assert np.median(values[np.isfinite(values)]) < s["median"]


def test_summarize_degenerate_vectors():
    s = M.summarize([0.0, 0.0, np.nan])
    assert math.isnan(s["median"]) and s["nonzero_pct"] == 0.0 and s["n_evaluated"] == 2
    s = M.summarize([np.nan, np.nan])
    assert s["n_evaluated"] == 0 and math.isnan(s["nonzero_pct"])
    assert M.summarize([0.5])["median"] == 0.5


def test_aggregate_cases_is_mean_over_cases_where_evaluated():
    per_case = np.array([[0.8, np.nan, 0.0, np.nan], [0.6, 0.9, np.nan, np.nan]])
    agg = M.aggregate_cases(per_case)
    assert agg[0] == pytest.approx(0.7) and agg[1] == pytest.approx(0.9) and agg[2] == 0.0
    assert np.isnan(agg[3])


def test_format_table_row_matches_paper_layout():
    s = {"median": 0.6412, "plus": 0.1875, "minus": 0.3449, "nonzero_pct": 94.51}
    assert M.format_table_row("A 3D U-Net", s) == "| A 3D U-Net | 0.64 | +0.19 | -0.34 | 94.5% |"
    empty = M.summarize([0.0])
    assert M.format_table_row("x", empty) == "| x | n/a | n/a | n/a | 0.0% |"


def test_left_right_confusion_counts_both_directions_only_between_twins():
    table = load_label_table()
    hl, hr = table.by_name("humerus_left").id, table.by_name("humerus_right").id
    fr = table.by_name("femur_right").id
    cm = np.zeros((126, 126), np.int64)
    cm[hl, hr] = 5  # left humerus predicted as right humerus
    cm[hr, hl] = 3  # and vice versa
    cm[hl, fr] = 100  # humerus -> femur: a confusion, but not a left/right one
    cm[hl, hl] = 1000
    assert M.left_right_confusion(cm, table.mirror_lut()) == 8
    sub = M.sub_confusion(cm, [hl, hr, fr])
    assert sub.tolist() == [[1000, 5, 100], [3, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[[0, 126]]], np.uint8), "126"),
        (np.array([[[0, -1]]], np.int16), "-1"),
        (np.array([[[0, 300]]], np.int32), "300"),
        (np.array([[[0, 1.5]]], np.float32), "non-integer"),
    ],
)
def test_labels_outside_range_are_rejected(bad, match):
    ok = np.zeros(bad.shape, np.uint8)
    with pytest.raises(M.LabelRangeError, match=match):
        M.confusion_matrix(bad, ok)
    with pytest.raises(M.LabelRangeError, match="reference"):
        M.confusion_matrix(ok, bad)


def test_integral_float_labels_are_accepted_and_shapes_must_match():
    lab = np.array([[[0.0, 3.0, 125.0]]], np.float32)
    assert M.dice_per_class(lab, lab.astype(np.uint8))[124] == 1.0
    with pytest.raises(ValueError, match="shape"):
        M.confusion_matrix(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8))


# ----------------------------------------------------------------------------- HD95


def test_surface_mask_equals_per_class_erosion():
    rng = np.random.default_rng(2)
    lab = ndi.zoom(rng.integers(0, 5, (4, 5, 6)), 3, order=0).astype(np.uint8)
    surf = M.surface_mask(lab)
    six = ndi.generate_binary_structure(3, 1)
    for c in range(1, 5):
        m = lab == c
        assert np.array_equal(surf & m, m & ~ndi.binary_erosion(m, six, border_value=0))


@pytest.mark.parametrize("axis, offset", [(0, 3), (1, 2), (2, 4)])
def test_hd95_of_offset_cubes_equals_offset_in_mm(axis, offset):
    spacing = (2.5, 0.7, 1.2)  # anisotropic, mm per numpy axis
    ref = np.zeros((40, 48, 44), np.uint8)
    ref[8:28, 10:34, 9:31] = 7
    pred = np.roll(ref, offset, axis=axis)
    hd = M.hd95_per_class(pred, ref, spacing)
    assert hd[6] == pytest.approx(offset * spacing[axis])
    assert np.isnan(np.delete(hd, 6)).all()
    # the same offset along another axis gives a different distance: spacing is honoured per axis
    assert M.hd95_per_class(np.roll(ref, offset, axis=(axis + 1) % 3), ref, spacing)[6] == pytest.approx(
        offset * spacing[(axis + 1) % 3])


def _brute_hd95(pred_mask, ref_mask, spacing):
    six = ndi.generate_binary_structure(3, 1)
    sa = np.argwhere(pred_mask & ~ndi.binary_erosion(pred_mask, six)) * spacing
    sb = np.argwhere(ref_mask & ~ndi.binary_erosion(ref_mask, six)) * spacing
    d = cdist(sa, sb)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def test_hd95_matches_brute_force_on_random_shapes():
    rng = np.random.default_rng(3)
    spacing = np.array([1.7, 0.6, 0.9])
    ref = ndi.zoom(rng.integers(0, 4, (4, 4, 4)), (4, 5, 4), order=0).astype(np.uint8)
    pred = ndi.zoom(rng.integers(0, 4, (4, 4, 4)), (4, 5, 4), order=0).astype(np.uint8)
    pred[0, 0, 0] = 9  # only in the prediction: HD95 undefined
    hd = M.hd95_per_class(pred, ref, spacing)
    for c in (1, 2, 3):
        assert hd[c - 1] == pytest.approx(_brute_hd95(pred == c, ref == c, spacing))
    assert np.isnan(hd[8])
    assert np.allclose(M.hd95_per_class(ref, ref, spacing)[:3], 0.0)


def test_hd95_rejects_bad_spacing():
    lab = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="spacing"):
        M.hd95_per_class(lab, lab, (1.0, 0.0, 1.0))


def test_all_125_classes_on_case_size_volume_are_fast():
    # 128 x 96 x 160 voxels cut into 5 x 5 x 5 blocks = 125 classes; every block boundary is a surface,
    # which is much more surface than real bones have. Prediction shifted by 2 voxels plus scattered noise.
    shape = (128, 96, 160)
    idx = [np.minimum(np.arange(n) * 5 // n, 4) for n in shape]
    ref = (idx[0][:, None, None] * 25 + idx[1][None, :, None] * 5 + idx[2][None, None, :] + 1).astype(np.uint8)
    pred = np.roll(ref, 2, axis=0)
    rng = np.random.default_rng(4)
    pred[rng.random(shape) < 5e-4] = 17
    t0 = time.perf_counter()
    dsc = M.dice_per_class(pred, ref)
    hd = M.hd95_per_class(pred, ref, (1.5, 0.8, 0.8))
    elapsed = time.perf_counter() - t0
    assert np.isfinite(dsc).all() and np.isfinite(hd).all()
    assert elapsed < 8.0, f"DSC + HD95 for 125 classes took {elapsed:.1f} s"
