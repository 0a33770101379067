"""Volume nodes <-> SimpleITK images with exact geometry, input checks and file loading.

Slicer stores a volume's geometry as the IJK-to-RAS matrix of its node (RAS: x = Right,
y = Anterior, z = Superior, millimetres); SimpleITK/ITK use LPS (x = Left, y = Posterior,
z = Superior) with ``lps = origin + direction @ diag(spacing) @ ijk``. The two are related by
``lps = diag(-1, -1, 1) @ ras``. Voxel arrays are (k, j, i) = (z, y, x) in both
``slicer.util.arrayFromVolume`` and ``sitk.GetArrayFromImage``, so no transposition is needed.

Parent transforms of a volume node are not applied: the prediction runs on the voxel grid,
and the output segmentation observes the same parent transform (see ``segments.py``).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .casenames import caseName, volumeSuffix  # noqa: F401 (re-exported for callers)
from .errors import InputVolumeError

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])

def ijkToRasArray(volumeNode: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's 4x4 IJK-to-RAS matrix as a numpy array (RAS millimetres per voxel index)."""
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijkToRasFromImage(image: sitk.Image) -> np.ndarray:
    """4x4 IJK-to-RAS matrix of a SimpleITK image (its LPS geometry flipped to RAS)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = RAS_FROM_LPS @ direction @ np.diag(image.GetSpacing())
    m[:3, 3] = RAS_FROM_LPS @ np.asarray(image.GetOrigin(), dtype=float)
    return m


def setIjkToRas(volumeNode: slicer.vtkMRMLVolumeNode, matrix: np.ndarray) -> None:
    """Set a node's geometry from a 4x4 IJK-to-RAS array (spacing, origin and directions at once)."""
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(matrix[r, c]))
    volumeNode.SetIJKToRASMatrix(m)


def imageFromVolumeNode(volumeNode: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
    """A SimpleITK copy of a scalar volume node: same voxels, LPS origin/direction/spacing."""
    array = slicer.util.arrayFromVolume(volumeNode)  # (k, j, i), a view of the node's memory
    image = sitk.GetImageFromArray(np.array(array, copy=True))
    m = ijkToRasArray(volumeNode)
    lps = RAS_FROM_LPS @ m[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (lps / spacing).ravel()])
    image.SetOrigin([float(v) for v in RAS_FROM_LPS @ m[:3, 3]])
    return image


def updateVolumeNodeFromImage(volumeNode: slicer.vtkMRMLVolumeNode, image: sitk.Image) -> None:
    """Fill a (scalar or label map) volume node with a SimpleITK image's voxels and geometry."""
    slicer.util.updateVolumeFromArray(volumeNode, sitk.GetArrayFromImage(image))
    setIjkToRas(volumeNode, ijkToRasFromImage(image))


def validateCtVolumeNode(volumeNode) -> None:
    """Check that ``volumeNode`` can be segmented; raise :class:`InputVolumeError` if not.

    Refused: no node, a label map volume node, a vector/RGB volume, no voxels, a single slice, a
    constant volume. Whether the values look like CT in Hounsfield units is checked by the core
    (``sneakynet.intensity.check_hounsfield``), as on the command line.
    """
    if volumeNode is None:
        raise InputVolumeError("No input volume is selected. Load a CT scan and choose it as 'Input CT volume'.")
    name = volumeNode.GetName() or volumeNode.GetID() or "the input volume"
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputVolumeError(f"'{name}' is a label map volume, not a CT scan. Choose the CT volume as input.")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise InputVolumeError(f"'{name}' is a {volumeNode.GetClassName()}, not a scalar CT volume.")
    imageData = volumeNode.GetImageData()
    if imageData is None or imageData.GetNumberOfPoints() == 0:
        raise InputVolumeError(f"'{name}' holds no voxels. Load the CT again.")
    components = imageData.GetNumberOfScalarComponents()
    if components != 1:
        raise InputVolumeError(f"'{name}' has {components} values per voxel (a colour or vector image); "
                               "a CT scan has one.")
    dims = imageData.GetDimensions()
    if min(dims) < 2:
        raise InputVolumeError(f"'{name}' is a 2D image ({dims[0]} x {dims[1]} x {dims[2]} voxels); "
                               "SneakyNet needs a 3D CT volume with many slices.")
    low, high = imageData.GetScalarRange()
    if low == high:
        raise InputVolumeError(f"'{name}': every voxel has the value {low:g}; it holds no CT data.")


@contextmanager
def quietVtkLog() -> Iterator[None]:
    """Keep VTK's error log off stderr for a block (failures are reported as exceptions instead)."""
    cutoff = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield
    finally:
        vtk.vtkLogger.SetStderrVerbosity(cutoff)


def readerMessage(storageNode) -> str:
    """The first line of a storage node's first error message, shortened ('unknown reason' if none)."""
    messages = storageNode.GetUserMessages() if hasattr(storageNode, "GetUserMessages") else None
    if messages is None or messages.GetNumberOfMessages() == 0:
        return "unknown reason"
    text = messages.GetNthMessageText(0)
    text = text.split("ITK exception info:")[-1].replace("error in unknown:", "").strip()
    text = text.splitlines()[0].strip() if text else "unknown reason"
    return text if len(text) <= 160 else text[:157] + "..."


def loadVolumeFile(scene: slicer.vtkMRMLScene, path: str | os.PathLike, name: str | None = None
                   ) -> slicer.vtkMRMLScalarVolumeNode:
    """Read a CT file (NRRD, NIfTI, MHA, ...) or a DICOM series folder into a new scalar volume node.

    Files go through Slicer's own reader (``vtkMRMLVolumeArchetypeStorageNode``); folders through
    ``sneakynet.io.read_dicom_series``. Raises :class:`InputVolumeError` naming the file; on failure
    no node is left in the scene.
    """
    path = Path(path)
    if not path.exists():
        raise InputVolumeError(f"{path}: file or folder does not exist")
    name = name or caseName(path)
    if path.is_dir():
        from sneakynet.io import ImageReadError, read_dicom_series

        try:
            image = read_dicom_series(path)
        except ImageReadError as exc:
            raise InputVolumeError(str(exc)) from None
        node = slicer.vtkMRMLScalarVolumeNode()
        node.SetName(name)
        updateVolumeNodeFromImage(node, image)
        scene.AddNode(node)
        node.CreateDefaultDisplayNodes()
        return node
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    with quietVtkLog():  # the reader's errors go into the message below, not onto stderr
        ok = storage.ReadData(node) and node.GetImageData() is not None
    if not ok:
        reason = readerMessage(storage)
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputVolumeError(f"{path}: not a readable volume ({reason})")
    node.CreateDefaultDisplayNodes()
    return node
