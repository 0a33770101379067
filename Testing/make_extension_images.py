#!/usr/bin/env python
"""Make the extension's images: the 128 px icons and the README / extension-index screenshot.

    .venv/bin/python Testing/make_extension_images.py icons
    .venv/bin/python Testing/make_extension_images.py screenshot [--seed 2026] [--spacing MM] [--fast]

``screenshot`` runs the module's logic (under slicer-core) with the bundled demo model on a
synthetic phantom-v2 CT (the demo's) and renders the segmentation node's closed surfaces offscreen into
``Resources/slicer_segmentation_3d.png``; the caption says which model and data it shows and the
mean Dice against the phantom's own labels. It refuses to run without the demo model.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SlicerSneakyNet"))
ICONS = (REPO / "Resources/Icons/SneakyNet.png", REPO / "SlicerSneakyNet/Resources/Icons/SneakyNet.png")
SCREENSHOT = REPO / "Resources/slicer_segmentation_3d.png"


def make_icons() -> None:
    """A 128x128 upper-body skeleton in class-like colours on a dark rounded square."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Arc, Ellipse, FancyBboxPatch

    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 128)
    ax.set_ylim(0, 128)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((4, 4), 120, 120, boxstyle="round,pad=0,rounding_size=22", fc="#1d2733", ec="none"))
    ax.add_patch(Ellipse((64, 106), 28, 22, fc="#f5c94b", ec="none"))  # cranium
    ax.plot([40, 60], [86, 84], color="#c9d6e3", lw=3.5, solid_capstyle="round")  # clavicles
    ax.plot([68, 88], [84, 86], color="#c9d6e3", lw=3.5, solid_capstyle="round")
    ax.plot([34, 28], [84, 46], color="#e58fb0", lw=4.5, solid_capstyle="round")  # humeri
    ax.plot([94, 100], [84, 46], color="#9f8fe5", lw=4.5, solid_capstyle="round")
    for i in range(6):  # ribs, one hue family per side
        y, w = 80 - i * 7.5, 56 - abs(i - 2) * 3
        ax.add_patch(Arc((64, y - 7), w, 22, theta1=95, theta2=200, lw=3, color=plt.cm.autumn(0.1 + i * 0.13)))
        ax.add_patch(Arc((64, y - 7), w, 22, theta1=-20, theta2=85, lw=3, color=plt.cm.summer(0.1 + i * 0.13)))
    for i in range(9):  # vertebrae
        y = 88 - i * 7.6
        ax.add_patch(FancyBboxPatch((59.5, y - 2.8), 9, 5.6, boxstyle="round,pad=0,rounding_size=1.8",
                                    fc=plt.cm.cool(i / 9), ec="#1d2733", lw=0.8))
    ax.add_patch(Ellipse((50, 17), 22, 13, fc="#7bd389", ec="none"))  # hip bones
    ax.add_patch(Ellipse((78, 17), 22, 13, fc="#4fb3d9", ec="none"))
    for path in ICONS:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, transparent=True)
        print(f"wrote {path}")


def make_screenshot(seed: int, spacing: float | None, fast: bool, device: str) -> None:
    import numpy as np
    import SimpleITK as sitk
    import slicer

    from sneakynet.commands.demo import demo_phantom
    from SneakyNetLib.logic import BoneSegmentationLogic, SegmentationOptions
    from SneakyNetLib.volumes import updateVolumeNodeFromImage

    scene = slicer.vtkMRMLScene()
    logic = BoneSegmentationLogic(scene)
    info = logic.modelInfo(None)  # ModelError when the demo model is not built
    if not info.demo:
        raise SystemExit("the bundled model is not flagged as a demo model; refusing to label it as one")
    spacing3 = tuple(info.spacing) if spacing is None else (spacing,) * 3  # default: the model's own grid
    ct, reference = demo_phantom(seed, spacing3)  # the demo's phantom v2: whole upper body, arms at the sides
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom_{seed:03d}")
    updateVolumeNodeFromImage(volume, ct)
    start = time.monotonic()
    result = logic.segment(volume, SegmentationOptions(device=device, fast=fast),
                           progress=lambda f, m: print(f"\r{100 * f:5.1f}% {m:40s}", end="", flush=True))
    print(f"\nsegmented {len(result.labelIds)} bones in {time.monotonic() - start:.0f} s on {result.device}")
    predicted = sitk.GetArrayViewFromImage(result.labels)
    truth = sitk.GetArrayViewFromImage(reference)
    dice = []
    for label in np.unique(truth[truth > 0]):
        p, t = predicted == label, truth == label
        dice.append(2 * np.logical_and(p, t).sum() / (p.sum() + t.sum()))
    caption = (f"SneakyNet demo model (phantom-trained, not for clinical use) on synthetic phantom CT {seed}: "
               f"{len(result.labelIds)} labels predicted, mean Dice {np.mean(dice):.2f} over all {len(dice)} "
               "phantom bones")
    print(caption)
    logic.renderSegmentation3D(result.segmentationNode, SCREENSHOT, caption=caption, size=(1400, 800))
    print(f"wrote {SCREENSHOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("icons", help="write the 128 px module and extension icons")
    shot = sub.add_parser("screenshot", help="segment a phantom with the demo model and render the 3D result")
    shot.add_argument("--seed", type=int, default=2026, help="phantom seed (the demo model was trained on seeds 5000-5047)")
    shot.add_argument("--spacing", type=float, default=None, help="phantom voxel size in mm (default: the model's)")
    shot.add_argument("--fast", action="store_true", help="no tile overlap")
    shot.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.what == "icons":
        make_icons()
    else:
        make_screenshot(args.seed, args.spacing, args.fast, args.device)


if __name__ == "__main__":
    main()
