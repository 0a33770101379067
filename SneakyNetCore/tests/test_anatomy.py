"""Anatomy levers of the post-processing on hand-made label maps: vertebra order, rib numbers, sides."""
from __future__ import annotations

import numpy as np
import pytest

from sneakynet.anatomy import (PatientFrame, fix_sides, monotone_levels, number_ribs, order_vertebra_pieces,
                              order_vertebrae, si_axis)
from sneakynet.labels import load_label_table
from sneakynet.postprocess import PRESETS, PostprocessOptions, postprocess, preset_options

T = load_label_table()
ID = T.by_name
LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FEET_FIRST = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # array z runs head -> feet
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # array x runs patient left -> right


def test_monotone_levels_changes_the_least_weight():
    assert monotone_levels([0, 1, 3, 2, 4], [5, 5, 1, 5, 5], 6) == [0, 1, 2, 2, 4]
    assert monotone_levels([2, 2, 1], [1, 1, 9], 4) == [1, 1, 1]
    out = monotone_levels([3, 1, 4, 1, 5, 9, 2, 6], [1] * 8, 10)
    assert all(a <= b for a, b in zip(out, out[1:]))


def _column(names, direction=LPS, sizes=None):
    """Vertebra boxes stacked head (first name) to feet, 2 voxels apart; array z follows ``direction``."""
    labels = np.zeros((6 * len(names) + 2, 12, 12), np.uint8)
    for i, name in enumerate(names):
        z = labels.shape[0] - 6 - 6 * i if direction[8] > 0 else 2 + 6 * i  # LPS: high z = head
        width = 8 if sizes is None else sizes[i]
        labels[z:z + 4, 2:2 + width, 2:10] = ID(name).id
    return labels


ORDERS = [order_vertebrae, order_vertebra_pieces]


def test_body_axis_from_the_direction():
    assert si_axis(PatientFrame((3.0, 1.0, 1.0), LPS)) == (0, True)
    assert si_axis(PatientFrame((3.0, 1.0, 1.0), FEET_FIRST)) == (0, False)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)  # array y (index j) runs feet -> head
    assert si_axis(PatientFrame((1.0, 1.0, 1.0), coronal)) == (1, True)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("direction", [LPS, FEET_FIRST])
def test_vertebrae_run_in_order_from_head_to_feet(direction, order):
    names = ["vertebra_T12", "vertebra_L1", "vertebra_T11", "vertebra_L2", "vertebra_L3"]
    labels = _column(names, direction, sizes=[8, 8, 2, 8, 8])  # a small out-of-order piece below L1
    order(labels, PatientFrame((3.0, 1.0, 1.0), direction))
    expected = _column(names, direction, sizes=[8, 8, 2, 8, 8])
    expected[expected == ID("vertebra_T11").id] = 0
    piece = (labels > 0) & (expected == 0)
    assert np.unique(labels[piece]).tolist()[0] in (ID("vertebra_L1").id, ID("vertebra_L2").id)
    np.testing.assert_array_equal(labels[expected > 0], expected[expected > 0])


@pytest.mark.parametrize("order", ORDERS)
def test_a_level_used_twice_is_used_once(order):
    names = ["vertebra_L1", "vertebra_L2", "vertebra_L1", "vertebra_L3", "vertebra_L4"]
    labels = _column(names)
    order(labels, PatientFrame((3.0, 1.0, 1.0)))
    per_box = [int(np.bincount(labels[z:z + 4].ravel())[1:].argmax()) + 1
               for z in range(labels.shape[0] - 6, 0, -6)]  # head to feet
    assert per_box == sorted(per_box), "levels run monotone"
    runs = [lvl for i, lvl in enumerate(per_box) if i == 0 or lvl != per_box[i - 1]]
    assert len(runs) == len(set(runs)), "no level in two places"
    assert (labels > 0).sum() == (_column(names) > 0).sum()


def test_ribs_take_the_number_of_the_vertebra_they_touch():
    labels = _column(["vertebra_T5", "vertebra_T6", "vertebra_T7"])
    labels = np.pad(labels, ((0, 0), (0, 0), (12, 12)))  # room for ribs on both sides
    t6 = np.argwhere(labels == ID("vertebra_T6").id)
    z0, z1 = t6[:, 0].min(), t6[:, 0].max() + 1
    x0, x1 = t6[:, 2].min(), t6[:, 2].max() + 1
    labels[z0 + 1:z1 - 1, 4:8, x1:x1 + 10] = ID("rib_left_4").id  # touches T6: it is rib 6
    labels[z0 + 1:z1 - 1, 4:8, x0 - 12:x0 - 2] = ID("rib_right_9").id  # 2 voxels off T6 (within 4 mm)
    labels[2:4, 4:8, 0:4] = ID("rib_left_11").id  # touches no vertebra: kept
    number_ribs(labels, PatientFrame((3.0, 1.0, 1.0)))
    assert (labels == ID("rib_left_6").id).sum() == (z1 - z0 - 2) * 4 * 10
    assert (labels == ID("rib_right_6").id).sum() == (z1 - z0 - 2) * 4 * 10
    assert (labels == ID("rib_left_11").id).sum() == 2 * 4 * 4
    assert not (labels == ID("rib_left_4").id).any()


def _body_with(bone_boxes, direction):
    """A soft-tissue trunk centred in x, air around; boxes given in patient terms (mm left of midline)."""
    hu = np.full((10, 40, 80), -1000.0)
    hu[:, 5:35, 10:70] = 40.0  # trunk centre at x index 39.5
    labels = np.zeros(hu.shape, np.uint8)
    sign = 1 if direction[0] > 0 else -1  # LPS: + x index = patient left
    for name, left_mm in bone_boxes:
        xc = int(round(39.5 + sign * left_mm))
        labels[3:7, 15:25, xc - 2:xc + 2] = ID(name).id
        hu[labels == ID(name).id] = 700.0
    return labels, hu


@pytest.mark.parametrize("direction", [LPS, RAS])
def test_sided_pieces_clearly_across_the_midline_swap_sides(direction):
    boxes = [("humerus_left", -30.0), ("humerus_right", -25.0), ("rib_left_7", -5.0), ("femur_left", 20.0)]
    labels, hu = _body_with(boxes, direction)
    before = labels.copy()
    fix_sides(labels, hu, PatientFrame((1.0, 1.0, 1.0), direction), margin_mm=15.0)
    assert (labels[before == ID("humerus_left").id] == ID("humerus_right").id).all(), "30 mm right: swapped"
    assert (labels[before == ID("humerus_right").id] == ID("humerus_right").id).all()
    assert (labels[before == ID("rib_left_7").id] == ID("rib_left_7").id).all(), "within the margin: kept"
    assert (labels[before == ID("femur_left").id] == ID("femur_left").id).all()


def test_levers_are_separate_options_and_off_by_default():
    labels, hu = _body_with([("humerus_left", -30.0)], LPS)
    off = postprocess(labels, hu, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(off, labels)
    on = postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(sides=True))
    assert (on[labels > 0] == ID("humerus_right").id).all()
    ras = postprocess(labels[:, :, ::-1], hu[:, :, ::-1], (1.0, 1.0, 1.0), PostprocessOptions(sides=True), RAS)
    assert (ras[labels[:, :, ::-1] > 0] == ID("humerus_right").id).all()
    for mode in ("slices", "pieces"):
        only_order = postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(vertebra_order=mode, rib_numbers=True))
        np.testing.assert_array_equal(only_order, labels)
    with pytest.raises(ValueError, match="vertebra_order"):
        postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(vertebra_order="levels"))


def test_slices_overrule_a_stray_piece_within_a_vertebra():
    """A stray piece with another level inside a vertebra's slices takes that vertebra's level (the
    piece-wise variant keeps it when it is in order)."""
    names = ["vertebra_L1", "vertebra_L2", "vertebra_L3"]
    labels = _column(names)
    z = np.argwhere(labels == ID("vertebra_L2").id)[:, 0].min()
    labels[z:z + 4, 2:4, 2:4] = ID("vertebra_L1").id  # the model gave a corner of L2 the level above
    by_slice = labels.copy()
    order_vertebrae(by_slice, PatientFrame((3.0, 1.0, 1.0)))
    np.testing.assert_array_equal(by_slice, _column(names))


def test_presets_anatomy_moves_a_sided_bone_none_changes_nothing_full_also_cleans():
    """A left humerus 30 mm right of the midline and a labelled air voxel: ``anatomy`` relabels the
    humerus only, ``none`` returns the labels as they are, ``full`` also drops the air."""
    labels, hu = _body_with([("humerus_left", -30.0), ("femur_right", -25.0)], LPS)
    labels[0, 0, 0] = ID("mandible").id  # in the air around the trunk
    np.testing.assert_array_equal(postprocess(labels, hu, (1.0, 1.0, 1.0), PRESETS["none"]), labels)
    assert preset_options("none") is None, "none: a predictor skips post-processing altogether"
    anatomy = postprocess(labels, hu, (1.0, 1.0, 1.0), preset_options("anatomy"))
    assert (anatomy[labels == ID("humerus_left").id] == ID("humerus_right").id).all()
    np.testing.assert_array_equal(anatomy[labels != ID("humerus_left").id], labels[labels != ID("humerus_left").id])
    full = postprocess(labels, hu, (1.0, 1.0, 1.0), preset_options("full"))
    assert (full[labels == ID("humerus_left").id] == ID("humerus_right").id).all() and full[0, 0, 0] == 0
    chosen = preset_options("anatomy")
    assert (chosen.sides, chosen.vertebra_order, chosen.rib_numbers) == (True, "pieces", False)
    assert (chosen.drop_below_hu, chosen.fragments, chosen.fill_cavities) == (None, False, False)
    with pytest.raises(ValueError, match="anatomy, full"):
        preset_options("clean")
