"""Installing the core into Slicer's Python from a folder whose path has spaces and backslashes.

Slicer's ``slicer.util.pip_install`` (Base/Python/slicer/util.py, v5.10.0) runs
``shlex.split`` on a string argument, which eats Windows backslashes and splits
``C:\\Users\\Jane Doe\\...`` at the space; a list goes to pip unchanged. ``slicer_pip_install``
below is that function's argument handling, so the test sees what pip would receive.
"""
from __future__ import annotations

import shlex

import pytest
import slicer

from SneakyNetLib import dependencies

WINDOWS_CORE = r"C:\Users\Jane Doe\AppData\Local\slicer.org\Slicer 5.10.0\lib\Slicer-5.10\qt-scripted-modules\SneakyNetCore"


def slicer_pip_install(requirements, calls: list) -> None:
    """What Slicer 5.10's pip_install hands to ``python -m pip`` (its type checks included)."""
    if type(requirements) == str:  # noqa: E721 - Slicer checks the exact type
        args = ("install", *shlex.split(requirements))
    elif type(requirements) == list:  # noqa: E721
        args = ("install", *requirements)
    else:
        raise ValueError("pip_install requirement input must be string or list")
    calls.append(args)


def test_a_path_as_one_string_is_what_breaks_on_windows():
    """The reason for lists: the old one-string form loses the path."""
    calls = []
    slicer_pip_install(f"--no-deps {WINDOWS_CORE}", calls)
    assert WINDOWS_CORE not in calls[0]


def test_install_passes_pip_a_windows_path_with_spaces_as_one_argument(monkeypatch):
    calls = []
    missing = iter([["sneakynet", "tqdm", "psutil"], []])
    monkeypatch.setattr(dependencies, "missingDependencies", lambda: next(missing))
    monkeypatch.setattr(dependencies, "isImportable", lambda name: name not in ("tqdm", "psutil"))
    monkeypatch.setattr(dependencies, "coreSource", lambda moduleDir=None: WINDOWS_CORE)
    monkeypatch.setattr(dependencies, "pyTorchUtilsLogic", lambda: None)
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements: slicer_pip_install(requirements, calls),
                        raising=False)
    log = []
    assert dependencies.installDependencies("cpu", log=log.append) == []
    assert ("install", "--no-deps", WINDOWS_CORE) in calls
    helpers = [c for c in calls if "--no-deps" not in c]
    assert helpers == [("install", "tqdm>=4.66", "psutil>=5.9")]
    assert any(WINDOWS_CORE in line for line in log)


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_every_planned_step_is_a_list_of_whole_arguments(backend):
    steps = dependencies.installPlan(["torch", "SimpleITK", "sneakynet"], backend, coreLocation=WINDOWS_CORE)
    for step in steps:
        assert type(step.pipArguments) == list and all(isinstance(a, str) for a in step.pipArguments)  # noqa: E721
        assert all(a == a.strip() and (" " not in a or a == WINDOWS_CORE) for a in step.pipArguments), step
    assert ["--no-deps", WINDOWS_CORE] in [s.pipArguments for s in steps]


def test_pip_failure_becomes_a_message(monkeypatch):
    from SneakyNetLib.errors import DependencyError

    monkeypatch.setattr(dependencies, "missingDependencies", lambda: ["SimpleITK"])
    monkeypatch.setattr(dependencies, "pyTorchUtilsLogic", lambda: None)

    def failing(requirements):
        raise RuntimeError("pip exited with code 1")

    monkeypatch.setattr(slicer.util, "pip_install", failing, raising=False)
    with pytest.raises(DependencyError, match="Installing SimpleITK failed: pip exited with code 1"):
        dependencies.installDependencies("cpu", log=lambda text: None)


def test_every_core_dependency_slicer_lacks_is_installed_one_by_one():
    """The core goes into Slicer with --no-deps, so each of its requirements that Slicer does not ship
    (torch is installed separately) must be in CORE_EXTRAS, or the module fails on its first import."""
    import re
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "SneakyNetCore" / "pyproject.toml"
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}
    shipped_by_slicer = {"numpy", "vtk", "simpleitk", "torch"}
    installed = {dependencies.CORE_EXTRAS[k].split(">")[0].split("=")[0].lower() for k in dependencies.CORE_EXTRAS}
    assert names - shipped_by_slicer <= installed, sorted(names - shipped_by_slicer - installed)
