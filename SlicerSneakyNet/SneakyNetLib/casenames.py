"""Which files are CT volumes and what a case is called: the core's suffix vocabulary
(``sneakynet.io.CT_SUFFIXES``), so the module, its batch script and the command line agree."""
from __future__ import annotations

import os
from pathlib import Path


def volumeSuffix(path: str | os.PathLike) -> str:
    """The image suffix of a CT file name (``.nii.gz`` counts as one), or '' for anything else
    (a ``.seg.nrrd`` segmentation, a hidden file, another type)."""
    from sneakynet.io import image_suffix, is_ct_file

    return image_suffix(path) if is_ct_file(path) else ""


def caseName(path: str | os.PathLike) -> str:
    """A case's name: the file name without its image suffix (``ct_01.nii.gz`` -> ``ct_01``)."""
    p = Path(path)
    suffix = volumeSuffix(p)
    return p.name[: -len(suffix)] if suffix else p.name
