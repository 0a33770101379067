"""Load SneakyNet's terminology context into Slicer so the Segment Editor names every bone.

The context (``SegmentationCategoryTypeModifier-SneakyNet.term.json``) ships inside the
``sneakynet`` package next to the label table it is generated from. Segment terminology strings
written by SneakyNet name this context; once it is loaded, Slicer's terminology selector shows the
125 bones (with their SNOMED CT codes and colours) instead of an unknown entry.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from sneakynet.labels import TERMINOLOGY_CONTEXT, TERMINOLOGY_FILE

from .errors import SneakyNetError


def terminologyFilePath() -> Path:
    """Path of the packaged ``.term.json`` file."""
    return Path(str(resources.files("sneakynet").joinpath(f"resources/{TERMINOLOGY_FILE}")))


def terminologiesLogic():
    """The Terminologies module logic of the running Slicer application, or None without one (slicer-core)."""
    import slicer

    module = getattr(getattr(slicer, "modules", None), "terminologies", None)
    return module.logic() if module is not None else None


def loadSneakyNetTerminology(logic=None) -> str:
    """Load the SneakyNet terminology context into ``logic`` (default: the application's) once; return its name.

    Raises SneakyNetError naming the file when Slicer cannot read it.
    """
    logic = logic if logic is not None else terminologiesLogic()
    if logic is None:
        raise SneakyNetError("Slicer's Terminologies module is not available; bone names still show, "
                             "but the terminology selector will not list them")
    if logic.IsTerminologyContextLoaded(TERMINOLOGY_CONTEXT):
        return TERMINOLOGY_CONTEXT
    path = terminologyFilePath()
    loaded = logic.LoadTerminologyFromFile(str(path))
    if loaded != TERMINOLOGY_CONTEXT:
        raise SneakyNetError(f"{path}: Slicer could not load the SneakyNet terminology "
                             f"(got {loaded!r}, expected {TERMINOLOGY_CONTEXT!r})")
    return loaded
