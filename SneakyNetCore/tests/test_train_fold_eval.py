"""`sneakynet train` scores the fold's held-out test cases at the end (paper metrics, reports)."""
import json

from sneakynet import cli
from train_helpers import make_tiny_dataset


def test_train_cli_ends_with_test_case_evaluation(tmp_path, capsys):
    dataset = make_tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    code = cli.main(["train", "--dataset", str(dataset), "--out", str(run), "--patch", "32", "--widths", "4,4,8,8,8",
                     "--spacing", "4", "--iterations", "2", "--batch-size", "1", "--val-every", "2",
                     "--val-mode", "patches", "--val-patches", "2", "--workers", "0", "--device", "cpu",
                     "--threads", "1", "--no-progress"])
    assert code == 0
    split = json.loads((run / "splits.json").read_text())
    predictions = sorted(p.name for p in (run / "test" / "predictions").iterdir())
    assert predictions == sorted(f"{c}.nii.gz" for c in split["test"])
    summary = json.loads((run / "test" / "summary.json").read_text())
    assert "median" in summary and "nonzero_pct" in summary
    assert f"test cases of fold 0" in capsys.readouterr().out
