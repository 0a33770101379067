"""Extensions Index readiness: the catalog entry, the top-level CMakeLists.txt and the LICENSE.

The catalog entry (Resources/ExtensionsIndex/SneakyNet.json) is what a pull request to
Slicer/ExtensionsIndex adds. It is validated against the index's current schema, vendored in
Testing/schemas/ (slicer-extension-catalog-entry-schema-v1.0.2.json, identical in
Slicer/Slicer Schemas/ and Slicer/ExtensionsIndex schemas/). The other checks repeat those of
the index's own checker (scripts/check_description_files.py): the project name equals the
entry's file name and does not start with "Slicer", the repository name does, literal image
URLs in CMakeLists.txt (the checker does not expand CMake variables), LF line endings, a known
category, a LICENSE in the repository root.
"""
from __future__ import annotations

import ast
import json
import re
import urllib.parse
from pathlib import Path

import jsonschema
import pytest

from conftest import demo_model_available

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "Resources" / "ExtensionsIndex" / "SneakyNet.json"
SCHEMA = Path(__file__).resolve().parent / "schemas" / "slicer-extension-catalog-entry-schema-v1.0.2.json"
CMAKE = REPO / "CMakeLists.txt"
RAW_PREFIX = "https://raw.githubusercontent.com/SneakyNet/SlicerSneakyNet/main/"
# a few of the index checker's ACCEPTED_EXTENSION_CATEGORIES (the full list has 61)
KNOWN_CATEGORIES = {"Segmentation", "Exporter", "Quantification", "Surface Models", "Virtual Reality"}


@pytest.fixture(scope="module")
def entry() -> dict:
    return json.loads(ENTRY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cmake() -> str:
    return CMAKE.read_text(encoding="utf-8")


def cmake_value(text: str, key: str) -> str:
    match = re.search(rf'set\({key}\s+"([^"]*)"\)', text)
    assert match, f"{key} is not set in CMakeLists.txt"
    return match.group(1)


def test_catalog_entry_is_valid_against_the_vendored_schema(entry):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(entry)
    assert entry["$schema"].split("#")[0] == schema["$id"].split("#")[0]
    assert entry["$schema"].split("#")[0].endswith("/" + SCHEMA.name)


def test_the_vendored_schema_rejects_what_the_index_rejects(entry):
    """The validation can fail: a missing field, an unknown field, a tier out of range."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    broken = [{k: v for k, v in entry.items() if k != "scm_url"}, {**entry, "homepage": "x"}, {**entry, "tier": 7}]
    for case in broken:
        assert list(validator.iter_errors(case)), case


def test_entry_matches_the_cmake_project_and_the_index_naming_rules(entry, cmake):
    project = re.findall(r"project\s*\(\s*([^\s\)\n\r]+)", cmake, re.IGNORECASE)[0]  # the index checker's regex
    assert project == ENTRY.stem == "SneakyNet"
    assert not project.lower().startswith("slicer"), "extension names must not start with Slicer"
    url = urllib.parse.urlsplit(entry["scm_url"])
    assert url.scheme == "https" and url.netloc == "github.com"
    assert url.path.rstrip("/").split("/")[-1].startswith("Slicer"), "the repository name must start with Slicer"
    assert cmake_value(cmake, "EXTENSION_HOMEPAGE") == entry["scm_url"]
    assert entry["category"] == cmake_value(cmake, "EXTENSION_CATEGORY") and entry["category"] in KNOWN_CATEGORIES
    depends = cmake_value(cmake, "EXTENSION_DEPENDS").split()
    assert entry.get("build_dependencies", []) == ([] if depends == ["NA"] else depends)
    assert b"\r" not in ENTRY.read_bytes(), "the index wants LF line endings"


def test_cmake_image_urls_are_literal_and_point_at_files_in_the_repository(cmake):
    icon = re.findall(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"[ ]*\)', cmake)  # the index checker's regexes
    shots = re.findall(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', cmake)
    assert icon and shots
    urls = [icon[0].strip(), *shots[0].split()]
    for url in urls:
        assert url.startswith(RAW_PREFIX) and url.endswith(".png"), url
        relative = url[len(RAW_PREFIX):]
        if relative == "Resources/slicer_segmentation_3d.png" and not (REPO / relative).is_file() \
                and not demo_model_available():
            pytest.skip("the screenshot is rendered from the demo model, which is not built yet")
        assert (REPO / relative).is_file(), f"{url} is not in the repository"


def test_cmake_metadata_is_complete_and_requires_slicer_5_10(cmake):
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert cmake_value(cmake, key).strip(), key
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(SlicerSneakyNet)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in cmake
    assert "cmake_minimum_required(VERSION 3.20.6...3.22.6 FATAL_ERROR)" in cmake  # Slicer 5.10's template
    assert 'set(SNEAKYNET_MINIMUM_PYTHON "3.10")' in cmake
    assert "if(Slicer_REQUIRED_PYTHON_VERSION VERSION_LESS SNEAKYNET_MINIMUM_PYTHON)" in cmake
    assert "not for clinical use" in cmake_value(cmake, "EXTENSION_DESCRIPTION")


def test_contributors_are_the_same_in_cmake_and_the_module_and_not_a_placeholder(cmake):
    tree = ast.parse((REPO / "SlicerSneakyNet" / "SneakyNet.py").read_text(encoding="utf-8"))
    module = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "CONTRIBUTORS")
    assert cmake_value(cmake, "EXTENSION_CONTRIBUTORS") == "; ".join(module)
    assert "SneakyNet contributors" not in cmake and "John Doe" not in cmake
    assert "University of Basel" in module[-1]


def test_license_is_apache_2_in_the_repository_root_as_the_package_declares():
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in license_text
    pyproject = (REPO / "SneakyNetCore" / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "Apache-2.0"', pyproject, re.M)
