"""The predictor's slab accumulator: Gaussian-weighted tile features summed in a buffer S voxels
deep, turned into argmax labels as soon as a slab is final (see :mod:`sneakynet.infer`).

The buffer is a queue of blocks ``g`` voxels deep (``g = gcd(S, step)``), each holding the weighted
feature sum (g, y, x, F) and the weight sum (g, y, x). A tile row adds into ``S/g`` blocks; blocks
above the next row's origin are final: the linear head runs on them once per voxel and they are
dropped. The Gaussian weights are not divided out: the argmax of a weighted sum is the argmax of
the weighted mean.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from .pyramid import Origin


class SlabAccumulator:
    """Accumulates the tiles of one y-part ``y0 .. y1`` of the volume into ``labels`` (uint8, z y x).

    ``head_matrix``: (features + 1, classes), the head's weight with the bias as the last row (the
    bias is multiplied by the summed tile weights). ``width``: the padded x length.
    """

    def __init__(self, labels: np.ndarray, part: tuple[int, int], width: int, weights: torch.Tensor,
                 head_matrix: torch.Tensor, step: int) -> None:
        self.labels, (self.y0, self.y1), self.width = labels, part, width
        self.weights, self.head_matrix = weights, head_matrix
        self.patch_size = weights.shape[0]
        self.g = math.gcd(self.patch_size, step)
        self.features = head_matrix.shape[0] - 1
        self.blocks: deque[tuple[torch.Tensor, torch.Tensor]] = deque()
        self.base = 0  # global z of blocks[0]

    def reach(self, z: int) -> None:
        """Make sure blocks exist down to ``z + S`` (before a tile row at ``z`` is added)."""
        g, dtype, device = self.g, self.weights.dtype, self.weights.device
        rows = self.y1 - self.y0
        while self.base + g * len(self.blocks) < z + self.patch_size:
            self.blocks.append((torch.zeros((g, rows, self.width, self.features), dtype=dtype, device=device),
                                torch.zeros((g, rows, self.width), dtype=dtype, device=device)))

    def add(self, features: torch.Tensor, origins: list[Origin]) -> None:
        """Add a batch of tile features (B, F, S, S, S) at ``origins``, weighted by the Gaussian."""
        S, g, y0, y1 = self.patch_size, self.g, self.y0, self.y1
        for feat, (oz, oy, ox) in zip(features.to(self.weights.dtype).permute(0, 2, 3, 4, 1), origins):
            lo, hi = max(oy, y0), min(oy + S, y1)
            first = (oz - self.base) // g
            for j in range(S // g):
                dz = slice(j * g, (j + 1) * g)
                w = self.weights[dz, lo - oy:hi - oy]
                acc, wsum = self.blocks[first + j]
                acc[:, lo - y0:hi - y0, ox:ox + S].addcmul_(feat[dz, lo - oy:hi - oy], w[..., None])
                wsum[:, lo - y0:hi - y0, ox:ox + S].add_(w)

    def finish(self, end: int) -> None:
        """Classify and drop every block that ends at or above ``end`` (no later tile reaches it)."""
        depth, width = self.labels.shape[0], self.labels.shape[2]
        while self.blocks and self.base + self.g <= end:
            acc, wsum = self.blocks.popleft()
            rows_left = min(self.g, depth - self.base)
            if rows_left > 0:
                self.labels[self.base:self.base + rows_left, self.y0:self.y1] = self._classify(
                    acc[:rows_left, :, :width], wsum[:rows_left, :, :width])
            self.base += self.g

    def _classify(self, acc: torch.Tensor, wsum: torch.Tensor) -> np.ndarray:
        """Argmax labels of finished voxels: the head applied to the summed features, one z-slice
        chunk at a time so the transient (voxels x classes) logits stay near 128 MiB."""
        classes = self.head_matrix.shape[1]
        per_slice = acc.shape[1] * acc.shape[2] * classes * 4
        step = max(1, (128 << 20) // per_slice)
        out = []
        for z in range(0, acc.shape[0], step):
            features = torch.cat([acc[z:z + step], wsum[z:z + step, ..., None]], dim=-1).float()
            logits = features @ self.head_matrix  # uncovered voxels: all zeros -> background (0)
            out.append(logits.argmax(dim=-1).to(torch.uint8).cpu().numpy())
        return np.concatenate(out)


__all__ = ["SlabAccumulator"]
