"""A tiny synthetic dataset folder for the training tests (no phantom generator needed).

Each case is a 40^3 volume at 4 mm: air, an elliptic 'body' of soft tissue, and six box-shaped
'bones' (three left, three right, mirror images of each other) whose positions jitter per case.
Left and right boxes look alike locally, so only context tells them apart.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet.dataset import make_dataset_json, write_json_atomic, write_splits
from sneakynet.io import write_image
from sneakynet.labels import load_label_table

TINY_WIDTHS = (4, 4, 8, 8, 16)  # channel widths of the training tests' networks
SHAPE = (40, 40, 40)  # z, y, x
SPACING = 4.0  # mm


def _case(seed: int) -> tuple[sitk.Image, sitk.Image]:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    ct = np.full(SHAPE, -1000, dtype=np.int16)
    body = ((y - 20) / 15.0) ** 2 + ((x - 20) / 18.0) ** 2 <= 1.0
    ct[body] = 40
    labels = np.zeros(SHAPE, dtype=np.uint8)
    table = load_label_table()
    pairs = [("humerus_left", "humerus_right"), ("rib_left_1", "rib_right_1"), ("clavicle_left", "clavicle_right")]
    for i, (left, right) in enumerate(pairs):
        z0 = 6 + 10 * i + int(rng.integers(-2, 3))
        y0 = 14 + int(rng.integers(-2, 3))
        dx = 9 + int(rng.integers(-1, 2))
        for name, sign in ((left, 1), (right, -1)):  # LPS: +x is patient left
            bone = table.by_name(name).id
            xc = 20 + sign * dx
            box = (slice(z0, z0 + 6), slice(y0, y0 + 8), slice(xc - 3, xc + 3))
            labels[box] = bone
            ct[box] = 700 + int(rng.integers(-50, 50))
    ct = (ct + rng.normal(0, 20, SHAPE)).astype(np.int16)
    images = []
    for arr in (ct, labels):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((SPACING,) * 3)
        img.SetOrigin((-80.0, -80.0, 0.0))
        images.append(img)
    return images[0], images[1]


def make_tiny_dataset(folder: Path, n_cases: int = 4, seed: int = 0) -> Path:
    """Write an nnU-Net-style dataset folder with ``splits.json``; returns the folder."""
    folder = Path(folder)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    names = [name for pair in [("humerus_left", "humerus_right"), ("rib_left_1", "rib_right_1"),
                               ("clavicle_left", "clavicle_right")] for name in pair]
    for i in range(n_cases):
        ct, labels = _case(seed * 1000 + i)
        write_image(ct, folder / "imagesTr" / f"tiny_{i:03d}_0000.nii.gz")
        write_image(labels, folder / "labelsTr" / f"tiny_{i:03d}.nii.gz")
    meta = make_dataset_json(n_cases, name="tiny", description="synthetic boxes for training tests")
    table = load_label_table()
    meta["labels"] = {"background": 0, **{n: table.by_name(n).id for n in names}}
    write_json_atomic(meta, folder / "dataset.json")
    write_splits(folder)
    return folder


if __name__ == "__main__":
    print(make_tiny_dataset(Path(sys.argv[1])))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny dataset, made once per test module that imports this fixture."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread in every test of a module that imports this fixture (bit-exact runs), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
