"""The viewer page in a real browser: Debian's headless Chromium, software WebGL (SwiftShader).

Checks: ``bones.html`` opened from disk with the network switched off and no flag that loosens
file access draws the bones in their colours (the compressed GLB it embeds included), anterior
view with the patient's right on the left, hiding a group changes the picture, the console
shows no errors; ``sneakynet view`` on 127.0.0.1 serves a page that loads the same way.
Skipped, with the reason shown, only where Chromium is not installed (CI installs it).
"""
from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chromium_cdp import NEXT_FRAMES, WAIT_DRAWN, Chromium, find_chromium
from viewer_fixtures import TABLE, first_of, small_skeleton

from sneakynet.viewer.compress import meshopt_available

pytest.importorskip("websocket", reason="websocket-client is not installed (pip install websocket-client)")
if find_chromium() is None:
    pytest.skip("chromium is not installed (Debian: apt-get install chromium); browser checks skipped",
                allow_module_level=True)

VIEW_WIDTH = 640  # the model-viewer part of the 900-pixel-wide page (the panel is 260 pixels)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from sneakynet.export import export_meshes

    labels, _ = small_skeleton()
    out = tmp_path_factory.mktemp("viewer") / "meshes"
    export_meshes(labels, out, fmt="glb")
    return out


@pytest.fixture(scope="module")
def skin_dir(tmp_path_factory) -> Path:
    from sneakynet.export import export_meshes

    labels, ct = small_skeleton()
    out = tmp_path_factory.mktemp("viewer") / "with_skin"
    export_meshes(labels, out, fmt="glb", skin=ct)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("profile"), size=(900, 600))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def disk_page(export_dir, browser, tmp_path_factory) -> dict:
    """``bones.html`` opened once from disk, offline (the first frame costs seconds in software WebGL)."""
    image = load(browser, (export_dir / "bones.html").as_uri(), offline=True,
                 shot=tmp_path_factory.mktemp("shots") / "disk.png")
    return {"image": image, "errors": browser.console_errors(), "urls": browser.requested_urls()}


def colour_pixels(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Mask of lit pixels of the 3D view whose colour points the way of ``rgb`` (shading scales brightness)."""
    view = image[:, :VIEW_WIDTH]
    c = np.asarray(rgb, float) / np.linalg.norm(rgb)
    cos = (view @ c) / np.maximum(np.linalg.norm(view, axis=2), 1e-6)
    return (cos > 0.995) & (view.max(axis=2) > 0.25)


def bone_pixels(image: np.ndarray, group: str, side: str | None = None) -> np.ndarray:
    return colour_pixels(image, TABLE.by_id(first_of(group, side)).color)


def load(browser: Chromium, url: str, offline: bool, shot: Path) -> np.ndarray:
    browser.open(url, offline=offline)
    state = browser.evaluate(WAIT_DRAWN)
    assert state == {"visible": True, "errors": [], "status": "loaded"}, state
    image = browser.screenshot()
    import matplotlib.pyplot as plt

    plt.imsave(shot, image)
    return image


def test_page_from_disk_draws_the_bones_offline_without_errors(export_dir, browser, disk_page):
    page = export_dir / "bones.html"
    embedded = re.search(r'id="sn-glb">([^<]*)<', page.read_text()).group(1)
    if meshopt_available():  # the compressed GLB is what renders (the plain one where meshopt has no wheel)
        assert b"EXT_meshopt_compression" in base64.b64decode(embedded)[:20000]
    image = disk_page["image"]
    assert disk_page["errors"] == []
    schemes = {url.split(":", 1)[0] for url in disk_page["urls"]}
    assert schemes <= {"file", "data", "blob"}, disk_page["urls"]
    for group in ("head", "spine", "ribs", "pelvis"):
        assert bone_pixels(image, group).sum() > 100, f"{group} not drawn in its colour"
    right, left = bone_pixels(image, "arm", "right"), bone_pixels(image, "arm", "left")
    assert right.sum() > 100 and left.sum() > 100
    # anterior view first: the patient's right humerus on the viewer's left
    assert np.argwhere(right)[:, 1].mean() < np.argwhere(left)[:, 1].mean()
    marks = browser.evaluate("""[...document.querySelectorAll('.sn-hotspot')].map(
        b => [b.textContent, b.getBoundingClientRect().x])""")
    x = dict(marks)
    assert x["R"] < x["L"]
    assert browser.evaluate("document.getElementById('sn-size').textContent").startswith("6 bones spanning")


def test_hover_and_click_name_the_bone(browser, disk_page):
    x, y = browser.evaluate("""(() => { const mv = document.getElementById('sn-model');
        const r = mv.getBoundingClientRect(); const hits = [];
        for (let y = r.top + 5; y < r.bottom; y += 6) for (let x = r.left + 5; x < r.right; x += 6) {
          const m = mv.materialFromPoint(x, y); if (m && m.name === 'humerus_right') hits.push([x, y]); }
        return hits[Math.floor(hits.length / 2)]; })()""")
    display = TABLE.by_name("humerus_right").display
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    browser.evaluate(NEXT_FRAMES)
    assert browser.evaluate("document.getElementById('sn-hover').textContent") == f"{display} (arm)"
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    assert browser.evaluate("document.getElementById('sn-picked').textContent") == f"Selected: {display} (arm)"
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=5)  # off the bones again
    browser.evaluate(NEXT_FRAMES)


def test_hiding_a_group_changes_the_picture(browser, disk_page):
    before = disk_page["image"]
    browser.evaluate("document.getElementById('sn-group-head').click()")
    browser.evaluate(NEXT_FRAMES)
    after = browser.screenshot()
    changed = (np.abs(after - before).max(axis=2) > 0.1).sum()
    assert changed > 300
    assert bone_pixels(after, "head").sum() < 0.2 * bone_pixels(before, "head").sum()
    spine_before, spine_after = int(bone_pixels(before, "spine").sum()), int(bone_pixels(after, "spine").sum())
    assert abs(spine_after - spine_before) < 0.1 * spine_before  # the other groups stay
    browser.evaluate("document.getElementById('sn-group-head').click()")
    browser.evaluate(NEXT_FRAMES)
    again = browser.screenshot()
    assert bone_pixels(again, "head").sum() > 0.8 * bone_pixels(before, "head").sum()
    assert browser.console_errors() == []


def test_sneakynet_view_serves_the_page_on_localhost(skin_dir, browser, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "sneakynet.cli", "view", str(skin_dir), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            match = re.match(r"open (http://127\.0\.0\.1:\d+/)", line)
            url = match.group(1) if match else None
        assert url, "sneakynet view printed no URL"
        image = load(browser, url, offline=False, shot=tmp_path / "served.png")
        requested = browser.requested_urls()
        assert all(u.startswith(url) or u.split(":", 1)[0] in ("data", "blob") for u in requested), requested
        assert url + "bones.glb" in requested
        assert browser.console_errors() == []
        # the translucent skin tints the bones; at opacity 0 they show their own colours
        assert bone_pixels(image, "spine").sum() < 50
        browser.evaluate("""(() => { const s = document.getElementById('sn-skin-opacity');
            s.value = 0; s.dispatchEvent(new Event('input')); })()""")
        browser.evaluate(NEXT_FRAMES)
        assert bone_pixels(browser.screenshot(), "spine").sum() > 100
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
