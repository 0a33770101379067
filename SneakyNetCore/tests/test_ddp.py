"""DistributedDataParallel under torchrun (gloo on CPU): identical weights on both ranks, loss goes down."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from sneakynet.bundle import load_bundle
from sneakynet.distributed import weights_digest
from train_helpers import make_tiny_dataset

ITERATIONS = 8


@pytest.mark.timeout(200)
def test_torchrun_two_ranks_on_cpu(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "data")
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sneakynet.cli", "train", "--dataset", str(dataset), "--out", str(out),
           "--preset", "lite", "--variant", "D", "--context", "1", "--patch", "32", "--spacing", "4",
           "--iterations", str(ITERATIONS), "--batch-size", "1", "--lr", "1e-2", "--overfit-one-batch",
           "--no-augment", "--val-every", "0", "--val-mode", "patches", "--val-patches", "2",
           "--ckpt-every", "4", "--log-every", "1", "--workers", "0", "--device", "cpu", "--threads", "1",
           "--no-progress"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["weights_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    # the bundle rank 0 wrote holds exactly those weights, and training moved them
    model, info = load_bundle(out / "bundle")
    assert weights_digest(model) == digests[0]
    assert info.training["world_size"] == 2 and info.config.preset == "lite"
    torch.manual_seed(0)  # the initial weights: same seed as the run
    from sneakynet.models import build_network
    assert weights_digest(build_network(info.config)) != digests[0]
    # overfitting one fixed batch: the loss falls clearly
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == ITERATIONS
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.95 * losses[0], losses
    # only rank 0 wrote: one checkpoint series, no per-rank duplicates
    ckpt = load_file(str(out / "checkpoints" / f"iter_{ITERATIONS:07d}" / "state.safetensors"))
    assert any(k.startswith("optim/") for k in ckpt)
    assert json.loads((out / "options.json").read_text())["world_size"] == 2
