"""Phantom v2 entry point: options and one case (see :mod:`sneakynet.phantom.v2`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sneakynet.labels import load_label_table
from sneakynet.phantom.generator import PhantomCase, _to_image
from sneakynet.phantom.grid import checked_spacing
from sneakynet.phantom.v2.body import build_body_v2
from sneakynet.phantom.v2.fov import FOV_KINDS, FOV_WEIGHTS, PADDING_VALUES, Scan, fit_scan
from sneakynet.phantom.v2.render import render_v2
from sneakynet.phantom.v2.skeleton import ARM_POSES, SkeletonV2

GENERATOR_VERSION = "2"
ARM_WEIGHTS = (0.3, 0.45, 0.1, 0.15)  # sides, raised, one_up, crossed


@dataclass(frozen=True)
class PhantomV2Options:
    """How to scan a v2 phantom; None (or "any") draws the setting per case from the seed.

    spacing: (x, y, z) mm; None: in-plane D/512 (0.6-1 mm, coarser above ``max_voxels``) and
        z = the slice thickness. fov: one of ``FOV_KINDS`` or "any". arms: one of ``ARM_POSES``
        or "any". noise_hu: noise standard deviation. slice_mm: slice thickness (z blur FWHM).
        kernel_mm: in-plane blur sigma. padding: value outside the reconstruction circle.
        max_rotation_deg: patient tilt on the table (0 keeps the anatomy axis-aligned).
    """

    spacing: tuple[float, float, float] | None = None
    fov: str = "any"
    arms: str = "any"
    noise_hu: float | None = None
    slice_mm: float | None = None
    kernel_mm: float | None = None
    padding: int | None = None
    max_rotation_deg: float = 3.0
    max_voxels: int = 12_000_000

    def __post_init__(self) -> None:
        if self.spacing is not None:
            object.__setattr__(self, "spacing", checked_spacing(self.spacing))
        if self.fov not in FOV_KINDS + ("any",):
            raise ValueError(f"unknown field of view {self.fov!r}; choose one of {', '.join(FOV_KINDS)} or any")
        if self.arms not in ARM_POSES + ("any",):
            raise ValueError(f"unknown arm pose {self.arms!r}; choose one of {', '.join(ARM_POSES)} or any")
        for name, value, hi in (("noise_hu", self.noise_hu, 500), ("slice_mm", self.slice_mm, 10),
                                ("kernel_mm", self.kernel_mm, 10)):
            if value is not None and not 0 <= value <= hi:
                raise ValueError(f"phantom {name} must be in 0..{hi}, got {value!r}")
        if self.padding is not None and self.padding not in PADDING_VALUES:
            raise ValueError(f"phantom padding must be one of {PADDING_VALUES}, got {self.padding!r}")
        if not 0 <= self.max_rotation_deg <= 30:
            raise ValueError(f"phantom max_rotation_deg must be in 0..30 degrees, got {self.max_rotation_deg!r}")
        if self.max_voxels < 1_000_000:
            raise ValueError(f"phantom max_voxels must be at least 1e6, got {self.max_voxels!r}")


@dataclass
class PhantomCaseV2(PhantomCase):
    """A v2 case: v1's fields plus how it was scanned and posed."""

    scan: Scan | None = None
    arms: str = ""
    contrast: str = ""


def generate_v2(seed: int, options: PhantomV2Options = PhantomV2Options()) -> PhantomCaseV2:
    """Case ``seed`` of phantom v2. The anatomy depends on the seed and arm pose only, so fields of
    view of one seed at one spacing (and no tilt) agree voxel for voxel where they overlap."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"phantom seed must be a non-negative integer, got {seed!r}")
    anat_rng, choice_rng, scan_rng, noise_rng = (np.random.default_rng(s)
                                                 for s in np.random.SeedSequence(int(seed)).spawn(4))
    arms = options.arms if options.arms != "any" else str(choice_rng.choice(ARM_POSES, p=ARM_WEIGHTS))
    kind = options.fov if options.fov != "any" else str(choice_rng.choice(FOV_KINDS, p=FOV_WEIGHTS))
    sk = SkeletonV2(anat_rng, arms)
    bones, _landmarks = sk.build()
    body = build_body_v2(sk, anat_rng)
    body.anatomy.bones = bones
    grid, scan, lo = fit_scan(body.anatomy, scan_rng, kind, options.spacing, options.slice_mm, options.kernel_mm,
                              options.noise_hu, options.padding, options.max_rotation_deg, options.max_voxels)
    out = render_v2(body, grid, lo, scan, noise_rng)
    table = load_label_table()
    counts = np.bincount(out.labels.ravel(), minlength=256)
    missing = [b.name for b in bones if counts[table.by_name(b.name).id] == 0]
    return PhantomCaseV2(_to_image(out.ct, grid), _to_image(out.labels, grid), int(seed), body.anatomy,
                         scan.rotation, out.placed_by_anchor, missing, scan, arms, body.phase)
