"""Offscreen, class-coloured PNG preview of a bone label map (anterior + lateral views).

Runs headless: VTK picks EGL or OSMesa when there is no X display. Each view is rendered in
its own offscreen window (screen-space ambient occlusion breaks with several viewports) and
the tiles are put side by side. Parallel-projection cameras give all views one scale (mm per
pixel); bones are lit by a light kit, with ambient occlusion for depth cues. An optional
CT adds a semi-transparent skin surface (the CT averaged down to ~3 mm and contoured at
-300 HU, largest connected piece only, which drops the scanner table).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLogger
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import (
    vtkFlyingEdges3D,
    vtkPolyDataConnectivityFilter,
    vtkPolyDataNormals,
    vtkWindowedSincPolyDataFilter,
)
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingCore import vtkLightKit

from sneakynet.export.frames import apply_affine
from sneakynet.export.labelmap import LabelMapError, describe_source, load_label_map
from sneakynet.export.surfaces import local_to_ras, surfaces_from_label_map
from sneakynet.export.vtkconv import points_of, polydata_from_arrays, triangles_of
from sneakynet.io import atomic_path, read_image
from sneakynet.labels import load_label_table

SKIN_THRESHOLD_HU = -300.0
SKIN_VOXEL_MM = 3.0

# view name -> (direction from the body towards the camera in RAS, view-up in RAS, title,
#               label at the left / right edge of the viewport)
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], str, str, str]] = {
    "anterior": ((0, 1, 0), (0, 0, 1), "Anterior", "R", "L"),
    "posterior": ((0, -1, 0), (0, 0, 1), "Posterior", "L", "R"),
    "lateral": ((-1, 0, 0), (0, 0, 1), "Left lateral", "A", "P"),
    "left": ((-1, 0, 0), (0, 0, 1), "Left lateral", "A", "P"),
    "right": ((1, 0, 0), (0, 0, 1), "Right lateral", "P", "A"),
    "superior": ((0, 0, 1), (0, 1, 0), "Superior", "R", "L"),
}

BACKGROUND_TOP = (0.17, 0.19, 0.24)
BACKGROUND_BOTTOM = (0.02, 0.02, 0.03)
SKIN_COLOR = (0.96, 0.80, 0.69)
SKIN_OPACITY = 0.2
SKIN_AMBIENT = 0.35
TEXT_COLOR = (0.86, 0.88, 0.92)
USE_SSAO = True
USE_FXAA = True


def render_labels(
    labels: sitk.Image | str | os.PathLike,
    out_png: str | os.PathLike,
    ct: sitk.Image | str | os.PathLike | None = None,
    views: Sequence[str] = ("anterior", "lateral"),
    size: tuple[int, int] = (1200, 700),
    progress: Callable[[float, str], None] | None = None,
) -> Path:
    """Render the bones of ``labels`` (class colours from the label table) side by side in
    ``views`` and write ``out_png`` atomically; ``ct`` adds a translucent skin. Returns the path.
    """
    report = progress or (lambda fraction, message: None)
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown:
        raise ValueError(f"unknown view(s) {unknown or list(views)}; choose from {', '.join(VIEWS)}")
    if len(size) != 2 or min(size) < 64:
        raise ValueError(f"image size must be two numbers >= 64 pixels, got {size}")
    label_map = load_label_map(labels)
    ct_image = None if ct is None else load_ct(ct)
    report(0.05, "extracting bone surfaces")
    surfaces = surfaces_from_label_map(label_map, progress=lambda f, m: report(0.05 + 0.6 * f, m))
    skin = None
    if ct_image is not None:
        report(0.7, "extracting skin surface")
        skin = skin_surface(ct_image)
    report(0.8, "rendering")
    table = load_label_table()
    bounds = _bounds([*surfaces.values()] + ([skin] if skin is not None else []))
    bone_props = [(surfaces[k], table.by_id(k).color_float) for k in sorted(surfaces)]
    caption = f"SneakyNet  |  {len(surfaces)} bones" + ("  |  skin: CT at -300 HU" if skin is not None else "")
    widths = [int(size[0]) // len(views)] * len(views)
    widths[-1] += int(size[0]) - sum(widths)
    tiles = []
    for i, (view, width) in enumerate(zip(views, widths)):
        # One window per view: SSAO and gradient backgrounds misbehave with several viewports.
        ren = _view_renderer(view, bone_props, skin, bounds, (width, int(size[1])))
        if i == 0:
            ren.AddViewProp(_caption(caption))
        tiles.append(_snapshot(ren, (width, int(size[1]))))
        report(0.8 + 0.2 * (i + 1) / len(views), f"rendered {view} view")
    image = np.concatenate(tiles, axis=1)  # (height, width, 3), top row first
    out_png = Path(out_png)
    _write_png(image, out_png)
    report(1.0, f"wrote {out_png}")
    return out_png


def load_ct(ct: sitk.Image | str | os.PathLike) -> sitk.Image:
    """Read (if a path) and check a CT for the skin surface; ``LabelMapError`` naming the file otherwise."""
    image = ct if isinstance(ct, sitk.Image) else _read_ct(ct)
    _check_ct(image, describe_source(ct) if not isinstance(ct, sitk.Image) else "<in-memory CT>")
    return image


def _read_ct(path: str | os.PathLike) -> sitk.Image:
    try:
        return read_image(path)
    except ValueError as exc:
        raise LabelMapError(str(exc)) from None


def _check_ct(image: sitk.Image, source: str) -> None:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise LabelMapError(f"{source}: the CT must be a 3D scalar image")
    lo = float(np.min(sitk.GetArrayViewFromImage(image)))
    if lo > SKIN_THRESHOLD_HU:
        raise LabelMapError(
            f"{source}: minimum value {lo:g} is above {SKIN_THRESHOLD_HU:g}; not a CT in Hounsfield units "
            "(air should be about -1000), so no skin surface can be made"
        )


def skin_surface(ct: sitk.Image) -> vtkPolyData | None:
    """Skin surface in RAS mm: the CT averaged to ~3 mm voxels, contoured at -300 HU."""
    factors = [max(1, int(round(SKIN_VOXEL_MM / s))) for s in ct.GetSpacing()]
    small = sitk.BinShrink(sitk.Cast(ct, sitk.sitkFloat32), factors)
    arr = np.pad(sitk.GetArrayViewFromImage(small), 1, constant_values=-1024.0)  # closes the surface
    spacing = small.GetSpacing()
    img = vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.SetSpacing(spacing)
    img.SetOrigin([-s for s in spacing])
    img.GetPointData().SetScalars(numpy_to_vtk(arr.ravel(), deep=True))
    contour = vtkFlyingEdges3D()
    contour.SetInputData(img)
    contour.SetValue(0, SKIN_THRESHOLD_HU)
    contour.ComputeNormalsOff()
    contour.ComputeScalarsOff()
    largest = vtkPolyDataConnectivityFilter()
    largest.SetInputConnection(contour.GetOutputPort())
    largest.SetExtractionModeToLargestRegion()
    smooth = vtkWindowedSincPolyDataFilter()
    smooth.SetInputConnection(largest.GetOutputPort())
    smooth.SetNumberOfIterations(15)
    smooth.SetPassBand(0.1)
    smooth.NormalizeCoordinatesOn()
    smooth.Update()
    mesh = smooth.GetOutput()
    if mesh.GetNumberOfPolys() == 0:
        return None
    tri = triangles_of(mesh)
    used, compact = np.unique(tri, return_inverse=True)  # the connectivity filter keeps every point
    ras = apply_affine(local_to_ras(small), points_of(mesh)[used])
    return polydata_from_arrays(ras, compact.reshape(-1, 3))


def _snapshot(ren: vtkRenderer, size: tuple[int, int]) -> np.ndarray:
    """Render ``ren`` offscreen at ``size`` and return (height, width, 3) uint8, top row first."""
    # Without a display VTK first tries X, warns "bad X server connection", then falls back to
    # EGL or OSMesa; the warning is noise for a headless render, so only errors are shown here.
    cutoff = vtkLogger.GetCurrentVerbosityCutoff()
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    try:
        window = vtkRenderWindow()
        window.SetOffScreenRendering(1)
        window.SetSize(int(size[0]), int(size[1]))
        window.SetMultiSamples(0)  # FXAA instead; MSAA is unreliable offscreen
        window.AddRenderer(ren)
        window.Render()
    finally:
        vtkLogger.SetStderrVerbosity(cutoff)
    pixels = _grab(window, depth=False).astype(np.float32)
    depth = _grab(window, depth=True)
    window.Finalize()
    # The SSAO pass ignores gradient backgrounds, so the renderer clears to black and the
    # gradient is put in here where nothing opaque was drawn (depth == 1). A translucent skin
    # pixel there holds SKIN_OPACITY * its shade over black; over the gradient it gets the rest.
    h = pixels.shape[0]
    t = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None, None]  # 1 at the top row
    gradient = 255.0 * (t * np.array(BACKGROUND_TOP) + (1 - t) * np.array(BACKGROUND_BOTTOM))
    empty = (depth >= 1.0)[:, :, None]
    skin_drawn = pixels.max(axis=2, keepdims=True) > 0
    behind = np.where(skin_drawn, 1.0 - SKIN_OPACITY, 1.0)
    out = np.where(empty, pixels + behind * gradient, pixels)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grab(window: vtkRenderWindow, depth: bool) -> np.ndarray:
    """The back buffer as (height, width, 3) RGB or (height, width) depth, top row first."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    if depth:
        grab.SetInputBufferTypeToZBuffer()
    else:
        grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    arr = vtk_to_numpy(out.GetPointData().GetScalars())
    return (arr.reshape(h, w) if depth else arr.reshape(h, w, -1)[:, :, :3])[::-1].copy()


def _write_png(image: np.ndarray, path: Path) -> None:
    """Write a (height, width, 3) uint8 image atomically as PNG."""
    h, w, _ = image.shape
    data = vtkImageData()
    data.SetDimensions(w, h, 1)
    data.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(image[::-1]).reshape(-1, 3), deep=True))
    writer = vtkPNGWriter()
    writer.SetInputData(data)
    with atomic_path(path) as tmp:
        writer.SetFileName(str(tmp))
        writer.Write()
        if tmp.stat().st_size == 0:
            raise OSError(f"{path}: PNG could not be written")


def _caption(text: str) -> vtkTextActor:
    actor = vtkTextActor()
    actor.SetInput(text)
    _style_text(actor, 15, (0.62, 0.65, 0.70))
    actor.SetDisplayPosition(14, 10)
    return actor


def _bounds(meshes: list[vtkPolyData]) -> np.ndarray:
    b = np.array([m.GetBounds() for m in meshes if m is not None and m.GetNumberOfPoints() > 0])
    return np.array([b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(), b[:, 4].min(), b[:, 5].max()])


def _actor(mesh: vtkPolyData, color: tuple[float, float, float], skin: bool = False) -> vtkActor:
    """Opaque bone actor, or the translucent skin (outward normals, front faces only)."""
    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.SplittingOff()
    normals.ConsistencyOff()  # bone meshes are already wound outward
    if skin:
        normals.ConsistencyOn()
        normals.AutoOrientNormalsOn()  # the CT contour's winding depends on the image direction
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(normals.GetOutputPort())
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*color)
    prop.SetInterpolationToPhong()
    prop.SetSpecularPower(25)
    if skin:
        prop.SetOpacity(SKIN_OPACITY)
        prop.SetAmbient(SKIN_AMBIENT)
        prop.SetDiffuse(1.0 - SKIN_AMBIENT)
        prop.SetSpecular(0.05)
        prop.BackfaceCullingOn()  # one translucent layer reads better than front + back
    else:
        prop.SetAmbient(0.12)
        prop.SetDiffuse(0.85)
        prop.SetSpecular(0.18)
    return actor


def _style_text(actor: vtkTextActor, size: int, color: tuple[float, float, float], bold: bool = False) -> None:
    tp = actor.GetTextProperty()
    tp.SetFontSize(size)
    tp.SetColor(*color)
    tp.SetBold(bold)
    tp.SetFontFamilyToArial()


def _view_renderer(
    view: str,
    bones: list[tuple[vtkPolyData, tuple[float, float, float]]],
    skin: vtkPolyData | None,
    bounds: np.ndarray,
    size: tuple[int, int],
) -> vtkRenderer:
    towards_camera, up, title, left_mark, right_mark = VIEWS[view]
    ren = vtkRenderer()
    ren.SetBackground(0.0, 0.0, 0.0)  # the gradient is composited in _snapshot
    for mesh, color in bones:
        ren.AddActor(_actor(mesh, color))
    if skin is not None:
        ren.AddActor(_actor(skin, SKIN_COLOR, skin=True))
        ren.SetUseDepthPeeling(1)
        ren.SetMaximumNumberOfPeels(6)
    kit = vtkLightKit()
    kit.SetKeyLightIntensity(0.95)
    kit.AddLightsToRenderer(ren)
    ren.TwoSidedLightingOn()

    center = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
    extent = np.array([bounds[1] - bounds[0], bounds[3] - bounds[2], bounds[5] - bounds[4]])
    d = np.asarray(towards_camera, dtype=float)
    u = np.asarray(up, dtype=float)
    right = np.cross(-d, u)  # screen-right direction in RAS
    width_mm = float(np.abs(right) @ extent)
    height_mm = float(np.abs(u) @ extent)
    aspect = size[0] / size[1]
    cam = ren.GetActiveCamera()
    cam.ParallelProjectionOn()
    cam.SetFocalPoint(*center)
    cam.SetPosition(*(center + d * (2.0 * float(extent.max()) + 100.0)))
    cam.SetViewUp(*u)
    cam.SetParallelScale(0.56 * max(height_mm, width_mm / aspect) + 8.0)
    ren.ResetCameraClippingRange()

    if USE_FXAA:
        ren.UseFXAAOn()
    if USE_SSAO:
        ren.UseSSAOOn()
        ren.SetSSAORadius(0.04 * float(extent.max()))
        ren.SetSSAOBias(0.05 * float(extent.max()) / 100.0)
        ren.SetSSAOKernelSize(64)
        ren.SSAOBlurOn()

    _add_view_labels(ren, title, left_mark, right_mark)
    return ren


def _add_view_labels(ren: vtkRenderer, title: str, left_mark: str, right_mark: str) -> None:
    """The view's title at the top left and its orientation marks at the left and right edges."""
    heading = vtkTextActor()
    heading.SetInput(title)
    _style_text(heading, 24, TEXT_COLOR, bold=True)
    heading.GetTextProperty().SetVerticalJustificationToTop()
    heading.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    heading.SetPosition(0.04, 0.965)
    ren.AddViewProp(heading)
    for mark, x, justify in ((left_mark, 0.03, 0), (right_mark, 0.97, 2)):
        t = vtkTextActor()
        t.SetInput(mark)
        _style_text(t, 20, (0.62, 0.66, 0.74), bold=True)
        t.GetTextProperty().SetJustification(justify)
        t.GetTextProperty().SetVerticalJustificationToCentered()
        t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        t.SetPosition(x, 0.5)
        ren.AddViewProp(t)
