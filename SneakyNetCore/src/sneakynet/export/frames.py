"""Coordinate frames of the exported meshes: image index -> ITK LPS -> Slicer RAS -> glTF.

Pure numpy, no VTK. All matrices are 4x4 homogeneous and act on column vectors.

- SimpleITK images live in ITK's LPS world (x = patient Left, y = Posterior, z = Superior, mm):
  ``lps = origin + direction @ diag(spacing) @ index``.
- Meshes (OBJ, STL, PLY and the dicts returned by ``extract_surfaces``) are in Slicer's RAS
  (x = Right, y = Anterior, z = Superior, mm): ``ras = diag(-1, -1, 1) @ lps``. Each file says
  ``SPACE=RAS`` in its header/comment, which is how Slicer recognises the frame on load.
- glTF is right-handed, metres, +Y up, and "the front of an asset faces +Z" with -X to its right
  (glTF 2.0 spec, section 3.4). The patient is that asset: up = Superior, front = Anterior,
  patient's right = -X. Hence ``x_gltf = -R/1000 (= L/1000), y_gltf = S/1000, z_gltf = A/1000``;
  the 3x3 part has determinant +1 (a proper rotation times 1/1000), so triangle winding and
  outward normals survive. A default glTF viewer looks from +Z at the patient's face with the
  patient's right on the viewer's left, like facing a person.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

RAS_MM_TO_GLTF = np.array(
    [
        [-0.001, 0.0, 0.0, 0.0],  # x_gltf = -R / 1000 (patient's left is +X)
        [0.0, 0.0, 0.001, 0.0],  # y_gltf = S / 1000 (up)
        [0.0, 0.001, 0.0, 0.0],  # z_gltf = A / 1000 (the patient faces +Z)
        [0.0, 0.0, 0.0, 1.0],
    ]
)

GLTF_FRAME_DESCRIPTION = (
    "glTF metres, right-handed, +Y up: x_gltf = -R/1000 (patient left = +X), y_gltf = S/1000 "
    "(superior = up), z_gltf = A/1000 (patient faces +Z); R, A, S are Slicer RAS millimetres "
    "and RAS = diag(-1,-1,1) * ITK LPS"
)


def index_to_lps(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from continuous voxel index (i, j, k) to LPS millimetres."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = direction @ np.diag(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return m


def index_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) to RAS millimetres."""
    return LPS_TO_RAS @ index_to_lps(image)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to (N, 3) points; returns float64 (N, 3)."""
    pts = np.asarray(points, dtype=float)
    return pts @ matrix[:3, :3].T + matrix[:3, 3]


def ras_to_gltf(points_ras_mm: np.ndarray) -> np.ndarray:
    """(N, 3) RAS millimetres -> (N, 3) glTF metres (see the module docstring)."""
    return apply_affine(RAS_MM_TO_GLTF, points_ras_mm)

