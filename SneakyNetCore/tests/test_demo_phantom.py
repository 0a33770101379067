"""The phantom ``sneakynet demo`` shows: v2, whole upper body with the arms at the sides, never a training case."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from sneakynet.cli import build_parser
from sneakynet.commands import demo
from sneakynet.demo_model import DEMO_CASES, DEMO_PHANTOM_SEED, DEMO_SPACING
from sneakynet.labels import load_label_table


def test_the_demo_phantom_holds_most_bones_and_is_no_training_case():
    parser, subparsers = build_parser()
    demo.add_arguments(subparsers["demo"])
    args = parser.parse_args(["demo"])
    assert not DEMO_PHANTOM_SEED <= args.seed < DEMO_PHANTOM_SEED + DEMO_CASES
    assert args.postprocess == "anatomy"
    ct, labels = demo.demo_phantom(args.seed, DEMO_SPACING)
    assert ct.GetSpacing() == DEMO_SPACING and labels.GetSize() == ct.GetSize()
    present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) - {0}
    assert len(present) >= 0.9 * len(load_label_table()), f"only {len(present)} bones in view"
