"""The shipped Slicer terminology file: generated from the label table, valid against dcmqi's schema.

Slicer's loading of it is tested under slicer-core in ``Testing/test_terminology.py``.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import SimpleITK as sitk
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from sneakynet.labels import TERMINOLOGY_CONTEXT, TERMINOLOGY_FILE, load_label_table, slicer_terminology_text
from sneakynet.segfile import write_seg_nrrd

SCHEMAS = Path(__file__).parent / "data" / "dcmqi_schemas"
TABLE = load_label_table()


def shipped_text() -> str:
    return resources.files("sneakynet").joinpath(f"resources/{TERMINOLOGY_FILE}").read_text(encoding="utf-8")


def test_shipped_term_file_is_generated_from_the_label_table():
    assert shipped_text() == slicer_terminology_text(TABLE), (
        "regenerate it with sneakynet.labels.slicer_terminology_text(load_label_table())")


def test_term_file_validates_against_dcmqi_segment_context_schema():
    resources_ = [Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT4)
                  for p in sorted(SCHEMAS.glob("*.json"))]
    registry = Registry().with_resources((r.id(), r) for r in resources_)
    main = json.loads((SCHEMAS / "segment-context-schema.json").read_text())
    validator = jsonschema.Draft4Validator(main, registry=registry)
    data = json.loads(shipped_text())
    errors = list(validator.iter_errors(data))
    assert not errors, errors[0].message
    broken = json.loads(shipped_text())
    broken["SegmentationCodes"]["Category"][0]["Type"][0]["recommendedDisplayRGBValue"] = [300, 0, 0]
    assert list(validator.iter_errors(broken))  # the schema is really applied


def test_term_file_lists_every_bone_with_its_colour():
    data = json.loads(shipped_text())
    assert data["SegmentationCategoryTypeContextName"] == TERMINOLOGY_CONTEXT
    seen = {}
    for category in data["SegmentationCodes"]["Category"]:
        for t in category["Type"]:
            for mod in t.get("Modifier", [None]):
                key = (t["CodeValue"], mod["CodeValue"] if mod else None)
                seen[key] = (mod or t)["recommendedDisplayRGBValue"]
    assert len(seen) == len(TABLE)
    for b in TABLE:
        assert seen[(b.type.code, b.modifier.code if b.modifier else None)] == list(b.color), b.name


def test_seg_nrrd_terminology_uses_canonical_empty_codes(tmp_path):
    labels = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    labels[1, 1, 1] = TABLE.by_name("mandible").id
    labels[2, 2, 2] = TABLE.by_name("lunate_left").id
    path = write_seg_nrrd(labels, tmp_path / "x.seg.nrrd")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    tags = {reader.GetMetaData(f"Segment{i}_Name"): reader.GetMetaData(f"Segment{i}_Tags") for i in range(2)}
    mandible = tags["Mandible"].removeprefix("TerminologyEntry:").rstrip("|").split("~")
    assert mandible[0] == TERMINOLOGY_CONTEXT and mandible[3] == "^^" and mandible[5:] == ["^^", "^^"]
    lunate = tags[TABLE.by_name("lunate_left").display].split("~")
    assert lunate[2] == "SCT^181959000^Lunate bone" and lunate[3] == "SCT^7771000^Left"
    assert all(part for part in mandible)  # no empty field anywhere
