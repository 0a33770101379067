"""Benchmark: multi-resolution patch sampler throughput (patches/s) through a torch DataLoader.

For S = 64, K = 1 and S = 32, K = 3 (the paper's two extremes): build the cached case (pyramids,
class index lists) once, then draw batches with 0, 1 and 2 DataLoader workers, default
augmentation (mirroring, intensity scale/shift/noise; no rotations) and 50 % class-balanced
centres. Reports patches/s after a warm-up batch, and the cache memory and build time per case.

Input: the SneakyNet phantom at 2 mm (``sneakynet.phantom.generate_case``) when available, else a
synthetic upper-body-sized volume (250 x 150 x 320 voxels at 2 mm) with 125 bone blobs.

    python SneakyNetCore/benchmarks/bench_sampler.py [--seconds 3] [--batch 2] [--workers 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import SimpleITK as sitk


def synthetic_case(spacing: float = 2.0, seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """Soft-tissue ellipse body (x 500, y 300, z 640 mm) in air with 125 bone blobs, LPS identity."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = int(500 / spacing), int(300 / spacing), int(640 / spacing)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    body = ((x - nx / 2) / (nx / 2.1)) ** 2 + ((y - ny / 2) / (ny / 2.2)) ** 2 <= 1.0
    hu = np.where(body, 40.0, -1000.0).astype(np.float32) + rng.normal(0, 15, (nz, ny, nx)).astype(np.float32)
    labels = np.zeros((nz, ny, nx), np.uint8)
    centres = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 5) * nx, np.linspace(0.3, 0.7, 5) * ny,
                                   np.linspace(0.1, 0.9, 5) * nz, indexing="ij"), -1).reshape(-1, 3)
    for label, c in enumerate(centres, start=1):
        r = rng.uniform(2, 12, 3)  # voxels
        lo = np.maximum((c - r - 1).astype(int), 0)
        hi = np.minimum((c + r + 2).astype(int), (nx, ny, nz))
        kk, jj, ii = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        inside = ((ii - c[0]) / r[0]) ** 2 + ((jj - c[1]) / r[1]) ** 2 + ((kk - c[2]) / r[2]) ** 2 <= 1
        labels[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]][inside] = label
    hu[labels > 0] = 700.0
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((spacing,) * 3)
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(ct)
    return ct, lab


def load_case(seed: int, synthetic: bool) -> tuple[sitk.Image, sitk.Image, str]:
    if not synthetic:
        try:
            from sneakynet.phantom import PhantomOptions, generate_case
        except ImportError:
            why = "phantom generator not available"
        else:
            try:
                ct, lab = generate_case(seed, PhantomOptions(spacing=(2, 2, 2)))
                return ct, lab, "SneakyNet phantom at 2 mm"
            except Exception as exc:  # a benchmark of the sampler should still run; say why
                why = f"phantom generator failed: {exc!r}"
    else:
        why = "--synthetic"
    ct, lab = synthetic_case(seed=seed)
    return ct, lab, f"synthetic volume ({why})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic volume even if the phantom exists")
    args = parser.parse_args()

    import torch

    from sneakynet.patch_loader import PatchLoader
    from sneakynet.sampler import PatchDataset, SamplerOptions
    from sneakynet.training_cases import TrainingCase

    t0 = time.perf_counter()
    ct, lab, source = load_case(args.seed, args.synthetic)
    case = TrainingCase.from_images("bench", ct, lab)
    print(f"input: {source}, {case.image.shape[::-1]} voxels (x, y, z), spacing {case.spacing[::-1]} mm, "
          f"{len(np.unique(case.labels)) - 1} bones, loaded in {time.perf_counter() - t0:.1f} s")
    print(f"cpu cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, batch size {args.batch}")
    print(f"{'S':>3} {'K':>2} {'cache MB':>9} {'build s':>8} {'ms/sample':>10} " + " ".join(
        f"{f'{w} workers':>11}" for w in args.workers) + "   (patches/s)")
    for s, k in [(64, 1), (32, 3)]:
        t = time.perf_counter()
        ds = PatchDataset([case], SamplerOptions(patch_size=s, num_context=k, seed=args.seed))
        build = time.perf_counter() - t
        t = time.perf_counter()
        n_direct = 0
        while time.perf_counter() - t < args.seconds / 2:
            ds[n_direct]
            n_direct += 1
        per_sample = (time.perf_counter() - t) / n_direct * 1e3
        rates = []
        for w in args.workers:
            loader = PatchLoader(ds, batch_size=args.batch, num_workers=w)
            it = iter(loader)
            next(it)  # warm-up: worker start-up is not throughput
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < args.seconds:
                next(it)
                n += args.batch
            rates.append(n / (time.perf_counter() - t))
            del it
        print(f"{s:>3} {k:>2} {ds.nbytes / 1e6:>9.0f} {build:>8.2f} {per_sample:>10.1f} "
              + " ".join(f"{r:>11.1f}" for r in rates))


if __name__ == "__main__":
    main()
