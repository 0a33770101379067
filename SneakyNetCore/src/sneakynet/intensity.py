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

    @classmethod
    def window(cls, low: float, high: float) -> "CTNormalization":
        """Clip to the window ``[low, high]`` HU and map it linearly onto [-1, 1]; ``CTNormalization()``
        is the window -1000..2000 HU (training defaults to a bone window: ``sneakynet.train_options``)."""
        return cls(clip_min=low, clip_max=high, center=(low + high) / 2, scale=(high - low) / 2)

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


# ----------------------------------------------------------------------------------------------
# is it CT in Hounsfield units?

LABEL_MAP_MAX_VALUES = 256  # an integer volume with max below this and few distinct values is a label map
MIN_NEGATIVE_SHARE = 0.005  # CT in HU: 42-88 % of voxels below 0 on every sample and phantom, even in crops
MAX_OFFSET_TISSUE_SHARE = 0.15  # voxels in 850..1250: <= 0.4 % in HU CT, 30-60 % after a +1024 offset
_SAMPLE_VOXELS = 1 << 21


class NotCTError(ValueError):
    """The image does not look like CT in Hounsfield units; the message says what looks wrong."""


def hounsfield_problem(values: np.ndarray) -> str | None:
    """What makes ``values`` unlike CT in Hounsfield units, or None when they look like CT.

    Decided from the data, not the file name: 8-bit storage; a label map (few non-negative
    integers); almost no voxel below 0 (CT in HU has air near -1000, fat near -100, and noise
    around water and muscle puts voxels below 0 even in a crop inside the body), which is what MR
    and stored values without their +1024 rescale look like; or a large share of voxels at
    850..1250, where soft tissue lies after a +1024 offset (dense bone only, in HU CT).
    """
    arr = np.asarray(values)
    if arr.dtype.itemsize == 1 and arr.dtype.kind in "iu":
        return (f"it is stored as {arr.dtype} (8-bit); CT in Hounsfield units needs at least 16 bits "
                "(-1024..3071), so this is a mask, a screenshot or a rescaled image")
    sample = arr.reshape(-1)[:: max(1, arr.size // _SAMPLE_VOXELS)].astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi < LABEL_MAP_MAX_VALUES and np.array_equal(sample, np.round(sample)):
        distinct = np.unique(sample).size
        if distinct <= LABEL_MAP_MAX_VALUES // 2:
            return f"it holds {distinct} distinct integer values in {lo:g}..{hi:g}; that is a label map or mask"
    negative = float(np.mean(sample < 0))
    offset_tissue = float(np.mean((sample >= 850) & (sample <= 1250)))
    where = f"range {lo:g}..{hi:g}, {100 * negative:.1f} % of voxels below 0"
    if offset_tissue >= MAX_OFFSET_TISSUE_SHARE:
        return (f"{100 * offset_tissue:.0f} % of voxels lie at 850..1250 ({where}); these look like stored values "
                "without their rescale (+1024 offset): soft tissue should be near 0..60 HU, air near -1000 HU")
    if negative < MIN_NEGATIVE_SHARE:
        return (f"almost no voxel is below 0 ({where}); CT in Hounsfield units has air near -1000 and fat near "
                "-100 HU; this looks like MR, another modality or values without their rescale")
    return None


def check_hounsfield(values: np.ndarray, source: str, force: bool = False) -> str | None:
    """Raise :class:`NotCTError` naming ``source`` when ``values`` do not look like CT in HU.

    With ``force`` nothing is raised; the problem (or None) is returned so the caller can warn.
    """
    problem = hounsfield_problem(values)
    if problem and not force:
        raise NotCTError(f"{source}: does not look like CT in Hounsfield units: {problem}. "
                         "Segmenting it would give meaningless labels; force the run if you are sure")
    return problem
