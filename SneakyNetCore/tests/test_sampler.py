"""Context pyramid exactness, label pooling, centre selection, augmentation, determinism, resume."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet.intensity import CTNormalization, normalize_ct
from sneakynet.labels import load_label_table
from sneakynet.patch_loader import PatchLoader
from sneakynet.pyramid import ContextPyramid, LabelPyramid, pyramid_geometry
from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions
from sneakynet.training_cases import TrainingCase, patient_axes

TABLE = load_label_table()
HUMERUS_L, HUMERUS_R = TABLE.by_name("humerus_left").id, TABLE.by_name("humerus_right").id
RIB_L1, RIB_R1 = TABLE.by_name("rib_left_1").id, TABLE.by_name("rib_right_1").id
PISIFORM_L = TABLE.by_name("pisiform_left").id


def _avg_pool_reference(padded: np.ndarray, start: list[int], size: int, f: int) -> np.ndarray:
    reg = padded[start[0]: start[0] + f * size, start[1]: start[1] + f * size, start[2]: start[2] + f * size]
    assert reg.shape == (f * size,) * 3, "context region must lie inside the padded volume"
    return reg.reshape(size, f, size, f, size, f).mean(axis=(1, 3, 5))


# shapes: odd sizes, a size not reaching S, and K = 0..3
CASES = [((37, 50, 29), 16, 2), ((70, 45, 90), 32, 1), ((10, 20, 33), 16, 3), ((21, 16, 17), 16, 0),
         ((40, 36, 44), 16, 1)]


@pytest.mark.parametrize("shape, s, k", CASES)
def test_context_patches_equal_average_pooling(shape, s, k):
    rng = np.random.default_rng(1)
    vol = rng.standard_normal(shape).astype(np.float32)
    pyr = ContextPyramid(vol, s, k)
    g = pyr.geometry
    for lvl, arr in enumerate(pyr.levels):  # level k reaches P_k beyond the target extent per side
        assert arr.shape == tuple((t + 2 * g.level_pad(lvl)) // 2 ** lvl for t in g.target_shape)
    big = (2 ** k - 1) * s // 2  # the widest context's pad
    padded = np.pad(vol.astype(np.float64), [(big, big + t - n) for t, n in zip(g.target_shape, shape)], mode="edge")
    # border origins (first and last voxel rows on every axis), mixed, and random ones
    origins = [(0, 0, 0), g.max_origin, (0, g.max_origin[1], 0), (g.max_origin[0], 0, g.max_origin[2])]
    origins += [tuple(int(rng.choice(g.origins_along(a))) for a in range(3)) for _ in range(4)]
    for o in origins:
        patches = pyr.cut(o)
        assert len(patches) == k + 1 and all(p.shape == (s, s, s) and p.dtype == np.float32 for p in patches)
        for lvl, patch in enumerate(patches):
            f = 2 ** lvl
            start = [v + big - (f - 1) * s // 2 for v in o]  # same centre as the target
            ref = _avg_pool_reference(padded, start, s, f)
            assert np.abs(patch - ref).max() < 1e-5, (o, lvl)
        # the target covers voxels origin .. origin + S
        inside = tuple(slice(v, min(v + s, n)) for v, n in zip(o, shape))
        sub = tuple(slice(0, sl.stop - sl.start) for sl in inside)
        np.testing.assert_array_equal(patches[0][sub], vol[inside])


def test_border_voxels_are_reachable_and_centred():
    g = pyramid_geometry((37, 50, 29), 16, 2)
    assert g.max_origin == (24, 36, 16) and all(m % 4 == 0 for m in g.max_origin)
    for centre in [(0, 0, 0), (36, 49, 28), (18, 25, 14)]:
        o = g.origin_for_centre(centre)
        g.check_origin(o)
        assert all(v <= c < v + 16 for v, c in zip(o, centre))
    assert g.origin_for_centre((18, 25, 14)) == (8, 16, 4)  # floor((c - 8) / 4) * 4
    with pytest.raises(ValueError, match="not a multiple of 2\\^K = 4"):
        g.check_origin((2, 0, 0))
    with pytest.raises(ValueError, match="outside 0..36"):
        g.check_origin((0, 40, 0))


def test_context_labels_use_block_centre_rule():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 126, (30, 41, 35)).astype(np.uint8)
    s, k = 16, 2
    pyr = LabelPyramid(labels, s, k)
    g = pyr.geometry
    big = (2 ** k - 1) * s // 2
    padded = np.pad(labels, [(big, big + t - n) for t, n in zip(g.target_shape, labels.shape)])  # background
    for o in [(0, 0, 0), g.max_origin, (8, 20, 4)]:
        for lvl, patch in enumerate(pyr.cut(o)):
            f = 2 ** lvl
            start = [v + big - (f - 1) * s // 2 for v in o]
            ref = padded[tuple(slice(b + f // 2, b + f * s, f) for b in start)]
            np.testing.assert_array_equal(patch, ref)
    # far context reaches into the zero pad: background there, not extruded bone
    assert (pyr.cut((0, 0, 0))[2][0] == 0).all()


def test_normalize_ct():
    hu = np.array([-3000, -1000, 500, 2000, 4000], dtype=np.int32)
    out = normalize_ct(hu)
    np.testing.assert_allclose(out, [-1, -1, 0, 1, 1])
    assert out.dtype == np.float32
    f = np.array([100.0], dtype=np.float32)
    normalize_ct(f)
    assert f[0] == 100.0  # input untouched
    p = CTNormalization(clip_min=-200, clip_max=800, center=300, scale=500)
    assert CTNormalization.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="clip_min"):
        CTNormalization(clip_min=10, clip_max=0)


def test_patient_axes_from_direction():
    assert patient_axes((1, 0, 0, 0, 1, 0, 0, 0, 1)) == (2, 0)  # LPS: x = array axis 2, z = axis 0
    assert patient_axes((-1, 0, 0, 0, -1, 0, 0, 0, 1)) == (2, 0)  # RAS index order
    # index i runs A-P, j runs L-R, k runs S-I: L-R is array axis 1
    assert patient_axes((0, 1, 0, 1, 0, 0, 0, 0, -1)) == (1, 0)
    # coronal-like stack: k runs A-P, j runs S-I
    assert patient_axes((1, 0, 0, 0, 0, 1, 0, 1, 0)) == (2, 1)


def _case(case_id="c0", shape=(40, 44, 48), direction=None, seed=0) -> TrainingCase:
    """Left humerus at high x (patient left in LPS), right humerus at low x, a tiny pisiform."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(0, 20, shape).astype(np.int16)
    lab = np.zeros(shape, np.uint8)
    lab[5:30, 10:20, 32:42] = HUMERUS_L
    lab[5:30, 10:20, 6:16] = HUMERUS_R
    lab[20:22, 30:32, 24:26] = PISIFORM_L  # 8 voxels
    lab[35:37, 2:40, 30:34] = RIB_L1
    hu[lab > 0] = 800
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((2.0, 2.0, 2.0))
    if direction is not None:
        ct.SetDirection(direction)
    labels = sitk.GetImageFromArray(lab)
    labels.CopyInformation(ct)
    return TrainingCase.from_images(case_id, ct, labels)


@pytest.fixture(scope="module")
def cases():
    return [_case("c0"), _case("c1", shape=(36, 40, 52), seed=1)]


def test_sample_format_and_consistency_with_pyramids(cases):
    opts = SamplerOptions(patch_size=16, num_context=2, augment=AugmentOptions.none())
    ds = PatchDataset(cases, opts)
    x = ds[5]
    assert len(x["image"]) == len(x["labels"]) == 3
    assert all(t.shape == (1, 16, 16, 16) and t.dtype == torch.float32 for t in x["image"])
    assert all(t.shape == (16, 16, 16) and t.dtype == torch.int64 for t in x["labels"])
    prepared = next(c for c in ds.cases if c.case_id == x["case"])
    origin = tuple(x["origin"].tolist())
    for got, ref in zip(x["image"], prepared.image.cut(origin)):
        np.testing.assert_array_equal(got[0].numpy(), ref)
    for got, ref in zip(x["labels"], prepared.labels.cut(origin)):
        np.testing.assert_array_equal(got.numpy(), ref)


def test_deterministic_and_rank_aware(cases):
    opts = SamplerOptions(patch_size=16, num_context=1, seed=7)
    a, b = PatchDataset(cases, opts), PatchDataset(cases, opts)
    r1 = PatchDataset(cases, opts, rank=1, world_size=2)
    for j in (0, 3, 11):
        xa, xb = a[j], b[j]
        assert xa["case"] == xb["case"] and torch.equal(xa["origin"], xb["origin"])
        assert all(torch.equal(p, q) for p, q in zip(xa["image"], xb["image"]))
    diff = [not torch.equal(a[j]["image"][0], r1[j]["image"][0]) for j in range(6)]
    assert all(diff)
    other_seed = PatchDataset(cases, SamplerOptions(patch_size=16, num_context=1, seed=8))
    assert not torch.equal(a[0]["image"][0], other_seed[0]["image"][0])


def test_class_balanced_centres_see_rare_bones(cases):
    opts = SamplerOptions(patch_size=16, num_context=1, class_balance=1.0, augment=AugmentOptions.none())
    ds = PatchDataset(cases, opts)
    n, rare = 90, 0
    for j in range(n):
        lab = ds[j]["labels"][0]
        assert (lab > 0).any()  # every class-balanced patch holds bone
        rare += bool((lab == PISIFORM_L).any())
    # 4 classes present, chosen uniformly: the 8-voxel pisiform is in about a quarter of the patches
    # (uniform sampling would hit it in about 16^3 / (40*44*48) < 5 %)
    assert 0.12 < rare / n < 0.45
    uniform = PatchDataset(cases, SamplerOptions(patch_size=16, num_context=1, class_balance=0.0))
    origins = {tuple(uniform[j]["origin"].tolist()) for j in range(30)}
    assert len(origins) > 20


def test_mirroring_swaps_left_and_right(cases):
    base = AugmentOptions.none()
    plain = PatchDataset(cases, SamplerOptions(patch_size=32, num_context=1, class_balance=1.0, augment=base))
    flip_opts = AugmentOptions.none()
    flip_opts.p_mirror = 1.0
    flipped = PatchDataset(cases, SamplerOptions(patch_size=32, num_context=1, class_balance=1.0, augment=flip_opts))
    lut = np.asarray(TABLE.mirror_lut())
    seen_left = False
    for j in range(12):
        x, y = plain[j], flipped[j]
        assert not x["mirrored"] and y["mirrored"]
        assert torch.equal(x["origin"], y["origin"])  # same draw, only mirrored
        for lvl in range(2):
            lx, ly = x["labels"][lvl].numpy(), y["labels"][lvl].numpy()
            # left labels became right labels, and they moved to the other side (array axis 2)
            assert (ly == HUMERUS_R).sum() == (lx == HUMERUS_L).sum()
            assert (ly == RIB_R1).sum() == (lx == RIB_L1).sum()
            np.testing.assert_array_equal(ly, lut[lx[:, :, ::-1]])
            np.testing.assert_array_equal(y["image"][lvl][0].numpy(), x["image"][lvl][0].numpy()[:, :, ::-1])
            seen_left |= bool((lx == HUMERUS_L).any())
    assert seen_left


def test_mirroring_follows_image_direction():
    """With L-R along index j (array axis 1), mirroring flips array axis 1. On the model grid every
    case is in LPS order (L-R = array axis 2), so swap axes 1 and 2 by hand."""
    direction = (0, 1, 0, 1, 0, 0, 0, 0, 1)
    lps = _case("rot", direction=direction)
    assert lps.lr_axis == 2  # reoriented: L-R is array axis 2 again
    case = TrainingCase("rot", lps.image.swapaxes(1, 2).copy(), lps.labels.swapaxes(1, 2).copy(),
                        (lps.spacing[0], lps.spacing[2], lps.spacing[1]), lr_axis=1, si_axis=0)
    aug = AugmentOptions.none()
    aug.p_mirror = 1.0
    plain = PatchDataset([case], SamplerOptions(patch_size=16, num_context=0, augment=AugmentOptions.none()))
    flipped = PatchDataset([case], SamplerOptions(patch_size=16, num_context=0, augment=aug))
    x, y = plain[0], flipped[0]
    lut = np.asarray(TABLE.mirror_lut())
    np.testing.assert_array_equal(y["labels"][0].numpy(), lut[x["labels"][0].numpy()[:, ::-1, :]])


def test_rotation_and_intensity_augmentation(cases):
    aug = AugmentOptions(p_mirror=0.0, p_rotate=1.0, max_rotation_deg=10.0, noise_std_max=0.05)
    ds = PatchDataset(cases, SamplerOptions(patch_size=16, num_context=1, augment=aug))
    ref = PatchDataset(cases, SamplerOptions(patch_size=16, num_context=1, augment=AugmentOptions.none()))
    x, r = ds[2], ref[2]
    assert torch.equal(x["origin"], r["origin"])
    for lvl in range(2):
        assert x["image"][lvl].shape == (1, 16, 16, 16)
        assert not torch.equal(x["image"][lvl], r["image"][lvl])
        # nearest interpolation: rotated labels only hold values that were there
        assert set(np.unique(x["labels"][lvl].numpy())) <= set(np.unique(r["labels"][lvl].numpy())) | {0}
    assert torch.equal(ds[2]["image"][0], x["image"][0])  # augmentation is deterministic too


def test_loader_workers_and_exact_resume(cases):
    opts = SamplerOptions(patch_size=16, num_context=1, seed=3)
    ds = PatchDataset(cases, opts)
    loader = PatchLoader(ds, batch_size=3, num_workers=0)
    it = iter(loader)
    first = [next(it) for _ in range(4)]
    assert first[0]["image"][0].shape == (3, 1, 16, 16, 16) and first[0]["labels"][1].shape == (3, 16, 16, 16)
    assert first[1]["index"].tolist() == [3, 4, 5]
    state = loader.state_dict()
    assert state["next_sample"] == 12
    # two workers produce the very same stream
    par = PatchLoader(ds, batch_size=3, num_workers=2)
    it2 = iter(par)
    same = [next(it2) for _ in range(4)]
    del it2
    for a, b in zip(first, same):
        assert all(torch.equal(p, q) for p, q in zip(a["image"], b["image"]))
        assert a["case"] == b["case"]
    # resume: a fresh loader continues where the state was taken
    nxt = next(it)
    resumed = PatchLoader(PatchDataset(cases, opts), batch_size=3)
    resumed.load_state_dict(state)
    again = next(iter(resumed))
    assert again["index"].tolist() == [12, 13, 14]
    assert all(torch.equal(p, q) for p, q in zip(nxt["labels"], again["labels"]))
    with pytest.raises(ValueError, match="seed=3"):
        PatchLoader(PatchDataset(cases, SamplerOptions(patch_size=16, num_context=1, seed=4)), 3).load_state_dict(state)


def test_options_round_trip_and_validation():
    opts = SamplerOptions(patch_size=32, num_context=3, augment=AugmentOptions(p_rotate=0.2))
    assert SamplerOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(ValueError, match="multiple of 16"):
        SamplerOptions(patch_size=24)
    with pytest.raises(ValueError, match="rank 2"):
        PatchDataset([_case()], SamplerOptions(patch_size=16), rank=2, world_size=2)


def test_training_case_resampling():
    case = _case()
    ct = sitk.GetImageFromArray(np.zeros((40, 44, 48), dtype=np.int16))
    ct.SetSpacing((2.0, 2.0, 2.0))
    lab = sitk.GetImageFromArray(np.zeros((40, 44, 48), dtype=np.uint8))
    lab.CopyInformation(ct)
    resampled = TrainingCase.from_images("r", ct, lab, spacing_xyz=(4.0, 4.0, 1.0))
    assert resampled.image.shape == (80, 22, 24) and resampled.spacing == (1.0, 4.0, 4.0)
    assert case.image.dtype == np.float32 and case.labels.dtype == np.uint8
    bad = sitk.GetImageFromArray(np.full((40, 44, 48), 130, dtype=np.uint8))
    bad.CopyInformation(ct)
    with pytest.raises(ValueError, match="label values outside 0..125"):
        TrainingCase.from_images("bad", ct, bad)
