"""Write a SneakyNet dataset (e.g. phantoms) in the TotalSegmentator dataset's layout.

The layout of the TotalSegmentator training data: one folder per case with ``ct.nii.gz`` and
``segmentations/<class>.nii.gz`` binary masks, and a semicolon-separated ``meta.csv``
(``image_id;split``) beside them. Labels are what that dataset has: one mask per bone class of
its ``total`` task (``resources/totalseg_mapping.json``), the sternum as one mask (our manubrium ∪
body), the skull as one (cranium ∪ mandible), and nothing for the bones it does not label (hand
bones, forearms, hyoid, coccyx). The TotalSegmentator recipe (``sneakynet import-dataset --format
totalseg`` and mixed training) is tested on phantoms written this way, since the real download
cannot run in the tests.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sneakynet.dataset import load_dataset
from sneakynet.importers import TOTALSEG_CT, TOTALSEG_MASK_DIR, TOTALSEG_META, SPLIT_PARTS, load_totalseg_mapping
from sneakynet.io import atomic_folder, write_image
from sneakynet.labels import load_label_table


def totalseg_masks() -> dict[str, list[int]]:
    """TotalSegmentator bone class -> our bone ids its mask covers (set classes cover several).

    Where two of its classes map to one of our bones (``sacrum`` and ``vertebrae_S1``), the class
    spelled like ours gets the voxels and the other an empty mask.
    """
    mapping, table = load_totalseg_mapping(), load_label_table()
    out: dict[str, list[int]] = {}
    claimed: set[int] = set()
    ordered = sorted(mapping.to_sneakynet.items(), key=lambda kv: kv[0] != kv[1])  # own spelling first
    for name, bone in ordered:
        ids = [table.by_name(b).id for b in mapping.sets[name][1]] if name in mapping.sets else [table.by_name(bone).id]
        out[name] = [i for i in ids if i not in claimed]
        claimed.update(ids)
    return dict(sorted(out.items()))


def write_totalseg_layout(dataset: str | os.PathLike, out: str | os.PathLike,
                          splits: dict[str, str] | None = None) -> list[Path]:
    """Write every case of ``dataset`` as ``<out>/<case>/ct.nii.gz`` + ``segmentations/*.nii.gz`` and
    ``<out>/meta.csv``; ``splits`` maps case id -> train/val/test (default: all train). The folder is
    built beside ``out`` and renamed into place. Returns the case folders."""
    ds = load_dataset(dataset)
    splits = splits or {}
    bad = {c: p for c, p in splits.items() if c not in ds.cases or p not in SPLIT_PARTS}
    if bad:
        raise ValueError(f"splits: unknown case(s) or parts {sorted(bad.items())[:5]} (parts: {', '.join(SPLIT_PARTS)})")
    masks = totalseg_masks()
    out = Path(out)
    with atomic_folder(out) as stage:
        for case in ds.cases:
            ct, labels = ds.read_case(case)
            folder = stage / case / TOTALSEG_MASK_DIR
            folder.mkdir(parents=True)
            if ds.file_ending == ".nii.gz":
                shutil.copyfile(ds.image_path(case), stage / case / TOTALSEG_CT)
            else:
                write_image(ct, stage / case / TOTALSEG_CT)
            arr = sitk.GetArrayViewFromImage(labels)
            for name, ids in masks.items():
                mask = sitk.GetImageFromArray(np.isin(arr, ids).astype(np.uint8))
                mask.CopyInformation(labels)
                write_image(mask, folder / f"{name}.nii.gz")
        rows = ["image_id;split"] + [f"{c};{splits.get(c, 'train')}" for c in ds.cases]
        (stage / TOTALSEG_META).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [out / c for c in ds.cases]


__all__ = ["totalseg_masks", "write_totalseg_layout"]
