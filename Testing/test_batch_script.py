"""The headless batch script, run as a subprocess under slicer-core (as CI and users run it).

Inside Slicer it runs as ``Slicer --no-main-window --python-script batch_segment.py ...``; here
plain Python with slicer-core exercises the same logic and the same storage nodes.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from conftest import make_phantom
from sneakynet.labels import load_label_table

REPO = Path(__file__).resolve().parents[1]
BATCH = REPO / "SlicerSneakyNet" / "Scripts" / "batch_segment.py"


def run_batch(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BATCH), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def model_args(model_bundle: str | None) -> list[str]:
    return [] if model_bundle is None else ["--model", model_bundle]


@pytest.fixture(scope="module")
def case_folder(tmp_path_factory) -> Path:
    """Two small phantom CTs (field of view cut to 30 %, about 15 bones each), NIfTI and NRRD."""
    folder = tmp_path_factory.mktemp("batch_in")
    for seed, suffix in ((1, ".nii.gz"), (2, ".nrrd")):
        ct, _ = make_phantom(seed, fov_scale=0.3)
        sitk.WriteImage(ct, str(folder / f"phantom_{seed:03d}{suffix}"))
    return folder


def test_batch_segments_every_case_skips_finished_ones_and_reports_bad_ones(case_folder, model_bundle, tmp_path):
    out = tmp_path / "out"
    args = ["--input", case_folder, "--output", out, "--device", "cpu", "--fast", "--export-meshes",
            "--mesh-format", "stl", "--screenshot", *model_args(model_bundle)]
    first = run_batch(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 segmented, 0 skipped" in first.stdout and "Traceback" not in first.stderr
    table = load_label_table()
    from SneakyNetLib.logic import BoneSegmentationLogic

    logic = BoneSegmentationLogic(slicer.vtkMRMLScene())
    for seed, suffix in ((1, ".nii.gz"), (2, ".nrrd")):
        name = f"phantom_{seed:03d}"
        segPath = out / f"{name}.seg.nrrd"
        assert segPath.is_file()
        node = logic.loadSegmentation(segPath)
        segmentation = node.GetSegmentation()
        ids = list(segmentation.GetSegmentIDs())
        assert ids and all(table.by_name(i).display == segmentation.GetSegment(i).GetName() for i in ids)
        labels = logic.labelImage(node)
        ct = sitk.ReadImage(str(case_folder / f"{name}{suffix}"))
        assert labels.GetSize() == ct.GetSize()
        np.testing.assert_allclose(labels.GetOrigin(), ct.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(labels.GetDirection(), ct.GetDirection(), atol=1e-5)
        stls = sorted(p.stem for p in (out / f"{name}_meshes").glob("*.stl"))
        assert stls == sorted(ids), "one STL per bone segment"
        assert (out / f"{name}_3d.png").stat().st_size > 1000
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"

    # run again with a broken file added: finished cases are skipped, the bad one is reported
    folder = tmp_path / "in"
    folder.mkdir()
    for p in case_folder.iterdir():
        (folder / p.name).symlink_to(p)
    (folder / "broken.nrrd").write_text("this is not an image\n")
    args[1] = folder
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.seg.nrrd")}
    second = run_batch(*args)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "0 segmented, 2 skipped (already done), 1 failed" in second.stdout
    assert "broken.nrrd: error:" in second.stderr and "Traceback" not in second.stderr
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("*.seg.nrrd")}
    assert not (out / "broken.seg.nrrd").exists() and not (out / "broken_meshes").exists()


@pytest.mark.parametrize("problem", ["missing input", "empty input", "missing model"])
def test_batch_refuses_bad_arguments_with_a_message(problem, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    args = ["--input", folder, "--output", tmp_path / "out", "--device", "cpu"]
    if problem == "missing input":
        args[1] = tmp_path / "nowhere"
        expected = "input folder does not exist"
    elif problem == "empty input":
        expected = "no CT files"
    else:
        (folder / "ct.nrrd").write_text("placeholder")
        args += ["--model", tmp_path / "no_such_bundle"]
        expected = "does not exist"
    result = run_batch(*args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
