"""Kill during a checkpoint write, resume, and end bit-identical to an uninterrupted run.

The runs draw from every global RNG (torch, numpy, Python) in each optimizer step and let the
torch draw perturb the gradients, so a resume that does not restore the RNG states ends with
other weights and other RNG states, and this test fails.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sneakynet.io import TEMP_MARK
from train_helpers import make_tiny_dataset

ITERATIONS = 12
KILL_AT = 8  # killed while checkpoint 8 is being written; checkpoint 4 is the newest complete one

WRAPPER = """
import os, random, signal, sys
import numpy as np, torch
import sneakynet.checkpoint as ckpt
from sneakynet.cli import main

step = torch.optim.Adam.step
def noisy_step(self, *args, **kwargs):  # every global RNG now matters for the result
    scale = 1e-4 * (1.0 + float(np.random.rand()) + random.random())
    for group in self.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.add_(torch.randn_like(p.grad) * scale)
    return step(self, *args, **kwargs)
torch.optim.Adam.step = noisy_step

kill_at = os.environ.get("KILL_AT_CHECKPOINT")
verify = ckpt.verify_safetensors
def verify_then_die(path, tensors):
    verify(path, tensors)
    if kill_at and f"iter_{int(kill_at):07d}" in path.parent.name:
        os.kill(os.getpid(), signal.SIGKILL)  # tensors written, metadata not yet, folder not renamed
ckpt.verify_safetensors = verify_then_die
sys.exit(main(sys.argv[1:]))
"""


def _cmd(wrapper: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(wrapper), "train", "--dataset", str(dataset), "--out", str(out), "--patch", "32",
            "--widths", "4,4,8,8,16", "--spacing", "4", "--iterations", str(ITERATIONS), "--batch-size", "2",
            "--ckpt-every", "4", "--val-every", "0", "--val-mode", "patches", "--val-patches", "2",
            "--log-every", "1", "--workers", "0", "--device", "cpu", "--deterministic", "--threads", "1",
            "--seed", "5", "--no-progress", "--no-test-eval", *extra]


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.timeout(400)
def test_kill_during_checkpoint_write_then_resume_is_bit_exact_with_rng_restored(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "data")
    wrapper = tmp_path / "train_wrapper.py"
    wrapper.write_text(WRAPPER)
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = subprocess.Popen(_cmd(wrapper, dataset, ref_dir), env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    victim = subprocess.run(_cmd(wrapper, dataset, run_dir), env=_env(KILL_AT_CHECKPOINT=str(KILL_AT)),
                            capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    ckpts = run_dir / "checkpoints"
    half_written = [p.name for p in ckpts.iterdir() if TEMP_MARK in p.name]
    assert half_written and not (ckpts / f"iter_{KILL_AT:07d}").exists(), sorted(p.name for p in ckpts.iterdir())

    resumed = subprocess.run(_cmd(wrapper, dataset, run_dir, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"at iteration 4 of {ITERATIONS}" in resumed.stdout
    assert not [p for p in ckpts.iterdir() if TEMP_MARK in p.name], "the killed write's temporary folder stayed"
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out.decode()

    final = f"iter_{ITERATIONS:07d}"
    a = load_file(str(ref_dir / "checkpoints" / final / "state.safetensors"))
    b = load_file(str(ckpts / final / "state.safetensors"))
    assert a.keys() == b.keys() and "rng/torch" in a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after the resume"
    meta_a = json.loads((ref_dir / "checkpoints" / final / "state.json").read_text())
    meta_b = json.loads((ckpts / final / "state.json").read_text())
    assert meta_a["rng"] == meta_b["rng"], "numpy/Python RNG states differ after the resume"
