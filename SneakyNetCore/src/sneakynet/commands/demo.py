"""``sneakynet demo``: phantom v2 CT -> bundled demo model -> labels, meshes, PNG, per-group DSC.

The phantom is a v2 phantom (the data the demo model is trained on) of the whole upper body with
the arms at the sides, so that most bones are in view, at the model's spacing; its seed (2026 by
default) is never one the model was trained on. The demo model is phantom-trained and not for
clinical or real-CT use; the scores printed are against the phantom's own ground truth.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sneakynet.commands.argtypes import int_in
from sneakynet.commands.segment import add_postprocess_arguments
from sneakynet.demo_model import DEMO_CASES, DEMO_PHANTOM_SEED
from sneakynet.devices import DEVICE_HELP, parse_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default ./demo_output)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=2026,
                        help="phantom seed (default 2026; the demo model was trained on seeds "
                        f"{DEMO_PHANTOM_SEED}-{DEMO_PHANTOM_SEED + DEMO_CASES - 1})")
    parser.add_argument("--device", default="auto", type=parse_device, metavar="DEVICE", help=DEVICE_HELP)
    parser.add_argument("--no-meshes", action="store_true", help="skip the GLB export and the PNG preview")
    add_postprocess_arguments(parser)


def demo_phantom(seed: int, spacing: tuple[float, float, float]):
    """(CT, labels) of the demo's phantom: v2, whole upper body, arms at the sides, at ``spacing``."""
    from sneakynet.phantom import generate_case
    from sneakynet.phantom.v2 import PhantomV2Options

    return generate_case(seed, PhantomV2Options(spacing=spacing, fov="whole", arms="sides"), version=2)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from sneakynet.console import progress_bar
    from sneakynet.evaluate import evaluate_images
    from sneakynet.infer import Predictor
    from sneakynet.io import write_image
    from sneakynet.labels import load_label_table
    from sneakynet.metrics import summarize
    from sneakynet.postprocess import preset_options

    t_start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(None, device=args.device, log=lambda m: tqdm.write(m),
                          postprocess=preset_options(args.postprocess))
    spacing = predictor.spacing
    if DEMO_PHANTOM_SEED <= args.seed < DEMO_PHANTOM_SEED + DEMO_CASES:
        print(f"warning: phantom seed {args.seed} is one the demo model was trained on; its score flatters the model")
    print(f"1/4 generating phantom v2 CT (seed {args.seed}, whole upper body, {spacing[0]:g} mm) ...")
    ct, truth = demo_phantom(args.seed, spacing)
    ct_path, truth_path = write_image(ct, out / "phantom_ct.nii.gz"), write_image(truth, out / "phantom_truth.nii.gz")

    print(f"2/4 segmenting {ct.GetSize()} voxels on {predictor.device} (post-processing: {args.postprocess}) ...")
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
