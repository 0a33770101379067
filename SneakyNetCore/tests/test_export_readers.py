"""Mesh files stay correct in every reader: no folder path in the GLB, STL closed after welding."""
from __future__ import annotations

import numpy as np
import pygltflib
import pytest
import SimpleITK as sitk

pytest.importorskip("vtkmodules.vtkFiltersCore")
from vtkmodules.vtkFiltersCore import vtkFeatureEdges  # noqa: E402
from vtkmodules.vtkIOGeometry import vtkSTLReader  # noqa: E402

from sneakynet.export import export_meshes  # noqa: E402
from sneakynet.export.surfaces import separate_coincident_vertices  # noqa: E402
from sneakynet.export.vtkconv import points_of, triangles_of  # noqa: E402
from sneakynet.labels import load_label_table  # noqa: E402

T10, RIB_L6 = 20, 35


def touching_fragments() -> sitk.Image:
    """One bone in pieces touching only along voxel edges and corners, beside a second bone."""
    lab = np.zeros((12, 12, 14), np.uint8)
    lab[2:4, 2:4, 2:4] = T10
    lab[2:4, 4:6, 4:6] = T10  # edge contact
    lab[4:6, 6:8, 6:8] = T10  # corner contact
    lab[6:9, 2:5, 8:12] = RIB_L6
    lab[5:7, 4:6, 10:12] = RIB_L6  # edge + face contacts with its own first block
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing((0.8, 0.8, 1.5))
    img.SetOrigin((-200.0, 150.0, -900.0))  # large coordinates: float32 rounding matters there
    return img


def welded_open_edges(path) -> tuple[int, int]:
    """Read an STL with VTK, which merges points with equal coordinates; (boundary + non-manifold edges, cells)."""
    reader = vtkSTLReader()
    reader.SetFileName(str(path))
    reader.MergingOn()
    reader.Update()
    edges = vtkFeatureEdges()
    edges.SetInputData(reader.GetOutput())
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells(), reader.GetOutput().GetNumberOfPolys()


@pytest.mark.parametrize("smooth", [0, 20])
def test_stl_meshes_stay_closed_after_welding_coincident_vertices(smooth, tmp_path):
    paths = export_meshes(touching_fragments(), tmp_path / "stl", fmt="stl", smooth=smooth)
    assert len(paths) == 2
    for path in paths:
        open_edges, cells = welded_open_edges(path)
        assert cells > 0 and open_edges == 0, (path.name, smooth, open_edges)


def test_without_separation_the_welded_stl_would_pinch(tmp_path):
    """The test above can fail: the same meshes with the copies left together pinch once welded."""
    from sneakynet.export.formats import write_stl
    from sneakynet.export.surfaces import extract_surfaces
    from sneakynet.export.vtkconv import polydata_from_arrays

    surfaces = extract_surfaces(touching_fragments(), smooth=0)
    pd = surfaces[T10]
    pts = points_of(pd).astype(np.float64)
    # undo the separation: snap every vertex back onto the voxel-corner lattice of SurfaceNets
    grid = np.array([0.8, 0.8, 1.5]) / 2
    snapped = np.round((pts - pts.min(axis=0)) / grid) * grid + pts.min(axis=0)
    rejoined = {T10: polydata_from_arrays(snapped, triangles_of(pd))}
    write_stl(rejoined, tmp_path, load_label_table())
    open_edges, _ = welded_open_edges(tmp_path / "vertebra_T10.stl")
    assert open_edges > 0


def test_separation_moves_only_shared_vertices_by_the_gap():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [-1, 0, 0], [0, -1, 0]], np.float32)
    tri = np.array([[0, 1, 2], [3, 4, 5]])
    moved = separate_coincident_vertices(pts, tri, gap=0.01)
    assert np.array_equal(moved[[1, 2, 4, 5]], pts[[1, 2, 4, 5]])
    assert np.linalg.norm(moved[0] - moved[3]) == pytest.approx(0.02, rel=1e-3)
    assert moved[0, 0] > 0 and moved[3, 0] < 0  # each copy moved into its own triangle


def test_glb_metadata_keeps_only_the_file_name(tmp_path):
    private = tmp_path / "Doe_Jane_1970-01-01" / "ct study"
    private.mkdir(parents=True)
    labels = private / "bones.nii.gz"
    sitk.WriteImage(touching_fragments(), str(labels))
    out = export_meshes(labels, tmp_path / "out", fmt="glb", smooth=0)
    data = out[0].read_bytes()
    assert b"Doe_Jane" not in data and str(tmp_path).encode() not in data
    gltf = pygltflib.GLTF2().load(str(out[0]))
    assert gltf.asset.extras["source"] == "bones.nii.gz"
    in_memory = export_meshes(touching_fragments(), tmp_path / "mem", fmt="gltf", smooth=0)
    assert pygltflib.GLTF2().load(str(in_memory[0])).asset.extras["source"] == "<in-memory label map>"
