"""glTF 2.0 writer (GLB or .gltf + .bin) for per-bone surfaces, with pygltflib.

Scene layout: one root node ``SneakyNet bones`` -> one node per bone group (``spine``,
``ribs``, ...) -> one node per bone, named with the label table's snake_case name and
carrying a mesh with one triangle primitive (POSITION, NORMAL, indices) and a PBR material
named like the bone. Bone nodes' ``extras`` hold ``label_id``, ``display``, ``side``, ``group``.

With a CT, a node ``skin`` beside the groups holds the CT's -300 HU surface with a translucent
(``BLEND``) material, as ``sneakynet render`` draws it.

Colours: glTF's ``baseColorFactor`` is *linear* RGB (spec 3.9.2); the label table's colours
are sRGB, so they are linearised, and the original 0-255 sRGB triple is kept in the
material's ``extras.color_srgb`` so tools can round-trip it exactly.

Coordinates: vertices are baked into glTF metres with :data:`frames.RAS_MM_TO_GLTF`; the
mapping is written in ``asset.extras`` (``coordinate_frame`` and ``matrix_from_ras_mm``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pygltflib
from vtkmodules.vtkCommonDataModel import vtkPolyData

from sneakynet import __version__
from sneakynet.export.frames import GLTF_FRAME_DESCRIPTION, RAS_MM_TO_GLTF, ras_to_gltf
from sneakynet.export.vtkconv import point_normals, points_of, triangles_of
from sneakynet.io import atomic_path
from sneakynet.labels import Bone, LabelTable

ROOT_NODE_NAME = "SneakyNet bones"
SKIN_NAME = "skin"
SKIN_SRGB = (245, 204, 176)  # render.SKIN_COLOR in 0-255
SKIN_ALPHA = 0.25
SKIN_THRESHOLD_HU = -300.0  # as render.SKIN_THRESHOLD_HU


def srgb_to_linear(rgb255: tuple[int, int, int]) -> list[float]:
    """0-255 sRGB -> 0-1 linear RGB (IEC 61966-2-1 transfer function)."""
    c = np.asarray(rgb255, dtype=float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return [float(v) for v in lin]


class _BufferBuilder:
    """Accumulates 4-byte aligned binary views and their accessors in one glTF buffer."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.chunks: list[bytes] = []
        self.length = 0

    def add(self, data: np.ndarray, accessor_type: str, component: int, target: int, minmax: bool) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        self.gltf.bufferViews.append(
            pygltflib.BufferView(buffer=0, byteOffset=self.length, byteLength=len(raw), target=target)
        )
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b"\0" * pad)
        self.length += len(raw) + pad
        accessor = pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1,
            componentType=component,
            count=int(data.shape[0]) if accessor_type != pygltflib.SCALAR else int(data.size),
            type=accessor_type,
        )
        if minmax:
            accessor.min = [float(v) for v in data.min(axis=0)]
            accessor.max = [float(v) for v in data.max(axis=0)]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def source_name(source: str) -> str:
    """Only the input's file name: a folder path can hold a patient's name (privacy)."""
    return source if source.startswith("<") else Path(source).name


def build_gltf(
    surfaces: dict[int, vtkPolyData], table: LabelTable, source: str = "", skin: vtkPolyData | None = None
) -> tuple[pygltflib.GLTF2, bytes]:
    """The glTF document and its binary buffer for ``surfaces`` (label id -> RAS mm polydata).

    ``skin`` (RAS mm) becomes a node ``skin`` beside the groups, with a translucent material.
    """
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(
            version="2.0",
            generator=f"sneakynet {__version__}",
            extras={
                "coordinate_frame": GLTF_FRAME_DESCRIPTION,
                "matrix_from_ras_mm": [[float(v) for v in row] for row in RAS_MM_TO_GLTF],
                "units": "metre",
                "label_table_version": table.version,
                "source": source_name(source),
            },
        )
    )
    buf = _BufferBuilder(gltf)
    groups: dict[str, list[int]] = {}
    for label in sorted(surfaces):
        bone = table.by_id(label)
        pd = surfaces[label]
        node = _add_bone(gltf, buf, bone, pd)
        if node is not None:
            groups.setdefault(bone.group, []).append(node)
    group_nodes = []
    for group in table.groups():  # table order: head, spine, ribs, ...
        if group in groups:
            gltf.nodes.append(pygltflib.Node(name=group, children=groups[group], extras={"group": group}))
            group_nodes.append(len(gltf.nodes) - 1)
    if skin is not None and _add_mesh(gltf, buf, SKIN_NAME, skin, _skin_material()) is not None:
        gltf.nodes[-1].extras = {"threshold_hu": SKIN_THRESHOLD_HU}
        group_nodes.append(len(gltf.nodes) - 1)
    gltf.nodes.append(pygltflib.Node(name=ROOT_NODE_NAME, children=group_nodes))
    gltf.scenes = [pygltflib.Scene(name=ROOT_NODE_NAME, nodes=[len(gltf.nodes) - 1])]
    gltf.scene = 0
    blob = buf.blob()
    gltf.buffers = [pygltflib.Buffer(byteLength=len(blob))]
    return gltf, blob


def _skin_material() -> pygltflib.Material:
    """Translucent skin, coloured as ``render`` draws it; the viewer page sets its opacity."""
    return pygltflib.Material(
        name=SKIN_NAME, alphaMode=pygltflib.BLEND,
        pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=srgb_to_linear(SKIN_SRGB) + [SKIN_ALPHA], metallicFactor=0.0, roughnessFactor=0.7),
        extras={"color_srgb": list(SKIN_SRGB)},
    )


def _add_bone(gltf: pygltflib.GLTF2, buf: _BufferBuilder, bone: Bone, pd: vtkPolyData) -> int | None:
    material = pygltflib.Material(
        name=bone.name,
        pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=srgb_to_linear(bone.color) + [1.0], metallicFactor=0.0, roughnessFactor=0.55
        ),
        extras={"color_srgb": list(bone.color)},
    )
    node = _add_mesh(gltf, buf, bone.name, pd, material)
    if node is not None:
        gltf.nodes[node].extras = {"label_id": bone.id, "display": bone.display, "side": bone.side,
                                   "group": bone.group}
    return node


def _add_mesh(
    gltf: pygltflib.GLTF2, buf: _BufferBuilder, name: str, pd: vtkPolyData, material: pygltflib.Material
) -> int | None:
    """One node + mesh + material for a RAS mm surface; ``None`` for an empty surface."""
    tri = triangles_of(pd)
    if len(tri) == 0:
        return None
    positions = ras_to_gltf(points_of(pd)).astype(np.float32)
    rotation = RAS_MM_TO_GLTF[:3, :3] * 1000.0  # proper rotation: normals keep unit length
    normals = (point_normals(pd) @ rotation.T).astype(np.float32)
    index_dtype, component = (
        (np.uint16, pygltflib.UNSIGNED_SHORT) if len(positions) < 65535 else (np.uint32, pygltflib.UNSIGNED_INT)
    )
    pos = buf.add(positions, pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER, minmax=True)
    nrm = buf.add(normals, pygltflib.VEC3, pygltflib.FLOAT, pygltflib.ARRAY_BUFFER, minmax=False)
    idx = buf.add(tri.astype(index_dtype).reshape(-1), pygltflib.SCALAR, component,
                  pygltflib.ELEMENT_ARRAY_BUFFER, minmax=False)
    gltf.materials.append(material)
    gltf.meshes.append(
        pygltflib.Mesh(
            name=name,
            primitives=[
                pygltflib.Primitive(
                    attributes=pygltflib.Attributes(POSITION=pos, NORMAL=nrm),
                    indices=idx,
                    material=len(gltf.materials) - 1,
                    mode=pygltflib.TRIANGLES,
                )
            ],
        )
    )
    gltf.nodes.append(pygltflib.Node(name=name, mesh=len(gltf.meshes) - 1))
    return len(gltf.nodes) - 1


def write_gltf(
    surfaces: dict[int, vtkPolyData], path: str | os.PathLike, table: LabelTable, source: str = "",
    skin: vtkPolyData | None = None,
) -> list[Path]:
    """Write ``path`` as binary GLB (``.glb``) or JSON glTF with a ``.bin`` beside it (``.gltf``).

    Files are written atomically; returns the written paths.
    """
    path = Path(path)
    gltf, blob = build_gltf(surfaces, table, source, skin)
    if path.suffix.lower() == ".glb":
        gltf.set_binary_blob(blob)
        with atomic_path(path) as tmp:
            gltf.save_binary(str(tmp))
        return [path]
    if path.suffix.lower() != ".gltf":
        raise ValueError(f"{path}: glTF files must end in .glb or .gltf")
    bin_path = path.with_suffix(".bin")
    gltf.buffers[0].uri = bin_path.name
    with atomic_path(bin_path) as tmp:
        tmp.write_bytes(blob)
    with atomic_path(path) as tmp:
        tmp.write_text(gltf.to_json(indent=1), encoding="utf-8")
    return [path, bin_path]
