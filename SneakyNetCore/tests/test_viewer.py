"""Viewer page, compressed GLB and ``sneakynet view`` without a browser (the browser checks are in
``test_viewer_browser.py``)."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import numpy as np
import pygltflib
import pytest

pytest.importorskip("vtkmodules.vtkFiltersCore")
from sneakynet.cli import main as cli_main  # noqa: E402
from sneakynet.export import export_meshes  # noqa: E402
from sneakynet.export.surfaces import is_closed_manifold, signed_volume  # noqa: E402
from sneakynet.viewer.compress import MESHOPT, QUANTIZATION, compress_gltf, meshopt_available, read_accessor  # noqa: E402
from sneakynet.viewer.page import load_glb, viewer_meta  # noqa: E402
from sneakynet.viewer.server import find_glb, serve  # noqa: E402
from viewer_fixtures import TABLE, small_skeleton  # noqa: E402

needs_meshopt = pytest.mark.skipif(not meshopt_available(), reason="the meshopt encoder is not installed")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    labels, ct = small_skeleton()
    out = tmp_path_factory.mktemp("viewer") / "meshes"
    export_meshes(labels, out, fmt="glb", skin=ct, smooth=10)
    return out


def decoded_meshes(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Node name -> (positions in metres, triangles) of a quantized, meshopt-compressed GLB."""
    import meshopt

    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob()

    def view(index: int, width: int, dtype) -> np.ndarray:
        acc = gltf.accessors[index]
        ext = gltf.bufferViews[acc.bufferView].extensions[MESHOPT]
        raw = blob[ext["byteOffset"]:ext["byteOffset"] + ext["byteLength"]]
        rows = meshopt.decode_gltf_buffer(raw, ext["count"], ext["byteStride"], ext["mode"], ext.get("filter"))
        return np.asarray(rows).view(dtype).reshape(ext["count"], -1)[:, :width]

    out = {}
    for node in gltf.nodes:
        if node.mesh is None:
            continue
        prim = gltf.meshes[node.mesh].primitives[0]
        q = view(prim.attributes.POSITION, 3, np.uint16).astype(float)
        out[node.name] = (q * node.scale[0] + node.translation,
                          view(prim.indices, 1, np.uint16).reshape(-1, 3).astype(np.int64))
    return out


@needs_meshopt
def test_compressed_glb_keeps_every_mesh_within_the_quantization_step(exported):
    gltf, blob = load_glb(exported / "bones.glb")
    data = compress_gltf(gltf, blob)
    assert len(data) < 0.6 * (exported / "bones.glb").stat().st_size
    packed = pygltflib.GLTF2.load_from_bytes(data)
    assert set(packed.extensionsRequired) == {MESHOPT, QUANTIZATION}
    data_buffer, fallback = packed.buffers  # views index the fallback, their extensions the data (spec layout)
    assert fallback.extensions[MESHOPT] == {"fallback": True} and fallback.uri is None
    for view in packed.bufferViews:
        ext = view.extensions[MESHOPT]
        assert view.buffer == 1 and view.byteOffset + view.byteLength <= fallback.byteLength
        assert ext["buffer"] == 0 and ext["byteOffset"] + ext["byteLength"] <= data_buffer.byteLength
        assert view.byteOffset % 4 == 0 and ext["byteOffset"] % 4 == 0
    decoded = decoded_meshes(data)
    assert set(decoded) == {n.name for n in gltf.nodes if n.mesh is not None}
    for node in gltf.nodes:
        if node.mesh is None:
            continue
        prim = gltf.meshes[node.mesh].primitives[0]
        pos, tri = decoded[node.name]
        plain_pos = read_accessor(gltf, blob, prim.attributes.POSITION)
        plain_tri = read_accessor(gltf, blob, prim.indices).reshape(-1, 3)
        assert len(pos) == len(plain_pos) and len(tri) == len(plain_tri)
        step = packed.nodes[[n.name for n in packed.nodes].index(node.name)].scale[0]
        # the same vertices (reordered), each within half a quantization step
        a, b = np.sort(pos, axis=0), np.sort(plain_pos.astype(float), axis=0)
        assert np.abs(a - b).max() <= 0.51 * step, node.name
        assert signed_volume(pos, tri) == pytest.approx(signed_volume(plain_pos, plain_tri), rel=0.01)
        if node.name != "skin":
            assert is_closed_manifold(tri)


def test_page_is_self_contained_and_lists_the_groups(exported):
    html = (exported / "bones.html").read_text(encoding="utf-8")
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="(?!data:)', html)  # nothing loaded from beside it
    assert 'meshoptDecoderLocation: "data:' in html and "dracoDecoderLocation" in html
    assert html.count("customElements.define(\"model-viewer\"") == 1
    meta = json.loads(re.search(r'id="sn-meta">(.*?)</script>', html, re.S).group(1))
    assert [g["name"] for g in meta["groups"]] == ["head", "spine", "ribs", "arm", "pelvis"]
    assert meta["bone_count"] == 6 and meta["has_skin"] is True
    assert meta["bones"]["humerus_right"] == {"display": TABLE.by_name("humerus_right").display, "group": "arm",
                                              "side": "right"}
    width, height, depth = meta["bones_size_cm"]  # R-L, S-I, A-P of the fixture's boxes at 4 mm voxels
    assert 15 < width < 18 and 20 < height < 25 and 4 < depth < 8


def test_skin_node_is_translucent_and_bones_keep_their_nodes(exported):
    gltf = pygltflib.GLTF2().load(str(exported / "bones.glb"))
    skin = next(n for n in gltf.nodes if n.name == "skin")
    material = gltf.materials[gltf.meshes[skin.mesh].primitives[0].material]
    assert material.alphaMode == pygltflib.BLEND and 0 < material.pbrMetallicRoughness.baseColorFactor[3] < 1
    assert skin.extras["threshold_hu"] == -300
    meta = viewer_meta(gltf, gltf.binary_blob())
    assert "skin" not in meta["bones"]


def test_server_answers_its_routes_only_and_stops(exported):
    server = serve(exported, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(server.url, timeout=10)
        assert page.headers["Content-Type"].startswith("text/html")
        text = page.read().decode()
        assert '"glb_url":"bones.glb"' in text and 'id="sn-glb"></script>' in text  # model by URL
        assert urllib.request.urlopen(server.url + "bones.glb", timeout=10).read() == \
            (exported / "bones.glb").read_bytes()
        for path in ("../bones.glb", "bones.html/..", "etc/passwd", "meshes/", "model.glb"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url + path, timeout=10)
            assert err.value.code == 404
    finally:
        server.stop()
    assert not server.thread.is_alive()


def test_find_glb_and_view_cli_name_bad_input(exported, tmp_path, capsys):
    assert find_glb(exported) == exported / "bones.glb"
    assert find_glb(exported / "bones.glb") == exported / "bones.glb"
    with pytest.raises(ValueError, match="no such file"):
        find_glb(tmp_path / "missing")
    (tmp_path / "a.glb").write_bytes(b"x")
    (tmp_path / "b.glb").write_bytes(b"x")
    with pytest.raises(ValueError, match="2 .glb files"):
        find_glb(tmp_path)
    assert cli_main(["view", str(tmp_path / "a.glb"), "--port", "0"]) == 2
    assert "a.glb: not a readable GLB file" in capsys.readouterr().err
    assert cli_main(["view", str(exported / "bones.html")]) == 2
    assert "not a .glb file" in capsys.readouterr().err


def test_export_cli_skin_option(exported, tmp_path, capsys):
    labels, ct = small_skeleton()
    import SimpleITK as sitk

    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    sitk.WriteImage(labels, str(tmp_path / "not_a_ct.nii.gz"))  # values 0..125: no air
    code = cli_main(["export-meshes", str(tmp_path / "labels.nii.gz"), str(tmp_path / "stl"), "--format", "stl",
                     "--skin", str(tmp_path / "not_a_ct.nii.gz"), "--quiet"])
    assert code == 2 and "glb or gltf exports only" in capsys.readouterr().err
    code = cli_main(["export-meshes", str(tmp_path / "labels.nii.gz"), str(tmp_path / "g"),
                     "--skin", str(tmp_path / "not_a_ct.nii.gz"), "--quiet"])
    assert code == 2 and "not_a_ct.nii.gz" in capsys.readouterr().err and not (tmp_path / "g").exists()
    code = cli_main(["export-meshes", str(tmp_path / "labels.nii.gz"), str(tmp_path / "n"), "--no-viewer", "--quiet"])
    assert code == 0 and sorted(p.name for p in (tmp_path / "n").iterdir()) == ["bones.glb"]
