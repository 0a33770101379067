"""Offscreen 3D picture of a segmentation node's closed surfaces (no Slicer views needed).

Used for the README screenshot and by the batch script's ``--screenshot``: the same surfaces
Slicer shows in its 3D view (the node's closed-surface representation, RAS millimetres), each
in its segment colour, seen from the front (anterior) and from the patient's left, on Slicer's
default 3D background.
"""
from __future__ import annotations

import os
from pathlib import Path

import slicer
import vtk

from .segments import showIn3D

SLICER_BACKGROUND = ((0.7568, 0.7647, 0.9098), (0.4549, 0.4706, 0.7451))  # Slicer's 3D view gradient


def renderSegmentation3D(segmentationNode: slicer.vtkMRMLSegmentationNode, pngPath: str | os.PathLike,
                         size: tuple[int, int] = (1400, 800), caption: str | None = None) -> Path:
    """Render all segments' closed surfaces into a PNG (anterior and left views side by side).

    Builds the closed-surface representation if the node lacks it. Writes atomically; returns
    the path. Raises ``ValueError`` if the node has no segment with a surface.
    """
    showIn3D(segmentationNode)
    segmentation = segmentationNode.GetSegmentation()
    actors = []
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        polyData = segmentationNode.GetClosedSurfaceInternalRepresentation(segmentId)
        if polyData is None or polyData.GetNumberOfPoints() == 0:
            continue
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputData(polyData)
        normals.SplittingOff()
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetColor(*segmentation.GetNthSegment(index).GetColor())
        prop.SetSpecular(0.25)
        prop.SetSpecularPower(20)
        actors.append(actor)
    if not actors:
        raise ValueError(f"'{segmentationNode.GetName()}' has no segment with a closed surface to render")

    # without a display VTK first tries X ("bad X server connection" warning), then EGL/OSMesa:
    # only errors are worth showing while the window lives
    cutoff = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)
    try:
        return _render(actors, pngPath, size, caption)
    finally:
        vtk.vtkLogger.SetStderrVerbosity(cutoff)


def _render(actors: list, pngPath: str | os.PathLike, size: tuple[int, int], caption: str | None) -> Path:
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)  # FXAA and MSAA give black images with the EGL fallback of VTK wheels
    window.SetSize(*size)
    # (viewport, camera direction from the focal point, view up): anterior, then patient's left
    views = (((0.0, 0.0, 0.5, 1.0), (0.0, 1.0, 0.0)), ((0.5, 0.0, 1.0, 1.0), (-1.0, 0.0, 0.0)))
    for viewport, direction in views:
        renderer = vtk.vtkRenderer()
        renderer.SetViewport(*viewport)
        renderer.GradientBackgroundOn()
        renderer.SetBackground(*SLICER_BACKGROUND[0])
        renderer.SetBackground2(*SLICER_BACKGROUND[1])
        for actor in actors:
            renderer.AddActor(actor)
        renderer.ResetCamera()
        camera = renderer.GetActiveCamera()
        focal = camera.GetFocalPoint()
        distance = camera.GetDistance()
        camera.SetPosition(*(f + distance * d for f, d in zip(focal, direction)))
        camera.SetViewUp(0.0, 0.0, 1.0)  # superior up
        renderer.ResetCamera()
        camera.Zoom(1.15)
        window.AddRenderer(renderer)
    renderers = [window.GetRenderers().GetItemAsObject(i) for i in range(len(views))]
    for renderer, label in zip(renderers, ("anterior", "left")):
        text = vtk.vtkTextActor()  # positions are in the renderer's own viewport pixels
        text.SetInput(label)
        text.GetTextProperty().SetFontSize(max(14, size[1] // 40))
        text.GetTextProperty().SetColor(1.0, 1.0, 1.0)
        text.SetPosition(10, size[1] - size[1] // 20 - 10)
        renderer.AddViewProp(text)
    if caption:  # on a transparent full-width layer above both views
        window.SetNumberOfLayers(2)
        overlay = vtk.vtkRenderer()
        overlay.SetLayer(1)
        overlay.InteractiveOff()
        text = vtk.vtkTextActor()
        text.SetInput(caption)
        text.GetTextProperty().SetFontSize(max(12, size[1] // 50))
        text.GetTextProperty().SetColor(1.0, 1.0, 1.0)
        text.SetPosition(10, 10)
        overlay.AddViewProp(text)
        window.AddRenderer(overlay)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()

    from sneakynet.io import atomic_path

    path = Path(pngPath)
    with atomic_path(path) as tmp:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(tmp))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
    window.Finalize()
    return path
