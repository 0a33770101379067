"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``<run>/checkpoints/iter_<NNNNNNN>/`` with

* ``state.safetensors``: model weights and buffers (``model/<key>``), optimizer tensors
  (``optim/<param index>/<name>``), RNG byte states (``rng/torch``, ``rng/cuda/<i>``);
* ``state.json``: iteration, optimizer hyper-parameters, numpy and Python RNG states, the
  sampler state, the AMP scaler state, best validation score, ... and the sha256 of the
  safetensors file.

The folder is written under a temporary name, read back and renamed into place
(:func:`sneakynet.io.atomic_folder`), so a kill at any moment leaves either the complete new
checkpoint or none; readers skip temporary folders. :func:`latest_checkpoint` returns the newest
complete one, :func:`load_newest_intact` the newest that also verifies (falling back to an older
one when the newest is damaged). Everything restores bit-exactly:
``torch.get_rng_state()`` is a uint8 tensor, numpy's and Python's states are lists of ints.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sneakynet import io
from sneakynet.bundle import file_sha256, json_safe, verify_safetensors

CHECKPOINT_DIR = "checkpoints"
TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^iter_(\d{7,})$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not fit the run; the message names the file."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``tensors`` by flat name and the JSON ``meta``."""

    path: Path
    iteration: int
    tensors: dict[str, torch.Tensor]
    meta: dict


# ----------------------------------------------------------------------------------------------
# packing state into (tensors, json)


def pack_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model/<key>`` -> CPU copy of every parameter and buffer."""
    return {f"model/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def unpack_model(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``model/<key>`` tensors into ``model`` (strict: keys and shapes must match)."""
    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{source}: model weights do not fit this network ({first})") from None


def pack_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state: tensors (``optim/<index>/<name>``) and JSON (param groups, scalar state)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in sd["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{index}/{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unpack_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                     source: Path) -> None:
    """Inverse of :func:`pack_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: optimizer state does not fit ({exc})") from None


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    """Global RNG states of torch (CPU and every CUDA device), numpy's legacy generator and Python."""
    tensors = {"rng/torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s.clone()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": {"name": name, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": py_version, "state": list(py_state), "gauss_next": py_gauss},
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only where the devices exist)."""
    torch.set_rng_state(tensors["rng/torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    n = meta["numpy"]
    np.random.set_state((n["name"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# ----------------------------------------------------------------------------------------------
# folders


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temporary folders are ignored)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / TENSORS_FILE).is_file() and (p / META_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete leftovers of writes interrupted by a kill (see :func:`sneakynet.io.remove_stale_temporaries`),
    and the ``.<name>.tmp-*`` / ``.<name>.old-*`` folders that versions before the shared publisher left."""
    removed = io.remove_stale_temporaries(folder)
    folder = Path(folder)
    for p in folder.iterdir() if folder.is_dir() else []:
        if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
    return removed


def save_checkpoint(run_dir: str | os.PathLike, iteration: int, tensors: dict[str, torch.Tensor], meta: dict,
                    keep: int = 2) -> Path:
    """Write checkpoint ``iteration`` atomically and keep only the newest ``keep`` checkpoints.

    The tensors file is read back (header, size) before the folder replaces anything.
    """
    from safetensors.torch import save_file

    final = Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(iteration)
    with io.atomic_folder(final) as tmp:  # re-saving an iteration (end of run == periodic step) replaces it
        save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format": "pt"})
        verify_safetensors(tmp / TENSORS_FILE, tensors)
        full = {"format": CHECKPOINT_FORMAT, "iteration": int(iteration),
                "sha256": file_sha256(tmp / TENSORS_FILE), **json_safe(meta)}
        io.write_json(full, tmp / META_FILE)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_newest_intact(run_dir: str | os.PathLike, log: Callable[[str], None] | None = print) -> Checkpoint | None:
    """The newest checkpoint of a run that loads and verifies, or None when the run has none.

    A damaged newer checkpoint (a kill mid-copy, a bad disk) is skipped for the next older one and
    ``log`` says which one is used and why; if every kept checkpoint is damaged, the newest one's
    :class:`CheckpointError` is raised.
    """
    found = list_checkpoints(run_dir)
    errors: list[CheckpointError] = []
    for path in reversed(found):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            errors.append(exc)
            continue
        if errors and log is not None:
            skipped = "; ".join(str(e) for e in errors)
            log(f"sneakynet: newest checkpoint(s) damaged ({skipped}); resuming from the older intact {path}")
        return ckpt
    if errors:
        raise CheckpointError(f"{errors[0]}; no older intact checkpoint is kept in {Path(run_dir) / CHECKPOINT_DIR}")
    return None


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint folder (hash, format); tensors are loaded on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_path, tensor_path = path / META_FILE, path / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (needs {META_FILE} and {TENSORS_FILE})")
    meta = io.read_json(meta_path, CheckpointError, "checkpoint metadata")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{meta_path}: not a SneakyNet checkpoint of format {CHECKPOINT_FORMAT}")
    if file_sha256(tensor_path) != meta.get("sha256"):
        raise CheckpointError(f"{tensor_path}: sha256 does not match {META_FILE}; the file is damaged")
    try:
        tensors = load_file(str(tensor_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{tensor_path}: not a readable safetensors file ({exc})") from None
    return Checkpoint(path=path, iteration=int(meta["iteration"]), tensors=tensors, meta=meta)


__all__ = ["CHECKPOINT_DIR", "Checkpoint", "CheckpointError", "capture_rng", "latest_checkpoint", "list_checkpoints",
           "load_checkpoint", "load_newest_intact", "pack_model", "pack_optimizer", "remove_stale_temporaries", "restore_rng",
           "save_checkpoint", "unpack_model", "unpack_optimizer"]
