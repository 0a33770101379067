"""Which files are CT volumes and what a case is called (no Slicer, VTK or ITK imports: cheap)."""
from __future__ import annotations

import os
from pathlib import Path

# file name endings treated as one CT image each (DICOM series are folders)
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def volumeSuffix(path: str | os.PathLike) -> str:
    """The image suffix of ``path`` (``.nii.gz`` counts as one; ``.seg.nrrd`` is not a volume), or ''."""
    name = Path(path).name.lower()
    if name.endswith(".seg.nrrd"):
        return ""
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def caseName(path: str | os.PathLike) -> str:
    """A case's name: the file name without its image suffix (``ct_01.nii.gz`` -> ``ct_01``)."""
    p = Path(path)
    suffix = volumeSuffix(p)
    return p.name[: -len(suffix)] if suffix else p.name
