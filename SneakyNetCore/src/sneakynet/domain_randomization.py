"""Domain randomisation of training patches: make phantom patches look like the many ways real CT differs.

A network trained on phantoms meets real scans whose soft tissue has other values and contrast,
whose slices are thicker and blurrier, and whose field of view ends inside the body (the top or
bottom of the scan, and the scanner's reconstruction circle, outside of which the image holds a
padding value). :func:`draw` picks one sample's random numbers (always all of them, in a fixed
order, so a sample's patch depends only on its seed); :func:`randomize_intensity` and
:func:`crop_field_of_view` apply them to every level of one sample consistently:

* every level shares one centre; level ``k`` has spacing ``spacing * 2^k``, so blur sigmas and the
  resolution change are set in millimetres and converted per level;
* the intensity curve is applied in Hounsfield units through the run's :class:`CTNormalization`
  (on context levels to the pooled image: a close approximation where the curve is smooth);
* the field-of-view region is one region in world millimetres around the common centre. Target
  voxels outside it get the padding value and background labels; a context voxel gets the share of
  its ``2^k``-block that lies inside times its value plus the rest times the padding value (what
  pooling the padded image gives where the block is uniform), and background labels where the
  block-centre voxel that the context labels are read from (:mod:`sneakynet.pyramid`) lies outside,
  so labels agree exactly with the target's on every level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sneakynet.intensity import CTNormalization, normalize_ct

SOFT_KNOTS_HU = (-200.0, -100.0, 0.0, 100.0, 250.0)  # fat .. muscle, organs, marrow: the curve moves these
FIXED_BELOW_HU, FIXED_ABOVE_HU = -400.0, 500.0  # air, lung and dense bone keep their values
PIVOT_HU = 25.0  # contrast changes about water/soft tissue
PADDING_HU = (-1024.0, -2048.0, -3024.0)  # what scanners write outside the reconstructed field of view

__all__ = ["DomainDraw", "draw", "remap_curve", "randomize_intensity", "crop_field_of_view", "fov_masks"]


@dataclass(frozen=True)
class DomainDraw:
    """One sample's random choices (``None``: that operation is off for this sample)."""

    remap: tuple[tuple[float, ...], tuple[float, ...]] | None  # knots (HU) and their new values (HU)
    blur_sigma_mm: tuple[float, float, float] | None  # Gaussian sigma per array axis
    resample_mm: tuple[float, float, float] | None  # acquisition resolution per array axis
    plane: tuple[float, int] | None  # (kept distance of the cut from the centre in mm, direction +1/-1)
    circle: tuple[float, float, float] | None  # (radius mm, centre offset a mm, centre offset b mm)
    padding_hu: float


def draw(rng: np.random.Generator, aug, spacing: Sequence[float], si_axis: int, reach_mm: float) -> DomainDraw:
    """Draw every random number of one sample in a fixed order, whichever operations are on.

    ``aug`` is the :class:`sneakynet.sampler.AugmentOptions`; ``spacing`` is the target level's
    (array order), ``si_axis`` the array axis along the body (slice axis, cylinder axis) and
    ``reach_mm`` half the extent of the widest context patch along it.
    """
    u = rng.random(5)
    shifts = rng.uniform(-1.0, 1.0, len(SOFT_KNOTS_HU)) * aug.remap_shift_hu
    contrast = rng.uniform(*aug.remap_contrast_range)
    thickness = rng.uniform(*aug.slice_thickness_mm)
    inplane = rng.uniform(*aug.inplane_blur_mm, 2)
    coarsest = [aug.resample_inplane_mm_max] * 3
    coarsest[si_axis] = aug.resample_si_mm_max
    resolution = [rng.uniform(s, max(s, c)) for s, c in zip(spacing, coarsest)]  # never finer than the grid
    plane_d, plane_dir = rng.uniform(-0.25, 1.0) * reach_mm, (1 if rng.random() < 0.5 else -1)
    radius, circle_t = rng.uniform(*aug.fov_radius_mm), rng.uniform(-0.25, 1.0) * reach_mm
    theta = rng.uniform(0.0, 2.0 * math.pi)
    padding = PADDING_HU[int(rng.integers(len(PADDING_HU)))]

    remap = None
    if u[0] < aug.p_intensity_remap:
        new = [PIVOT_HU + contrast * (x - PIVOT_HU) + s for x, s in zip(SOFT_KNOTS_HU, shifts)]
        remap = (SOFT_KNOTS_HU, tuple(float(v) for v in new))
    blur = None
    if u[1] < aug.p_blur:
        fwhm = [float(inplane[0]), float(inplane[1])]
        fwhm.insert(si_axis, float(thickness))  # a slice profile of FWHM = slice thickness
        blur = tuple(f / (2.0 * math.sqrt(2.0 * math.log(2.0))) for f in fwhm)
    resample = tuple(float(r) for r in resolution) if u[2] < aug.p_resample else None
    plane = (float(plane_d), plane_dir) if u[3] < aug.p_plane_cut else None
    # the circle's edge passes ``circle_t`` mm from the centre (inside by circle_t) in direction theta
    dist = radius - circle_t
    circle = (float(radius), dist * math.cos(theta), dist * math.sin(theta)) if u[4] < aug.p_fov_circle else None
    return DomainDraw(remap, blur, resample, plane, circle, float(padding))  # type: ignore[arg-type]


def remap_curve(knots: Sequence[float], values: Sequence[float]):
    """A smooth monotone curve HU -> HU through ``(knots, values)``, the identity at and beyond
    ``FIXED_BELOW_HU`` and ``FIXED_ABOVE_HU`` (PCHIP: monotone data give a monotone C1 curve)."""
    from scipy.interpolate import PchipInterpolator

    x = np.concatenate([[FIXED_BELOW_HU - 100, FIXED_BELOW_HU], knots, [FIXED_ABOVE_HU, FIXED_ABOVE_HU + 100]])
    y = np.concatenate([x[:2], values, x[-2:]])
    if np.any(np.diff(y) <= 0):
        raise ValueError(f"intensity remap values must increase, got {list(values)} at {list(knots)}")
    curve = PchipInterpolator(x, y)
    grid = np.linspace(FIXED_BELOW_HU, FIXED_ABOVE_HU, 181)
    table = curve(grid)

    def apply(hu: np.ndarray) -> np.ndarray:
        inside = (hu > FIXED_BELOW_HU) & (hu < FIXED_ABOVE_HU)
        return np.where(inside, np.interp(hu, grid, table), hu)

    return apply


def randomize_intensity(images: list[np.ndarray], d: DomainDraw, spacing: Sequence[float],
                        normalization: CTNormalization) -> None:
    """In place on each level ``k`` (float32, normalised): soft-tissue curve, blur, resolution change."""
    table = _normalised_table(remap_curve(*d.remap), normalization) if d.remap is not None else None
    for k, im in enumerate(images):
        level_spacing = np.asarray(spacing, dtype=float) * 2 ** k
        if table is not None:
            _apply_table(im, table)
        if d.blur_sigma_mm is not None:
            from scipy.ndimage import gaussian_filter

            sigma = [s / sp if s / sp >= 0.1 else 0.0 for s, sp in zip(d.blur_sigma_mm, level_spacing)]
            if any(sigma):
                im[...] = gaussian_filter(im, sigma, mode="nearest", truncate=3.0)
        if d.resample_mm is not None:
            _resample(im, [r / sp for r, sp in zip(d.resample_mm, level_spacing)])


def _normalised_table(curve, normalization: CTNormalization) -> tuple[float, float, np.ndarray]:
    """The curve as a uniform lookup table in normalised units, ``(start, 1 / step, values)``, over
    ``FIXED_BELOW_HU .. FIXED_ABOVE_HU`` (values clipped like the image)."""
    grid = np.linspace(FIXED_BELOW_HU, FIXED_ABOVE_HU, 451)  # 2 HU steps
    values = np.clip(curve(grid), normalization.clip_min, normalization.clip_max)
    step = (grid[1] - grid[0]) / normalization.scale
    start = (grid[0] - normalization.center) / normalization.scale
    return start, 1.0 / step, ((values - normalization.center) / normalization.scale).astype(np.float32)


def _apply_table(im: np.ndarray, table: tuple[float, float, np.ndarray]) -> None:
    """In place: linear interpolation in the uniform table; values outside it are unchanged
    (np.interp's binary search is several times slower on a patch)."""
    start, inv_step, values = table
    t = (im - np.float32(start)) * np.float32(inv_step)
    inside = (t > 0) & (t < values.size - 1)
    t = t[inside]
    i = t.astype(np.int32)
    frac = t - i
    im[inside] = values[i] + frac * (values[i + 1] - values[i])


def _resample(im: np.ndarray, ratio: Sequence[float]) -> None:
    """In place: average ``im`` down to ``1/ratio`` of its voxels per axis (a coarser acquisition),
    then interpolate back (trilinear); axes with ratio <= 1 keep their resolution."""
    import torch
    import torch.nn.functional as F

    small = [max(1, round(n / r)) if r > 1.0 else n for n, r in zip(im.shape, ratio)]
    if list(small) == list(im.shape):
        return
    t = torch.from_numpy(np.ascontiguousarray(im))[None, None]
    low = F.adaptive_avg_pool3d(t, small)
    im[...] = F.interpolate(low, size=im.shape, mode="trilinear", align_corners=False)[0, 0].numpy()


def fov_masks(d: DomainDraw, size: int, spacing: Sequence[float], si_axis: int, k: int
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(inside_share, label_kept)`` of level ``k``, broadcastable to ``(size,)*3``; None when no
    field-of-view cut is drawn. Computed on the target grid over the level's extent (``size * 2^k``
    voxels per axis around the common centre), then pooled (image share) or read at the block
    centres (labels, as :class:`sneakynet.pyramid.LabelPyramid` does)."""
    if d.plane is None and d.circle is None:
        return None
    f = 2 ** k
    n = size * f
    pos = [(np.arange(n) + 0.5 - n / 2) * sp for sp in spacing]  # mm from the common centre, per axis
    pick = slice(f // 2, None, f) if k else slice(None)
    share = np.ones((1, 1, 1), np.float32)
    kept = np.ones((1, 1, 1), bool)
    if d.plane is not None:
        dist, direction = d.plane
        line = direction * pos[si_axis] <= dist
        shape = [1, 1, 1]
        shape[si_axis] = size
        share = share * line.reshape(size, f).mean(1).astype(np.float32).reshape(shape)
        kept = kept & line[pick].reshape(shape)
    if d.circle is not None:
        radius, ca, cb = d.circle
        a, b = [i for i in range(3) if i != si_axis]
        disc = (pos[a][:, None] - ca) ** 2 + (pos[b][None, :] - cb) ** 2 <= radius ** 2
        shape = [size, size, size]
        shape[si_axis] = 1
        share = share * disc.reshape(size, f, size, f).mean((1, 3)).astype(np.float32).reshape(shape)
        kept = kept & disc[pick, pick].reshape(shape)
    return share, kept


def crop_field_of_view(image: np.ndarray, labels: np.ndarray, d: DomainDraw, spacing: Sequence[float],
                       si_axis: int, k: int, normalization: CTNormalization) -> None:
    """In place on level ``k``: outside the drawn field of view the image becomes the padding value
    (normalised and clipped) and the labels background."""
    masks = fov_masks(d, image.shape[0], spacing, si_axis, k)
    if masks is None:
        return
    share, kept = masks
    pad = np.float32(normalize_ct(np.array([d.padding_hu], np.float32), normalization)[0])
    if share.min() < 1.0:
        image *= share
        image += (1.0 - share) * pad
    labels[~np.broadcast_to(kept, labels.shape)] = 0
