"""The run folder of a training run: one class owns every file name in it.

::

    <run>/options.json            the options (a resumed run must agree on what changes results)
    <run>/splits.json             train / val / test case ids of the fold used
    <run>/checkpoints/iter_*/     last checkpoints (safetensors + JSON, see sneakynet.checkpoint)
    <run>/metrics.jsonl           one JSON object per logged step and per validation
    <run>/training_curve.png      loss and validation DSC over iterations
    <run>/best/                   model bundle of the best validation DSC so far
    <run>/bundle/                 model bundle at the end of training
    <run>/summary.json            final numbers (loss, DSC, timing, weight hashes of all ranks)
    <run>/test/                   the fold's test cases: predictions/, references/, summary.json, CSVs
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sneakynet.checkpoint import CHECKPOINT_DIR


class RunFolder:
    """Paths of one run folder (``RunFolder(path).bundle`` etc.); creates nothing by itself."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    options = property(lambda self: self.path / "options.json", doc="the stored training options")
    splits = property(lambda self: self.path / "splits.json", doc="train / val / test case ids")
    checkpoints = property(lambda self: self.path / CHECKPOINT_DIR, doc="checkpoint folders")
    metrics = property(lambda self: self.path / "metrics.jsonl", doc="metrics, one JSON line per row")
    curve = property(lambda self: self.path / "training_curve.png", doc="the training curve")
    best = property(lambda self: self.path / "best", doc="bundle of the best validation DSC")
    bundle = property(lambda self: self.path / "bundle", doc="bundle at the end of training")
    summary = property(lambda self: self.path / "summary.json", doc="final numbers of the training")
    test = property(lambda self: self.path / "test", doc="evaluation of the fold's test cases")
    test_predictions = property(lambda self: self.test / "predictions", doc="predicted test label maps")
    test_references = property(lambda self: self.test / "references", doc="reference test label maps")
    test_summary = property(lambda self: self.test / "summary.json", doc="test evaluation summary")
    test_confusion = property(lambda self: self.test / "confusion_all.csv", doc="test confusion matrix")

    def training_finished(self) -> bool:
        """The final summary and bundle exist (written last by training)."""
        return self.summary.is_file() and self.bundle.is_dir()

    def read_json(self, path: Path, error: type[Exception] = ValueError) -> Any:
        """One of this folder's JSON files; a damaged or absent one raises ``error`` naming it."""
        from sneakynet.io import read_json

        return read_json(path, error, "run file")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically and verified (NaN/inf stored as null)."""
    from sneakynet.io import json_safe, write_json

    write_json(json_safe(data), path)


class MetricsLog:
    """Append-only JSON lines; on resume, lines past the checkpoint's iteration are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict]:
        """The rows written so far, up to the first damaged line."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: the rest is not trustworthy
        return rows

    def truncate(self, iteration: int) -> None:
        """Drop rows past ``iteration`` (a resumed run writes them again)."""
        from sneakynet.io import atomic_path

        rows = [r for r in self.read() if int(r.get("iteration", 0)) <= iteration]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows), encoding="utf-8")

    def append(self, row: dict) -> None:
        """Add one row and flush it."""
        from sneakynet.io import json_safe

        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
            f.flush()


__all__ = ["MetricsLog", "RunFolder", "write_json"]
