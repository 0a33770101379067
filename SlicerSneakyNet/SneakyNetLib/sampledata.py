"""The phantom CT that SneakyNet registers with Slicer's Sample Data module.

A synthetic upper-body CT (all 125 bones, 4 mm voxels, 1.5 MB) ships with the module in
``Resources/SampleData/`` (made by ``Testing/make_sample_data.py``), so a new user can load it
from Sample Data and click Segment bones, offline. Registration uses
``SampleData.SampleDataLogic.registerCustomSampleDataSource`` (Modules/Scripted/SampleData/SampleData.py,
Slicer v5.10.0) with a ``file:`` URI, as Slicer's own SampleData tests do, and a SHA256 checksum.
"""
from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

SAMPLE_NAME = "SneakyNetPhantomCT"
CATEGORY = "SneakyNet"
SAMPLE_FOLDER = Path(__file__).resolve().parent.parent / "Resources" / "SampleData"
SAMPLE_FILE = SAMPLE_FOLDER / f"{SAMPLE_NAME}.nrrd"
THUMBNAIL_FILE = SAMPLE_FOLDER / f"{SAMPLE_NAME}.png"
# sha256 of SAMPLE_FILE; Testing/test_sample_data.py checks it against the file
SAMPLE_SHA256 = "33c913777246980a5c8ee3706bb57b1f85860f1c8682933fe1bc4f00a1546bf0"


def fileUri(path: Path) -> str:
    """``file:`` URI of a local path (SampleData.path2uri, also right for Windows drive letters)."""
    return urllib.parse.urljoin("file:", urllib.request.pathname2url(str(path)))


def sampleDataSource() -> dict:
    """Keyword arguments of ``registerCustomSampleDataSource`` for the phantom CT."""
    return dict(category=CATEGORY, sampleName=SAMPLE_NAME, uris=fileUri(SAMPLE_FILE), fileNames=SAMPLE_FILE.name,
                nodeNames=SAMPLE_NAME, thumbnailFileName=str(THUMBNAIL_FILE), loadFileTypes="VolumeFile",
                checksums=f"SHA256:{SAMPLE_SHA256}")


def registerSampleData(sampleDataModule=None) -> dict:
    """Register the phantom CT with Sample Data (Slicer's ``SampleData`` module unless one is given)."""
    if sampleDataModule is None:
        import SampleData as sampleDataModule  # only inside the Slicer application

    source = sampleDataSource()
    sampleDataModule.SampleDataLogic.registerCustomSampleDataSource(**source)
    return source
