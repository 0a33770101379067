"""Segmentation nodes from bone label maps and back, .seg.nrrd files, closed surfaces.

One segment per bone present in the label map: named with the label table's display name,
coloured with its colour, carrying its SNOMED CT terminology entry and a
``SneakyNet.LabelId`` tag (so meshes and label maps can be rebuilt from the node even after
the user renamed or edited segments). Segments share one labelmap layer, as Slicer's own
labelmap import does, so 125 segments of a large CT cost one volume of memory.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from .errors import ExportError, SneakyNetError
from .volumes import RAS_FROM_LPS, ijkToRasArray, ijkToRasFromImage, quietVtkLog, readerMessage

LABEL_ID_TAG = "SneakyNet.LabelId"
TERMINOLOGY_TAG = "TerminologyEntry"  # Slicer's tag name for terminology before vtkSegment.SetTerminology
CLOSED_SURFACE = "Closed surface"  # vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()

_convertersRegistered = False


def registerClosedSurfaceConverters() -> None:
    """Register labelmap <-> closed surface conversion rules once per process.

    The Slicer application does this at start-up; in slicer-core (plain Python) nobody does, and
    without the rules ``CreateClosedSurfaceRepresentation()`` silently does nothing. A segmentation
    copies the factory's rules when it is constructed, so this runs when this module is imported.
    """
    global _convertersRegistered
    if _convertersRegistered:
        return
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    have = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for cls in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule, slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if cls.__name__ not in have:
            factory.RegisterConverterRule(cls())
    _convertersRegistered = True


registerClosedSurfaceConverters()  # before any segmentation is created: each copies the rules at birth


def terminologyEntry(bone) -> str:
    """The bone's Slicer terminology entry string (category, type, modifier from the label table)."""
    return bone.slicer_terminology()


def setSegmentTerminology(segment, entry: str) -> None:
    """Store a terminology entry string the way this Slicer version expects it."""
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(entry)
    else:  # Slicer < 5.8 keeps it as a tag
        segment.SetTag(TERMINOLOGY_TAG, entry)


def segmentTerminology(segment) -> str:
    """The terminology entry string of a segment ('' if none)."""
    if hasattr(segment, "GetTerminology"):
        return segment.GetTerminology() or ""
    tag = vtk.reference("")
    return str(tag) if segment.GetTag(TERMINOLOGY_TAG, tag) else ""


def orientedImageFromLabels(labels: sitk.Image) -> "slicer.vtkOrientedImageData":
    """A vtkOrientedImageData (image-to-world = IJK-to-RAS) holding a copy of a uint8 label map."""
    array = np.ascontiguousarray(sitk.GetArrayFromImage(labels).astype(np.uint8, copy=False))
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    target = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(array.shape)
    target[:] = array
    image.SetImageToWorldMatrix(_vtkMatrix(ijkToRasFromImage(labels)))
    return image


def fillSegmentationNode(segmentationNode: slicer.vtkMRMLSegmentationNode, labels: sitk.Image) -> list[int]:
    """Replace the node's segments by one per bone present in ``labels``; return the bone ids.

    ``labels`` is a uint8 label map (0 = background, 1..125 = label table ids) in LPS geometry.
    Segment ids are the bones' snake_case names (e.g. ``humerus_left``); each segment gets the
    display name, colour, SNOMED terminology and the ``SneakyNet.LabelId`` tag. All segments
    share one labelmap layer (label value = bone id), as Slicer's labelmap import does. The node
    does not need to be in a scene. Ids outside the label table raise :class:`SneakyNetError`.
    """
    from sneakynet.labels import load_label_table

    table = load_label_table()
    present = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v != 0]
    unknown = [v for v in present if not 1 <= v <= len(table)]
    if unknown:
        raise SneakyNetError(f"the label map holds ids {unknown} that are not in the SneakyNet label table")
    shared = orientedImageFromLabels(labels)
    binaryLabelmap = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    segmentation = segmentationNode.GetSegmentation()
    wasModifying = segmentationNode.StartModify()
    try:
        segmentation.RemoveAllSegments()
        if hasattr(segmentation, "SetSourceRepresentationName"):
            segmentation.SetSourceRepresentationName(binaryLabelmap)
        else:  # Slicer < 5.4
            segmentation.SetMasterRepresentationName(binaryLabelmap)
        for labelId in present:
            bone = table.by_id(labelId)
            segment = slicer.vtkSegment()
            segment.SetName(bone.display)
            segment.SetColor(*bone.color_float)
            segment.SetLabelValue(bone.id)
            segment.AddRepresentation(binaryLabelmap, shared)
            setSegmentTerminology(segment, terminologyEntry(bone))
            segment.SetTag(LABEL_ID_TAG, str(bone.id))
            if not segmentation.AddSegment(segment, bone.name):
                raise SneakyNetError(f"Slicer could not add the segment '{bone.display}'")
    finally:
        segmentationNode.EndModify(wasModifying)
    return present


def segmentLabelId(segment) -> int | None:
    """The bone id of a segment: its ``SneakyNet.LabelId`` tag, else its name in the label table."""
    from sneakynet.labels import load_label_table

    tag = vtk.reference("")
    if segment.GetTag(LABEL_ID_TAG, tag):
        try:
            return int(str(tag))
        except ValueError:
            pass
    table = load_label_table()
    name = segment.GetName()
    for bone in table:
        if name in (bone.display, bone.name):
            return bone.id
    return None


def labelImageFromSegmentation(segmentationNode: slicer.vtkMRMLSegmentationNode,
                               referenceVolumeNode: slicer.vtkMRMLVolumeNode | None = None
                               ) -> tuple[sitk.Image, list[str]]:
    """Merge the bone segments back into a uint8 label map (LPS geometry) for export.

    The grid is the reference volume's if given, else the segmentation's reference geometry.
    Returns the image and the names of segments that are not SneakyNet bones (left out).
    """
    segmentation = segmentationNode.GetSegmentation()
    ids, values, skipped = vtk.vtkStringArray(), vtk.vtkIntArray(), []
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        labelId = segmentLabelId(segment)
        if labelId is None:
            skipped.append(segment.GetName())
            continue
        ids.InsertNextValue(segmentation.GetNthSegmentID(index))
        values.InsertNextValue(labelId)
    if ids.GetNumberOfValues() == 0:
        raise ExportError(f"'{segmentationNode.GetName()}' has no SneakyNet bone segments to export")
    geometry = None
    if referenceVolumeNode is not None:
        geometry = slicer.vtkOrientedImageData()
        geometry.SetExtent(referenceVolumeNode.GetImageData().GetExtent())
        geometry.SetImageToWorldMatrix(_vtkMatrix(ijkToRasArray(referenceVolumeNode)))
    merged = slicer.vtkOrientedImageData()
    mode = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
    if not segmentationNode.GenerateMergedLabelmapForAllSegments(merged, mode, geometry, ids, values):
        raise ExportError(f"'{segmentationNode.GetName()}': Slicer could not merge the segments into a label map")
    return imageFromOrientedImage(merged), skipped


def imageFromOrientedImage(image: "slicer.vtkOrientedImageData") -> sitk.Image:
    """SimpleITK uint8 copy of a vtkOrientedImageData (RAS image-to-world -> LPS geometry)."""
    extent = image.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
    out = sitk.GetImageFromArray(array.astype(np.uint8))
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijkToRas = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    lps = RAS_FROM_LPS @ ijkToRas[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    origin_ras = ijkToRas @ np.array([extent[0], extent[2], extent[4], 1.0])
    out.SetSpacing([float(s) for s in spacing])
    out.SetDirection([float(v) for v in (lps / spacing).ravel()])
    out.SetOrigin([float(v) for v in RAS_FROM_LPS @ origin_ras[:3]])
    return out


def showIn3D(segmentationNode: slicer.vtkMRMLSegmentationNode, labels: sitk.Image | None = None) -> bool:
    """Build the closed-surface representation and show it in 3D views; False if nothing was built.

    The surfaces are SneakyNet's exported meshes (one multi-label SurfaceNets pass, smoothed, each
    bone's voxel volume restored), not Slicer's default conversion: its flying edges + smoothing
    factor 0.5 shrink bones one or two voxels thick (ribs, forearms, hand bones of a coarse CT) to
    nothing (88 of 99 bones of the demo phantom kept under half their volume). The 3D view then
    shows what "Export meshes" writes. ``labels``: the node's label map if at hand (else merged
    from the node). A node that already has surfaces, or has segments that are not SneakyNet
    bones, keeps Slicer's own conversion.
    """
    registerClosedSurfaceConverters()
    if segmentationNode.GetScene() is not None and segmentationNode.GetDisplayNode() is None:
        segmentationNode.CreateDefaultDisplayNodes()
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetNumberOfSegments() and not segmentation.ContainsRepresentation(CLOSED_SURFACE):
        if not _addBoneSurfaces(segmentationNode, labels):
            segmentationNode.CreateClosedSurfaceRepresentation()
    display = segmentationNode.GetDisplayNode()
    if display is not None:
        display.SetPreferredDisplayRepresentationName3D(CLOSED_SURFACE)
        display.SetVisibility3D(True)
    return segmentation.GetNumberOfSegments() == 0 or segmentation.ContainsRepresentation(CLOSED_SURFACE)


def _addBoneSurfaces(segmentationNode: slicer.vtkMRMLSegmentationNode, labels: sitk.Image | None) -> bool:
    """Give every segment its bone's exported surface; False (nothing changed) unless all get one."""
    from sneakynet.export import extract_surfaces

    segmentation = segmentationNode.GetSegmentation()
    segmentList = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    labelIds = [segmentLabelId(segment) for segment in segmentList]
    if None in labelIds:
        return False
    if labels is None:
        labels, _ = labelImageFromSegmentation(segmentationNode)
    surfaces = extract_surfaces(labels, smooth=True)
    if any(labelId not in surfaces for labelId in labelIds):
        return False
    wasModifying = segmentationNode.StartModify()
    try:
        for segment, labelId in zip(segmentList, labelIds):
            normals = vtk.vtkPolyDataNormals()  # smooth shading, as Slicer's "Compute surface normals"
            normals.SetInputData(surfaces[labelId])
            normals.SplittingOff()
            normals.ConsistencyOff()  # the exporter already winds every triangle outward
            normals.Update()
            segment.AddRepresentation(CLOSED_SURFACE, normals.GetOutput())
    finally:
        segmentationNode.EndModify(wasModifying)
    return True


def saveSegmentation(segmentationNode: slicer.vtkMRMLSegmentationNode, path: str | os.PathLike) -> Path:
    """Write a ``.seg.nrrd`` atomically (temporary file beside it, renamed when complete)."""
    path = Path(path)
    if not path.name.lower().endswith(".seg.nrrd"):
        raise ExportError(f"{path}: a segmentation file name must end in .seg.nrrd")
    from sneakynet.io import atomic_path

    with atomic_path(path) as tmp:
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(tmp))
        storage.SetUseCompression(True)
        if not storage.WriteData(segmentationNode):
            raise ExportError(f"{path}: Slicer could not write the segmentation")
    return path


def loadSegmentation(scene: slicer.vtkMRMLScene, path: str | os.PathLike, name: str | None = None
                     ) -> slicer.vtkMRMLSegmentationNode:
    """Read a ``.seg.nrrd`` into a new segmentation node added to ``scene``."""
    path = Path(path)
    if not path.is_file():
        raise SneakyNetError(f"{path}: segmentation file does not exist")
    if not path.name.lower().endswith(".seg.nrrd"):
        raise SneakyNetError(f"{path}: not a .seg.nrrd segmentation file")
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name or path.name[: -len(".seg.nrrd")])
    scene.AddNode(node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    with quietVtkLog():
        ok = storage.ReadData(node)
    if not ok:
        reason = readerMessage(storage)
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise SneakyNetError(f"{path}: not a readable Slicer segmentation file ({reason})")
    return node


def _vtkMatrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m
