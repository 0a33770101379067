"""The packaged label table: 125 unique bones, mirrored pairs, distinct colours, terminology."""
import colorsys
import json
from importlib import resources

import pytest

from sneakynet.labels import NUM_BONES, load_label_table, parse_label_table


@pytest.fixture(scope="module")
def table():
    return load_label_table()


def test_exactly_125_unique_ids_and_names(table):
    assert [b.id for b in table] == list(range(1, NUM_BONES + 1))
    assert len({b.name for b in table}) == NUM_BONES
    assert len({b.display for b in table}) == NUM_BONES


def test_groups_match_design_counts(table):
    groups = table.groups()
    assert len(groups["head"]) == 3
    assert len(groups["spine"]) == 26
    assert len(groups["ribs"]) == 24 and len(groups["sternum"]) == 2
    per_side = [b for b in table if b.side == "left" and b.group not in ("ribs", "pelvis", "leg")]
    assert len(per_side) == 33


def test_left_right_pairs_mirror_each_other(table):
    for b in table:
        if b.side == "none":
            assert b.mirror is None
            continue
        twin = table.by_id(b.mirror)
        assert twin.mirror == b.id and twin.side != b.side and twin.group == b.group
        assert twin.name == b.name.replace(b.side, twin.side)
        assert twin.type == b.type and twin.modifier != b.modifier
    lut = table.mirror_lut()
    assert lut[0] == 0 and all(lut[lut[i]] == i for i in range(NUM_BONES + 1))


def _distance(c1, c2):
    return sum((a - b) ** 2 for a, b in zip(c1, c2)) ** 0.5


def test_colours_distinct_and_left_right_differ(table):
    colours = [b.color for b in table]
    assert len(set(colours)) == NUM_BONES
    for b in table:
        if b.mirror is not None:
            assert _distance(b.color, table.by_id(b.mirror).color) > 40, b.name
    # neighbours in the table (adjacent vertebrae, ribs, fingers) are distinguishable
    for a, c in zip(table.bones, table.bones[1:]):
        assert _distance(a.color, c.color) > 25, (a.name, c.name)


def test_terminology_uses_snomed_codes(table):
    for b in table:
        assert b.category.code == "123037004" and b.type.scheme == "SCT" and b.type.code.isdigit()
        term = b.slicer_terminology()
        assert f"SCT^{b.type.code}^" in term
        if b.side == "left":
            assert "SCT^7771000^Left" in term
        elif b.side == "right":
            assert "SCT^24028007^Right" in term


def test_broken_table_is_rejected_with_source_name():
    data = json.loads(resources.files("sneakynet").joinpath("resources/labels.json").read_text())
    data["labels"][5]["id"] = 1
    with pytest.raises(ValueError, match="mine.json: label table must have ids"):
        parse_label_table(data, "mine.json")
    data = json.loads(resources.files("sneakynet").joinpath("resources/labels.json").read_text())
    data["labels"][60]["mirror"] = 3
    with pytest.raises(ValueError, match="mirror"):
        parse_label_table(data, "x")


def test_unknown_ids_name_the_problem(table):
    with pytest.raises(KeyError, match="label id 126"):
        table.by_id(126)
