"""One PNG per real-CT case: prediction and reference side by side.

Rows: an axial, a coronal and a sagittal CT slice with the labels overlaid in the label table's
colours (bones left out of the scoring in opaque grey on the reference), a 3-D render of each
(:func:`sneakynet.export.render.render_labels`, offscreen VTK; from above for a thin slab) and
the labels with the most voxels. Slices are shown in the
radiological convention: everything is first reoriented to LPS, so the patient's right is on the
image's left, anterior up in axial views, superior up in coronal and sagittal views.
"""
from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from sneakynet.labels import NUM_CLASSES, load_label_table
from sneakynet.realct.scoring import level_ids

WINDOW_HU = (-400.0, 1000.0)  # wide bone window: marrow and cortex both visible
EXCLUDED_RGBA = (0.6, 0.6, 0.6, 0.95)  # opaque grey: bones left out of the scoring
OVERLAY_ALPHA = 0.55


def _lps(image: sitk.Image) -> sitk.Image:
    return sitk.DICOMOrient(image, "LPS")


def _label_image(arr: np.ndarray, ct: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(ct)
    return img


def _colours(excluded: Sequence[int] = ()) -> np.ndarray:
    lut = np.zeros((NUM_CLASSES, 4))
    for bone in load_label_table():
        lut[bone.id] = (*bone.color_float, OVERLAY_ALPHA)
    for c in excluded:
        lut[c] = EXCLUDED_RGBA
    return lut


def slice_positions(ref: np.ndarray) -> tuple[int, int, int]:
    """(k, j, i) of the slices to show, from the reference's bones in an LPS array: axial and
    coronal through the bones' centre, sagittal through the spine's (the bones' if no spine)."""
    bones = np.argwhere(ref > 0)
    if not len(bones):
        return tuple(s // 2 for s in ref.shape)  # type: ignore[return-value]
    spine = np.argwhere(np.isin(ref, level_ids()))
    k, j, _ = (int(round(v)) for v in bones.mean(axis=0))
    i = int(round((spine if len(spine) else bones)[:, 2].mean()))
    return k, j, i


def _views(ct: np.ndarray, spacing: tuple[float, float, float], pos: tuple[int, int, int]) -> list[tuple]:
    """(name, slicer, extent, origin) per view of a (k, j, i) LPS array with spacing (x, y, z)."""
    nz, ny, nx = ct.shape
    sx, sy, sz = spacing
    k, j, i = pos
    return [
        ("axial", lambda a: a[k], [0, nx * sx, ny * sy, 0], "upper"),
        ("coronal", lambda a: a[:, j, :], [0, nx * sx, 0, nz * sz], "lower"),
        ("sagittal", lambda a: a[:, :, i], [0, ny * sy, 0, nz * sz], "lower"),
    ]


def _render(labels: sitk.Image, ct: sitk.Image, folder: str, name: str) -> np.ndarray | None:
    """3-D render of a label map as an RGB array (None if it holds no bone): from the front, or
    from above for a thin slab (less than a third as tall as it is wide)."""
    from matplotlib.image import imread

    from sneakynet.export.render import render_labels

    if not sitk.GetArrayViewFromImage(labels).any():
        return None
    extent = np.array(ct.GetSize()) * np.array(ct.GetSpacing())
    view = "superior" if extent[2] < extent[0] / 3 else "anterior"
    path = render_labels(labels, Path(folder) / f"{name}.png", ct=ct, views=(view,), size=(640, 640))
    return imread(str(path))


def top_labels(arr: np.ndarray, n: int = 6) -> str:
    """The ``n`` labels with the most voxels and their share of all labelled voxels."""
    counts = np.bincount(arr.reshape(-1), minlength=NUM_CLASSES)[1:]
    total = counts.sum()
    if not total:
        return "no bone labelled"
    table = load_label_table()
    best = np.argsort(counts)[::-1][:n]
    return ", ".join(f"{table.by_id(c + 1).name} {100 * counts[c] / total:.0f} %" for c in best if counts[c])


def _row_heights(views: list[tuple], width_in: float) -> list[float]:
    """Inches per slice row so that every view keeps its physical aspect at ``width_in``."""
    heights = []
    for _, _, (x0, x1, y0, y1), _ in views:
        heights.append(max(0.5, width_in * abs(y1 - y0) / abs(x1 - x0)))
    return heights


def _draw_column(fig, grid, col: int, name: str, hu: np.ndarray, arr: np.ndarray, lut: np.ndarray,
                 views: list[tuple], render: np.ndarray | None) -> None:
    for row, (view, cut, extent, origin) in enumerate(views):
        ax = fig.add_subplot(grid[row, col])
        ax.imshow(cut(hu), cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], extent=extent, origin=origin,
                  interpolation="nearest")
        ax.imshow(lut[cut(arr)], extent=extent, origin=origin, interpolation="nearest")
        ax.set_title(f"{name}: {view}", fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[len(views), col])
    ax.set_axis_off()
    if render is None:
        ax.text(0.5, 0.5, "no bone labelled", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.imshow(render)
    ax.set_title(f"{name}: 3-D", fontsize=9)
    ax = fig.add_subplot(grid[len(views) + 1, col])
    ax.set_axis_off()
    text = textwrap.fill("most voxels: " + top_labels(arr), 85)
    ax.text(0, 1, text, fontsize=7.5, va="top", transform=ax.transAxes)


def case_figure(ct: sitk.Image, pred: np.ndarray, ref: np.ndarray, excluded: Sequence[int],
                out_png: str | os.PathLike, title: str) -> Path:
    """Write the case's PNG (atomically) and return its path; arrays are (k, j, i) on ``ct``'s grid."""
    from sneakynet.evaluate import _new_figure, _save_png

    ct_lps = _lps(ct)
    maps = {"prediction": _lps(_label_image(pred, ct)), "reference": _lps(_label_image(ref, ct))}
    hu = sitk.GetArrayFromImage(ct_lps)
    arrays = {k: sitk.GetArrayFromImage(v) for k, v in maps.items()}
    views = _views(hu, ct_lps.GetSpacing(), slice_positions(arrays["reference"]))
    luts = {"prediction": _colours(), "reference": _colours(excluded)}
    with tempfile.TemporaryDirectory() as tmp:
        renders = {k: _render(v, ct_lps, tmp, k) for k, v in maps.items()}
    width = 5.0
    heights = _row_heights(views, width) + [width, 0.5]
    fig = _new_figure(2 * width + 0.6, sum(heights) + 0.35 * len(heights) + 1.55)
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, hspace=0.35 / np.mean(heights) + 0.05,
                            wspace=0.06, left=0.02, right=0.98, top=1 - 1.35 / fig.get_figheight(), bottom=0.01)
    for col, name in enumerate(maps):
        _draw_column(fig, grid, col, name, hu, arrays[name], luts[name], views, renders[name])
    fig.suptitle(title, fontsize=10)
    return _save_png(fig, Path(out_png))
