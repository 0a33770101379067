"""Bone meshes for VR/AR and Slicer, and class-coloured offscreen previews.

- :func:`extract_surfaces` (``surfaces.py``): label map -> ``{label_id: vtkPolyData}`` in RAS mm.
- :func:`export_meshes` (``meshes.py``): label map -> GLB / glTF / OBJ+MTL / STL / PLY files.
- :func:`render_labels` (``render.py``): label map (+ optional CT skin) -> PNG, headless.
- Coordinate frames (LPS, RAS, glTF) are documented in ``frames.py``.

VTK is imported only when one of these is first used, so ``import sneakynet.export`` and
``from sneakynet.export import LabelMapError`` stay cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from sneakynet.export.labelmap import LabelMapError

_LAZY = {
    "extract_surfaces": "sneakynet.export.surfaces",
    "export_meshes": "sneakynet.export.meshes",
    "FORMATS": "sneakynet.export.meshes",
    "render_labels": "sneakynet.export.render",
}

__all__ = ["LabelMapError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sneakynet.export' has no attribute {name!r}")
