"""numpy <-> vtkPolyData conversion for triangle meshes (the only shape the exporters use)."""
from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals


def polydata_from_arrays(points: np.ndarray, triangles: np.ndarray) -> vtkPolyData:
    """A triangle vtkPolyData from (N, 3) points and (M, 3) vertex indices (copied)."""
    pd = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float32), deep=True))
    pd.SetPoints(vpts)
    tri = np.ascontiguousarray(triangles, dtype=np.int64).reshape(-1)
    offsets = np.arange(0, tri.size + 1, 3, dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(tri, deep=True))
    pd.SetPolys(cells)
    return pd


def triangles_of(pd: vtkPolyData) -> np.ndarray:
    """(M, 3) int64 vertex indices of a polydata made only of triangles."""
    polys = pd.GetPolys()
    if polys is None or polys.GetNumberOfCells() == 0:
        return np.zeros((0, 3), dtype=np.int64)
    offsets = vtk_to_numpy(polys.GetOffsetsArray())
    if not np.all(np.diff(offsets) == 3):
        raise ValueError("mesh has non-triangle polygons")
    return vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64, copy=False).reshape(-1, 3)


def points_of(pd: vtkPolyData) -> np.ndarray:
    """(N, 3) point coordinates (a view when possible)."""
    if pd.GetPoints() is None:
        return np.zeros((0, 3), dtype=np.float32)
    return vtk_to_numpy(pd.GetPoints().GetData())


def point_normals(pd: vtkPolyData) -> np.ndarray:
    """(N, 3) float32 unit vertex normals, same vertex order as ``pd`` (no splitting)."""
    f = vtkPolyDataNormals()
    f.SetInputData(pd)
    f.SplittingOff()
    f.ConsistencyOff()  # winding is already outward and consistent
    f.AutoOrientNormalsOff()
    f.ComputeCellNormalsOff()
    f.ComputePointNormalsOn()
    f.Update()
    return vtk_to_numpy(f.GetOutput().GetPointData().GetNormals()).astype(np.float32)
