"""SneakyNet: distinct-bone segmentation (125 bones) of upper-body CT in 3D Slicer.

Module, Widget, Logic and Test in one file, as Slicer's scripted-module template has them.
The Widget only forwards to the Logic; the Logic's work lives in ``SneakyNetLib.logic``
(GUI-free, also used by ``Scripts/batch_segment.py`` and by the slicer-core tests in ``Testing/``).
Predictions run in a worker process (``Scripts/segment_worker.py``), so a crash there cannot
take Slicer down. Needs Slicer 5.10 or later (Python >= 3.10; see ``SneakyNetLib/compat.py``).
"""
from __future__ import annotations

import logging
import pathlib
import time
from typing import Annotated, Optional

import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from SneakyNetLib import compat, sampledata
from SneakyNetLib.errors import SegmentationCancelled, SneakyNetError
from SneakyNetLib.logic import PAPER_CITATION, BoneSegmentationLogic, SegmentationOptions

POLL_INTERVAL_MS = 250
CONTRIBUTORS = ["SneakyNet maintainers (SneakyNet project)",
                "method: E. Schnider, J. Wolleb, A. Huck, M. Toranelli, G. Rauter, M. M\u00fcller-Gerbl, "
                "P. C. Cattin (University of Basel)"]
SELF_TEST_TIMEOUT_S = 600


#
# SneakyNet
#


class SneakyNet(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SneakyNet"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        self.parent.helpText = f"""
Segments up to 125 distinct bones (skull, spine, ribs, sternum, shoulder girdle, arms and hands,
pelvis, femurs) in an upper-body CT with a multi-resolution 3D U-Net: a high-resolution target
network guided by low-resolution context networks through crop-skip connections.
<br><br>
<b>Model.</b> The extension ships a <b>demo model trained on synthetic phantom CT only</b>:
phantom-trained, not for clinical use, and not expected to work on real patient scans. It shows
the workflow end to end. For real CT choose a model bundle folder trained on real data
(<code>sneakynet train</code> writes one: <code>config.json</code> + <code>model.safetensors</code>).
<br><br>
Click <b>Segment bones</b>: the prediction runs in the background (Cancel stops it and leaves the
scene unchanged); the result is a segmentation with one named, coloured segment per bone found,
with SNOMED CT terminology, shown in 3D. <b>Mesh export</b> writes GLB/OBJ/STL/PLY meshes per bone.
<b>Try it:</b> load <i>SneakyNetPhantomCT</i> from the Sample Data module (a synthetic phantom CT).
The prediction runs in its own process: if it crashes or runs out of memory, Slicer keeps running.
Headless use: <code>Slicer --no-main-window --python-script Scripts/batch_segment.py --input DIR --output DIR</code>.
<br><br>
Method: {PAPER_CITATION}.
"""
        self.parent.acknowledgementText = f"""
The network architecture follows {PAPER_CITATION}. The module layout follows the 3D Slicer
scripted-module template; background processing and cancel follow SlicerMONAIAuto3DSeg.
"""
        # the Sample Data module is ready only once the application has started
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Add the phantom CT to the Sample Data module (category SneakyNet)."""
    sampledata.registerSampleData()


#
# SneakyNetParameterNode
#


@parameterNodeWrapper
class SneakyNetParameterNode:
    """GUI state saved with the scene.

    inputVolume - the CT to segment.
    useDemoModel - True: the bundled phantom-trained demo model; False: modelBundlePath.
    modelBundlePath - a model bundle folder (config.json + model.safetensors).
    device - auto (CUDA if present), GPU or CPU.
    quality - full (overlapping tiles) or fast (no overlap).
    forceNonCT - segment a volume that does not look like CT in Hounsfield units (otherwise refused).
    cleanUpAnatomy - clean the labels with anatomy (sided bones onto their side, vertebrae in order).
    outputSegmentation - receives the bone segments (None: a new node is created).
    exportFolder, meshFormat, smoothMeshes, decimation - mesh export settings.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    useDemoModel: bool = True
    modelBundlePath: pathlib.Path
    device: Annotated[str, Choice(["auto", "GPU", "CPU"])] = "auto"
    quality: Annotated[str, Choice(["full", "fast"])] = "full"
    forceNonCT: bool = False
    cleanUpAnatomy: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    exportFolder: pathlib.Path
    meshFormat: Annotated[str, Choice(["GLB", "OBJ", "STL", "PLY"])] = "GLB"
    smoothMeshes: bool = True
    decimation: Annotated[float, WithinRange(0.0, 0.95)] = 0.0


#
# SneakyNetWidget
#


class SneakyNetWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI: reads the parameter node, forwards to the logic, polls the background job."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._pollTimer = None
        self._shownModel = None  # (useDemoModel, bundle path) whose description the GUI shows
        self._viewerPage = None  # bones.html of the last GLB export

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        unsupported = compat.unsupportedReason(slicerVersion=slicer.app.applicationVersion)
        if unsupported:  # Slicer < 5.10: say so instead of failing on the first core import
            label = qt.QLabel(unsupported)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SneakyNet.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SneakyNetLogic()
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.viewInBrowserButton.connect("clicked(bool)", self.onViewInBrowserButton)
        self.ui.exportDicomSegButton.connect("clicked(bool)", self.onExportDicomSegButton)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependenciesButton)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                  self.ui.segmentationShow3DButton.setSegmentationNode)

        self.initializeParameterNode()
        self.updateDependencyInfo()
        self.updateModelInfo()

    def cleanup(self) -> None:
        """Called when the application closes: stop a running job and the timer."""
        if self._job is not None:
            self._job.cancel()
        if self._pollTimer is not None:
            self._pollTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        if self.logic is not None:  # None: this Slicer is too old, setup() only showed why
            self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        if self._job is not None:  # the volume is about to disappear: drop the result
            self._job.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not node.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.inputVolume = node
                    break

    def setParameterNode(self, inputParameterNode: Optional[SneakyNetParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # widgets with the SlicerParameterName property in the .ui file follow the node
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Parameter node changed: enable the buttons that can work now, re-describe a changed model."""
        busy = self._job is not None
        node = self._parameterNode
        if node and (node.useDemoModel, str(node.modelBundlePath)) != self._shownModel:
            self.updateModelInfo()
        self.ui.segmentButton.enabled = bool(node and node.inputVolume) and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.exportButton.enabled = bool(node and node.outputSegmentation) and not busy
        self.ui.exportDicomSegButton.enabled = bool(node and node.outputSegmentation and node.inputVolume) and not busy
        self.ui.modelBundlePathLineEdit.enabled = bool(node) and not node.useDemoModel

    # ------------------------------------------------------------------ model and dependencies
    def currentOptions(self) -> SegmentationOptions:
        """Options from the parameter node; an unset bundle path becomes '' (the logic asks for one)."""
        node = self._parameterNode
        path = str(node.modelBundlePath or "").strip()
        bundle = None if node.useDemoModel else ("" if path in ("", ".") else path)
        return SegmentationOptions(bundle=bundle, device=node.device, fast=(node.quality == "fast"),
                                   forceNonCT=node.forceNonCT, postprocess="anatomy" if node.cleanUpAnatomy else "none")

    def updateModelInfo(self) -> None:
        """Show what the chosen model is (demo disclaimer included) or why it cannot be used."""
        if self._parameterNode is None:
            return
        self._shownModel = (self._parameterNode.useDemoModel, str(self._parameterNode.modelBundlePath))
        if self.logic.missingDependencies():
            self.ui.modelInfoLabel.text = "Model: install the Python packages first (see 'Python packages')."
            return
        try:
            info = self.logic.modelInfo(self.currentOptions().bundle)
            self.ui.modelInfoLabel.text = self.logic.describeModel(info)
        except SneakyNetError as exc:
            self.ui.modelInfoLabel.text = f"Model problem: {exc}"

    def updateDependencyInfo(self) -> None:
        missing = self.logic.missingDependencies()
        self.ui.dependenciesLabel.text = ("All required Python packages are installed." if not missing else
                                          "Missing Python packages: " + ", ".join(missing))
        self.ui.installDependenciesButton.enabled = bool(missing)

    def offerDependencyInstall(self) -> bool:
        """Ask before installing anything (PyTorch is large); True when everything is installed."""
        from SneakyNetLib import dependencies

        missing = dependencies.missingDependencies()
        if not missing:
            return True
        backend = "cpu"
        if "torch" in missing:
            box = qt.QMessageBox(slicer.util.mainWindow())
            box.setWindowTitle("SneakyNet: install PyTorch")
            box.setText("SneakyNet needs PyTorch, which is not installed in Slicer yet. Which build?")
            box.setInformativeText("CPU build: about 200 MB, works everywhere.\n"
                                   "CUDA build: about 2.5 GB, needs an NVIDIA GPU; much faster.")
            cpuButton = box.addButton("CPU build", qt.QMessageBox.AcceptRole)
            cudaButton = box.addButton("CUDA (GPU) build", qt.QMessageBox.AcceptRole)
            box.addButton(qt.QMessageBox.Cancel)
            box.exec_()
            if box.clickedButton() == cpuButton:
                backend = "cpu"
            elif box.clickedButton() == cudaButton:
                backend = "cuda"
            else:
                return False
        steps = dependencies.installPlan(missing, backend, dependencies.pyTorchUtilsLogic() is not None)
        if not slicer.util.confirmOkCancelDisplay(dependencies.describeInstall(steps), "SneakyNet: install packages"):
            return False
        try:
            with slicer.util.WaitCursor():
                stillMissing = dependencies.installDependencies(backend, log=self._status)
        except SneakyNetError as exc:
            slicer.util.errorDisplay(str(exc))
            return False
        finally:
            self.updateDependencyInfo()
        if stillMissing:
            slicer.util.errorDisplay("Still missing after installing: " + ", ".join(stillMissing)
                                     + ". Restart Slicer and try again.")
            return False
        self.updateModelInfo()
        return True

    def onInstallDependenciesButton(self) -> None:
        self.offerDependencyInstall()

    # ------------------------------------------------------------------ segmentation
    def onSegmentButton(self) -> None:
        if not self.offerDependencyInstall():
            return
        self._loadTerminology()
        node = self._parameterNode
        try:
            self._job = self.logic.startSegmentation(node.inputVolume, self.currentOptions(), node.outputSegmentation)
        except SneakyNetError as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self.ui.progressBar.value = 0
        self._status("Starting...")
        self._checkCanApply()
        self._pollTimer.start()

    def _loadTerminology(self) -> None:
        """Make the Segment Editor's terminology selector list the 125 bones (loaded once per Slicer run)."""
        from SneakyNetLib.terminology import loadSneakyNetTerminology

        try:
            loadSneakyNetTerminology()
        except SneakyNetError as exc:  # names still show; only the selector lacks the bones
            logging.warning(str(exc))

    def onCancelButton(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._status("Cancelling...")

    def onPollJob(self) -> None:
        """Timer slot: mirror the job's progress; finish it on the main thread when it ends."""
        job = self._job
        if job is None:
            self._pollTimer.stop()
            return
        status = job.poll()
        self.ui.progressBar.value = int(round(100 * status.fraction))
        if not status.finished:
            self._status(f"{status.message} ({status.elapsed:.0f} s)")
            return
        self._pollTimer.stop()
        self._job = None
        try:
            with slicer.util.WaitCursor():
                result = self.logic.finishSegmentation(job)
        except SegmentationCancelled:
            self.ui.progressBar.value = 0
            self._status("Cancelled; the scene was not changed.")
        except SneakyNetError as exc:
            self.ui.progressBar.value = 0
            self._status("Failed; the scene was not changed.")
            slicer.util.errorDisplay(str(exc))
        else:
            if self._parameterNode:
                self._parameterNode.outputSegmentation = result.segmentationNode
            note = " Demo model: phantom-trained, not for clinical use." if result.demoModel else ""
            self._status(f"Done: {len(result.labelIds)} bones in {result.seconds:.1f} s on {result.device}.{note}"
                         + ("".join(f"\nWarning: {w}" for w in result.warnings)))
        finally:
            self._checkCanApply()

    # ------------------------------------------------------------------ export
    def _exportFolder(self, what: str) -> str | None:
        """The chosen export folder, or None after telling the user to choose one for ``what``."""
        folder = str(self._parameterNode.exportFolder or "").strip()
        if folder in ("", "."):
            slicer.util.errorDisplay(f"Choose an output folder for {what}.")
            return None
        return folder

    def onExportButton(self) -> None:
        node = self._parameterNode
        folder = self._exportFolder("the meshes")
        if folder is None:
            return

        def progress(fraction: float, message: str) -> None:
            self.ui.progressBar.value = int(round(100 * fraction))
            self._status(message)
            slicer.app.processEvents()

        try:
            with slicer.util.WaitCursor():
                # the segmentation's own reference geometry (its source CT), not whatever CT is selected now
                files = self.logic.exportMeshes(node.outputSegmentation, folder, fmt=node.meshFormat,
                                                smooth=node.smoothMeshes, decimate=node.decimation,
                                                progress=progress)
        except SneakyNetError as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._status(f"Wrote {len(files)} {node.meshFormat} file(s) to {folder}.")
        self._viewerPage = next((f for f in files if f.suffix == ".html"), None)
        self.ui.viewInBrowserButton.enabled = self._viewerPage is not None

    def onExportDicomSegButton(self) -> None:
        """Write ``bones_seg.dcm`` (DICOM SEG referencing the input CT's series) into the export folder."""
        node = self._parameterNode
        folder = self._exportFolder("the DICOM Segmentation")
        if folder is None:
            return
        try:
            with slicer.util.WaitCursor():
                path = self.logic.exportDicomSeg(node.outputSegmentation, node.inputVolume,
                                                 pathlib.Path(folder) / "bones_seg.dcm")
        except SneakyNetError as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._status(f"Wrote the DICOM Segmentation {path}.")

    def onViewInBrowserButton(self) -> None:
        """Open the page the GLB export wrote beside the meshes in the system's browser."""
        if self._viewerPage is None or not self._viewerPage.is_file():
            slicer.util.errorDisplay("Export the meshes as GLB first; the viewer page is written beside them.")
            return
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self._viewerPage)))

    def _status(self, text: str) -> None:
        self.ui.statusLabel.text = text
        logging.info("SneakyNet: %s", text)


#
# SneakyNetLogic
#


class SneakyNetLogic(BoneSegmentationLogic, ScriptedLoadableModuleLogic):
    """The module's logic: :class:`SneakyNetLib.logic.BoneSegmentationLogic` on Slicer's scene.

    Scripts can use it without the GUI::

        logic = slicer.util.getModuleLogic("SneakyNet")
        result = logic.segment(volumeNode, SegmentationOptions(device="cpu"))

    BoneSegmentationLogic comes first in the bases: ScriptedLoadableModuleLogic.__init__ calls
    ``super().__init__()``, which must reach ``object`` and not the scene-taking constructor.
    """

    def __init__(self, scene=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        BoneSegmentationLogic.__init__(self, scene if scene is not None else slicer.mrmlScene)

    def getParameterNode(self):
        return SneakyNetParameterNode(super().getParameterNode())


#
# SneakyNetTest
#


class SneakyNetTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (ctest, or Reload and Test); the slicer-core tests in Testing/ go deeper.

    It segments a small phantom for real, through the GUI's worker process; it reports a *skip*
    (not a pass) when PyTorch or the core is not installed, and fails when no bone is found.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_BadInputLeavesSceneUnchanged()
        self.setUp()
        self.test_SegmentPhantom()

    def _phantomVolume(self):
        """A small synthetic upper-body CT (4 mm, field of view cut to 40 %: about 45 bones)."""
        from sneakynet.phantom import PhantomOptions, generate_case

        from SneakyNetLib.volumes import updateVolumeNodeFromImage

        ct, labels = generate_case(3, PhantomOptions(spacing=(4.0, 4.0, 4.0), fov_scale=0.4))
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom CT")
        updateVolumeNodeFromImage(volume, ct)
        return volume

    def test_BadInputLeavesSceneUnchanged(self):
        self.delayDisplay("Bad inputs give messages, not new nodes")
        logic = SneakyNetLogic()
        before = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(SneakyNetError):
            logic.segment(None)
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
        slicer.util.updateVolumeFromArray(labelmap, np.zeros((8, 8, 8), np.uint8))
        with self.assertRaises(SneakyNetError):
            logic.segment(labelmap)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before + 1)  # only the labelmap we added
        self.delayDisplay("Test passed")

    def test_SegmentPhantom(self):
        missing = BoneSegmentationLogic.missingDependencies()
        if missing:
            self.skipTest("SKIPPED, not passed: the Python packages " + ", ".join(missing) + " are not installed, "
                          "so no segmentation was tested. Install them in the SneakyNet module and run it again.")
        self.delayDisplay("Segmenting a phantom CT with the demo model in the worker process")
        logic = SneakyNetLogic()
        job = logic.startSegmentation(self._phantomVolume(), SegmentationOptions(device="auto", fast=True))
        deadline = time.monotonic() + SELF_TEST_TIMEOUT_S
        while not job.poll().finished:
            if time.monotonic() > deadline:
                job.cancel()
                self.fail(f"The segmentation did not finish in {SELF_TEST_TIMEOUT_S} s.")
            if getattr(slicer, "app", None) is not None:
                slicer.app.processEvents()
            time.sleep(0.05)
        result = logic.finishSegmentation(job)  # a failed job raises its error here: the test fails
        segmentation = result.segmentationNode.GetSegmentation()
        self.assertGreater(segmentation.GetNumberOfSegments(), 0,
                           "The demo model found no bone in the phantom CT: the installation is broken.")
        self.assertEqual(segmentation.GetNumberOfSegments(), len(result.labelIds))
        self.assertTrue(segmentation.ContainsRepresentation("Closed surface"))
        self.delayDisplay(f"Test passed: {len(result.labelIds)} bones in {result.seconds:.1f} s on {result.device}")
