"""Domain randomisation: labels and geometry stay consistent, the intensity curve is honest, seeds decide."""
from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet.domain_randomization import PADDING_HU, draw, remap_curve
from sneakynet.intensity import normalize_ct
from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions
from sneakynet.training_cases import TrainingCase

DR_PROBABILITIES = ("p_intensity_remap", "p_blur", "p_resample", "p_plane_cut", "p_fov_circle")
PLAIN = replace(AugmentOptions.none(), p_mirror=0.0)


def _case(shape=(64, 64, 64), bone_everywhere=False, seed=0) -> TrainingCase:
    """Soft tissue (-100..100 HU) with a dense block; labels 1 everywhere or on the block."""
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-100, 100, shape).astype(np.int16)
    lab = np.zeros(shape, np.uint8)
    lab[10:50, 20:40, 15:45] = 23
    hu[lab > 0] = 900
    if bone_everywhere:
        lab[:] = 1
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((4.0, 4.0, 4.0))
    labels = sitk.GetImageFromArray(lab)
    labels.CopyInformation(ct)
    return TrainingCase.from_images("c", ct, labels)


def _dataset(aug: AugmentOptions, k=1, seed=0, case=None) -> PatchDataset:
    return PatchDataset([case or _case()], SamplerOptions(patch_size=16, num_context=k, seed=seed, augment=aug))


def test_off_unless_asked_and_old_options_load():
    for aug in (AugmentOptions(), AugmentOptions.none()):
        assert not aug.domain_randomized and all(getattr(aug, p) == 0 for p in DR_PROBABILITIES)
    on = AugmentOptions.none().with_domain_randomization()
    assert on.domain_randomized and on.noise_std_max > AugmentOptions().noise_std_max
    stored = SamplerOptions().to_dict()  # a training config from before domain randomisation
    for f in fields(AugmentOptions):
        if f.name.startswith(("p_intensity", "remap", "p_blur", "slice", "inplane", "p_resample", "resample",
                              "p_plane", "p_fov", "fov")):
            del stored["augment"][f.name]
    assert SamplerOptions.from_dict(stored).augment == AugmentOptions()
    assert SamplerOptions.from_dict(SamplerOptions(augment=on).to_dict()).augment == on


def test_curve_moves_soft_tissue_keeps_air_bone_and_order():
    rng = np.random.default_rng(0)
    aug = AugmentOptions.none().with_domain_randomization()
    hu = np.linspace(-1100, 2100, 3201)
    moved = []
    for _ in range(200):
        d = draw(rng, replace(aug, p_intensity_remap=1.0), (4, 4, 4), 0, 64.0)
        out = remap_curve(*d.remap)(hu)
        assert np.all(np.diff(out) > 0), "monotone: the order of tissues is kept"
        fixed = (hu <= -400) | (hu >= 500)
        np.testing.assert_allclose(out[fixed], hu[fixed], atol=1e-6)
        marrow = (hu >= 25) & (hu <= 240)
        assert out[marrow].min() > -60, "marrow never becomes fat-like (about -100 HU)"
        soft = (hu >= -200) & (hu <= 250)
        moved.append(np.abs(out[soft] - hu[soft]).max())
    assert 20 < np.median(moved) < 120, "tens of HU"


def test_intensity_blur_resolution_and_noise_leave_labels_alone():
    aug = replace(PLAIN, noise_std_max=0.05, p_intensity_remap=1.0, p_blur=1.0, p_resample=1.0)
    ds, ref = _dataset(aug, k=2), _dataset(PLAIN, k=2)
    changed = 0
    for j in range(6):
        x, r = ds[j], ref[j]
        assert torch.equal(x["origin"], r["origin"])
        for lvl in range(3):
            assert torch.equal(x["labels"][lvl], r["labels"][lvl])
            assert x["image"][lvl].dtype == torch.float32 and x["image"][lvl].shape == (1, 16, 16, 16)
            changed += not torch.equal(x["image"][lvl], r["image"][lvl])
    assert changed == 18


@pytest.mark.parametrize("k", [1, 2])
def test_field_of_view_cut_is_one_world_region_on_every_level(k):
    case = _case(bone_everywhere=True)
    aug = replace(PLAIN, p_plane_cut=1.0, p_fov_circle=1.0, fov_radius_mm=(40.0, 80.0))
    ds = _dataset(aug, k=k, case=case)
    pads = {float(normalize_ct(np.array([h], np.float32))[0]) for h in PADDING_HU}
    s, cut_total = 16, 0
    for j in range(12):
        x = ds[j]
        target = x["labels"][0].numpy()
        cut = target == 0
        cut_total += cut.sum()
        assert set(np.unique(x["image"][0][0].numpy()[cut])) <= pads, "outside: the padding value, no noise"
        for lvl in range(1, k + 1):
            f, pad = 2 ** lvl, (2 ** lvl - 1) * s // 2
            ctx = x["labels"][lvl].numpy()
            # context voxel b reads its label at target voxel -P_k + b 2^k + 2^(k-1)
            idx = -pad + np.arange(s) * f + f // 2
            b = np.flatnonzero((idx >= 0) & (idx < s))
            np.testing.assert_array_equal(ctx[np.ix_(b, b, b)] == 0, cut[np.ix_(idx[b], idx[b], idx[b])])
    assert 0 < cut_total < 12 * s ** 3, "some voxels cut, not all"


def test_same_seed_same_patch_other_seed_other_patch():
    aug = AugmentOptions().with_domain_randomization()
    a, b, c = _dataset(aug, seed=5), _dataset(aug, seed=5), _dataset(aug, seed=6)
    for j in (0, 3):
        x, y, z = a[j], b[j], c[j]
        for lvl in range(2):
            assert torch.equal(x["image"][lvl], y["image"][lvl]) and torch.equal(x["labels"][lvl], y["labels"][lvl])
        assert not torch.equal(x["image"][0], z["image"][0])
    assert torch.equal(a[2]["image"][0], a[2]["image"][0])  # a pure function of the index


def test_draw_order_does_not_depend_on_the_options():
    on = AugmentOptions.none().with_domain_randomization()
    d_on = draw(np.random.default_rng(1), replace(on, p_blur=0.0), (2, 2, 2), 0, 64.0)
    d_all = draw(np.random.default_rng(1), on, (2, 2, 2), 0, 64.0)
    assert d_on.blur_sigma_mm is None
    assert (d_on.remap, d_on.plane, d_on.circle, d_on.padding_hu) == (d_all.remap, d_all.plane, d_all.circle,
                                                                      d_all.padding_hu)


def test_resolution_change_stays_between_the_grid_and_a_real_scan():
    aug = replace(AugmentOptions.none().with_domain_randomization(), p_resample=1.0)
    rng = np.random.default_rng(2)
    for spacing in ((1.0, 1.0, 1.0), (4.0, 4.0, 4.0)):
        for _ in range(50):
            si, y, x = draw(rng, aug, spacing, 0, 64.0).resample_mm
            assert spacing[0] <= si <= max(spacing[0], aug.resample_si_mm_max)
            assert spacing[1] <= min(y, x) and max(y, x) <= max(spacing[1], aug.resample_inplane_mm_max)
