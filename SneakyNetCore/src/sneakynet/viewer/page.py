"""``bones.html``: one self-contained page that shows a bone GLB in any browser, offline.

The page inlines the vendored model-viewer script (``static/model-viewer.min.js``), its own
script and style, a JSON summary of the bones (groups, names, size) and the GLB itself, as
base64 of the compressed copy (:mod:`sneakynet.viewer.compress`) where the ``meshopt``
encoder is installed. A page opened from ``file://`` may not fetch files beside it or load
module scripts from disk, so nothing is a separate file; ``sneakynet view`` serves the same
page with the plain GLB at a URL instead (phones' AR viewers fetch the model by URL).
"""
from __future__ import annotations

import base64
import json
import os
import struct
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pygltflib

from sneakynet import __version__
from sneakynet.io import atomic_path
from sneakynet.labels import load_label_table
from sneakynet.viewer.compress import MESHOPT, compress_gltf, glb_bytes, meshopt_available, read_accessor

PAGE_NAME = "bones.html"
SKIN_NAME = "skin"


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """A file of ``sneakynet/viewer/static`` as text (the vendored script loses its source-map line)."""
    text = resources.files("sneakynet.viewer").joinpath("static", name).read_text(encoding="utf-8")
    return text.replace("//# sourceMappingURL=model-viewer.min.js.map", "")


def load_glb(path: str | os.PathLike) -> tuple[pygltflib.GLTF2, bytes]:
    """Our exporter's GLB and its binary chunk; ``ValueError`` naming the file if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if data[:4] != b"glTF":
            raise ValueError("no glTF header")
        gltf = pygltflib.GLTF2.load_from_bytes(data)
        blob = gltf.binary_blob()
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise ValueError(f"{path}: not a readable GLB file ({exc})") from None
    if blob is None or not gltf.meshes:
        raise ValueError(f"{path}: the GLB holds no meshes")
    if MESHOPT in (gltf.extensionsUsed or []):
        raise ValueError(f"{path}: already compressed; give the plain GLB that export-meshes writes")
    return gltf, blob


def viewer_meta(gltf: pygltflib.GLTF2, blob: bytes) -> dict:
    """What the page lists: bones by material name, groups in table order, bones' extent in cm."""
    table = load_label_table()
    bones, lows, highs = {}, [], []
    for node in gltf.nodes:
        if node.mesh is None or node.name == SKIN_NAME:
            continue
        extras = node.extras or {}
        bones[node.name] = {"display": extras.get("display", node.name), "group": extras.get("group", "other"),
                            "side": extras.get("side", "")}
        pos = read_accessor(gltf, blob, gltf.meshes[node.mesh].primitives[0].attributes.POSITION)
        lows.append(pos.min(axis=0))
        highs.append(pos.max(axis=0))
    size_cm = (np.max(highs, axis=0) - np.min(lows, axis=0)) * 100.0 if bones else np.zeros(3)
    groups = []
    for name, ids in table.groups().items():
        count = sum(1 for bone in bones.values() if bone["group"] == name)
        if count:
            groups.append({"name": name, "label": name.replace("_", " "), "count": count,
                           "color": list(table.by_id(ids[0]).color)})
    return {
        "bones": bones, "groups": groups, "bone_count": len(bones),
        "bones_size_cm": [round(float(v), 2) for v in size_cm],  # glTF x, y, z = R-L, S-I, A-P
        "has_skin": any(node.name == SKIN_NAME and node.mesh is not None for node in gltf.nodes),
        "source": str((gltf.asset.extras or {}).get("source", "")),
        "glb_url": "",
    }


def page_html(meta: dict, glb_bytes: bytes | None = None, title: str = "SneakyNet bones") -> str:
    """The page: the model embedded (``glb_bytes``) or fetched from ``meta['glb_url']``."""
    def script_safe(text: str) -> str:
        return text.replace("</", "<\\/")

    parts = {
        "__GENERATOR__": f"sneakynet {__version__}",
        "__TITLE__": title.replace("<", "&lt;"),
        "__CSS__": static_text("viewer.css"),
        "__MODEL_VIEWER__": script_safe(static_text("model-viewer.min.js")),
        "__META__": script_safe(json.dumps(meta, separators=(",", ":"))),
        "__GLB_BASE64__": base64.b64encode(glb_bytes).decode("ascii") if glb_bytes else "",
        "__VIEWER_JS__": script_safe(static_text("viewer.js")),
    }
    html = static_text("viewer.html")
    for key in ("__GENERATOR__", "__TITLE__", "__CSS__", "__META__", "__VIEWER_JS__"):
        html = html.replace(key, parts[key], 1)
    # the two large parts last, so no placeholder text inside them is ever replaced
    html = html.replace("__GLB_BASE64__", parts["__GLB_BASE64__"], 1)
    return html.replace("__MODEL_VIEWER__", parts["__MODEL_VIEWER__"], 1)


def web_glb(gltf: pygltflib.GLTF2, blob: bytes, compress: bool | None = None) -> bytes:
    """The GLB the page shows: compressed if ``compress`` (``None``: when ``meshopt`` is installed)."""
    if compress is None:
        compress = meshopt_available()
    if compress:
        return compress_gltf(gltf, blob)
    return glb_bytes(gltf, blob)


def write_viewer_page(
    glb_path: str | os.PathLike, html_path: str | os.PathLike | None = None, compress: bool | None = None
) -> Path:
    """Write ``bones.html`` (or ``html_path``) beside ``glb_path`` with the model embedded; returns its path.

    This is what ``export_meshes(..., fmt="glb")`` calls, so every GLB export gets its page; a
    Slicer "View in browser" button can call it on any exported GLB and open the result.
    """
    glb_path = Path(glb_path)
    html_path = glb_path.with_name(PAGE_NAME) if html_path is None else Path(html_path)
    gltf, blob = load_glb(glb_path)
    meta = viewer_meta(gltf, blob)
    html = page_html(meta, web_glb(gltf, blob, compress), title=f"SneakyNet bones: {meta['source'] or glb_path.name}")
    with atomic_path(html_path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return html_path
