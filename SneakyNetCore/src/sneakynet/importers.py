"""Import foreign CT datasets into the SneakyNet dataset format (see :mod:`sneakynet.dataset`).

Two sources:

* **nnU-Net raw** (v2, or v1 with ``labels {"1": name}``): ``imagesTr/<case>_0000<ending>``,
  ``labelsTr/<case><ending>``, ``dataset.json``. Each source label name is resolved in this order:
  a user mapping (``--mapping``), the SneakyNet table name itself, a TotalSegmentator class name
  from ``resources/totalseg_mapping.json`` (TotalSegmentator trains on nnU-Net datasets with these
  names), else background. Only channel 0 is imported and it must be CT.
* **TotalSegmentator style**: a folder per case holding ``ct.nii.gz`` and either
  ``segmentations/<class>.nii.gz`` binary masks (the layout of the TotalSegmentator training
  data) or one multilabel map ``segmentations.nii.gz`` whose values follow TotalSegmentator v2's
  ``total`` class map (``TotalSegmentator --ml``). ``SRC`` may also be a single case folder.

The class mapping ships as ``resources/totalseg_mapping.json`` (all 117 ``total`` classes, the 62
bone classes mapped, the choices explained: vertebrae_S1 -> sacrum, clavicula -> clavicle). Its
``sets`` are TotalSegmentator classes that hold several of our bones: sternum -> value 200 =
manubrium ∪ body, skull -> value 201 = cranium ∪ mandible. Both importers write a ``label_sets``
declaration (:mod:`sneakynet.label_sets`) into ``dataset.json``: those set values, and the bones
the source annotates, so that its background stands for background or any other bone (hands, ...).
Everything unmapped becomes background and is reported with its voxel count.

TotalSegmentator extras: a ``meta.csv`` beside the case folders (semicolon-separated, columns
``image_id`` and ``split`` = train/val/test) becomes ``splits.json`` (one fold); cases without a
voxel of any of our bones are skipped and listed; the report counts cases and voxels per bone. The output folder is built beside ``DST`` and renamed into place at the end, so a
failed import never leaves a half-written dataset.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from sneakynet.dataset import (
    CHANNEL_SUFFIX,
    DATASET_JSON,
    DEFAULT_FILE_ENDING,
    IMAGES_DIR,
    LABELS_DIR,
    DatasetError,
    geometry_mismatch,
    label_value_counts,
    make_dataset_json,
    valid_case_id,
    write_splits,
)
from sneakynet.io import (ImageReadError, OutputWriteError, atomic_folder, atomic_path, read_json, read_volume,
                          write_image, write_json)
from sneakynet.label_sets import LABEL_SETS_KEY, LabelSets
from sneakynet.labels import NUM_CLASSES, load_label_table

BACKGROUND = "background"
IMPORT_REPORT_JSON = "import_report.json"
TOTALSEG_CT = "ct.nii.gz"
TOTALSEG_MASK_DIR = "segmentations"
TOTALSEG_MULTILABEL = "segmentations.nii.gz"
TOTALSEG_META = "meta.csv"
SPLIT_PARTS = ("train", "val", "test")

Progress = Callable[[int, int, str], None]  # (cases done, cases total, case id)


class DatasetImportError(DatasetError):
    """A source dataset or mapping cannot be imported; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------
# mapping


@dataclass(frozen=True)
class TotalSegMapping:
    """TotalSegmentator v2 ``total`` class map and its translation to SneakyNet bone names."""

    classes: dict[int, str]  # TotalSegmentator value -> class name
    to_sneakynet: dict[str, str]  # TotalSegmentator class name -> SneakyNet bone name
    choices: dict[str, str]  # documented mapping decisions
    sets: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # class -> (set value, our bones)


@lru_cache(maxsize=None)
def load_totalseg_mapping() -> TotalSegMapping:
    """The packaged mapping ``resources/totalseg_mapping.json`` (validated against the label table)."""
    source = "sneakynet/resources/totalseg_mapping.json"
    with resources.as_file(resources.files("sneakynet").joinpath("resources/totalseg_mapping.json")) as packaged:
        data = read_json(packaged, DatasetImportError, "packaged TotalSegmentator mapping")
    classes = {int(k): str(v) for k, v in data["classes"].items()}
    to = {str(k): str(v) for k, v in data["to_sneakynet"].items()}
    _check_targets(to, source)
    unknown = sorted(set(to) - set(classes.values()))
    if unknown:
        raise DatasetImportError(f"{source}: to_sneakynet names unknown TotalSegmentator classes {unknown}")
    sets = {str(k): (int(v["value"]), tuple(v["bones"])) for k, v in data.get("sets", {}).items()}
    for name, (value, bones) in sets.items():
        _check_targets({name: b for b in bones}, source)
        if not NUM_CLASSES <= value <= 255 or name not in to:
            raise DatasetImportError(f"{source}: set {name!r} needs a value in {NUM_CLASSES}..255 and a to_sneakynet entry")
    return TotalSegMapping(classes=classes, to_sneakynet=to, choices=dict(data.get("choices", {})), sets=sets)


def _check_targets(mapping: dict[str, str], source: str) -> None:
    table = load_label_table()
    for src, dst in mapping.items():
        if dst == BACKGROUND:
            continue
        try:
            table.by_name(dst)
        except KeyError:
            raise DatasetImportError(
                f"{source}: {src!r} maps to {dst!r}, which is neither a SneakyNet bone name nor 'background'"
            ) from None


def read_user_mapping(path: str | os.PathLike) -> dict[str, str]:
    """A user mapping file: ``{source_name: sneakynet_name | "background"}``, or an object with a
    ``to_sneakynet`` member of that form (a copy of the packaged mapping, edited)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetImportError(f"{p}: mapping file does not exist")
    data = read_json(p, DatasetImportError, "mapping file")
    if isinstance(data, dict) and "to_sneakynet" in data:
        data = data["to_sneakynet"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise DatasetImportError(f"{p}: must be a JSON object {{source class name: SneakyNet bone name}}")
    _check_targets(data, str(p))
    return dict(data)


def resolve_name(name: str, user_mapping: dict[str, str] | None = None) -> str:
    """SneakyNet name for a source class name: user mapping, own table name, TotalSegmentator name,
    else ``"background"``."""
    if user_mapping and name in user_mapping:
        return user_mapping[name]
    table = load_label_table()
    try:
        return table.by_name(name).name
    except KeyError:
        pass
    return load_totalseg_mapping().to_sneakynet.get(name, BACKGROUND)


def resolve_target(name: str, user_mapping: dict[str, str] | None = None) -> tuple[str, int]:
    """(our name, label value) for a source class: a TotalSegmentator set class (not user-mapped, not
    one of our names) -> ("bone+bone", its set value); otherwise :func:`resolve_name` and the bone's id."""
    table = load_label_table()
    sets = load_totalseg_mapping().sets
    if name in sets and not (user_mapping and name in user_mapping) and name not in {b.name for b in table}:
        value, bones = sets[name]
        return "+".join(bones), value
    target = resolve_name(name, user_mapping)
    return target, (table.by_name(target).id if target != BACKGROUND else 0)


def import_label_sets(source_names: list[str], user_mapping: dict[str, str] | None = None) -> LabelSets:
    """The label sets of data whose classes are ``source_names``: the bones they map to are annotated
    (set members included), the set values of :func:`resolve_target` declared."""
    table = load_label_table()
    annotated: set[int] = set()
    sets: dict[int, frozenset[int]] = {}
    for name in source_names:
        target, value = resolve_target(name, user_mapping)
        if value >= NUM_CLASSES:
            members = frozenset(table.by_name(b).id for b in target.split("+"))
            sets[value] = members
            annotated |= members
        elif value:
            annotated.add(value)
    return LabelSets(annotated=frozenset(annotated), sets=sets)


# ----------------------------------------------------------------------------------------------
# report


@dataclass
class ClassCount:
    """Voxels of one source class in one case and where they went."""

    source_name: str
    source_value: int | None  # label value in a multilabel source; None for a binary mask file
    target_name: str  # SneakyNet bone name or "background"
    target_id: int
    voxels: int


@dataclass
class CaseImport:
    case_id: str
    classes: list[ClassCount] = field(default_factory=list)
    overlap_voxels: int = 0  # binary masks only: voxels claimed by more than one mapped mask


@dataclass
class ImportReport:
    """What an import did, per case and class; written to ``<DST>/import_report.json``."""

    format: str
    source: str
    destination: str
    cases: list[CaseImport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # cases left out: not a voxel of any of our bones
    split: dict[str, list[str]] | None = None  # from the source's meta.csv (TotalSegmentator)

    def bone_counts(self) -> dict[str, dict[str, int]]:
        """Our bone (or set, "a+b") -> {"cases": cases holding it, "voxels": voxels over all cases}."""
        out: dict[str, dict[str, int]] = {}
        for case in self.cases:
            for name in {c.target_name for c in case.classes if c.target_id}:
                n = sum(c.voxels for c in case.classes if c.target_name == name)
                entry = out.setdefault(name, {"cases": 0, "voxels": 0})
                entry["cases"] += 1
                entry["voxels"] += n
        return out

    def mapped_voxels(self) -> dict[str, int]:
        """SneakyNet bone name -> imported voxels over all cases."""
        out: dict[str, int] = {}
        for case in self.cases:
            for c in case.classes:
                if c.target_id:
                    out[c.target_name] = out.get(c.target_name, 0) + c.voxels
        return out

    def unmapped_voxels(self) -> dict[str, int]:
        """Source class name -> voxels set to background over all cases (source background excluded)."""
        out: dict[str, int] = {}
        for case in self.cases:
            for c in case.classes:
                if not c.target_id and c.source_name != BACKGROUND:
                    out[c.source_name] = out.get(c.source_name, 0) + c.voxels
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mapped_voxels"] = self.mapped_voxels()
        data["unmapped_voxels"] = self.unmapped_voxels()
        data["bone_counts"] = self.bone_counts()
        return data

    def summary(self) -> str:
        """A short human-readable summary for the CLI."""
        mapped, unmapped, counts = self.mapped_voxels(), self.unmapped_voxels(), self.bone_counts()
        lines = [
            f"imported {len(self.cases)} case(s) from {self.source} ({self.format}) into {self.destination}",
            f"bones present: {len(mapped)}, {sum(mapped.values())} voxels",
        ]
        lines += [f"  {name}: {counts[name]['cases']} case(s), {n} voxels" for name, n in mapped.items()]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} case(s) without a voxel of any of our bones: "
                         + ", ".join(self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else ""))
        if self.split is not None:
            lines.append("split from " + TOTALSEG_META + ": "
                         + ", ".join(f"{len(self.split[p])} {p}" for p in SPLIT_PARTS))
        if unmapped:
            lines.append(f"unmapped classes set to background: {len(unmapped)}, {sum(unmapped.values())} voxels")
            lines += [f"  {name}: {n}" for name, n in sorted(unmapped.items(), key=lambda kv: -kv[1])]
        overlaps = sum(c.overlap_voxels for c in self.cases)
        if overlaps:
            lines.append(f"voxels claimed by more than one mask (last mask wins): {overlaps}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# output folder handling


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse a destination that is a file, a non-empty folder (without ``overwrite``) or overlaps ``src``."""
    if dst.exists() and not dst.is_dir():
        raise DatasetImportError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise DatasetImportError(f"{dst}: folder exists and is not empty (use --overwrite to replace it)")
    s, d = src.resolve(), dst.resolve()
    if s == d or s in d.parents or d in s.parents:
        raise DatasetImportError(f"{dst}: overlaps the source {src}; importing would replace the source data")


ConvertCase = Callable[[object], tuple[str, Path, sitk.Image, np.ndarray, CaseImport]]


def _import_cases(src: Path, dst: Path, overwrite: bool, report: ImportReport, items: list, convert: ConvertCase,
                  description: str, progress: Progress | None, sets: LabelSets | None = None,
                  skip_empty: bool = False) -> ImportReport:
    """The staging loop both importers share: convert each case, write its CT and labels into a
    staging folder beside ``dst``, then publish the finished dataset (:func:`sneakynet.io.atomic_folder`).
    ``sets``: the label sets to declare (none when trivial); ``skip_empty``: leave out cases without
    a voxel of our bones (listed in ``report.skipped``)."""
    _check_destination(src, dst, overwrite)
    with atomic_folder(dst) as stage:
        (stage / IMAGES_DIR).mkdir()
        (stage / LABELS_DIR).mkdir()
        for i, item in enumerate(items):
            case, ct_path, ct, labels, entry = convert(item)
            if skip_empty and not any(c.target_id for c in entry.classes):
                report.skipped.append(case)
            else:
                _write_ct(ct_path, ct, stage / IMAGES_DIR / f"{case}{CHANNEL_SUFFIX}{DEFAULT_FILE_ENDING}")
                _write_labels(ct, labels, stage / LABELS_DIR / f"{case}{DEFAULT_FILE_ENDING}")
                report.cases.append(entry)
            if progress:
                progress(i + 1, len(items), case)
        if not report.cases:
            raise DatasetImportError(f"{src}: none of the {len(items)} case(s) holds a voxel of any SneakyNet bone")
        extra: dict = {"sneakynet_import": {"format": report.format, "source": report.source}}
        if sets is not None and not sets.trivial:
            extra[LABEL_SETS_KEY] = sets.to_json()
        meta = make_dataset_json(num_training=len(report.cases), name=dst.name, description=description,
                                 extra=extra)
        write_json(report.to_dict(), stage / IMPORT_REPORT_JSON)
        write_json(meta, stage / DATASET_JSON)
    return report


def _read(path: Path) -> sitk.Image:
    try:
        return read_volume(path, "must be a 3-D scalar image")
    except ImageReadError as exc:
        raise DatasetImportError(str(exc)) from None


def _write_ct(src_path: Path, ct: sitk.Image, dst_path: Path) -> None:
    """Copy a ``.nii.gz`` CT byte for byte (lossless, fast); convert other formats with SimpleITK."""
    if src_path.name.endswith(DEFAULT_FILE_ENDING):
        with atomic_path(dst_path, verify=lambda tmp: _same_size(src_path, tmp)) as tmp:
            shutil.copyfile(src_path, tmp)
    else:
        write_image(ct, dst_path)


def _same_size(src: Path, copy: Path) -> None:
    if copy.stat().st_size != src.stat().st_size:
        raise OutputWriteError(copy, f"copy of {src} has {copy.stat().st_size} of {src.stat().st_size} bytes")


def _write_labels(ct: sitk.Image, labels: np.ndarray, dst_path: Path) -> None:
    img = sitk.GetImageFromArray(labels.astype(np.uint8, copy=False))
    img.CopyInformation(ct)
    write_image(img, dst_path)


# ----------------------------------------------------------------------------------------------
# nnU-Net raw


def _nnunet_labels(meta: dict, path: Path) -> dict[int, str]:
    """Source label value -> name, from nnU-Net v2 ``{name: id}`` or v1 ``{"id": name}``."""
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise DatasetImportError(f"{path}: 'labels' must be a non-empty object")
    out: dict[int, str] = {}
    if all(isinstance(k, str) and k.isdigit() and isinstance(v, str) for k, v in labels.items()):
        out = {int(k): v for k, v in labels.items()}  # nnU-Net v1
    else:
        for name, value in labels.items():
            if isinstance(value, list):
                raise DatasetImportError(
                    f"{path}: label {name!r} is region-based ({value}); only plain label maps can be imported"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise DatasetImportError(f"{path}: label {name!r} must have a non-negative integer id, got {value!r}")
            if value in out:
                raise DatasetImportError(f"{path}: labels {out[value]!r} and {name!r} share id {value}")
            out[value] = name
    out[0] = BACKGROUND  # nnU-Net: value 0 is background whatever it is called
    return out


def _nnunet_cases(images_dir: Path, labels_dir: Path, suffix: str, ending: str) -> list[str]:
    """Case ids of an nnU-Net raw dataset; each needs a file-name safe id and a label map."""
    if not images_dir.is_dir():
        raise DatasetImportError(f"{images_dir}: folder is missing")
    cases = sorted(p.name[: -len(suffix)] for p in images_dir.iterdir() if p.name.endswith(suffix))
    if not cases:
        raise DatasetImportError(f"{images_dir}: no images named <case>{suffix}")
    for case in cases:
        if not valid_case_id(case):
            raise DatasetImportError(f"{images_dir / (case + suffix)}: case id {case!r} is not file-name safe")
        if not (labels_dir / f"{case}{ending}").is_file():
            raise DatasetImportError(f"{labels_dir / (case + ending)}: label map of case {case!r} is missing")
    return cases


def import_nnunet(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    user_mapping: dict[str, str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import an nnU-Net raw dataset folder into a SneakyNet dataset at ``dst``; returns the report."""
    src, dst = Path(src), Path(dst)
    json_path = src / DATASET_JSON
    if not json_path.is_file():
        raise DatasetImportError(f"{json_path}: file is missing (is {src} an nnU-Net raw dataset?)")
    meta = read_json(json_path, DatasetImportError, "dataset.json")
    if not isinstance(meta, dict):
        raise DatasetImportError(f"{json_path}: must hold a JSON object")
    value_names = _nnunet_labels(meta, json_path)
    channels = meta.get("channel_names", meta.get("modality", {"0": "CT"}))
    report = ImportReport(format="nnunet", source=str(src), destination=str(dst))
    if not isinstance(channels, dict) or "0" not in channels:
        raise DatasetImportError(f"{json_path}: channel_names must list channel \"0\"")
    if str(channels["0"]).upper() != "CT":
        raise DatasetImportError(f"{json_path}: channel 0 is {channels['0']!r}; SneakyNet imports CT only")
    if len(channels) > 1:
        report.notes.append(f"source has {len(channels)} channels; only channel 0 (CT) was imported")
    ending = meta.get("file_ending", DEFAULT_FILE_ENDING)
    images_dir, labels_dir = src / IMAGES_DIR, src / LABELS_DIR
    suffix = f"{CHANNEL_SUFFIX}{ending}"
    cases = _nnunet_cases(images_dir, labels_dir, suffix, ending)
    resolved = {v: resolve_target(n, user_mapping) if v else (BACKGROUND, 0) for v, n in value_names.items()}
    targets = {v: name for v, (name, _) in resolved.items()}
    lut = np.zeros(max(value_names) + 1, dtype=np.uint8)
    for v, (_, target_value) in resolved.items():
        lut[v] = target_value

    def convert(case: str) -> tuple[str, Path, sitk.Image, np.ndarray, CaseImport]:
        image_path, label_path = images_dir / f"{case}{suffix}", labels_dir / f"{case}{ending}"
        ct, labels = _read(image_path), _read(label_path)
        problem = geometry_mismatch(ct, labels)
        if problem:
            raise DatasetImportError(f"{label_path}: {problem} ({image_path.name})")
        counts = label_value_counts(labels, label_path)
        bad = [int(v) for v in np.flatnonzero(counts) if int(v) not in value_names]
        if bad:
            raise DatasetImportError(f"{label_path}: label value(s) {bad[:8]} are not listed in {json_path}")
        arr = sitk.GetArrayViewFromImage(labels)
        out = lut[arr.astype(np.intp, copy=False)] if arr.dtype != np.uint8 else lut[arr]
        entry = CaseImport(case_id=case)
        for v in np.flatnonzero(counts):
            entry.classes.append(ClassCount(
                source_name=value_names[int(v)], source_value=int(v), target_name=targets[int(v)],
                target_id=int(lut[v]), voxels=int(counts[v]),
            ))
        return case, image_path, ct, out, entry

    sets = import_label_sets([n for v, n in value_names.items() if v], user_mapping)
    return _import_cases(src, dst, overwrite, report, cases, convert,
                         f"imported from nnU-Net raw dataset {src.name}", progress, sets=sets)


# ----------------------------------------------------------------------------------------------
# TotalSegmentator


def _totalseg_cases(src: Path) -> list[Path]:
    if not src.is_dir():
        raise DatasetImportError(f"{src}: source folder does not exist")
    if (src / TOTALSEG_CT).is_file():
        return [src]  # a single case folder
    cases = []
    for p in sorted(src.iterdir()):
        if not p.is_dir() or p.name.startswith((".", "__")):
            continue
        if not (p / TOTALSEG_CT).is_file():
            raise DatasetImportError(f"{p / TOTALSEG_CT}: file is missing (every case folder needs its CT)")
        cases.append(p)
    if not cases:
        raise DatasetImportError(f"{src}: no case folders with {TOTALSEG_CT} found")
    return cases


def _import_totalseg_multilabel(
    ct: sitk.Image, path: Path, mapping: TotalSegMapping, user_mapping: dict[str, str] | None, entry: CaseImport
) -> np.ndarray:
    labels = _read(path)
    problem = geometry_mismatch(ct, labels)
    if problem:
        raise DatasetImportError(f"{path}: {problem} (ct.nii.gz)")
    counts = label_value_counts(labels, path)
    bad = [int(v) for v in np.flatnonzero(counts) if v and int(v) not in mapping.classes]
    if bad:
        raise DatasetImportError(
            f"{path}: value(s) {bad[:8]} are not TotalSegmentator v2 'total' classes (1..{max(mapping.classes)})"
        )
    lut = np.zeros(max(max(mapping.classes), counts.size - 1) + 1, dtype=np.uint8)
    for value, name in mapping.classes.items():
        lut[value] = resolve_target(name, user_mapping)[1]
    for v in np.flatnonzero(counts):
        if v == 0:
            continue
        name = mapping.classes[int(v)]
        entry.classes.append(ClassCount(
            source_name=name, source_value=int(v), target_name=resolve_target(name, user_mapping)[0],
            target_id=int(lut[v]), voxels=int(counts[v]),
        ))
    arr = sitk.GetArrayViewFromImage(labels)
    return lut[arr.astype(np.intp, copy=False)] if arr.dtype != np.uint8 else lut[arr]


def _import_totalseg_masks(
    ct: sitk.Image, folder: Path, mapping: TotalSegMapping, user_mapping: dict[str, str] | None, entry: CaseImport
) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".nii.gz") and not p.name.startswith("."))
    if not files:
        raise DatasetImportError(f"{folder}: no binary masks <class>.nii.gz found")
    out = np.zeros(ct.GetSize()[::-1], dtype=np.uint8)
    for p in files:
        name = p.name[: -len(".nii.gz")]
        target, target_id = resolve_target(name, user_mapping)
        mask_img = _read(p)
        problem = geometry_mismatch(ct, mask_img)
        if problem:
            raise DatasetImportError(f"{p}: {problem} (ct.nii.gz)")
        mask = sitk.GetArrayViewFromImage(mask_img) != 0
        n = int(np.count_nonzero(mask))
        if n == 0:
            continue
        if target_id:
            entry.overlap_voxels += int(np.count_nonzero(out[mask]))
            out[mask] = target_id
        entry.classes.append(ClassCount(
            source_name=name, source_value=None, target_name=target, target_id=target_id, voxels=n,
        ))
    return out


def import_totalseg(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    user_mapping: dict[str, str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import TotalSegmentator-style case folders into a SneakyNet dataset at ``dst``.

    Each case folder (its name becomes the case id) holds ``ct.nii.gz`` and either
    ``segmentations/*.nii.gz`` binary masks or a ``segmentations.nii.gz`` multilabel map with
    TotalSegmentator v2 ``total`` values. Masks that overlap: the later file (sorted by name) wins,
    and the overlap is counted in the report.
    """
    src, dst = Path(src), Path(dst)
    mapping = load_totalseg_mapping()
    cases = _totalseg_cases(src)
    for case_dir in cases:
        if not valid_case_id(case_dir.name):
            raise DatasetImportError(f"{case_dir}: folder name {case_dir.name!r} is not a file-name safe case id")
        has_dir, has_ml = (case_dir / TOTALSEG_MASK_DIR).is_dir(), (case_dir / TOTALSEG_MULTILABEL).is_file()
        if has_dir and has_ml:
            raise DatasetImportError(
                f"{case_dir}: holds both {TOTALSEG_MASK_DIR}/ and {TOTALSEG_MULTILABEL}; keep one of them"
            )
        if not (has_dir or has_ml):
            raise DatasetImportError(
                f"{case_dir}: needs {TOTALSEG_MASK_DIR}/<class>.nii.gz masks or a {TOTALSEG_MULTILABEL} label map"
            )
    report = ImportReport(format="totalseg", source=str(src), destination=str(dst))
    def convert(case_dir: Path) -> tuple[str, Path, sitk.Image, np.ndarray, CaseImport]:
        ct_path = case_dir / TOTALSEG_CT
        ct = _read(ct_path)
        entry = CaseImport(case_id=case_dir.name)
        if (case_dir / TOTALSEG_MULTILABEL).is_file():
            out = _import_totalseg_multilabel(ct, case_dir / TOTALSEG_MULTILABEL, mapping, user_mapping, entry)
        else:
            out = _import_totalseg_masks(ct, case_dir / TOTALSEG_MASK_DIR, mapping, user_mapping, entry)
        return case_dir.name, ct_path, ct, out, entry

    meta_path = src / TOTALSEG_META
    meta = read_totalseg_meta(meta_path, [c.name for c in cases]) if meta_path.is_file() else None
    names = list(mapping.classes.values()) + list(user_mapping or {})
    _import_cases(src, dst, overwrite, report, cases, convert, f"imported from TotalSegmentator-style folder {src.name}",
                  progress, sets=import_label_sets(names, user_mapping), skip_empty=True)
    if meta is not None:
        imported = [c.case_id for c in report.cases]
        report.split = {part: [c for c in imported if meta[c] == part] for part in SPLIT_PARTS}
        if report.split["train"]:
            write_splits(dst, [report.split], description=f"the train/val/test split of the source's {TOTALSEG_META} "
                         "(one fold; sneakynet.importers.import_totalseg)")
        else:
            report.notes.append(f"{meta_path}: no imported case is in the train split; no splits.json written")
    return report


def read_totalseg_meta(path: Path, case_ids: list[str]) -> dict[str, str]:
    """Case id -> train/val/test from TotalSegmentator's ``meta.csv`` (``;``-separated, columns
    ``image_id`` and ``split``); every case folder must be listed (extra rows are ignored)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetImportError(f"{path}: cannot be read ({exc})") from None
    if not rows or not {"image_id", "split"} <= set(rows[0]):
        raise DatasetImportError(f"{path}: needs the semicolon-separated columns image_id and split")
    split = {}
    for i, row in enumerate(rows, start=2):
        part = (row.get("split") or "").strip()
        if part not in SPLIT_PARTS:
            raise DatasetImportError(f"{path}: line {i}: split {part!r} is not one of {', '.join(SPLIT_PARTS)}")
        split[(row.get("image_id") or "").strip()] = part
    missing = [c for c in case_ids if c not in split]
    if missing:
        raise DatasetImportError(f"{path}: case folder(s) {missing[:5]} are not listed (image_id)")
    return split


IMPORTERS: dict[str, Callable[..., ImportReport]] = {"nnunet": import_nnunet, "totalseg": import_totalseg}
