"""The synthetic upper-body CT phantom: labels, determinism, geometry, left/right likeness, HU, CLI."""
import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from sneakynet.cli import main
from sneakynet.labels import NUM_BONES, load_label_table
from sneakynet.phantom import PhantomOptions, generate, generate_case, options_for_size, write_cases
from sneakynet.phantom.generator import RANDOM_SPACING_MM, build_anatomy, fit_grid

SMALL = options_for_size("small")  # 4 mm isotropic


@pytest.fixture(scope="module")
def table():
    return load_label_table()


@pytest.fixture(scope="module")
def case2mm():
    """One default-size case at 2 mm (the slow one; shared by the tests of this module)."""
    case = generate(11, PhantomOptions(spacing=(2.0, 2.0, 2.0)))
    ct = sitk.GetArrayFromImage(case.ct)
    lab = sitk.GetArrayFromImage(case.labels)
    return case, ct, lab


@pytest.fixture(scope="module")
def small_case():
    case = generate(5, SMALL)
    return case, sitk.GetArrayFromImage(case.ct), sitk.GetArrayFromImage(case.labels)


def _sha(img: sitk.Image) -> str:
    return hashlib.sha256(sitk.GetArrayViewFromImage(img).tobytes()).hexdigest()


def _centroids(img: sitk.Image, lab: np.ndarray) -> dict[int, np.ndarray]:
    """Physical (LPS mm) centroid of every label present."""
    ids = np.unique(lab)
    ids = ids[ids > 0]
    com = ndimage.center_of_mass(np.ones_like(lab), lab, ids)
    out = {}
    for i, (k, j, ii) in zip(ids, com):
        out[int(i)] = np.array(img.TransformContinuousIndexToPhysicalPoint((float(ii), float(j), float(k))))
    return out


def _voxel_centroid(lab: np.ndarray, bid: int) -> np.ndarray:
    return np.array(ndimage.center_of_mass(lab == bid))


def _patch(ct: np.ndarray, centre: np.ndarray, half: int) -> np.ndarray:
    c = np.rint(centre).astype(int)
    sl = tuple(slice(max(ci - half, 0), ci + half) for ci in c)
    return ct[sl].astype(np.float64)


# ---------------------------------------------------------------------------------------- labels


def test_default_2mm_case_has_every_label_with_several_voxels(case2mm, table):
    case, ct, lab = case2mm
    assert ct.dtype == np.int16 and lab.dtype == np.uint8
    assert ct.shape == lab.shape
    counts = np.bincount(lab.ravel(), minlength=NUM_BONES + 1)
    assert len(counts) == NUM_BONES + 1, "label values beyond 125"
    missing = [table.by_id(i).name for i in range(1, NUM_BONES + 1) if counts[i] == 0]
    assert not missing, f"labels missing at 2 mm: {missing}"
    tiny = {table.by_id(i).name: int(counts[i]) for i in range(1, NUM_BONES + 1) if counts[i] < 6}
    assert not tiny, f"bones with fewer than 6 voxels at 2 mm: {tiny}"
    assert case.placed_by_anchor == [], "at 2 mm every bone must cover voxel centres on its own"
    assert case.missing == []
    # roughly the documented default size (about 256 x 192 x 320 at 2 mm)
    nx, ny, nz = case.ct.GetSize()
    assert 170 <= nx <= 300 and 110 <= ny <= 230 and 260 <= nz <= 380


def test_small_4mm_case_still_has_every_label(small_case):
    case, ct, lab = small_case
    assert case.ct.GetSpacing() == (4.0, 4.0, 4.0)
    present = set(np.unique(lab)) - {0}
    assert present == set(range(1, NUM_BONES + 1))
    nx, ny, nz = case.ct.GetSize()
    assert nx * ny * nz < 3_000_000  # ~128 x 96 x 160


def test_reduced_field_of_view_reports_the_bones_it_cuts_off(table):
    case = generate(2, PhantomOptions(spacing=(4.0, 4.0, 4.0), fov_scale=0.6))
    present = set(np.unique(sitk.GetArrayViewFromImage(case.labels))) - {0}
    assert case.missing and "vertebra_T8" not in case.missing
    assert {table.by_id(i).name for i in present} == {b.name for b in table} - set(case.missing)


# ---------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(small_case):
    case, _, _ = small_case
    ct2, lab2 = generate_case(5, SMALL)
    assert _sha(case.ct) == _sha(ct2) and _sha(case.labels) == _sha(lab2)
    assert case.ct.GetOrigin() == ct2.GetOrigin() and case.ct.GetDirection() == ct2.GetDirection()
    ct3, lab3 = generate_case(6, SMALL)
    assert _sha(ct3) != _sha(case.ct) and _sha(lab3) != _sha(case.labels)


def test_anatomy_depends_on_seed_only_and_random_spacing_in_range():
    a = build_anatomy(np.random.default_rng(3))
    b = build_anatomy(np.random.default_rng(3))
    assert np.array_equal(a.landmarks["T6"], b.landmarks["T6"])
    for seed in range(4):
        grid, rot = fit_grid(a, np.random.default_rng(seed), PhantomOptions())
        assert all(RANDOM_SPACING_MM[0] <= s <= RANDOM_SPACING_MM[1] for s in grid.spacing)
        assert grid.spacing[0] == grid.spacing[1]
        assert np.allclose(rot @ rot.T, np.eye(3)) and np.isclose(np.linalg.det(rot), 1)
        angle = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
        assert 0 < angle <= 5.0 * np.sqrt(1 + 2 * 0.36) + 1e-6


def test_bad_options_and_seed_are_refused():
    with pytest.raises(ValueError, match="spacing"):
        PhantomOptions(spacing=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="fov_scale"):
        PhantomOptions(fov_scale=0)
    with pytest.raises(ValueError, match="seed"):
        generate_case(-1, SMALL)
    with pytest.raises(ValueError, match="size"):
        options_for_size("huge")


# ---------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_geometry_round_trip(small_case, tmp_path, suffix):
    case, ct, lab = small_case
    assert not np.allclose(np.array(case.ct.GetDirection()), np.eye(3).ravel()), "expected an oblique direction"
    for img, arr in ((case.ct, ct), (case.labels, lab)):
        path = tmp_path / f"img{suffix}"
        sitk.WriteImage(img, str(path), True)
        back = sitk.ReadImage(str(path))
        assert back.GetSize() == img.GetSize()
        assert np.allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-6)
        assert np.allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
        assert np.allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)
        got = sitk.GetArrayFromImage(back)
        assert got.dtype == arr.dtype and np.array_equal(got, arr)


def test_rotation_can_go_into_the_anatomy_instead():
    case = generate(5, PhantomOptions(spacing=(4.0, 4.0, 4.0), rotate_anatomy=True))
    assert np.allclose(case.ct.GetDirection(), np.eye(3).ravel())
    lab = sitk.GetArrayFromImage(case.labels)
    c = _centroids(case.labels, lab)
    table = load_label_table()
    assert c[table.by_name("humerus_left").id][0] > 50 > -50 > c[table.by_name("humerus_right").id][0]


# ---------------------------------------------------------------------------------------- anatomy


def test_left_bones_lie_at_patient_left_and_mirror_the_right(case2mm, table):
    case, ct, lab = case2mm
    c = _centroids(case.labels, lab)
    for b in table:
        if b.side == "left":
            left, right = c[b.id], c[b.mirror]
            assert left[0] > 0 > right[0], f"{b.name} not at +x (patient left): {left} vs {right}"
            # mirror images: same height and depth; arms may differ by a few degrees of pose
            tol = 6.0 if b.group in ("ribs", "pelvis", "shoulder", "leg") else 50.0
            assert np.allclose(left * [-1, 1, 1], right, atol=tol), (b.name, left, right)
        elif b.side == "none":
            assert abs(c[b.id][0]) < 6.0, f"midline bone {b.name} off the midline: {c[b.id]}"


def test_anatomical_order_from_head_to_hips(case2mm, table):
    case, _, lab = case2mm
    c = _centroids(case.labels, lab)
    z = {b.name: c[b.id][2] for b in table}
    levels = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    spine = ["cranium"] + [f"vertebra_{v}" for v in levels]
    spine += ["sacrum", "coccyx"]
    assert all(z[a] > z[b] for a, b in zip(spine, spine[1:])), [round(z[n]) for n in spine]
    for side in ("left", "right"):
        ribs = [z[f"rib_{side}_{i}"] for i in range(1, 13)]
        assert all(a > b for a, b in zip(ribs, ribs[1:])), ribs
        assert z[f"humerus_{side}"] > z[f"radius_{side}"] > z[f"capitate_{side}"] > z[f"phalanx_distal_3_{side}"]
        # hands hang at hip level, the femur starts at the hip bone
        assert abs(z[f"capitate_{side}"] - z[f"femur_{side}"]) < 150
        assert z[f"hip_{side}"] > z[f"femur_{side}"]
    assert z["cranium"] > z["mandible"] > z["hyoid"] > z["vertebra_C5"]
    assert z["sternum_manubrium"] > z["sternum_body"]
    assert case.ct.GetSize()[2] * case.ct.GetSpacing()[2] > z["cranium"] - z["femur_left"]


def test_pairs_and_neighbours_look_alike_locally(case2mm, table):
    """Same-size patches centred on mirror twins / neighbouring ribs and vertebrae have similar HU stats."""
    case, ct, lab = case2mm
    pairs = [("humerus_left", "humerus_right"), ("femur_left", "femur_right"), ("scapula_left", "scapula_right"),
             ("rib_left_6", "rib_right_6"), ("rib_left_6", "rib_left_7"), ("rib_right_5", "rib_right_6"),
             ("vertebra_T6", "vertebra_T7"), ("vertebra_L2", "vertebra_L3"),
             ("metacarpal_3_left", "metacarpal_3_right")]
    for a, b in pairs:
        pa = _patch(ct, _voxel_centroid(lab, table.by_name(a).id), 12)
        pb = _patch(ct, _voxel_centroid(lab, table.by_name(b).id), 12)
        assert pa.shape == pb.shape
        scale = max(pa.std(), pb.std())
        assert abs(pa.mean() - pb.mean()) < 0.2 * scale, (a, b, pa.mean(), pb.mean(), scale)
        assert abs(pa.std() - pb.std()) < 0.2 * scale, (a, b, pa.std(), pb.std())
        # and the bones themselves have nearly the same size
        na, nb = (lab == table.by_name(a).id).sum(), (lab == table.by_name(b).id).sum()
        assert 0.75 < na / nb < 1.33, (a, b, na, nb)


# ---------------------------------------------------------------------------------------- intensities


def test_hounsfield_ranges(case2mm, table):
    case, ct, lab = case2mm
    bone = ct[lab > 0]
    assert np.mean((bone >= 300) & (bone <= 1500)) > 0.75
    assert ct.min() >= -1024 and ct.max() <= 3071
    # cortex brighter than the cancellous core in the big bones
    for name in ("humerus_left", "femur_right", "cranium", "vertebra_L3"):
        m = lab == table.by_name(name).id
        shell = m & ~ndimage.binary_erosion(m)
        core = ndimage.binary_erosion(m, iterations=2)
        assert core.sum() > 10, name
        assert ct[shell].mean() > ct[core].mean() + 200, (name, ct[shell].mean(), ct[core].mean())
        assert 150 < np.median(ct[core]) < 600, name
    # air outside the body and lungs at about -850 HU
    corner = ct[:8, :8, :8]
    assert abs(np.median(corner) + 1000) < 10
    # lungs: voxels (every third one) whose centres the anatomy puts in a lung (physical = anatomy mm here)
    k, j, i = (g.ravel() for g in np.meshgrid(*(np.arange(0, n, 3) for n in ct.shape), indexing="ij"))
    affine = np.array(case.ct.GetDirection()).reshape(3, 3) @ np.diag(case.ct.GetSpacing())
    pts = np.array(case.ct.GetOrigin()) + np.stack([i, j, k], axis=1) @ affine.T
    inside = case.anatomy.lungs.mask(*(pts[:, a].astype(np.float32) for a in range(3)))
    vals = ct[k[inside], j[inside], i[inside]]
    assert len(vals) > 1000 and -900 < np.median(vals) < -800, np.median(vals)


# ---------------------------------------------------------------------------------------- dataset and CLI


def test_cli_writes_dataset_folder(tmp_path, table):
    out = tmp_path / "phantoms"
    assert main(["phantom", "--out", str(out), "--n", "2", "--seed", "3", "--spacing", "4", "--quiet",
                 "--version", "1"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"} and meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    assert meta["labels"]["background"] == 0 and len(meta["labels"]) == NUM_BONES + 1
    assert all(meta["labels"][b.name] == b.id for b in table)
    for name in ("phantom_003", "phantom_004"):
        ct = sitk.ReadImage(str(out / "imagesTr" / f"{name}_0000.nii.gz"))
        lab = sitk.ReadImage(str(out / "labelsTr" / f"{name}.nii.gz"))
        assert ct.GetPixelID() == sitk.sitkInt16 and lab.GetPixelID() == sitk.sitkUInt8
        assert ct.GetSize() == lab.GetSize() and ct.GetSpacing() == (4.0, 4.0, 4.0)
        assert np.allclose(ct.GetOrigin(), lab.GetOrigin()) and np.allclose(ct.GetDirection(), lab.GetDirection())
    assert not list(out.rglob("*.tmp*")), "temporary files left behind"
    # the same case through the Python API is identical to the written file
    ct3, _ = generate_case(3, PhantomOptions(spacing=(4.0, 4.0, 4.0)))
    back = sitk.ReadImage(str(out / "imagesTr" / "phantom_003_0000.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(ct3))


def test_cli_bad_input_is_a_clean_error(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path / "x"), "--spacing", "1", "2"]) == 2
    assert "--spacing" in capsys.readouterr().err
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["phantom", "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive"):
        write_cases(tmp_path / "y", 0, 0)
