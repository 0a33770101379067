"""The phantom CT registered with Slicer's Sample Data module, and the supported-version check.

The Sample Data module exists only in the Slicer application, so a stand-in records the call;
its parameter names are those of ``SampleDataLogic.registerCustomSampleDataSource`` in
Modules/Scripted/SampleData/SampleData.py (Slicer v5.10.0). The URI is fetched the way Sample
Data fetches it (``urllib.request.urlretrieve``) and checked against the registered checksum.
"""
from __future__ import annotations

import ast
import hashlib
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from SneakyNetLib import compat, sampledata, volumes
from SneakyNetLib.logic import BoneSegmentationLogic

REPO = Path(__file__).resolve().parents[1]
# registerCustomSampleDataSource's parameters in Slicer v5.10.0
SAMPLE_DATA_PARAMETERS = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader",
                          "thumbnailFileName", "loadFileTypes", "loadFiles", "loadFileProperties", "checksums",
                          "loadFileType"}


def test_registration_calls_sample_data_with_a_source_it_can_download(tmp_path):
    calls = []
    fake = SimpleNamespace(SampleDataLogic=SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw)))
    source = sampledata.registerSampleData(fake)
    assert calls == [source]
    assert set(source) <= SAMPLE_DATA_PARAMETERS
    assert source["category"] == "SneakyNet" and source["sampleName"] == source["nodeNames"] == "SneakyNetPhantomCT"
    assert source["loadFileTypes"] == "VolumeFile" and source["fileNames"] == "SneakyNetPhantomCT.nrrd"
    downloaded = tmp_path / source["fileNames"]
    urllib.request.urlretrieve(source["uris"], downloaded)  # what SampleDataLogic.downloadFile does
    algorithm, digest = source["checksums"].split(":")
    assert algorithm == "SHA256" and hashlib.sha256(downloaded.read_bytes()).hexdigest() == digest
    reader = vtk.vtkPNGReader()
    reader.SetFileName(source["thumbnailFileName"])
    reader.Update()
    assert reader.GetOutput().GetDimensions()[:2] == (128, 128)


def test_the_sample_is_a_ct_with_all_125_bones_that_the_make_script_reproduces():
    import make_sample_data

    logic = BoneSegmentationLogic(slicer.vtkMRMLScene())
    node = logic.loadVolume(sampledata.SAMPLE_FILE)
    volumes.validateCtVolumeNode(node)
    shipped = volumes.imageFromVolumeNode(node)
    ct, labels = make_sample_data.sample_ct()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(shipped), sitk.GetArrayViewFromImage(ct))
    np.testing.assert_allclose(shipped.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(shipped.GetDirection(), ct.GetDirection(), atol=1e-6)
    assert len(np.unique(sitk.GetArrayViewFromImage(labels))) - 1 == 125
    assert sampledata.SAMPLE_FILE.stat().st_size < 2_000_000


def test_older_slicer_python_gets_a_message_naming_the_minimum_release():
    assert compat.unsupportedReason((3, 12)) is None and compat.unsupportedReason((3, 10)) is None
    message = compat.unsupportedReason((3, 9), slicerVersion="5.8.1")
    assert "Slicer 5.10 or later" in message and "Slicer 5.8.1 runs Python 3.9" in message
    assert "https://download.slicer.org" in message


def test_the_module_parses_on_python_3_9_so_an_old_slicer_can_show_that_message():
    """Slicer 5.0-5.8 (Python 3.9) must load SneakyNet.py far enough to show compat's message."""
    files = [REPO / "SlicerSneakyNet" / "SneakyNet.py", *sorted((REPO / "SlicerSneakyNet" / "SneakyNetLib").glob("*.py"))]
    for path in files:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
    source = files[0].read_text(encoding="utf-8")
    assert source.index("compat.unsupportedReason(") < source.index('slicer.util.loadUI(')
