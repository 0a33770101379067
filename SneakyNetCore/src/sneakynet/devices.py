"""The one device resolver: which torch device ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``gpu`` means.

Every command's ``--device`` takes the same choices (:data:`DEVICE_CHOICES`, and ``cuda:N`` for one
GPU of several); the predictor, the trainer (one GPU per ``torchrun`` rank) and the Slicer module
resolve them here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch only where a device is resolved: the names alone need no torch
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "gpu")
DEVICE_HELP = "auto (CUDA when a GPU is present, else the CPU), cpu, cuda (or cuda:N) or gpu (= cuda)"


def normalize_device(request: str) -> str:
    """``request`` in canonical spelling (``gpu`` -> ``cuda``, any case); ValueError if unknown.
    Says nothing about whether a GPU is present."""
    name = str(request or "auto").strip().lower()
    if name == "gpu":
        name = "cuda"
    index = name.removeprefix("cuda:")
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and index.isdigit()):
        return name
    raise ValueError(f"device must be auto, cpu, cuda (or cuda:N) or gpu, got {request!r}")


def parse_device(text: str) -> str:
    """``argparse`` type of ``--device``: the canonical spelling, or a usage error."""
    import argparse

    try:
        return normalize_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resolve_device(request: str, local_rank: int | None = None,
                   log: Callable[[str], None] | None = None) -> "torch.device":
    """The torch device of ``request``: ``auto`` is CUDA when PyTorch sees a GPU, else the CPU (with a
    note through ``log``); ``cuda`` without a GPU is a ValueError. Under ``torchrun`` pass the
    ``local_rank``: plain ``cuda`` then means that rank's GPU."""
    import torch

    name = normalize_device(request)
    if name == "auto":
        if not torch.cuda.is_available():
            if log is not None:
                log("sneakynet: no CUDA GPU found, running on the CPU (slower)")
            return torch.device("cpu")
        name = "cuda"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but no CUDA GPU is available (use --device auto or cpu)")
    if name == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


__all__ = ["DEVICE_CHOICES", "DEVICE_HELP", "normalize_device", "parse_device", "resolve_device"]
