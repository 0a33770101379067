"""Training-step benchmark: seconds per iteration for every row of the paper's Table 1.

One iteration = what ``sneakynet train`` does per step (:func:`sneakynet.train.train_step`):
forward of target + context nets, CE + Dice loss of every supervised branch, backward, Adam step,
with the same mixed precision (bf16 autocast where supported, else fp16 + GradScaler) on CUDA and
fp32 on the CPU. Inputs are random patches and labels already on the device, so the number is the
GPU (or CPU) time of the network alone; the patch sampler has its own benchmark.

    python benchmarks/bench_train_step.py --device cuda                      # all Table 1 rows, paper sizes
    python benchmarks/bench_train_step.py --device cuda --rows "D 64/128" --batch-size 2
    python benchmarks/bench_train_step.py --device cpu --preset lite --rows "D 32/64" --iters 5

The paper (Quadro RTX 6000, TF Keras 2.5, batch size not stated) is printed beside each row.
Rows that do not fit in GPU memory are reported as OOM (the paper's full U-Net on 128^3 did not fit
either). ``--record FILE`` appends one JSON line per row.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

# Table 1: (row name, variant, K, S, trainable params 1e7, paper seconds per iteration)
TABLE1 = [
    ("A 32", "A", 0, 32, 5.8, 0.44),
    ("A 64", "A", 0, 64, 5.8, 0.57),
    ("slim 128", "slim", 0, 128, 1.5, 4.24),
    ("B 32/64", "B", 1, 32, 3.7, 0.41),
    ("B 64/128", "B", 1, 64, 3.7, 0.72),
    ("C 32/64", "C", 1, 32, 4.7, 0.43),
    ("C 64/128", "C", 1, 64, 4.7, 1.27),
    ("D 32/64", "D", 1, 32, 4.9, 0.45),
    ("D 32/64-128", "D", 2, 32, 5.8, 0.70),
    ("D 32/64-128-256", "D", 3, 32, 6.2, 3.16),
    ("D 64/128", "D", 1, 64, 4.9, 1.28),
    ("D 64/128-256", "D", 2, 64, 5.8, 3.11),
]


def build(row: tuple, preset_name: str):
    from sneakynet.models import preset

    _, variant, k, s, _, _ = row
    if variant == "slim":
        return preset("slim" if preset_name == "paper" else "lite", "A", 0, s)
    return preset(preset_name, variant, k, s)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_row(row: tuple, args: argparse.Namespace, device: torch.device) -> dict:
    from sneakynet.models import build_network, count_parameters
    from sneakynet.train import amp_settings, train_step

    config = build(row, args.preset)
    torch.manual_seed(0)
    model = build_network(config).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp_dtype, needs_scaler = amp_settings(device, args.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    step_model = torch.compile(model) if args.compile else model
    b, s, k, c = args.batch_size, config.patch_size, config.num_context, config.num_classes
    g = torch.Generator(device="cpu").manual_seed(1)
    fmt = torch.channels_last_3d if args.channels_last else torch.contiguous_format
    images = [torch.randn(b, 1, s, s, s, generator=g).to(device, memory_format=fmt) for _ in range(k + 1)]
    labels = [torch.randint(0, c, (b, s, s, s), generator=g).to(device) for _ in range(k + 1)]
    result = {"row": row[0], "preset": config.preset, "widths": list(config.widths),
              "parameters": count_parameters(model), "batch_size": b, "device": str(device),
              "amp": str(amp_dtype), "channels_last": args.channels_last, "compile": args.compile,
              "paper_seconds": row[5], "paper_parameters": row[4] * 1e7}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    try:
        for i in range(args.warmup + args.iters):
            sync(device)
            t0 = time.perf_counter()
            parts = train_step(step_model, optimizer, images, labels, amp_dtype, scaler)
            sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    except torch.cuda.OutOfMemoryError:
        result.update(status="OOM", seconds_per_iteration=None)
    else:
        result.update(status="ok", seconds_per_iteration=statistics.median(times),
                      seconds_min=min(times), loss=parts["total"])
    if device.type == "cuda":
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["gpu"] = torch.cuda.get_device_name(device)
    del model, optimizer, images, labels, step_model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", choices=["paper", "lite"], default="paper",
                        help="channel widths (paper = Table 1 parameter counts; lite = CPU-sized)")
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all), e.g. 'A 64,D 64/128'")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per row (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto")
    parser.add_argument("--channels-last", action="store_true", help="channels_last_3d memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument("--record", default="", help="append one JSON line per row to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = set(wanted) - {r[0] for r in TABLE1}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {[r[0] for r in TABLE1]}")
    rows = [r for r in TABLE1 if not wanted or r[0] in wanted]
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {torch.get_num_threads()} threads"), flush=True)
    print(f"{'row':17s} {'params':>8s} {'paper':>6s} {'s/it':>8s} {'paper s/it':>10s} {'peak GiB':>9s}")
    for row in rows:
        r = bench_row(row, args, device)
        sec = f"{r['seconds_per_iteration']:.3f}" if r["seconds_per_iteration"] is not None else "OOM"
        peak = f"{r['peak_gpu_gib']:.1f}" if "peak_gpu_gib" in r else "-"
        print(f"{r['row']:17s} {r['parameters'] / 1e6:7.1f}M {row[4] * 10:5.0f}M {sec:>8s} {row[5]:10.2f} {peak:>9s}",
              flush=True)
        if args.record:
            with open(args.record, "a", encoding="utf-8") as f:
                f.write(json.dumps({**r, "time": time.time()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
