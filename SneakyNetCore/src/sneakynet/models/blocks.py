"""Small building blocks of the lean 3D U-Net (paper §2.1, ref. [20]).

Every block is ``Conv3d(3x3x3, same padding) -> BatchNorm3d -> LeakyReLU``, twice per level.
BatchNorm (not instance norm) so that in eval mode a block is a fixed per-voxel affine map:
tiled inference then equals a whole-volume forward pass away from tile borders.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions with BatchNorm and LeakyReLU; spatial size is kept."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.LeakyReLU(0.01, inplace=True),
        )


class Encoder(nn.Module):
    """U-Net encoder: level 0 at full size, each further level max-pooled by 2.

    ``extra_bottleneck_channels`` widens the input of the last level for crop-skips that
    enter at the bottleneck (HookNet, and level 4 of MRN/SneakyNet).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], extra_bottleneck_channels: int = 0) -> None:
        super().__init__()
        blocks = []
        for level, width in enumerate(widths):
            cin = in_channels if level == 0 else widths[level - 1]
            if level == len(widths) - 1 and level > 0:
                cin += extra_bottleneck_channels
            blocks.append(ConvBlock(cin, width))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor, bottleneck_extra: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Features of every level, finest first; ``bottleneck_extra`` is concatenated before the last block."""
        feats = []
        for level, block in enumerate(self.blocks):
            if level > 0:
                x = self.pool(x)
                if level == len(self.blocks) - 1 and bottleneck_extra:
                    x = torch.cat([x, *bottleneck_extra], dim=1)
            x = block(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """U-Net decoder: upsample (transposed conv), concatenate skips (+ crop-skips), ConvBlock.

    ``extra_channels[level]`` are the crop-skip channels entering decoder level ``level``
    (levels 0..3; level 4 is the bottleneck, handled by :class:`Encoder`).
    """

    def __init__(self, widths: tuple[int, ...], num_classes: int, extra_channels: dict[int, int] | None = None) -> None:
        super().__init__()
        extra_channels = extra_channels or {}
        top = len(widths) - 1
        self.up = nn.ModuleList(nn.ConvTranspose3d(widths[l + 1], widths[l], 2, stride=2) for l in range(top))
        self.blocks = nn.ModuleList(
            ConvBlock(2 * widths[l] + extra_channels.get(l, 0), widths[l]) for l in range(top)
        )
        self.head = nn.Conv3d(widths[0], num_classes, 1)
        # prior initialisation (as in RetinaNet): start at p(background) = 0.9, so the first
        # iterations learn bones instead of spending hundreds of steps learning "mostly background"
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[0] = math.log(0.9 * (num_classes - 1) / 0.1)

    def features(self, feats: list[torch.Tensor], extra: dict[int, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """Level-0 decoder features (B, widths[0], ...), the input of the 1x1 head."""
        extra = extra or {}
        x = feats[-1]
        for level in reversed(range(len(self.blocks))):
            x = self.up[level](x)
            x = self.blocks[level](torch.cat([x, feats[level], *extra.get(level, [])], dim=1))
        return x

    def forward(self, feats: list[torch.Tensor], extra: dict[int, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """Logits at full patch size from encoder features ``feats`` (finest first)."""
        return self.head(self.features(feats, extra))
