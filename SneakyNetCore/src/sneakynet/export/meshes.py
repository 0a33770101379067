"""``export_meshes``: label map -> per-bone meshes on disk (GLB + its viewer page, glTF, OBJ+MTL, STL, PLY).

The output folder appears only when everything succeeded: files are written (each
atomically) into a hidden temporary sibling folder which is renamed onto ``out_dir`` at the
end (or, if ``out_dir`` already exists, whose files are moved into it one by one with atomic
renames). A bad label map fails before anything touches the disk.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import SimpleITK as sitk
from vtkmodules.vtkCommonDataModel import vtkPolyData

from sneakynet.export.formats import write_obj, write_ply, write_stl
from sneakynet.export.gltf import write_gltf
from sneakynet.export.labelmap import load_label_map
from sneakynet.export.surfaces import check_options, smoothing_iterations, surfaces_from_label_map
from sneakynet.io import atomic_folder
from sneakynet.labels import load_label_table
from sneakynet.viewer.page import write_viewer_page

FORMATS = ("glb", "gltf", "obj", "stl", "ply")
STEM = "bones"  # name of the single-file outputs: bones.glb, bones.gltf/.bin, bones.obj/.mtl, bones.stl


def export_meshes(
    labels: sitk.Image | str | os.PathLike,
    out_dir: str | os.PathLike,
    fmt: str = "glb",
    smooth: bool | int = True,
    decimate: float = 0.0,
    triangle_budget: int | None = None,
    merged_stl: bool = False,
    progress: Callable[[float, str], None] | None = None,
    method: str = "surface_nets",
    skin: sitk.Image | str | os.PathLike | None = None,
    viewer_page: bool = True,
) -> list[Path]:
    """Write one mesh per present bone of ``labels`` into ``out_dir``; return the written paths.

    ``fmt``: ``glb`` (one ``bones.glb``), ``gltf`` (``bones.gltf`` + ``bones.bin``), ``obj``
    (``bones.obj`` + ``bones.mtl``), ``stl`` (``<bone>.stl`` each, or ``bones.stl`` with
    ``merged_stl``), ``ply`` (``<bone>.ply`` each, vertex-coloured). OBJ/STL/PLY are in RAS mm,
    glTF in metres (see :mod:`sneakynet.export.frames`). ``smooth``/``decimate``/
    ``triangle_budget`` as in :func:`extract_surfaces`. ``skin`` (a CT, glb/gltf only) adds
    its -300 HU surface as a translucent node ``skin``. With ``fmt="glb"`` and ``viewer_page``,
    ``bones.html`` is written beside ``bones.glb``: a self-contained page that shows the bones
    in any browser, offline (:func:`sneakynet.viewer.write_viewer_page`). ``progress(fraction,
    message)`` is called as work advances. Raises ``ValueError`` (``LabelMapError`` for bad
    label maps or CTs, naming the file) without creating ``out_dir``.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown mesh format {fmt!r}; choose one of {', '.join(FORMATS)}")
    check_options(decimate, triangle_budget, method)
    if skin is not None and fmt not in ("glb", "gltf"):
        raise ValueError(f"a skin surface can be added to glb or gltf exports only, not {fmt}")
    iterations = smoothing_iterations(smooth)
    report = progress or (lambda fraction, message: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder")

    report(0.0, "reading label map")
    label_map = load_label_map(labels)
    skin_mesh = None if skin is None else _skin(skin, report)
    surfaces = surfaces_from_label_map(
        label_map, iterations, decimate, triangle_budget, method,
        progress=lambda f, msg: report(0.02 + 0.83 * f, msg),
    )
    report(0.86, f"writing {fmt.upper()}")
    with atomic_folder(out_dir, merge=True) as staging:  # into an existing folder file by file
        written = _write_files(fmt, surfaces, staging, label_map.source, skin_mesh, merged_stl, viewer_page, report)
    final = [out_dir / p.name for p in written]
    report(1.0, f"wrote {len(final)} file(s) to {out_dir}")
    return final


def _write_files(
    fmt: str, surfaces: dict[int, vtkPolyData], folder: Path, source: str, skin: vtkPolyData | None,
    merged_stl: bool, viewer_page: bool, report: Callable[[float, str], None],
) -> list[Path]:
    """Write the meshes of one format into ``folder`` (and, for GLB, the viewer page); returns the paths."""
    table = load_label_table()
    if fmt in ("glb", "gltf"):
        written = write_gltf(surfaces, folder / f"{STEM}.{fmt}", table, source=source, skin=skin)
        if fmt == "glb" and viewer_page:
            report(0.95, "writing the viewer page")
            written.append(write_viewer_page(written[0]))
        return written
    if fmt == "obj":
        return write_obj(surfaces, folder / f"{STEM}.obj", table)
    if fmt == "stl":
        return write_stl(surfaces, folder, table, merged=merged_stl, stem=STEM)
    return write_ply(surfaces, folder, table)


def _skin(ct: sitk.Image | str | os.PathLike, report: Callable[[float, str], None]) -> vtkPolyData | None:
    """The CT's skin surface (RAS mm), checked before any mesh work; ``LabelMapError`` for a bad CT."""
    from sneakynet.export.render import load_ct, skin_surface

    image = load_ct(ct)
    report(0.01, "extracting the skin surface")
    return skin_surface(image)
