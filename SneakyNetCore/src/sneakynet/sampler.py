"""Multi-resolution patch sampling for SneakyNet training (paper §2.1, DESIGN.md §2).

Every sample is one target patch of ``S^3`` voxels plus ``K`` context patches cut from the
context pyramid that the predictor uses too (:mod:`sneakynet.pyramid`); the cases come from
:mod:`sneakynet.training_cases` and batches from :mod:`sneakynet.patch_loader`.

Patch centres are drawn uniformly (uniform aligned origin) or, with probability
``class_balance``, class-balanced: pick one of the bones present in the case uniformly, then one
of its voxels (per-class voxel index lists are built once per case), so rare bones (carpals,
sesamoids) are seen. Augmentation keeps anatomy honest: left-right mirroring flips the array axis
that runs along the patient's left-right direction (from the image direction cosines) and swaps
left/right labels with :meth:`LabelTable.mirror_lut` (set values of partially labelled cases go to
the value of the mirrored set, :meth:`sneakynet.label_sets.LabelSets.tables`); intensity scale/shift/noise; optional small
rotations about the superior-inferior axis; optional domain randomisation (soft-tissue intensity
curve, blur, resolution, field-of-view cuts: :mod:`sneakynet.domain_randomization`).

Determinism: sample ``j`` of rank ``r`` is a pure function of ``(seed, r, j)`` (its own NumPy
generator), independent of the number of DataLoader workers, and DDP ranks draw different patches.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from sneakynet import domain_randomization
from sneakynet.intensity import DEFAULT_CT_NORMALIZATION, CTNormalization
from sneakynet.label_sets import LabelSets
from sneakynet.labels import NUM_CLASSES
from sneakynet.pyramid import ContextPyramid, LabelPyramid, Origin
from sneakynet.training_cases import TrainingCase

__all__ = ["AugmentOptions", "SamplerOptions", "PatchDataset"]



@dataclass
class AugmentOptions:
    """Augmentation parameters (intensities in normalised units: 1.0 = 1500 HU by default)."""

    p_mirror: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)
    shift_range: tuple[float, float] = (-0.05, 0.05)
    noise_std_max: float = 0.03  # target level; context k gets std / 2^(1.5 k), as pooling would
    p_rotate: float = 0.0  # small rotations about the S-I axis (off by default: they cost time)
    max_rotation_deg: float = 10.0
    # domain randomisation (sneakynet.domain_randomization), off unless with_domain_randomization()
    p_intensity_remap: float = 0.0  # smooth monotone soft-tissue curve (-200..250 HU moved, air/bone fixed)
    remap_shift_hu: float = 30.0  # each soft-tissue knot moves by up to this
    remap_contrast_range: tuple[float, float] = (0.85, 1.2)  # soft-tissue contrast about 25 HU
    p_blur: float = 0.0  # Gaussian blur: slice profile along the S-I axis, a little in-plane
    slice_thickness_mm: tuple[float, float] = (1.0, 5.0)  # FWHM along the S-I axis
    inplane_blur_mm: tuple[float, float] = (0.0, 1.5)  # FWHM in-plane, per axis
    p_resample: float = 0.0  # acquire coarser (average down, interpolate back)
    resample_si_mm_max: float = 6.0  # coarsest resolution along the S-I axis (thick slices), mm
    resample_inplane_mm_max: float = 2.5  # coarsest in-plane resolution (soft kernels), mm
    p_plane_cut: float = 0.0  # the scan's top or bottom end in the patch
    p_fov_circle: float = 0.0  # the reconstruction circle (a cylinder along the S-I axis)
    fov_radius_mm: tuple[float, float] = (120.0, 250.0)

    @classmethod
    def none(cls) -> "AugmentOptions":
        """No augmentation at all (validation, tests)."""
        return cls(p_mirror=0.0, scale_range=(1.0, 1.0), shift_range=(0.0, 0.0), noise_std_max=0.0, p_rotate=0.0)

    def with_domain_randomization(self) -> "AugmentOptions":
        """These options plus domain randomisation (``sneakynet train --domain-randomization``): each
        operation on half of the samples, noise up to 0.05 (75 HU at the default normalisation)."""
        return replace(self, noise_std_max=max(self.noise_std_max, 0.05), p_intensity_remap=0.5, p_blur=0.5,
                       p_resample=0.5, p_plane_cut=0.25, p_fov_circle=0.25)

    @property
    def domain_randomized(self) -> bool:
        """Whether any domain-randomisation operation can happen."""
        return max(self.p_intensity_remap, self.p_blur, self.p_resample, self.p_plane_cut, self.p_fov_circle) > 0


@dataclass
class SamplerOptions:
    """What the sampler draws; stored in training configs (JSON via :meth:`to_dict`)."""

    patch_size: int = 64
    num_context: int = 1
    class_balance: float = 0.5  # probability of a class-balanced centre, else a uniform origin
    seed: int = 0
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    def __post_init__(self) -> None:
        if self.patch_size % 16:
            raise ValueError(f"patch size must be a multiple of 16 (5-level U-Net), got {self.patch_size}")
        if not 0 <= self.num_context <= 4:
            raise ValueError(f"num_context must be 0..4, got {self.num_context}")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"class_balance must be in [0, 1], got {self.class_balance}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SamplerOptions":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        data = dict(data)
        aug = data.pop("augment", {})
        try:
            augment = AugmentOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()})
            return cls(augment=augment, **data)
        except TypeError as exc:
            raise ValueError(f"sampler options: {exc}") from None


# ----------------------------------------------------------------------------------------------
# the dataset


class _PreparedCase:
    """A case ready for sampling: image/label pyramids and per-class voxel index lists."""

    def __init__(self, case: TrainingCase, s: int, k: int) -> None:
        self.case_id, self.lr_axis, self.si_axis, self.spacing = case.case_id, case.lr_axis, case.si_axis, case.spacing
        self.image = ContextPyramid(case.image, s, k)
        self.labels = LabelPyramid(case.labels, s, k)
        flat = case.labels.reshape(-1)
        counts = np.bincount(flat, minlength=NUM_CLASSES)
        order = np.argsort(flat, kind="stable")  # radix sort for uint8: O(n)
        index_type = np.int32 if flat.size < 2**31 else np.int64
        fg = order[counts[0]:].astype(index_type)
        del order
        self.classes = np.flatnonzero(counts[1:]) + 1  # bones present
        ends = np.cumsum(counts[1:])
        starts = ends - counts[1:]
        self.class_voxels = {int(c): fg[starts[c - 1] : ends[c - 1]] for c in self.classes}
        self.shape = case.labels.shape
        # label sets: membership rows for the loss and the left/right lookup of label values
        sets = case.sets if case.sets is not None else LabelSets()
        self.membership, self.mirror_lut = sets.tables()
        self.has_sets = case.sets is not None

    @property
    def nbytes(self) -> int:
        return (sum(a.nbytes for a in self.image.levels) + sum(a.nbytes for a in self.labels.levels)
                + sum(v.nbytes for v in self.class_voxels.values()))


class PatchDataset(TorchDataset):
    """Map-style torch Dataset: item ``j`` is sample ``j`` of this rank's infinite patch stream.

    ``dataset[j]`` is ``dict(image=[target, ctx_1..ctx_K] float32 tensors (1, S, S, S),
    labels=[...] int64 tensors (S, S, S), case=str, origin=int64 (3,), mirrored=bool, index=int)``,
    a pure function of ``(options.seed, rank, j)``. ``len()`` is ``samples_per_epoch`` (any ``j >= 0``
    is valid). Pyramids and class index lists are built once here, in the main process, so forked
    DataLoader workers share them.
    """

    def __init__(
        self,
        cases: Sequence[TrainingCase],
        options: SamplerOptions,
        rank: int = 0,
        world_size: int = 1,
        samples_per_epoch: int = 1000,
        case_weights: Sequence[float] | None = None,
        normalization: CTNormalization = DEFAULT_CT_NORMALIZATION,
    ) -> None:
        if not cases:
            raise ValueError("PatchDataset needs at least one case")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in 0..{world_size - 1}")
        self.options, self.rank, self.world_size = options, rank, world_size
        self.normalization = normalization  # the cases' CT normalisation: domain randomisation works in HU
        self.samples_per_epoch = samples_per_epoch
        self.compact_labels = False  # True: labels stay uint8 (PatchLoader widens them after transfer)
        s, k = options.patch_size, options.num_context
        self.cases = [_PreparedCase(c, s, k) for c in cases]
        self.with_sets = any(c.has_sets for c in self.cases)  # samples carry "sets" for the marginal loss
        self.case_p = None  # None: cases drawn uniformly
        if case_weights is not None:
            w = np.asarray(case_weights, dtype=np.float64)
            if w.shape != (len(cases),) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
                raise ValueError(f"case_weights must be {len(cases)} non-negative numbers with a positive sum")
            self.case_p = w / w.sum()

    def __len__(self) -> int:
        return self.samples_per_epoch

    @property
    def nbytes(self) -> int:
        """Memory held by the cached pyramids and index lists."""
        return sum(c.nbytes for c in self.cases)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` (seeded by seed, rank, index)."""
        return np.random.default_rng([self.options.seed, self.rank, int(index)])

    def draw_origin(self, case: _PreparedCase, rng: np.random.Generator) -> Origin:
        """Class-balanced centre with probability ``class_balance``, else a uniform aligned origin."""
        g = case.image.geometry
        if case.classes.size and rng.random() < self.options.class_balance:
            cls = int(case.classes[rng.integers(case.classes.size)])
            voxels = case.class_voxels[cls]
            flat = int(voxels[rng.integers(voxels.size)])
            return g.origin_for_centre(np.unravel_index(flat, case.shape))
        a = g.alignment
        return tuple(int(rng.integers(m // a + 1)) * a for m in g.max_origin)  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        rng = self.rng(index)
        n = len(self.cases)
        case = self.cases[int(rng.integers(n) if self.case_p is None else rng.choice(n, p=self.case_p))]
        origin = self.draw_origin(case, rng)
        images, labels, mirrored = self._augment(case, case.image.cut(origin), case.labels.cut(origin), rng)
        sample = {
            "image": images,
            "labels": labels,
            "case": case.case_id,
            "origin": torch.tensor(origin, dtype=torch.int64),
            "mirrored": mirrored,
            "index": int(index),
        }
        if self.with_sets:
            sample["sets"] = torch.from_numpy(case.membership.copy())  # (256, 126) bool
        return sample

    def _augment(self, case: _PreparedCase, images: list[np.ndarray], labels: list[np.ndarray],
                 rng: np.random.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
        """Augment per-level patches (all centred on one point); return tensors (1,S,S,S) / (S,S,S)."""
        aug = self.options.augment
        # Draw every random number in a fixed order so the stream does not depend on options taken.
        u_mirror, u_rotate, angle = rng.random(), rng.random(), rng.uniform(-1.0, 1.0) * aug.max_rotation_deg
        scale, shift = rng.uniform(*aug.scale_range), rng.uniform(*aug.shift_range)
        noise_std = rng.uniform(0.0, aug.noise_std_max) if aug.noise_std_max > 0 else 0.0
        noise_seed = int(rng.integers(2**62))
        domain_rng = np.random.default_rng(int(rng.integers(2**62)))
        mirrored = bool(u_mirror < aug.p_mirror)
        if mirrored:
            # All patches share one centre, so flipping each about its own centre mirrors the scene
            # about one plane, and pooled context stays the pooling of the mirrored image.
            for i in range(len(images)):
                images[i] = np.ascontiguousarray(np.flip(images[i], axis=case.lr_axis))
                labels[i] = np.take(case.mirror_lut, np.flip(labels[i], axis=case.lr_axis))
        if u_rotate < aug.p_rotate and angle:
            _rotate_levels(images, labels, angle, case.si_axis, case.spacing)
        domain = None
        if aug.domain_randomized:
            reach = self.options.patch_size * 2 ** self.options.num_context * case.spacing[case.si_axis] / 2
            domain = domain_randomization.draw(domain_rng, aug, case.spacing, case.si_axis, reach)
            images = [np.ascontiguousarray(im, dtype=np.float32) for im in images]
            domain_randomization.randomize_intensity(images, domain, case.spacing, self.normalization)
        gen = torch.Generator().manual_seed(noise_seed) if noise_std > 0 else None
        out_images, out_labels = [], []
        # Element-wise work in NumPy: small torch ops are slow when intra-op threads contend.
        for k, (im, lab) in enumerate(zip(images, labels)):
            im = np.ascontiguousarray(im, dtype=np.float32)
            if scale != 1.0 or shift != 0.0:
                im *= np.float32(scale)
                im += np.float32(shift)
            if gen is not None:
                # pooling by 2^k averages 8^k voxels: noise std falls by 2^(1.5 k)
                noise = torch.randn(im.shape, generator=gen).numpy()  # 4x faster than NumPy's normal
                noise *= np.float32(noise_std / 2.0 ** (1.5 * k))
                im += noise
            if domain is not None:
                lab = np.array(lab)  # owned: the crop writes background into it
                domain_randomization.crop_field_of_view(im, lab, domain, case.spacing, case.si_axis, k,
                                                        self.normalization)
            out_images.append(torch.from_numpy(im)[None])
            out_labels.append(torch.from_numpy(np.ascontiguousarray(lab) if self.compact_labels
                                               else lab.astype(np.int64)))
        return out_images, out_labels, mirrored


def _rotate_levels(images: list[np.ndarray], labels: list[np.ndarray], angle_deg: float, axis: int,
                   spacing: Sequence[float]) -> None:
    """Rotate every level about ``axis`` through the common patch centre, in millimetres.

    Linear interpolation for images, nearest for labels; corners that rotate in from outside the
    patch repeat the nearest edge value (keep angles small).
    """
    from scipy.ndimage import affine_transform

    a, b = [i for i in range(3) if i != axis]
    t = math.radians(angle_deg)
    rot = np.eye(3)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    sp = np.diag(np.asarray(spacing, dtype=float))  # every level has spacing * 2^k: same ratios
    m = np.linalg.inv(sp) @ rot @ sp
    for i in range(len(images)):
        c = (np.array(images[i].shape) - 1) / 2.0
        offset = c - m @ c
        images[i] = affine_transform(images[i], m, offset=offset, order=1, mode="nearest")
        labels[i] = affine_transform(labels[i], m, offset=offset, order=0, mode="nearest")
