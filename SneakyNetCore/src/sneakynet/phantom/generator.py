"""Public entry points of the phantom generator: options, one case, a whole dataset folder."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sneakynet.io import write_image, write_json
from sneakynet.labels import load_label_table
from sneakynet.phantom.body import build_body
from sneakynet.phantom.ct import render
from sneakynet.phantom.grid import Grid, checked_spacing
from sneakynet.phantom.model import Anatomy
from sneakynet.phantom.shapes import rotation_matrix
from sneakynet.phantom.skeleton import SkeletonBuilder

GENERATOR_VERSION = "1"
SIZE_PRESETS: dict[str, dict] = {
    "default": {},  # random spacing in [1.5, 3] mm per case: about 210 x 155 x 330 voxels at 2 mm
    "small": {"spacing": (4.0, 4.0, 4.0)},  # about 105 x 78 x 165 voxels: fast CPU training and tests
}
RANDOM_SPACING_MM = (1.5, 3.0)


@dataclass(frozen=True)
class PhantomOptions:
    """How to draw a phantom case (the anatomy itself depends only on the seed).

    spacing: (x, y, z) voxel size in mm; None draws in-plane and slice spacing independently
        from [1.5, 3] mm per case (so cases are anisotropic).
    fov_scale: scales the field of view about its centre; 1 fits the whole body from the vertex
        to just below the fingertips and the lesser trochanters, plus a random margin.
        Below 1 bones at the border are cut off (labels may then be missing).
    noise_hu: standard deviation of the added Gaussian noise in HU.
    blur_mm: sigma of the Gaussian point-spread function in mm (partial-volume blur).
    max_rotation_deg: patient rotation is drawn up to this angle about z and 0.6 times it about x, y.
    rotate_anatomy: False puts the rotation into the image direction matrix (the anatomy stays
        axis-aligned in physical LPS space, the voxel axes are oblique); True keeps the direction
        the identity and rotates the anatomy in physical space about the FOV centre.
    """

    spacing: tuple[float, float, float] | None = None
    fov_scale: float = 1.0
    noise_hu: float = 20.0
    blur_mm: float = 0.7
    max_rotation_deg: float = 5.0
    rotate_anatomy: bool = False

    def __post_init__(self) -> None:
        if self.spacing is not None:
            object.__setattr__(self, "spacing", checked_spacing(self.spacing))
        if not 0.2 <= self.fov_scale <= 3:
            raise ValueError(f"phantom fov_scale must be in 0.2..3, got {self.fov_scale!r}")
        if not 0 <= self.noise_hu <= 500:
            raise ValueError(f"phantom noise_hu must be in 0..500 HU, got {self.noise_hu!r}")
        if not 0 <= self.blur_mm <= 10:
            raise ValueError(f"phantom blur_mm must be in 0..10 mm, got {self.blur_mm!r}")
        if not 0 <= self.max_rotation_deg <= 30:
            raise ValueError(f"phantom max_rotation_deg must be in 0..30 degrees, got {self.max_rotation_deg!r}")


def options_for_size(size: str, **overrides) -> PhantomOptions:
    """Options of a named size preset ("default" or "small"), with ``overrides`` applied."""
    if size not in SIZE_PRESETS:
        raise ValueError(f"unknown phantom size {size!r}; choose one of {', '.join(SIZE_PRESETS)}")
    return PhantomOptions(**{**SIZE_PRESETS[size], **overrides})


@dataclass
class PhantomCase:
    """One generated case: images plus what was drawn where (anatomy LPS mm)."""

    ct: sitk.Image
    labels: sitk.Image
    seed: int
    anatomy: Anatomy
    rotation: np.ndarray
    placed_by_anchor: list[str] = field(default_factory=list)  # tiny bones given the voxel at their anchor
    missing: list[str] = field(default_factory=list)  # bones cut off by a reduced field of view

    @property
    def landmarks(self) -> dict[str, np.ndarray]:
        return self.anatomy.landmarks


def build_anatomy(rng: np.random.Generator) -> Anatomy:
    """The random anatomy of one case (skeleton, soft tissue, organs) in anatomy LPS mm."""
    sk = SkeletonBuilder(rng)
    bones, landmarks = sk.build()
    anat = build_body(sk, rng)
    anat.bones = bones
    trochanter_z = landmarks["lesser_trochanter_left"][2]  # the right one is its mirror image
    anat.fov_bottom = float(min(landmarks["lowest_fingertip"][2], trochanter_z - 8 * sk.s))
    return anat


def _fov_points(anat: Anatomy) -> np.ndarray:
    """Points that must lie inside the field of view (anatomy mm)."""
    pts = []
    for bone in anat.bones:
        for part in bone.parts:
            lo, hi = part.bounds()
            pts.append(np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]))
    for shape, fat in anat.envelope:
        lo, hi = shape.bounds()
        lo, hi = lo - fat, hi + fat
        pts.append(np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]))
    zs = np.linspace(anat.trunk.z_lo, anat.trunk.z_hi, 40)
    pts.append(anat.trunk.outline_points(zs, grow=anat.trunk_fat_mm))
    p = np.vstack(pts)
    return p[(p[:, 2] >= anat.fov_bottom) & (p[:, 2] <= anat.fov_top + 1.0)]


def _patient_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.radians(rng.uniform(-1, 1, size=3) * max_deg * np.array([0.6, 0.6, 1.0]))
    return rotation_matrix(np.array([0, 0, 1.0]), az) @ rotation_matrix(np.array([0, 1.0, 0]), ay) @ \
        rotation_matrix(np.array([1.0, 0, 0]), ax)


def fit_grid(anat: Anatomy, rng: np.random.Generator, options: PhantomOptions) -> tuple[Grid, np.ndarray]:
    """Spacing, rotation and a field of view around the whole anatomy (random margins)."""
    sp_xy, sp_z = rng.uniform(*RANDOM_SPACING_MM, size=2)
    spacing = options.spacing if options.spacing is not None else (float(sp_xy), float(sp_xy), float(sp_z))
    R = _patient_rotation(rng, options.max_rotation_deg)
    margin_lo = np.array([rng.uniform(5, 30), rng.uniform(5, 30), rng.uniform(5, 25)])
    margin_hi = np.array([rng.uniform(5, 30), rng.uniform(5, 30), rng.uniform(5, 20)])
    pts = _fov_points(anat)
    c0 = pts.mean(axis=0)
    Q = R if options.rotate_anatomy else R.T  # anatomy offset -> grid-axis coordinates
    q = (pts - c0) @ Q.T
    lo, hi = q.min(axis=0) - margin_lo, q.max(axis=0) + margin_hi
    # scanners reconstruct a near-square axial field of view: pad y (air) to a random x:y aspect
    min_y = rng.uniform(0.65, 0.8) * (hi[0] - lo[0])
    grow = max(0.0, min_y - (hi[1] - lo[1]))
    lo[1], hi[1] = lo[1] - grow / 2, hi[1] + grow / 2
    centre = c0 + Q.T @ ((lo + hi) / 2)
    extent = (hi - lo) * options.fov_scale
    return Grid.around(centre, extent, spacing, R, options.rotate_anatomy), R


def _to_image(arr: np.ndarray, grid: Grid) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(grid.spacing)
    img.SetOrigin(tuple(float(v) for v in grid.origin))
    img.SetDirection(tuple(float(v) for v in grid.direction.ravel()))
    return img


def generate(seed: int, options=None, version: int = 1) -> PhantomCase:
    """Generate case ``seed`` with all details (see :func:`generate_case` for the images only).

    ``version`` 1 (``PhantomOptions``) is the phantom the bundled demo model was trained on;
    version 2 (``PhantomV2Options``) looks like real CT (:mod:`sneakynet.phantom.v2`).
    """
    if version == 2:
        from sneakynet.phantom.v2 import PhantomV2Options, generate_v2

        options = PhantomV2Options() if options is None else options
        if not isinstance(options, PhantomV2Options):
            raise ValueError(f"phantom version 2 takes PhantomV2Options, got {type(options).__name__}")
        return generate_v2(seed, options)
    if version != 1:
        raise ValueError(f"unknown phantom version {version!r}; choose 1 or 2")
    options = PhantomOptions() if options is None else options
    if not isinstance(options, PhantomOptions):
        raise ValueError(f"phantom version 1 takes PhantomOptions, got {type(options).__name__}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"phantom seed must be a non-negative integer, got {seed!r}")
    anat_rng, geom_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
    anat = build_anatomy(anat_rng)
    grid, R = fit_grid(anat, geom_rng, options)
    out = render(anat, grid, options.blur_mm, options.noise_hu, noise_rng)
    return PhantomCase(_to_image(out.ct, grid), _to_image(out.labels, grid), int(seed), anat, R,
                       out.placed_by_anchor, out.missing)


def generate_case(seed: int, options=None, version: int = 1) -> tuple[sitk.Image, sitk.Image]:
    """(ct int16 HU, labels uint8) on the same grid, in ITK LPS physical space.

    Left bones (``*_left``) lie at +x (patient left). The same seed, options and version give
    identical voxels; in v1 the anatomy depends on the seed only, so one seed at 2 and 4 mm is
    the same body. ``version`` as in :func:`generate` (default 1).
    """
    case = generate(seed, options, version)
    return case.ct, case.labels


def _v2_options():
    from sneakynet.phantom.v2 import PhantomV2Options

    return PhantomV2Options()


def case_name(seed: int) -> str:
    """File stem of the case drawn from ``seed`` (e.g. ``phantom_007``)."""
    return f"phantom_{seed:03d}"


def write_cases(out_dir: str | os.PathLike, n: int, seed: int, options=None,
                progress: bool = True, version: int = 1) -> list[Path]:
    """Write an nnU-Net raw style dataset of ``n`` cases (case i uses seed + i) of phantom ``version``.

    ``out_dir/imagesTr/phantom_<seed+i>_0000.nii.gz``, ``out_dir/labelsTr/phantom_<seed+i>.nii.gz``
    and ``out_dir/dataset.json`` (written last). Every file is written atomically. Returns the
    image paths.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of phantom cases must be a positive integer, got {n!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"phantom seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if version not in (1, 2):
        raise ValueError(f"unknown phantom version {version!r}; choose 1 or 2")
    if options is None:
        options = PhantomOptions() if version == 1 else _v2_options()
    seeds = list(range(seed, seed + n))
    iterator = seeds
    if progress:
        from tqdm import tqdm

        iterator = tqdm(seeds, desc="phantoms", unit="case")
    written = []
    for s in iterator:
        ct, labels = generate_case(s, options, version)
        name = case_name(s)
        written.append(write_image(ct, out / "imagesTr" / f"{name}_0000.nii.gz"))
        write_image(labels, out / "labelsTr" / f"{name}.nii.gz")
    table = load_label_table()
    data = {
        "name": "SneakyNetPhantoms",
        "description": "Synthetic upper-body CT phantoms with 125 bone labels (sneakynet phantom). "
                       "Not real patients: for tests, demos and ablations only.",
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{b.name: b.id for b in table}},
        "numTraining": n,
        "file_ending": ".nii.gz",
        "sneakynet_label_table_version": table.version,
        "sneakynet_phantom": {"generator_version": GENERATOR_VERSION if version == 1 else "2", "seeds": seeds,
                              "options": asdict(options)},
    }
    write_json(data, out / "dataset.json")
    return written
