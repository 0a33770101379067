"""The A/B/C/D ablation end to end at toy size: 5 phantoms at 8 mm, tiny widths, a few iterations.

One module-scoped study runs the real command (phantoms -> train -> predictor -> evaluation ->
document); the tests then check the document against the run folders' own reports.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sneakynet.ablation import (CONFIG_NAMES, PAPER_TABLE2, collapsed_twins, confusion_stats, parse_table_rows,
                                portable_path, read_confusion_csv)
from sneakynet.cli import main
from sneakynet.labels import load_label_table

CONFIGS = ("A", "B", "C", "D")


def _args(out, doc, iterations=4, configs="A,B,C,D"):
    return ["ablation", "--out", str(out), "--doc", str(doc), "--cases", "5", "--spacing", "8", "--patch", "32",
            "--iterations", str(iterations), "--configs", configs, "--widths", "4,4,8,8,8", "--threads", "1",
            "--workers", "0", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    out, doc = root / "study", root / "docs" / "ablation.md"
    assert main(_args(out, doc)) == 0
    return out, doc


def test_document_table_matches_each_runs_test_summary(study):
    out, doc = study
    text = doc.read_text(encoding="utf-8")
    rows = parse_table_rows(text)
    assert sorted(rows) == list(CONFIGS)
    for config in CONFIGS:
        summary = json.loads((out / "runs" / config / "test" / "summary.json").read_text())
        values = rows[config]
        expected = (summary["median"], summary["plus"], summary["minus"], summary["nonzero_pct"])
        assert len(values) == 4 and math.isfinite(values[3]), (config, values)
        for got, want, digits in zip(values, expected, (2, 2, 2, 1)):
            if want is None:  # no class with DSC > 0: summary.json holds null, the table n/a
                assert math.isnan(got), (config, got)
            else:
                assert got == pytest.approx(round(want, digits), abs=1.01 * 10**-digits / 2), (config, got, want)
        # paper rows sit next to ours
        median, plus, minus, nonzero = PAPER_TABLE2[32][config]
        assert f"| {CONFIG_NAMES[config]}, paper (real CT) | {median:.2f} | +{plus:.2f} | -{minus:.2f} " \
               f"| {nonzero:.1f}% |" in text


def test_document_names_folders_without_machine_paths(study):
    out, doc = study
    text = doc.read_text(encoding="utf-8")
    assert str(out.parent) not in text and str(out.parent.resolve()) not in text
    assert "sneakynet ablation --out study --cases 5" in text and "--doc docs/ablation.md" in text
    assert "- Study folder: `study` (runs in" in text


def test_portable_path_is_relative_to_the_first_base_it_lies_under(tmp_path):
    study = tmp_path / "abl" / "study"
    assert portable_path(study / "phantoms", tmp_path / "docs", study.parent) == "study/phantoms"
    assert portable_path(study, study) == "."
    assert portable_path(study / "phantoms", tmp_path / "elsewhere") == "phantoms"


def test_same_split_budget_and_left_right_counts(study):
    out, doc = study
    text = doc.read_text(encoding="utf-8")
    splits = [json.loads((out / "runs" / c / "splits.json").read_text()) for c in CONFIGS]
    assert all(s["test"] == splits[0]["test"] and s["train"] == splits[0]["train"] for s in splits)
    for c in CONFIGS:
        options = json.loads((out / "runs" / c / "options.json").read_text())
        assert (options["iterations"], options["batch_size"], options["seed"]) == (4, 2, 3)
        assert options["context"] == (0 if c == "A" else 1)
        cm = read_confusion_csv(out / "runs" / c / "test" / "confusion_all.csv")
        stats = confusion_stats(cm)
        assert f"| {c} | {stats['lr_voxels']:,} |" in text
        png = doc.parent / "ablation" / f"confusion_limbs_{c}.png"
        assert png.is_file() and png.stat().st_size < 300_000
        assert f"(ablation/confusion_limbs_{c}.png)" in text
    assert "Machine: " in text and "torch " in text and "sneakynet ablation --out" in text
    assert not list(doc.parent.glob(".*tmp*")), "temporary files left next to the document"


def test_rerun_skips_finished_configs_and_refuses_other_settings(study, monkeypatch, capsys):
    out, doc = study
    import sneakynet.fold_eval
    import sneakynet.train

    def forbidden(*a, **k):
        raise AssertionError("a finished config was run again")

    monkeypatch.setattr(sneakynet.train, "train", forbidden)
    monkeypatch.setattr(sneakynet.fold_eval, "evaluate_fold", forbidden)
    doc2 = doc.parent / "again.md"
    assert main(_args(out, doc2, configs="A,D")) == 0
    again = parse_table_rows(doc2.read_text(encoding="utf-8"))
    first = parse_table_rows(doc.read_text(encoding="utf-8"))
    assert sorted(again) == ["A", "D"]
    np.testing.assert_equal(again["A"], first["A"])  # NaN (n/a) equals NaN here
    np.testing.assert_equal(again["D"], first["D"])
    assert (doc.parent / "again" / "confusion_limbs_D.png").is_file()
    capsys.readouterr()
    assert main(_args(out, doc, iterations=5)) == 2
    err = capsys.readouterr().err
    assert "study.json" in err and "iterations (4 -> 5)" in err


@pytest.mark.parametrize("text, problem", [("", "study file is empty"), ("{cut", "not valid JSON")])
def test_damaged_study_file_is_one_clear_error(tmp_path, capsys, text, problem):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text(text, encoding="utf-8")
    assert main(_args(out, tmp_path / "doc.md")) == 2
    err = capsys.readouterr().err
    assert f"study.json: {problem}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_document_numbers_from_known_predictions(study, tmp_path):
    """Runs whose test predictions are known edits of the references: every table cell is numeric
    and read from the run's summary.json; the left/right count is the right femur's voxel count."""
    import SimpleITK as sitk

    from sneakynet.ablation import AblationOptions, collect_results, write_document
    from sneakynet.evaluate import evaluate_folders
    from sneakynet.io import write_image

    out, _ = study
    table = load_label_table()
    fl, fr = table.by_name("femur_left").id, table.by_name("femur_right").id
    split = json.loads((out / "runs" / "A" / "splits.json").read_text())
    options = AblationOptions(out=tmp_path / "known", configs=("A", "D"), dataset=out / "phantoms", spacing=8,
                              iterations=4, seed=3, widths=(4, 4, 8, 8, 8), doc=tmp_path / "known.md")
    right_femur = 0
    for config in options.configs:
        run = options.run_dir(config)
        run.mkdir(parents=True)
        (run / "splits.json").write_text(json.dumps(split))
        for case in split["test"]:
            ref = sitk.ReadImage(str(out / "phantoms" / "labelsTr" / f"{case}.nii.gz"))
            arr = sitk.GetArrayFromImage(ref)
            if config == "A":  # both femurs called left: the right femur is all left/right confusion
                right_femur += int(np.sum(arr == fr))
                arr = np.where(arr == fr, fl, arr)
            pred = sitk.GetImageFromArray(arr.astype(np.uint8))
            pred.CopyInformation(ref)
            write_image(pred, run / "test" / "predictions" / f"{case}.nii.gz")
            write_image(ref, run / "test" / "references" / f"{case}.nii.gz")
        evaluate_folders(run / "test" / "predictions", run / "test" / "references", run / "test", progress=False)
    assert right_femur > 0
    text = write_document(options, collect_results(options), 0.0, finished=True).read_text(encoding="utf-8")
    rows = parse_table_rows(text)
    for config in options.configs:
        summary = json.loads((options.run_dir(config) / "test" / "summary.json").read_text())
        assert all(math.isfinite(v) for v in rows[config])
        expected = (summary["median"], summary["plus"], summary["minus"], summary["nonzero_pct"])
        for got, want, digits in zip(rows[config], expected, (2, 2, 2, 1)):
            assert got == pytest.approx(round(want, digits), abs=1.01 * 10**-digits / 2), (config, got, want)
    assert rows["D"] == (1.0, 0.0, 0.0, 100.0)  # the references themselves
    assert rows["A"][0] == 1.0 and rows["A"][3] < 100.0  # the right femur has DSC 0
    assert f"| A | {right_femur:,} |" in text and "| D | 0 |" in text
    assert "A: long-bone twins predicted with one side's label for both sides: femur (both as left)" in text
    assert "D: long-bone twins predicted with one side's label for both sides: none" in text


def test_confusion_stats_counts_twins_and_arm_leg():
    table = load_label_table()
    cm = np.zeros((126, 126), dtype=np.int64)
    hl, hr, fl = (table.by_name(n).id for n in ("humerus_left", "humerus_right", "femur_left"))
    rib_l, rib_r = table.by_name("rib_left_1").id, table.by_name("rib_right_1").id
    cm[hl, hl], cm[hr, hr], cm[fl, fl] = 90, 80, 100
    cm[hl, hr] = 7  # left humerus predicted as right humerus
    cm[hr, fl] = 5  # right humerus predicted as left femur
    cm[rib_l, rib_r] = 3
    cm[rib_l, rib_l] = 10
    s = confusion_stats(cm)
    assert s["lr_voxels"] == 10
    assert s["lr_pct"] == pytest.approx(100 * 10 / (97 + 85 + 100 + 13))
    assert (s["limb_offdiag"], s["limb_lr"], s["arm_leg"]) == (12, 7, 5)
    assert collapsed_twins(cm) == []  # each humerus mostly gets its own label
    cm[hr, hl] = 81  # now the right humerus is mostly called left
    assert collapsed_twins(cm) == [("humerus", "left")]


def test_bad_configs_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablation", "--out", str(tmp_path / "x"), "--configs", "A,E"])
    assert exc.value.code == 2
    assert "subset of A,B,C,D" in capsys.readouterr().err
