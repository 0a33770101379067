"""Test-set evaluation at the end of a cross-validation fold.

Predicts every test case of the fold with the run's final bundle (the same predictor users run)
and scores it with :func:`sneakynet.evaluate.evaluate_folders`; the reports go to
``<run>/test/`` (predictions in ``<run>/test/predictions``).
"""
from __future__ import annotations

import os
from typing import Callable

from .dataset import load_dataset
from .evaluate import EvaluationResult, evaluate_folders
from .infer import Predictor
from .io import write_image
from .run_folder import RunFolder


def evaluate_fold(run_dir: str | os.PathLike, device: str = "auto", hd95: bool = False,
                  progress: bool = True, log: Callable[[str], None] = print) -> EvaluationResult:
    """Segment the test cases of a finished run (``<run>/splits.json``) and score them."""
    run = RunFolder(run_dir)
    split, options = run.read_json(run.splits, OSError), run.read_json(run.options, OSError)
    dataset = load_dataset(options["dataset"])
    predictor = Predictor(run.bundle, device=device, log=log)
    pred_dir, ref_dir = run.test_predictions, run.test_references
    for case_id in split["test"]:
        ct, labels = dataset.read_case(case_id)
        prediction = predictor.segment(ct)
        write_image(prediction.labels, pred_dir / f"{case_id}.nii.gz")
        write_image(labels, ref_dir / f"{case_id}.nii.gz")
        if progress:
            log(f"test case {case_id}: {prediction.stats.tiles} tiles, {prediction.stats.seconds:.1f} s")
    return evaluate_folders(pred_dir, ref_dir, run.test, hd95=hd95, progress=progress)
