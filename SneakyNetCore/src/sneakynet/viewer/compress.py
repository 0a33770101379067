"""Smaller GLB for the web: 16-bit positions, octahedral 8-bit normals, meshopt-compressed buffers.

The exporter's ``bones.glb`` stays plain glTF 2.0 (float positions and normals), which every reader
opens (Slicer/VTK, Blender, Unity). The viewer page embeds this compressed copy instead:

- ``KHR_mesh_quantization``: positions as 14-bit integers (stored in 16 bits) on one grid over
  the whole scene (each mesh node carries the grid's offset and uniform scale, so sizes stay
  true; over 2 m a step is 0.12 mm), normals as signed 8-bit;
- ``EXT_meshopt_compression`` (meshoptimizer's codecs through the ``meshopt`` package): vertex
  and index buffers reordered for the GPU cache and compressed; normals with the octahedral filter.

model-viewer carries meshoptimizer's decoder inside its own script, so nothing more is shipped.
"""
from __future__ import annotations

import copy
import io
import struct

import numpy as np
import pygltflib

POSITION_BITS = 14  # as gltfpack's default: a step of 0.12 mm over 2 m, far below a 1-2 mm voxel
MESHOPT = "EXT_meshopt_compression"
QUANTIZATION = "KHR_mesh_quantization"
_DTYPES = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32, pygltflib.UNSIGNED_SHORT: np.uint16}
_WIDTH = {"VEC3": 3, "SCALAR": 1}


def meshopt_available() -> bool:
    """True if the ``meshopt`` encoder is installed (it is a dependency on Python >= 3.11)."""
    try:
        import meshopt  # noqa: F401
    except ImportError:
        return False
    return True


def read_accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """A plain (uncompressed, tightly packed) accessor of our exporter's GLB as an (n, k) array."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    return np.frombuffer(blob, _DTYPES[acc.componentType], acc.count * width, start).reshape(acc.count, width)


class _Packer:
    """Builds the compressed buffer (GLB BIN chunk) and the fallback buffer's view layout."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.data = io.BytesIO()
        self.fallback_length = 0

    def view(self, rows: np.ndarray, mode: str, target: int, filter_: str | None = None) -> int:
        import meshopt

        encoded = meshopt.encode_gltf_buffer(rows, mode)
        stride = rows.dtype.itemsize * (rows.shape[1] if rows.ndim == 2 else 1)
        offset = self.data.tell()
        self.data.write(encoded + b"\0" * (-len(encoded) % 4))
        ext = {"buffer": 0, "byteOffset": offset, "byteLength": len(encoded), "byteStride": stride,
               "count": int(len(rows)), "mode": mode}
        if filter_:
            ext["filter"] = filter_
        view = pygltflib.BufferView(buffer=1, byteOffset=self.fallback_length, byteLength=rows.nbytes,
                                    target=target, extensions={MESHOPT: ext})
        if mode == "ATTRIBUTES":
            view.byteStride = stride
        self.fallback_length += rows.nbytes + (-rows.nbytes % 4)
        self.gltf.bufferViews.append(view)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, view: int, component: int, count: int, type_: str, **extra) -> int:
        self.gltf.accessors.append(pygltflib.Accessor(bufferView=view, componentType=component, count=count,
                                                      type=type_, **extra))
        return len(self.gltf.accessors) - 1


def compress_gltf(gltf: pygltflib.GLTF2, blob: bytes) -> bytes:
    """GLB bytes of ``gltf`` (our exporter's layout, buffer ``blob``) quantized and meshopt-compressed.

    Raises ``RuntimeError`` if the ``meshopt`` package is not installed.
    """
    if not meshopt_available():
        raise RuntimeError("mesh compression needs the 'meshopt' package (pip install meshopt; Python >= 3.11)")
    out = copy.deepcopy(gltf)
    out.accessors, out.bufferViews = [], []
    positions = {m: read_accessor(gltf, blob, p.attributes.POSITION)
                 for m, mesh in enumerate(gltf.meshes) for p in mesh.primitives[:1]}
    everything = np.concatenate(list(positions.values()))
    low = everything.min(axis=0).astype(np.float64)
    step = max(float((everything.max(axis=0) - low).max()), 1e-9) / (2**POSITION_BITS - 1)
    pack = _Packer(out)
    for m, mesh in enumerate(out.meshes):
        prim = mesh.primitives[0]
        src = gltf.meshes[m].primitives[0]
        _pack_primitive(pack, prim, positions[m], read_accessor(gltf, blob, src.attributes.NORMAL),
                        read_accessor(gltf, blob, src.indices).reshape(-1), low, step)
    for node in out.nodes:
        if node.mesh is not None:
            node.translation, node.scale = [float(v) for v in low], [step, step, step]
    data = pack.data.getvalue()
    out.buffers = [pygltflib.Buffer(byteLength=len(data)),
                   pygltflib.Buffer(byteLength=pack.fallback_length, extensions={MESHOPT: {"fallback": True}})]
    out.extensionsUsed = sorted(set(out.extensionsUsed or []) | {MESHOPT, QUANTIZATION})
    out.extensionsRequired = sorted(set(out.extensionsRequired or []) | {MESHOPT, QUANTIZATION})
    return glb_bytes(out, data)


def glb_bytes(gltf: pygltflib.GLTF2, blob: bytes) -> bytes:
    """The GLB container (glTF 2.0 spec, section 4.4) for ``gltf`` with ``blob`` as its BIN chunk.

    Written here rather than with pygltflib's ``save_to_bytes``, which folds every buffer into
    buffer 0 and so would point the views at the meshopt fallback buffer's offsets in the wrong buffer.
    """
    text = gltf.to_json(separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(blob), b"BIN\0"), blob,
    ])


def _pack_primitive(pack: _Packer, prim: pygltflib.Primitive, pos: np.ndarray, nrm: np.ndarray,
                    idx: np.ndarray, low: np.ndarray, step: float) -> None:
    """Reorder one triangle mesh for the vertex cache, quantize it and add its compressed views."""
    import meshopt

    indices, remap, unique = meshopt.reorder_mesh(idx.astype(np.uint32), triangles=True, optsize=False)
    order = np.argsort(remap)[:unique]
    pos, nrm = pos[order], nrm[order]
    quant = np.zeros((unique, 4), np.uint16)
    quant[:, :3] = np.clip(np.rint((pos - low) / step), 0, 2**POSITION_BITS - 1)
    octa = meshopt.encode_filter_oct(np.c_[nrm, np.zeros(unique, np.float32)], 4, 8)
    view = pack.view(quant, "ATTRIBUTES", pygltflib.ARRAY_BUFFER)
    p = pack.accessor(view, pygltflib.UNSIGNED_SHORT, unique, pygltflib.VEC3,
                      min=[float(v) for v in quant[:, :3].min(axis=0)], max=[float(v) for v in quant[:, :3].max(axis=0)])
    view = pack.view(octa.view(np.int8), "ATTRIBUTES", pygltflib.ARRAY_BUFFER, "OCTAHEDRAL")
    n = pack.accessor(view, pygltflib.BYTE, unique, pygltflib.VEC3, normalized=True)
    wide = unique > 65535
    tri = indices.astype(np.uint32 if wide else np.uint16)
    view = pack.view(tri, "TRIANGLES", pygltflib.ELEMENT_ARRAY_BUFFER)
    prim.indices = pack.accessor(view, pygltflib.UNSIGNED_INT if wide else pygltflib.UNSIGNED_SHORT,
                                 len(tri), pygltflib.SCALAR)
    prim.attributes = pygltflib.Attributes(POSITION=p, NORMAL=n)
