"""OBJ + MTL, STL and PLY writers for per-bone surfaces (RAS millimetres, outward normals).

Every file says ``SPACE=RAS`` where its format has room for a comment (OBJ comment, STL
header, PLY comment): 3D Slicer reads that tag and loads the meshes without an LPS flip.

- OBJ: one ``<stem>.obj`` holding one named object/group per bone, with vertex normals, and
  one ``<stem>.mtl`` with a material per bone (``Kd`` = the table's sRGB colour in 0..1).
- STL: binary, one ``<bone>.stl`` per bone, or a single merged ``<stem>.stl``.
- PLY: binary, one ``<bone>.ply`` per bone with normals and per-vertex RGB = the bone colour.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkAppendPolyData
from vtkmodules.vtkIOGeometry import vtkSTLWriter
from vtkmodules.vtkIOPLY import vtkPLYWriter

from sneakynet import __version__
from sneakynet.export.vtkconv import point_normals, points_of, triangles_of
from sneakynet.io import atomic_path
from sneakynet.labels import LabelTable

SPACE_TAG = "SPACE=RAS"


def write_obj(surfaces: dict[int, vtkPolyData], obj_path: str | os.PathLike, table: LabelTable) -> list[Path]:
    """One OBJ with a named object per bone and its MTL beside it; returns [obj, mtl]."""
    obj_path = Path(obj_path)
    mtl_path = obj_path.with_suffix(".mtl")
    with atomic_path(mtl_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"# SneakyNet bone materials (sneakynet {__version__}); Kd = label table sRGB colour\n")
            for label in sorted(surfaces):
                bone = table.by_id(label)
                r, g, b = bone.color_float
                fh.write(f"\nnewmtl {bone.name}\nKa 0 0 0\nKd {r:.6f} {g:.6f} {b:.6f}\n"
                         "Ks 0.15 0.15 0.15\nNs 20\nd 1\nillum 2\n")
    with atomic_path(obj_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"# {SPACE_TAG} millimetres; SneakyNet bone surfaces (sneakynet {__version__})\n")
            fh.write(f"mtllib {mtl_path.name}\n")
            offset = 1
            for label in sorted(surfaces):
                bone = table.by_id(label)
                pd = surfaces[label]
                pts, tri = points_of(pd), triangles_of(pd)
                fh.write(f"o {bone.name}\ng {bone.name}\nusemtl {bone.name}\n")
                np.savetxt(fh, pts, fmt="v %.4f %.4f %.4f")
                np.savetxt(fh, point_normals(pd), fmt="vn %.4f %.4f %.4f")
                f = tri + offset
                np.savetxt(fh, np.repeat(f, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
                offset += len(pts)
    return [obj_path, mtl_path]


def _stl(pd: vtkPolyData, path: Path, header: str) -> None:
    w = vtkSTLWriter()
    w.SetInputData(pd)
    w.SetFileTypeToBinary()
    w.SetHeader(header[:79])
    with atomic_path(path) as tmp:
        w.SetFileName(str(tmp))
        if not w.Write():
            raise OSError(f"{path}: STL could not be written")


def write_stl(
    surfaces: dict[int, vtkPolyData], out_dir: str | os.PathLike, table: LabelTable,
    merged: bool = False, stem: str = "bones",
) -> list[Path]:
    """Binary STL: ``<bone>.stl`` per bone, or one ``<stem>.stl`` holding all bones."""
    out_dir = Path(out_dir)
    if merged:
        append = vtkAppendPolyData()
        for label in sorted(surfaces):
            append.AddInputData(surfaces[label])
        append.Update()
        path = out_dir / f"{stem}.stl"
        _stl(append.GetOutput(), path, f"{SPACE_TAG} SneakyNet {len(surfaces)} bones")
        return [path]
    paths = []
    for label in sorted(surfaces):
        bone = table.by_id(label)
        path = out_dir / f"{bone.name}.stl"
        _stl(surfaces[label], path, f"{SPACE_TAG} SneakyNet {bone.name} label {bone.id}")
        paths.append(path)
    return paths


def write_ply(surfaces: dict[int, vtkPolyData], out_dir: str | os.PathLike, table: LabelTable) -> list[Path]:
    """Binary PLY per bone with vertex normals and vertex colours (uchar RGB = table colour)."""
    out_dir = Path(out_dir)
    paths = []
    for label in sorted(surfaces):
        bone = table.by_id(label)
        pd = vtkPolyData()
        pd.ShallowCopy(surfaces[label])
        normals = numpy_to_vtk(point_normals(pd), deep=True)
        normals.SetName("Normals")
        pd.GetPointData().SetNormals(normals)
        w = vtkPLYWriter()
        w.SetInputData(pd)
        w.SetFileTypeToBinary()
        w.SetColorModeToUniformPointColor()
        w.SetColor(*bone.color)
        w.AddComment(SPACE_TAG)
        w.AddComment(f"SneakyNet bone {bone.name} label {bone.id} (sneakynet {__version__})")
        path = out_dir / f"{bone.name}.ply"
        with atomic_path(path) as tmp:
            w.SetFileName(str(tmp))
            if not w.Write():
                raise OSError(f"{path}: PLY could not be written")
        paths.append(path)
    return paths
