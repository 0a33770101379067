"""``sneakynet demo``: phantom CT -> bundled demo model -> labels, meshes, PNG, per-group DSC.

The demo model is phantom-trained and not for clinical or real-CT use; the scores printed are
against the phantom's own ground truth.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sneakynet.commands.argtypes import int_in
from sneakynet.devices import DEVICE_HELP, parse_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default ./demo_output)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=2026, help="phantom seed (the demo model never saw seeds >= 1000)")
    parser.add_argument("--device", default="auto", type=parse_device, metavar="DEVICE", help=DEVICE_HELP)
    parser.add_argument("--no-meshes", action="store_true", help="skip the GLB export and the PNG preview")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from sneakynet.console import progress_bar
    from sneakynet.evaluate import evaluate_images
    from sneakynet.infer import Predictor
    from sneakynet.io import write_image
    from sneakynet.labels import load_label_table
    from sneakynet.metrics import summarize
    from sneakynet.phantom import PhantomOptions, generate_case

    t_start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(None, device=args.device, log=lambda m: tqdm.write(m))
    spacing = predictor.spacing
    print(f"1/4 generating phantom CT (seed {args.seed}, {spacing[0]:g} mm) ...")
    ct, truth = generate_case(args.seed, PhantomOptions(spacing=spacing), version=1)
    ct_path, truth_path = write_image(ct, out / "phantom_ct.nii.gz"), write_image(truth, out / "phantom_truth.nii.gz")

    print(f"2/4 segmenting {ct.GetSize()} voxels on {predictor.device} ...")
    with progress_bar("segment") as progress:
        labels = predictor.predict_image(ct, progress=progress)
    labels_path = write_image(labels, out / "bones.nii.gz")

    print("3/4 scoring against the phantom truth ...")
    metrics = evaluate_images(labels, truth, case="demo", pred_name=str(labels_path), ref_name=str(truth_path))
    table = load_label_table()
    print(f"\n{'group':12s} {'bones':>5s} {'median DSC':>10s} {'non-zero':>8s}")
    for group, ids in table.groups().items():
        s = summarize(metrics.dsc[np.array(ids) - 1])
        print(f"{group:12s} {len(ids):5d} {s['median']:10.3f} {s['nonzero_pct']:7.1f}%")
    s = metrics.summary()
    print(f"{'all':12s} {len(table):5d} {s['median']:10.3f} {s['nonzero_pct']:7.1f}%   "
          f"(16-84 %: {s['median'] - s['minus']:.3f}-{s['median'] + s['plus']:.3f})")

    files = [ct_path, truth_path, labels_path]
    if not args.no_meshes:
        from sneakynet.export import export_meshes, render_labels

        print("\n4/4 exporting meshes (GLB) and rendering a preview ...")
        files += export_meshes(labels, out / "meshes", fmt="glb", smooth=True, decimate=0.5)
        files.append(render_labels(labels, out / "preview.png", ct=ct))
    print(f"\nphantom-trained demo, not for clinical or real-CT use. Files in {out.resolve()}:")
    for f in files:
        print(f"  {f}")
    print(f"done in {time.perf_counter() - t_start:.0f} s")
    return 0
