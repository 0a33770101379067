"""The label table's SNOMED CT codes: valid identifiers, one code per bone where sources allow, a source for each.

Identifiers are checked with python-stdnum's Verhoeff implementation (independent of our code);
codes attributed to DICOM PS3.16 are checked against pydicom's machine-readable copy of PS3.16.
"""
from __future__ import annotations

import re
from collections import Counter

import pytest
from stdnum import verhoeff

from sneakynet.labels import load_label_table

TABLE = load_label_table()
PS3_SOURCE = re.compile(r"^DICOM PS3\.16 CID (\d+) \w+ \('([^']+)'")
KNOWN_SOURCES = ("DICOM PS3.16 CID ", "Uberon bridge to SNOMED CT: SCTID ",
                 "github.com/lassoan/SlicerTotalSegmentator ")


def all_sct_codes():
    for b in TABLE:
        for code in (b.category, b.type, b.modifier):
            if code is not None and code.scheme == "SCT":
                yield b, code


def test_every_snomed_identifier_is_well_formed_and_verhoeff_valid():
    codes = list(all_sct_codes())
    assert len(codes) >= 2 * len(TABLE)
    for b, code in codes:
        sctid = code.code
        assert sctid.isdigit() and 6 <= len(sctid) <= 18 and sctid[0] != "0", (b.name, sctid)
        assert sctid[-3:-1] in ("00", "10"), f"{b.name}: {sctid} is not a concept identifier (partition)"
        assert verhoeff.is_valid(sctid), f"{b.name}: {sctid} fails the Verhoeff check digit"
    assert not verhoeff.is_valid("181959001")  # the check does catch a wrong last digit


def test_each_bone_has_its_own_code_where_sources_allow():
    pairs = Counter((b.type.code, b.modifier.code if b.modifier else "") for b in TABLE)
    assert max(pairs.values()) == 1, [p for p, n in pairs.items() if n > 1]
    # left/right twins share the type and differ by the laterality modifier; every other bone has its own type
    base = {b.name.replace(f"_{b.side}", "") for b in TABLE}
    by_code = Counter(b.type.code for b in TABLE)
    assert len(by_code) == len(base) == 78
    for b in TABLE:
        assert by_code[b.type.code] == (1 if b.mirror is None else 2), b.name


def test_source_named_for_every_bone_and_parent_concepts_marked():
    for b in TABLE:
        assert b.type_source.startswith(KNOWN_SOURCES), (b.name, b.type_source)
    parents = sorted(b.name for b in TABLE if not b.type_specific)
    assert parents == ["sesamoid_thumb_left", "sesamoid_thumb_right"]
    for b in TABLE:
        if not b.type_specific:
            assert "parent concept" in b.type_source


def test_thumb_sesamoids_are_not_coded_as_phalanges():
    for name in ("sesamoid_thumb_left", "sesamoid_thumb_right"):
        b = TABLE.by_name(name)
        assert "phalanx" not in b.type.meaning.lower() and "sesamoid" in b.type.meaning.lower()
    assert all(b.type.code != "28641004" for b in TABLE)  # "Phalanx structure" names no single bone


def test_ps3_16_attributions_match_pydicom_copy_of_the_standard():
    from pydicom.sr._cid_dict import cid_concepts
    from pydicom.sr._concepts_dict import concepts

    sct = concepts["SCT"]
    checked = 0
    for b in TABLE:
        match = PS3_SOURCE.match(b.type_source)
        if not match:
            continue
        cid, meaning = int(match.group(1)), match.group(2)
        keywords = [k for k, codes in sct.items() if b.type.code in codes and cid in codes[b.type.code][1]]
        assert keywords, f"{b.name}: {b.type.code} is not in PS3.16 CID {cid}"
        assert any(k in cid_concepts[cid].get("SCT", []) for k in keywords), (b.name, cid)
        assert meaning in {sct[k][b.type.code][0] for k in keywords}, (b.name, meaning)
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("name", ["sternum_manubrium", "sternum_body", "lunate_left", "metacarpal_3_right",
                                  "phalanx_middle_4_left", "hip_right"])
def test_formerly_shared_codes_are_now_specific(name):
    b = TABLE.by_name(name)
    assert b.type_specific and b.type.code not in {"56873002", "83936004", "36455000", "28641004", "29836001"}
