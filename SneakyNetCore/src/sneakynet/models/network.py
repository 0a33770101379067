"""The multi-resolution network: one target U-Net plus K context nets joined by crop-skips.

Geometry (all sizes in voxels, S = patch size, M = 5 levels):

* target input: S^3 at full resolution, centred on c;
* context k (k = 1..K): the 2^k*S cube around c, average-pooled by 2^k, so also S^3;
* the level-m encoder output of context k has S/2^m voxels per side and covers 2^k*S target
  voxels; its centre cube of S/2^(m+k) voxels covers exactly the target patch and has the
  voxel size of target level m+k. :func:`crop_skip` cuts that cube, and it is concatenated
  into the target decoder at level m+k (level 4 is the bottleneck).

For K = 1 this is the paper's rule (half size, level m+1). For K > 1 every context net sends its
crop-skips straight to the target ("direct" wiring), cropped by 2^k. DESIGN.md suggested chaining
net k -> net k-1 -> target instead; but crop-skips carry *encoder* features, and the finer net's
encoder never sees what the coarser net sent to its decoder, so a chain would cut the coarse
context off from the target. Direct wiring keeps every context visible to the target and needs
no ordering between branches. The alignment test in tests/test_models.py checks both the
geometry and that the crops are exact (S must be a multiple of 32 when K >= 1).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from .blocks import ConvBlock, Decoder, Encoder
from .config import LEVELS, NetConfig


class NetOutput(NamedTuple):
    """Target logits (B, C, S, S, S) and, for B/D in training, one logit tensor per context net."""

    target: torch.Tensor
    context: list[torch.Tensor]


def crop_skip(features: torch.Tensor, k: int) -> torch.Tensor:
    """Centre cube of ``features`` (B, C, n, n, n) with n / 2^k voxels per side."""
    size = features.shape[-1] // 2**k
    start = (features.shape[-1] - size) // 2
    return features[..., start:start + size, start:start + size, start:start + size]


def crop_skip_links(config: NetConfig) -> list[tuple[int, int, int]]:
    """All crop-skips as (context k, source level m, target level m + k)."""
    top = LEVELS - 1
    if config.variant == "A":
        return []
    if config.variant == "B":  # HookNet: one crop-skip into the target bottleneck
        return [(1, top - 1, top)]
    return [(k, m, m + k) for k in range(1, config.num_context + 1) for m in range(0, top - k + 1)]


class MultiResolutionUNet(nn.Module):
    """A/B/C/D of the paper in one module, built from a :class:`NetConfig`."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.links = crop_skip_links(config)
        extra = {level: 0 for level in range(LEVELS)}
        for _k, m, t in self.links:
            extra[t] += w[m]
        self.target_encoder = Encoder(config.in_channels, w, extra_bottleneck_channels=extra[LEVELS - 1])
        self.target_decoder = Decoder(w, config.num_classes, extra_channels=extra)
        # deepest level each context encoder needs: full U-Nets for B/D, only the crop-skip sources for C
        self.context_encoders = nn.ModuleList()
        self.context_decoders = nn.ModuleList()
        for k in range(1, config.num_context + 1):
            depth = LEVELS if config.has_context_decoders else 1 + max(m for kk, m, _ in self.links if kk == k)
            self.context_encoders.append(Encoder(config.in_channels, w[:depth]))
            if config.has_context_decoders:
                self.context_decoders.append(Decoder(w, config.num_classes))

    def check_inputs(self, target: torch.Tensor, contexts: Sequence[torch.Tensor]) -> None:
        """Raise ``ValueError`` naming expected and given shapes for any wrong input."""
        c = self.config
        if target.ndim != 5:
            raise ValueError(f"target patch must be (B, {c.in_channels}, D, H, W), got shape {tuple(target.shape)}")
        if target.shape[1] != c.in_channels:
            raise ValueError(f"target patch must have {c.in_channels} channel(s), got shape {tuple(target.shape)}")
        spatial = tuple(target.shape[2:])
        if any(s % c.size_multiple or s == 0 for s in spatial):
            raise ValueError(
                f"target patch size must be a multiple of {c.size_multiple} per dimension, got {spatial}"
            )
        if c.num_context and len(set(spatial)) != 1:
            raise ValueError(f"context networks need a cubic target patch, got {spatial}")
        if len(contexts) != c.num_context:
            raise ValueError(f"{c.describe()} expects {c.num_context} context patch(es), got {len(contexts)}")
        for k, ctx in enumerate(contexts, start=1):
            expected = (target.shape[0], c.in_channels, *spatial)
            if tuple(ctx.shape) != expected:
                raise ValueError(f"context patch {k} must have shape {expected}, got {tuple(ctx.shape)}")

    def forward(self, target: torch.Tensor, contexts: Sequence[torch.Tensor] = (),
                with_context_logits: bool | None = None) -> NetOutput:
        """Segment a batch of target patches with their context patches.

        ``with_context_logits`` defaults to ``self.training``: inference skips the context decoders.
        """
        self.check_inputs(target, contexts)
        if with_context_logits is None:
            with_context_logits = self.training
        features, context_feats = self._target_features(target, contexts)
        context_logits = []
        if with_context_logits and self.config.has_context_decoders:
            context_logits = [dec(f) for dec, f in zip(self.context_decoders, context_feats)]
        return NetOutput(self.head(features), context_logits)

    @property
    def head(self) -> nn.Conv3d:
        """The target's 1x1 classification layer (features -> logits)."""
        return self.target_decoder.head

    def forward_features(self, target: torch.Tensor, contexts: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """Target decoder features before :attr:`head`, (B, widths[0], S, S, S).

        The head is linear, so a weighted sum of tile logits equals the head applied to the weighted
        sum of tile features (plus the bias times the summed weights): the predictor accumulates
        these few channels instead of one logit per class, and runs the head once per voxel.
        """
        self.check_inputs(target, contexts)
        return self._target_features(target, contexts)[0]

    def _target_features(self, target: torch.Tensor, contexts: Sequence[torch.Tensor]
                         ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        context_feats = [enc(ctx) for enc, ctx in zip(self.context_encoders, contexts)]
        crops: dict[int, list[torch.Tensor]] = {}
        for k, m, t in self.links:
            crops.setdefault(t, []).append(crop_skip(context_feats[k - 1][m], k))
        feats = self.target_encoder(target, bottleneck_extra=crops.get(LEVELS - 1))
        return self.target_decoder.features(feats, crops), context_feats


def build_network(config: NetConfig) -> MultiResolutionUNet:
    """The one constructor: a network from its config."""
    return MultiResolutionUNet(config)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ConvBlock", "MultiResolutionUNet", "NetOutput", "build_network", "count_parameters", "crop_skip",
           "crop_skip_links"]
