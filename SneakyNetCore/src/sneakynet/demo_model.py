"""Build the bundled demo model: phantoms -> lite SneakyNet (D, K=1) -> test evaluation -> package.

One reproducible command on 2 CPU cores (``sneakynet build-demo``, about 70 minutes). The result is
phantom-trained and labelled so everywhere: not for clinical or real-CT use.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .io import json_safe, write_json
from .run_folder import RunFolder

DEMO_SPACING = (4.0, 4.0, 4.0)
DEMO_DESCRIPTION = ("SneakyNet lite D 32/64 demo model, trained on synthetic phantoms (sneakynet phantom, 4 mm): "
                    "phantom-trained demo, not for clinical or real-CT use")


def build_demo_model(workdir: Path, iterations: int = 4000, cases: int = 14, seed: int = 0, threads: int = 1,
                     install: Path | None = None, progress: bool = True) -> Path:
    """Train and evaluate the demo model in ``workdir``; copy the bundle to ``install`` (default: the package)."""
    from .dataset import make_splits, write_splits
    from .fold_eval import evaluate_fold
    from .phantom import PhantomOptions, write_cases
    from .train import TrainOptions, train

    workdir = Path(workdir)
    data = workdir / "phantoms"
    if not (data / "dataset.json").exists():
        write_cases(data, cases, seed, PhantomOptions(spacing=DEMO_SPACING), progress=progress, version=1)
        ids = sorted(p.name[: -len("_0000.nii.gz")] for p in (data / "imagesTr").glob("*_0000.nii.gz"))
        write_splits(data, make_splits(ids, n_folds=5, seed=seed))
    run = workdir / "run"
    options = TrainOptions(dataset=str(data), out=str(run), fold=0, variant="D", context=1, patch=32, preset="lite",
                           iterations=iterations, batch_size=2, workers=1, threads=threads,
                           val_every=max(iterations // 3, 1), ckpt_every=250, spacing=DEMO_SPACING, seed=seed,
                           demo=True, description=DEMO_DESCRIPTION, progress=progress,
                           resume=RunFolder(run).options.exists())
    train(options)
    result = evaluate_fold(run, device="cpu", progress=progress)
    return install_demo_bundle(run, result, Path(install) if install is not None else None, workdir)


def install_demo_bundle(run: Path, result, target: Path | None, workdir: Path) -> Path:
    """Copy the run's bundle, with its test metrics, to ``target`` (default: the package's demo folder)."""
    from .bundle import demo_bundle_folder, load_bundle, save_bundle

    model, info = load_bundle(RunFolder(run).bundle)
    metrics = {"test_cases": [c.case for c in result.cases], "summary": result.summary,
               "groups": result.group_summaries, "left_right_confusion_voxels": int(result.left_right_confusion),
               "note": "DSC against phantom ground truth of held-out phantom cases"}
    target = target if target is not None else demo_bundle_folder()
    save_bundle(model, target, spacing=info.spacing, intensity=info.intensity, description=info.description,
                training=info.training, demo=True, disclaimer=info.disclaimer, metrics=metrics)
    write_json(json_safe(metrics), Path(workdir) / "demo_metrics.json")
    shutil.copy(RunFolder(run).curve, Path(workdir) / "training_curve.png")
    return target
