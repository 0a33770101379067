"""Phantom v2 (CT-like phantoms): determinism, all bones in view, fields of view, poses, bone HU, v1 unchanged."""
import json
import time

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.labels import NUM_BONES, load_label_table
from sneakynet.phantom import PhantomOptions, generate, generate_case
from sneakynet.phantom.ct import render
from sneakynet.phantom.generator import build_anatomy, fit_grid
from sneakynet.phantom.v2 import PhantomV2Options, generate_v2
from sneakynet.phantom.v2.skeleton import ARM_POSES

COARSE = (5.0, 5.0, 5.0)
# one acquisition for every case that is compared voxel by voxel
FIXED = dict(max_rotation_deg=0.0, noise_hu=0.0, slice_mm=5.0, kernel_mm=0.5, padding=-2048)


def _arrays(case):
    return sitk.GetArrayFromImage(case.ct), sitk.GetArrayFromImage(case.labels)


@pytest.fixture(scope="module")
def whole_cases():
    """A whole-upper-body case per arm pose, 5 mm (shared by the tests below)."""
    return {arms: generate_v2(21, PhantomV2Options(spacing=COARSE, fov="whole", arms=arms)) for arms in ARM_POSES}


def test_deterministic_per_seed():
    opts = PhantomV2Options(spacing=COARSE, fov="chest")
    a, b, c = generate_v2(4, opts), generate_v2(4, opts), generate_v2(5, opts)
    for img in ("ct", "labels"):
        assert np.array_equal(sitk.GetArrayFromImage(getattr(a, img)), sitk.GetArrayFromImage(getattr(b, img)))
    assert a.ct.GetSize() != c.ct.GetSize() or not np.array_equal(_arrays(a)[0], _arrays(c)[0])


@pytest.mark.parametrize("arms", ARM_POSES)
def test_whole_body_case_holds_every_bone(whole_cases, arms):
    case = whole_cases[arms]
    ct, lab = _arrays(case)
    assert case.ct.GetSize() == case.labels.GetSize()
    assert np.allclose(case.ct.GetOrigin(), case.labels.GetOrigin())
    assert np.allclose(case.ct.GetDirection(), case.labels.GetDirection())
    assert case.missing == []
    assert set(np.unique(lab)) == set(range(NUM_BONES + 1))
    # labels sit on bone: every bone of 20 voxels or more reaches cortical values (smaller ones are
    # partial-volume blurred at 5 mm), and bone is brighter than the body around it
    counts = np.bincount(lab.ravel(), minlength=NUM_BONES + 1)
    for bid in np.flatnonzero(counts >= 20)[1:]:
        assert np.percentile(ct[lab == bid], 99) > 200, load_label_table().by_id(int(bid)).name
    body = (ct > -300) & (lab == 0)
    assert np.median(ct[lab > 0]) > np.median(ct[body]) + 50


def test_arm_poses_put_the_hands_where_the_pose_says(whole_cases):
    table = load_label_table()

    def centre(case, name):
        lab = sitk.GetArrayFromImage(case.labels)
        k, j, i = np.nonzero(lab == table.by_name(name).id)
        return np.array(case.labels.TransformContinuousIndexToPhysicalPoint(
            (float(i.mean()), float(j.mean()), float(k.mean()))))

    for arms, case in whole_cases.items():
        vertex_z = centre(case, "cranium")[2]
        hip_z = centre(case, "hip_left")[2]
        chest = centre(case, "sternum_body")
        raised = 0
        for side in ("left", "right"):
            hand = centre(case, f"capitate_{side}")
            humerus_up = centre(case, f"humerus_{side}")[2] > centre(case, f"scapula_{side}")[2] + 50
            if hand[2] > vertex_z:  # a raised arm: hand above the head, upper arm pointing up
                raised += 1
                assert humerus_up and arms in ("raised", "one_up"), (arms, side)
            elif arms == "crossed":
                assert hip_z < hand[2] < chest[2] + 100 and hand[1] < chest[1], (arms, side)  # on the belly
            else:
                assert hand[2] < hip_z + 150 and not humerus_up and arms in ("sides", "one_up"), (arms, side)
        assert raised == {"raised": 2, "one_up": 1}.get(arms, 0), arms


def test_a_cropped_field_of_view_equals_that_region_of_the_whole_case():
    whole = generate_v2(8, PhantomV2Options(spacing=COARSE, fov="whole", arms="raised", **FIXED))
    chest = generate_v2(8, PhantomV2Options(spacing=COARSE, fov="chest", arms="raised", **FIXED))
    (ctw, labw), (ctc, labc) = _arrays(whole), _arrays(chest)
    offset = np.rint((np.array(chest.ct.GetOrigin()) - np.array(whole.ct.GetOrigin())) / COARSE).astype(int)
    assert np.allclose(np.array(whole.ct.GetOrigin()) + offset * COARSE, chest.ct.GetOrigin())  # shared lattice
    i0, j0, k0 = offset
    nz, ny, nx = ctc.shape
    assert i0 >= 0 and j0 >= 0 and k0 >= 0 and k0 + nz <= ctw.shape[0]
    sub_ct = ctw[k0:k0 + nz, j0:j0 + ny, i0:i0 + nx]
    sub_lab = labw[k0:k0 + nz, j0:j0 + ny, i0:i0 + nx]
    inside = ctc != -2048  # the chest scan's reconstruction circle
    assert inside.mean() > 0.5 and not labc[~inside].any()
    assert np.array_equal(labc[inside], sub_lab[inside])
    assert (labc > 0).sum() > 1000
    # away from the circle's edge and the crop's ends, the bones' CT values agree too (the table differs)
    from scipy.ndimage import binary_erosion

    core = binary_erosion(inside, iterations=2, border_value=0) & (labc > 0)
    assert core.sum() > 500
    assert np.abs(ctc[core].astype(int) - sub_ct[core]).max() <= 1


def test_outside_the_reconstruction_circle_is_padding_without_labels():
    case = generate_v2(3, PhantomV2Options(spacing=COARSE, fov="abdomen_pelvis", padding=-3024))
    ct, lab = _arrays(case)
    pad = ct == -3024
    assert pad[:, 0, 0].all() and pad[:, -1, -1].all() and not lab[pad].any()
    assert not pad[:, ct.shape[1] // 2, ct.shape[2] // 2].any()
    assert ct[~pad].min() >= -1024


def test_bone_hu_is_in_the_range_of_real_ct_and_time_per_case(capsys):
    """Bone voxels of twelve chest and abdomen cases at 3 mm: median, percentiles and the share below
    150 HU near real CT's (median 179, 5-95 % -6..600, 42 % below 150). Bone density is drawn per case,
    so a dozen cases scatter by some 30 HU around the population (100 cases: 179, 15..599, 39 %)."""
    values, seconds = [], []
    for seed in range(40, 52):
        t0 = time.process_time()
        fov = "chest" if seed % 2 else "abdomen_pelvis"
        case = generate_v2(seed, PhantomV2Options(spacing=(3.0, 3.0, 3.0), fov=fov, slice_mm=3.0))
        seconds.append(time.process_time() - t0)
        ct, lab = _arrays(case)
        values.append(ct[lab > 0])
    t0 = time.process_time()
    big = generate_v2(46, PhantomV2Options(spacing=(2.0, 2.0, 2.0), fov="abdomen_pelvis"))
    two_mm = time.process_time() - t0
    bone = np.concatenate(values)
    p5, med, p95 = np.percentile(bone, [5, 50, 95])
    low = float((bone < 150).mean())
    with capsys.disabled():
        print(f"\nphantom v2 CPU time: {two_mm:.1f} s per 2 mm abdomen-pelvis case {big.ct.GetSize()}, "
              f"{np.mean(seconds):.1f} s per 3 mm case; bone median {med:.0f}, 5-95 % {p5:.0f}..{p95:.0f}, "
              f"{100 * low:.0f} % below 150 HU")
    assert 140 <= med <= 220 and -60 <= p5 <= 70 and 450 <= p95 <= 800 and 0.28 <= low <= 0.56


def test_version_1_is_unchanged():
    """version=1 gives exactly what the untouched v1 pipeline draws."""
    opts = PhantomOptions(spacing=(4.0, 4.0, 4.0))
    ct, lab = generate_case(9, opts, version=1)
    anat_rng, geom_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(9).spawn(3))
    anat = build_anatomy(anat_rng)
    grid, _ = fit_grid(anat, geom_rng, opts)
    out = render(anat, grid, opts.blur_mm, opts.noise_hu, noise_rng)
    assert np.array_equal(sitk.GetArrayFromImage(ct), out.ct)
    assert np.array_equal(sitk.GetArrayFromImage(lab), out.labels)
    assert np.array_equal(sitk.GetArrayFromImage(generate_case(9, opts)[0]), out.ct)  # the API default stays 1


def test_options_and_versions_are_checked():
    with pytest.raises(ValueError, match="field of view"):
        PhantomV2Options(fov="knee")
    with pytest.raises(ValueError, match="arm pose"):
        PhantomV2Options(arms="waving")
    with pytest.raises(ValueError, match="padding"):
        PhantomV2Options(padding=-1000)
    with pytest.raises(ValueError, match="PhantomV2Options"):
        generate(1, PhantomOptions(), version=2)
    with pytest.raises(ValueError, match="version"):
        generate(1, version=3)


def test_cli_writes_version_2_by_default(tmp_path, capsys):
    out = tmp_path / "v2"
    assert main(["phantom", "--out", str(out), "--size", "small", "--fov", "chest", "--arms", "crossed",
                 "--seed", "2", "--quiet"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["sneakynet_phantom"]["generator_version"] == "2"
    assert meta["sneakynet_phantom"]["options"]["fov"] == "chest"
    written = sitk.ReadImage(str(out / "imagesTr" / "phantom_002_0000.nii.gz"))
    again = generate_v2(2, PhantomV2Options(spacing=(4.0, 4.0, 4.0), fov="chest", arms="crossed"))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(again.ct))
    assert main(["phantom", "--out", str(tmp_path / "x"), "--fov-scale", "0.5"]) == 2
    assert "--fov-scale" in capsys.readouterr().err
    assert main(["phantom", "--out", str(tmp_path / "y"), "--version", "1", "--arms", "raised"]) == 2
