"""Clean-up of a predicted label map with the CT it came from.

A network's labels on a real scan have three kinds of error that the CT and anatomy can fix:

* stray fragments: a bone's label also appears as small islands elsewhere (a piece of "femur" in
  the pelvis). Each bone is one connected piece, so every island that is not the bone's largest
  piece takes the label of the bone it touches most, or is dropped when it touches no bone and is
  small;
* holes: real bone is a thin dense cortex around marrow (42 % of real bone voxels are below
  150 HU), so a model that learnt "bright = bone" labels the shell and leaves the marrow empty. A
  plain HU gate would cut bones apart; instead each bone's enclosed cavities are filled, in 3D and
  slice by slice along the body axis (a long bone cut by the field of view is an open tube in 3D);
* labelled air or fat: voxels darker than any bone tissue (``drop_below_hu``) lose their label;
* anatomy (each lever a separate option, off by default; :mod:`sneakynet.anatomy`): sided bones
  on their side of the body midline, vertebrae in order from head to feet, ribs numbered from the
  vertebra they touch.

Named step sets (:data:`PRESETS`): ``none``; ``anatomy``, sides and vertebra order only (the default of
``sneakynet segment``, ``sneakynet demo`` and the Slicer module); ``full``, anatomy plus the three
clean-up steps. :class:`sneakynet.infer.Predictor` post-processes only when asked.

Every step works inside each bone's bounding box, so the cost follows the bones, not the volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from sneakynet.anatomy import (IDENTITY, PatientFrame, fix_sides, number_ribs, order_vertebra_pieces,
                               order_vertebrae)

_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity: ribs one voxel thick stay one piece


@dataclass(frozen=True)
class PostprocessOptions:
    """What :func:`postprocess` does; ``None`` or ``False`` switches a step off.

    drop_below_hu       labelled voxels below this HU are not bone (air, fat) and become background
    fragments           relabel or drop pieces of a bone that are not its largest piece
    min_island_fraction an isolated piece (touching no other bone) is kept when it holds at least
                        this fraction of its bone's largest piece, else dropped
    fill_cavities       fill each bone's enclosed cavities (3D) and its holes in each axial slice
    max_hole_mm2        an axial hole larger than this is not marrow (e.g. the pelvis' foramina)
    fill_above_hu       a cavity voxel darker than this is not marrow and stays unlabelled
    sides               a sided bone's piece whose centre lies over ``side_margin_mm`` on the other side
                        of the body midline takes its twin's label
    vertebra_order      vertebra levels made monotone from head to feet: "slices" (each axial slice's
                        vertebra voxels take one level) or "pieces" (only out-of-order connected
                        pieces change); None = off
    rib_numbers         a rib piece touching a thoracic vertebra takes that vertebra's number
    """

    drop_below_hu: float | None = -200.0
    fragments: bool = True
    min_island_fraction: float = 0.1
    fill_cavities: bool = True
    max_hole_mm2: float = 1200.0
    fill_above_hu: float | None = -300.0
    sides: bool = False
    side_margin_mm: float = 15.0
    vertebra_order: str | None = None
    rib_numbers: bool = False


# named step sets for the command line, the demo, the benchmark and the Slicer module (chosen on phantoms
# and the DICOM slab, docs/realct.md "Anatomy levers"): anatomy relabels only, full also cleans pieces
PRESETS: dict[str, PostprocessOptions] = {
    "none": PostprocessOptions(drop_below_hu=None, fragments=False, fill_cavities=False),
    "anatomy": PostprocessOptions(drop_below_hu=None, fragments=False, fill_cavities=False, sides=True,
                                  vertebra_order="pieces"),
    "full": PostprocessOptions(sides=True, vertebra_order="pieces"),
}
DEFAULT_PRESET = "anatomy"


def preset_options(name: str) -> PostprocessOptions | None:
    """The options of preset ``name`` (one of :data:`PRESETS`); None for ``none``, so a predictor skips
    the step entirely. An unknown name is a ValueError naming the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown post-processing preset {name!r}; choose one of {', '.join(PRESETS)}")
    return None if name == "none" else PRESETS[name]


def postprocess(labels: np.ndarray, hu: np.ndarray, spacing_zyx: tuple[float, float, float],
                options: PostprocessOptions = PostprocessOptions(),
                direction: Sequence[float] = IDENTITY) -> np.ndarray:
    """A cleaned copy of ``labels`` (z, y, x) given the CT ``hu`` on the same grid.

    ``spacing_zyx`` is the voxel size in mm in array order; the axial plane is (y, x);
    ``direction`` the image's direction cosines (SimpleITK order; the anatomy levers read head/feet
    and left/right from it). The input is not modified.
    """
    if labels.shape != hu.shape:
        raise ValueError(f"labels {labels.shape} and CT {hu.shape} must have the same shape")
    out = np.array(labels, copy=True)
    if options.drop_below_hu is not None:
        out[(out > 0) & (hu < options.drop_below_hu)] = 0
    if options.fragments:
        merge_fragments(out, options.min_island_fraction)
    if options.sides or options.vertebra_order or options.rib_numbers:
        frame = PatientFrame(spacing_zyx, direction)
        if options.sides:
            fix_sides(out, hu, frame, options.side_margin_mm)
        if options.vertebra_order == "slices":
            order_vertebrae(out, frame)
        elif options.vertebra_order == "pieces":
            order_vertebra_pieces(out, frame)
        elif options.vertebra_order is not None:
            raise ValueError(f"vertebra_order must be 'slices', 'pieces' or None, got {options.vertebra_order!r}")
        if options.rib_numbers:
            number_ribs(out, frame)
    if options.fill_cavities:
        pixel_mm2 = float(spacing_zyx[1] * spacing_zyx[2])
        max_pixels = max(1, int(options.max_hole_mm2 / pixel_mm2))
        gate = None if options.fill_above_hu is None else hu >= options.fill_above_hu
        fill_cavities(out, max_pixels, gate)
    return out


def postprocess_image(labels: sitk.Image, ct: sitk.Image, options: PostprocessOptions = PostprocessOptions()
                      ) -> sitk.Image:
    """:func:`postprocess` of a label image on ``ct``'s grid (what the predictor returns)."""
    array = postprocess(sitk.GetArrayViewFromImage(labels), sitk.GetArrayViewFromImage(ct), ct.GetSpacing()[::-1],
                        options, ct.GetDirection())
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(labels)
    return out


def _boxes(labels: np.ndarray, margin: int = 1) -> dict[int, tuple[slice, ...]]:
    """Bounding box (grown by ``margin``, clipped to the array) of every label present."""
    boxes = {}
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            boxes[index] = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))
                                 for s, n in zip(box, labels.shape))
    return boxes


def merge_fragments(labels: np.ndarray, min_island_fraction: float) -> None:
    """In place: every piece of a bone but its largest takes the label its border touches most;
    a piece touching no other bone is dropped unless it holds ``min_island_fraction`` of the largest."""
    for label, box in _boxes(labels).items():
        region = labels[box]
        pieces, count = ndimage.label(region == label, structure=_FULL)
        if count < 2:
            continue
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        main = int(np.argmax(sizes))
        for piece, piece_box in enumerate(ndimage.find_objects(pieces), start=1):
            if piece == main or piece_box is None:
                continue
            grown = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(piece_box, region.shape))
            mask = pieces[grown] == piece
            border = ndimage.binary_dilation(mask, structure=_FULL) & ~mask
            touching = region[grown][border]
            touching = touching[(touching != 0) & (touching != label)]
            if touching.size:
                region[grown][mask] = np.bincount(touching).argmax()
            elif sizes[piece] < min_island_fraction * sizes[main]:
                region[grown][mask] = 0


def fill_cavities(labels: np.ndarray, max_hole_pixels: int, gate: np.ndarray | None = None) -> None:
    """In place: unlabelled voxels enclosed by one bone (in 3D, or within an axial slice for holes of
    at most ``max_hole_pixels``) take that bone's label, where ``gate`` (if given) allows it."""
    for label, box in _boxes(labels).items():
        region = labels[box]
        bone = region == label
        filled = ndimage.binary_fill_holes(bone)
        for z in range(bone.shape[0]):
            holes = ndimage.binary_fill_holes(bone[z]) & ~bone[z]
            if not holes.any():
                continue
            parts, _ = ndimage.label(holes)
            sizes = np.bincount(parts.ravel())
            small = sizes <= max_hole_pixels
            small[0] = False
            filled[z] |= small[parts]
        new = filled & (region == 0)
        if gate is not None:
            new &= gate[box]
        region[new] = label
