"""Training options: everything a run depends on, validated once, stored as ``options.json``."""
from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from sneakynet.devices import DEVICE_HELP, normalize_device, parse_device

from sneakynet.intensity import CTNormalization
from sneakynet.models import NetConfig, preset

DEFAULT_SPACING = (2.0, 2.0, 2.0)  # mm; a 128^3 context then spans ~half an upper body, as in the paper (§3)
# HU; beat -1000..2000 on phantoms and both real CTs at equal training (docs/realct.md, "CT window")
DEFAULT_CT_WINDOW = (-250.0, 1250.0)
LR_SCHEDULES = ("constant", "poly")

# options that change the numbers a run produces: a resumed run must keep them
RESUME_FIXED = ("dataset", "fold", "variant", "context", "patch", "preset", "widths", "batch_size", "lr",
                "seed", "spacing", "class_balance", "augment", "overfit_one_batch", "deterministic", "amp",
                "normalization", "grad_clip", "lr_schedule", "domain_randomization", "init_weights",
                "datasets")


def parse_spacing(text: str) -> tuple[float, float, float]:
    """``--spacing``: 1 or 3 numbers in mm (``2``, ``1.5,1.5,2``, ``1.5x1.5x2``) within what a bundle may hold."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"spacing must be 1 or 3 numbers in mm (e.g. 2 or 1.5,1.5,2), got {text!r}")
    if len(values) == 1:
        values *= 3
    from sneakynet.bundle import MAX_SPACING_MM, MIN_SPACING_MM  # what a bundle may hold

    if len(values) != 3 or not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in values):
        raise argparse.ArgumentTypeError(f"spacing must be 1 or 3 numbers in {MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm, "
                                         f"got {text!r}")
    return tuple(values)  # type: ignore[return-value]


def parse_widths(text: str) -> tuple[int, ...]:
    """``--widths``: five comma-separated positive channel widths."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 5 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be 5 comma-separated positive integers, got {text!r}")
    return widths


def parse_dataset_entry(text: str) -> tuple[str, float]:
    """``DIR`` or ``DIR:WEIGHT`` -> (folder, weight > 0); a tail that is not a number stays in the path."""
    folder, sep, tail = text.rpartition(":")
    if not sep:
        return text, 1.0
    try:
        weight = float(tail)
    except ValueError:
        return text, 1.0
    if not (weight > 0 and math.isfinite(weight)) or not folder:
        raise TrainError(f"--dataset {text!r}: the weight after ':' must be a positive number")
    return folder, weight


CT_WINDOW_RANGE_HU = (-3024.0, 4095.0)  # what 12-bit CT can hold
MIN_CT_WINDOW_HU = 100.0


def parse_ct_window(text: str) -> dict[str, float]:
    """``--ct-window LO,HI`` in HU -> the :class:`CTNormalization` parameters of that window."""
    try:
        low, high = (float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"CT window must be two numbers LO,HI in HU (e.g. -250,1250), got {text!r}")
    lo_limit, hi_limit = CT_WINDOW_RANGE_HU
    if not (lo_limit <= low and high <= hi_limit and high - low >= MIN_CT_WINDOW_HU):
        raise argparse.ArgumentTypeError(f"CT window must lie in {lo_limit:g}..{hi_limit:g} HU and be at least "
                                         f"{MIN_CT_WINDOW_HU:g} HU wide (LO < HI), got {text!r}")
    return CTNormalization.window(low, high).to_dict()


def _cli(group: str, help: str, default: Any = MISSING, flag: str | None = None, default_factory: Any = MISSING,
         **argparse_kw: Any) -> Any:
    """A dataclass field whose metadata is its command-line flag: the one schema of the options."""
    meta = {"group": group, "help": help, "flag": flag, **argparse_kw}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(metadata=meta) if default is MISSING else field(default=default, metadata=meta)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`TrainOptions` field that has one, in groups, defaults from the fields."""
    groups = {name: parser.add_argument_group(name) for name in ("data", "network", "optimisation", "run folder")}
    for f in fields(TrainOptions):
        if "group" not in f.metadata:
            continue
        kw = {k: v for k, v in f.metadata.items() if k not in ("group", "flag")}
        if f.default is not MISSING:
            kw["default"] = f.default
        elif f.default_factory is not MISSING:
            kw["default"] = f.default_factory()
        groups[f.metadata["group"]].add_argument(f.metadata["flag"] or "--" + f.name.replace("_", "-"), dest=f.name, **kw)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The :class:`TrainOptions` of parsed arguments (every field that has a flag)."""
    return TrainOptions(**{f.name: getattr(args, f.name) for f in fields(TrainOptions) if "group" in f.metadata})


def _with_flag(key: str, stored: Any) -> str:
    """A changed option as the resume error names it; the window says which ``--ct-window`` the run has."""
    if key == "normalization":
        try:
            norm = CTNormalization.from_dict(stored)
        except (TypeError, ValueError):
            return key
        return f"normalization (the run's --ct-window is {norm.clip_min:g},{norm.clip_max:g})"
    return key


def _known_device(name: str) -> bool:
    try:
        normalize_device(name)
    except ValueError:
        return False
    return True


class TrainError(ValueError):
    """Bad training input (dataset, options, run folder); the message names the file or option."""


@dataclass
class TrainOptions:
    """Everything a training run depends on; stored as ``options.json`` in the run folder.

    ``batch_size`` is per process: under torchrun with N processes one step sees N x batch_size
    patches. ``widths`` overrides the preset's channel widths (tiny test networks).
    """

    dataset: str = _cli("data", "nnU-Net-style dataset folder (dataset.json, imagesTr, labelsTr, splits.json); "
                        "repeat as DIR:WEIGHT to train on several datasets, each drawn with probability "
                        "proportional to its weight (default 1)", required=True, metavar="DIR[:WEIGHT]",
                        action="append")
    out: str = _cli("run folder", "run folder (checkpoints, metrics, bundles)", required=True, metavar="RUN_DIR")
    fold: int = _cli("data", "cross-validation fold of splits.json (default 0)", default=0, type=int)
    variant: str = _cli("network", "A U-Net, B HookNet, C MRN, D SneakyNet (default D)", default="D",
                        choices=["A", "B", "C", "D"])
    context: int = _cli("network", "context networks K (A: 0, B: 1, C/D: 1-3)", default=1, type=int, metavar="K")
    patch: int = _cli("network", "target patch size S (default 64)", default=64, type=int, metavar="S")
    preset: str = _cli("network", "channel widths: lite (CPU-sized) or paper (Table 1 sizes); default lite",
                       default="lite", choices=["lite", "paper", "slim"])
    widths: tuple[int, ...] | None = _cli("network", "override the preset's five channel widths (small test networks)",
                                          default=None, type=parse_widths, metavar="W0,..,W4")
    iterations: int = _cli("optimisation", "optimizer steps (paper: 100000)", default=1000, type=int)
    batch_size: int = _cli("optimisation", "patches per step and process", default=2, type=int)
    lr: float = _cli("optimisation", "Adam learning rate (paper: 1e-3)", default=1e-3, type=float)
    workers: int = _cli("data", "DataLoader worker processes per rank", default=2, type=int)
    val_every: int = _cli("run folder", "validate every N iterations and at the end (0: only at the end)",
                          default=250, type=int, metavar="N")
    val_mode: str = _cli("run folder", "cases: sliding-window prediction of whole validation cases; patches: "
                         "fixed sampled patches", default="cases", choices=["cases", "patches"])
    val_patches: int = _cli("run folder", "patches for --val-mode patches", default=16, type=int)
    ckpt_every: int = _cli("run folder", "checkpoint every N iterations and at the end (0: only at the end)",
                           default=250, type=int, metavar="N")
    keep_checkpoints: int = _cli("run folder", "newest checkpoints kept", default=2, type=int)
    log_every: int = _cli("run folder", "metrics.jsonl line every N steps", default=10, type=int, metavar="N")
    resume: bool = _cli("run folder", "continue from the newest checkpoint in RUN_DIR", default=False,
                        action="store_true")
    seed: int = _cli("optimisation", "seed of weights and patch streams", default=0, type=int)
    deterministic: bool = _cli("optimisation", "deterministic algorithms (bit-exact resume on the same machine and "
                               "thread count)", default=False, action="store_true")
    threads: int = _cli("optimisation", "torch CPU threads (0 = torch default)", default=0, type=int)
    spacing: tuple[float, float, float] = _cli(
        "data", "model spacing in mm, 1 or 3 values x,y,z; cases are resampled to it (linear CT, nearest labels); "
        "default 2", default=DEFAULT_SPACING, type=parse_spacing, metavar="MM")
    device: str = _cli("optimisation", DEVICE_HELP, default="auto", type=parse_device, metavar="DEVICE")
    amp: str = _cli("optimisation", "mixed precision on CUDA (auto: bf16 where supported, else fp16); CPU runs fp32",
                    default="auto", choices=["auto", "bf16", "fp16", "off"])
    class_balance: float = _cli("data", "probability of a class-balanced patch centre (default 0.5)", default=0.5,
                                type=float)
    augment: bool = _cli("data", "switch off mirroring and intensity augmentation", default=True,
                         action="store_false", flag="--no-augment")
    overfit_one_batch: bool = _cli("optimisation", "train on one fixed batch (a sanity check)", default=False,
                                   action="store_true")
    normalization: dict = _cli(
        "data", "CT window LO,HI in HU: intensities are clipped to it and mapped linearly onto -1..1; the bundles "
        "store it, so prediction normalises the same way (default -250,1250, a bone window; the demo model: "
        "-1000,2000)", default_factory=lambda: CTNormalization.window(*DEFAULT_CT_WINDOW).to_dict(),
        flag="--ct-window", type=parse_ct_window, metavar="LO,HI")
    description: str = _cli("run folder", "description stored in the model bundles", default="")
    demo: bool = _cli("run folder", "mark the bundles as demo models (phantom data, not for clinical use)",
                      default=False, action="store_true")
    progress: bool = _cli("run folder", "no progress bar", default=True, action="store_false", flag="--no-progress")
    grad_clip: float = _cli("optimisation", "clip the gradient norm to this (nnU-Net: 12); 0 = off (default)",
                            default=0.0, type=float, metavar="NORM")
    lr_schedule: str = _cli("optimisation", "learning-rate schedule: constant (default) or poly, "
                            "lr (1 - step/iterations)^0.9 as nnU-Net", default="constant", choices=list(LR_SCHEDULES))
    domain_randomization: bool = _cli(
        "data", "domain randomisation for real CT: soft-tissue intensity curve, blur, coarser resolution, "
        "field-of-view cuts with scanner padding, wider noise (default off)", default=False,
        action=argparse.BooleanOptionalAction)
    init_weights: str | None = _cli("network", "start from the weights of this model bundle (same network) instead "
                                    "of random ones", default=None, metavar="BUNDLE_DIR")
    # mixed training: every "DIR:WEIGHT" of a repeated --dataset (dataset = the first DIR); () = one dataset
    datasets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._mix_datasets()
        self.dataset, self.out = str(self.dataset), str(self.out)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if self.widths is not None:
            self.widths = tuple(int(w) for w in self.widths)
        if self.init_weights is not None:
            self.init_weights = str(self.init_weights)
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
            (_known_device(self.device), f"--device must be auto, cpu, cuda (or cuda:N) or gpu, got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        try:
            CTNormalization.from_dict(self.normalization)
        except (TypeError, ValueError) as exc:
            raise TrainError(f"normalization: {exc}") from None

    def _mix_datasets(self) -> None:
        """A repeated ``--dataset`` (a list) -> ``dataset`` (the first folder) and ``datasets`` (all,
        ``DIR:WEIGHT``); a single folder stays as it always was (``datasets`` empty)."""
        if isinstance(self.dataset, (list, tuple)):
            entries = [parse_dataset_entry(str(e)) for e in self.dataset]
            if not entries:
                raise TrainError("--dataset: at least one dataset folder is needed")
            self.dataset = entries[0][0]
            self.datasets = tuple(f"{d}:{w:g}" for d, w in entries) if len(entries) > 1 else ()
        self.datasets = tuple(str(e) for e in self.datasets)
        if self.datasets:
            entries = [parse_dataset_entry(e) for e in self.datasets]
            folders = [d for d, _ in entries]
            if folders[0] != str(self.dataset):
                raise TrainError(f"datasets: the first entry {folders[0]!r} must be the dataset {self.dataset!r}")
            if len(set(folders)) != len(folders):
                raise TrainError(f"--dataset: a folder is given twice ({folders})")

    def dataset_entries(self) -> list[tuple[str, float]]:
        """``[(folder, sampling weight)]`` of the run: one entry of weight 1, or every mixed dataset."""
        if not self.datasets:
            return [(str(self.dataset), 1.0)]
        return [parse_dataset_entry(e) for e in self.datasets]

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
        changed = []
        for k in RESUME_FIXED:
            old = stored.get(k, default[k])
            if old != mine[k]:
                changed.append(_with_flag(k, old))
        return changed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spacing"] = list(self.spacing)
        d["widths"] = list(self.widths) if self.widths is not None else None
        d["datasets"] = list(self.datasets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TrainError(f"unknown training options {sorted(unknown)}")
        return cls(**d)


__all__ = ["DEFAULT_SPACING", "LR_SCHEDULES", "RESUME_FIXED", "TrainError", "TrainOptions", "add_train_arguments",
           "options_from_args", "parse_dataset_entry", "parse_spacing", "parse_widths"]
