"""Batches of training patches through a torch DataLoader, with exact resume.

:class:`PatchLoader` counts consumed batches; its ``state_dict()`` resumes the stream exactly
(sample ``j`` of rank ``r`` is a pure function of ``(seed, r, j)``, see :mod:`sneakynet.sampler`),
whatever the number of worker processes.
"""
from __future__ import annotations

import copy
import itertools
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from sneakynet.sampler import PatchDataset


class _CountFrom(torch.utils.data.Sampler):
    """Infinite sequential sampler ``start, start + 1, ...``."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _collate_packed(samples: list[dict]) -> dict:
    """Stack samples into few tensors (workers send each tensor separately: fewer is faster).

    image (L, B, 1, S, S, S) float32, labels (L, B, S, S, S), meta (B, 5) int64 = origin, mirrored,
    index; L = K + 1 levels. NumPy stacking: no torch intra-op threads involved.
    """
    levels = len(samples[0]["image"])
    image = np.stack([np.stack([s["image"][k].numpy() for s in samples]) for k in range(levels)])
    labels = np.stack([np.stack([s["labels"][k].numpy() for s in samples]) for k in range(levels)])
    meta = np.array([[*s["origin"].tolist(), int(s["mirrored"]), s["index"]] for s in samples], dtype=np.int64)
    packed = {"image": torch.from_numpy(image), "labels": torch.from_numpy(labels), "meta": torch.from_numpy(meta),
              "case": [s["case"] for s in samples]}
    if "sets" in samples[0]:  # label sets of partially labelled cases: (B, 256, 126) bool
        packed["sets"] = torch.from_numpy(np.stack([s["sets"].numpy() for s in samples]))
    return packed


def _unpack(packed: dict) -> dict:
    """The batch layout of :func:`collate_patches` from :func:`_collate_packed` (views, labels int64)."""
    meta = packed["meta"]
    labels = packed["labels"]
    if labels.dtype != torch.int64:  # NumPy, not .long(): small torch ops stall when threads compete
        labels = torch.from_numpy(labels.numpy().astype(np.int64))
    batch = {
        "image": list(packed["image"].unbind(0)),
        "labels": list(labels.unbind(0)),
        "case": packed["case"],
        "origin": meta[:, :3],
        "mirrored": meta[:, 3].bool(),
        "index": meta[:, 4],
    }
    if "sets" in packed:
        batch["sets"] = packed["sets"]
    return batch


def collate_patches(samples: list[dict]) -> dict:
    """Batch samples of :class:`PatchDataset`: ``dict(image=[(B, 1, S, S, S) float32 per level],
    labels=[(B, S, S, S) int64 per level], case=list[str], origin=(B, 3), mirrored=(B,), index=(B,))``, plus
    ``sets`` (B, 256, 126) bool when the samples carry label sets."""
    return _unpack(_collate_packed(samples))


def _seed_worker(worker_id: int) -> None:
    """Give every worker distinct global RNG seeds (samples themselves use their own generators)."""
    info = torch.utils.data.get_worker_info()
    base = info.seed if info is not None else worker_id
    np.random.seed(base % 2**32)


class PatchLoader:
    """Batches of a :class:`PatchDataset` through a torch DataLoader, with exact resume.

    Batch ``b`` holds samples ``b*B .. b*B + B - 1`` (after ``load_state_dict``, counting on from
    where it stopped), whatever ``num_workers``. Each batch is ``dict(image=[(B, 1, S, S, S) float32,
    ...], labels=[(B, S, S, S) int64, ...], case=list[str], origin=(B, 3), mirrored=(B,), index=(B,))``.
    Iterating is endless; stop after the iterations you need.
    """

    def __init__(self, dataset: PatchDataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False,
                 prefetch_factor: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor
        self.next_sample = 0

    def __iter__(self) -> Iterator[dict]:
        kwargs = {}
        if self.num_workers > 0:
            kwargs = {"worker_init_fn": _seed_worker, "prefetch_factor": self.prefetch_factor or 2}
        # Workers send uint8 labels (8x less inter-process traffic); they become int64 here.
        dataset = copy.copy(self.dataset)
        dataset.compact_labels = True
        loader = DataLoader(
            dataset, batch_size=self.batch_size, sampler=_CountFrom(self.next_sample),
            num_workers=self.num_workers, pin_memory=self.pin_memory, drop_last=False,
            collate_fn=_collate_packed, **kwargs,
        )
        for packed in loader:
            self.next_sample += self.batch_size
            yield _unpack(packed)

    def state_dict(self) -> dict:
        """Sampling state for checkpoints: resume with :meth:`load_state_dict`."""
        return {"seed": self.dataset.options.seed, "rank": self.dataset.rank, "batch_size": self.batch_size,
                "next_sample": self.next_sample}

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream after the last batch consumed when ``state`` was taken."""
        for key in ("seed", "rank", "batch_size"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise ValueError(f"sampler state was saved with {key}={state.get(key)!r}, this loader has {mine!r}")
        self.next_sample = int(state["next_sample"])


__all__ = ["PatchLoader", "collate_patches"]
