"""CT intensity normalisation shared by training (the patch sampler) and inference (the predictor).

One function, one set of parameters: a model bundle stores :meth:`CTNormalization.to_dict` so the
predictor normalises exactly as the sampler did during training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CTNormalization:
    """Clip Hounsfield units to ``[clip_min, clip_max]``, then map ``(hu - center) / scale``.

    The defaults clip to [-1000, 2000] HU (air .. dense cortical bone; metal is clipped) and map
    that range linearly onto [-1, 1]: -1000 HU -> -1, 500 HU -> 0, 2000 HU -> +1.
    """

    clip_min: float = -1000.0
    clip_max: float = 2000.0
    center: float = 500.0
    scale: float = 1500.0

    def __post_init__(self) -> None:
        if not self.clip_min < self.clip_max:
            raise ValueError(f"CT normalisation: clip_min {self.clip_min} must be below clip_max {self.clip_max}")
        if not self.scale > 0:
            raise ValueError(f"CT normalisation: scale must be positive, got {self.scale}")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready parameters (stored in model bundles)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "CTNormalization":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a bundle from a newer version)."""
        unknown = set(data) - {"clip_min", "clip_max", "center", "scale"}
        if unknown:
            raise ValueError(f"CT normalisation: unknown parameters {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in data.items()})


DEFAULT_CT_NORMALIZATION = CTNormalization()


def normalize_ct(hu: np.ndarray, params: CTNormalization = DEFAULT_CT_NORMALIZATION,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Clip and scale a CT array in Hounsfield units into ``out`` (a float32 array of the same shape;
    a new one by default). The caller's ``hu`` is never modified."""
    if out is None:
        out = np.array(hu, dtype=np.float32, copy=True)
    else:
        if out.shape != hu.shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {hu.shape}, got {out.dtype} {out.shape}")
        out[...] = hu
    np.clip(out, params.clip_min, params.clip_max, out=out)
    out -= np.float32(params.center)
    out *= np.float32(1.0 / params.scale)
    return out
