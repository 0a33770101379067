"""See the bones anywhere: a self-contained web/AR page per GLB, and a small server for phones.

- :func:`write_viewer_page` (``page.py``): GLB -> ``bones.html`` beside it (model-viewer and the
  model inlined; works offline from disk). ``export_meshes(..., fmt="glb")`` calls it.
- :func:`compress_gltf` (``compress.py``): quantized, meshopt-compressed copy for the web.
- :func:`serve` (``server.py``): ``sneakynet view``: the page over HTTP, on localhost or the LAN.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "write_viewer_page": "sneakynet.viewer.page",
    "page_html": "sneakynet.viewer.page",
    "compress_gltf": "sneakynet.viewer.compress",
    "serve": "sneakynet.viewer.server",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sneakynet.viewer' has no attribute {name!r}")
