"""The one device resolver: spellings, availability, the rank's GPU, and --device on the commands."""
import pytest
import torch

from sneakynet.devices import normalize_device, parse_device, resolve_device


def test_spellings_are_normalised_and_unknown_ones_rejected():
    assert [normalize_device(d) for d in ("AUTO", " cpu ", "GPU", "cuda", "cuda:1", None)] == \
        ["auto", "cpu", "cuda", "cuda", "cuda:1", "auto"]
    for bad in ("tpu", "cuda:x", "mps"):
        with pytest.raises(ValueError, match="device must be auto, cpu, cuda"):
            normalize_device(bad)
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="got 'tpu'"):
        parse_device("tpu")


def test_auto_without_a_gpu_is_the_cpu_with_a_note_and_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    notes = []
    assert resolve_device("auto", log=notes.append) == torch.device("cpu") and "no CUDA GPU" in notes[0]
    assert resolve_device("cpu") == torch.device("cpu")
    for request in ("cuda", "gpu", "cuda:0"):
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            resolve_device(request)


def test_a_torchrun_rank_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("gpu") == torch.device("cuda")
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)


@pytest.mark.parametrize("command,required", [
    ("segment", ["in.nii.gz", "out.nii.gz"]), ("train", ["--dataset", "d", "--out", "o"]), ("demo", []),
    ("ablation", ["--out", "o"]),
])
def test_every_command_takes_the_same_device_choices(command, required, capsys):
    import importlib

    from sneakynet.cli import build_parser

    parser, subparsers = build_parser()
    importlib.import_module(f"sneakynet.commands.{command}").add_arguments(subparsers[command])
    assert parser.parse_args([command, *required, "--device", "GPU"]).device == "cuda"
    assert parser.parse_args([command, *required, "--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(SystemExit):
        parser.parse_args([command, *required, "--device", "tpu"])
    assert "device must be auto, cpu, cuda (or cuda:N) or gpu" in capsys.readouterr().err
