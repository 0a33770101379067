"""Set-valued and partial labels: which of our classes a reference label value stands for.

A reference label value ``v`` of a case means a *set* of our classes ``S(v)``:

* ``v`` in 1..125 is the single bone ``v`` (``S(v) = {v}``), as in every SneakyNet phantom;
* a *set value* (126..255, declared in ``dataset.json``) stands for several bones the source does
  not tell apart: TotalSegmentator's sternum is our manubrium ∪ body (value 200), its skull our
  cranium ∪ mandible (value 201);
* ``0`` is background ∪ every bone the case does not annotate: in a TotalSegmentator case a
  background voxel may be a carpal, so "background" there means "background or a hand bone or ...".

The declaration lives in ``dataset.json`` under ``"label_sets"`` (absent: every value is its own
class and training is exactly as without this module)::

    "label_sets": {
      "annotated": "all" | ["humerus_left", ...],   # bones labelled (one by one or inside a set)
      "sets": {"200": ["sternum_manubrium", "sternum_body"]},
      "cases": {"<case id>": {"annotated": [...], "sets": {...}}}    # optional per-case overrides
    }

Members of a set count as annotated (a background voxel of a TotalSegmentator case is never
manubrium: it would be labelled sternum). :meth:`LabelSets.tables` turns a declaration into the
membership matrix the loss uses (:func:`sneakynet.losses.marginal_dice_ce_loss`) and the
left/right lookup table the sampler mirrors labels with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sneakynet.labels import NUM_BONES, NUM_CLASSES, load_label_table

LABEL_SETS_KEY = "label_sets"
NUM_VALUES = 256  # label maps are uint8: values 0..255
FIRST_SET_VALUE = NUM_CLASSES  # 126; the importer uses 200+ so set values stand out


class LabelSetsError(ValueError):
    """A ``label_sets`` declaration is invalid; the message names the file and the problem."""


@dataclass(frozen=True)
class LabelSets:
    """What each label value of one case means: annotated bones and set values (class ids)."""

    annotated: frozenset[int] = frozenset(range(1, NUM_CLASSES))
    sets: dict[int, frozenset[int]] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.annotated, tuple(sorted((v, tuple(sorted(s))) for v, s in self.sets.items()))))

    @property
    def trivial(self) -> bool:
        """Every value is its own class (all bones annotated, no set values): today's labels."""
        return not self.sets and len(self.annotated) == NUM_BONES

    @property
    def values(self) -> set[int]:
        """Label values a case may hold."""
        return set(range(NUM_CLASSES)) | set(self.sets)

    def _rows(self) -> dict[int, frozenset[int]]:
        rows = {v: frozenset({v}) for v in range(1, NUM_CLASSES)}
        rows[0] = frozenset({0}) | (frozenset(range(1, NUM_CLASSES)) - self.annotated)
        rows.update(self.sets)
        return rows

    @cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows()
        class_lut = load_label_table().mirror_lut()

        def mirrored(members: frozenset[int]) -> frozenset[int]:
            return frozenset(class_lut[c] for c in members)

        by_set: dict[frozenset[int], int] = {}
        for v, members in sorted(rows.items()):
            by_set.setdefault(members, v)
        free = [v for v in range(NUM_VALUES - 1, FIRST_SET_VALUE - 1, -1) if v not in rows]
        for v in sorted(rows):
            m = mirrored(rows[v])
            if m not in by_set:  # e.g. only the left humerus annotated: a row for the mirror image
                u = free.pop()
                rows[u], by_set[m] = m, u
        lut = np.arange(NUM_VALUES, dtype=np.uint8)
        member = np.zeros((NUM_VALUES, NUM_CLASSES), dtype=bool)
        for v, members in rows.items():
            lut[v] = by_set[mirrored(members)]
            member[v, sorted(members)] = True
        member.flags.writeable = False
        lut.flags.writeable = False
        return member, lut

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """``(membership (256, 126) bool, mirror lut (256,) uint8)``: row ``v`` = the classes value ``v``
        stands for; ``lut[v]`` = the value of the mirrored set (rows added for mirrored sets that no
        declared value holds). Rows of unused values are all False."""
        return self._tables

    def resolve(self, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels 0..125, certain)`` for scoring: each value's first class (background for the
        background set) and where the value stands for exactly one class. Scores count the certain
        voxels only: elsewhere a prediction inside the set is not wrong and one outside is not known
        to be (a hand bone predicted on a TotalSegmentator background voxel)."""
        member, _ = self.tables()
        ref = np.asarray(reference).astype(np.intp)
        labels = np.argmax(member, axis=1).astype(np.uint8)[ref]
        return labels, (member.sum(axis=1) == 1)[ref]

    def to_json(self) -> dict:
        """The ``label_sets`` JSON form (names, not ids)."""
        table = load_label_table()
        annotated = "all" if len(self.annotated) == NUM_BONES else [table.by_id(c).name for c in sorted(self.annotated)]
        return {"annotated": annotated,
                "sets": {str(v): [_name(c) for c in sorted(s)] for v, s in sorted(self.sets.items())}}


def _name(class_id: int) -> str:
    return "background" if class_id == 0 else load_label_table().by_id(class_id).name


def _class_ids(names: object, where: str) -> frozenset[int]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LabelSetsError(f"{where} must be a list of bone names")
    table = load_label_table()
    out = set()
    for name in names:
        if name == "background":
            out.add(0)
            continue
        try:
            out.add(table.by_name(name).id)
        except KeyError:
            raise LabelSetsError(f"{where}: {name!r} is not a bone of the label table") from None
    return frozenset(out)


def parse_label_sets(data: object, source: str) -> LabelSets:
    """One ``{"annotated": ..., "sets": ...}`` object; ``source`` names the file and key in errors."""
    if not isinstance(data, dict) or set(data) - {"annotated", "sets"}:
        raise LabelSetsError(f"{source}: must be an object with keys 'annotated' and 'sets'")
    annotated = data.get("annotated", "all")
    ids = frozenset(range(1, NUM_CLASSES)) if annotated == "all" else _class_ids(annotated, f"{source}.annotated")
    if 0 in ids:
        raise LabelSetsError(f"{source}.annotated: lists 'background'; list bones only")
    sets_in = data.get("sets", {})
    if not isinstance(sets_in, dict):
        raise LabelSetsError(f"{source}.sets must be an object {{\"value\": [bone names]}}")
    sets: dict[int, frozenset[int]] = {}
    for key, names in sets_in.items():
        if not str(key).isdigit() or not FIRST_SET_VALUE <= int(key) < NUM_VALUES:
            raise LabelSetsError(f"{source}.sets: value {key!r} must be an integer in {FIRST_SET_VALUE}.."
                                 f"{NUM_VALUES - 1} (0..{NUM_BONES} are background and the single bones)")
        members = _class_ids(names, f"{source}.sets[{key}]")
        if not members or 0 in members:
            raise LabelSetsError(f"{source}.sets[{key}]: needs at least one bone and no 'background'")
        sets[int(key)] = members
    annotated_ids = ids | frozenset(c for s in sets.values() for c in s)
    return LabelSets(annotated=annotated_ids, sets=sets)


@dataclass(frozen=True)
class DatasetLabelSets:
    """A dataset's declaration: the default and per-case overrides."""

    default: LabelSets = field(default_factory=LabelSets)
    cases: dict[str, LabelSets] = field(default_factory=dict)

    def for_case(self, case_id: str) -> LabelSets:
        return self.cases.get(case_id, self.default)

    def to_json(self) -> dict:
        out = self.default.to_json()
        if self.cases:
            out["cases"] = {c: s.to_json() for c, s in sorted(self.cases.items())}
        return out


def parse_dataset_label_sets(data: object, source: str, case_ids: set[str] | None = None) -> DatasetLabelSets:
    """The ``label_sets`` value of a ``dataset.json`` (``source``: the file, for messages)."""
    where = f"{source}: {LABEL_SETS_KEY}"
    if not isinstance(data, dict):
        raise LabelSetsError(f"{where} must be an object")
    cases_in = data.get("cases", {})
    if not isinstance(cases_in, dict):
        raise LabelSetsError(f"{where}.cases must be an object {{case id: {{annotated, sets}}}}")
    default = parse_label_sets({k: v for k, v in data.items() if k != "cases"}, where)
    cases = {}
    for case, spec in cases_in.items():
        if case_ids is not None and case not in case_ids:
            raise LabelSetsError(f"{where}.cases: no case {case!r} in this dataset")
        cases[str(case)] = parse_label_sets(spec, f"{where}.cases[{case}]")
    return DatasetLabelSets(default=default, cases=cases)


__all__ = ["DatasetLabelSets", "FIRST_SET_VALUE", "LABEL_SETS_KEY", "LabelSets", "LabelSetsError", "NUM_VALUES",
           "parse_dataset_label_sets", "parse_label_sets"]
