"""Benchmark: all bones of a 2 mm label map -> GLB (smoothing + 50 % decimation), per stage.

Compares the two multi-label contouring methods side by side (vtkSurfaceNets3D and
vtkDiscreteFlyingEdges3D): wall time per stage, triangles, and mesh quality (worst relative
volume error against the voxel volume, bones not watertight). Target: <= 20 s on 2 cores.

Input: the SneakyNet phantom at 2 mm (``sneakynet.phantom.generate_case``) when available,
else a synthetic map with 125 irregular blobs of bone-like sizes.

    python SneakyNetCore/benchmarks/bench_export.py [--seed 0] [--spacing 2.0] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def synthetic_label_map(spacing: float = 2.0, seed: int = 0) -> sitk.Image:
    """125 irregular blobs (radii 6-40 mm) packed in a 500 x 300 x 640 mm LPS box."""
    rng = np.random.default_rng(seed)
    size = (int(500 / spacing), int(300 / spacing), int(640 / spacing))
    lab = np.zeros(size[::-1], np.uint8)
    centres = np.stack(np.meshgrid(np.linspace(60, 440, 5), np.linspace(50, 250, 5), np.linspace(70, 570, 5),
                                   indexing="ij"), -1).reshape(-1, 3)
    centres += rng.uniform(-15, 15, centres.shape)
    radii = np.clip(rng.lognormal(np.log(14), 0.5, (125, 3)), 6, 40)
    for label, (c, r) in enumerate(zip(centres, radii), start=1):
        lo = np.maximum(((c - r.max() - 4) / spacing).astype(int), 0)
        hi = np.minimum(((c + r.max() + 4) / spacing).astype(int) + 1, size)
        k, j, i = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        p = np.stack([i, j, k], -1) * spacing - c
        d = np.sqrt(((p / r) ** 2).sum(-1))
        bumps = 0.12 * np.sin(p[..., 0] / 3.1 + label) * np.cos(p[..., 2] / 4.3 - label)  # irregular surface
        sub = lab[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        sub[(d + bumps < 1.0) & (sub == 0)] = label
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin((-250.0, -150.0, -900.0))
    return img


def phantom_label_map(spacing: float, seed: int) -> sitk.Image | None:
    try:
        from sneakynet.phantom import PhantomOptions, generate_case
    except ImportError:
        return None
    _ct, labels = generate_case(seed, PhantomOptions(spacing=(spacing,) * 3))
    return labels


def run_pipeline(image: sitk.Image, method: str, out_dir: Path) -> dict:
    """One full export (smoothing, 50 % decimation, GLB) with per-stage wall times and quality."""
    from vtkmodules.vtkFiltersCore import vtkFeatureEdges, vtkMassProperties

    from sneakynet.export.gltf import write_gltf
    from sneakynet.export.labelmap import check_label_map
    from sneakynet.export.surfaces import surfaces_from_label_map
    from sneakynet.labels import load_label_table

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    lm = check_label_map(image, "benchmark")
    t["check"] = time.perf_counter() - t0
    full = surfaces_from_label_map(lm, method=method)  # untimed: triangle count before decimation
    surfaces = surfaces_from_label_map(lm, decimate=0.5, method=method, timings=t)
    t0 = time.perf_counter()
    glb = write_gltf(surfaces, out_dir / f"bones_{method}.glb", load_label_table())[0]
    t["write_glb"] = time.perf_counter() - t0
    t["total"] = sum(t.values())

    worst, not_closed = 0.0, 0
    voxel = float(np.prod(image.GetSpacing()))
    for k, s in surfaces.items():
        mp = vtkMassProperties()
        mp.SetInputData(s)
        mp.Update()
        worst = max(worst, abs(mp.GetVolume() - lm.voxel_counts[k] * voxel) / (lm.voxel_counts[k] * voxel))
        fe = vtkFeatureEdges()
        fe.SetInputData(s)
        fe.BoundaryEdgesOn()
        fe.NonManifoldEdgesOn()
        fe.FeatureEdgesOff()
        fe.ManifoldEdgesOff()
        fe.Update()
        not_closed += fe.GetOutput().GetNumberOfCells() > 0
    return {
        "times": t, "triangles_bones": sum(s.GetNumberOfPolys() for s in full.values()),
        "triangles_final": sum(s.GetNumberOfPolys() for s in surfaces.values()),
        "bones": len(surfaces), "worst_volume_error": worst, "not_closed": not_closed,
        "glb_mb": glb.stat().st_size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None, help="keep the GLB files here (default: deleted)")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic map even if the phantom exists")
    args = parser.parse_args()

    from vtkmodules.vtkCommonCore import vtkSMPTools

    from sneakynet.export.surfaces import use_threaded_vtk

    use_threaded_vtk()
    smp = vtkSMPTools()
    t0 = time.perf_counter()
    image = None if args.synthetic else phantom_label_map(args.spacing, args.seed)
    source = f"phantom seed {args.seed}"
    if image is None:
        image, source = synthetic_label_map(args.spacing, args.seed), "synthetic 125 blobs"
    t_input = time.perf_counter() - t0
    n_labels = len(np.unique(sitk.GetArrayViewFromImage(image))) - 1
    print(f"input: {source}, {n_labels} labels, grid {image.GetSize()} at {image.GetSpacing()[0]:g} mm "
          f"({np.prod(image.GetSize()) / 1e6:.1f} M voxels), made in {t_input:.1f} s")
    print(f"cpus: {os.cpu_count()}, VTK SMP backend {smp.GetBackend()} with "
          f"{smp.GetEstimatedNumberOfThreads()} threads; python {sys.version.split()[0]}")

    with tempfile.TemporaryDirectory(prefix="bench_export_") as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        results = {m: run_pipeline(image, m, out) for m in ("surface_nets", "flying_edges")}

    stages = list(results["surface_nets"]["times"])
    print(f"\n{'stage (s)':<22}{'SurfaceNets':>14}{'FlyingEdges':>14}")
    for s in stages:
        print(f"{s:<22}" + "".join(f"{results[m]['times'][s]:>14.2f}" for m in results))
    for key, fmt in (("triangles_bones", "{:,}"), ("triangles_final", "{:,}"),
                     ("bones", "{}"), ("worst_volume_error", "{:.1%}"), ("not_closed", "{}"),
                     ("glb_mb", "{:.1f}")):
        print(f"{key:<22}" + "".join(f"{fmt.format(results[m][key]):>14}" for m in results))
    if args.out:
        print(f"\nGLB files in {args.out}")
    target = results["surface_nets"]["times"]["total"]
    print(f"SurfaceNets total {target:.1f} s (target <= 20 s on 2 cores): {'OK' if target <= 20 else 'SLOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
