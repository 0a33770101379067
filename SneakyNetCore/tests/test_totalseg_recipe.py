"""The TotalSegmentator recipe on phantoms written in that dataset's layout: import (meta.csv split,
skipped case, per-bone counts, label sets) and a mixed run with plain phantoms that trains, resumes
and evaluates end to end."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sneakynet import cli
from sneakynet.dataset import load_dataset
from sneakynet.importers import DatasetImportError, import_totalseg
from sneakynet.labels import load_label_table
from sneakynet.totalseg_layout import totalseg_masks

TABLE = load_label_table()
HAND_GROUPS = ("carpals", "metacarpals", "phalanges")


def _phantoms(out: Path, seed: int, layout: str) -> Path:
    code = cli.main(["phantom", "--out", str(out), "--n", "3", "--seed", str(seed), "--spacing", "8", "--version", "1",
                     "--quiet", "--layout", layout])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    plain = _phantoms(root / "phantoms", 0, "nnunet")
    ts = _phantoms(root / "ts_layout", 10, "totalseg")
    # a case without any of our bones (TotalSegmentator has head-only and organ-only scans)
    empty = ts / "organs_only" / "segmentations"
    empty.mkdir(parents=True)
    shutil.copyfile(ts / "phantom_010" / "ct.nii.gz", ts / "organs_only" / "ct.nii.gz")
    femur = sitk.ReadImage(str(ts / "phantom_010" / "segmentations" / "femur_left.nii.gz"))
    sitk.WriteImage(femur * 0, str(empty / "femur_left.nii.gz"))
    sitk.WriteImage(femur, str(empty / "liver.nii.gz"))
    with open(ts / "meta.csv", "a", encoding="utf-8") as f:
        f.write("organs_only;train\n")
    assert cli.main(["import-dataset", str(ts), str(root / "ts_dataset"), "--format", "totalseg"]) == 0
    return {"root": root, "plain": plain, "ts": ts, "imported": root / "ts_dataset"}


def test_layout_has_totalsegmentators_classes_only(data):
    masks = totalseg_masks()
    assert masks["sternum"] == [TABLE.by_name("sternum_manubrium").id, TABLE.by_name("sternum_body").id]
    assert masks["skull"] == [TABLE.by_name("cranium").id, TABLE.by_name("mandible").id]
    assert masks["vertebrae_S1"] == [] and masks["sacrum"] == [TABLE.by_name("sacrum").id]
    covered = {i for ids in masks.values() for i in ids}
    hand = {i for g in HAND_GROUPS for i in TABLE.groups()[g]}
    assert not covered & hand and len(masks) == 62 and len(covered) == 59 + 4  # 59 single bones, 2 merged pairs
    files = sorted(p.name for p in (data["ts"] / "phantom_010" / "segmentations").iterdir())
    assert files == sorted(f"{n}.nii.gz" for n in masks)
    assert (data["ts"] / "meta.csv").read_text().splitlines()[0] == "image_id;split"


def test_import_reads_meta_csv_skips_empty_cases_counts_bones_and_declares_sets(data):
    ds = load_dataset(data["imported"])
    assert ds.cases == ["phantom_010", "phantom_011", "phantom_012"]  # organs_only skipped
    report = json.loads((data["imported"] / "import_report.json").read_text())
    assert report["skipped"] == ["organs_only"] and "liver" not in report["unmapped_voxels"]  # nothing of it imported
    meta = dict(line.split(";") for line in (data["ts"] / "meta.csv").read_text().splitlines()[1:])
    saved = json.loads((data["imported"] / "splits.json").read_text())
    fold = saved["folds"]
    assert "meta.csv" in saved["description"]
    assert len(fold) == 1 and {c: p for p in ("train", "val", "test") for c in fold[0][p]} == \
        {c: p for c, p in meta.items() if c != "organs_only"}
    sets = ds.meta["label_sets"]["sets"]
    assert sets == {"200": ["sternum_manubrium", "sternum_body"], "201": ["cranium", "mandible"]}
    annotated = set(ds.meta["label_sets"]["annotated"])
    assert "scaphoid_left" not in annotated and "hyoid" not in annotated and "humerus_left" in annotated
    # the labels: merged sternum and skull as set values, no hand bone; counts agree with the phantom truth
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(data["ts"] / "phantom_010" / "segmentations" / "sternum.nii.gz")))
    _, labels = ds.read_case("phantom_010")
    arr = sitk.GetArrayViewFromImage(labels)
    present = set(np.unique(arr).tolist())
    assert {200, 201} <= present and not present & {TABLE.by_name(n).id for n in ("sternum_body", "cranium")}
    assert int((arr == 200).sum()) == int(truth.sum()) > 0
    counts = report["bone_counts"]
    assert counts["sternum_manubrium+sternum_body"]["cases"] == 3
    femur = sum(int((sitk.GetArrayFromImage(load_dataset(data["imported"]).read_case(c)[1])  # a copy: the image is a temporary
                     == TABLE.by_name("femur_left").id).sum()) for c in ds.cases)
    assert counts["femur_left"] == {"cases": 3, "voxels": femur}


def test_meta_csv_problems_name_the_file(data, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(data["ts"] / "phantom_010", src / "phantom_010")
    (src / "meta.csv").write_text("image_id;split\nother;train\n")
    with pytest.raises(DatasetImportError, match=r"meta\.csv: case folder\(s\) \['phantom_010'\] are not listed"):
        import_totalseg(src, tmp_path / "out")
    (src / "meta.csv").write_text("image_id;split\nphantom_010;holdout\n")
    with pytest.raises(DatasetImportError, match=r"meta\.csv: line 2: split 'holdout'"):
        import_totalseg(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mixed_run_trains_resumes_and_evaluates(data, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--dataset", str(data["plain"]), "--dataset", f"{data['imported']}:2", "--out", str(run),
            "--patch", "32", "--widths", "4,4,8,8,16", "--batch-size", "2", "--workers", "0", "--spacing", "8",
            "--val-every", "2", "--val-mode", "patches", "--val-patches", "4", "--ckpt-every", "2", "--log-every", "1", "--device", "cpu", "--threads", "1",
            "--deterministic", "--no-progress", "--seed", "3"]
    threads = torch.get_num_threads()
    try:
        assert cli.main(base + ["--iterations", "2", "--no-test-eval"]) == 0
        assert cli.main(base + ["--iterations", "4", "--resume"]) == 0
        changed = [a if a != f"{data['imported']}:2" else f"{data['imported']}:3" for a in base]
        assert cli.main(changed + ["--iterations", "6", "--resume"]) == 2  # the weights are fixed for a run
    finally:
        torch.set_num_threads(threads)
    options = json.loads((run / "options.json").read_text())
    assert options["datasets"] == [f"{data['plain']}:1", f"{data['imported']}:2"]
    splits = json.loads((run / "splits.json").read_text())
    assert [d["dataset"] for d in splits["datasets"]] == ["phantoms", "ts_dataset"]
    assert [d["weight"] for d in splits["datasets"]] == [1.0, 2.0]
    assert all(c.startswith(("phantoms__", "ts_dataset__")) for c in splits["train"] + splits["test"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in rows if r["kind"] == "train")
    per_case = (run / "test" / "per_case.csv").read_text()
    assert "phantoms__" in per_case and "ts_dataset__" in per_case  # both datasets' test cases scored
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(next((run / "test" / "references").glob("ts_dataset__*")))))
    assert ref.max() <= 125  # set values resolved for scoring
    bundle = json.loads((run / "bundle" / "config.json").read_text())
    assert [d["weight"] for d in bundle["training"]["datasets"]] == [1.0, 2.0]


def test_dataset_entries_and_weights():
    from sneakynet.train_options import TrainError, TrainOptions

    mixed = TrainOptions(dataset=["a", "b:2.5"], out="o")
    assert mixed.dataset == "a" and mixed.datasets == ("a:1", "b:2.5")
    assert mixed.dataset_entries() == [("a", 1.0), ("b", 2.5)]
    assert TrainOptions.from_dict(mixed.to_dict()) == mixed  # options.json round trip (resume)
    single = TrainOptions(dataset=["C:\\data"], out="o")  # a colon without a number stays in the path
    assert single.dataset == "C:\\data" and single.datasets == () and single == TrainOptions(dataset="C:\\data", out="o")
    with pytest.raises(TrainError, match="weight after ':' must be a positive number"):
        TrainOptions(dataset=["a", "b:0"], out="o")
    with pytest.raises(TrainError, match="given twice"):
        TrainOptions(dataset=["a", "a:2"], out="o")
