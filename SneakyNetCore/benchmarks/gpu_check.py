"""Issue 21's GPU figures in one run (< 8 min on an H100/H200): inference end to end, MONAI, training MFU.

Checks, each in a fresh child process (so each peak host RSS is its own), each writing JSON lines to
``OUT/gpu_check.jsonl`` (with ``torch.cuda.get_device_name()``) and a line on stdout:

``infer``   paper D 64/128 (random weights, head bias set so many classes win, as
            ``bench_inference.py`` does) on a synthetic 600x512x512 CT at 1 mm: read the uncompressed
            NIfTI (in the page cache) -> ``Predictor.predict_image`` -> label map written (.nii): the
            Predictor's defaults first (the baseline), then one lever at a time (channels-last 3D,
            larger tile batches), then the levers that helped, together. Peak GPU memory
            (``max_memory_allocated``/``reserved``) and peak host RSS (``ru_maxrss``); targets 5 s,
            6 GB, 3 GB. The baseline also times reading the CT ``.nii.gz`` and writing the labels
            ``.nii.gz`` (``nii_gz`` line).
``monai``   160x256x256: our Predictor vs MONAI's ``sliding_window_inference``, same network,
            overlap, Gaussian weights and tile batch (``bench_inference.py``'s runners); speed ratio
            and label agreement (target 2x, 99.9 %).
``train``   D 64/128 training steps at batch sizes 2, 4, 8, 16 fed by the patch sampler's DataLoader
            workers: step time, loader wait per step, FLOPs (``torch.utils.flop_counter``), model
            FLOP utilisation against the GPU's dense bf16 peak; a ``torch.profiler`` table of the
            top ops at the best batch size when MFU < 40 % (``OUT/profile_train.txt``).
``levers``  the tile forward pass alone on the fixed tile shape: eager, channels-last,
            ``torch.compile`` (``reduce-overhead`` = CUDA graphs); levers the Predictor cannot
            switch on yet, measured so one knows what adding them would buy.

On the lent GPU (no internet there; SimpleITK, nibabel and MONAI are carried, see docs/benchmarks.md):
    bash SneakyNetCore/benchmarks/gpu_check.sh "$OUT"
On the CPU with tiny sizes (what tests/test_gpu_check.py runs):
    python benchmarks/gpu_check.py --out /tmp/g --device cpu --shape 40,48,48 --preset lite --patch 16 ...
Every size is an option; ``--budget-s`` skips the checks left when the time is spent.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s: (name fragment of get_device_name(), peak, source)
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.5, "NVIDIA H100 Tensor Core GPU datasheet: H100 PCIe BF16 1,513 TFLOPS with sparsity, "
                         "dense is half"),
    ("H100", 989.5, "NVIDIA H100 Tensor Core GPU datasheet: H100 SXM BF16 1,979 TFLOPS with sparsity, dense is half"),
    ("H200", 989.5, "NVIDIA H200 Tensor Core GPU datasheet: H200 SXM BF16 1,979 TFLOPS with sparsity, dense is half"),
    ("A100", 312.0, "NVIDIA A100 Tensor Core GPU datasheet: BF16 312 TFLOPS dense (624 with sparsity)"),
]
TARGETS = {"total_s": 5.0, "peak_gpu_gb": 6.0, "peak_rss_gb": 3.0, "monai_speed_ratio": 2.0,
           "monai_agreement_pct": 99.9, "mfu_pct": 40.0}
# the fields every JSON line of a check carries (tests/test_gpu_check.py checks them)
COMMON_FIELDS = ["check", "device", "gpu", "torch", "date"]
FIELDS = {
    "infer": ["config", "shape", "spacing_mm", "preset", "patch_size", "batch_size", "channels_last", "precision",
              "tiles", "warmup_s", "read_s", "predict_s", "write_s", "total_s", "peak_gpu_allocated_gb",
              "peak_gpu_reserved_gb", "peak_rss_gb", "targets", "meets_targets"],
    "nii_gz": ["shape", "read_ct_gz_s", "write_labels_gz_s", "ct_gz_mb", "labels_gz_mb"],
    "monai": ["shape", "batch_size", "channels_last", "ours_s", "monai_s", "monai_tuned_s", "speed_ratio",
              "speed_ratio_tuned", "agreement_pct", "bone_agreement_pct", "labels_used", "meets_targets",
              "monai_error"],
    "train": ["batch_size", "status", "step_s", "compute_s", "loader_wait_s", "workers", "flops_per_step",
              "achieved_tflops", "peak_tflops", "peak_source", "mfu_pct", "peak_gpu_allocated_gb"],
    "profile": ["batch_size", "mfu_pct", "sort_by", "top_ops", "table_file"],
    "levers": ["mode", "batch_size", "patch_size", "compile_s", "ms_per_batch", "tiles_per_s", "error"],
}


def peak_tflops(name: str, override: float | None = None) -> tuple[float | None, str]:
    """Dense bf16 peak of the device named ``name`` and where the figure comes from."""
    if override is not None:
        return override, "--peak-tflops"
    if "NVL" not in name:  # NVL boards have other clocks and power: not in this table
        for fragment, peak, source in PEAK_BF16_TFLOPS:
            if fragment in name:
                return peak, source
    return None, f"unknown device {name!r}: pass --peak-tflops"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def gpu_peaks(device: str) -> tuple[float | None, float | None]:
    """(max allocated, max reserved) GPU memory in GB since the last reset; None on the CPU."""
    if not device.startswith("cuda"):
        return None, None
    return torch.cuda.max_memory_allocated() / 1e9, torch.cuda.max_memory_reserved() / 1e9


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


# ---------------------------------------------------------------------------------- synthetic data
def synthetic_ct(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(HU int16, labels uint8) on a (z, y, x) grid: an elliptic soft-tissue body in air, three bony
    rods whose labels change along z (36 labels, vertebra-like), noise on every 7th slice only (so
    gzip stays quick)."""
    z, y, x = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.35 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 < 1
    ct = np.empty(shape, np.int16)
    labels = np.zeros(shape, np.uint8)
    slab = np.where(body, 40, -1000).astype(np.int16)
    rods = [((yy - 0.6 * y) ** 2 + (xx - cx * x) ** 2) < (0.03 * x) ** 2 for cx in (0.3, 0.5, 0.7)]
    for i in range(z):
        ct[i] = slab
        if i % 7 == 0:
            ct[i] += rng.normal(0, 15, size=slab.shape).astype(np.int16) * body
        for j, rod in enumerate(rods):  # three rods, their label changing along z (vertebra-like)
            ct[i][rod] = 900
            labels[i][rod] = 1 + (3 * (i * 12 // max(z, 1)) + j) % 60
    return ct, labels


def normalized(ct: np.ndarray) -> np.ndarray:
    from sneakynet.intensity import normalize_ct

    return normalize_ct(ct.astype(np.float32))


def centre_crop(volume: np.ndarray, size: int) -> np.ndarray:
    """A cube of ``size`` (clipped to the volume) around its centre."""
    sl = tuple(slice(max(0, n // 2 - size // 2), max(0, n // 2 - size // 2) + size) for n in volume.shape)
    return np.ascontiguousarray(volume[sl])


def net_config(preset: str, patch: int):
    """D K=1 configuration: a ``sneakynet.models`` preset, or ``tiny`` (4 channels a level, CPU tests)."""
    from sneakynet.models import NetConfig, preset as named

    return NetConfig("D", 1, patch, widths=(4, 4, 4, 4, 4)) if preset == "tiny" else named(preset, "D", 1, patch)


def network(preset: str, patch: int, centre: np.ndarray):
    """D K=1 network as ``bench_inference.make_model`` builds it (``lite``: the demo weights,
    phantom-trained, not for clinical use; ``paper``, ``tiny``: random weights, head bias set from
    ``centre`` so that many classes win)."""
    sys.path.insert(0, str(HERE))
    import bench_inference

    name = f"gpu-check-{preset}-{patch}"
    bench_inference.CASES[name] = (preset, "D", 1, patch, tuple(centre.shape), 1.0)  # ad hoc case
    return bench_inference.make_model(name, centre)


# ---------------------------------------------------------------------------------- child: inference
def child_infer(spec: dict) -> list[dict]:
    """One Predictor configuration end to end: read the .nii, predict, write the label map."""
    from sneakynet.infer import Predictor
    from sneakynet.io import read_image, write_image

    dev, work = spec["device"], Path(spec["work"])
    model = network(spec["preset"], spec["patch"], np.load(work / "centre.npy"))
    predictor = Predictor.from_model(model, (spec["spacing"],) * 3, device=dev, log=lambda m: None, **spec["options"])
    t = time.perf_counter()
    predictor.predict_array(np.load(work / "warm.npy"))  # cuDNN picks its kernels for the tile shape
    sync(dev)
    warmup = time.perf_counter() - t
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    image = read_image(work / "ct.nii")
    t1 = time.perf_counter()
    prediction = predictor.segment(image)
    sync(dev)
    t2 = time.perf_counter()
    del image
    write_image(prediction.labels, work / f"labels_{spec['config']}.nii")
    t3 = time.perf_counter()
    allocated, reserved = gpu_peaks(dev)
    stats = prediction.stats
    row = {"check": "infer", "config": spec["config"], "shape": spec["shape"], "spacing_mm": spec["spacing"],
           "preset": spec["preset"], "patch_size": spec["patch"], "batch_size": stats.batch_size,
           "channels_last": stats.channels_last, "precision": stats.precision, "tiles": stats.tiles,
           "warmup_s": warmup, "read_s": t1 - t0, "predict_s": t2 - t1, "write_s": t3 - t2, "total_s": t3 - t0,
           "peak_gpu_allocated_gb": allocated, "peak_gpu_reserved_gb": reserved, "peak_rss_gb": peak_rss_gb(),
           "targets": {k: TARGETS[k] for k in ("total_s", "peak_gpu_gb", "peak_rss_gb")}}
    row["meets_targets"] = (row["total_s"] <= TARGETS["total_s"] and row["peak_rss_gb"] <= TARGETS["peak_rss_gb"]
                            and (reserved is None or reserved <= TARGETS["peak_gpu_gb"]))
    rows = [row]
    if spec.get("gz"):
        rows.append(_nii_gz(spec, work, prediction.labels))
    return rows


def _nii_gz(spec: dict, work: Path, labels) -> dict:
    """Reading the CT and writing the labels as .nii.gz (gzip alone takes seconds at this size)."""
    from sneakynet.io import read_image, write_image

    t0 = time.perf_counter()
    read_image(work / "ct.nii.gz")
    t1 = time.perf_counter()
    write_image(labels, work / "labels.nii.gz")
    t2 = time.perf_counter()
    return {"check": "nii_gz", "shape": spec["shape"], "read_ct_gz_s": t1 - t0, "write_labels_gz_s": t2 - t1,
            "ct_gz_mb": (work / "ct.nii.gz").stat().st_size / 1e6,
            "labels_gz_mb": (work / "labels.nii.gz").stat().st_size / 1e6}


# ---------------------------------------------------------------------------------- child: MONAI
def child_monai(spec: dict) -> list[dict]:
    """Ours vs MONAI on one volume with ``bench_inference.py``'s runners (same network and weights)."""
    sys.path.insert(0, str(HERE))
    import bench_inference as bench

    work, case = Path(spec["work"]), f"gpu-check-monai-{spec['preset']}"
    bench.CASES[case] = (spec["preset"], "D", 1, spec["patch"], tuple(spec["shape"]), 1.0)  # ad hoc case
    ns = argparse.Namespace(case=case, device=spec["device"], overlap=0.5, batch=spec["batch_size"],
                            precision="auto", channels_last="on" if spec["channels_last"] else "off", runner="ours")
    ours = bench.run_ours(ns, work / "ours.npy")
    row = {"check": "monai", "shape": spec["shape"], "batch_size": spec["batch_size"],
           "channels_last": spec["channels_last"], "ours_s": ours["seconds"], "monai_s": None, "monai_tuned_s": None,
           "speed_ratio": None, "speed_ratio_tuned": None, "agreement_pct": None, "bone_agreement_pct": None,
           "labels_used": None, "meets_targets": None, "monai_error": None}
    try:
        import monai  # noqa: F401  (the optional ``bench`` extra)
    except ImportError as exc:
        row["monai_error"] = f"MONAI not importable ({exc}); carry its wheel (docs/benchmarks.md, GPU section)"
        return [row]
    for runner, key in (("monai", "monai_s"), ("monai-tuned", "monai_tuned_s")):
        ns.runner = runner
        row[key] = bench.run_monai(ns, work / f"{runner}.npy")["seconds"]
    a, b = np.load(work / "ours.npy"), np.load(work / "monai.npy")
    bone = (a > 0) | (b > 0)
    row.update(speed_ratio=row["monai_s"] / row["ours_s"], speed_ratio_tuned=row["monai_tuned_s"] / row["ours_s"],
               agreement_pct=float((a == b).mean() * 100), labels_used=int(len(np.unique(a))),
               bone_agreement_pct=float((a[bone] == b[bone]).mean() * 100) if bone.any() else None)
    row["meets_targets"] = (row["speed_ratio"] >= TARGETS["monai_speed_ratio"]
                            and row["agreement_pct"] >= TARGETS["monai_agreement_pct"])
    return [row]


# ---------------------------------------------------------------------------------- child: tile levers
def child_levers(spec: dict) -> list[dict]:
    """The tile forward pass (what the Predictor runs per batch) eager, channels-last and compiled."""
    from sneakynet.infer import fold_batchnorm, resolve_precision

    dev, S, B = torch.device(spec["device"]), spec["patch"], spec["batch_size"]
    base = network(spec["preset"], S, np.load(Path(spec["work"]) / "centre.npy"))
    dtype = resolve_precision("auto", dev)
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(B, 1, S, S, S, generator=g).to(dev) for _ in range(2)]
    variants = [("eager", False, None), ("channels_last", True, None)]
    variants += [(f"compile:{m}", spec["channels_last"], m) for m in spec["compile_modes"]]
    rows = []
    for name, channels_last, mode in variants:
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        model = fold_batchnorm(copy.deepcopy(base)).to(dev, memory_format=fmt).eval()
        inputs = [t.contiguous(memory_format=fmt) for t in x]
        row = {"check": "levers", "mode": name, "batch_size": B, "patch_size": S, "channels_last": channels_last,
               "compile_s": None, "ms_per_batch": None, "tiles_per_s": None, "error": None}
        try:
            fn = model.forward_features
            if mode is not None:
                backend = spec["compile_backend"]
                fn = torch.compile(fn, backend=backend, mode=mode if backend == "inductor" else None)
            row.update(_time_forward(fn, inputs, dev, dtype, spec["warmup"], spec["iters"], compiled=mode is not None))
            row["tiles_per_s"] = B / (row["ms_per_batch"] / 1000)
        except Exception as exc:  # a lever that fails on this machine is a finding, not the end of the run
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        rows.append(row)
    return rows


def _time_forward(fn, inputs: list, dev: torch.device, dtype: torch.dtype, warmup: int, iters: int,
                  compiled: bool) -> dict:
    """Median milliseconds of ``fn(target, [context])`` after the first call and ``warmup`` more; the
    first call's time (compilation, CUDA graph capture) if compiled."""
    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)
    times = []
    with torch.inference_mode(), autocast:
        for i in range(1 + warmup + iters):
            sync(str(dev))
            t = time.perf_counter()
            fn(inputs[0], inputs[1:])
            sync(str(dev))
            times.append(time.perf_counter() - t)
    return {"compile_s": times[0] if compiled else None,
            "ms_per_batch": statistics.median(times[1 + warmup:]) * 1000}


# ---------------------------------------------------------------------------------- child: training
def child_train(spec: dict) -> list[dict]:
    """Training steps fed by the sampler's workers at each batch size; a profile when MFU is low."""
    from sneakynet.sampler import PatchDataset, SamplerOptions
    from sneakynet.training_cases import TrainingCase

    ct, labels = synthetic_ct(tuple(spec["shape"]), seed=1)
    case = TrainingCase("synthetic", normalized(ct), labels, (spec["spacing"],) * 3, lr_axis=2, si_axis=0)
    del ct
    dataset = PatchDataset([case], SamplerOptions(patch_size=spec["patch"], num_context=1), samples_per_epoch=10**8)
    peak, source = peak_tflops(device_name(spec["device"]), spec["peak_tflops"])
    rows = [_train_row(spec, dataset, b, peak, source) for b in spec["batch_sizes"]]
    done = [r for r in rows if r["status"] == "ok"]
    if done:
        best = max(done, key=lambda r: r["batch_size"] / r["step_s"])
        if best["mfu_pct"] is None or best["mfu_pct"] < TARGETS["mfu_pct"]:
            rows.append(_profile_row(spec, dataset, best))
    return rows


def _trainer(spec: dict, dataset, batch_size: int):
    """Network, optimiser, mixed-precision settings and a loader iterator, as ``sneakynet train`` sets them up."""
    from sneakynet.models import build_network
    from sneakynet.patch_loader import PatchLoader
    from sneakynet.trainer import amp_settings

    dev = torch.device(spec["device"])
    torch.manual_seed(0)
    model = build_network(net_config(spec["preset"], spec["patch"])).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    amp_dtype, needs_scaler = amp_settings(dev, "auto")
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    loader = iter(PatchLoader(dataset, batch_size, num_workers=spec["workers"], pin_memory=dev.type == "cuda"))
    return model, optimizer, amp_dtype, scaler, loader


def _step(spec: dict, trainer) -> tuple[float, float]:
    """One training step on the next sampled batch: (seconds waiting for the loader, seconds in all)."""
    from sneakynet.trainer import train_step

    model, optimizer, amp_dtype, scaler, loader = trainer
    t0 = time.perf_counter()
    batch = next(loader)
    t1 = time.perf_counter()
    images = [t.to(spec["device"], non_blocking=True) for t in batch["image"]]
    labels = [t.to(spec["device"], non_blocking=True) for t in batch["labels"]]
    train_step(model, optimizer, images, labels, amp_dtype, scaler)  # returns floats: waits for the device
    sync(spec["device"])
    return t1 - t0, time.perf_counter() - t0


def _train_row(spec: dict, dataset, batch_size: int, peak: float | None, source: str) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    dev = spec["device"]
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    row = {"check": "train", "preset": spec["preset"], "patch_size": spec["patch"], "batch_size": batch_size,
           "status": "ok", "step_s": None, "compute_s": None, "loader_wait_s": None, "workers": spec["workers"],
           "flops_per_step": None, "achieved_tflops": None, "peak_tflops": peak, "peak_source": source,
           "mfu_pct": None, "peak_gpu_allocated_gb": None}
    trainer = _trainer(spec, dataset, batch_size)
    try:
        with FlopCounterMode(display=False) as counter:  # forward and backward of one step
            _step(spec, trainer)
        timings = [_step(spec, trainer) for _ in range(spec["warmup"] + spec["iters"])][spec["warmup"]:]
    except torch.cuda.OutOfMemoryError:
        row["status"] = "OOM"
        return row
    finally:
        del trainer
    step = statistics.median(t for _w, t in timings)
    flops = counter.get_total_flops()
    row.update(step_s=step, loader_wait_s=statistics.mean(w for w, _t in timings),
               compute_s=statistics.median(t - w for w, t in timings), flops_per_step=flops,
               achieved_tflops=flops / step / 1e12, peak_gpu_allocated_gb=gpu_peaks(dev)[0])
    if peak is not None:
        row["mfu_pct"] = 100 * row["achieved_tflops"] / peak
    return row


def _profile_row(spec: dict, dataset, best: dict) -> dict:
    """torch.profiler over a few steps at the best batch size: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    cuda = spec["device"].startswith("cuda")
    trainer = _trainer(spec, dataset, best["batch_size"])
    for _ in range(spec["warmup"]):
        _step(spec, trainer)
    steps = spec["profile_steps"]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            _step(spec, trainer)
    del trainer
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    table_file = Path(spec["out"]) / "profile_train.txt"
    table_file.write_text(averages.table(sort_by=key, row_limit=25))
    total = sum(getattr(e, key) for e in averages) or 1.0
    top = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:12]
    return {"check": "profile", "batch_size": best["batch_size"], "mfu_pct": best["mfu_pct"], "sort_by": key,
            "top_ops": [{"op": e.key, "calls": e.count, "self_ms_per_step": getattr(e, key) / 1000 / steps,
                         "share_pct": 100 * getattr(e, key) / total} for e in top],
            "table_file": table_file.name}


# ---------------------------------------------------------------------------------- parent
CHILDREN = {"infer": child_infer, "monai": child_monai, "levers": child_levers, "train": child_train}


class Run:
    """The parent: prepares the inputs, runs each check in a child, writes the JSON lines."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work, self.start = args, work, time.perf_counter()
        self.record = args.out / "gpu_check.jsonl"
        self.common = {"device": args.device, "gpu": device_name(args.device), "torch": torch.__version__,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

    def left_s(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def child(self, kind: str, spec: dict) -> list[dict]:
        """Run ``kind`` in a fresh process; its rows, or one error row saying why there are none."""
        if self.left_s() <= 0:
            return self.write([{"check": kind, "skipped": f"time budget of {self.args.budget_s:.0f} s spent"}])
        spec = {**spec, "device": self.args.device, "work": str(self.work), "out": str(self.args.out)}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", json.dumps(spec)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, self.left_s() + 60))
        except subprocess.TimeoutExpired:
            return self.write([{"check": kind, "error": "timed out"}])
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                return self.write(json.loads(line[7:]))
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return self.write([{"check": kind, "error": f"exit {proc.returncode}: {tail}"}])

    def write(self, rows: list[dict]) -> list[dict]:
        with open(self.record, "a", encoding="utf-8") as f:
            for row in rows:
                row = {**self.common, **row}
                f.write(json.dumps(row) + "\n")
                print(summary_line(row), flush=True)
        return rows


def summary_line(row: dict) -> str:
    """One readable line per JSON line."""
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    skip = set(COMMON_FIELDS) | {"targets", "top_ops", "shape"}
    return f"[{row['check']}] " + "  ".join(f"{k}={fmt(v)}" for k, v in row.items() if k not in skip and v is not None)


def prepare_ct(args: argparse.Namespace, work: Path) -> None:
    """The synthetic CT as .nii and .nii.gz, plus the centre patch (head bias) and warm-up crop."""
    import SimpleITK as sitk

    ct, _labels = synthetic_ct(tuple(args.shape))
    del _labels
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((args.spacing,) * 3)
    sitk.WriteImage(image, str(work / "ct.nii"))
    sitk.WriteImage(image, str(work / "ct.nii.gz"), True, 1)  # level 1: setup only, read speed is what counts
    del image
    volume = normalized(ct)
    np.save(work / "centre.npy", centre_crop(volume, args.patch))
    np.save(work / "warm.npy", centre_crop(volume, 2 * args.patch))
    (work / "ct.nii").read_bytes()  # into the page cache


def run_infer(run: Run) -> dict:
    """Baseline, each lever alone, then the levers that helped together; returns the best options."""
    args = run.args
    base = {"shape": args.shape, "spacing": args.spacing, "preset": args.preset, "patch": args.patch}
    configs = [("baseline", {})] + [("channels_last", {"channels_last": True})]
    configs += [(f"batch{b}", {"batch_size": b}) for b in args.infer_batches]
    results = {}
    for name, options in configs:
        rows = run.child("infer", {**base, "config": name, "options": options, "gz": name == "baseline"})
        if rows and "total_s" in rows[0]:
            results[name] = (rows[0], options)
    if "baseline" not in results:
        return {}
    baseline = results["baseline"][0]["total_s"]
    best = {}
    if "channels_last" in results and results["channels_last"][0]["total_s"] < baseline:
        best["channels_last"] = True
    batches = [(r["total_s"], o) for n, (r, o) in results.items() if n.startswith("batch")]
    if batches and min(batches, key=lambda t: t[0])[0] < baseline:
        best.update(min(batches, key=lambda t: t[0])[1])
    if len(best) > 1:
        run.child("infer", {**base, "config": "combined", "options": best, "gz": False})
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        rows = CHILDREN[args.child](json.loads(args.spec))
        print("RESULT " + json.dumps(rows), flush=True)
        return 0
    import tempfile

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_", dir=args.work) as tmp:
        run = Run(args, Path(tmp))
        print(f"# gpu_check on {run.common['gpu']} ({args.device}), torch {torch.__version__}; "
              f"JSON lines -> {run.record}", flush=True)
        best = {}
        if "infer" in args.checks or "levers" in args.checks:
            prepare_ct(args, run.work)
        if "infer" in args.checks:
            best = run_infer(run)
        if "monai" in args.checks:
            run.child("monai", {"shape": args.monai_shape, "preset": args.preset, "patch": args.patch,
                                "batch_size": best.get("batch_size", args.monai_batch),
                                "channels_last": best.get("channels_last", False)})
        if "train" in args.checks:
            run.child("train", {"shape": args.train_shape, "spacing": args.train_spacing, "preset": args.preset,
                                "patch": args.patch, "batch_sizes": args.batch_sizes, "workers": args.workers,
                                "warmup": args.warmup, "iters": args.iters, "peak_tflops": args.peak_tflops,
                                "profile_steps": args.profile_steps})
        if "levers" in args.checks:
            run.child("levers", {"preset": args.preset, "patch": args.patch, "batch_size": args.lever_batch,
                                 "channels_last": best.get("channels_last", False), "iters": args.iters,
                                 "warmup": args.warmup,
                                 "compile_modes": args.compile_modes, "compile_backend": args.compile_backend})
        print(f"# done in {time.perf_counter() - run.start:.0f} s", flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="folder for gpu_check.jsonl and the profile")
    p.add_argument("--work", default=None, help="folder for the temporary CT files (default: the system's temp)")
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--checks", type=lambda s: s.split(","), default=["infer", "monai", "train", "levers"])
    p.add_argument("--shape", type=ints, default=[600, 512, 512], help="whole-body CT z,y,x (voxels)")
    p.add_argument("--spacing", type=float, default=1.0, help="CT and model spacing in mm")
    p.add_argument("--preset", default="paper", choices=["paper", "lite", "tiny"],
                   help="D K=1 channel widths (lite: the demo model's weights; tiny: for CPU tests)")
    p.add_argument("--patch", type=int, default=64, help="tile / patch size S (context 2S)")
    p.add_argument("--infer-batches", type=ints, default=[8, 16], help="tile batch sizes to try against the default")
    p.add_argument("--monai-shape", type=ints, default=[160, 256, 256])
    p.add_argument("--monai-batch", type=int, default=4, help="tile batch of both when no better one was found")
    p.add_argument("--train-shape", type=ints, default=[192, 192, 256], help="the sampler's synthetic case z,y,x")
    p.add_argument("--train-spacing", type=float, default=2.0)
    p.add_argument("--batch-sizes", type=ints, default=[2, 4, 8, 16])
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 2)))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10, help="timed steps per batch size / forward passes per lever")
    p.add_argument("--profile-steps", type=int, default=3, help="steps in the profile when MFU < 40 %%")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak, when the device is not in the table")
    p.add_argument("--lever-batch", type=int, default=16)
    p.add_argument("--compile-modes", type=lambda s: [m for m in s.split(",") if m], default=["reduce-overhead"])
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--budget-s", type=float, default=390.0, help="skip the checks left after this many seconds "
                   "(a check started before then has its own time left plus 60 s)")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
