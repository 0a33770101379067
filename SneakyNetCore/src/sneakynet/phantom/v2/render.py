"""Drawing a phantom v2 case: v1's rasteriser for anatomy, then what a real scanner adds.

Order: bones and soft tissue by :func:`sneakynet.phantom.ct.render` (no blur, no noise; labels
by voxel centre), marrow texture, metal with its streaks, the scanner table, the slice-thickness
and kernel blur, correlated noise, and last the reconstruction circle (outside: padding value,
label 0). Texture and metal are functions of anatomy position, not of the grid, so two fields
of view of one case agree where they overlap (the table follows the trunk in view).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from sneakynet.phantom.ct import HU_MAX, Rendered, _union_sdf, render
from sneakynet.phantom.grid import Grid
from sneakynet.phantom.v2.body import METAL_HU, BodyV2
from sneakynet.phantom.v2.fov import Scan

_F32 = np.float32
HU_FLOOR = -1024  # lowest value inside the reconstruction circle
TABLE_HALF_WIDTH = 230.0


def _texture(hu: np.ndarray, labels: np.ndarray, grid: Grid, waves: np.ndarray) -> None:
    """Add the marrow's uneven density (sum of plane waves in anatomy mm) to every bone voxel."""
    k, j, i = np.nonzero(labels)
    if len(k) == 0:
        return
    idx = np.stack([i, j, k], axis=1).astype(np.float64)
    p = (grid.anat_origin + idx @ grid.anat_matrix.T).astype(_F32)
    tex = np.zeros(len(k), dtype=_F32)
    for wx, wy, wz, phase, amp in waves:
        tex += _F32(amp) * np.sin(p[:, 0] * _F32(wx) + p[:, 1] * _F32(wy) + p[:, 2] * _F32(wz) + _F32(phase))
    hu[k, j, i] += tex


def _metal(hu: np.ndarray, grid: Grid, parts, streaks: np.ndarray) -> None:
    """Paint the implants, then in every slice through metal the streaks that radiate from it."""
    mask = np.zeros(hu.shape, dtype=bool)
    for part in parts:
        sl = grid.index_box(*part.bounds())
        if sl is None:
            continue
        mask[sl] |= _union_sdf(grid, [part], sl) < 0
    if not mask.any():
        return
    jj, ii = np.mgrid[0:hu.shape[1], 0:hu.shape[2]]
    x, y = ii * grid.spacing[0], jj * grid.spacing[1]
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        j, i = np.nonzero(mask[k])
        cx, cy = i.mean() * grid.spacing[0], j.mean() * grid.spacing[1]
        r = np.hypot(x - cx, y - cy)
        band = np.zeros(r.shape, dtype=_F32)
        for angle, amp in streaks:
            across = (x - cx) * np.sin(angle) - (y - cy) * np.cos(angle)
            band += _F32(amp) * np.exp(-0.5 * (across / 1.5) ** 2, dtype=_F32)
        band *= np.exp(-r / 60.0, dtype=_F32) * _F32(min(1.0, len(i) / 20))
        hu[k] += np.where(hu[k] > -900, band, _F32(0))  # streaks in the patient, not in the air
    hu[mask] = METAL_HU


def _grid_xy(grid: Grid, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid-frame (scanner) x and y of every in-plane voxel, shapes (1, ny, nx)."""
    x = lo[0] + np.arange(grid.size[0]) * grid.spacing[0]
    y = lo[1] + np.arange(grid.size[1]) * grid.spacing[1]
    return x[None, None, :], y[None, :, None]


def _table(hu: np.ndarray, labels: np.ndarray, grid: Grid, lo: np.ndarray, body: BodyV2, scan: Scan) -> None:
    """The patient table under the back: a curved carbon shell around foam (z-invariant in the scanner)."""
    x, y = _grid_xy(grid, lo)
    top = scan.table_y - 6e-4 * x * x  # the cradle rises towards its edges (anterior = -y)
    depth = y - top
    plane = np.full(depth.shape[1:], np.nan, dtype=_F32)
    within = np.abs(x[0]) < TABLE_HALF_WIDTH
    plane[((depth[0] >= 0) & (depth[0] < 2.5)) & within] = body.table_hu[0]
    plane[((depth[0] >= 2.5) & (depth[0] < 40)) & within] = body.table_hu[1]
    plane[((depth[0] >= 40) & (depth[0] < 43)) & within] = body.table_hu[0]
    rows = ~np.isnan(plane)
    if not rows.any():
        return
    sub = hu[:, rows]
    free = (sub < -900) & (labels[:, rows] == 0)
    sub[free] = np.broadcast_to(plane[rows], sub.shape)[free]
    hu[:, rows] = sub


def _acquire(hu: np.ndarray, grid: Grid, scan: Scan, noise_rng: np.random.Generator) -> np.ndarray:
    """Slice-thickness and kernel blur, then noise with the grain of a CT kernel."""
    sz = scan.slice_mm / 2.355 / grid.spacing[2]
    sy, sx = scan.kernel_mm / grid.spacing[1], scan.kernel_mm / grid.spacing[0]
    if max(sz, sy, sx) > 0.15:
        hu = gaussian_filter(hu, sigma=[sz, sy, sx], truncate=3.0, mode="nearest")
    if scan.noise_hu > 0:
        noise = noise_rng.standard_normal(hu.shape, dtype=_F32)
        noise = gaussian_filter(noise, sigma=[0, 0.6, 0.6], truncate=2.5)  # in-plane grain
        hu += noise * _F32(scan.noise_hu / max(float(noise[::3, ::3, ::3].std()), 1e-6))
    return hu


def _circle(hu: np.ndarray, labels: np.ndarray, grid: Grid, lo: np.ndarray, scan: Scan) -> None:
    x, y = _grid_xy(grid, lo)
    cx, cy = scan.circle_centre
    outside = ((x[0] - cx) ** 2 + (y[0] - cy) ** 2) > scan.circle_radius ** 2
    hu[:, outside] = scan.padding
    labels[:, outside] = 0


def render_v2(body: BodyV2, grid: Grid, lo: np.ndarray, scan: Scan, noise_rng: np.random.Generator) -> Rendered:
    """Draw ``body`` as scanner ``scan`` sees it on ``grid`` (``lo``: its grid-frame corner)."""
    out = render(body.anatomy, grid, 0.0, 0.0, noise_rng)
    hu = out.ct.astype(_F32)
    labels = out.labels
    _texture(hu, labels, grid, body.texture)
    _metal(hu, grid, body.metal, body.streaks)
    _table(hu, labels, grid, lo, body, scan)
    hu = _acquire(hu, grid, scan, noise_rng)
    np.clip(hu, HU_FLOOR, HU_MAX, out=hu)
    _circle(hu, labels, grid, lo, scan)
    return Rendered(np.rint(hu).astype(np.int16), labels, out.placed_by_anchor, out.missing)
