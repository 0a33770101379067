"""Label map -> one closed, outward-oriented triangle surface per present bone, in RAS millimetres.

Pipeline (one multi-label pass, then per-bone work):

1. check the label map (:mod:`sneakynet.export.labelmap`), pad it by one background voxel so
   bones touching the image border still get closed surfaces;
2. contour all labels at once in the image's index-aligned frame scaled by the spacing
   (mm along i, j, k): ``vtkSurfaceNets3D`` (default) or ``vtkDiscreteFlyingEdges3D``;
3. optional smoothing of the whole multi-label mesh with ``vtkWindowedSincPolyDataFilter``
   (low-pass, keeps volume; SurfaceNets' own constrained smoothing shrank a sphere by 5-18 %
   and a 4-voxel plate by 15-43 % at 8-30 iterations in our tests, so it is switched off);
4. split into one mesh per label (SurfaceNets faces between two bones are shared and copied
   into both, flipped for the second one; vertices where a bone's voxels touch only along an
   edge or corner are duplicated so every bone is a closed 2-manifold), map to RAS with the
   image's origin and direction, flip winding if the direction matrix is a reflection;
   after smoothing, each bone is offset along its normals to enclose its voxel volume again
   (small bones lose 10-45 % to smoothing otherwise); a bone that smoothing shrinks below half its
   volume (one or two voxels) keeps its unsmoothed voxel surface instead;
5. optional per-bone decimation with ``vtkQuadricDecimation`` (ratio or total triangle
   budget), retried gentler on the rare bone where it would open a hole;
6. the manifold vertex copies of step 4 are moved 0.01 mm apart, into their own piece, so
   readers that weld equal coordinates (STL has no connectivity) keep every bone closed.

Why SurfaceNets is the default: adjacent bones share their boundary (no gaps between e.g.
vertebra and rib; only the volume restore of step 4 can shift a small bone by a few tenths of
a millimetre), unsmoothed meshes enclose exactly the voxel volume while discrete flying edges
cuts voxel corners (a 2x2-voxel rod keeps 86 % of its volume), and contouring 125 labels of a
2 mm phantom takes 0.1 s plus 0.5 s for the manifold vertex copies, against 4-6 s for discrete
flying edges on 2 cores (see ``benchmarks/bench_export.py``). Flying edges stays
available as ``method="flying_edges"``.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import SimpleITK as sitk
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkQuadricDecimation, vtkSurfaceNets3D, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

from sneakynet.export.frames import LPS_TO_RAS, apply_affine
from sneakynet.export.labelmap import LabelMap, load_label_map
from sneakynet.export.vtkconv import points_of, polydata_from_arrays, triangles_of

Progress = Callable[[float, str], None]

METHODS = ("surface_nets", "flying_edges")
DEFAULT_SMOOTHING_ITERATIONS = 20
SMOOTHING_PASS_BAND = 0.05  # windowed-sinc pass band in normalised coordinates (lower = smoother)
MIN_TRIANGLES_PER_BONE = 80  # decimation never takes a bone below this (tiny carpals stay bones)


def smoothing_iterations(smooth: bool | int) -> int:
    """``True`` -> the default number of windowed-sinc iterations, ``False``/0 -> none, N -> N."""
    if isinstance(smooth, bool):
        return DEFAULT_SMOOTHING_ITERATIONS if smooth else 0
    n = int(smooth)
    if n < 0:
        raise ValueError(f"smooth must be >= 0 iterations, got {smooth}")
    return n


def extract_surfaces(
    labels: sitk.Image | str | os.PathLike,
    smooth: bool | int = True,
    decimate: float = 0.0,
    triangle_budget: int | None = None,
    method: str = "surface_nets",
    progress: Progress | None = None,
) -> dict[int, vtkPolyData]:
    """One closed triangle surface per present label id, points in RAS millimetres.

    ``labels``: label map (image or file), values 0..125. ``smooth``: windowed-sinc iterations
    (``True`` = 20). ``decimate``: fraction of triangles to remove (0 <= d < 1, e.g. 0.5).
    ``triangle_budget``: approximate total number of triangles over all bones (applied on top of
    ``decimate``; every bone keeps at least ``MIN_TRIANGLES_PER_BONE``). Triangles are wound
    counter-clockwise seen from outside (outward normals). Raises ``LabelMapError`` (a
    ``ValueError``) for inputs that are not label maps, ``ValueError`` for bad options.
    """
    check_options(decimate, triangle_budget, method)
    iterations = smoothing_iterations(smooth)
    label_map = load_label_map(labels)
    return surfaces_from_label_map(label_map, iterations, decimate, triangle_budget, method, progress)


def use_threaded_vtk() -> None:
    """Let VTK's threaded filters (SurfaceNets, smoothing) use all cores.

    The PyPI VTK wheels start with the ``Sequential`` SMP backend; switch to ``STDThread``
    unless the user chose a backend with ``VTK_SMP_BACKEND_IN_USE`` (VTK's own variable).
    """
    from vtkmodules.vtkCommonCore import vtkSMPTools

    smp = vtkSMPTools()
    if not os.environ.get("VTK_SMP_BACKEND_IN_USE") and smp.GetBackend() == "Sequential":
        smp.SetBackend("STDThread")


def check_options(decimate: float, triangle_budget: int | None, method: str) -> None:
    """Validate mesh options before any work is done (clear ValueError otherwise)."""
    if not 0.0 <= float(decimate) < 1.0:
        raise ValueError(f"decimate must be a fraction in [0, 1) of triangles to remove, got {decimate}")
    if triangle_budget is not None and int(triangle_budget) < 1:
        raise ValueError(f"triangle budget must be a positive number of triangles, got {triangle_budget}")
    if method not in METHODS:
        raise ValueError(f"unknown surface method {method!r}; choose one of {', '.join(METHODS)}")


def surfaces_from_label_map(
    label_map: LabelMap,
    smoothing: int = DEFAULT_SMOOTHING_ITERATIONS,
    decimate: float = 0.0,
    triangle_budget: int | None = None,
    method: str = "surface_nets",
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> dict[int, vtkPolyData]:
    """:func:`extract_surfaces` for an already checked :class:`LabelMap`.

    ``timings``, if given, receives the wall time in seconds of each stage (benchmarks).
    """
    report = progress or (lambda fraction, message: None)
    clock = _StageClock(timings)
    use_threaded_vtk()
    report(0.0, f"contouring {len(label_map.present)} labels ({method})")
    padded = np.pad(label_map.array, 1)
    mesh, face_labels = contour_labels(label_map, method, padded)
    spacing = np.asarray(label_map.image.GetSpacing())
    copies = None
    if method == "surface_nets":
        copies = surface_nets_vertex_copies(padded, points_of(mesh), spacing, triangles_of(mesh), face_labels)
    del padded
    clock.lap("contour")
    if smoothing > 0:
        voxel_points = points_of(mesh).copy()  # kept for bones that smoothing shrinks to a speck
        report(0.3, f"smoothing ({smoothing} iterations)")
        mesh = windowed_sinc(mesh, smoothing)
    clock.lap("smooth")
    report(0.5, "splitting into bones")
    # Smoothing can overshoot a voxel edge by ~0.2 voxel at box corners; bones cut by the image
    # border must not stick out of the image, so clamp to the box of voxel edges.
    size = np.asarray(label_map.image.GetSize())
    local_points = np.clip(points_of(mesh), -0.5 * spacing, (size - 0.5) * spacing)
    faces = triangles_of(mesh)
    to_ras = local_to_ras(label_map.image)
    ras_points = apply_affine(to_ras, local_points).astype(np.float32)
    flip = np.linalg.det(to_ras[:3, :3]) < 0  # a reflection turns outward winding inward
    per_label = split_by_label(ras_points, faces, face_labels, flip, copies)
    if smoothing > 0:
        _restore_volumes(per_label, label_map, to_ras, voxel_points, faces, face_labels, flip, copies)
    out = {label: polydata_from_arrays(pts, tri) for label, (pts, tri) in per_label.items()}
    clock.lap("split")
    reduction = decimation_fractions({k: len(t) for k, (_, t) in per_label.items()}, decimate, triangle_budget)
    for n, label in enumerate(reduction):
        out[label] = quadric_decimate(out[label], reduction[label])
        report(0.55 + 0.45 * (n + 1) / len(reduction), "decimating")
    for label, pd in out.items():
        tri = triangles_of(pd)
        out[label] = polydata_from_arrays(separate_coincident_vertices(points_of(pd), tri), tri)
    clock.lap("decimate")
    report(1.0, f"{len(out)} surfaces, {sum(p.GetNumberOfPolys() for p in out.values())} triangles")
    return out


def _restore_volumes(
    per_label: dict[int, tuple[np.ndarray, np.ndarray]], label_map: LabelMap, to_ras: np.ndarray,
    voxel_points: np.ndarray, faces: np.ndarray, face_labels: np.ndarray, flip: bool, copies: np.ndarray | None,
) -> None:
    """After smoothing: give each bone its voxel volume back (in place), inside the image box."""
    spacing = np.asarray(label_map.image.GetSpacing())
    size = np.asarray(label_map.image.GetSize())
    voxel_mm3 = float(np.prod(spacing))
    from_ras = np.linalg.inv(to_ras)
    lo, hi = -0.5 * spacing, (size - 0.5) * spacing
    collapsed = []
    for label, (pts, tri) in per_label.items():
        target = label_map.voxel_counts[label] * voxel_mm3
        if signed_volume(pts, tri) < 0.5 * target:  # a bone of a few voxels smoothed to a speck
            collapsed.append(label)
            continue
        pts = restore_volume(pts, tri, target)
        local = apply_affine(from_ras, pts)
        if np.any(local < lo - 1e-4) or np.any(local > hi + 1e-4):  # keep bones inside the image
            pts = apply_affine(to_ras, np.clip(local, lo, hi)).astype(np.float32)
        per_label[label] = (pts, tri)
    if collapsed:  # those keep their unsmoothed voxel surface: restoring the volume of a speck
        # by a normal offset of (target - volume) / area would blow it up to many times its size
        unsmoothed = split_by_label(apply_affine(to_ras, voxel_points).astype(np.float32), faces, face_labels,
                                    flip, copies)
        per_label.update({label: unsmoothed[label] for label in collapsed})


class _StageClock:
    """Records wall time per stage into a dict (or does nothing)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


def local_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from the contouring frame (``index * spacing``, mm along i, j, k) to RAS mm."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    m[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ m


def padded_image_data(label_map: LabelMap, padded: np.ndarray | None = None) -> vtkImageData:
    """The label array padded by one 0 voxel per side, as vtkImageData in the contouring frame."""
    arr = np.pad(label_map.array, 1) if padded is None else padded
    spacing = label_map.image.GetSpacing()
    img = vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])  # numpy (z, y, x) -> VTK (x, y, z)
    img.SetSpacing(spacing)
    img.SetOrigin([-s for s in spacing])  # so that original index (0, 0, 0) sits at 0
    scalars = numpy_to_vtk(arr.ravel(), deep=True)
    scalars.SetName("labels")
    img.GetPointData().SetScalars(scalars)
    return img


def contour_labels(
    label_map: LabelMap, method: str = "surface_nets", padded: np.ndarray | None = None
) -> tuple[vtkPolyData, np.ndarray]:
    """All present labels contoured in one pass.

    Returns the triangle mesh in the contouring frame and an (M, 2) int array: for each
    triangle the label it bounds with outward winding and the label on its other side (0 for
    background, or -1 where the triangle belongs to the first label only).
    """
    image = padded_image_data(label_map, padded)
    if method == "surface_nets":
        f = vtkSurfaceNets3D()
        f.SetInputData(image)
        f.SetNumberOfLabels(len(label_map.present))
        for i, label in enumerate(label_map.present):
            f.SetLabel(i, label)
        f.SetBackgroundLabel(0)
        f.SmoothingOff()  # windowed sinc below keeps the volume better
        f.SetOutputMeshTypeToTriangles()
        f.SetOutputStyleToDefault()
        f.Update()
        mesh = f.GetOutput()
        pair = vtk_to_numpy(mesh.GetCellData().GetArray("BoundaryLabels")).astype(np.int64)
        # Faces are wound outward of their first label (checked by signed volume in the tests).
        return _geometry_only(mesh), pair.reshape(-1, 2)
    if method == "flying_edges":
        f = vtkDiscreteFlyingEdges3D()
        f.SetInputData(image)
        for i, label in enumerate(label_map.present):
            f.SetValue(i, label)
        f.ComputeScalarsOn()
        f.ComputeNormalsOff()
        f.ComputeGradientsOff()
        f.Update()
        mesh = f.GetOutput()
        point_label = vtk_to_numpy(mesh.GetPointData().GetScalars()).astype(np.int64)
        first = point_label[triangles_of(mesh)[:, 0]]
        return _geometry_only(mesh), np.stack([first, np.full_like(first, -1)], axis=1)
    raise ValueError(f"unknown surface method {method!r}; choose one of {', '.join(METHODS)}")


def _geometry_only(mesh: vtkPolyData) -> vtkPolyData:
    """Points and triangles only (drops arrays the smoother would otherwise carry along)."""
    out = vtkPolyData()
    out.SetPoints(mesh.GetPoints())
    out.SetPolys(mesh.GetPolys())
    return out


def windowed_sinc(mesh: vtkPolyData, iterations: int) -> vtkPolyData:
    """Low-pass smoothing that moves points only (topology and point order unchanged)."""
    f = vtkWindowedSincPolyDataFilter()
    f.SetInputData(mesh)
    f.SetNumberOfIterations(iterations)
    f.SetPassBand(SMOOTHING_PASS_BAND)
    f.NormalizeCoordinatesOn()  # pass band independent of the physical size
    f.BoundarySmoothingOff()
    f.FeatureEdgeSmoothingOff()
    f.NonManifoldSmoothingOn()  # lines where three bones meet move consistently
    f.Update()
    out = vtkPolyData()
    out.SetPoints(f.GetOutput().GetPoints())
    out.SetPolys(mesh.GetPolys())
    return out


def split_by_label(
    points: np.ndarray,
    faces: np.ndarray,
    face_labels: np.ndarray,
    flip: bool,
    vertex_copies: np.ndarray | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per label: (compact points, triangles) with outward winding; labels ascending.

    ``vertex_copies`` (from :func:`surface_nets_vertex_copies`, same rows as the per-label
    face list built here) says which copy of a shared vertex each triangle corner uses.
    """
    faces_all, labels_all = _faces_per_label(faces, face_labels)
    copies = np.zeros_like(faces_all) if vertex_copies is None else vertex_copies
    if flip:
        faces_all, copies = faces_all[:, ::-1], copies[:, ::-1]
    order = np.argsort(labels_all, kind="stable")
    faces_all, labels_all, copies = faces_all[order], labels_all[order], copies[order]
    ids, starts = np.unique(labels_all, return_index=True)
    ends = np.append(starts[1:], len(labels_all))
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for label, a, b in zip(ids, starts, ends):
        if label <= 0:
            continue
        keys = faces_all[a:b] * 4 + copies[a:b]  # vertex id and which of its (up to 4) copies
        used, compact = np.unique(keys, return_inverse=True)
        out[int(label)] = split_remaining_pinches(points[used // 4], compact.reshape(-1, 3))
    return out


WELD_GAP_MM = 0.01  # far above float32 resolution of body coordinates (< 0.0001 mm), far below a voxel


def separate_coincident_vertices(points: np.ndarray, tri: np.ndarray, gap: float = WELD_GAP_MM) -> np.ndarray:
    """Move apart the vertex copies that share a position, so welding cannot pinch the mesh.

    The manifold vertex copies (:func:`surface_nets_vertex_copies`, :func:`split_remaining_pinches`)
    sit where two pieces of one bone touch along a voxel edge or corner. STL stores no
    connectivity, and most readers (VTK's STL reader, MeshLab, slicers for 3D printing) weld
    vertices with equal coordinates, which joins the copies again into a non-manifold edge.
    Each copy is moved ``gap`` mm towards the centre of its own triangles, i.e. into its own
    piece; every other vertex stays where it is.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(tri) == 0:
        return points
    _, inverse, counts = np.unique(np.asarray(points, np.float32), axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1
    if not shared.any():
        return points
    centres = pts[tri].mean(axis=1)
    towards = np.zeros_like(pts)
    for corner in range(3):
        np.add.at(towards, tri[:, corner], centres)
    uses = np.bincount(tri.ravel(), minlength=len(pts))[:, None]
    towards = towards / np.maximum(uses, 1) - pts
    towards /= np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-12)
    moved = pts.copy()
    moved[shared] += gap * towards[shared]
    return moved.astype(np.asarray(points).dtype)


def signed_volume(points: np.ndarray, tri: np.ndarray) -> float:
    """Enclosed volume of a closed, outward-wound triangle mesh (divergence theorem)."""
    p = points.astype(np.float64)[tri]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)


def restore_volume(
    points: np.ndarray, tri: np.ndarray, target_mm3: float, tolerance: float = 0.01, iterations: int = 3
) -> np.ndarray:
    """Move the vertices along their normals so a smoothed bone encloses its voxel volume again.

    Windowed-sinc smoothing rounds off voxel corners; on small or thin bones (distal
    phalanges, pisiform, sesamoids at 2 mm: 10-80 voxels) that removes 10-45 % of the volume.
    A uniform offset ``(target - volume) / area`` along the area-weighted vertex normals
    restores it (a few tenths of a millimetre); bones already within ``tolerance`` are left
    as they are. Neighbouring bones may then overlap by that offset where they touch.
    """
    pts = points.astype(np.float64)
    for _ in range(iterations):
        p = pts[tri]
        cross = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # 2 * area * unit normal
        volume = float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)
        if volume <= 0 or abs(volume / target_mm3 - 1.0) <= tolerance:
            break
        area = 0.5 * float(np.linalg.norm(cross, axis=1).sum())
        normals = np.zeros_like(pts)
        for corner in range(3):
            np.add.at(normals, tri[:, corner], cross)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        pts = pts + normals * ((target_mm3 - volume) / area)
    return pts.astype(points.dtype)


def _edge_counts(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Undirected edge keys of each triangle side (M, 3), unique keys' counts, key base."""
    n = int(tri.max()) + 1 if len(tri) else 1
    a, b = tri, np.roll(tri, -1, axis=1)
    keys = np.minimum(a, b) * n + np.maximum(a, b)
    uniq, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    return keys, counts[inverse].reshape(tri.shape), n


def split_remaining_pinches(
    points: np.ndarray, tri: np.ndarray, max_fixes: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Split the vertex at one end of each edge still shared by more than two triangles.

    After the per-cell vertex copies (:func:`surface_nets_vertex_copies`) a bone can still
    pinch where its voxels form a ring around a voxel edge whose two other voxels are
    background (about one edge per phantom). Around one end vertex of such an edge the
    triangles form two fans that meet only at that edge; giving the second fan its own copy
    of the vertex makes the edge two ordinary edges. Splitting one end only keeps the two
    sheets' pairing consistent.
    """
    if len(tri) == 0:
        return points, tri
    points_list = [points]
    n_points = len(points)
    tri = tri.copy()
    for _ in range(max_fixes):
        keys, per_side, base = _edge_counts(tri)
        bad = np.argwhere(per_side > 2)
        if len(bad) == 0:
            break
        f, side = bad[0]
        v, w = int(tri[f, side]), int(tri[f, (side + 1) % 3])
        for vertex in (v, w):
            fans = _fans(tri, keys, per_side, vertex)
            if len(fans) > 1:
                for fan in fans[1:]:
                    tri[fan] = np.where(tri[fan] == vertex, n_points, tri[fan])
                    points_list.append(points[vertex : vertex + 1])
                    n_points += 1
                break
        else:
            break  # cannot be split at either end; leave it
    if len(points_list) > 1:
        points = np.concatenate(points_list)
    return points, tri


def _fans(tri: np.ndarray, keys: np.ndarray, per_side: np.ndarray, vertex: int) -> list[np.ndarray]:
    """Triangles around ``vertex`` grouped by connection through edges with exactly two triangles."""
    faces = np.flatnonzero((tri == vertex).any(axis=1))
    parent = {int(f): int(f) for f in faces}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_at_edge: dict[int, int] = {}
    for f in faces:
        for side in range(3):
            if vertex not in (tri[f, side], tri[f, (side + 1) % 3]) or per_side[f, side] != 2:
                continue
            key = int(keys[f, side])
            if key in first_at_edge:
                parent[find(int(f))] = find(first_at_edge[key])
            else:
                first_at_edge[key] = int(f)
    groups: dict[int, list[int]] = {}
    for f in faces:
        groups.setdefault(find(int(f)), []).append(int(f))
    return [np.array(g) for g in groups.values()]


def _faces_per_label(faces: np.ndarray, face_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle once for its first label and, reversed, once for a second bone label."""
    first, second = face_labels[:, 0], face_labels[:, 1]
    shared = second > 0
    return np.concatenate([faces, faces[shared][:, ::-1]]), np.concatenate([first, second[shared]])


def _cell_components() -> np.ndarray:
    """(256, 8) table: for each occupancy pattern of a 2x2x2 cell (bit dx + 2 dy + 4 dz), the
    face-connected (6-connected) component number 0..3 of each occupied corner voxel."""
    table = np.zeros((256, 8), np.int64)
    for pattern in range(256):
        component = [-1] * 8
        count = 0
        for start in range(8):
            if not pattern >> start & 1 or component[start] >= 0:
                continue
            stack = [start]
            component[start] = count
            while stack:
                v = stack.pop()
                for bit in (1, 2, 4):
                    w = v ^ bit
                    if pattern >> w & 1 and component[w] < 0:
                        component[w] = count
                        stack.append(w)
            count += 1
        table[pattern] = [max(c, 0) for c in component]
    return table


_CELL_COMPONENTS = _cell_components()


def surface_nets_vertex_copies(
    padded_labels: np.ndarray, raw_points: np.ndarray, spacing: np.ndarray, faces: np.ndarray,
    face_labels: np.ndarray,
) -> np.ndarray:
    """Which copy of its vertex each corner of each per-label triangle uses (0..3).

    SurfaceNets puts one vertex in each cell of 2x2x2 voxels. Where two voxels of one bone
    touch only along an edge or a corner, that single vertex makes the bone's surface pinch:
    an edge with 4 triangles or a vertex joining two cones, which 3D printing and VR tools
    reject as non-manifold. As in manifold dual contouring, a bone gets one copy of the
    vertex per face-connected piece of its voxels inside the cell, and each triangle uses the
    copy of the piece holding its own voxel. Copies share their position, so the shape is
    unchanged; only the connectivity becomes manifold (the bone's voxels count as
    6-connected). ``padded_labels`` is the (z, y, x) array given to SurfaceNets and
    ``raw_points`` its unsmoothed output points (cell centres, contouring frame).
    """
    faces_all, labels_all = _faces_per_label(faces, face_labels)
    # cell of each point: padded index of its lowest-corner voxel (points sit at cell centres)
    cells = np.rint(raw_points / spacing + 0.5).astype(np.int64)  # +1 for the padding, -0.5 to the corner
    corner_cells = cells[faces_all]  # (n, 3 corners, 3 xyz)
    # the lattice edge a triangle is dual to runs along the one axis on which its 3 cells agree
    same = (corner_cells == corner_cells[:, :1, :]).all(axis=1)  # (n, 3)
    axis = np.argmax(same, axis=1)
    low = corner_cells.max(axis=1)  # the other two axes: the voxels' index = the larger cell index
    low[np.arange(len(low)), axis] = corner_cells[np.arange(len(low)), 0, axis]
    high = low.copy()
    high[np.arange(len(low)), axis] += 1
    lab = padded_labels
    own_low = lab[low[:, 2], low[:, 1], low[:, 0]] == labels_all
    voxel = np.where(own_low[:, None], low, high)  # the triangle's own voxel
    # occupancy pattern of each corner's cell for the triangle's label
    offsets = np.array([[dx, dy, dz] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)])  # bit order
    pattern = np.zeros(corner_cells.shape[:2], np.int64)
    for bit, off in enumerate(offsets):
        q = corner_cells + off
        pattern |= (lab[q[..., 2], q[..., 1], q[..., 0]] == labels_all[:, None]).astype(np.int64) << bit
    rel = voxel[:, None, :] - corner_cells  # position of the own voxel inside each corner's cell
    position = rel[..., 0] + 2 * rel[..., 1] + 4 * rel[..., 2]
    return _CELL_COMPONENTS[pattern, position]


def decimation_fractions(
    triangle_counts: dict[int, int], decimate: float = 0.0, triangle_budget: int | None = None
) -> dict[int, float]:
    """Per label, the fraction of triangles to remove (only labels that need any)."""
    total = sum(triangle_counts.values())
    keep = 1.0 - float(decimate)
    if triangle_budget is not None and total > 0:
        keep = min(keep, triangle_budget / total)
    if keep >= 1.0:
        return {}
    out = {}
    for label, n in triangle_counts.items():
        target = max(keep * n, min(n, MIN_TRIANGLES_PER_BONE))
        if n > 0 and target < n:
            out[label] = 1.0 - target / n
    return out


def is_closed_manifold(triangles: np.ndarray) -> bool:
    """True if every edge of the triangle mesh is shared by exactly two triangles."""
    if len(triangles) == 0:
        return False
    a, b = triangles, np.roll(triangles, -1, axis=1)
    n = int(triangles.max()) + 1
    keys = (np.minimum(a, b) * n + np.maximum(a, b)).ravel()
    _, counts = np.unique(keys, return_counts=True)
    return bool(np.all(counts == 2))


def quadric_decimate(mesh: vtkPolyData, reduction: float) -> vtkPolyData:
    """Remove about ``reduction`` of the triangles with quadric error metrics, keeping volume.

    Quadric decimation does not guarantee topology: on about 1 % of bone meshes it leaves a
    hole or a non-manifold edge. A closed input therefore stays closed: the reduction is
    retried at 2/3 and 1/3 strength, and the undecimated mesh is kept if all tries fail.
    """
    closed = is_closed_manifold(triangles_of(mesh))
    for strength in (1.0, 2 / 3, 1 / 3):
        f = vtkQuadricDecimation()
        f.SetInputData(mesh)
        f.SetTargetReduction(reduction * strength)
        f.VolumePreservationOn()
        f.Update()
        out = _geometry_only(f.GetOutput())
        if not closed or is_closed_manifold(triangles_of(out)):
            return out
    return mesh
