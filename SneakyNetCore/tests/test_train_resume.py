"""Kill test: a training run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from train_helpers import make_tiny_dataset

ITERATIONS = 12


def _cmd(dataset, out, workers, *extra):
    return [sys.executable, "-m", "sneakynet.cli", "train", "--dataset", str(dataset), "--out", str(out),
            "--patch", "32", "--widths", "4,4,8,8,16", "--spacing", "4", "--iterations", str(ITERATIONS),
            "--batch-size", "2", "--ckpt-every", "4", "--val-every", "4", "--val-mode", "patches",
            "--val-patches", "4", "--log-every", "1", "--workers", str(workers), "--device", "cpu",
            "--deterministic", "--threads", "1", "--seed", "3", "--no-progress", *extra]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _tensors(path):
    return load_file(str(path))


@pytest.mark.timeout(240)
def test_sigkill_then_resume_is_bit_exact(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "data")
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    # reference without workers, killed run with one DataLoader worker: the sample stream must not care
    ref = subprocess.Popen(_cmd(dataset, ref_dir, 0), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim = subprocess.Popen(_cmd(dataset, run_dir, 1), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    first = run_dir / "checkpoints" / "iter_0000004"
    deadline = time.monotonic() + 150
    while not first.is_dir() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed:\n" + victim.stdout.read().decode()
    assert first.is_dir(), "no checkpoint appeared in time"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (run_dir / "bundle").exists(), "killed too late: the run had already finished"
    done_before_kill = [json.loads(line)["iteration"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                        if '"kind": "train"' in line]

    resumed = subprocess.run(_cmd(dataset, run_dir, 1, "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=150)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    out, _ = ref.communicate(timeout=150)
    assert ref.returncode == 0, out.decode()

    # final bundles: every tensor bit-identical
    a = _tensors(ref_dir / "bundle" / "model.safetensors")
    b = _tensors(run_dir / "bundle" / "model.safetensors")
    assert a.keys() == b.keys() and len(a) > 50
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    # the whole final checkpoint too (Adam moments, RNG states)
    ca = _tensors(ref_dir / "checkpoints" / f"iter_{ITERATIONS:07d}" / "state.safetensors")
    cb = _tensors(run_dir / "checkpoints" / f"iter_{ITERATIONS:07d}" / "state.safetensors")
    assert ca.keys() == cb.keys() and any(k.startswith("optim/") for k in ca)
    for k in ca:
        assert torch.equal(ca[k], cb[k]), k
    # the logged losses agree line by line, with no duplicated iterations after the resume
    def losses(d):
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        return [(r["iteration"], r["loss"]) for r in rows if r["kind"] == "train"]

    assert losses(ref_dir) == losses(run_dir)
    assert [i for i, _ in losses(run_dir)] == list(range(1, ITERATIONS + 1))
    assert 4 <= max(done_before_kill) < ITERATIONS
    # no temporary folders of interrupted writes are left
    leftovers = [p for p in run_dir.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not leftovers
    # the best bundle was chosen identically
    assert json.loads((ref_dir / "summary.json").read_text())["best"] == \
        json.loads((run_dir / "summary.json").read_text())["best"]
