"""Real-CT benchmark: run a model bundle on every shared real CT with a reference and score it.

    python benchmarks/bench_realct.py                       # the bundled demo model, anatomy post-processing
    python benchmarks/bench_realct.py --postprocess none    # the raw prediction (presets: none, anatomy, full)
    python benchmarks/bench_realct.py --model RUN/bundle    # any other bundle, to compare models
    python benchmarks/bench_realct.py --steps fragments,sides  # exactly these post-processing steps
    python benchmarks/bench_realct.py --levers none sides vertebrae   # predict once, score each step set

The cases (CT, TotalSegmentator reference, bones to leave out and why) come from a JSON case
list (default ``realct_cases.json`` beside this script; paths relative to ``--data``, the
shared data folder). Prints one Markdown table (one column per case; measures explained in
``docs/realct.md``), appends one JSON line per case to ``--record`` and, with ``--figures``,
writes a PNG per case (slices with labels overlaid, prediction beside reference, 3-D renders).
Real CTs are evaluation data: no model we ship is trained or tuned on them.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from sneakynet.io import atomic_path, read_image
from sneakynet.postprocess import DEFAULT_PRESET, PRESETS
from sneakynet.realct import RealCTInputError, evaluate_case, format_bones, format_table
from sneakynet.realct.reference import exclusion_ids, reference_on_grid

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = HERE / "realct_cases.json"
DEFAULT_DATA = HERE.parents[1].parent / "shared" / "data"  # the shared folder beside the repository


def load_cases(path: Path) -> list[dict]:
    """The case list; every case needs name, ct, reference, format and exclude {bone: reason}."""
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RealCTInputError(f"{path}: not a case list ({exc})") from None
    for case in cases:
        missing = {"name", "ct", "reference", "format", "exclude"} - set(case)
        if missing:
            raise RealCTInputError(f"{path}: case {case.get('name', '?')!r} lacks {sorted(missing)}")
        exclusion_ids(case["exclude"], f"{path}: case {case['name']!r}")
    return cases


def run_case(predictor, case: dict, data: Path, figures: Path | None) -> dict:
    """Predict one case, score it, optionally draw its figure; returns the JSON record."""
    ct_path, ref_path = data / case["ct"], data / case["reference"]
    ct = read_image(ct_path)
    t0 = time.perf_counter()
    labels = predictor.predict_image(ct)
    seconds = time.perf_counter() - t0
    score = evaluate_case(ct, labels, ref_path, case["format"], list(case["exclude"]))
    record = {"case": case["name"], "ct": case["ct"], "reference": case["reference"],
              "exclude": case["exclude"], "seconds": seconds, "score": score.to_dict()}
    if figures is not None:
        from sneakynet.realct.figure import case_figure

        import SimpleITK as sitk

        ref = reference_on_grid(ref_path, ct, case["format"])
        slug = re.sub(r"[^a-z0-9]+", "_", case["name"].lower()).strip("_")
        left_out = ", ".join(case["exclude"]) or "none"
        title = (f"{case['name']} ({case['ct']})\nleft: {predictor_name(predictor)}\n"
                 f"right: reference {case['reference'].split('/')[-1]} (left out, in grey: {left_out})")
        png = case_figure(ct, sitk.GetArrayFromImage(labels), ref, exclusion_ids(case["exclude"]),
                          figures / f"{slug}.png", title)
        record["figure"] = png.name
    return {"score_object": score, **record}


def predictor_name(predictor) -> str:
    """The bundle's folder name and weights hash, with the demo model's disclaimer."""
    info = predictor.info
    if info is None:
        return "in-memory model"
    name = f"{info.path.name} (sha256 {info.sha256[:12]})"
    return f"demo model {name}, phantom-trained, not for clinical use" if info.demo else name


STEPS = ("drop", "fragments", "fill", "sides", "vertebrae", "vertebra-pieces", "ribs")  # post-processing steps


def postprocess_options(steps: list[str] | None):
    """The :class:`PostprocessOptions` with exactly ``steps`` on (None: no post-processing)."""
    from sneakynet.postprocess import PostprocessOptions

    if steps is None:
        return None
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown post-processing step(s) {unknown}; choose from {', '.join(STEPS)}")
    default = PostprocessOptions()
    return PostprocessOptions(drop_below_hu=default.drop_below_hu if "drop" in steps else None,
                              fragments="fragments" in steps, fill_cavities="fill" in steps,
                              sides="sides" in steps, rib_numbers="ribs" in steps,
                              vertebra_order="slices" if "vertebrae" in steps else
                              "pieces" if "vertebra-pieces" in steps else None)


def run_benchmark(cases: list[dict], data: Path, model: Path | None = None, device: str = "cpu",
                  figures: Path | None = None, fast: bool = False, bones: bool = False,
                  postprocess: str = "anatomy", steps: list[str] | None = None,
                  mirror: bool = False) -> tuple[str, list[dict]]:
    """Run every case; returns the printed table (with per-bone lines if ``bones``) and the JSON
    records. ``fast``: no tile overlap (quick checks only; the documented table uses the default
    overlap, as ``sneakynet segment`` does); ``postprocess``: a preset of ``sneakynet.postprocess.PRESETS``
    (``none``: the raw prediction), as ``sneakynet segment --postprocess``; ``steps``: exactly these
    post-processing steps (names in ``STEPS``) instead; ``mirror``: test-time mirroring."""
    from sneakynet.infer import Predictor
    from sneakynet.postprocess import preset_options

    options = postprocess_options(steps) if steps is not None else preset_options(postprocess)
    predictor = Predictor(model, device=device, fast=fast, log=lambda m: None, postprocess=options, mirror=mirror)
    records = [run_case(predictor, case, data, figures) for case in cases]
    extra = {"prediction time (s)": [f"{r['seconds']:.1f}" for r in records]}
    scores = [(r["case"], r.pop("score_object")) for r in records]
    table = format_table(scores, extra)
    if bones:
        table += "".join(f"\n\n{name}:\n{format_bones(score)}" for name, score in scores)
    stamp = {"date": datetime.date.today().isoformat(), "model": predictor_name(predictor),
             "device": str(predictor.device),
             "fast": fast, "mirror": mirror, "postprocess": postprocess if steps is None else ",".join(steps) or "none",
             "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    return table, [{**stamp, **r} for r in records]


def run_levers(cases: list[dict], data: Path, configs: list[str], model: Path | None = None, device: str = "cpu",
               fast: bool = False) -> tuple[str, list[dict]]:
    """Predict each case once, then score it after each post-processing step set of ``configs``
    (comma-separated ``STEPS`` names; ``none``: the raw prediction). Returns one table per case (a
    column per step set) and one JSON record per case and step set."""
    from sneakynet.infer import Predictor
    from sneakynet.postprocess import postprocess_image

    options = {c: postprocess_options([] if c == "none" else c.split(",")) for c in configs}  # fail early
    predictor = Predictor(model, device=device, fast=fast, log=lambda m: None)
    stamp = {"date": datetime.date.today().isoformat(), "model": predictor_name(predictor), "fast": fast}
    tables, records = [], []
    for case in cases:
        ct = read_image(data / case["ct"])
        raw = predictor.predict_image(ct)
        scores = []
        for config in configs:
            t0 = time.perf_counter()
            labels = raw if config == "none" else postprocess_image(raw, ct, options[config])
            seconds = time.perf_counter() - t0
            score = evaluate_case(ct, labels, data / case["reference"], case["format"], list(case["exclude"]))
            scores.append((config, score))
            records.append({**stamp, "case": case["name"], "steps": config, "postprocess_seconds": seconds,
                            "score": score.to_dict()})
        tables.append(f"{case['name']} ({predictor_name(predictor)}):\n\n" + format_table(scores))
    return "\n\n".join(tables), records


def write_records(records: list[dict], path: Path) -> None:
    """Replace ``path`` with one JSON line per case (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the bundled demo model)")
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="case list JSON")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder the case paths start in")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--record", type=Path, default=HERE.parent / "docs" / "bench_realct.jsonl",
                        help="JSON lines output (replaced)")
    parser.add_argument("--figures", type=Path, default=None, help="folder for one PNG per case")
    parser.add_argument("--fast", action="store_true", help="no tile overlap (quick check; not for the docs)")
    parser.add_argument("--mirror", action="store_true", help="test-time mirroring (as segment --mirror)")
    parser.add_argument("--bones", action="store_true", help="also print per-bone DSC, level and side per case")
    parser.add_argument("--postprocess", choices=list(PRESETS), default=DEFAULT_PRESET, metavar="PRESET",
                        help=f"post-processing preset ({', '.join(PRESETS)}; default {DEFAULT_PRESET}, as segment "
                        "does; none scores the raw prediction)")
    parser.add_argument("--steps", type=lambda t: [x for x in t.split(",") if x], default=None, metavar="A,B",
                        help=f"exactly these post-processing steps ({', '.join(STEPS)}; '' for none), "
                        "to measure each lever")
    parser.add_argument("--levers", nargs="+", default=None, metavar="A,B",
                        help="predict once, then score each of these step sets ('none' = raw), a column each")
    args = parser.parse_args(argv)
    try:
        cases = load_cases(args.cases)
        if not args.data.is_dir():
            raise RealCTInputError(f"{args.data}: shared data folder not found (give it with --data)")
        if args.levers:
            table, records = run_levers(cases, args.data, args.levers, args.model, args.device, args.fast)
        else:
            table, records = run_benchmark(cases, args.data, args.model, args.device, args.figures, args.fast,
                                           args.bones, args.postprocess, args.steps, args.mirror)
    except (RealCTInputError, FileNotFoundError, ValueError) as exc:
        print(f"bench_realct: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    write_records(records, args.record)
    figures = f" and figures in {os.path.relpath(args.figures)}" if args.figures else ""
    print(f"wrote {os.path.relpath(args.record)}{figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
