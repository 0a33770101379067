"""Benchmark: what domain randomisation adds to drawing a training patch (no network, one process).

    python benchmarks/bench_domain_randomization.py --dataset DATA_DIR [--cases 4] [--spacing 4]
        [--patch 32] [--context 1] [--samples 200]

Loads the first ``--cases`` training cases of fold 0 on the model grid, then draws ``--samples``
patches with the default augmentation and with ``--domain-randomization`` (same seed, so the same
centres), and with each operation alone. Prints milliseconds per patch; one training iteration
draws ``batch_size`` patches (2 by default), so the added cost per iteration is twice the
difference when the loader runs in the training process (``--workers 0``); with workers it overlaps
the network step.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from sneakynet.sampler import AugmentOptions, PatchDataset, SamplerOptions
from sneakynet.train_options import TrainOptions
from sneakynet.training_cases import load_cases, load_fold


def ms_per_patch(cases, aug: AugmentOptions, patch: int, context: int, samples: int) -> float:
    """Mean milliseconds to draw one sample (after 5 warm-up samples; SciPy's modules are imported
    before, their one-time import is not a per-patch cost)."""
    import scipy.interpolate  # noqa: F401
    import scipy.ndimage  # noqa: F401

    ds = PatchDataset(cases, SamplerOptions(patch_size=patch, num_context=context, augment=aug))
    for j in range(5):
        ds[j]
    t0 = time.perf_counter()
    for j in range(5, 5 + samples):
        ds[j]
    return 1000.0 * (time.perf_counter() - t0) / samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--spacing", type=float, default=4.0)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    options = TrainOptions(dataset=str(args.dataset), out="unused", spacing=(args.spacing,) * 3, patch=args.patch,
                           context=args.context)
    dataset, split = load_fold(options)
    cases = load_cases(dataset, split["train"][: args.cases], options, False)
    base = AugmentOptions()
    dr = base.with_domain_randomization()
    off = dict(p_intensity_remap=0.0, p_blur=0.0, p_resample=0.0, p_plane_cut=0.0, p_fov_circle=0.0)
    rows = [("default augmentation", base), ("with domain randomisation", dr)]
    for name, key in (("intensity curve", "p_intensity_remap"), ("blur", "p_blur"), ("resolution", "p_resample"),
                      ("plane cut", "p_plane_cut"), ("FOV circle", "p_fov_circle")):
        rows.append((f"  {name} only, always", replace(dr, **{**off, key: 1.0})))
    print(f"{len(cases)} cases at {args.spacing:g} mm, S = {args.patch}, K = {args.context}, {args.samples} samples")
    for name, aug in rows:
        print(f"{name:34s} {ms_per_patch(cases, aug, args.patch, args.context, args.samples):7.2f} ms/patch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
