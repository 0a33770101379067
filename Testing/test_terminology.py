"""SneakyNet's .term.json under slicer-core's own terminology logic (vtkSlicerTerminologiesModuleLogic).

Loaded through ``SneakyNetLib.terminology`` as the module loads it: Slicer lists every bone with
its code and colour, and parses each segment's terminology string back to the same entry.
"""
from __future__ import annotations

import json

import pytest
import slicer

from sneakynet.labels import TERMINOLOGY_CONTEXT, load_label_table
from SneakyNetLib.errors import SneakyNetError
from SneakyNetLib.terminology import loadSneakyNetTerminology, terminologyFilePath

TABLE = load_label_table()


@pytest.fixture(scope="module")
def logic():
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert loadSneakyNetTerminology(logic) == TERMINOLOGY_CONTEXT
    return logic


def slicer_entries(logic) -> dict[tuple[str, str | None], tuple[str, tuple[int, ...]]]:
    """(type code, modifier code) -> (meaning, colour) for every entry Slicer holds in our context."""
    out = {}
    category = slicer.vtkSlicerTerminologyCategory()
    assert logic.GetNthCategoryInTerminology(TERMINOLOGY_CONTEXT, 0, category)
    for i in range(logic.GetNumberOfTypesInTerminologyCategory(TERMINOLOGY_CONTEXT, category)):
        t = slicer.vtkSlicerTerminologyType()
        assert logic.GetNthTypeInTerminologyCategory(TERMINOLOGY_CONTEXT, category, i, t)
        n = logic.GetNumberOfTypeModifiersInTerminologyType(TERMINOLOGY_CONTEXT, category, t)
        if n == 0:
            out[(t.GetCodeValue(), None)] = (t.GetCodeMeaning(), tuple(t.GetRecommendedDisplayRGBValue()))
        for j in range(n):
            m = slicer.vtkSlicerTerminologyType()
            assert logic.GetNthTypeModifierInTerminologyType(TERMINOLOGY_CONTEXT, category, t, j, m)
            out[(t.GetCodeValue(), m.GetCodeValue())] = (t.GetCodeMeaning(), tuple(m.GetRecommendedDisplayRGBValue()))
    return out


def test_slicer_lists_every_bone_with_code_and_colour(logic):
    entries = slicer_entries(logic)
    assert len(entries) == len(TABLE)
    for b in TABLE:
        meaning, colour = entries[(b.type.code, b.modifier.code if b.modifier else None)]
        assert meaning == b.type.meaning and colour == b.color, b.name


def test_segment_terminology_strings_round_trip_through_slicer(logic):
    for b in TABLE:
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(b.slicer_terminology(), entry), b.name
        assert entry.GetTerminologyContextName() == TERMINOLOGY_CONTEXT
        assert entry.GetTypeObject().GetCodeValue() == b.type.code
        # Slicer writes empty codes as ^^; our strings are already in that canonical form
        assert logic.SerializeTerminologyEntry(entry) == b.slicer_terminology(), b.name


def test_loading_twice_is_harmless_and_a_broken_file_is_named(logic, tmp_path, monkeypatch):
    assert loadSneakyNetTerminology(logic) == TERMINOLOGY_CONTEXT
    broken = tmp_path / "broken.term.json"
    data = json.loads(terminologyFilePath().read_text())
    data["SegmentationCategoryTypeContextName"] = "something else"
    broken.write_text(json.dumps(data))
    monkeypatch.setattr("SneakyNetLib.terminology.terminologyFilePath", lambda: broken)
    with pytest.raises(SneakyNetError, match="broken.term.json"):
        loadSneakyNetTerminology(slicer.vtkSlicerTerminologiesModuleLogic())


def test_without_the_slicer_application_the_default_logic_is_reported_missing():
    if getattr(getattr(slicer, "modules", None), "terminologies", None) is not None:
        pytest.skip("running inside the Slicer application")
    with pytest.raises(SneakyNetError, match="Terminologies module is not available"):
        loadSneakyNetTerminology()
