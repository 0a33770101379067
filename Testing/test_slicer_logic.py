"""The SneakyNet module's logic under slicer-core: CT volume node in, bone segmentation node out.

One real prediction (the demo model, or a random-weights bundle until the demo is built) runs
through the GUI's path (a worker process polled until done); the other tests reuse it. Scene
publishing rules (failure, cancel, replaced output) are checked with a fixed-label predictor
so they do not pay for more network runs.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from sneakynet.labels import load_label_table
from SneakyNetLib import dependencies, segments, volumes
from SneakyNetLib.errors import (
    DependencyError,
    ExportError,
    InputVolumeError,
    ModelError,
    SegmentationCancelled,
    SneakyNetError,
)
from SneakyNetLib.logic import BoneSegmentationLogic, SegmentationOptions

TABLE = load_label_table()


def assert_same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=tol)


def ras_bounds_of_image(image: sitk.Image) -> np.ndarray:
    """(min xyz, max xyz) in RAS of the voxel centres of an LPS image."""
    size = image.GetSize()
    corners = [image.TransformContinuousIndexToPhysicalPoint((i, j, k))
               for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)]
    ras = np.array(corners) * np.array([-1.0, -1.0, 1.0])
    return np.stack([ras.min(axis=0), ras.max(axis=0)])


class FixedPredictor:
    """Predictor double that returns given labels (tests of scene rules without a network run)."""

    def __init__(self, labels: sitk.Image | None = None, error: Exception | None = None) -> None:
        self.labels, self.error, self.device, self.stats = labels, error, "cpu", None

    def predict_image(self, image, progress=None, cancel=None):
        if progress:
            progress(0.5, "fixed prediction")
        if self.error is not None:
            raise self.error
        return self.labels


@pytest.fixture(scope="module")
def run(tmp_path_factory, phantom_ct, model_bundle):
    """A scene with the phantom CT read by Slicer's reader, segmented once via the background job."""
    ct, _reference = phantom_ct
    folder = tmp_path_factory.mktemp("logic")
    ctPath = folder / "phantom_ct.nrrd"
    sitk.WriteImage(ct, str(ctPath))
    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    volume = logic.loadVolume(ctPath)
    options = SegmentationOptions(bundle=model_bundle, device="cpu", fast=True)
    nodesBefore = scene.GetNumberOfNodes()
    job = logic.startSegmentation(volume, options)
    fractions = []
    deadline = time.monotonic() + 300
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline, "segmentation did not finish in 5 minutes"
        fractions.append(status.fraction)
        time.sleep(0.05)
    nodesWhileRunning = scene.GetNumberOfNodes()
    result = logic.finishSegmentation(job)
    return SimpleNamespace(ct=ct, ctPath=ctPath, folder=folder, scene=scene, logic=logic, volume=volume,
                           options=options, result=result, fractions=fractions, finalStatus=status,
                           nodesBefore=nodesBefore, nodesWhileRunning=nodesWhileRunning)


# ---------------------------------------------------------------------------------- geometry


def test_volume_read_by_slicer_matches_the_file(run):
    image = volumes.imageFromVolumeNode(run.volume)
    assert_same_geometry(image, run.ct)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(run.ct))


def test_oblique_geometry_round_trips_through_a_volume_node():
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(7, 6, 5) - 1000
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 1.3, 2.5))
    image.SetOrigin((12.0, -40.0, 300.0))
    rotation = sitk.VersorTransform((0.3, -0.2, 1.0), 0.4).GetMatrix()
    image.SetDirection(rotation)
    node = slicer.vtkMRMLScalarVolumeNode()
    volumes.updateVolumeNodeFromImage(node, image)
    back = volumes.imageFromVolumeNode(node)
    assert_same_geometry(back, image, tol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), array)
    # voxel (i, j, k) lands at the same place: Slicer RAS = diag(-1, -1, 1) * ITK LPS
    ijkToRas = volumes.ijkToRasArray(node)
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        ras = ijkToRas @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data real CT samples are not next to the repository")
def test_real_ct_files_load_with_the_geometry_simpleitk_reads():
    """Real NIfTI and DICOM CTs: Slicer's reader (and our DICOM path) agree with SimpleITK voxel for voxel."""
    from sneakynet.io import read_dicom_series

    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    nifti = SHARED_DATA / "example_ct_sm.nii.gz"
    node = logic.loadVolume(nifti)
    assert node.GetName() == "example_ct_sm"
    expected = sitk.ReadImage(str(nifti))
    image = volumes.imageFromVolumeNode(node)
    assert_same_geometry(image, expected, tol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(expected))
    volumes.validateCtVolumeNode(node)
    assert BoneSegmentationLogic._hounsfieldWarnings(image, node.GetName(), force=False) == []
    dicom = logic.loadVolume(SHARED_DATA / "example_ct_dicom")
    expected = read_dicom_series(SHARED_DATA / "example_ct_dicom")
    assert_same_geometry(volumes.imageFromVolumeNode(dicom), expected, tol=1e-3)
    volumes.validateCtVolumeNode(dicom)
    assert BoneSegmentationLogic._hounsfieldWarnings(volumes.imageFromVolumeNode(dicom), 'dicom', False) == []
    labels = logic.loadVolume(SHARED_DATA / "example_seg.nii.gz")  # a label map loaded as a scalar volume
    volumes.validateCtVolumeNode(labels)  # a scalar volume: the values decide, as on the command line
    labelImage = volumes.imageFromVolumeNode(labels)
    with pytest.raises(InputVolumeError, match="does not look like CT.*mask.*Tick 'Segment even if it does not look like CT'"):
        BoneSegmentationLogic._hounsfieldWarnings(labelImage, labels.GetName(), force=False)
    forced = BoneSegmentationLogic._hounsfieldWarnings(labelImage, labels.GetName(), force=True)
    assert len(forced) == 1 and "mask" in forced[0] and "segmented anyway" in forced[0]


# ---------------------------------------------------------------------------------- the run


def test_background_job_reports_progress_and_leaves_scene_alone_while_running(run):
    assert run.finalStatus.state == "done" and run.finalStatus.fraction == 1.0
    assert all(b >= a for a, b in zip(run.fractions, run.fractions[1:])), "progress went backwards"
    assert run.nodesWhileRunning == run.nodesBefore, "the scene changed before the prediction finished"
    assert run.result.seconds > 0 and run.result.device == "cpu"
    assert run.result.modelDescription


def test_prediction_is_on_the_input_grid(run):
    labels = run.result.labels
    assert labels.GetPixelID() == sitk.sitkUInt8
    assert_same_geometry(labels, run.ct)


def test_one_segment_per_predicted_bone_with_table_names_colours_terminology(run):
    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(run.result.labels)) if v != 0)
    assert present, "the prediction holds no bone at all"
    assert run.result.labelIds == present
    node = run.result.segmentationNode
    assert node.GetScene() is run.scene
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(present)
    for index, labelId in enumerate(present):
        bone = TABLE.by_id(labelId)
        segmentId = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segmentId)
        assert segmentId == bone.name
        assert segment.GetName() == bone.display
        np.testing.assert_allclose(segment.GetColor(), bone.color_float, atol=1e-6)
        assert segments.segmentTerminology(segment) == bone.slicer_terminology()
        assert "SCT^" + bone.type.code in segments.segmentTerminology(segment)
        assert segments.segmentLabelId(segment) == labelId
        assert segment.GetLabelValue() == labelId


def test_segment_voxels_equal_the_prediction_on_the_volume_grid(run):
    merged = run.logic.labelImage(run.result.segmentationNode, run.volume)
    assert_same_geometry(merged, run.ct)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(merged), sitk.GetArrayViewFromImage(run.result.labels))
    # without a reference volume the segmentation's own reference geometry is the volume's
    alone = run.logic.labelImage(run.result.segmentationNode)
    assert_same_geometry(alone, run.ct)


def test_closed_surfaces_exist_inside_the_volume_and_are_shown_in_3d(run):
    node = run.result.segmentationNode
    segmentation = node.GetSegmentation()
    assert segmentation.ContainsRepresentation("Closed surface")
    display = node.GetDisplayNode()
    assert display is not None and display.GetVisibility3D()
    low, high = ras_bounds_of_image(run.ct)
    margin = 2 * max(run.ct.GetSpacing())
    for index in range(segmentation.GetNumberOfSegments()):
        polyData = node.GetClosedSurfaceInternalRepresentation(segmentation.GetNthSegmentID(index))
        assert polyData is not None and polyData.GetNumberOfPoints() > 0
        b = polyData.GetBounds()
        assert np.all(np.array(b[0::2]) >= low - margin) and np.all(np.array(b[1::2]) <= high + margin)


def enclosed_volume(polyData) -> float:
    mass = vtk.vtkMassProperties()
    mass.SetInputData(polyData)
    mass.Update()
    return mass.GetVolume()


def test_closed_surfaces_keep_the_volume_of_every_bone_thin_ones_too(run):
    # Slicer's default conversion (flying edges, smoothing 0.5) kept 11 of 99 bones of a 4 mm
    # phantom above half their volume: ribs and forearms vanished from the 3D view
    node = run.result.segmentationNode
    segmentation = node.GetSegmentation()
    labels = sitk.GetArrayViewFromImage(run.result.labels)
    voxel = float(np.prod(run.result.labels.GetSpacing()))
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        expected = np.count_nonzero(labels == segments.segmentLabelId(segment)) * voxel
        polyData = node.GetClosedSurfaceInternalRepresentation(segmentation.GetNthSegmentID(index))
        assert enclosed_volume(polyData) == pytest.approx(expected, rel=0.1), segment.GetName()


def test_segments_that_are_not_bones_get_slicers_own_surfaces(run):
    node = slicer.vtkMRMLSegmentationNode()
    segmentation = node.GetSegmentation()
    segmentation.DeepCopy(run.result.segmentationNode.GetSegmentation())
    segmentation.RemoveRepresentation("Closed surface")
    segmentation.AddEmptySegment("tumour", "My tumour")  # drawn by the user: no bone label id
    assert segments.segmentLabelId(segmentation.GetSegment("tumour")) is None
    assert segments.showIn3D(node)
    for index in range(segmentation.GetNumberOfSegments()):
        if segmentation.GetNthSegmentID(index) != "tumour":
            assert node.GetClosedSurfaceInternalRepresentation(segmentation.GetNthSegmentID(index)).GetNumberOfPoints()


def test_seg_nrrd_round_trip_keeps_names_colours_terminology_and_voxels(run):
    path = run.logic.saveSegmentation(run.result.segmentationNode, run.folder / "out" / "phantom.seg.nrrd")
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    other = BoneSegmentationLogic(slicer.vtkMRMLScene())
    loaded = other.loadSegmentation(path)
    original = run.result.segmentationNode.GetSegmentation()
    copy = loaded.GetSegmentation()
    assert copy.GetNumberOfSegments() == original.GetNumberOfSegments()
    for index in range(original.GetNumberOfSegments()):
        a = original.GetNthSegment(index)
        b = copy.GetSegment(original.GetNthSegmentID(index))
        assert b is not None and b.GetName() == a.GetName()
        np.testing.assert_allclose(b.GetColor(), a.GetColor(), atol=1e-5)
        assert segments.segmentTerminology(b) == segments.segmentTerminology(a)
        assert segments.segmentLabelId(b) == segments.segmentLabelId(a)
    reread = other.labelImage(loaded)
    assert_same_geometry(reread, run.ct)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(reread), sitk.GetArrayViewFromImage(run.result.labels))


def test_mesh_export_writes_one_stl_per_bone_in_slicer_ras(run, tmp_path):
    files = run.logic.exportMeshes(run.result.segmentationNode, tmp_path / "meshes", fmt="stl",
                                   referenceVolumeNode=run.volume)
    names = {TABLE.by_id(i).name for i in run.result.labelIds}
    assert len(files) == len(run.result.labelIds)
    assert {Path(f).stem for f in files} == names
    # the exported surface of each bone sits where Slicer's closed surface of that segment is
    node = run.result.segmentationNode
    tolerance = 2.5 * max(run.ct.GetSpacing())
    for f in files:
        reader = vtk.vtkSTLReader()
        reader.SetFileName(str(f))
        reader.Update()
        exported = np.array(reader.GetOutput().GetBounds())
        slicerSurface = np.array(node.GetClosedSurfaceInternalRepresentation(Path(f).stem).GetBounds())
        assert np.all(np.abs(exported - slicerSurface) <= tolerance), (f.name, exported, slicerSurface)


def test_glb_export_writes_the_viewer_page_the_view_button_opens(run, tmp_path):
    files = run.logic.exportMeshes(run.result.segmentationNode, tmp_path / "meshes", fmt="glb",
                                   referenceVolumeNode=run.volume)
    pages = [Path(f) for f in files if Path(f).suffix == ".html"]
    assert [p.name for p in pages] == ["bones.html"] and pages[0].parent == tmp_path / "meshes"
    page = pages[0].read_text()
    assert "<model-viewer" in page and len(page) > Path(files[0]).stat().st_size // 4, "the model is embedded"


def test_offscreen_3d_render_shows_the_segment_colours(run, tmp_path):
    png = run.logic.renderSegmentation3D(run.result.segmentationNode, tmp_path / "bones.png", size=(480, 280))
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(png))
    reader.Update()
    w, h, _ = reader.GetOutput().GetDimensions()
    rgb = vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()).reshape(h, w, -1)[:, :, :3].astype(float)
    background = np.array(rgb[h // 2, 2])  # left edge, mid height: background gradient
    foreground = np.abs(rgb - background).sum(axis=2) > 40
    assert 0.01 < foreground.mean() < 0.9, "the bones are missing from the picture (or fill it)"
    # hue of the brightest pixel of each bone colour should appear somewhere among the lit pixels
    lit = rgb[foreground]
    hues = lit / np.maximum(lit.sum(axis=1, keepdims=True), 1)
    seen = 0
    for labelId in run.result.labelIds:
        color = np.array(TABLE.by_id(labelId).color, dtype=float)
        target = color / max(color.sum(), 1)
        if np.min(np.abs(hues - target).sum(axis=1)) < 0.04:
            seen += 1
    assert seen >= max(1, len(run.result.labelIds) // 3), f"only {seen} bone colours visible"


# ---------------------------------------------------------------------------------- scene rules


def fixed_logic(scene, labels=None, error=None) -> BoneSegmentationLogic:
    logic = BoneSegmentationLogic(scene, useWorkerProcess=False)  # the stand-in predictor lives in this process
    logic._predictor = lambda info, device, options: FixedPredictor(labels, error)  # no network run
    return logic


def test_existing_output_segmentation_is_refilled_in_place(run):
    scene = run.scene
    logic = fixed_logic(scene, labels=run.result.labels)
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my bones")
    output.GetSegmentation().AddEmptySegment("stale", "stale segment")
    before = scene.GetNumberOfNodes()
    result = logic.segment(run.volume, run.options, outputSegmentationNode=output)
    assert result.segmentationNode is output
    assert scene.GetNumberOfNodes() == before + 1  # only the output's new display node
    ids = list(output.GetSegmentation().GetSegmentIDs())
    assert "stale" not in ids and len(ids) == len(run.result.labelIds)
    scene.RemoveNode(output)


def test_failed_prediction_leaves_the_scene_unchanged(run):
    logic = fixed_logic(run.scene, error=RuntimeError("simulated GPU driver crash"))
    before = run.scene.GetNumberOfNodes()
    with pytest.raises(SneakyNetError, match="simulated GPU driver crash"):
        logic.segment(run.volume, run.options)
    assert run.scene.GetNumberOfNodes() == before


def test_volume_removed_while_segmenting_gives_a_message_and_no_node(run, phantom_ct):
    ct, labels = phantom_ct
    scene = slicer.vtkMRMLScene()
    logic = fixed_logic(scene, labels=labels)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
    volumes.updateVolumeNodeFromImage(volume, ct)
    job = logic.startSegmentation(volume, run.options)
    job.wait(60)
    scene.RemoveNode(volume)
    before = scene.GetNumberOfNodes()
    with pytest.raises(InputVolumeError, match="removed"):
        logic.finishSegmentation(job)
    assert scene.GetNumberOfNodes() == before


def test_cancel_leaves_the_scene_unchanged(run):
    from sneakynet.infer import CancelToken

    before = run.scene.GetNumberOfNodes()
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.0:
            token.cancel()  # the user pressed Cancel as soon as tiles were running

    with pytest.raises(SegmentationCancelled):
        run.logic.segment(run.volume, run.options, progress=progress, cancel=token)
    assert run.scene.GetNumberOfNodes() == before
    # background path: cancel right after starting
    job = run.logic.startSegmentation(run.volume, run.options)
    job.cancel()
    assert job.wait(120).state == "cancelled"
    with pytest.raises(SegmentationCancelled):
        run.logic.finishSegmentation(job)
    assert run.scene.GetNumberOfNodes() == before


# ---------------------------------------------------------------------------------- bad input


def _add_volume(scene, array, cls="vtkMRMLScalarVolumeNode", name="input"):
    node = scene.AddNewNodeByClass(cls, name)
    slicer.util.updateVolumeFromArray(node, array)
    return node


CT_LIKE = (np.random.default_rng(0).normal(0, 300, (24, 24, 24)) - 200).astype(np.int16)


@pytest.mark.parametrize("case, error, message", [
    ("none", InputVolumeError, "No input volume"),
    ("labelmap node", InputVolumeError, "label map volume"),
    ("label values in a scalar volume", InputVolumeError, "label map or mask"),
    ("2D image", InputVolumeError, "2D image"),
    ("RGB image", InputVolumeError, "values per voxel"),
    ("constant image", InputVolumeError, "holds no CT data"),
    ("missing bundle", ModelError, "does not exist"),
    ("bundle is a file", ModelError, "is a file"),
    ("folder without a bundle", ModelError, "cannot be used"),
    ("unknown device", ModelError, "Unknown device"),
    ("no bundle chosen", ModelError, "No model bundle folder is chosen"),
    ("unknown clean-up preset", SneakyNetError, "unknown clean-up preset 'tidy'"),
])
def test_bad_input_gives_a_message_and_creates_no_node(case, error, message, tmp_path, model_bundle):
    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    options = SegmentationOptions(bundle=model_bundle, device="cpu")
    volume = _add_volume(scene, CT_LIKE)
    if case == "none":
        volume = None
    elif case == "labelmap node":
        volume = _add_volume(scene, (CT_LIKE > 0).astype(np.uint8), "vtkMRMLLabelMapVolumeNode")
    elif case == "label values in a scalar volume":
        volume = _add_volume(scene, (CT_LIKE > 0).astype(np.int16) * 7)  # label ids stored as 16-bit
    elif case == "2D image":
        volume = _add_volume(scene, CT_LIKE[0])
    elif case == "RGB image":
        volume = _add_volume(scene, np.zeros((4, 8, 8, 3), np.uint8) + np.arange(3, dtype=np.uint8),
                             "vtkMRMLVectorVolumeNode")
    elif case == "constant image":
        volume = _add_volume(scene, np.full((8, 8, 8), -1000, np.int16))
    elif case == "missing bundle":
        options = SegmentationOptions(bundle=str(tmp_path / "no_such_bundle"), device="cpu")
    elif case == "bundle is a file":
        (tmp_path / "model.safetensors").write_bytes(b"not a bundle")
        options = SegmentationOptions(bundle=str(tmp_path / "model.safetensors"), device="cpu")
    elif case == "folder without a bundle":
        options = SegmentationOptions(bundle=str(tmp_path), device="cpu")
    elif case == "unknown device":
        options = SegmentationOptions(bundle=model_bundle, device="tpu")
    elif case == "no bundle chosen":
        options = SegmentationOptions(bundle="", device="cpu")
    elif case == "unknown clean-up preset":
        options = SegmentationOptions(bundle=model_bundle, device="cpu", postprocess="tidy")
    before = scene.GetNumberOfNodes()
    with pytest.raises(error, match=message) as info:
        logic.segment(volume, options)
    assert isinstance(info.value, SneakyNetError)
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)
    assert scene.GetNumberOfNodes() == before
    with pytest.raises(error):  # the GUI path refuses the same inputs before starting a thread
        logic.startSegmentation(volume, options)
    assert logic.job is None and scene.GetNumberOfNodes() == before


def test_unreadable_files_give_a_message_and_no_node(tmp_path):
    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    (tmp_path / "ct.nrrd").write_text("not an image")
    (tmp_path / "bones.seg.nrrd").write_text("not a segmentation")
    with pytest.raises(InputVolumeError, match="ct.nrrd: not a readable volume"):
        logic.loadVolume(tmp_path / "ct.nrrd")
    with pytest.raises(InputVolumeError, match="does not exist"):
        logic.loadVolume(tmp_path / "missing.nii.gz")
    with pytest.raises(SneakyNetError, match="bones.seg.nrrd: not a readable Slicer segmentation"):
        logic.loadSegmentation(tmp_path / "bones.seg.nrrd")
    with pytest.raises(ExportError, match="must end in .seg.nrrd"):
        logic.saveSegmentation(scene.AddNewNodeByClass("vtkMRMLSegmentationNode"), tmp_path / "bones.nrrd")
    assert scene.GetNumberOfNodes() == 1  # only the segmentation node added for the last check
    assert volumes.caseName("a/ct_01.nii.gz") == "ct_01" and volumes.volumeSuffix("x.seg.nrrd") == ""


def test_gpu_choice_without_cuda_is_a_message():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        BoneSegmentationLogic.normalizeDevice("GPU")


def test_export_refuses_bad_requests(run, tmp_path):
    with pytest.raises(ExportError, match="No segmentation"):
        run.logic.exportMeshes(None, tmp_path)
    with pytest.raises(ExportError, match="Unknown mesh format"):
        run.logic.exportMeshes(run.result.segmentationNode, tmp_path, fmt="fbx")
    with pytest.raises(ExportError, match="Decimation"):
        run.logic.exportMeshes(run.result.segmentationNode, tmp_path, decimate=1.5)
    empty = run.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(ExportError, match="no SneakyNet bone segments"):
        run.logic.exportMeshes(empty, tmp_path / "m")
    run.scene.RemoveNode(empty)
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------- dependencies


def test_dependencies_are_complete_here_and_install_plan_asks_for_the_right_builds():
    assert BoneSegmentationLogic.missingDependencies() == []
    cpu = dependencies.installPlan(["torch", "sneakynet"], "cpu", pyTorchUtilsAvailable=False)
    core = [s for s in cpu if "SneakyNet core" in s.description][0]
    assert core.pipArguments[0] == "--no-deps" and core.pipArguments[1].endswith("SneakyNetCore")
    assert cpu[0].pipArguments[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    cuda = dependencies.installPlan(["torch"], "cuda", pyTorchUtilsAvailable=True)
    assert cuda[0].viaPyTorchUtils and cuda[0].approxDownloadMB >= 2000
    assert "GB" in dependencies.describeInstall(cuda) and "MB" in dependencies.describeInstall(cpu[1:])
    with pytest.raises(ValueError):
        dependencies.installPlan(["torch"], "rocm")


def test_missing_dependencies_stop_segmentation_with_a_message(monkeypatch):
    monkeypatch.setattr(dependencies, "isImportable", lambda name: name != "torch")
    scene = slicer.vtkMRMLScene()
    volume = _add_volume(scene, CT_LIKE)
    before = scene.GetNumberOfNodes()
    with pytest.raises(DependencyError, match="torch"):
        BoneSegmentationLogic(scene).segment(volume)
    assert scene.GetNumberOfNodes() == before


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data real CT samples are not next to the repository")
def test_dicom_seg_export_references_the_ct_series(tmp_path):
    import pydicom

    from sneakynet.dicomseg import dicom_series_files

    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    volume = logic.loadVolume(SHARED_DATA / "example_ct_dicom")
    ct = volumes.imageFromVolumeNode(volume)
    labels = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    vertebra, rib = TABLE.by_name("vertebra_T12").id, TABLE.by_name("rib_left_11").id
    labels[4:9, 200:260, 230:290] = vertebra
    labels[10:14, 100:120, 100:130] = rib
    labelImage = sitk.GetImageFromArray(labels)
    labelImage.CopyInformation(ct)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segments.fillSegmentationNode(node, labelImage)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    with pytest.raises(ExportError, match="not loaded from Slicer's DICOM database"):
        logic.exportDicomSeg(node, volume, tmp_path / "seg.dcm")  # no DICOM database under slicer-core
    files = dicom_series_files(SHARED_DATA / "example_ct_dicom")
    path = logic.exportDicomSeg(node, volume, tmp_path / "seg.dcm", dicomFiles=files)
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG"
    assert [x.SegmentLabel for x in seg.SegmentSequence] == [TABLE.by_id(vertebra).display, TABLE.by_id(rib).display]
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    # the slab's datasets have blank SOP Instance UIDs; the writer takes them from the file meta header
    assert referenced == {pydicom.dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID for f in files}
    frames = seg.pixel_array.reshape(-1, *labels.shape[1:])
    assert int(frames.sum()) == int((labels > 0).sum())


def test_the_clean_up_preset_reaches_the_predictor(model_bundle):
    """The module's clean-up choice (``SegmentationOptions.postprocess``) is what the predictor applies."""
    from sneakynet.postprocess import PRESETS, preset_options

    logic = BoneSegmentationLogic(slicer.vtkMRMLScene(), useWorkerProcess=False)
    info = logic.modelInfo(model_bundle)
    for name in PRESETS:
        predictor = logic._predictor(info, "cpu", SegmentationOptions(bundle=model_bundle, postprocess=name))
        assert predictor.postprocess == preset_options(name), name
