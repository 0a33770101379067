"""Phantom v2 bone shapes: vertebral canal enclosed by the arch, sacral foramina, iliac wing thickness,
pubic symphysis gap, and a shoulder girdle that turns with a raised arm."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_fill_holes, label

from sneakynet.labels import load_label_table
from sneakynet.phantom.v2 import PhantomV2Options, generate_v2

TABLE = load_label_table()
STILL = dict(max_rotation_deg=0.0, noise_hu=0.0)  # anatomy mm = physical mm
MM = 2.0


@pytest.fixture(scope="module")
def pelvis_case():
    return generate_v2(31, PhantomV2Options(spacing=(MM, MM, MM), fov="abdomen_pelvis", arms="raised", **STILL))


def _index(case, point):
    """Array index (k, j, i) of the voxel at anatomy point ``point``."""
    i, j, k = case.labels.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
    return k, j, i


def _holes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected background regions enclosed by ``mask`` (2D) and their number."""
    return label(binary_fill_holes(mask) & ~mask)


def test_lumbar_canal_is_empty_and_enclosed_by_the_arch(pelvis_case):
    lab = sitk.GetArrayFromImage(pelvis_case.labels)
    lm = pelvis_case.anatomy.landmarks
    for level in ("L1", "L2", "L3", "L4", "L5"):
        k, j, i = _index(pelvis_case, lm[f"{level}_canal"])
        ring = lab[k] == TABLE.by_name(f"vertebra_{level}").id
        holes, _ = _holes(ring)
        assert lab[k, j, i] == 0, level
        assert holes[j, i] > 0, f"{level}: the canal is not enclosed by the vertebra in its axial slice"
        assert (holes == holes[j, i]).sum() * MM ** 2 > 100, level  # a canal, not a pinhole (> 1 cm^2)


def test_sacrum_has_paired_foramina_in_a_coronal_section(pelvis_case):
    lab = sitk.GetArrayFromImage(pelvis_case.labels)
    sacrum = lab == TABLE.by_name("sacrum").id
    mid = _index(pelvis_case, np.zeros(3))[2]  # the midline column (x = 0)
    best = 0
    for j in np.flatnonzero(sacrum.any(axis=(0, 2))):
        holes, n = _holes(sacrum[:, j, :])
        big = [h for h in range(1, n + 1) if (holes == h).sum() * MM ** 2 >= 16]  # foramina, not pinholes
        centres = [np.mean(np.nonzero(holes == h)[1]) - mid for h in big]
        pairs = min(sum(c > 3 for c in centres), sum(c < -3 for c in centres))
        best = max(best, pairs)
    assert best >= 2, f"at most {best} pair(s) of holes beside the midline in a coronal section of the sacrum"


def test_iliac_wing_is_a_plate_a_few_millimetres_thick_and_the_pubic_bones_do_not_touch(pelvis_case):
    lab = sitk.GetArrayFromImage(pelvis_case.labels)
    ct = sitk.GetArrayFromImage(pelvis_case.ct)
    lm = pelvis_case.anatomy.landmarks
    crest = lm["iliac_crest_left"]
    hip = TABLE.by_name("hip_left").id
    k = _index(pelvis_case, crest - np.array([0, 0, 30.0]))[0]  # mid-wing, below the thick crest
    runs = []
    for row in lab[k] == hip:  # widths of the wing along x, row by row
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        runs += list((edges[1::2] - edges[::2]) * MM)
    assert len(runs) >= 10 and 4.0 <= np.median(runs) <= 20.0, runs
    assert np.median(ct[k][lab[k] == hip]) < 500  # marrow inside, not solid cortex
    k, j, i = _index(pelvis_case, lm["pubis_left"])
    row = lab[k, j]
    left, right = np.flatnonzero(row == hip), np.flatnonzero(row == TABLE.by_name("hip_right").id)
    gap = (left.min() - right.max() - 1) * MM
    assert 2.0 <= gap <= 15.0, gap


@pytest.fixture(scope="module")
def shoulder_cases():
    return {arms: generate_v2(12, PhantomV2Options(spacing=(4.0, 4.0, 4.0), fov="whole", arms=arms, **STILL))
            for arms in ("sides", "raised")}


def _voxels_mm(case, name):
    lab = sitk.GetArrayFromImage(case.labels)
    k, j, i = np.nonzero(lab == TABLE.by_name(name).id)
    idx = np.stack([i, j, k], axis=1).astype(float)
    return np.asarray(case.labels.GetOrigin()) + idx * np.asarray(case.labels.GetSpacing())


def test_a_raised_arm_turns_the_scapula_and_keeps_the_humeral_head_in_the_glenoid(shoulder_cases):
    sides, raised = shoulder_cases["sides"], shoulder_cases["raised"]
    for side, sign in (("left", 1), ("right", -1)):
        for case in (sides, raised):  # the head sits on its scapula's glenoid in every pose
            head = case.anatomy.landmarks[f"humeral_head_{side}"]
            scap = _voxels_mm(case, f"scapula_{side}")
            assert np.linalg.norm(scap - head, axis=1).min() < 22 * 1.15 + 8
        low = {}
        for arms, case in shoulder_cases.items():
            scap = _voxels_mm(case, f"scapula_{side}")
            tip = scap[scap[:, 2] <= np.percentile(scap[:, 2], 10)]  # the inferior angle
            low[arms] = float(np.mean(tip[:, 0]) * sign)
        assert low["raised"] > low["sides"] + 20, (side, low)  # upward rotation swings it laterally
        clav = {arms: float(_voxels_mm(case, f"clavicle_{side}")[:, 2].max()) for arms, case in shoulder_cases.items()}
        assert clav["raised"] > clav["sides"] + 10, (side, clav)  # the clavicle is elevated


def _inside(bone, points: np.ndarray) -> np.ndarray:
    """Which of ``points`` (N x 3, anatomy mm) lie inside ``bone`` (a BoneModel)."""
    p = points.astype(np.float32)
    d = np.min([part.sdf(p[:, 0], p[:, 1], p[:, 2]) for part in bone.parts], axis=0)
    return d < 0


def _skeleton(seed: int, arms: str) -> dict:
    from sneakynet.phantom.v2.skeleton import SkeletonV2

    bones, _ = SkeletonV2(np.random.default_rng(seed), arms).build()
    return {b.name: b for b in bones}


def test_rib_shafts_are_flat_bands_in_the_chest_wall():
    bones = _skeleton(5, "sides")
    for k in (4, 6, 8):
        rib = bones[f"rib_left_{k}"]
        shaft = rib.parts[len(rib.parts) // 2]  # mid-shaft, at the side of the chest
        c = shaft.center()
        steps = np.arange(-15, 15.01, 0.25)
        up = _inside(rib, c + np.outer(steps, [0, 0, 1.0])).sum() * 0.25
        out = _inside(rib, c + np.outer(steps, [1.0, 0, 0])).sum() * 0.25  # across the side wall
        assert up >= 1.6 * out and out >= 4.0, (k, up, out)


def test_a_raised_humerus_clears_the_acromion_and_clavicle():
    bones = _skeleton(12, "raised")
    for side in ("left", "right"):
        lo, hi = bones[f"humerus_{side}"].bounds()
        grid = np.stack(np.meshgrid(*(np.arange(a, b, 2.0) for a, b in zip(lo, hi)), indexing="ij"), -1)
        pts = grid.reshape(-1, 3)
        pts = pts[_inside(bones[f"humerus_{side}"], pts)]
        hits = _inside(bones[f"scapula_{side}"], pts) | _inside(bones[f"clavicle_{side}"], pts)
        assert hits.sum() * 8.0 < 1000, (side, hits.sum() * 8.0)  # under 1 cm^3 shared


def test_union_intersection_difference_and_plate_primitives():
    from sneakynet.phantom.shapes import Difference, Intersection, Sphere, Union, plate

    a, b = Sphere(np.array([0.0, 0, 0]), 10.0), Sphere(np.array([15.0, 0, 0]), 10.0)
    pts = np.array([[1.0, 1, 0], [7.5, 1, 0], [14.0, 1, 0], [30.0, 1, 0]], np.float32)  # (not at the centres,
    # where the ellipsoid bound is 0)

    def inside(shape):
        return list(shape.sdf(pts[:, 0], pts[:, 1], pts[:, 2]) < 0)

    assert inside(Union((a, b))) == [True, True, True, False]
    assert inside(Intersection((a, b))) == [False, True, False, False]
    assert inside(Difference(a, (b,))) == [True, False, False, False]
    assert inside(Difference(a, (b,)).mirrored()) == [True, True, False, False]  # the hole moves to x = -15
    lo, hi = Intersection((a, b)).bounds()
    assert np.allclose(lo, [5, -10, -10]) and np.allclose(hi, [10, 10, 10])
    quad = plate(*(np.array(p, float) for p in ([0, 0, 0], [20, 0, 0], [20, 10, 0], [0, 10, 0])), 4.0)
    q = np.array([[2, 8, 0], [18, 2, 1.5], [10, 5, 2.5], [25, 5, 0]], np.float32)
    d = np.min([s.sdf(q[:, 0], q[:, 1], q[:, 2]) for s in quad], axis=0)
    assert list(d < 0) == [True, True, False, False]  # both triangles filled, 4 mm thick
