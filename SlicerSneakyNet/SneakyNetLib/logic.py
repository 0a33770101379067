"""The GUI-free logic of the SneakyNet module: CT volume node in, bone segmentation node out.

Works on any ``vtkMRMLScene`` passed in (the Slicer application's scene, or a scene made in a
plain-Python slicer-core session), so the module widget, the batch script and the tests share
it. No Qt here. Typical use::

    logic = BoneSegmentationLogic(scene)
    result = logic.segment(ctVolumeNode, SegmentationOptions(device="cpu"))   # blocking
    logic.exportMeshes(result.segmentationNode, "meshes/", fmt="stl")

The GUI uses :meth:`startSegmentation` (returns a running job: by default a
:class:`~SneakyNetLib.worker.WorkerProcessJob`, so a torch crash or an out-of-memory kill cannot
take Slicer down and Cancel is instant), polls it with a QTimer, and calls
:meth:`finishSegmentation` on the main thread when it is done. :meth:`segment` (scripts) runs in
the calling thread.

Scene changes happen only in :meth:`finishSegmentation`, after the prediction succeeded: bad
input, a missing model, a failure or a cancel leave the scene untouched.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import SimpleITK as sitk
import slicer

from . import segments, volumes
from .errors import ExportError, InputVolumeError, ModelError, SegmentationCancelled, SneakyNetError
from .job import CANCELLED, DONE, SegmentationJob
from .worker import WorkerProcessJob

MESH_FORMATS = ("glb", "gltf", "obj", "stl", "ply")
PAPER_CITATION = ("E. Schnider, J. Wolleb, A. Huck, M. Toranelli, G. Rauter, M. M\u00fcller-Gerbl, P. C. Cattin: "
                  "Improved distinct bone segmentation in upper-body CT through multi-resolution networks")
ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class SegmentationOptions:
    """How to segment. ``bundle``: a model bundle folder; None = the bundled demo model ('' = none chosen: an error).

    ``device``: ``auto`` (CUDA if PyTorch sees a GPU, else CPU), ``cuda``/``gpu`` or ``cpu``.
    ``fast``: no tile overlap (about 8x fewer tiles, slightly rougher borders).
    ``showIn3D``: build the closed-surface representation and show it in 3D views.
    ``forceNonCT``: segment a volume that does not look like CT in Hounsfield units (refused otherwise).
    ``postprocess``: clean-up preset of ``sneakynet.postprocess.PRESETS``: ``anatomy`` (default: sided
    bones onto their side of the body midline, vertebrae in order), ``full`` or ``none``.
    """

    bundle: str | None = None
    device: str = "auto"
    fast: bool = False
    overlap: float = 0.5
    showIn3D: bool = True
    forceNonCT: bool = False
    postprocess: str = "anatomy"


@dataclass
class SegmentationResult:
    """What :meth:`BoneSegmentationLogic.finishSegmentation` produced."""

    segmentationNode: slicer.vtkMRMLSegmentationNode
    labels: sitk.Image  # the predicted uint8 label map on the input volume's grid (LPS geometry)
    labelIds: list[int]  # bone ids present, one segment each
    seconds: float
    device: str
    modelDescription: str
    demoModel: bool
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _JobContext:
    volumeNodeId: str
    volumeName: str
    outputNodeId: str | None
    options: SegmentationOptions
    modelDescription: str
    demoModel: bool
    warnings: tuple[str, ...]


class BoneSegmentationLogic:
    """Segment the bones of CT volume nodes of one MRML scene with a SneakyNet model."""

    def __init__(self, scene: slicer.vtkMRMLScene, useWorkerProcess: bool = True) -> None:
        """``useWorkerProcess``: :meth:`startSegmentation` predicts in a worker process (True) or a thread."""
        if scene is None:
            raise ValueError("BoneSegmentationLogic needs an MRML scene")
        self.scene = scene
        self.useWorkerProcess = useWorkerProcess
        self._predictors: dict[tuple, object] = {}
        self._predictorLock = threading.Lock()
        self.job: SegmentationJob | WorkerProcessJob | None = None
        segments.registerClosedSurfaceConverters()

    # ------------------------------------------------------------------ environment
    @staticmethod
    def missingDependencies() -> list[str]:
        """Python packages that must be installed before segmenting (empty: ready)."""
        from .dependencies import missingDependencies

        return missingDependencies()

    @staticmethod
    def normalizeDevice(device: str) -> str:
        """``auto``/``GPU``/``cuda``/``CPU`` -> ``auto``/``cuda``/``cpu``; ModelError if unknown or no GPU."""
        from sneakynet.devices import normalize_device, resolve_device

        try:
            resolved = normalize_device(device)
        except ValueError:
            raise ModelError(f"Unknown device '{device}'; choose auto, GPU or CPU.") from None
        if resolved.startswith("cuda"):
            try:
                resolve_device(resolved)
            except ValueError:
                raise ModelError("GPU was chosen, but PyTorch sees no CUDA GPU on this computer "
                                 "(or a CPU-only PyTorch is installed). Choose 'auto' or 'CPU'.") from None
        return resolved

    def modelInfo(self, bundle: str | os.PathLike | None = None):
        """Read (and check) a bundle's ``config.json``: the ``sneakynet.bundle.BundleInfo``; ModelError if unusable.

        ``bundle``: None = the bundled demo model; '' = nothing chosen (an error); else a folder.
        """
        from sneakynet.bundle import BundleError, demo_bundle_path, read_bundle_info

        if bundle is not None and not str(bundle).strip():
            raise ModelError("No model bundle folder is chosen. Choose one, or use the bundled demo model.")
        if bundle is None:
            try:
                path = demo_bundle_path()
            except FileNotFoundError as exc:
                raise ModelError(f"The bundled demo model is not installed: {exc}") from None
        else:
            path = Path(bundle).expanduser()
            if not path.exists():
                raise ModelError(f"{path}: the model bundle folder does not exist.")
            if not path.is_dir():
                raise ModelError(f"{path}: is a file; choose the model bundle folder "
                                 "(the one holding config.json and model.safetensors).")
        try:
            return read_bundle_info(path)
        except BundleError as exc:
            raise ModelError(f"The model bundle cannot be used: {exc}") from None
        except OSError as exc:
            raise ModelError(f"{path}: the model bundle cannot be read ({exc})") from None

    @staticmethod
    def describeModel(info) -> str:
        """One paragraph for the GUI: what the model is, and the demo disclaimer when it is the demo."""
        config = info.config
        text = (f"{'Demo model' if info.demo else 'Model bundle'} '{info.path.name}': network {config.describe()} "
                f"(variant {config.variant}, K={config.num_context}), spacing "
                f"{' x '.join(f'{s:g}' for s in info.spacing)} mm. {info.description}")
        if info.demo:
            text += f" Phantom-trained, not for clinical use. {info.disclaimer}"
        return text.strip()

    def clearModelCache(self) -> None:
        """Forget loaded models (frees their memory; the next run loads again)."""
        with self._predictorLock:
            self._predictors.clear()

    # ------------------------------------------------------------------ segmentation
    def startSegmentation(self, volumeNode, options: SegmentationOptions = SegmentationOptions(),
                          outputSegmentationNode=None, onProgress: ProgressCallback | None = None):
        """Check inputs and model, then predict in a worker process (or thread); returns the running job.

        Raises :class:`SneakyNetError` subclasses for bad input (nothing started, scene unchanged).
        Poll ``job.poll()``; when it is finished call :meth:`finishSegmentation` (main thread).
        ``onProgress`` is called from the job's reader/worker thread, not the GUI thread.
        """
        if not self.useWorkerProcess:
            job = self._prepareJob(volumeNode, options, outputSegmentationNode, onProgress, None)
        else:
            image, context, info, device = self._prepareInputs(volumeNode, options, outputSegmentationNode)
            job = WorkerProcessJob(image, self.workerArguments(info, device, options), context, onProgress=onProgress)
        self.job = job.start()  # only a started job blocks the next one
        return self.job

    @staticmethod
    def workerArguments(info, device: str, options: SegmentationOptions) -> list[str]:
        """The worker script's options for one job (a new SegmentationOptions field that changes the
        prediction needs its flag here and in ``Scripts/segment_worker.py``'s parser)."""
        arguments = ["--model", str(info.path), "--device", device, "--overlap", str(options.overlap),
                     "--postprocess", options.postprocess]
        return arguments + (["--fast"] if options.fast else [])

    def finishSegmentation(self, job) -> SegmentationResult:
        """Put a finished job's labels into the scene (main thread only).

        Raises :class:`SegmentationCancelled` or the job's error without touching the scene.
        """
        status = job.poll()
        if not status.finished:
            raise SneakyNetError("The segmentation is still running.")
        if self.job is job:
            self.job = None
        if status.state == CANCELLED:
            raise job.error or SegmentationCancelled("Segmentation cancelled.")
        if status.state != DONE:
            raise job.error or SneakyNetError("Segmentation failed.")
        context: _JobContext = job.context
        volumeNode = self.scene.GetNodeByID(context.volumeNodeId)
        if volumeNode is None:
            raise InputVolumeError(f"The input volume '{context.volumeName}' was removed from the scene "
                                   "while it was being segmented; nothing was added.")
        outputNode = self.scene.GetNodeByID(context.outputNodeId) if context.outputNodeId else None
        segmentationNode, labelIds = self._putLabelsInScene(job.result, volumeNode, outputNode, context.options)
        return SegmentationResult(
            segmentationNode=segmentationNode, labels=job.result, labelIds=labelIds, seconds=status.elapsed,
            device=job.device, modelDescription=context.modelDescription, demoModel=context.demoModel,
            warnings=list(context.warnings))

    def segment(self, volumeNode, options: SegmentationOptions = SegmentationOptions(),
                outputSegmentationNode=None, progress: ProgressCallback | None = None,
                cancel=None) -> SegmentationResult:
        """Blocking segmentation for scripts and tests (same checks and scene rules as the GUI path).

        ``progress(fraction, message)`` is called as tiles finish; ``cancel`` is an optional
        ``sneakynet.infer.CancelToken`` another thread may trigger.
        """
        job = self._prepareJob(volumeNode, options, outputSegmentationNode, progress, cancel)
        job.run()
        return self.finishSegmentation(job)

    def cancel(self) -> None:
        """Cancel the running background job, if any (a worker process is killed at once)."""
        if self.job is not None:
            self.job.cancel()

    def _prepareJob(self, volumeNode, options, outputSegmentationNode, progress, cancel) -> SegmentationJob:
        """An in-process job (not started) after the checks of :meth:`_prepareInputs`."""
        image, context, info, device = self._prepareInputs(volumeNode, options, outputSegmentationNode)

        def predictorFactory():
            return self._predictor(info, device, options)

        return SegmentationJob(image, predictorFactory, context, cancelToken=cancel, onProgress=progress)

    def _prepareInputs(self, volumeNode, options, outputSegmentationNode):
        """Check everything before a job starts; (CT image, job context, bundle info, device)."""
        if self.job is not None and not self.job.poll().finished:
            raise SneakyNetError("A segmentation is already running; wait for it or cancel it.")
        missing = self.missingDependencies()
        if missing:
            from .errors import DependencyError

            raise DependencyError("These Python packages are missing: " + ", ".join(missing)
                                  + ". Install them from the SneakyNet module (Install dependencies).")
        volumes.validateCtVolumeNode(volumeNode)
        if volumeNode.GetScene() is not self.scene:
            raise InputVolumeError(f"'{volumeNode.GetName()}' is not in this logic's scene.")
        if outputSegmentationNode is not None and not outputSegmentationNode.IsA("vtkMRMLSegmentationNode"):
            raise SneakyNetError(f"'{outputSegmentationNode.GetName()}' is not a segmentation node.")
        device = self.normalizeDevice(options.device)
        info = self.modelInfo(options.bundle)
        if not 0.0 <= options.overlap < 1.0:
            raise SneakyNetError(f"tile overlap must be in [0, 1), got {options.overlap}")
        from sneakynet.postprocess import PRESETS

        if options.postprocess not in PRESETS:
            raise SneakyNetError(f"unknown clean-up preset {options.postprocess!r}; choose one of {', '.join(PRESETS)}")
        image = volumes.imageFromVolumeNode(volumeNode)
        warnings = self._hounsfieldWarnings(image, volumeNode.GetName(), options.forceNonCT)
        context = _JobContext(volumeNode.GetID(), volumeNode.GetName(),
                              outputSegmentationNode.GetID() if outputSegmentationNode is not None else None,
                              options, self.describeModel(info), bool(info.demo), tuple(warnings))
        for warning in warnings:
            logging.warning(warning)
        return image, context, info, device

    @staticmethod
    def _hounsfieldWarnings(image: sitk.Image, name: str, force: bool) -> list[str]:
        """Refuse a volume that does not look like CT in Hounsfield units (the core's check, as the CLI
        does), unless ``force``; then the problem becomes a warning."""
        from sneakynet.intensity import NotCTError, check_hounsfield

        try:
            problem = check_hounsfield(sitk.GetArrayViewFromImage(image), f"'{name}'", force=force)
        except NotCTError as exc:
            raise InputVolumeError(f"{exc}. Tick 'Segment even if it does not look like CT' to run anyway; "
                                   "the bones found would mean nothing.") from None
        return [f"'{name}' {problem}; segmented anyway"] if problem else []

    def _predictor(self, info, device: str, options: SegmentationOptions):
        """A cached ``sneakynet.infer.Predictor`` (loading a model takes a while; runs in the worker)."""
        from sneakynet.infer import Predictor
        from sneakynet.postprocess import preset_options

        key = (str(info.path), info.sha256, device, bool(options.fast), float(options.overlap), options.postprocess)
        with self._predictorLock:
            predictor = self._predictors.get(key)
            if predictor is None:
                predictor = Predictor(info.path, device=device, overlap=options.overlap, fast=options.fast,
                                      log=logging.info, postprocess=preset_options(options.postprocess))
                self._predictors = {key: predictor}  # keep one model in memory at a time
            return predictor

    def _putLabelsInScene(self, labels: sitk.Image, volumeNode, outputNode, options: SegmentationOptions):
        """Fill a segmentation outside the scene, then publish it (new node, or copied into ``outputNode``)."""
        staging = slicer.vtkMRMLSegmentationNode()
        labelIds = segments.fillSegmentationNode(staging, labels)
        if outputNode is not None and outputNode.GetScene() is self.scene:
            target = outputNode
            wasModifying = target.StartModify()
            try:
                target.GetSegmentation().DeepCopy(staging.GetSegmentation())
            finally:
                target.EndModify(wasModifying)
        else:
            target = staging
            target.SetName(self.scene.GenerateUniqueName(f"{volumeNode.GetName()} bones"))
            self.scene.AddNode(target)
        try:
            target.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
            target.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            if target.GetDisplayNode() is None:
                target.CreateDefaultDisplayNodes()
            if options.showIn3D:
                segments.showIn3D(target, labels)
        except Exception:
            if target is staging:
                self.scene.RemoveNode(target)
            raise
        return target, labelIds

    # ------------------------------------------------------------------ files and meshes
    def loadVolume(self, path: str | os.PathLike, name: str | None = None) -> slicer.vtkMRMLScalarVolumeNode:
        """Read a CT file or DICOM folder into a new scalar volume node of this scene."""
        return volumes.loadVolumeFile(self.scene, path, name)

    def saveSegmentation(self, segmentationNode, path: str | os.PathLike) -> Path:
        """Write the node as ``.seg.nrrd`` (names, colours, terminology kept), atomically."""
        if segmentationNode is None:
            raise ExportError("No segmentation is selected.")
        return segments.saveSegmentation(segmentationNode, path)

    def loadSegmentation(self, path: str | os.PathLike) -> slicer.vtkMRMLSegmentationNode:
        """Read a ``.seg.nrrd`` into a new segmentation node of this scene."""
        return segments.loadSegmentation(self.scene, path)

    def labelImage(self, segmentationNode, referenceVolumeNode=None) -> sitk.Image:
        """The bone segments merged back into a uint8 label map (label table ids, LPS geometry)."""
        if segmentationNode is None:
            raise ExportError("No segmentation is selected.")
        image, skipped = segments.labelImageFromSegmentation(segmentationNode, referenceVolumeNode)
        if skipped:
            logging.warning("SneakyNet: segments that are not bones of the label table were left out: %s",
                            ", ".join(skipped))
        return image

    def exportMeshes(self, segmentationNode, outDir: str | os.PathLike, fmt: str = "glb", smooth: bool = True,
                     decimate: float = 0.0, referenceVolumeNode=None,
                     progress: ProgressCallback | None = None) -> list[Path]:
        """Write one mesh per bone segment with the core exporter (``sneakynet.export.export_meshes``).

        ``fmt``: glb/gltf (one file, a node per bone), obj (one file + mtl), stl/ply (a file per bone).
        OBJ/STL/PLY are in RAS millimetres, glTF in metres. Returns the written paths.
        """
        fmt = str(fmt).lower().lstrip(".")
        if fmt not in MESH_FORMATS:
            raise ExportError(f"Unknown mesh format '{fmt}'; choose one of {', '.join(MESH_FORMATS).upper()}.")
        if not outDir or not str(outDir).strip():
            raise ExportError("Choose an output folder for the meshes.")
        if not 0.0 <= float(decimate) < 1.0:
            raise ExportError(f"Decimation must be between 0 and 0.99, got {decimate}.")
        labels = self.labelImage(segmentationNode, referenceVolumeNode)
        from sneakynet.export import export_meshes

        try:
            return export_meshes(labels, outDir, fmt=fmt, smooth=smooth, decimate=float(decimate), progress=progress)
        except (ValueError, OSError) as exc:
            raise ExportError(f"Mesh export failed: {exc}") from None

    def exportDicomSeg(self, segmentationNode, referenceVolumeNode, outPath: str | os.PathLike,
                       dicomFiles: list[str] | None = None) -> Path:
        """Write the bone segments as a DICOM Segmentation object that references the CT's series.

        ``dicomFiles``: the CT's DICOM files; by default the instances the volume was loaded from
        (Slicer's DICOM database). A CT that did not come from DICOM cannot be referenced.
        """
        if referenceVolumeNode is None:
            raise ExportError("Choose the CT the segmentation was made from.")
        files = list(dicomFiles) if dicomFiles is not None else self._dicomFilesOf(referenceVolumeNode)
        labels = self.labelImage(segmentationNode, referenceVolumeNode)
        from sneakynet.dicomseg import DicomSegError, write_dicom_seg

        try:
            result = write_dicom_seg(labels, files, outPath, model_name="SneakyNet", warn=logging.warning)
        except (DicomSegError, ValueError, OSError) as exc:
            raise ExportError(f"DICOM SEG export failed: {exc}") from None
        return result.path

    @staticmethod
    def _dicomFilesOf(volumeNode) -> list[str]:
        """The DICOM files a volume was loaded from, through Slicer's DICOM database."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        files = [database.fileForInstance(uid) for uid in uids] if database is not None else []
        if not uids or not all(files):
            raise ExportError(f"'{volumeNode.GetName()}' was not loaded from Slicer's DICOM database, so a DICOM "
                              "Segmentation cannot reference its images. Load the CT with the DICOM module.")
        return files

    def renderSegmentation3D(self, segmentationNode, pngPath: str | os.PathLike, caption: str | None = None,
                             size: tuple[int, int] = (1400, 800)) -> Path:
        """Offscreen class-coloured 3D picture of the node's closed surfaces (see ``render.py``)."""
        from .render import renderSegmentation3D

        return renderSegmentation3D(segmentationNode, pngPath, size=size, caption=caption)
