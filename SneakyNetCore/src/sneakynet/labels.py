"""The 125-bone label table: the single source of truth for names, colours and terminology.

The table ships as ``resources/labels.json`` inside the package; the CLI, the exporters and
the Slicer module all read it through :func:`load_label_table`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

NUM_BONES = 125
NUM_CLASSES = NUM_BONES + 1  # with background = 0
# Name of the Slicer terminology context shipped as resources/SegmentationCategoryTypeModifier-SneakyNet.term.json;
# segment terminology strings point at it, so Slicer's Segment Editor finds every bone in one list.
TERMINOLOGY_CONTEXT = "Segmentation category and type - SneakyNet bones"
TERMINOLOGY_FILE = "SegmentationCategoryTypeModifier-SneakyNet.term.json"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
EMPTY_CODE = "^^"  # Slicer's canonical empty code triplet


@dataclass(frozen=True)
class Code:
    """One coded concept (e.g. SNOMED CT) as Slicer terminologies store it."""

    scheme: str
    code: str
    meaning: str

    def as_slicer_triplet(self) -> str:
        """``scheme^code^meaning``, the form used inside Slicer terminology strings."""
        return f"{self.scheme}^{self.code}^{self.meaning}"


@dataclass(frozen=True)
class Bone:
    """One row of the label table."""

    id: int
    name: str
    display: str
    side: str  # "left", "right" or "none"
    group: str
    mirror: int | None  # id of the opposite-side twin, None for midline bones
    color: tuple[int, int, int]  # 0..255 RGB
    category: Code
    type: Code
    modifier: Code | None
    type_source: str  # the published source of the type code (document/repository, version, table)
    type_specific: bool  # False where no source gives this bone its own code and a parent concept is used

    @property
    def color_float(self) -> tuple[float, float, float]:
        """RGB in 0..1, as VTK and Slicer expect."""
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]

    def slicer_terminology(self) -> str:
        """Terminology entry string for ``vtkSegment.SetTerminology`` (Slicer >= 5.4 format).

        Empty codes are written as ``^^``, the form Slicer itself writes, so Slicer compares equal entries equal.
        """
        mod = self.modifier.as_slicer_triplet() if self.modifier else EMPTY_CODE
        return (
            f"{TERMINOLOGY_CONTEXT}~{self.category.as_slicer_triplet()}~{self.type.as_slicer_triplet()}~{mod}"
            f"~{ANATOMIC_CONTEXT}~{EMPTY_CODE}~{EMPTY_CODE}"
        )


class LabelTable:
    """Validated, indexed view of the label table (ids 1..125, 0 = background)."""

    def __init__(self, bones: list[Bone], version: str) -> None:
        self.bones = bones
        self.version = version
        self._by_id = {b.id: b for b in bones}
        self._by_name = {b.name: b for b in bones}
        self._validate()

    def _validate(self) -> None:
        ids = [b.id for b in self.bones]
        if sorted(ids) != list(range(1, NUM_BONES + 1)):
            raise ValueError(f"label table must have ids 1..{NUM_BONES} exactly once, got {len(ids)} ids")
        if len(self._by_name) != len(self.bones):
            raise ValueError("label table has duplicate bone names")
        for b in self.bones:
            if b.side not in ("left", "right", "none"):
                raise ValueError(f"bone {b.name}: side must be left/right/none, got {b.side!r}")
            if (b.side == "none") != (b.mirror is None):
                raise ValueError(f"bone {b.name}: sided bones need a mirror twin, midline bones none")
            if b.mirror is not None:
                twin = self._by_id.get(b.mirror)
                if twin is None or twin.mirror != b.id or twin.side == b.side:
                    raise ValueError(f"bone {b.name}: mirror {b.mirror} is not its opposite-side twin")
            if len(b.color) != 3 or not all(0 <= c <= 255 for c in b.color):
                raise ValueError(f"bone {b.name}: colour must be three values in 0..255")
            if not b.type_source.strip():
                raise ValueError(f"bone {b.name}: type_source must name where its type code comes from")

    def __len__(self) -> int:
        return len(self.bones)

    def __iter__(self):
        return iter(self.bones)

    def by_id(self, label_id: int) -> Bone:
        """The bone with this id; KeyError names the id if it is not in the table."""
        try:
            return self._by_id[int(label_id)]
        except KeyError:
            raise KeyError(f"label id {label_id} is not in the SneakyNet label table (1..{NUM_BONES})") from None

    def by_name(self, name: str) -> Bone:
        """The bone with this snake_case name."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"bone name {name!r} is not in the SneakyNet label table") from None

    def mirror_lut(self) -> list[int]:
        """Lookup table (length 126) mapping each label to its left/right twin; used by mirroring."""
        lut = list(range(NUM_CLASSES))
        for b in self.bones:
            if b.mirror is not None:
                lut[b.id] = b.mirror
        return lut

    def groups(self) -> dict[str, list[int]]:
        """Bone ids per group, in table order."""
        out: dict[str, list[int]] = {}
        for b in self.bones:
            out.setdefault(b.group, []).append(b.id)
        return out


def _code(d: dict | None) -> Code | None:
    return None if d is None else Code(d["scheme"], d["code"], d["meaning"])


def parse_label_table(data: dict, source: str = "<dict>") -> LabelTable:
    """Build a :class:`LabelTable` from the JSON structure; errors name ``source``."""
    try:
        bones = [
            Bone(
                id=int(r["id"]), name=r["name"], display=r["display"], side=r["side"], group=r["group"],
                mirror=r["mirror"], color=tuple(int(c) for c in r["color"]),
                category=_code(r["category"]), type=_code(r["type"]), modifier=_code(r.get("modifier")),
                type_source=str(r["type_source"]), type_specific=bool(r["type_specific"]),
            )
            for r in data["labels"]
        ]
        version = str(data["version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: malformed label table ({exc!r})") from None
    try:
        return LabelTable(bones, version)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


@lru_cache(maxsize=None)
def load_label_table(path: str | None = None) -> LabelTable:
    """Load and validate the label table (the packaged one unless ``path`` is given)."""
    from sneakynet.io import read_json

    if path is not None:
        return parse_label_table(read_json(path, ValueError, "label table"), str(path))
    with resources.as_file(resources.files("sneakynet").joinpath("resources/labels.json")) as packaged:
        data = read_json(packaged, ValueError, "packaged label table")
    return parse_label_table(data, "sneakynet/resources/labels.json")


def _term_code(code: Code) -> dict:
    return {"CodeMeaning": code.meaning, "CodingSchemeDesignator": code.scheme, "CodeValue": code.code}


def slicer_terminology_context(table: LabelTable) -> dict:
    """The label table as a Slicer terminology context (the ``.term.json`` format, dcmqi segment-context schema).

    One type per type code, in table order; left/right twins share the type and differ by a laterality
    modifier that carries each side's colour. Loaded into Slicer, the Segment Editor lists every bone.
    """
    categories: dict[str, dict] = {}
    types: dict[tuple[str, str], dict] = {}
    for b in table:
        category = categories.setdefault(b.category.code, {**_term_code(b.category), "showAnatomy": False, "Type": []})
        key = (b.category.code, b.type.code)
        entry = types.get(key)
        if entry is None:
            label = b.name if b.mirror is None else b.name.replace(f"_{b.side}", "")
            entry = {**_term_code(b.type), "recommendedDisplayRGBValue": list(b.color), "3dSlicerLabel": label}
            if b.type.scheme == "SCT":
                entry["SNOMEDCTConceptID"] = b.type.code
            types[key] = entry
            category["Type"].append(entry)
        if b.modifier is not None:
            entry.setdefault("Modifier", []).append(
                {**_term_code(b.modifier), "recommendedDisplayRGBValue": list(b.color), "3dSlicerLabel": b.name})
    return {
        "SegmentationCategoryTypeContextName": TERMINOLOGY_CONTEXT,
        "@schema": "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#",
        "SegmentationCodes": {"Category": list(categories.values())},
    }


def slicer_terminology_text(table: LabelTable) -> str:
    """:func:`slicer_terminology_context` as the JSON text shipped in ``resources/`` (stable, diff-friendly)."""
    return json.dumps(slicer_terminology_context(table), indent=2, ensure_ascii=False) + "\n"
