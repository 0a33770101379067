"""Run every fault we know of through the real ``sneakynet`` CLI and write the table of what happened.

Each fault runs the command in a fresh Python process (as a user would), optionally with a fault
injected before the command starts: a file-size limit (``RLIMIT_FSIZE``, what a full disk does to
writes), or ``os.open``/``os.mkdir`` failing with EACCES or EROFS under the output location (a
permission-denied or read-only place; root bypasses real permissions, so they are injected). The
table records the exit code, the error line, whether a traceback was printed, whether temporary
files or empty folders were left, and whether the outcome is the wanted one (an existing result
kept, nothing half-written). Usage::

    python SneakyNetCore/benchmarks/fault_table.py [--write SneakyNetCore/docs/reliability.md]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

MARK_BEGIN, MARK_END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
PRELUDES = {
    "": "",
    "full disk": ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                  "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"),
}
DENY = """import errno, os
_root, _code = os.environ["FAULT_ROOT"], errno.{code}
_open, _mkdir = os.open, os.mkdir
def _deny(path):
    if str(path).startswith(_root):
        raise OSError(_code, os.strerror(_code), str(path))
def _os_open(path, flags, *a, **k):
    if flags & os.O_CREAT:
        _deny(path)
    return _open(path, flags, *a, **k)
def _os_mkdir(path, *a, **k):
    _deny(path)
    return _mkdir(path, *a, **k)
os.open, os.mkdir = _os_open, _os_mkdir
"""
PRELUDES["permission denied"] = DENY.replace("{code}", "EACCES")
PRELUDES["read-only location"] = DENY.replace("{code}", "EROFS")


@dataclass
class Fault:
    """One fault: the command line, what is injected, and what outcome is wanted."""

    command: str
    fault: str
    argv: list[str]
    inject: str = ""
    fault_root: str = ""  # EACCES/EROFS apply under this path
    wanted: Callable[[int, str], bool] = lambda rc, err: rc != 0
    after: list[Callable[[], bool]] = field(default_factory=list)  # extra checks: result kept, ...


@dataclass
class Outcome:
    fault: Fault
    code: int
    message: str
    traceback: bool
    leftovers: list[str]
    as_wanted: bool
    seconds: float


def run_fault(f: Fault, work: Path) -> Outcome:
    """Run one fault in a fresh process and judge the outcome."""
    before = _tree(work)
    code = PRELUDES[f.inject] + f"import sys; from sneakynet.cli import main; sys.exit(main({f.argv!r}))\n"
    env = dict(os.environ, FAULT_ROOT=f.fault_root or str(work / "no-such-root"), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - t0
    err = _strip_bars(proc.stderr)
    lines = [ln for ln in err.splitlines() if ln.startswith("sneakynet") and ("error:" in ln or "failed" in ln)]
    out_lines = [ln for ln in proc.stdout.splitlines() if "warning" in ln or "resuming" in ln or "older" in ln]
    message = (lines or out_lines or [ln for ln in err.splitlines() if ln.strip()][-1:] or ["(no message)"])[0]
    message = message.replace(str(work) + "/", "").replace(str(work), ".")
    new = sorted(set(_tree(work)) - set(before))
    leftovers = [p for p in new if ".sntmp-" in p or ".snold-" in p or (proc.returncode and _empty_dir(work / p))]
    ok = f.wanted(proc.returncode, proc.stderr + proc.stdout) and all(check() for check in f.after)
    return Outcome(f, proc.returncode, message, "Traceback (most recent call last)" in proc.stderr,
                   leftovers, ok and not leftovers, seconds)


def _strip_bars(text: str) -> str:
    return "\n".join(ln for ln in re.split(r"[\r\n]", text) if "%|" not in ln)


def _tree(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")]


def _empty_dir(p: Path) -> bool:
    return p.is_dir() and not any(p.iterdir())


# ----------------------------------------------------------------------------------------------
# fixtures


def make_fixtures(work: Path) -> dict[str, Path]:
    """A random tiny bundle, CTs (good and damaged), label maps and a phantom dataset under ``work``."""
    import torch

    from sneakynet.bundle import intensity_spec, save_bundle
    from sneakynet.intensity import CTNormalization
    from sneakynet.models import NetConfig, build_network
    from sneakynet.phantom import generate_case, options_for_size

    torch.manual_seed(0)
    fx: dict[str, Path] = {"bundle": save_bundle(
        build_network(NetConfig("D", 1, 32, widths=(4, 8, 8, 16, 16))), work / "bundle", spacing=(8.0, 8.0, 8.0),
        intensity=intensity_spec(CTNormalization()), description="random network for the fault table",
        training={"data": "none"})}
    ct, labels = generate_case(0, options_for_size("small", spacing=(8.0, 8.0, 8.0)))
    sitk.WriteImage(ct, str(work / "ct.nii.gz"))
    sitk.WriteImage(ct, str(work / "ct.nii"))
    sitk.WriteImage(labels, str(work / "labels.nii.gz"))
    arr = sitk.GetArrayFromImage(ct).astype(np.int32)
    _derived(work, ct, arr, labels)
    return fx


def _derived(work: Path, ct: sitk.Image, arr: np.ndarray, labels: sitk.Image) -> None:
    """Damaged and non-CT variants of the fixture CT."""
    data = (work / "ct.nii.gz").read_bytes()
    (work / "half.nii.gz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (work / "flipped.nii.gz").write_bytes(bytes(flipped))
    (work / "half.nii").write_bytes((work / "ct.nii").read_bytes()[:4000])
    variants = {"offset": arr + 1024, "mr": ((arr + 1024) * 4000 / 3000).clip(0, 4000).astype(np.float32),
                "uint8": np.clip(arr, 0, 255).astype(np.uint8), "nan": _with_nan(arr)}
    for name, values in variants.items():
        img = sitk.GetImageFromArray(values)
        img.CopyInformation(ct)
        sitk.WriteImage(img, str(work / f"{name}.nii.gz"))
    sitk.WriteImage(sitk.Cast(labels, sitk.sitkInt16), str(work / "labelmap_as_ct.nii.gz"))
    sitk.WriteImage(sitk.Image([16, 16], sitk.sitkVectorUInt8, 3), str(work / "rgb.nrrd"))
    sitk.WriteImage(sitk.Image([16, 16], sitk.sitkInt16), str(work / "slice2d.nrrd"))
    (work / "a_file").write_text("not a folder")


def _with_nan(arr: np.ndarray) -> np.ndarray:
    out = arr.astype(np.float32)
    out[out.shape[0] // 2, 5, 5] = np.nan
    return out


# ----------------------------------------------------------------------------------------------
# the faults, per command


def _kept(path: Path) -> Callable[[], bool]:
    """A check that ``path`` still holds what it holds now."""
    data = path.read_bytes()
    return lambda: path.is_file() and path.read_bytes() == data


def _absent(path: Path) -> Callable[[], bool]:
    return lambda: not path.exists()


def _code(expected: int) -> Callable[[int, str], bool]:
    return lambda rc, err: rc == expected


def segment_faults(w: Path, fx: dict[str, Path]) -> list[Fault]:
    """``segment``: inputs, outputs, options, environment."""
    def seg(src: str, out: str, *extra: str) -> list[str]:
        return ["segment", str(w / src), str(w / out), "--model", str(fx["bundle"]), "--device", "cpu", "--fast",
                *extra]

    from sneakynet.cli import main

    for name in ("prev.nii.gz", "prev.nii", "prev.seg.nrrd"):
        main(seg("ct.nii.gz", name))
    (w / "out_dir.nii.gz").mkdir()
    two = w / "cases"
    two.mkdir()
    for name in ("a.nii.gz", "c.nii.gz"):
        shutil.copy(w / "ct.nii.gz", two / name)
    shutil.copy(w / "half.nii.gz", two / "b.nii.gz")
    shutil.copy(w / "prev.seg.nrrd", two / "seg.seg.nrrd")
    stale = w / f".prev.nii.gz.sntmp-{_dead_pid()}-abc.nii.gz"
    stale.write_bytes(b"half")
    return [
        Fault("segment", "input does not exist", seg("missing.nii.gz", "o1.nii.gz"), wanted=_code(2)),
        Fault("segment", "output path = input path", seg("ct.nii.gz", "./ct.nii.gz"), wanted=_code(2),
              after=[_kept(w / "ct.nii.gz")]),
        Fault("segment", "output path is an existing folder", seg("ct.nii.gz", "out_dir.nii.gz"), wanted=_code(2)),
        Fault("segment", "output suffix unknown", seg("ct.nii.gz", "o.txt"), wanted=_code(2)),
        Fault("segment", "truncated .nii.gz input", seg("half.nii.gz", "o2.nii.gz"), wanted=_code(2),
              after=[_absent(w / "o2.nii.gz")]),
        Fault("segment", "corrupt .nii.gz input (one byte flipped)", seg("flipped.nii.gz", "o3.nii.gz"),
              wanted=_code(2), after=[_absent(w / "o3.nii.gz")]),
        Fault("segment", "truncated .nii input", seg("half.nii", "o4.nii.gz"), wanted=_code(2)),
        Fault("segment", "NaN in a float NIfTI", seg("nan.nii.gz", "o5.nii.gz"), wanted=_code(2)),
        Fault("segment", "CT stored without rescale (+1024)", seg("offset.nii.gz", "o6.nii.gz"), wanted=_code(2),
              after=[_absent(w / "o6.nii.gz")]),
        Fault("segment", "MR-like range 0..4000", seg("mr.nii.gz", "o7.nii.gz"), wanted=_code(2)),
        Fault("segment", "uint8 volume", seg("uint8.nii.gz", "o8.nii.gz"), wanted=_code(2)),
        Fault("segment", "label map given as the CT", seg("labelmap_as_ct.nii.gz", "o9.nii.gz"), wanted=_code(2)),
        Fault("segment", "+1024 CT with --force (runs, warns)", seg("offset.nii.gz", "o10.nii.gz", "--force"),
              wanted=lambda rc, out: rc == 0 and "warning" in out),
        Fault("segment", "RGB image", seg("rgb.nrrd", "o11.nii.gz"), wanted=_code(2)),
        Fault("segment", "2D image", seg("slice2d.nrrd", "o12.nii.gz"), wanted=_code(2)),
        Fault("segment", "--batch-size -1", seg("ct.nii.gz", "o13.nii.gz", "--batch-size", "-1"), wanted=_code(2)),
        Fault("segment", "--overlap 1.5", seg("ct.nii.gz", "o14.nii.gz", "--overlap", "1.5"), wanted=_code(2)),
        *[Fault("segment", f"full disk, existing {n}", seg("ct.nii.gz", n), "full disk", wanted=_code(3),
                after=[_kept(w / n)]) for n in ("prev.nii.gz", "prev.nii", "prev.seg.nrrd")],
        Fault("segment", "permission denied", seg("ct.nii.gz", "denied/o.nii.gz"), "permission denied",
              str(w / "denied"), wanted=_code(3)),
        Fault("segment", "read-only location", seg("ct.nii.gz", "ro/o.nii.gz"), "read-only location", str(w / "ro"),
              wanted=_code(3)),
        Fault("segment", "output parent is a file", seg("ct.nii.gz", "a_file/o.nii.gz"), wanted=_code(3)),
        Fault("segment", "folder mode: one unreadable case of 3 (+ a .seg.nrrd)", seg("cases", "cases_out"),
              wanted=lambda rc, err: rc == 2 and "1 of 3 case(s) failed" in err,
              after=[lambda: sorted(p.name for p in (w / "cases_out").iterdir()) == ["a.nii.gz", "c.nii.gz"]]),
        Fault("segment", "stale temp file of a killed run beside the output", seg("ct.nii.gz", "prev.nii.gz"),
              wanted=_code(0), after=[_absent(stale)]),
    ]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def bundle_faults(w: Path, fx: dict[str, Path]) -> list[Fault]:
    """``segment --model``: damaged, pickled and crafted bundles."""
    import json

    def variant(name: str, edit: Callable[[Path], None]) -> list[str]:
        shutil.copytree(fx["bundle"], w / name)
        edit(w / name)
        return ["segment", str(w / "ct.nii.gz"), str(w / f"{name}.nii.gz"), "--model", str(w / name), "--fast"]

    def flip(b: Path) -> None:
        data = bytearray((b / "model.safetensors").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (b / "model.safetensors").write_bytes(bytes(data))

    def config(**changes) -> Callable[[Path], None]:
        def edit(b: Path) -> None:
            cfg = json.loads((b / "config.json").read_text())
            for key, value in changes.items():
                (cfg["network"] if key == "widths" else cfg)[key] = value
            (b / "config.json").write_text(json.dumps(cfg))
        return edit

    pickle = b"\x80\x04\x95" + bytes(64)
    return [
        Fault("segment", "bundle weights with a flipped byte", variant("b_flip", flip), wanted=_code(2)),
        Fault("segment", "bundle weights are a pickle", variant(
            "b_pickle", lambda b: (b / "model.safetensors").write_bytes(pickle)), wanted=_code(2)),
        Fault("segment", "crafted config.json: widths 1024 x 5", variant("b_wide", config(widths=[1024] * 5)),
              wanted=_code(2)),
        Fault("segment", "crafted config.json: spacing 0.001 mm", variant(
            "b_tiny", config(spacing_mm=[0.001] * 3)), wanted=_code(2)),
        Fault("segment", "model folder does not exist", ["segment", str(w / "ct.nii.gz"), str(w / "x.nii.gz"),
                                                          "--model", str(w / "nope")], wanted=_code(2)),
    ]


def export_render_faults(w: Path) -> list[Fault]:
    """``export-meshes`` and ``render``."""
    lab = str(w / "labels.nii.gz")
    (w / "view.png").mkdir()
    return [
        Fault("export-meshes", "CT given as the label map", ["export-meshes", str(w / "ct.nii.gz"), str(w / "m1"),
                                                             "--quiet"], wanted=_code(2), after=[_absent(w / "m1")]),
        Fault("export-meshes", "truncated label map", ["export-meshes", str(w / "half.nii.gz"), str(w / "m2"),
                                                       "--quiet"], wanted=_code(2)),
        Fault("export-meshes", "output folder is a file", ["export-meshes", lab, str(w / "a_file"), "--quiet"],
              wanted=_code(2)),
        Fault("export-meshes", "--decimate 1", ["export-meshes", lab, str(w / "m3"), "--decimate", "1"],
              wanted=_code(2)),
        Fault("export-meshes", "full disk", ["export-meshes", lab, str(w / "m4"), "--quiet"], "full disk",
              wanted=_code(3), after=[_absent(w / "m4")]),
        Fault("export-meshes", "permission denied", ["export-meshes", lab, str(w / "den" / "m"), "--quiet"],
              "permission denied", str(w / "den"), wanted=_code(3)),
        Fault("render", "output is an existing folder", ["render", lab, str(w / "view.png"), "--quiet"],
              wanted=_code(3)),
        Fault("render", "output is not .png", ["render", lab, str(w / "v.jpg"), "--quiet"], wanted=_code(2)),
        Fault("render", "CT given as the label map", ["render", str(w / "ct.nii.gz"), str(w / "v1.png"), "--quiet"],
              wanted=_code(2)),
        Fault("render", "--size 0 0", ["render", lab, str(w / "v2.png"), "--size", "0", "0"], wanted=_code(2)),
        Fault("render", "full disk", ["render", lab, str(w / "v3.png"), "--quiet"], "full disk", wanted=_code(3),
              after=[_absent(w / "v3.png")]),
        Fault("render", "read-only location", ["render", lab, str(w / "rov" / "v.png"), "--quiet"],
              "read-only location", str(w / "rov"), wanted=_code(3)),
    ]


def evaluate_faults(w: Path) -> list[Fault]:
    """``evaluate``."""
    pred, bad = w / "pred", w / "pred_bad"
    pred.mkdir()
    bad.mkdir()
    shutil.copy(w / "labels.nii.gz", pred / "case.nii.gz")
    shutil.copy(w / "half.nii.gz", bad / "case.nii.gz")

    def ev(p: Path, out: str) -> list[str]:
        return ["evaluate", "--pred", str(p), "--ref", str(pred), "--out", str(w / out), "--quiet"]

    return [
        Fault("evaluate", "prediction folder does not exist", ev(w / "nope", "e1"), wanted=_code(2),
              after=[_absent(w / "e1")]),
        Fault("evaluate", "truncated prediction", ev(bad, "e2/sub"), wanted=_code(2), after=[_absent(w / "e2")]),
        Fault("evaluate", "--out is a file", ev(pred, "a_file"), wanted=_code(2)),
        Fault("evaluate", "--out parent is a file", ev(pred, "a_file/e"), wanted=_code(3)),
        Fault("evaluate", "full disk", ev(pred, "e3"), "full disk", wanted=_code(3), after=[_absent(w / "e3")]),
        Fault("evaluate", "permission denied", ev(pred, "den_e/e"), "permission denied", str(w / "den_e"),
              wanted=_code(3)),
    ]


def import_faults(w: Path) -> list[Fault]:
    """``import-dataset`` from an nnU-Net raw phantom dataset."""
    from sneakynet.phantom import options_for_size, write_cases

    write_cases(w / "src", n=3, seed=0, options=options_for_size("small", spacing=(8.0, 8.0, 8.0)), progress=False)
    shutil.copytree(w / "src", w / "src_bad")
    victim = sorted((w / "src_bad" / "imagesTr").iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])

    def imp(src: str, dst: str, *extra: str) -> list[str]:
        return ["import-dataset", str(w / src), str(w / dst), "--format", "nnunet", *extra]

    first_ct = sorted((w / "src" / "imagesTr").iterdir())[0]
    return [
        Fault("import-dataset", "source does not exist", imp("nope", "d1"), wanted=_code(2)),
        Fault("import-dataset", "destination = source (--overwrite)", imp("src", "src", "--overwrite"),
              wanted=_code(2), after=[_kept(first_ct)]),
        Fault("import-dataset", "destination inside the source", imp("src", "src/inner"), wanted=_code(2)),
        Fault("import-dataset", "truncated CT in the source", imp("src_bad", "d2"), wanted=_code(2),
              after=[_absent(w / "d2")]),
        Fault("import-dataset", "--splits 1", imp("src", "d3", "--splits", "1"), wanted=_code(2)),
        Fault("import-dataset", "destination parent is a file", imp("src", "a_file/d"), wanted=_code(3)),
        Fault("import-dataset", "full disk", imp("src", "d4"), "full disk", wanted=_code(3), after=[_absent(w / "d4")]),
        Fault("import-dataset", "read-only location", imp("src", "rod/d"), "read-only location", str(w / "rod"),
              wanted=_code(3)),
    ]


def train_faults(w: Path) -> list[Fault]:
    """``train`` on the imported phantom dataset; one run is trained first to test resume."""
    from sneakynet.cli import main

    main(["import-dataset", str(w / "src"), str(w / "ds"), "--format", "nnunet", "--splits", "3"])

    def tr(out: str, *extra: str) -> list[str]:
        return ["train", "--dataset", str(w / "ds"), "--out", str(w / out), "--patch", "32", "--widths",
                "4,4,8,8,16", "--spacing", "8", "--iterations", "4", "--batch-size", "1", "--ckpt-every", "2",
                "--val-every", "0", "--val-mode", "patches", "--val-patches", "1", "--workers", "0", "--device",
                "cpu", "--no-progress", "--no-test-eval", *extra]

    assert main(tr("run")) == 0
    newest = w / "run" / "checkpoints" / "iter_0000004" / "state.safetensors"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    return [
        Fault("train", "dataset does not exist", ["train", "--dataset", str(w / "nope"), "--out", str(w / "r1")],
              wanted=_code(2), after=[_absent(w / "r1")]),
        Fault("train", "--spacing 0.001", tr("r2", "--spacing", "0.001"), wanted=_code(2)),
        Fault("train", "--batch-size 0", tr("r3", "--batch-size", "0"), wanted=_code(2), after=[_absent(w / "r3")]),
        Fault("train", "--out parent is a file", tr("a_file/r"), wanted=_code(3)),
        Fault("train", "full disk", tr("r4"), "full disk", wanted=_code(3), after=[_absent(w / "r4")]),
        Fault("train", "permission denied", tr("den_t/r"), "permission denied", str(w / "den_t"), wanted=_code(3)),
        Fault("train", "resume, newest checkpoint damaged, older one kept", tr("run", "--resume"),
              wanted=lambda rc, out: rc == 0 and "older intact" in out),
    ]


# ----------------------------------------------------------------------------------------------
# the table


def table(outcomes: list[Outcome]) -> str:
    """The markdown table of all outcomes, with a summary line."""
    rows = ["| command | fault | exit | message (first line) | traceback | left behind | as wanted |",
            "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        msg = o.message.replace("|", "\\|")
        msg = msg if len(msg) <= 230 else msg[:227] + "..."
        rows.append(f"| {o.fault.command} | {o.fault.fault}{' (' + o.fault.inject + ')' if o.fault.inject and o.fault.inject not in o.fault.fault else ''} "
                    f"| {o.code} | {msg} | {'yes' if o.traceback else 'no'} | {', '.join(o.leftovers) or '-'} "
                    f"| {'yes' if o.as_wanted else '**no**'} |")
    wrong0 = sum(1 for o in outcomes if o.code == 0 and not o.as_wanted)
    summary = (f"{len(outcomes)} faults: {sum(o.as_wanted for o in outcomes)} as wanted, {wrong0} wrong with exit 0, "
               f"{sum(o.traceback for o in outcomes)} tracebacks, {sum(bool(o.leftovers) for o in outcomes)} with "
               f"leftovers; {sum(o.seconds for o in outcomes):.0f} s in all.")
    return "\n".join([summary, "", *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the table between the markers in this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sneakynet-faults-"))
    try:
        fx = make_fixtures(work)
        faults = (segment_faults(work, fx) + bundle_faults(work, fx) + export_render_faults(work)
                  + evaluate_faults(work) + import_faults(work) + train_faults(work))
        outcomes = []
        for f in faults:
            outcomes.append(run_fault(f, work))
            o = outcomes[-1]
            print(f"{o.code:4d} {'ok ' if o.as_wanted else 'BAD'} {f.command}: {f.fault}: {o.message}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(outcomes)
    print(text.splitlines()[0])
    if args.write:
        doc = args.write.read_text(encoding="utf-8")
        start, end = doc.index(MARK_BEGIN) + len(MARK_BEGIN), doc.index(MARK_END)
        args.write.write_text(doc[:start] + "\n" + text + "\n" + doc[end:], encoding="utf-8")
    return 0 if all(o.as_wanted and not o.traceback for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
