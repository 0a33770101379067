"""Training options: everything a run depends on, validated once, stored as ``options.json``."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from sneakynet.intensity import DEFAULT_CT_NORMALIZATION, CTNormalization
from sneakynet.models import NetConfig, preset

DEFAULT_SPACING = (2.0, 2.0, 2.0)  # mm; a 128^3 context then spans ~half an upper body, as in the paper (§3)
LR_SCHEDULES = ("constant", "poly")

# options that change the numbers a run produces: a resumed run must keep them
RESUME_FIXED = ("dataset", "fold", "variant", "context", "patch", "preset", "widths", "batch_size", "lr",
                "seed", "spacing", "class_balance", "augment", "overfit_one_batch", "deterministic", "amp",
                "normalization", "grad_clip", "lr_schedule")


class TrainError(ValueError):
    """Bad training input (dataset, options, run folder); the message names the file or option."""


@dataclass
class TrainOptions:
    """Everything a training run depends on; stored as ``options.json`` in the run folder.

    ``batch_size`` is per process: under torchrun with N processes one step sees N x batch_size
    patches. ``widths`` overrides the preset's channel widths (tiny test networks).
    """

    dataset: str
    out: str
    fold: int = 0
    variant: str = "D"
    context: int = 1
    patch: int = 64
    preset: str = "lite"
    widths: tuple[int, ...] | None = None
    iterations: int = 1000
    batch_size: int = 2
    lr: float = 1e-3  # Adam, as the paper
    workers: int = 2
    val_every: int = 250
    val_mode: str = "cases"  # "cases" (sliding window on whole val cases) or "patches"
    val_patches: int = 16
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    seed: int = 0
    deterministic: bool = False
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    spacing: tuple[float, float, float] = DEFAULT_SPACING  # model spacing, mm (x, y, z)
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 if supported else fp16 on CUDA; off on CPU) | bf16 | fp16 | off
    class_balance: float = 0.5
    augment: bool = True
    overfit_one_batch: bool = False
    normalization: dict = field(default_factory=DEFAULT_CT_NORMALIZATION.to_dict)
    description: str = ""
    demo: bool = False
    progress: bool = True
    grad_clip: float = 0.0  # clip the gradient norm to this (nnU-Net: 12); 0 = off
    lr_schedule: str = "constant"  # constant | poly: lr * (1 - step / iterations)^0.9, as nnU-Net

    def __post_init__(self) -> None:
        self.dataset, self.out = str(self.dataset), str(self.out)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if self.widths is not None:
            self.widths = tuple(int(w) for w in self.widths)
        checks = [
            (len(self.spacing) == 3 and all(s > 0 and math.isfinite(s) for s in self.spacing),
             f"--spacing must be three positive numbers in mm, got {self.spacing}"),
            (self.iterations >= 1, f"--iterations must be >= 1, got {self.iterations}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (self.val_every >= 0 and self.ckpt_every >= 0,
             "--val-every and --ckpt-every must be >= 0 (0 = only at the end)"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.val_mode in ("cases", "patches"), f"--val-mode must be cases or patches, got {self.val_mode!r}"),
            (self.amp in ("auto", "bf16", "fp16", "off"), f"--amp must be auto, bf16, fp16 or off, got {self.amp!r}"),
            (0.0 <= self.class_balance <= 1.0, f"--class-balance must be in [0, 1], got {self.class_balance}"),
            (self.threads >= 0, f"--threads must be >= 0, got {self.threads}"),
            (self.grad_clip >= 0 and math.isfinite(self.grad_clip), f"--grad-clip must be >= 0, got {self.grad_clip}"),
            (self.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"),
            (self.device in ("auto", "cpu", "cuda", "gpu") or self.device.startswith("cuda:"),
             f"--device must be auto, cpu or cuda, got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        try:
            CTNormalization.from_dict(self.normalization)
        except (TypeError, ValueError) as exc:
            raise TrainError(f"normalization: {exc}") from None

    def net_config(self) -> NetConfig:
        """The network to build: the preset's, or ``widths`` when given."""
        try:
            config = preset(self.preset, self.variant, self.context, self.patch)
            if self.widths is not None:
                config = replace(config, widths=self.widths, preset="custom")
                config = NetConfig.from_dict(config.to_dict())  # re-validate
        except ValueError as exc:
            raise TrainError(f"network: {exc}") from None
        return config

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based) under ``lr_schedule``."""
        if self.lr_schedule == "poly":
            return self.lr * (1.0 - step / self.iterations) ** 0.9
        return self.lr

    def changed_for_resume(self, stored: dict) -> list[str]:
        """Options that change a run's numbers and differ from a stored ``options.json`` (options added
        since the run was stored count as their defaults)."""
        mine, default = self.to_dict(), TrainOptions(dataset="", out="").to_dict()
        return [k for k in RESUME_FIXED if stored.get(k, default[k]) != mine[k]]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spacing"] = list(self.spacing)
        d["widths"] = list(self.widths) if self.widths is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TrainError(f"unknown training options {sorted(unknown)}")
        return cls(**d)


__all__ = ["DEFAULT_SPACING", "LR_SCHEDULES", "RESUME_FIXED", "TrainError", "TrainOptions"]
