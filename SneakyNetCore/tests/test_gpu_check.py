"""The one-run GPU check (benchmarks/gpu_check.py) end to end on the CPU with tiny sizes.

On the lent GPU it measures issue 21's figures; here it must run every check and write every
field, so that the GPU slot is not spent finding a typo.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import gpu_check  # noqa: E402

TINY = ["--device", "cpu", "--shape", "32,40,40", "--preset", "tiny", "--patch", "32", "--infer-batches", "4",
        "--monai-shape", "32,40,40", "--train-shape", "40,40,40", "--batch-sizes", "1,2", "--workers", "1",
        "--warmup", "0", "--iters", "1", "--profile-steps", "1", "--lever-batch", "1", "--compile-backend", "eager",
        "--compile-modes", "default", "--peak-tflops", "1.0"]


def _run(out: Path, *extra: str) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--out", str(out), "--work", str(out),
                           *TINY, *extra], capture_output=True, text=True, env=env, timeout=500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in (out / "gpu_check.jsonl").read_text().splitlines()]


@pytest.mark.timeout(520)
def test_whole_script_runs_on_the_cpu_and_writes_every_field(tmp_path):
    rows = _run(tmp_path / "out")
    by_check: dict[str, list[dict]] = {}
    for row in rows:
        assert row.get("error") is None and "skipped" not in row, row
        missing = set(gpu_check.COMMON_FIELDS + gpu_check.FIELDS[row["check"]]) - set(row)
        assert not missing, (row["check"], missing)
        by_check.setdefault(row["check"], []).append(row)
    assert [r["config"] for r in by_check["infer"]] in (["baseline", "channels_last", "batch4"],
                                                         ["baseline", "channels_last", "batch4", "combined"])
    assert all(r["gpu"] == gpu_check.device_name("cpu") and r["device"] == "cpu" for r in rows)
    for r in by_check["infer"]:
        assert r["tiles"] > 0 and r["peak_rss_gb"] > 0.05 and r["peak_gpu_reserved_gb"] is None
        assert r["total_s"] == pytest.approx(r["read_s"] + r["predict_s"] + r["write_s"], rel=1e-6)
    assert by_check["nii_gz"][0]["read_ct_gz_s"] > 0 and by_check["nii_gz"][0]["ct_gz_mb"] > 0
    monai = by_check["monai"][0]
    assert monai["ours_s"] > 0
    assert monai["monai_error"] is None or "carry its wheel" in monai["monai_error"]
    if monai["monai_error"] is None:  # MONAI installed (the bench extra): both ran on the same volume
        # (a random 4-channel net has near-ties everywhere, so no agreement level is asserted here)
        assert 0 <= monai["agreement_pct"] <= 100 and monai["speed_ratio"] > 0 and monai["labels_used"] >= 1
    one, two = by_check["train"]
    assert (one["batch_size"], two["batch_size"]) == (1, 2) and one["status"] == two["status"] == "ok"
    assert two["flops_per_step"] == pytest.approx(2 * one["flops_per_step"], rel=0.01)  # FLOPs scale with the batch
    assert two["mfu_pct"] == pytest.approx(100 * two["achieved_tflops"] / 1.0)
    assert two["loader_wait_s"] >= 0 and two["step_s"] >= two["compute_s"] > 0
    profile = by_check["profile"][0]  # MFU is far below 40 % on a CPU with a 1 TFLOP/s "peak"
    assert profile["top_ops"] and (tmp_path / "out" / profile["table_file"]).read_text().count("aten::") >= 5
    assert [r["mode"] for r in by_check["levers"]] == ["eager", "channels_last", "compile:default"]
    assert all(r["error"] is None and r["tiles_per_s"] > 0 for r in by_check["levers"])


def test_spent_budget_skips_the_checks_left(tmp_path):
    rows = _run(tmp_path / "out", "--checks", "monai,train", "--budget-s", "0")
    assert [(r["check"], "time budget" in r["skipped"]) for r in rows] == [("monai", True), ("train", True)]


def test_peak_table_knows_the_lent_gpus_and_refuses_to_guess():
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3")[0] == 989.5
    assert gpu_check.peak_tflops("NVIDIA H200")[0] == 989.5
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe")[0] == 756.5
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert gpu_check.peak_tflops("NVIDIA H200 NVL") == (None, "unknown device 'NVIDIA H200 NVL': pass --peak-tflops")
    assert gpu_check.peak_tflops("anything", 123.0) == (123.0, "--peak-tflops")
    assert all("datasheet" in source for _name, _peak, source in gpu_check.PEAK_BF16_TFLOPS)
