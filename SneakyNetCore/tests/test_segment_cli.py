"""``sneakynet segment`` end to end with a randomly initialised bundle (geometry, formats, folders, errors).

The random network's labels mean nothing; these tests check files, geometry and messages.
"""
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sneakynet.cli import main
from sneakynet.segfile import read_seg_nrrd_names

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg_example"


def _same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


REAL_CTS = ["example_ct.nii.gz", "example_ct_sm.nii.gz", "example_ct_dicom"]


@pytest.mark.parametrize("name", REAL_CTS)
def test_segment_runs_on_every_real_ct_and_keeps_its_geometry(name, bundle, tmp_path):
    src = SHARED_DATA / name
    assert src.exists(), f"shared data missing: {src}"
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(src), str(out), "--model", str(bundle), "--device", "cpu", "--fast"]) == 0
    from sneakynet.io import read_image

    _same_grid(sitk.ReadImage(str(out)), read_image(src))


def test_seg_nrrd_output_has_names_and_colours(bundle, tmp_path, capsys):
    out = tmp_path / "case.seg.nrrd"
    assert main(["segment", str(SHARED_DATA / "example_ct_sm.nii.gz"), str(out), "--model", str(bundle),
                 "--device", "cpu", "--fast", "--precision", "float32"]) == 0
    assert "on cpu in float32" in capsys.readouterr().out
    labels = sitk.ReadImage(str(out))
    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v)
    names = read_seg_nrrd_names(out)
    from sneakynet.labels import load_label_table

    table = load_label_table()
    assert sorted(names) == present and all(names[v] == table.by_id(v).display for v in present)


def test_folder_mode_skips_finished_cases(bundle, tmp_path, capsys):
    cases = tmp_path / "in"
    cases.mkdir()
    src = sitk.ReadImage(str(SHARED_DATA / "example_ct_sm.nii.gz"))
    for name in ("a_0000.nii.gz", "b.nrrd"):
        sitk.WriteImage(src, str(cases / name))
    out = tmp_path / "out"
    assert main(["segment", str(cases), str(out), "--model", str(bundle), "--device", "cpu", "--fast"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz"]
    (out / "b.nii.gz").unlink()
    assert main(["segment", str(cases), str(out), "--model", str(bundle), "--device", "cpu", "--fast"]) == 0
    assert "skipping 1 finished case" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz"]


def test_bad_inputs_exit_2_with_message_and_no_output(bundle, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main(["segment", str(tmp_path / "missing.nii.gz"), str(out), "--model", str(bundle)]) == 2
    assert "does not exist" in capsys.readouterr().err
    rgb = tmp_path / "rgb.png"
    sitk.WriteImage(sitk.Image([16, 16], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nrrd"))
    assert main(["segment", str(tmp_path / "rgb.nrrd"), str(out), "--model", str(bundle), "--device", "cpu"]) == 2
    assert "components per voxel" in capsys.readouterr().err
    assert main(["segment", str(SHARED_DATA / "example_ct_sm.nii.gz"), str(out), "--model",
                 str(tmp_path / "nobundle")]) == 2
    assert "nobundle" in capsys.readouterr().err
    assert not out.exists() and not rgb.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.nii.gz")]


def test_existing_output_is_replaced_only_by_a_finished_result(bundle, tmp_path):
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"previous result")
    bad = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkInt16), str(bad))
    assert main(["segment", str(bad), str(out), "--model", str(bundle), "--device", "cpu"]) == 2
    assert out.read_bytes() == b"previous result"


def test_postprocess_presets_clean_the_labels_with_the_ct(tmp_path):
    """The default (anatomy) and a bare --postprocess (full) give what sneakynet.postprocess makes of the
    --no-postprocess result with that preset (and full changes it here: the phantom-trained demo model
    leaves stray pieces on this real CT)."""
    from sneakynet.io import read_image
    from sneakynet.postprocess import postprocess, preset_options

    src = SHARED_DATA / "example_ct_sm.nii.gz"
    common = ["--device", "cpu", "--fast", "--precision", "float32"]
    runs = {"none": ["--no-postprocess"], "anatomy": [], "full": ["--postprocess"]}
    for name, flags in runs.items():
        assert main(["segment", str(src), str(tmp_path / f"{name}.nii.gz"), *common, *flags]) == 0
    got = {name: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nii.gz"))) for name in runs}
    ct = read_image(src)
    for name in ("anatomy", "full"):
        expected = postprocess(got["none"], sitk.GetArrayViewFromImage(ct), ct.GetSpacing()[::-1],
                               preset_options(name), ct.GetDirection())
        np.testing.assert_array_equal(got[name], expected)
    assert not np.array_equal(got["full"], got["none"]), "the demo model's labels have stray pieces to clean here"


@pytest.mark.parametrize("flags, preset", [([], "anatomy"), (["--postprocess"], "full"),
                                           (["--postprocess", "none"], "none"), (["--postprocess", "full"], "full"),
                                           (["--no-postprocess"], "none")])
def test_postprocess_flag_parses_to_a_preset(flags, preset):
    from sneakynet.cli import build_parser
    from sneakynet.commands import segment

    parser, subparsers = build_parser()
    segment.add_arguments(subparsers["segment"])
    assert parser.parse_args(["segment", "in.nii.gz", "out.nii.gz", *flags]).postprocess == preset


def test_unknown_postprocess_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "in.nii.gz", "out.nii.gz", "--postprocess", "clean"])
    assert exc.value.code == 2 and "invalid choice: 'clean'" in capsys.readouterr().err


def test_mirror_flag_averages_the_mirrored_prediction(tmp_path):
    """``--mirror`` gives the labels of ``Predictor(mirror=True)``, which differ from the plain run's."""
    from sneakynet.infer import Predictor
    from sneakynet.io import read_image

    src = SHARED_DATA / "example_ct_sm.nii.gz"
    common = ["--device", "cpu", "--fast", "--precision", "float32", "--no-postprocess"]
    for name, flags in {"plain": [], "mirror": ["--mirror"]}.items():
        assert main(["segment", str(src), str(tmp_path / f"{name}.nii.gz"), *common, *flags]) == 0
    got = {name: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nii.gz"))) for name in ("plain", "mirror")}
    expected = Predictor(None, device="cpu", fast=True, precision="float32", mirror=True,
                         log=lambda m: None).predict_image(read_image(src))
    np.testing.assert_array_equal(got["mirror"], sitk.GetArrayFromImage(expected))
    assert not np.array_equal(got["mirror"], got["plain"])
