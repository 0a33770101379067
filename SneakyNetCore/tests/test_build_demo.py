"""``sneakynet build-demo`` end to end with a tiny network and a handful of iterations: both stages, the
warm start with domain randomisation, the test evaluation, the install, and the per-stage resume."""
from __future__ import annotations

import json

import pytest
import torch
from train_helpers import make_tiny_dataset

from sneakynet.bundle import load_bundle, read_bundle_info
from sneakynet.demo_model import DEMO_CT_WINDOW, DEMO_DESCRIPTION, build_demo_model
from sneakynet.intensity import CTNormalization
from sneakynet.run_folder import RunFolder


def _same_weights(a, b) -> bool:
    first, second = load_bundle(a)[0].state_dict(), load_bundle(b)[0].state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_build_demo_trains_two_stages_evaluates_and_installs(tmp_path):
    work = tmp_path / "work"
    make_tiny_dataset(work / "phantoms_v2", n_cases=5)  # stands in for the 48 phantoms (kept, as on a rerun)
    target = build_demo_model(work, iterations=3, dr_iterations=2, threads=1, install=tmp_path / "installed",
                              progress=False, widths=(4, 8, 8, 16, 16))
    stage1, stage2 = RunFolder(work / "stage1"), RunFolder(work / "stage2")
    first = json.loads(stage1.options.read_text())
    second = json.loads(stage2.options.read_text())
    assert (first["iterations"], first["domain_randomization"], first["init_weights"]) == (3, False, None)
    assert (second["iterations"], second["domain_randomization"]) == (2, True)
    assert second["init_weights"] == str(stage1.bundle)
    window = CTNormalization.window(*DEMO_CT_WINDOW)  # the shipped model's window, not the training default
    assert CTNormalization.from_dict(first["normalization"]) == CTNormalization.from_dict(second["normalization"]) == window
    info = read_bundle_info(target)
    source = read_bundle_info(stage1.bundle)
    assert info.demo and info.description == DEMO_DESCRIPTION and "not for clinical use" in info.description
    assert info.training["init_weights"] == {"bundle": "bundle", "sha256": source.sha256}
    assert _same_weights(target, stage2.bundle), "stage 2's weights are installed"
    metrics = json.loads((work / "demo_metrics.json").read_text())
    assert metrics["test_cases"] == json.loads(stage2.splits.read_text())["test"] and metrics["test_cases"]
    assert (work / "training_curve_stage1.png").is_file() and (work / "training_curve_stage2.png").is_file()

    lines = {s: s.metrics.read_text() for s in (stage1, stage2)}
    build_demo_model(work, iterations=3, dr_iterations=2, threads=1, install=tmp_path / "again", progress=False,
                     widths=(4, 8, 8, 16, 16))
    assert all(s.metrics.read_text() == text for s, text in lines.items()), "finished stages are not trained again"
    assert _same_weights(tmp_path / "again", target)


def test_build_demo_command_trains_both_stages_in_the_chosen_window(tmp_path, capsys):
    from sneakynet import cli

    work = tmp_path / "work"
    make_tiny_dataset(work / "phantoms_v2", n_cases=5)
    threads = torch.get_num_threads()
    try:
        code = cli.main(["build-demo", "--workdir", str(work), "--iterations", "2", "--dr-iterations", "1",
                         "--ct-window=-250,1250", "--install", str(tmp_path / "bone")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    bone = CTNormalization.window(-250, 1250)
    for stage in ("stage1", "stage2"):
        options = json.loads(RunFolder(work / stage).options.read_text())
        assert CTNormalization.from_dict(options["normalization"]) == bone
    assert CTNormalization.from_dict(read_bundle_info(tmp_path / "bone").intensity["parameters"]) == bone
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        cli.main(["build-demo", "--workdir", str(tmp_path / "other"), "--ct-window=500,550"])
    assert refused.value.code == 2
    assert "at least 100 HU wide" in capsys.readouterr().err and not (tmp_path / "other").exists()
