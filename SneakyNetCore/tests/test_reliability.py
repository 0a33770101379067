"""Fault injection (issue: never lose or fake a result): failed writes, damaged inputs, non-CT
intensities, bad options and crafted configs end in one clear message and a documented exit code.

Faults are injected the way they work for any user, root included: a patched writer, a file-size
limit (``RLIMIT_FSIZE``) in a subprocess, a folder where a file should go; no mounts, no chmod.
"""
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet.bundle import BundleError, read_bundle_info
from sneakynet.checkpoint import CheckpointError, load_newest_intact, save_checkpoint
from sneakynet.cli import main
from sneakynet.intensity import NotCTError, check_hounsfield, hounsfield_problem
from sneakynet.io import ImageReadError, OutputWriteError, TEMP_MARK, read_image, write_image, write_json

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg_example"
REAL_CTS = ["example_ct.nii.gz", "example_ct_sm.nii.gz", "example_ct_dicom"]


def _ct(shape=(20, 24, 28), seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    arr = np.full(shape, -1000, np.int16)
    arr[3:-3, 4:-4, 4:-4] = rng.normal(40, 15, (shape[0] - 6, shape[1] - 8, shape[2] - 8)).astype(np.int16)
    arr[8:12, 10:14, 10:14] = 900
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((6.0, 6.0, 6.0))
    return img


def _labels(shape=(20, 24, 28)) -> sitk.Image:
    arr = np.zeros(shape, np.uint8)
    arr[5:12, 6:14, 6:14] = 7
    arr[12:16, 6:14, 6:14] = 30
    return sitk.GetImageFromArray(arr)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name or p.name.startswith("."))


# ---------------------------------------------------------------------------------------------
# 1, 5: a write that fails silently never replaces a result and leaves no temporary file


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".seg.nrrd"])
def test_silently_failing_writer_keeps_the_previous_result(tmp_path, monkeypatch, suffix):
    from sneakynet.commands.segment import write_labels

    out = tmp_path / f"labels{suffix}"
    write_labels(_labels(), out)
    before = out.read_bytes()

    def short_writer(image, path, *args):  # what a full disk does to SimpleITK's NIfTI writer
        Path(path).write_bytes(b"")

    monkeypatch.setattr(sitk, "WriteImage", short_writer)
    with pytest.raises(OutputWriteError, match="does not read back.*nothing was replaced"):
        write_labels(_labels(), out)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []


def _limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with a file-size limit (exceeding it fails the write with EFBIG)."""
    prelude = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n")
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".seg.nrrd"])
def test_full_disk_during_segment_write_exits_3_and_keeps_the_old_map(tmp_path, bundle, suffix):
    ct, out = tmp_path / "ct.nii.gz", tmp_path / f"out{suffix}"
    sitk.WriteImage(_ct(), str(ct))
    assert main(["segment", str(ct), str(out), "--model", str(bundle), "--device", "cpu", "--fast"]) == 0
    before = out.read_bytes()
    code = ("import sys; from sneakynet.cli import main; "
            f"sys.exit(main(['segment', {str(ct)!r}, {str(out)!r}, '--model', {str(bundle)!r}, '--device', 'cpu', "
            "'--fast', '--force']))")
    proc = _limited(code, 100, tmp_path)  # below any label map file: every write of the result fails
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (tmp_path / "stderr.txt").write_text(proc.stderr)
    assert "Traceback" not in proc.stderr and f"error: {out}: written image does not read back" in proc.stderr
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == [] and (tmp_path / "stderr.txt").unlink() is None


def test_output_that_is_a_folder_exits_3_with_the_path(tmp_path):
    (tmp_path / "view.png").mkdir()
    labels = tmp_path / "labels.nii.gz"
    write_image(_labels(), labels)
    code = main(["render", str(labels), str(tmp_path / "view.png"), "--quiet"])
    assert code == 3


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".labels.nii.gz{TEMP_MARK}{int(dead.stdout)}-x1.nii.gz"
    stale.write_bytes(b"half")
    mine = tmp_path / f".labels.nii.gz{TEMP_MARK}{os.getpid()}-x2.nii.gz"  # a live writer's: kept
    mine.write_bytes(b"busy")
    foreign = tmp_path / f".labels.nii.gz{TEMP_MARK}{int(dead.stdout)}@0000beef-x3.nii.gz"  # another machine's
    foreign.write_bytes(b"busy elsewhere")
    write_image(_labels(), tmp_path / "labels.nii.gz")
    assert not stale.exists() and mine.exists() and foreign.exists()
    old = time.time() - 2 * 24 * 3600
    os.utime(foreign, (old, old))
    write_image(_labels(), tmp_path / "labels.nii.gz")
    assert not foreign.exists()


def test_sigterm_during_a_write_leaves_no_temporary(tmp_path):
    code = ("import os, signal, SimpleITK as sitk, numpy as np\n"
            "from sneakynet import cli, io\n"
            "class Cmd:\n"
            "    @staticmethod\n"
            "    def run(args):\n"
            "        with io.atomic_path('out.json') as tmp:\n"
            "            tmp.write_text('{}')\n"
            "            os.kill(os.getpid(), signal.SIGTERM)\n"
            "raise SystemExit(cli._run_command('x', Cmd, None))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_failed_evaluate_leaves_no_empty_folder(tmp_path):
    (tmp_path / "pred").mkdir()
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "a" / "b"), "--quiet"]) == 2
    assert not (tmp_path / "a").exists()


# ---------------------------------------------------------------------------------------------
# 3, 4: never overwrite the input; folder mode goes on


def test_output_equal_to_input_is_refused(tmp_path, bundle, capsys):
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(ct))
    before = ct.read_bytes()
    assert main(["segment", str(ct), str(tmp_path / "." / "ct.nii.gz"), "--model", str(bundle)]) == 2
    assert "is the input CT itself" in capsys.readouterr().err
    assert ct.read_bytes() == before


def test_folder_mode_goes_on_after_a_bad_case(tmp_path, bundle, capsys):
    cases, out = tmp_path / "cases", tmp_path / "out"
    cases.mkdir()
    for name in ("a", "c"):
        sitk.WriteImage(_ct(), str(cases / f"{name}.nii.gz"))
    (cases / "b.nii.gz").write_bytes(b"\x1f\x8b broken")
    write_image(_labels(), cases / "seg.seg.nrrd")  # a segmentation is never taken as a CT input
    code = main(["segment", str(cases), str(out), "--model", str(bundle), "--device", "cpu", "--fast"])
    err = capsys.readouterr().err
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "c.nii.gz"]
    assert "1 of 3 case(s) failed" in err and "b.nii.gz" in err and "seg" not in err.split("failed:")[1]


# ---------------------------------------------------------------------------------------------
# 6, 8: damaged inputs


def test_truncated_and_corrupt_compressed_input_is_refused(tmp_path):
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(good))
    data = good.read_bytes()
    (tmp_path / "half.nii.gz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flipped.nii.gz").write_bytes(bytes(flipped))
    sitk.WriteImage(_ct(), str(tmp_path / "ct.nii"))
    (tmp_path / "half.nii").write_bytes((tmp_path / "ct.nii").read_bytes()[:5000])
    for name in ("half.nii.gz", "flipped.nii.gz", "half.nii"):
        with pytest.raises(ImageReadError, match=rf"{name}: not a readable image"):
            read_image(tmp_path / name)
    read_image(good)


def test_nan_in_nifti_is_seen_although_itk_reads_it_as_zero(tmp_path):
    arr = sitk.GetArrayFromImage(_ct()).astype(np.float32)
    arr[5, 5, 5] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "nan.nii.gz"))
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nan.nii.gz")))).any()
    with pytest.raises(ImageReadError, match="NaN or infinite"):
        read_image(tmp_path / "nan.nii.gz")


# ---------------------------------------------------------------------------------------------
# 7: is it CT in HU? No false refusals on real CT, phantoms and a crop inside the body


@pytest.mark.parametrize("name", REAL_CTS)
def test_every_real_ct_and_a_crop_inside_the_body_are_accepted(name):
    arr = sitk.GetArrayFromImage(read_image(SHARED_DATA / name))
    assert hounsfield_problem(arr) is None
    z, y, x = arr.shape
    crop = arr[z // 3: 2 * z // 3, y // 2 - 20: y // 2 + 20, x // 2 - 30: x // 2 + 30]
    assert (crop < -500).mean() < 0.01  # no air in view
    assert hounsfield_problem(crop) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_phantom_is_accepted(seed):
    from sneakynet.phantom import generate_case, options_for_size

    ct, _ = generate_case(seed, options_for_size("small"))
    assert hounsfield_problem(sitk.GetArrayFromImage(ct)) is None


def test_non_ct_intensities_are_refused_unless_forced():
    arr = sitk.GetArrayFromImage(read_image(SHARED_DATA / "example_ct_sm.nii.gz")).astype(np.int32)
    cases = {
        "offset": (arr + 1024, "+1024 offset"),
        "offset clipped": (np.clip(arr + 1024, 0, None), "+1024 offset"),
        "mr": (((arr + 1024) / 3000 * 4000).clip(0, 4000).astype(np.float32), "almost no voxel is below 0"),
        "uint8": (np.clip(arr, 0, 255).astype(np.uint8), "8-bit"),
        "int8": (np.clip(arr, -128, 127).astype(np.int8), "8-bit"),
        "labels": (sitk.GetArrayFromImage(read_image(SHARED_DATA / "example_seg.nii.gz")).astype(np.int16),
                   "label map"),
    }
    for what, (values, message) in cases.items():
        with pytest.raises(NotCTError, match=re.escape(message)):
            check_hounsfield(values, what)
        assert message.split()[-1] in check_hounsfield(values, what, force=True)


def test_segment_refuses_non_ct_with_exit_2_and_force_runs(tmp_path, bundle, capsys):
    arr = sitk.GetArrayFromImage(_ct()).astype(np.int32) + 1024
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((6.0, 6.0, 6.0))
    sitk.WriteImage(img, str(tmp_path / "raw.nii.gz"))
    args = ["segment", str(tmp_path / "raw.nii.gz"), str(tmp_path / "l.nii.gz"), "--model", str(bundle),
            "--device", "cpu", "--fast"]
    assert main(args) == 2
    assert "does not look like CT in Hounsfield units" in capsys.readouterr().err
    assert not (tmp_path / "l.nii.gz").exists()
    assert main(args + ["--force"]) == 0
    assert "warning" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# 9, 10: numeric options and crafted configs


@pytest.mark.parametrize("argv", [
    ["segment", "in.nii.gz", "out.nii.gz", "--batch-size", "-1"],
    ["segment", "in.nii.gz", "out.nii.gz", "--overlap", "1.5"],
    ["segment", "in.nii.gz", "out.nii.gz", "--overlap", "nan"],
    ["export-meshes", "l.nii.gz", "o", "--decimate", "1"],
    ["export-meshes", "l.nii.gz", "o", "--smooth", "-3"],
    ["render", "l.nii.gz", "o.png", "--size", "0", "10"],
    ["import-dataset", "a", "b", "--format", "nnunet", "--splits", "1"],
    ["phantom", "--out", "x", "--n", "0"],
    ["split", "d", "--folds", "1"],
    ["train", "--dataset", "d", "--out", "o", "--spacing", "0.001"],
])
def test_out_of_range_numeric_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["network"].update(widths=[4096] * 5), "channel counts in 1..2048"),
    (lambda c: c["network"].update(widths=[1024] * 5), "M parameters"),
    (lambda c: c.update(spacing_mm=[0.001, 0.001, 0.001]), "spacing must be three positive numbers in 0.1..20"),
    (lambda c: c["network"].update(patch_size=4096), "patch size must be an integer in 1..256"),
])
def test_crafted_config_is_refused_before_anything_is_built(bundle, tmp_path, edit, message):
    import shutil

    copy = tmp_path / "crafted"
    shutil.copytree(bundle, copy)
    cfg = json.loads((copy / "config.json").read_text())
    edit(cfg)
    cfg["patch_size"] = cfg["network"]["patch_size"]
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match=message):
        read_bundle_info(copy)


# ---------------------------------------------------------------------------------------------
# 11: resume falls back to an older intact checkpoint


def test_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path):
    tensors = {"model/w": torch.arange(10.0)}
    for it in (4, 8):
        save_checkpoint(tmp_path, it, tensors, {"note": it}, keep=2)
    newest = tmp_path / "checkpoints" / "iter_0000008" / "state.safetensors"
    newest.write_bytes(newest.read_bytes()[:-7])
    said = []
    ckpt = load_newest_intact(tmp_path, log=said.append)
    assert ckpt.iteration == 4 and "iter_0000008" in said[0] and "iter_0000004" in said[0]
    older = tmp_path / "checkpoints" / "iter_0000004" / "state.json"
    older.write_text("{")
    with pytest.raises(CheckpointError, match="no older intact checkpoint"):
        load_newest_intact(tmp_path, log=said.append)


def test_json_write_is_verified_and_refuses_nan(tmp_path, monkeypatch):
    path = write_json({"a": 1}, tmp_path / "x.json")
    with pytest.raises(ValueError):
        write_json({"a": float("nan")}, path)
    real = Path.write_text
    monkeypatch.setattr(Path, "write_text", lambda self, text, **kw: real(self, text[:3], **kw))
    with pytest.raises(OutputWriteError):
        write_json({"a": 2}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1} and _leftovers(tmp_path) == []
    random.seed(0)
