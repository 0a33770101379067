"""The GUI's prediction path: a worker process (Scripts/segment_worker.py) under slicer-core.

Progress arrives while it runs, its labels equal an in-process prediction, Cancel kills it within
a second, a worker that is killed or fails is reported as a clear error with the scene untouched,
and no process is left behind - not even when the parent (Slicer) itself dies.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import SimpleITK as sitk
import slicer

from SneakyNetLib import volumes, worker
from SneakyNetLib.errors import ModelError, SegmentationCancelled, SneakyNetError
from SneakyNetLib.logic import BoneSegmentationLogic, SegmentationOptions

REPO = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="kills with POSIX signals")


@pytest.fixture
def scene_with_ct(phantom_ct):
    ct, _ = phantom_ct
    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom CT")
    volumes.updateVolumeNodeFromImage(volume, ct)
    return scene, logic, volume


def wait_until(job, condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not condition(status := job.poll()):
        assert not status.finished, f"the job ended early: {status}"
        assert time.monotonic() < deadline, f"timed out waiting; last status {status}"
        time.sleep(0.02)
    return status


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _is_worker_candidate(p: psutil.Process) -> bool:
    """A live child that a job could have left: not multiprocessing's resource tracker, which the test
    process itself keeps once any test used multiprocessing (torch DDP tests do)."""
    try:
        return not process_gone(p.pid) and "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
    except psutil.NoSuchProcess:
        return False


def assert_no_child_processes() -> None:
    children = [p for p in psutil.Process().children(recursive=True) if _is_worker_candidate(p)]
    assert not children, f"processes left behind: {[(p.pid, p.cmdline()) for p in children]}"


def test_worker_streams_progress_and_predicts_what_the_in_process_path_does(scene_with_ct, model_bundle):
    scene, logic, volume = scene_with_ct
    options = SegmentationOptions(bundle=model_bundle, device="cpu", fast=True, showIn3D=False)
    reported = []
    job = logic.startSegmentation(volume, options, onProgress=lambda f, m: reported.append((f, m)))
    assert isinstance(job, worker.WorkerProcessJob) and job.process.pid != os.getpid()
    messages = set()
    while not (status := job.poll()).finished:
        messages.add(status.message)
        time.sleep(0.02)
    assert status.state == "done", status
    fractions = [f for f, _ in reported]
    assert fractions == sorted(fractions) and len(set(fractions)) >= 3, reported
    assert any(m.startswith("tile ") for _, m in reported) and "loading the model" in messages
    result = logic.finishSegmentation(job)
    assert result.device == "cpu" and result.labelIds
    in_process = BoneSegmentationLogic(scene, useWorkerProcess=False).segment(volume, options)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(result.labels),
                                  sitk.GetArrayViewFromImage(in_process.labels))
    assert_no_child_processes()


def test_cancel_kills_the_worker_within_a_second_and_leaves_nothing(scene_with_ct, model_bundle):
    scene, logic, volume = scene_with_ct
    job = logic.startSegmentation(volume, SegmentationOptions(bundle=model_bundle, device="cpu"))
    wait_until(job, lambda s: s.message == "loading the model")  # torch is loading: the worker is busy
    folder, pid = job._folder, job.process.pid
    assert job.process.poll() is None
    before = scene.GetNumberOfNodes()
    start = time.monotonic()
    job.cancel()
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert process_gone(pid) and job.poll().state == "cancelled"
    with pytest.raises(SegmentationCancelled):
        logic.finishSegmentation(job)
    assert scene.GetNumberOfNodes() == before and not folder.exists()
    assert_no_child_processes()


@posix_only
def test_a_killed_worker_is_reported_and_the_scene_is_untouched(scene_with_ct, model_bundle):
    scene, logic, volume = scene_with_ct
    job = logic.startSegmentation(volume, SegmentationOptions(bundle=model_bundle, device="cpu"))
    wait_until(job, lambda s: s.message == "loading the model")
    before = scene.GetNumberOfNodes()
    os.kill(job.process.pid, signal.SIGKILL)  # what the out-of-memory killer does
    status = job.wait(30)
    assert status.state == "failed"
    assert "stopped unexpectedly" in status.message and "SIGKILL" in status.message
    assert "out of memory" in status.message and "Slicer and the scene are unaffected" in status.message
    with pytest.raises(SneakyNetError, match="stopped unexpectedly"):
        logic.finishSegmentation(job)
    assert scene.GetNumberOfNodes() == before
    assert_no_child_processes()


def test_a_worker_that_crashes_is_reported_with_its_last_words(phantom_ct):
    ct, _ = phantom_ct
    crash = [sys.executable, "-c",
             "import sys; print('Fatal Python error: Segmentation fault', file=sys.stderr, flush=True); sys.exit(134)"]
    job = worker.WorkerProcessJob(ct, [], command=crash).start()
    status = job.wait(60)
    assert status.state == "failed" and job.result is None
    assert "exited with code 134" in status.message and "Fatal Python error: Segmentation fault" in status.message
    assert_no_child_processes()


def test_a_model_error_in_the_worker_arrives_as_a_model_error(scene_with_ct, model_bundle, tmp_path):
    """Weights that do not match the sha256 in config.json are found by the worker, not the GUI check."""
    import shutil

    from sneakynet.bundle import demo_bundle_path

    source = Path(model_bundle) if model_bundle else demo_bundle_path()
    broken = tmp_path / "broken_bundle"
    shutil.copytree(source, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64] + bytes(64))
    scene, logic, volume = scene_with_ct
    job = logic.startSegmentation(volume, SegmentationOptions(bundle=str(broken), device="cpu"))
    status = job.wait(120)
    assert status.state == "failed" and isinstance(job.error, ModelError), status
    assert "model.safetensors" in str(job.error) or "sha256" in str(job.error).lower()
    assert "Traceback" not in str(job.error)


def test_worker_script_refuses_a_missing_input_with_one_message(tmp_path):
    result = subprocess.run([sys.executable, str(worker.WORKER_SCRIPT), "--input", str(tmp_path / "missing.nrrd"),
                             "--output", str(tmp_path / "labels.nrrd")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    fields = worker.decodeMessage(result.stdout.strip().splitlines()[-1])
    assert fields["kind"] == "InputVolumeError" and "missing.nrrd" in fields["error"]
    assert "Traceback" not in result.stderr and not (tmp_path / "labels.nrrd").exists()


PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import SimpleITK as sitk
    from SneakyNetLib.worker import WorkerProcessJob
    job = WorkerProcessJob(sitk.ReadImage(sys.argv[2]), sys.argv[3:]).start()
    while job.poll().message != "loading the model":  # the worker is busy
        time.sleep(0.02)
    print(job.process.pid, flush=True)
    time.sleep(120)
""")


@posix_only
def test_a_worker_whose_parent_dies_stops_by_itself(phantom_ct, model_bundle, tmp_path):
    """Slicer crashes mid-segmentation: the worker notices within a second and exits (no orphan)."""
    ct, _ = phantom_ct
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    model = ["--model", model_bundle] if model_bundle else []
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(REPO / "SlicerSneakyNet"), str(tmp_path / "ct.nrrd"),
                               *model, "--device", "cpu"], stdout=subprocess.PIPE, text=True)
    try:
        workerPid = int(parent.stdout.readline())
        assert not process_gone(workerPid)
        parent.kill()  # SIGKILL: no clean-up code of the parent runs
        parent.wait(10)
        deadline = time.monotonic() + 3.0
        while not process_gone(workerPid):
            assert time.monotonic() < deadline, "the worker kept running after its parent died"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(10)
        if not process_gone(workerPid):
            os.kill(workerPid, signal.SIGKILL)


def test_protocol_lines_round_trip_and_log_lines_are_not_messages():
    line = worker.encodeMessage(progress=0.25, message="tile 3/12")
    assert worker.decodeMessage(line) == {"progress": 0.25, "message": "tile 3/12"}
    assert worker.decodeMessage("sneakynet: loading model") is None
    assert worker.decodeMessage(worker.PROTOCOL_PREFIX + "{not json") is None
    assert isinstance(worker.errorFromWorker("ModelError", "x"), ModelError)
    assert type(worker.errorFromWorker("SystemExit", "x")) is SneakyNetError  # only the module's own classes


@pytest.mark.parametrize("fast, postprocess", [(False, "anatomy"), (True, "none"), (False, "full")])
def test_the_worker_parser_accepts_every_argument_the_logic_sends(fast, postprocess, tmp_path):
    """A SegmentationOptions field passed to the worker must exist in the worker's parser too."""
    import importlib.util
    from types import SimpleNamespace

    from sneakynet.postprocess import PRESETS

    spec = importlib.util.spec_from_file_location("segment_worker_under_test", worker.WORKER_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    options = SegmentationOptions(device="cpu", fast=fast, overlap=0.25, postprocess=postprocess)
    arguments = BoneSegmentationLogic.workerArguments(SimpleNamespace(path=tmp_path / "my bundle"), "cuda", options)
    parsed = script.buildParser().parse_args(arguments + ["--input", "a.nrrd", "--output", "b.nrrd"])
    assert (parsed.model, parsed.device, parsed.overlap, parsed.fast) == (str(tmp_path / "my bundle"), "cuda", 0.25, fast)
    assert parsed.postprocess == postprocess
    choices = next(a.choices for a in script.buildParser()._actions if a.dest == "postprocess")
    assert list(choices) == list(PRESETS), "the worker offers exactly the core's presets"
    assert SegmentationOptions().postprocess == "anatomy", "the module cleans up with anatomy by default"
