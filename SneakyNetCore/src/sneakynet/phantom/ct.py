"""Drawing an :class:`~sneakynet.phantom.model.Anatomy` on a voxel grid: HU volume and label map.

Labels are assigned by voxel centre (a voxel belongs to the last-drawn bone whose surface
encloses its centre). Intensities are anti-aliased (each bone blends into its surroundings
by the fraction of the voxel it covers, estimated from the signed distance), then blurred by
the scanner's point-spread function and overlaid with Gaussian noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from sneakynet.labels import load_label_table
from sneakynet.phantom.grid import Grid
from sneakynet.phantom.model import Anatomy, Tissue

_F32 = np.float32
_FAR = _F32(1e4)
SLAB = 24  # k-slices per block for whole-volume work (bounds temporary memory)
HU_MIN, HU_MAX = -1024, 3071


@dataclass
class Rendered:
    """Arrays in numpy order [k, j, i]: HU (int16) and labels (uint8), plus drawing notes."""

    ct: np.ndarray
    labels: np.ndarray
    placed_by_anchor: list[str]  # bones that covered no voxel centre and got their anchor voxel
    missing: list[str]  # bones without any voxel (only when the field of view cuts them off)


def _relative(inner: tuple[slice, ...], outer: tuple[slice, ...]) -> tuple[slice, ...]:
    """``inner`` (clipped to ``outer``) as slices relative to the start of ``outer``."""
    out = []
    for a, b in zip(inner, outer):
        start, stop = max(a.start, b.start), min(a.stop, b.stop)
        out.append(slice(start - b.start, max(stop, start) - b.start))
    return tuple(out)


def _slabs(sl: tuple[slice, slice, slice]):
    for k0 in range(sl[0].start, sl[0].stop, SLAB):
        yield slice(k0, min(k0 + SLAB, sl[0].stop)), sl[1], sl[2]


def _union_sdf(grid: Grid, parts, sl: tuple[slice, slice, slice]) -> np.ndarray:
    """Union distance of ``parts`` on the sub-grid ``sl``, each part evaluated only inside its own box."""
    shape = tuple(s.stop - s.start for s in sl)
    d = np.full(shape, _FAR, dtype=_F32)
    for part in parts:
        psl = grid.index_box(*part.bounds(), pad_mm=max(grid.spacing))
        if psl is None:
            continue
        rel = _relative(psl, sl)
        if any(r.stop <= r.start for r in rel):
            continue
        abs_sl = tuple(slice(o.start + r.start, o.start + r.stop) for o, r in zip(sl, rel))
        x, y, z = grid.coords(abs_sl)
        np.minimum(d[rel], part.sdf(x, y, z), out=d[rel])
    return d


def render(anat: Anatomy, grid: Grid, blur_mm: float, noise_hu: float, noise_rng: np.random.Generator
           ) -> Rendered:
    """Draw ``anat`` on ``grid``; see module docstring."""
    h = float(np.mean(grid.spacing))
    lean, body, cavity = _body_distances(anat, grid, h)
    hu, inside = _layer_hu(anat, lean, body, cavity)
    del lean, body
    _paint_organs_and_lungs(anat, grid, hu, cavity, inside)
    del cavity, inside
    table = load_label_table()
    labels = _draw_bones(anat, grid, hu, h, table)
    placed = _place_missing(anat, grid, labels, hu, table)
    counts = np.bincount(labels.ravel(), minlength=256)
    missing = [b.name for b in anat.bones if counts[table.by_name(b.name).id] == 0]
    ct = _scanner(hu, grid, blur_mm, noise_hu, noise_rng)
    return Rendered(ct, labels, placed, missing)


def _body_distances(anat: Anatomy, grid: Grid, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distances to the lean (muscle) and skin surfaces, and the visceral cavity mask.

    The trunk is evaluated in slabs (bounded memory); the envelope shapes (head, neck, limbs)
    are merged in by union, each with its own fat thickness.
    """
    lean = np.full(grid.shape, _FAR, dtype=_F32)
    body = np.full(grid.shape, _FAR, dtype=_F32)
    cavity = np.zeros(grid.shape, dtype=bool)
    fat = anat.trunk_fat_mm
    tsl = grid.index_box(*anat.trunk.bounds(grow=fat + h))
    if tsl is not None:
        for sl in _slabs(tsl):
            x, y, z = grid.coords(sl)
            d = anat.trunk.sdf(x, y, z)
            np.minimum(lean[sl], d, out=lean[sl])
            np.minimum(body[sl], d - _F32(fat), out=body[sl])
            cavity[sl] = anat.cavity.sdf(x, y, z) < 0
    for shape_, f in anat.envelope:
        sl = grid.index_box(*shape_.bounds(), pad_mm=f + h)
        if sl is None:
            continue
        x, y, z = grid.coords(sl)
        d = shape_.sdf(x, y, z)
        np.minimum(lean[sl], d, out=lean[sl])
        np.minimum(body[sl], d - _F32(f), out=body[sl])
    return lean, body, cavity


def _layer_hu(anat: Anatomy, lean: np.ndarray, body: np.ndarray, cavity: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """HU of the soft-tissue layers (air | skin | fat | muscle, viscera inside the cavity) and the body mask.

    ``cavity`` is narrowed in place to the muscle region, so organs stay inside the body wall.
    """
    hu_t = anat.hu
    hu = np.full(lean.shape, hu_t.air, dtype=_F32)
    inside = body <= 0
    hu[inside] = hu_t.skin
    deep = body <= -_F32(anat.skin_mm)
    muscle = deep & (lean <= 0)
    hu[deep & ~muscle] = hu_t.fat
    hu[muscle] = hu_t.muscle
    cavity &= muscle
    hu[cavity] = hu_t.viscera
    return hu, inside


def _paint(grid: Grid, hu: np.ndarray, t: Tissue, cavity: np.ndarray, inside: np.ndarray, lung_hu: float) -> None:
    """Set the voxels of tissue ``t`` to its HU, limited to the region it must stay within."""
    lo, hi = t.bounds()
    sl = grid.index_box(lo, hi)
    if sl is None:
        return
    m = _union_sdf(grid, t.parts, sl) < 0
    if t.within == "cavity":
        m &= cavity[sl]
    elif t.within == "body":
        m &= inside[sl]
    elif t.within == "lung":
        m &= hu[sl] == _F32(lung_hu)
    hu[sl][m] = t.hu


def _paint_organs_and_lungs(anat: Anatomy, grid: Grid, hu: np.ndarray, cavity: np.ndarray, inside: np.ndarray
                            ) -> None:
    """Organs drawn before the lungs, the lungs (inside the cavity), then organs drawn over them."""
    lung_hu = anat.hu.lung
    for t in anat.organs_before_lungs:
        _paint(grid, hu, t, cavity, inside, lung_hu)
    lsl = grid.index_box(*anat.lungs.bounds())
    if lsl is not None:
        for sl in _slabs(lsl):
            x, y, z = grid.coords(sl)
            m = anat.lungs.mask(x, y, z) & cavity[sl]
            hu[sl][m] = lung_hu
    for t in anat.organs_after_lungs:
        _paint(grid, hu, t, cavity, inside, lung_hu)


def _draw_bones(anat: Anatomy, grid: Grid, hu: np.ndarray, h: float, table) -> np.ndarray:
    """Label map of the bones (by voxel centre) and their HU blended into ``hu`` over about one voxel."""
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for bone in anat.bones:
        bid = table.by_name(bone.name).id
        lo, hi = bone.bounds()
        sl = grid.index_box(lo, hi, pad_mm=h)
        if sl is None:
            continue
        d = _union_sdf(grid, bone.parts, sl)
        labels[sl][d < 0] = bid
        cover = np.clip(_F32(0.5) - d / _F32(h), 0, 1)
        touched = cover > 0
        value = np.where(d > -_F32(bone.cortex_mm), _F32(bone.hu_cortex), _F32(bone.hu_core))
        sub = hu[sl]
        sub[touched] += cover[touched] * (value[touched] - sub[touched])
    return labels


def _scanner(hu: np.ndarray, grid: Grid, blur_mm: float, noise_hu: float, noise_rng: np.random.Generator
             ) -> np.ndarray:
    """Scanner effects on ``hu``: point-spread blur, Gaussian noise, HU clipping, rounding to int16."""
    if blur_mm > 0:
        sigma = [blur_mm / grid.spacing[2], blur_mm / grid.spacing[1], blur_mm / grid.spacing[0]]
        hu = gaussian_filter(hu, sigma=sigma, truncate=3.0, mode="nearest")
    if noise_hu > 0:
        hu += noise_rng.standard_normal(hu.shape, dtype=_F32) * _F32(noise_hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return np.rint(hu).astype(np.int16)


def _place_missing(anat: Anatomy, grid: Grid, labels: np.ndarray, hu: np.ndarray, table) -> list[str]:
    """Give every bone that covers no voxel centre the voxel nearest its anchor point.

    Only tiny bones at coarse spacing need this; a neighbouring voxel is used if the nearest one
    is the last voxel of another bone. Returns the names of the bones placed this way.
    """
    counts = np.bincount(labels.ravel(), minlength=256)
    placed = []
    for bone in anat.bones:
        bid = table.by_name(bone.name).id
        if counts[bid] > 0:
            continue
        idx = grid.nearest_index(bone.anchor)
        if idx is None:
            continue
        candidates = [idx] + [
            (idx[0] + a, idx[1] + b, idx[2] + c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
            if (a, b, c) != (0, 0, 0)
        ]
        for cand in candidates:
            if not all(0 <= cand[i] < labels.shape[i] for i in range(3)):
                continue
            old = labels[cand]
            if old == 0 or counts[old] > 1:
                counts[old] -= 1
                labels[cand] = bid
                counts[bid] += 1
                hu[cand] = (bone.hu_cortex + bone.hu_core) / 2
                placed.append(bone.name)
                break
    return placed
