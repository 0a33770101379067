"""Small label maps and CTs for the viewer tests: a few bones of distinct groups, seconds to export."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from sneakynet.labels import load_label_table

TABLE = load_label_table()


def first_of(group: str, side: str | None = None) -> int:
    """Label id of the first bone of ``group`` (on ``side`` if given)."""
    ids = TABLE.groups()[group]
    return next(i for i in ids if side is None or TABLE.by_id(i).side == side)


def small_skeleton() -> tuple[sitk.Image, sitk.Image]:
    """(label map, CT): skull, a spine column, a rib, both humeri and a pelvis; LPS, 4 mm voxels."""
    size = (60, 30, 70)  # i (patient left), j (posterior), k (superior)
    k, j, i = np.mgrid[: size[2], : size[1], : size[0]]
    lab = np.zeros(size[::-1], np.uint8)
    lab[(i - 30) ** 2 + (j - 15) ** 2 + (k - 60) ** 2 < 8**2] = first_of("head")
    lab[(abs(i - 30) < 3) & (abs(j - 20) < 3) & (k > 22) & (k < 50)] = first_of("spine")
    lab[(abs(i - 30) < 14) & (abs(i - 30) > 4) & (abs(j - 12) < 2) & (abs(k - 42) < 2)] = first_of("ribs")
    lab[(abs(i - 12) < 3) & (abs(j - 15) < 3) & (k > 25) & (k < 48)] = first_of("arm", "right")  # LPS x grows to the left
    lab[(abs(i - 48) < 3) & (abs(j - 15) < 3) & (k > 25) & (k < 48)] = first_of("arm", "left")
    lab[(abs(i - 30) < 12) & (abs(j - 16) < 5) & (k > 10) & (k < 20)] = first_of("pelvis")
    labels = sitk.GetImageFromArray(lab)
    ct_arr = np.where(((i - 30) / 26.0) ** 2 + ((j - 15) / 13.0) ** 2 < 1, 20.0, -1000.0)
    ct_arr[lab > 0] = 700.0
    ct = sitk.GetImageFromArray(ct_arr.astype(np.int16))
    for image in (labels, ct):
        image.SetSpacing((4.0, 4.0, 4.0))
        image.SetOrigin((-120.0, -60.0, -1000.0))
    return labels, ct
