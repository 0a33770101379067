"""3D render of a phantom v2 skeleton (spine, ribs, sternum, pelvis, femurs, shoulder girdle, humeri).

Run from the repository root: ``python SneakyNetCore/docs/phantom_v2/render_skeleton.py [OUT.png]``
(default ``skeleton_3d.png`` beside this script). Draws one whole-upper-body case at 1.5 mm
with the arms raised (seed 7: no tilt, no noise), keeps the trunk's bones and renders them
offscreen with :func:`sneakynet.export.render.render_labels` (VTK, headless). Run it with an
older ``src`` first on ``PYTHONPATH`` to render that version's shapes (``skeleton_3d_before.png``
was made from the sources before the v2 bone shapes).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sneakynet.export.render import render_labels
from sneakynet.labels import load_label_table
from sneakynet.phantom.v2 import PhantomV2Options, generate_v2

HERE = Path(__file__).resolve().parent
TRUNK = ("vertebra", "sacrum", "coccyx", "hip", "femur", "scapula", "clavicle", "humerus", "rib", "sternum")


def main(out: Path) -> None:
    t0 = time.process_time()
    case = generate_v2(7, PhantomV2Options(spacing=(1.5,) * 3, fov="whole", arms="raised", max_rotation_deg=0.0,
                                           noise_hu=0.0))
    print(f"case drawn in {time.process_time() - t0:.1f} s CPU, {case.labels.GetSize()} voxels")
    lab = sitk.GetArrayFromImage(case.labels)
    keep = [b.id for b in load_label_table().bones if b.name.startswith(TRUNK)]
    lab[~np.isin(lab, keep)] = 0
    k = np.flatnonzero(lab.any(axis=(1, 2)))
    img = sitk.GetImageFromArray(lab)
    img.CopyInformation(case.labels)
    render_labels(img[:, :, int(k.min()):int(k.max()) + 1], out, views=("anterior", "lateral", "posterior"),
                  size=(1500, 900))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "skeleton_3d.png")
