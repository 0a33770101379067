"""Build the bundled demo model: phantom v2 -> lite SneakyNet (D, K=1) in two stages -> test evaluation -> package.

Stage 1 trains from random weights with the usual augmentation; stage 2 starts from stage 1's
bundle (``init_weights``) and trains on with domain randomisation (docs/realct.md). One
reproducible command on 2 CPU cores (``sneakynet build-demo``, resumable per stage): the
defaults take about 1.5 hours (48 phantoms at 4 mm: 2-5 min; stage 1, 4000 iterations at
0.51 s: about 40 min with its validations; stage 2 about the same; the 10 held-out test
phantoms: 1-2 min). The result is phantom-trained and labelled so everywhere: not for clinical use.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .intensity import CTNormalization
from .io import json_safe, write_json
from .run_folder import RunFolder

DEMO_SPACING = (4.0, 4.0, 4.0)
DEMO_WIDTHS = (16, 16, 32, 64, 112)  # lite with level 0 widened 8 -> 16 (docs/realct.md)
DEMO_CASES = 48
DEMO_PHANTOM_SEED = 5000  # case i is phantom seed 5000 + i; ``sneakynet demo`` uses none of them
DEMO_ITERATIONS = 4000  # stage 1
DEMO_DR_ITERATIONS = 3000
DEMO_CT_WINDOW = (-1000.0, 2000.0)  # HU: the shipped model's window (the training default is a bone window now)
DEMO_NORMALIZATION = CTNormalization.window(*DEMO_CT_WINDOW)
DEMO_DESCRIPTION = ("SneakyNet lite D 32/64 demo model (level 0 16 channels), trained on phantom v2 "
                    "(sneakynet phantom --size small, 4 mm) in two stages, the second with domain randomisation: "
                    "phantom-trained, not for clinical use")


def demo_phantoms(folder: Path, cases: int, phantom_seed: int, split_seed: int, progress: bool = True) -> Path:
    """The training data (unless ``folder`` holds it): ``cases`` phantom-v2 cases at 4 mm from
    ``phantom_seed`` on (as ``sneakynet phantom --size small``) and a 5-fold split drawn with ``split_seed``."""
    from .dataset import make_splits, write_splits
    from .phantom import write_cases
    from .phantom.v2 import PhantomV2Options

    folder = Path(folder)
    if not (folder / "dataset.json").exists():
        write_cases(folder, cases, phantom_seed, PhantomV2Options(spacing=DEMO_SPACING), progress=progress, version=2)
        ids = sorted(p.name[: -len("_0000.nii.gz")] for p in (folder / "imagesTr").glob("*_0000.nii.gz"))
        write_splits(folder, make_splits(ids, n_folds=5, seed=split_seed))
    return folder


def train_stage(data: Path, run: Path, iterations: int, seed: int, threads: int, progress: bool = True,
                widths: tuple[int, ...] = DEMO_WIDTHS, init_weights: Path | None = None,
                normalization: CTNormalization = DEMO_NORMALIZATION) -> Path:
    """Train one stage into ``run`` (fold 0, batch 2, Adam 1e-3 constant, CT window ``normalization``);
    a stage warm-started from ``init_weights`` trains with domain randomisation. A finished stage of the same length is kept,
    an unfinished one resumed. Returns the run folder."""
    from .train import TrainOptions, train

    folder = RunFolder(run)
    if folder.training_finished() and folder.read_json(folder.summary).get("iterations") == iterations:
        return folder.path
    options = TrainOptions(dataset=str(data), out=str(run), fold=0, variant="D", context=1, patch=32, preset="lite",
                           widths=widths, iterations=iterations, batch_size=2, lr=1e-3, lr_schedule="constant",
                           workers=1, threads=threads, val_every=max(iterations // 3, 1), ckpt_every=250,
                           spacing=DEMO_SPACING, seed=seed, demo=True, description=DEMO_DESCRIPTION,
                           progress=progress, domain_randomization=init_weights is not None,
                           init_weights=None if init_weights is None else str(init_weights),
                           normalization=normalization.to_dict(),
                           resume=folder.options.exists())
    train(options)
    return folder.path


def build_demo_model(workdir: Path, iterations: int = DEMO_ITERATIONS, dr_iterations: int = DEMO_DR_ITERATIONS,
                     cases: int = DEMO_CASES, seed: int = 0, phantom_seed: int = DEMO_PHANTOM_SEED, threads: int = 1,
                     install: Path | None = None, progress: bool = True,
                     widths: tuple[int, ...] = DEMO_WIDTHS,
                     normalization: CTNormalization = DEMO_NORMALIZATION) -> Path:
    """Make the data, train both stages and evaluate stage 2 on the fold's test cases in ``workdir``;
    copy stage 2's bundle to ``install`` (default: the package). ``seed`` seeds the split and both
    stages; ``normalization`` is the CT window of both; ``widths`` exists for tiny test networks."""
    from .fold_eval import evaluate_fold

    workdir = Path(workdir)
    data = demo_phantoms(workdir / "phantoms_v2", cases, phantom_seed, seed, progress)
    stage1 = train_stage(data, workdir / "stage1", iterations, seed, threads, progress, widths,
                         normalization=normalization)
    stage2 = train_stage(data, workdir / "stage2", dr_iterations, seed, threads, progress, widths,
                         init_weights=RunFolder(stage1).bundle, normalization=normalization)
    result = evaluate_fold(stage2, device="cpu", progress=progress)
    for stage in (stage1, stage2):
        shutil.copy(RunFolder(stage).curve, workdir / f"training_curve_{stage.name}.png")
    return install_demo_bundle(stage2, result, Path(install) if install is not None else None, workdir)


def install_demo_bundle(run: Path, result, target: Path | None, workdir: Path) -> Path:
    """Copy the run's bundle, with its test metrics, to ``target`` (default: the package's demo folder)."""
    from .bundle import demo_bundle_folder, load_bundle, save_bundle

    model, info = load_bundle(RunFolder(run).bundle)
    metrics = {"test_cases": [c.case for c in result.cases], "summary": result.summary,
               "groups": result.group_summaries, "left_right_confusion_voxels": int(result.left_right_confusion),
               "note": "DSC against phantom ground truth of held-out phantom v2 cases"}
    target = target if target is not None else demo_bundle_folder()
    save_bundle(model, target, spacing=info.spacing, intensity=info.intensity, description=info.description,
                training=info.training, demo=True, disclaimer=info.disclaimer, metrics=metrics)
    write_json(json_safe(metrics), Path(workdir) / "demo_metrics.json")
    return target
