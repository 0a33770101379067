"""Post-processing levers on phantoms: apply each set of steps to saved predictions and score them.

    python benchmarks/bench_levers.py --pred PRED_DIR --images CT_DIR --ref REF_DIR \
        [--configs none fragments sides vertebrae ribs sides,vertebrae,ribs]

``PRED_DIR`` holds label maps from ``sneakynet segment`` (``<case>.nii.gz``), ``CT_DIR`` the CTs
they came from (``<case>_0000.nii.gz`` or ``<case>.nii.gz``), ``REF_DIR`` the reference labels.
Every configuration (comma-separated step names of ``bench_realct.STEPS``; ``none`` for the raw
prediction) post-processes every case with :func:`sneakynet.postprocess.postprocess_image` and is
scored with :mod:`sneakynet.evaluate`. Prints one Markdown row per configuration: mean DSC over
the 125 bones (absent ones count 0), bones found, median over found bones, and the mean DSC of the
groups the anatomy levers act on (vertebrae, ribs, sided bones). No inference: cheap to repeat.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sneakynet.evaluate import aggregate, evaluate_images, pair_cases
from sneakynet.io import read_image
from sneakynet.labels import load_label_table
from sneakynet.postprocess import postprocess_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_realct import postprocess_options  # noqa: E402

DEFAULT_CONFIGS = ["none", "drop,fragments,fill", "fragments", "sides", "vertebrae", "ribs", "sides,vertebrae,ribs"]


def _ct_path(images: Path, case: str) -> Path:
    for name in (f"{case}_0000.nii.gz", f"{case}.nii.gz"):
        if (images / name).is_file():
            return images / name
    raise FileNotFoundError(f"{images}: no CT for case {case} ({case}_0000.nii.gz or {case}.nii.gz)")


def score(pairs: list[tuple[str, Path, Path]], images: Path, config: str) -> dict[str, float]:
    """Post-process every case with ``config`` and return the row's figures."""
    options = postprocess_options([] if config == "none" else config.split(","))
    cases = []
    for case, pred_path, ref_path in pairs:
        pred = read_image(pred_path)
        if config != "none":
            pred = postprocess_image(pred, read_image(_ct_path(images, case)), options)
        cases.append(evaluate_images(pred, read_image(ref_path), case=case))
    result = aggregate(cases)
    table = load_label_table()
    dsc = np.nan_to_num(result.class_dsc, nan=0.0)

    def mean_of(ids: list[int]) -> float:
        return float(np.mean(dsc[np.asarray(ids) - 1]))

    return {"mean": float(dsc.mean()), "found": int(result.summary["n_nonzero"]),
            "median": float(result.summary["median"]),
            "vertebrae": mean_of(list(range(4, 28))), "ribs": mean_of(table.groups()["ribs"]),
            "sided": mean_of([b.id for b in table if b.side != "none"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", type=Path, required=True, help="predicted label maps")
    parser.add_argument("--images", type=Path, required=True, help="the CTs the predictions came from")
    parser.add_argument("--ref", type=Path, required=True, help="reference label maps")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="step sets to score")
    args = parser.parse_args(argv)
    try:
        pairs = pair_cases(args.pred, args.ref)
        rows = [(config, score(pairs, args.images, config)) for config in args.configs]
    except (OSError, ValueError) as exc:
        print(f"bench_levers: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(pairs)} cases from {args.pred.name}")
    print("| steps | mean DSC (125 bones) | bones found | median over found | vertebrae | ribs | sided bones |")
    print("|---|---|---|---|---|---|---|")
    for config, r in rows:
        print(f"| {config} | {r['mean']:.3f} | {r['found']} | {r['median']:.2f} | {r['vertebrae']:.3f} | "
              f"{r['ribs']:.3f} | {r['sided']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
