"""Loading training cases: the fold's case ids, and the one path from a CT and its label map to
sampler input on the model grid.

The CT goes through :func:`sneakynet.geometry.to_model_grid`, exactly as the predictor's input does
(LPS axis order, linear resampling to the model spacing, ``ceil`` sizing); the labels are
resampled nearest-neighbour onto that grid in physical space. A model trained on these cases
therefore sees its training patches on the grid it will be run on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from sneakynet.geometry import to_model_grid
from sneakynet.intensity import DEFAULT_CT_NORMALIZATION, CTNormalization, normalize_ct
from sneakynet.label_sets import LabelSets
from sneakynet.labels import NUM_CLASSES
from sneakynet.train_options import TrainError, TrainOptions


def patient_axes(direction: Sequence[float]) -> tuple[int, int]:
    """(left-right, superior-inferior) array axes of a (z, y, x) array from a SimpleITK direction.

    The direction (row-major 3x3, LPS) has one column per index axis i, j, k; the index axis with
    the largest |x| (R->L) component runs left-right, the one with the largest |z| runs S-I. Array
    axis = 2 - index axis because ``sitk.GetArrayFromImage`` returns (k, j, i).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    lr_index = int(np.argmax(np.abs(d[0])))
    si_index = int(np.argmax(np.abs(d[2])))
    if lr_index == si_index:
        raise ValueError(f"direction {tuple(np.round(d.ravel(), 3))} is degenerate (no distinct L-R and S-I axes)")
    return 2 - lr_index, 2 - si_index


@dataclass
class TrainingCase:
    """One case held in memory for sampling: normalised CT and labels as (z, y, x) arrays."""

    case_id: str
    image: np.ndarray  # float32, normalize_ct applied
    labels: np.ndarray  # uint8, 0..125 (and the set values of ``sets``)
    spacing: tuple[float, float, float]  # mm, array order (z, y, x)
    lr_axis: int  # array axis running patient left-right (mirroring)
    si_axis: int  # array axis running superior-inferior (rotations are about it)
    sets: LabelSets | None = None  # what each label value stands for; None: every value is its own bone

    @classmethod
    def from_images(
        cls,
        case_id: str,
        ct: sitk.Image,
        labels: sitk.Image,
        spacing_xyz: Sequence[float] | None = None,
        normalization: CTNormalization = DEFAULT_CT_NORMALIZATION,
        sets: LabelSets | None = None,
    ) -> "TrainingCase":
        """Build from SimpleITK images (HU CT and its label map, same physical space) on the model grid
        of ``spacing_xyz`` mm (x, y, z; default: the CT's own spacing, then only reoriented).
        ``sets``: the case's label sets (set values above 125 allowed in the labels then)."""
        stats = sitk.MinimumMaximumImageFilter()
        stats.Execute(labels)
        top = max(sets.values) if sets is not None else NUM_CLASSES - 1
        if stats.GetMinimum() < 0 or stats.GetMaximum() > top:
            raise ValueError(f"case {case_id}: label values outside 0..{top}")
        spacing = tuple(float(s) for s in (ct.GetSpacing() if spacing_xyz is None else spacing_xyz))
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive values in mm, got {spacing}")
        model_ct = to_model_grid(ct, spacing)  # type: ignore[arg-type]
        model_labels = sitk.Resample(labels, model_ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                     sitk.sitkUInt8)
        lr_axis, si_axis = patient_axes(model_ct.GetDirection())
        return cls(
            case_id=case_id,
            image=normalize_ct(sitk.GetArrayViewFromImage(model_ct), normalization),
            labels=sitk.GetArrayFromImage(model_labels),
            spacing=tuple(float(s) for s in model_ct.GetSpacing()[::-1]),  # type: ignore[arg-type]
            lr_axis=lr_axis,
            si_axis=si_axis,
            sets=None if sets is None or sets.trivial else sets,
        )


def case_on_model_grid(case_id: str, ct: sitk.Image, labels: sitk.Image, spacing: Sequence[float],
                       normalization: CTNormalization, sets: LabelSets | None = None) -> TrainingCase:
    """:meth:`TrainingCase.from_images` at ``spacing`` mm (x, y, z): the grid the predictor uses."""
    return TrainingCase.from_images(case_id, ct, labels, spacing, normalization, sets)


def load_fold(options: TrainOptions) -> tuple[Any, dict[str, list[str]]]:
    """The dataset and the train/val/test case ids of ``options.fold``.

    Uses ``<dataset>/splits.json`` when present, else the default :func:`make_splits` of the cases.
    """
    from sneakynet.dataset import SPLITS_JSON, DatasetError, load_dataset, make_splits, read_splits

    try:
        ds = load_dataset(options.dataset)
        if (Path(options.dataset) / SPLITS_JSON).is_file():
            folds = read_splits(options.dataset)
        else:
            folds = make_splits(ds.cases)
    except (DatasetError, ValueError) as exc:
        raise TrainError(str(exc)) from None
    if not 0 <= options.fold < len(folds):
        raise TrainError(f"{Path(options.dataset) / SPLITS_JSON}: no fold {options.fold} (the dataset has "
                         f"{len(folds)} folds, 0..{len(folds) - 1})")
    return ds, folds[options.fold]


@dataclass
class FoldSource:
    """One dataset of a run: its fold, sampling weight and the prefix of its case ids in the run."""

    dataset: Any  # sneakynet.dataset.Dataset
    split: dict[str, list[str]]
    weight: float
    prefix: str  # "" for a single-dataset run; "<folder name>__" when datasets are mixed

    def run_ids(self, part: str) -> list[str]:
        """The case ids of ``part`` (train/val/test) as the run names them."""
        return [self.prefix + c for c in self.split[part]]


def _prefixes(folders: Sequence[str]) -> list[str]:
    """Case-id prefixes of mixed datasets: the folder name (file-name safe), numbered when names repeat."""
    import re

    names = [re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(f).resolve().name) or "dataset" for f in folders]
    return [f"{n}{i if names.count(n) > 1 else ''}__" for i, n in enumerate(names)]


def load_sources(options: TrainOptions) -> list[FoldSource]:
    """Every dataset of the run (``options.dataset_entries()``) with its fold ``options.fold``."""
    entries = options.dataset_entries()
    prefixes = _prefixes([d for d, _ in entries]) if len(entries) > 1 else [""]
    out = []
    for (folder, weight), prefix in zip(entries, prefixes):
        single = replace(options, dataset=folder, datasets=())
        ds, split = load_fold(single)
        out.append(FoldSource(ds, split, weight, prefix))
    return out


def merged_split(sources: Sequence[FoldSource]) -> dict[str, list[str]]:
    """train/val/test case ids of all sources as the run names them."""
    return {part: [c for s in sources for c in s.run_ids(part)] for part in ("train", "val", "test")}


def load_cases(ds, case_ids: Sequence[str], options: TrainOptions, show: bool, prefix: str = "") -> list:
    """Read, resample and normalise cases (tqdm progress on the main process); each case carries
    its label sets and is named ``prefix + case id``."""
    from tqdm import tqdm

    from sneakynet.dataset import DatasetError

    norm = CTNormalization.from_dict(options.normalization)
    out = []
    for case_id in tqdm(case_ids, desc="loading cases", disable=not (show and options.progress), leave=False):
        try:
            ct, labels = ds.read_case(case_id)
        except DatasetError as exc:
            raise TrainError(str(exc)) from None
        out.append(case_on_model_grid(prefix + case_id, ct, labels, options.spacing, norm, ds.label_sets(case_id)))
    return out


__all__ = ["FoldSource", "TrainingCase", "case_on_model_grid", "load_cases", "load_fold", "load_sources",
           "merged_split", "patient_axes"]
