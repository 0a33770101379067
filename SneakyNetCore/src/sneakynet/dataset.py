"""The SneakyNet dataset folder: nnU-Net v2 raw layout, the 125-bone label table, k-fold splits.

Layout (compatible with nnU-Net v2 "raw" datasets, so the same folder trains an nnU-Net baseline)::

    <folder>/dataset.json                 channel_names {"0": "CT"}, labels {"background": 0, name: id},
                                          numTraining, file_ending (".nii.gz"), optional name/description
    <folder>/imagesTr/<case>_0000.nii.gz  CT in Hounsfield units, any orientation (LPS world geometry)
    <folder>/labelsTr/<case>.nii.gz       label map on the *same* voxel grid, values 0..125 of the table
    <folder>/splits.json                  optional k-fold cross-validation (see :func:`make_splits`)

Label names and ids in ``dataset.json`` must be those of :func:`sneakynet.labels.load_label_table`
(a subset is allowed, ids must agree).

Partial and set-valued labels: an optional ``"label_sets"`` key declares which bones the dataset
annotates (value 0 then means background or any bone it does not annotate) and *set values*
126..255 that stand for several bones at once (the TotalSegmentator importer writes its sternum
as 200 = manubrium ∪ body and its skull as 201 = cranium ∪ mandible). Label maps may then hold
those values too. Format and meaning: :mod:`sneakynet.label_sets`; :meth:`Dataset.label_sets`
gives a case's declaration (``None`` without the key: every value is its own bone). Every problem found while loading raises :class:`DatasetError`
(a ``ValueError``) whose message starts with the offending file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from sneakynet.io import ImageReadError, read_image, read_json, write_json
from sneakynet.label_sets import LABEL_SETS_KEY, DatasetLabelSets, LabelSets, LabelSetsError, parse_dataset_label_sets
from sneakynet.labels import NUM_BONES, load_label_table

DATASET_JSON = "dataset.json"
SPLITS_JSON = "splits.json"
IMAGES_DIR = "imagesTr"
LABELS_DIR = "labelsTr"
CHANNEL_SUFFIX = "_0000"  # single CT channel, nnU-Net naming
DEFAULT_FILE_ENDING = ".nii.gz"

# Geometry tolerances between a CT and its label map. NIfTI stores the affine as float32, so
# headers written by different tools differ in the 6th digit; anything larger is a real mismatch.
SPACING_RTOL = 1e-3  # relative, per axis
ORIGIN_TOL_VOXELS = 0.01  # absolute, as a fraction of the smallest spacing (0.01 mm at 1 mm)
DIRECTION_ATOL = 1e-3  # absolute, per direction-cosine entry

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class DatasetError(ValueError):
    """A dataset folder, file or split is invalid; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------
# dataset.json


def make_dataset_json(
    num_training: int,
    name: str = "SneakyNet",
    description: str = "",
    file_ending: str = DEFAULT_FILE_ENDING,
    extra: dict | None = None,
) -> dict:
    """The ``dataset.json`` content for a SneakyNet dataset (nnU-Net v2 keys plus provenance)."""
    table = load_label_table()
    labels = {"background": 0}
    labels.update({b.name: b.id for b in table})
    data = {
        "name": name,
        "description": description,
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": int(num_training),
        "file_ending": file_ending,
        "sneakynet_label_table_version": table.version,
    }
    if extra:
        data.update(extra)
    return data


def write_json_atomic(data: object, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically and read back (see :func:`sneakynet.io.write_json`)."""
    return write_json(data, path)


def _read_json(path: Path) -> object:
    return read_json(path, DatasetError)


def _validate_dataset_json(data: object, path: Path) -> tuple[dict[str, int], str]:
    """Check the nnU-Net v2 keys; return (labels name -> id, file_ending)."""
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    missing = [k for k in ("channel_names", "labels", "numTraining", "file_ending") if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)} (nnU-Net v2 dataset.json)")
    channels = data["channel_names"]
    if not isinstance(channels, dict) or list(channels) != ["0"]:
        raise DatasetError(f"{path}: channel_names must be exactly {{\"0\": \"CT\"}} (one CT channel), got {channels!r}")
    if str(channels["0"]).upper() != "CT":
        raise DatasetError(f"{path}: channel 0 must be CT, got {channels['0']!r}")
    file_ending = data["file_ending"]
    if not isinstance(file_ending, str) or not file_ending.startswith("."):
        raise DatasetError(f"{path}: file_ending must be a string like '.nii.gz', got {file_ending!r}")
    n = data["numTraining"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise DatasetError(f"{path}: numTraining must be a non-negative integer, got {n!r}")
    labels = data["labels"]
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{path}: labels must be a non-empty object {{name: id}}")
    if labels.get("background") != 0:
        raise DatasetError(f"{path}: labels must map 'background' to 0")
    table = load_label_table()
    out: dict[str, int] = {}
    for name, value in labels.items():
        if isinstance(value, list):
            raise DatasetError(f"{path}: label {name!r} is region-based ({value}); SneakyNet needs one id per label")
        if not isinstance(value, int) or isinstance(value, bool):
            raise DatasetError(f"{path}: label {name!r} must have an integer id, got {value!r}")
        if name == "background":
            out[name] = 0
            continue
        try:
            bone = table.by_name(name)
        except KeyError:
            raise DatasetError(
                f"{path}: label {name!r} is not in the SneakyNet label table "
                "(import foreign datasets with 'sneakynet import-dataset')"
            ) from None
        if bone.id != value:
            raise DatasetError(f"{path}: label {name!r} has id {value}, the label table says {bone.id}")
        out[name] = value
    return out, file_ending


# ----------------------------------------------------------------------------------------------
# geometry and label checks


def geometry_mismatch(image: sitk.Image, labels: sitk.Image) -> str | None:
    """Describe how the voxel grids of ``image`` and ``labels`` differ, or None if they agree.

    Size must be equal; spacing, origin (LPS mm) and direction within the module tolerances.
    """
    if image.GetDimension() != labels.GetDimension():
        return f"dimension {labels.GetDimension()} differs from the image's {image.GetDimension()}"
    if image.GetSize() != labels.GetSize():
        return f"size {labels.GetSize()} differs from the image's {image.GetSize()}"
    sp_i, sp_l = np.array(image.GetSpacing()), np.array(labels.GetSpacing())
    if not np.allclose(sp_l, sp_i, rtol=SPACING_RTOL, atol=0):
        return f"spacing {tuple(sp_l.round(6))} differs from the image's {tuple(sp_i.round(6))} mm"
    tol = ORIGIN_TOL_VOXELS * float(sp_i.min())
    o_i, o_l = np.array(image.GetOrigin()), np.array(labels.GetOrigin())
    if np.abs(o_l - o_i).max() > tol:
        return f"origin {tuple(o_l.round(4))} differs from the image's {tuple(o_i.round(4))} mm (tolerance {tol:g} mm)"
    d_i, d_l = np.array(image.GetDirection()), np.array(labels.GetDirection())
    if np.abs(d_l - d_i).max() > DIRECTION_ATOL:
        return f"direction {tuple(d_l.round(4))} differs from the image's {tuple(d_i.round(4))}"
    return None


class LabelMapError(DatasetError):
    """A label map holds something other than integer labels in range; the message names the file.

    The one exception of :func:`label_value_counts`, the label-map check that the dataset, the
    importers, :mod:`sneakynet.metrics` and :mod:`sneakynet.export.labelmap` share.
    """


def label_value_counts(labels: sitk.Image | np.ndarray, source: str | os.PathLike,
                       max_label: int = 65535) -> np.ndarray:
    """Voxel count per label value 0..max as int64 array, after the one label-map value check:
    integer values (a float map must hold whole numbers), none negative, none above ``max_label``."""
    arr = sitk.GetArrayViewFromImage(labels) if isinstance(labels, sitk.Image) else np.asarray(labels)
    if arr.size == 0:
        raise LabelMapError(f"{source}: label map is empty")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise LabelMapError(f"{source}: has non-integer voxel values ({arr.dtype}, range {np.nanmin(arr):g}.."
                                f"{np.nanmax(arr):g}); this looks like a CT or probability map, not a label map")
    elif arr.dtype.kind not in "iub":
        raise LabelMapError(f"{source}: label map pixel type {arr.dtype} is not an integer type")
    lo, hi = arr.min(), arr.max()
    if lo < 0:
        raise LabelMapError(f"{source}: has negative values (min {lo:g}, {arr.dtype}); this looks like a CT in "
                            f"Hounsfield units, not a label map with values 0..{min(max_label, NUM_BONES)}")
    if hi > max_label:
        too_big = np.unique(arr[arr > max_label])
        shown = ", ".join(f"{v:g}" for v in too_big[:5]) + (", ..." if too_big.size > 5 else "")
        hint = " (a CT?)" if hi > 255 and max_label < 255 else ""
        raise LabelMapError(f"{source}: label values {shown} are outside 0..{max_label} (max {hi:g}){hint}; "
                            "not a SneakyNet bone label map")
    flat = arr.reshape(-1)
    counts = np.zeros(int(hi) + 1, dtype=np.int64)
    step = 1 << 24  # bounded temporary memory on whole-body volumes
    for start in range(0, flat.size, step):
        counts += np.bincount(flat[start : start + step].astype(np.intp), minlength=counts.size)
    return counts


def check_label_values(
    labels: sitk.Image | np.ndarray, source: str | os.PathLike, allowed: Iterable[int] | None = None
) -> np.ndarray:
    """Raise :class:`LabelMapError` for values outside ``allowed`` (default 0..125); return the counts."""
    counts = label_value_counts(labels, source)
    allowed_set = set(range(NUM_BONES + 1)) if allowed is None else {int(a) for a in allowed}
    present = np.flatnonzero(counts)
    bad = [int(v) for v in present if int(v) not in allowed_set]
    if bad:
        shown = ", ".join(f"{v} ({int(counts[v])} voxels)" for v in bad[:8])
        more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
        limit = f"0..{NUM_BONES}" if allowed is None else "the labels of dataset.json"
        raise LabelMapError(f"{source}: label value(s) {shown}{more} outside {limit}")
    return counts


def _check_scalar_3d(image: sitk.Image, path: Path, what: str) -> None:
    if image.GetDimension() != 3:
        raise DatasetError(f"{path}: {what} must be 3-D, got {image.GetDimension()}-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(f"{path}: {what} must have one component per voxel, got {image.GetNumberOfComponentsPerPixel()}")


# ----------------------------------------------------------------------------------------------
# the dataset


@dataclass
class Dataset:
    """A validated dataset folder: the case ids and the label ids it may contain."""

    folder: Path
    cases: list[str]
    labels: dict[str, int]  # name -> id, "background" included
    file_ending: str = DEFAULT_FILE_ENDING
    meta: dict = field(default_factory=dict)  # the whole dataset.json
    sets: DatasetLabelSets | None = None  # the "label_sets" declaration, None without one

    def label_sets(self, case_id: str) -> LabelSets | None:
        """What each label value of ``case_id`` stands for; None: every value is its own bone."""
        return None if self.sets is None else self.sets.for_case(case_id)

    @property
    def label_names(self) -> dict[int, str]:
        """id -> name."""
        return {v: k for k, v in self.labels.items()}

    def image_path(self, case_id: str) -> Path:
        return self.folder / IMAGES_DIR / f"{case_id}{CHANNEL_SUFFIX}{self.file_ending}"

    def label_path(self, case_id: str) -> Path:
        return self.folder / LABELS_DIR / f"{case_id}{self.file_ending}"

    def read_case(self, case_id: str) -> tuple[sitk.Image, sitk.Image]:
        """(CT, label map) of one case; see :func:`read_case`."""
        if case_id not in self.cases:
            raise DatasetError(f"{self.folder / DATASET_JSON}: no case {case_id!r} in this dataset")
        image_path, label_path = self.image_path(case_id), self.label_path(case_id)
        try:
            ct = read_image(image_path)
            labels = read_image(label_path)
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from None
        _check_scalar_3d(ct, image_path, "CT image")
        _check_scalar_3d(labels, label_path, "label map")
        problem = geometry_mismatch(ct, labels)
        if problem:
            raise DatasetError(f"{label_path}: {problem} ({image_path.name})")
        sets = self.label_sets(case_id)
        allowed = set(self.labels.values()) | (set(sets.sets) if sets is not None else set())
        check_label_values(labels, label_path, allowed)
        labels = sitk.Cast(labels, sitk.sitkUInt8)
        labels.CopyInformation(ct)  # exact grid of the CT from here on
        return ct, labels


def load_dataset(folder: str | os.PathLike) -> Dataset:
    """Read and validate ``dataset.json`` and the file listing of a dataset folder.

    Checks: valid nnU-Net v2 keys, labels from the SneakyNet table, every ``imagesTr/<case>_0000``
    has its ``labelsTr/<case>``, no extra channels, and ``numTraining`` equals the case count.
    Image contents are checked per case by :meth:`Dataset.read_case`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: dataset folder does not exist")
    json_path = folder / DATASET_JSON
    meta = _read_json(json_path)
    labels, ending = _validate_dataset_json(meta, json_path)
    images_dir, labels_dir = folder / IMAGES_DIR, folder / LABELS_DIR
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: folder is missing")
    cases: list[str] = []
    for p in sorted(images_dir.iterdir()):
        if p.name.startswith(".") or not p.name.endswith(ending):
            continue
        stem = p.name[: -len(ending)]
        if not re.search(r"_\d{4}$", stem):
            raise DatasetError(f"{p}: image name must end with _0000{ending} (nnU-Net channel suffix)")
        if not stem.endswith(CHANNEL_SUFFIX):
            raise DatasetError(f"{p}: extra channel {stem[-5:]}; SneakyNet datasets have one CT channel (_0000)")
        cases.append(stem[: -len(CHANNEL_SUFFIX)])
    for case in cases:
        if not (labels_dir / f"{case}{ending}").is_file():
            raise DatasetError(f"{labels_dir / (case + ending)}: label map of case {case!r} is missing")
    if meta["numTraining"] != len(cases):
        raise DatasetError(
            f"{json_path}: numTraining is {meta['numTraining']} but {images_dir} holds {len(cases)} case(s)"
        )
    sets = None
    if LABEL_SETS_KEY in meta:
        try:
            sets = parse_dataset_label_sets(meta[LABEL_SETS_KEY], str(json_path), set(cases))
        except LabelSetsError as exc:
            raise DatasetError(str(exc)) from None
    return Dataset(folder=folder, cases=cases, labels=labels, file_ending=ending, meta=meta, sets=sets)


def read_case(folder: str | os.PathLike | Dataset, case_id: str) -> tuple[sitk.Image, sitk.Image]:
    """(CT in HU as stored, label map as UInt8 on exactly the CT's grid) of one case.

    Raises :class:`DatasetError` for missing/unreadable files, a label map whose size, spacing,
    origin or direction differs from the CT's (beyond the tolerances above), or label values
    outside those of ``dataset.json``.
    """
    ds = folder if isinstance(folder, Dataset) else load_dataset(folder)
    return ds.read_case(case_id)


# ----------------------------------------------------------------------------------------------
# k-fold splits


def default_n_val(n_cases: int) -> int:
    """Validation cases per fold: 1/8 of the cases, at least 1 (the paper: 2 of 16)."""
    return max(1, int(n_cases / 8 + 0.5))


def make_splits(
    case_ids: Sequence[str], n_folds: int = 5, seed: int = 0, n_val: int | None = None
) -> list[dict[str, list[str]]]:
    """k-fold cross-validation with a validation set, in the paper's scheme (§2.2).

    Rule: the case ids are sorted, shuffled with ``seed`` and cut into ``min(n_folds, N)`` test
    chunks whose sizes differ by at most one (larger chunks first), so every case is in the test set
    of exactly one fold. Fold f validates on the first ``n_val`` cases of the following chunks
    (f+1, f+2, ... cyclically), so validation and test never overlap and each case validates in
    at most one fold while ``n_val`` <= chunk size; the rest trains. ``n_val`` defaults to
    :func:`default_n_val` (2 for 16 cases).

    With 16 cases and 5 folds the test chunks are 4, 3, 3, 3, 3: four folds are exactly the
    paper's 11 train / 2 val / 3 test and one is 10 / 2 / 4 (5 x 3 = 15 < 16, so the paper's
    numbers cannot hold in every fold if every case is tested exactly once).

    Returns one dict per fold with sorted lists ``train``, ``val`` and ``test``.
    """
    ids = [str(c) for c in case_ids]
    if len(set(ids)) != len(ids):
        dupes = sorted({c for c in ids if ids.count(c) > 1})
        raise ValueError(f"make_splits: duplicate case ids {dupes}")
    n = len(ids)
    if n < 3:
        raise ValueError(f"make_splits: need at least 3 cases for train/val/test, got {n}")
    if n_folds < 2:
        raise ValueError(f"make_splits: n_folds must be at least 2, got {n_folds}")
    folds = min(n_folds, n)
    rng = np.random.default_rng(seed)
    order = [sorted(ids)[i] for i in rng.permutation(n)]
    chunks = [list(c) for c in np.array_split(np.array(order, dtype=object), folds)]
    max_test = max(len(c) for c in chunks)
    limit = n - max_test - 1  # keep at least one training case in every fold
    if n_val is None:
        n_val = min(default_n_val(n), limit)
    if not 0 <= n_val <= limit:
        raise ValueError(f"make_splits: n_val must be in 0..{limit} for {n} cases in {folds} folds, got {n_val}")
    splits = []
    for f in range(folds):
        test = chunks[f]
        rest = [c for g in range(1, folds) for c in chunks[(f + g) % folds]]
        val = rest[:n_val]
        train = rest[n_val:]
        splits.append({"train": sorted(train), "val": sorted(val), "test": sorted(test)})
    return splits


def write_splits(
    folder: str | os.PathLike,
    splits: list[dict[str, list[str]]] | None = None,
    n_folds: int = 5,
    seed: int = 0,
    n_val: int | None = None,
    description: str | None = None,
) -> Path:
    """Write ``<folder>/splits.json`` (atomic); splits default to :func:`make_splits` of the dataset's cases.
    ``description`` says where given ``splits`` come from (default: the k-fold scheme's)."""
    ds = load_dataset(folder)
    if splits is None:
        splits = make_splits(ds.cases, n_folds=n_folds, seed=seed, n_val=n_val)
    _validate_splits(splits, set(ds.cases), Path(folder) / SPLITS_JSON)
    data = {
        "description": description or "k-fold cross-validation: every case is in the test set of exactly one "
        "fold (sneakynet.dataset.make_splits)",
        "seed": seed,
        "n_folds": len(splits),
        "folds": [{"fold": i, **s} for i, s in enumerate(splits)],
    }
    return write_json_atomic(data, Path(folder) / SPLITS_JSON)


def _validate_splits(splits: object, known: set[str], path: Path) -> list[dict[str, list[str]]]:
    if not isinstance(splits, list) or not splits:
        raise DatasetError(f"{path}: folds must be a non-empty list")
    out = []
    for i, fold in enumerate(splits):
        if not isinstance(fold, dict) or not all(isinstance(fold.get(k), list) for k in ("train", "val", "test")):
            raise DatasetError(f"{path}: fold {i} must have lists 'train', 'val' and 'test'")
        parts = {k: [str(c) for c in fold[k]] for k in ("train", "val", "test")}
        if not parts["train"]:
            raise DatasetError(f"{path}: fold {i} has no training cases")
        for k, cases in parts.items():
            unknown = sorted(set(cases) - known)
            if unknown:
                raise DatasetError(f"{path}: fold {i} {k} lists unknown case(s) {unknown[:5]}")
            if len(set(cases)) != len(cases):
                raise DatasetError(f"{path}: fold {i} {k} lists a case twice")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = sorted(set(parts[a]) & set(parts[b]))
            if both:
                raise DatasetError(f"{path}: fold {i} has case(s) {both[:5]} in both {a} and {b}")
        out.append(parts)
    return out


def read_splits(folder: str | os.PathLike) -> list[dict[str, list[str]]]:
    """The folds of ``<folder>/splits.json``, checked against the dataset's cases."""
    ds = load_dataset(folder)
    path = Path(folder) / SPLITS_JSON
    data = _read_json(path)
    if not isinstance(data, dict) or "folds" not in data:
        raise DatasetError(f"{path}: must be an object with a 'folds' list")
    return _validate_splits(data["folds"], set(ds.cases), path)


def valid_case_id(case_id: str) -> bool:
    """Case ids are file-name safe: letters, digits, '_', '-', '.', not starting with a dot."""
    return bool(_CASE_ID.match(case_id)) and not case_id.endswith(CHANNEL_SUFFIX)
