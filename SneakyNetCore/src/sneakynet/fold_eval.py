"""Test-set evaluation at the end of a cross-validation fold.

Predicts every test case of the fold with the run's final bundle (the same predictor users run)
and scores it like :func:`sneakynet.evaluate.evaluate_folders`; the reports go to
``<run>/test/`` (predictions in ``<run>/test/predictions``). A mixed run (several ``--dataset``)
evaluates the test cases of every dataset under their run names; a partially labelled case
(:mod:`sneakynet.label_sets`) is scored on its certain voxels only (no HD95), and its reference file holds
each set's first class (background for the background set) for viewing.
"""
from __future__ import annotations

import os
from typing import Callable

import SimpleITK as sitk

from .dataset import Dataset, load_dataset
from .evaluate import CaseMetrics, EvaluationResult, aggregate, evaluate_arrays, evaluate_images, write_reports
from .infer import Predictor
from .io import write_image
from .run_folder import RunFolder
from .train_options import parse_dataset_entry


def run_datasets(options: dict, split: dict) -> dict[str, tuple[Dataset, str]]:
    """Run case id -> (dataset, case id there) for the test cases of a run's ``options.json``/``splits.json``."""
    if not split.get("datasets"):
        dataset = load_dataset(options["dataset"])
        return {c: (dataset, c) for c in split["test"]}
    folders = [parse_dataset_entry(e)[0] for e in options["datasets"]]
    out = {}
    for folder, part in zip(folders, split["datasets"]):
        dataset = load_dataset(folder)
        out.update({part["prefix"] + c: (dataset, c) for c in part["test"]})
    return out


def _score(case_id: str, prediction: sitk.Image, reference: sitk.Image, sets, hd95: bool) -> tuple[CaseMetrics, sitk.Image]:
    """Metrics of one test case and the reference image written beside the prediction."""
    if sets is None:
        return evaluate_images(prediction, reference, hd95=hd95, case=case_id), reference
    ref, certain = sets.resolve(sitk.GetArrayViewFromImage(reference))
    pred = sitk.GetArrayViewFromImage(prediction)
    metrics = evaluate_arrays(pred[certain], ref[certain], case=case_id)
    metrics.spacing = tuple(float(s) for s in prediction.GetSpacing()[::-1])
    image = sitk.GetImageFromArray(ref)
    image.CopyInformation(reference)
    return metrics, image


def evaluate_fold(run_dir: str | os.PathLike, device: str = "auto", hd95: bool = False,
                  progress: bool = True, log: Callable[[str], None] = print) -> EvaluationResult:
    """Segment the test cases of a finished run (``<run>/splits.json``) and score them."""
    run = RunFolder(run_dir)
    split, options = run.read_json(run.splits, OSError), run.read_json(run.options, OSError)
    cases = run_datasets(options, split)
    predictor = Predictor(run.bundle, device=device, log=log)
    pred_dir, ref_dir = run.test_predictions, run.test_references
    scored = []
    for case_id in split["test"]:
        dataset, own_id = cases[case_id]
        ct, labels = dataset.read_case(own_id)
        prediction = predictor.segment(ct)
        metrics, reference = _score(case_id, prediction.labels, labels, dataset.label_sets(own_id), hd95)
        write_image(prediction.labels, pred_dir / f"{case_id}.nii.gz")
        write_image(reference, ref_dir / f"{case_id}.nii.gz")
        scored.append(metrics)
        if progress:
            log(f"test case {case_id}: {prediction.stats.tiles} tiles, {prediction.stats.seconds:.1f} s")
    result = aggregate(scored)
    result.files = write_reports(result, run.test)
    return result
