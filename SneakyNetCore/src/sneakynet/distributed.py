"""PyTorch distributed set-up under ``torchrun``: DDP training (NCCL on GPUs, gloo on CPUs) and
sharded batch inference (gloo: the ranks only exchange small JSON messages).

Nothing home-made: ``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` reads them, starts the process group and picks the
device of this rank. Without them it is a plain single process (world size 1).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from sneakynet.devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank among ``world_size`` processes, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True in a process that ``torchrun`` started as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_request: str = "auto", backend: str | None = None,
                     timeout_min: float = 60.0) -> DistContext:
    """Join the process group started by ``torchrun`` (if any) and choose this rank's device.

    ``backend``: None picks NCCL for a CUDA device and gloo for the CPU; ``"gloo"`` also on GPUs
    where only small CPU messages are exchanged (batch inference). ``timeout_min``: how long a rank
    waits at a collective for the others (``SNEAKYNET_DIST_TIMEOUT_MIN`` overrides it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_request, local_rank)
    if world_size > 1 and not dist.is_initialized():
        # ranks > 0 wait at a barrier while rank 0 validates and writes: allow long validations
        timeout = timedelta(minutes=float(os.environ.get("SNEAKYNET_DIST_TIMEOUT_MIN", timeout_min)))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if (backend or ("nccl" if device.type == "cuda" else "gloo")) == "nccl":
            dist.init_process_group("nccl", device_id=device, timeout=timeout)
        else:
            dist.init_process_group("gloo", timeout=timeout)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    """Leave the process group (safe to call when none was started)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def broadcast_buffers(ctx: DistContext, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each forward pass, so rank 0's are the ones in use; but
    the last forward pass updates each rank's own copy. Call after training so all ranks agree.
    """
    if ctx.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (name, dtype, shape, bytes), in state-dict order."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_digests(ctx: DistContext, model: nn.Module) -> list[str]:
    """The weights digest of every rank (rank order); one entry without distribution."""
    digest = weights_digest(model)
    if not ctx.distributed:
        return [digest]
    raw = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=ctx.device)
    out = [torch.empty_like(raw) for _ in range(ctx.world_size)]
    dist.all_gather(out, raw)
    return [bytes(t.cpu().tolist()).hex() for t in out]


def _message_device(ctx: DistContext) -> torch.device:
    """Where collectives take their tensors: the rank's GPU under NCCL, else the CPU (gloo)."""
    return ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_json(ctx: DistContext, value: object = None) -> object:
    """Rank 0's ``value`` (JSON-serialisable) on every rank; JSON, not pickle, on the wire."""
    if not ctx.distributed:
        return value
    device = _message_device(ctx)
    raw = json.dumps(value).encode() if ctx.is_main else b""
    size = torch.tensor([len(raw)], dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    buffer = (torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(device) if ctx.is_main
              else torch.empty(int(size.item()), dtype=torch.uint8, device=device))
    dist.broadcast(buffer, src=0)
    return json.loads(buffer.cpu().numpy().tobytes().decode())


def gather_json(ctx: DistContext, value: object) -> list:
    """Every rank's ``value`` (JSON-serialisable), in rank order, on every rank."""
    if not ctx.distributed:
        return [value]
    device = _message_device(ctx)
    raw = json.dumps(value).encode()
    size = torch.tensor([len(raw)], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    longest = max(int(s.item()) for s in sizes)
    buffer = torch.zeros(longest, dtype=torch.uint8, device=device)
    buffer[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    out = [torch.empty_like(buffer) for _ in range(ctx.world_size)]
    dist.all_gather(out, buffer)
    return [json.loads(t[: int(n.item())].cpu().numpy().tobytes().decode()) for t, n in zip(out, sizes)]


__all__ = ["DistContext", "barrier", "broadcast_buffers", "broadcast_json", "gather_digests", "gather_json",
           "init_distributed", "launched_by_torchrun", "shutdown_distributed", "weights_digest"]
