"""Architecture configuration of the four network families of the paper (Table 1, Fig. 3).

A  3D U-Net       target net only (K = 0)
B  HookNet        1 context U-Net; one crop-skip into the target bottleneck; context decoder + loss
C  MRN            K context encoders; crop-skips into every target decoder level; no context decoder/loss
D  SneakyNet      K context U-Nets; crop-skips into every target decoder level; context decoders + losses

The config is a small frozen dataclass that round-trips through JSON, so model bundles can
store exactly what was built.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

VARIANTS = ("A", "B", "C", "D")
LEVELS = 5  # M in the paper: inputs must be multiples of 2**(M-1) = 16
# Bounds checked before anything is built, so a crafted config.json cannot ask for a multi-GB
# network. They admit the paper's presets (widest level 832 channels, patches up to 128) with room.
MAX_WIDTH = 2048
MAX_PATCH_SIZE = 256
MAX_CLASSES = 256
MAX_IN_CHANNELS = 8


@dataclass(frozen=True)
class NetConfig:
    """What to build. ``widths`` are the channel counts of U-Net levels 0..4 (all branches)."""

    variant: str = "D"
    num_context: int = 1  # K
    patch_size: int = 64  # S, voxels per side of the target patch (and of every context input)
    widths: tuple[int, ...] = (8, 16, 32, 64, 128)
    in_channels: int = 1
    num_classes: int = 126
    preset: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if len(self.widths) != LEVELS or min(self.widths) < 1 or max(self.widths) > MAX_WIDTH:
            raise ValueError(f"widths must be {LEVELS} channel counts in 1..{MAX_WIDTH}, got {self.widths}")
        for name, value, lo, hi in (("num_classes", self.num_classes, 2, MAX_CLASSES),
                                    ("in_channels", self.in_channels, 1, MAX_IN_CHANNELS),
                                    ("patch size", self.patch_size, 1, MAX_PATCH_SIZE)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
        if not isinstance(self.num_context, int) or isinstance(self.num_context, bool):
            raise ValueError(f"num_context must be an integer, got {self.num_context!r}")
        allowed = {"A": (0,), "B": (1,), "C": (1, 2, 3), "D": (1, 2, 3)}[self.variant]
        if self.num_context not in allowed:
            raise ValueError(f"variant {self.variant} needs K in {allowed}, got K={self.num_context}")
        if self.patch_size % self.size_multiple or self.patch_size <= 0:
            raise ValueError(
                f"patch size must be a positive multiple of {self.size_multiple} for variant "
                f"{self.variant}, got {self.patch_size}"
            )

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of 16 (five levels); crop-skips from level 3 need 32."""
        return 16 if self.num_context == 0 else 32

    @property
    def has_context_decoders(self) -> bool:
        """B and D supervise their context nets (context loss); C and A do not."""
        return self.variant in ("B", "D")

    @property
    def context_fov(self) -> list[int]:
        """Field of view (target voxels per side) of each context net k = 1..K: 2**k * S."""
        return [2**k * self.patch_size for k in range(1, self.num_context + 1)]

    def describe(self) -> str:
        """Short human name, e.g. ``D 64/128-256``."""
        fov = "-".join(str(f) for f in self.context_fov)
        return f"{self.variant} {self.patch_size}" + (f"/{fov}" if fov else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (no silent defaults)."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        return cls(**d)


# Channel widths per preset, chosen so the trainable-parameter counts land within 15 % of the
# paper's Table 1 (checked by tests/test_models.py on the meta device).
def _doubling(base: int) -> tuple[int, ...]:
    return tuple(base * 2**level for level in range(LEVELS))


_PAPER_WIDTHS = {
    ("A", 0): _doubling(52),
    ("B", 1): _doubling(28),
    ("C", 1): _doubling(40),
    ("D", 1): _doubling(32),
    ("D", 2): _doubling(28),
    ("D", 3): _doubling(26),
}
_SLIM_WIDTHS = _doubling(26)  # "3D U-Net slim" for 128^3 patches
# lite: about 2.8 M parameters for A, B, C and D (K=1), so the ablation compares at matched size;
# C has no context decoder, so its branches are wider
_LITE_WIDTHS = {0: (12, 24, 48, 96, 160), 1: (8, 16, 32, 64, 112), 2: (8, 16, 32, 48, 96), 3: (8, 16, 24, 48, 80)}
_LITE_C_WIDTHS = (10, 20, 40, 80, 144)

PAPER_PARAMS = {  # Table 1, trainable parameters
    ("A", 0): 5.8e7, ("B", 1): 3.7e7, ("C", 1): 4.7e7,
    ("D", 1): 4.9e7, ("D", 2): 5.8e7, ("D", 3): 6.2e7, ("slim", 0): 1.5e7,
}


def preset(name: str, variant: str = "D", num_context: int = 1, patch_size: int = 64,
           num_classes: int = 126) -> NetConfig:
    """Named configurations: ``paper`` (Table 1 sizes), ``slim`` (A on 128^3), ``lite`` (2-CPU-core sized)."""
    if name == "paper":
        key = (variant, num_context)
        if key not in _PAPER_WIDTHS:
            raise ValueError(f"the paper has no {variant} with K={num_context}; choose from {sorted(_PAPER_WIDTHS)}")
        widths = _PAPER_WIDTHS[key]
    elif name == "slim":
        if variant != "A":
            raise ValueError("the slim preset is the paper's 128^3 U-Net: variant A only")
        widths = _SLIM_WIDTHS
    elif name == "lite":
        widths = _LITE_C_WIDTHS if variant == "C" else _LITE_WIDTHS[num_context]
    else:
        raise ValueError(f"unknown preset {name!r}; choose paper, slim or lite")
    return NetConfig(variant=variant, num_context=num_context, patch_size=patch_size, widths=widths,
                     num_classes=num_classes, preset=name)


def with_patch_size(config: NetConfig, patch_size: int) -> NetConfig:
    """Same network, other patch size (the weights do not depend on it)."""
    return replace(config, patch_size=patch_size)
