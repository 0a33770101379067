"""Inference benchmark: our Predictor vs MONAI's sliding_window_inference, same network and weights.

Each runner runs in a fresh process (so peak RSS is its own); the driver prints wall time, peak
host RSS, peak GPU memory, label agreement and the time ratio, and appends a JSON line to
``--record`` if given.

    python benchmarks/bench_inference.py --case lite-phantom-2mm        # CPU, lite D on a 2 mm phantom
    python benchmarks/bench_inference.py --case paper-512 --device cuda  # paper D 64/128, 512x512x600

MONAI gets the same tiles' network call: a wrapper cuts each tile's context patches by
average-pooling the 2^k*S region around it (the naive way), with ``with_coord=True``; Gaussian
mode, the same overlap and batch size. MONAI keeps the whole (classes x volume) output; when that
does not fit, the driver reports the memory it would need instead of running it.

Runners: ``ours``; ``monai`` as MONAI users run it (default memory layout; float16 autocast on
CUDA, float32 on the CPU); ``monai-tuned``, MONAI given the same layout and compute precision as
ours, so the ratio against it is what the predictor's design alone buys.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sneakynet.infer import PRECISIONS

CASES = {
    # name: (preset, variant, K, S, volume shape z,y,x or "phantom", model spacing mm); "lite" = the demo weights
    "lite-phantom": ("lite", "D", 1, 32, "phantom", 4.0),
    "lite-phantom-2mm": ("lite", "D", 1, 64, "phantom", 2.0),
    "paper-512": ("paper", "D", 1, 64, (600, 512, 512), 1.0),
    "paper-512x300": ("paper", "D", 1, 64, (300, 512, 512), 1.0),
    "paper-256": ("paper", "D", 1, 64, (160, 256, 256), 1.0),
    "lite-128": ("lite", "D", 1, 32, (96, 128, 128), 1.0),
    "lite-512x300": ("lite", "D", 1, 32, (300, 512, 512), 1.0),
    # memory check on the CPU: a tiny network, full 125-class output, 512x512x300
    "tiny-512x300": ("tiny", "D", 1, 64, (300, 512, 512), 1.0),
}


RUNNERS = ["ours", "monai", "monai-tuned"]


def make_model(case: str, volume: np.ndarray, seed: int = 0):
    """The case's network. ``lite`` cases use the bundled demo model's trained weights (lite D 32/64),
    so the labels, their margins and their near-ties are those of a real model. Other presets
    have no trained weights here: random ones, with the head's bias set to minus the head of the
    mean feature of the volume's centre patch, so that many classes win somewhere (a raw random
    net labels every voxel alike, and then any two predictors agree 100 %)."""
    from sneakynet.models import NetConfig, build_network, preset, with_patch_size

    name, variant, k, s, _, _ = CASES[case]
    if name == "lite":
        from sneakynet.bundle import demo_bundle_path, load_bundle

        trained, _ = load_bundle(demo_bundle_path())
        assert (trained.config.variant, trained.config.num_context) == (variant, k), "demo model is not lite D K=1"
        model = build_network(with_patch_size(trained.config, s)).eval()
        model.load_state_dict(trained.state_dict())
        return model
    torch.manual_seed(seed)
    config = NetConfig(variant, k, s, widths=(4, 4, 4, 4, 4)) if name == "tiny" else preset(name, variant, k, s)
    model = build_network(config).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    centre = [slice(max(0, n // 2 - s // 2), max(0, n // 2 - s // 2) + s) for n in volume.shape]
    patch = torch.from_numpy(np.ascontiguousarray(volume[tuple(centre)]))[None, None]
    with torch.no_grad():
        mean_feature = model.forward_features(patch, [patch] * k).mean((0, 2, 3, 4))
        model.head.bias.copy_(-model.head.weight.flatten(1) @ mean_feature)
    return model


def make_volume(case: str, seed: int = 0) -> np.ndarray:
    """Normalised (z, y, x) float32 volume on the model grid."""
    from sneakynet.intensity import normalize_ct

    shape, spacing = CASES[case][4], CASES[case][5]
    if shape == "phantom":
        import SimpleITK as sitk

        from sneakynet.phantom import PhantomOptions, generate_case

        ct, _ = generate_case(seed, PhantomOptions(spacing=(spacing,) * 3))
        return normalize_ct(sitk.GetArrayFromImage(ct))
    # synthetic body: an elliptic cylinder of soft tissue with bony rods, air outside
    z, y, x = shape
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.35 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 < 1
    slab = np.where(body, 40.0, -1000.0).astype(np.float32)
    for cx in (0.3, 0.5, 0.7):
        slab[((yy - 0.6 * y) ** 2 + (xx - cx * x) ** 2) < (0.03 * x) ** 2] = 900.0
    vol = np.empty(shape, np.float32)
    rng = np.random.default_rng(seed)
    for i in range(z):
        vol[i] = slab + rng.normal(0, 15, size=slab.shape).astype(np.float32) * (i % 7 == 0)
    return normalize_ct(vol)


def run_ours(args: argparse.Namespace, out: Path) -> dict:
    from sneakynet.infer import Predictor

    case, device = args.case, args.device
    volume = make_volume(case)
    model = make_model(case, volume)
    predictor = Predictor.from_model(model, (CASES[case][5],) * 3, device=device, overlap=args.overlap,
                                     batch_size=args.batch, precision=args.precision,
                                     channels_last=_channels_last(args), log=lambda m: None)
    predictor.predict_array(volume[: 2 * model.config.patch_size, :128, :128])  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    prediction = predictor.segment_array(volume)
    _sync(device)
    np.save(out, prediction.labels)
    stats = prediction.stats
    return {"seconds": time.perf_counter() - t0, "tiles": stats.tiles, "parts": stats.parts,
            "precision": stats.precision, "channels_last": stats.channels_last}


def _channels_last(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "on": True, "off": False}[args.channels_last]


def run_monai(args: argparse.Namespace, out: Path) -> dict:
    import torch.nn.functional as F
    from monai.inferers import sliding_window_inference

    from sneakynet.infer import resolve_channels_last, resolve_precision

    case, device, batch, overlap = args.case, args.device, args.batch, args.overlap
    volume = make_volume(case)
    model = make_model(case, volume)
    S, K = model.config.patch_size, model.config.num_context
    dev = torch.device(device)
    tuned = args.runner == "monai-tuned"
    # as MONAI users run it: float16 autocast on CUDA, float32 on the CPU, default layout;
    # tuned: the layout and precision our predictor picks for this device
    if tuned:
        dtype = resolve_precision(args.precision, dev)
        channels_last = resolve_channels_last(_channels_last(args), dev)
    else:
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
        channels_last = False
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=layout)
    pad = (2**K - 1) * S // 2
    x = torch.from_numpy(volume)[None, None]
    padded = F.pad(x, (pad,) * 6, mode="replicate").to(dev)

    def predictor(patch, coords):
        contexts = []
        for k in range(1, K + 1):
            half = 2 ** (k - 1) * S
            cubes = []
            for c in coords:
                starts = [sl.start + S // 2 - half + pad for sl in c[2:]]
                cube = padded[0, 0, starts[0]:starts[0] + 2 * half, starts[1]:starts[1] + 2 * half,
                              starts[2]:starts[2] + 2 * half]
                cubes.append(F.avg_pool3d(cube[None, None], 2**k)[0])
            contexts.append(torch.stack(cubes).contiguous(memory_format=layout))
        patch = patch.contiguous(memory_format=layout)
        return model(patch, contexts, with_context_logits=False).target.float()

    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:  # warm-up
        sliding_window_inference(x[..., : 2 * S, :128, :128].to(dev), S, batch, predictor, overlap=overlap,
                                 mode="gaussian", with_coord=True, sw_device=dev, device=dev)
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast:
        logits = sliding_window_inference(x.to(dev), S, batch, predictor, overlap=overlap, mode="gaussian",
                                          with_coord=True, sw_device=dev, device=dev)
        labels = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    _sync(device)
    np.save(out, labels)
    return {"seconds": time.perf_counter() - t0, "precision": str(dtype).removeprefix("torch."),
            "channels_last": channels_last}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    fn = run_ours if args.runner == "ours" else run_monai
    result = fn(args, Path(args.labels))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    print("RESULT " + json.dumps(result))


def spawn(args: argparse.Namespace, runner: str, labels: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", runner, "--case", args.case, "--device", args.device,
           "--batch", str(args.batch), "--overlap", str(args.overlap), "--threads", str(args.threads),
           "--precision", args.precision, "--channels-last", args.channels_last, "--labels", str(labels)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="lite-phantom", choices=sorted(CASES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runners", default="ours,monai,monai-tuned")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="compute precision of ours (and of monai-tuned)")
    parser.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                        help="channels-last 3D layout for ours (and monai-tuned); auto: on for the CPU")
    parser.add_argument("--record", type=Path, default=None, help="append the results as a JSON line")
    parser.add_argument("--child", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.runner = args.child
        return child(args)
    name, variant, k, s, shape, spacing = CASES[args.case]
    print(f"case {args.case}: {name} {variant} K={k} S={s}, volume {shape}, {spacing} mm, device {args.device}, "
          f"batch {args.batch}, overlap {args.overlap}, {args.threads} threads")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for runner in args.runners.split(","):
            if runner.startswith("monai") and shape != "phantom":
                from sneakynet.infer import estimate_full_logits_bytes

                need = estimate_full_logits_bytes(shape, 126) / 2**30
                total = (torch.cuda.get_device_properties(0).total_memory if args.device.startswith("cuda")
                         else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
                if need > 0.8 * total / 2**30:
                    results[runner] = {"error": f"not run: MONAI's full output needs {need:.0f} GiB "
                                                f"(float32 126 x {'x'.join(map(str, shape))}), more than this "
                                                f"{'GPU' if args.device.startswith('cuda') else 'machine'} has"}
                    print(f"{runner:6s} {results[runner]['error']}")
                    continue
            results[runner] = spawn(args, runner, Path(tmp) / f"{runner}.npy")
            print(f"{runner:6s} " + json.dumps(results[runner]))
        for baseline in ("monai", "monai-tuned"):
            if all("seconds" in results.get(r, {}) for r in ("ours", baseline)):
                a, b = np.load(Path(tmp) / "ours.npy"), np.load(Path(tmp) / f"{baseline}.npy")
                agreement = float((a == b).mean() * 100)
                bone = (a > 0) | (b > 0)  # background dominates: agreement where either says "bone"
                bone_agreement = float((a[bone] == b[bone]).mean() * 100) if bone.any() else float("nan")
                speedup = results[baseline]["seconds"] / results["ours"]["seconds"]
                results[baseline].update(agreement_pct=agreement, bone_agreement_pct=bone_agreement,
                                         bone_voxels=int(bone.sum()), labels_used=int(len(np.unique(a))),
                                         speedup=speedup)
                print(f"vs {baseline:11s}: label agreement {agreement:.4f} % (on {bone.sum()} bone voxels "
                      f"{bone_agreement:.3f} %, {len(np.unique(a))} labels)   {baseline}/ours time ratio {speedup:.2f}x"
                      f"   RSS ours/{baseline} {results['ours']['peak_rss_mb']:.0f}/"
                      f"{results[baseline]['peak_rss_mb']:.0f} MB")
    if args.record:
        with open(args.record, "a") as f:
            f.write(json.dumps({"case": args.case, "device": args.device, "batch": args.batch,
                                "overlap": args.overlap, "threads": args.threads, "cpu": _cpu_name(),
                                **results}) + "\n")


if __name__ == "__main__":
    main()
