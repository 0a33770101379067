"""SneakyNetTest, the module's own test in Slicer's harness, run here with unittest under slicer-core.

It must pass after a real segmentation (through the worker process), report a skip - not a
pass - when the Python packages are missing, and fail when the model finds no bone.
"""
from __future__ import annotations

import functools
import sys
import unittest

import pytest
import slicer

ZERO_WORKER = """
import sys, SimpleITK as sitk
from SneakyNetLib.worker import encodeMessage
value = lambda flag: sys.argv[sys.argv.index(flag) + 1]
ct = sitk.ReadImage(value("--input"))
labels = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
labels.CopyInformation(ct)
sitk.WriteImage(labels, value("--output"))
print(encodeMessage(done=True, device="cpu"), flush=True)
"""


@pytest.fixture
def self_test(module_file, monkeypatch):
    """Run SneakyNetTest.runTest in a fresh scene standing in for slicer.mrmlScene; the unittest result."""
    monkeypatch.setattr(slicer, "mrmlScene", slicer.vtkMRMLScene(), raising=False)

    def run() -> unittest.TestResult:
        result = unittest.TestResult()
        module_file.SneakyNetTest("runTest").run(result)
        return result

    return run


def test_self_test_passes_after_a_real_segmentation(self_test, module_file):
    result = self_test()
    assert result.wasSuccessful() and not result.skipped, result.errors + result.failures
    scene = slicer.mrmlScene
    segmentations = [scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                     for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))]
    assert len(segmentations) == 1 and segmentations[0].GetSegmentation().GetNumberOfSegments() > 0


def test_self_test_reports_a_skip_when_the_packages_are_missing(self_test, monkeypatch):
    from SneakyNetLib import dependencies

    monkeypatch.setattr(dependencies, "missingDependencies", lambda: ["torch"])
    result = self_test()
    assert len(result.skipped) == 1 and not result.failures and not result.errors
    assert "SKIPPED, not passed" in result.skipped[0][1] and "torch" in result.skipped[0][1]


def test_self_test_fails_when_no_bone_is_found(self_test, monkeypatch):
    """A worker that answers with an all-background label map: the test must fail, not pass."""
    from SneakyNetLib import logic, worker

    module_dir = str(worker.WORKER_SCRIPT.parent.parent)
    command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {module_dir!r})\n{ZERO_WORKER}"]
    monkeypatch.setattr(logic, "WorkerProcessJob", functools.partial(worker.WorkerProcessJob, command=command))
    result = self_test()
    assert len(result.failures) == 1 and not result.skipped, result.errors
    assert "found no bone" in result.failures[0][1]
