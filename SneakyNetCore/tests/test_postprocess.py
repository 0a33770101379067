"""Post-processing of predicted labels: marrow filled, bones kept whole, stray pieces merged or dropped."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sneakynet.postprocess import PostprocessOptions, postprocess

FEMUR, PELVIS = 9, 40


def _tube(shape=(30, 40, 40), radius=10.0, wall=2.0, closed=True):
    """A bone as real CT shows it: a dense cortical shell (1200 HU) around marrow (60 HU), in fat."""
    z, y, x = np.indices(shape)
    r = np.hypot(y - shape[1] / 2, x - shape[2] / 2)
    inside = r < radius
    if closed:
        inside &= (z > 2) & (z < shape[0] - 3)
    ring = inside & ~ndimage.binary_erosion(inside, structure=np.ones((1, 3, 3), bool), iterations=int(wall))
    cortex = ring | (inside & ~ndimage.binary_erosion(inside, iterations=int(wall))) if closed else ring
    hu = np.full(shape, -80, np.int16)
    hu[inside] = 60
    hu[cortex] = 1200
    return hu, inside, cortex


def test_a_bone_with_a_marrow_cavity_becomes_one_filled_piece():
    hu, inside, cortex = _tube(closed=True)
    labels = np.zeros(hu.shape, np.uint8)
    labels[cortex] = FEMUR  # the network found the bright shell only
    out = postprocess(labels, hu, (1.0, 1.0, 1.0))
    assert (out[inside] == FEMUR).all(), "marrow inside the shell is part of the bone"
    assert not out[~inside].any()
    pieces, count = ndimage.label(out == FEMUR, structure=np.ones((3, 3, 3)))
    assert count == 1


def test_an_open_tube_is_filled_slice_by_slice():
    """A long bone cut by the field of view has no enclosed cavity in 3D; its axial holes are filled."""
    hu, inside, cortex = _tube(closed=False)
    labels = np.zeros(hu.shape, np.uint8)
    labels[cortex] = FEMUR
    assert not (ndimage.binary_fill_holes(cortex) & ~cortex).any(), "the 3D fill alone would not help"
    out = postprocess(labels, hu, (1.0, 1.0, 1.0))
    assert (out[inside] == FEMUR).all()


def test_holes_larger_than_marrow_and_dark_cavities_stay_empty():
    hu, inside, cortex = _tube(closed=False, radius=18.0)
    labels = np.zeros(hu.shape, np.uint8)
    labels[cortex] = PELVIS
    hole_mm2 = (inside & ~cortex)[5].sum()
    out = postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(max_hole_mm2=hole_mm2 - 1))
    assert (out == PELVIS).sum() == cortex.sum(), "a foramen-sized hole is not marrow"
    hu_air = hu.copy()
    hu_air[inside & ~cortex] = -900
    out = postprocess(labels, hu_air, (1.0, 1.0, 1.0))
    assert (out == PELVIS).sum() == cortex.sum(), "an air-filled cavity is not marrow"


def test_a_piece_touching_another_bone_joins_it():
    labels = np.zeros((20, 30, 30), np.uint8)
    hu = np.full(labels.shape, 700, np.int16)
    labels[2:18, 2:12, 2:12] = FEMUR  # the femur proper
    labels[2:18, 15:28, 2:28] = PELVIS
    labels[5:8, 12:15, 20:23] = FEMUR  # a stray "femur" piece glued to the pelvis
    out = postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(fill_cavities=False))
    assert (out[5:8, 12:15, 20:23] == PELVIS).all()
    assert (out[2:18, 2:12, 2:12] == FEMUR).all()


def test_isolated_pieces_small_are_dropped_large_are_kept():
    labels = np.zeros((20, 40, 40), np.uint8)
    hu = np.full(labels.shape, 700, np.int16)
    labels[2:18, 2:12, 2:12] = FEMUR  # 1600 voxels
    labels[2:4, 30:32, 30:32] = FEMUR  # 8 voxels, far away: noise
    labels[2:18, 25:31, 2:8] = FEMUR  # 576 voxels: a second real piece (e.g. split by partial volume)
    out = postprocess(labels, hu, (1.0, 1.0, 1.0), PostprocessOptions(fill_cavities=False))
    assert not out[2:4, 30:32, 30:32].any()
    assert (out[2:18, 25:31, 2:8] == FEMUR).all()
    assert (out[2:18, 2:12, 2:12] == FEMUR).all()


def test_labelled_air_is_dropped_and_input_untouched():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:8, 2:8, 2:8] = FEMUR
    hu = np.full(labels.shape, 400, np.int16)
    hu[2:8, 2:8, 7] = -950
    before = labels.copy()
    out = postprocess(labels, hu, (1.0, 1.0, 1.0))
    assert not out[:, :, 7].any()
    assert (out[2:8, 2:8, 2:7] == FEMUR).all()
    np.testing.assert_array_equal(labels, before)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        postprocess(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5)), (1.0, 1.0, 1.0))
