"""Offscreen class-coloured rendering: headless PNG, both views, patient sides, skin, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("vtkmodules.vtkRenderingOpenGL2")
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkIOImage import vtkPNGReader  # noqa: E402

from sneakynet.cli import main as cli_main  # noqa: E402
from sneakynet.export import LabelMapError, render_labels  # noqa: E402

CRANIUM, T10 = 1, 20  # yellow (250, 201, 75) and blue (75, 119, 250) in the label table
SIZE = (640, 360)


def phantom() -> tuple[sitk.Image, sitk.Image]:
    """LPS label map with a yellow ball on the patient's LEFT and ANTERIOR, a blue box on the
    patient's RIGHT and POSTERIOR, inside an elliptic body of soft tissue (CT at 40 HU)."""
    size = (60, 50, 40)  # i (-> left), j (-> posterior), k (-> superior)
    k, j, i = np.mgrid[: size[2], : size[1], : size[0]]
    lab = np.zeros(size[::-1], np.uint8)
    lab[(i - 42) ** 2 + (j - 15) ** 2 + ((k - 20) * 1.5) ** 2 < 8**2] = CRANIUM
    lab[(i > 12) & (i < 22) & (j > 28) & (j < 38) & (k > 8) & (k < 32)] = T10
    ct = np.full(size[::-1], -1000, np.int16)
    ct[((i - 30) / 26.0) ** 2 + ((j - 25) / 22.0) ** 2 < 1.0] = 40
    ct[(k < 3) | (k > 36)] = -1000
    ct[lab > 0] = 700
    images = []
    for arr in (lab, ct):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((2.0, 2.0, 3.0))
        img.SetOrigin((-60.0, -50.0, 100.0))
        images.append(img)
    return images[0], images[1]


def read_png(path) -> np.ndarray:
    r = vtkPNGReader()
    r.SetFileName(str(path))
    r.Update()
    w, h, _ = r.GetOutput().GetDimensions()
    return vtk_to_numpy(r.GetOutput().GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]


def hue_mask(img: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Pixels whose chromaticity matches ``rgb`` (lighting changes brightness, not the ratio)."""
    px = img.astype(float)
    norm = px / np.maximum(px.sum(axis=2, keepdims=True), 1)
    target = np.array(rgb, float) / sum(rgb)
    return (np.abs(norm - target).max(axis=2) < 0.04) & (px.max(axis=2) > 60)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    labels, ct = phantom()
    out = tmp_path_factory.mktemp("render")
    plain = render_labels(labels, out / "plain.png", size=SIZE)
    skin = render_labels(labels, out / "skin.png", ct=ct, size=SIZE)
    return read_png(plain), read_png(skin)


def test_png_has_size_and_a_background_gradient(rendered):
    plain, _ = rendered
    assert plain.shape == (SIZE[1], SIZE[0], 3)
    top, bottom = plain[5, SIZE[0] // 2 - 40].astype(int), plain[-5, SIZE[0] // 2 - 40].astype(int)
    assert top.sum() > bottom.sum() + 30  # lighter at the top: the background is drawn


def test_both_views_show_both_bones_on_the_right_sides(rendered):
    plain, _ = rendered
    half = SIZE[0] // 2
    anterior, lateral = plain[:, :half], plain[:, half:]
    for view in (anterior, lateral):
        assert hue_mask(view, (250, 201, 75)).sum() > 200
        assert hue_mask(view, (75, 119, 250)).sum() > 200
    cols = np.arange(half)
    # Anterior view: the patient's left (yellow ball) is on the viewer's RIGHT.
    yellow_x = cols[hue_mask(anterior, (250, 201, 75)).any(axis=0)].mean()
    blue_x = cols[hue_mask(anterior, (75, 119, 250)).any(axis=0)].mean()
    assert yellow_x > half / 2 > blue_x
    # Left lateral view: anterior (yellow ball) is on the viewer's LEFT.
    yellow_x = cols[hue_mask(lateral, (250, 201, 75)).any(axis=0)].mean()
    blue_x = cols[hue_mask(lateral, (75, 119, 250)).any(axis=0)].mean()
    assert yellow_x < half / 2 < blue_x


def test_ct_adds_a_translucent_skin(rendered):
    plain, skin = rendered

    def warm_grey(img: np.ndarray) -> float:
        """Share of pixels tinted like skin over the bluish background (bones are saturated)."""
        px = img.astype(int)
        return float(((px[..., 0] > px[..., 2] + 4) & (px.max(axis=2) - px.min(axis=2) < 40)).mean())

    assert warm_grey(plain) < 0.01
    assert warm_grey(skin) > 0.05


def test_bad_inputs(tmp_path):
    labels, ct = phantom()
    with pytest.raises(LabelMapError, match="negative values"):
        render_labels(ct, tmp_path / "a.png")
    with pytest.raises(LabelMapError, match="not a CT"):
        render_labels(labels, tmp_path / "b.png", ct=labels)
    with pytest.raises(ValueError, match="unknown view"):
        render_labels(labels, tmp_path / "c.png", views=("sideways",))
    assert not list(tmp_path.iterdir())


def test_cli_render(tmp_path, capsys):
    labels, ct = phantom()
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "preview.png"
    assert cli_main(["render", str(tmp_path / "labels.nii.gz"), str(out), "--views", "posterior",
                     "--size", "320", "240", "--quiet"]) == 0
    assert read_png(out).shape == (240, 320, 3)
    assert cli_main(["render", str(tmp_path / "ct.nii.gz"), str(tmp_path / "x.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ct.nii.gz" in err and "negative values" in err and not (tmp_path / "x.png").exists()
