"""Model bundles: a trained network as a folder that any SneakyNet tool can load safely.

A bundle is a folder with two files::

    <bundle>/model.safetensors   the network weights (state dict, float32, safetensors: no pickle)
    <bundle>/config.json         what was built and how to feed it (see :func:`save_bundle`)

``config.json`` holds the format version, the network config (:meth:`NetConfig.to_dict`), the
label table version and class count, the model spacing in millimetres (x, y, z: cases are
resampled to it before patches are cut), the CT intensity normalisation (name + parameters of
:mod:`sneakynet.intensity`), patch size S and context count K, a description of the training
data and run, a ``demo`` flag with a disclaimer, optional validation metrics, and the sha256 of
``model.safetensors``.

:func:`load_bundle` trusts nothing: it checks the hash, refuses pickled files (``torch.load``
is never called), checks that the state-dict keys and shapes are exactly those of
``build_network(config)`` and that the label table is the one this SneakyNet ships. Every
problem raises :class:`BundleError` (a ``ValueError``) whose message names the file.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sneakynet.intensity import CTNormalization
from sneakynet.io import OutputWriteError, atomic_folder, json_safe, read_json, write_json
from sneakynet.labels import load_label_table
from sneakynet.models import MultiResolutionUNet, NetConfig, build_network

FORMAT_NAME = "sneakynet-model-bundle"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CT_INTENSITY_NAME = "ct_clip_scale"  # sneakynet.intensity.normalize_ct with CTNormalization parameters
DEMO_DISCLAIMER = (
    "Demo model trained on synthetic phantom CT only. It is not a medical device and must not be used "
    "on real patient CT, for diagnosis, treatment or any clinical decision."
)
DEMO_BUILD_HINT = "build it with 'sneakynet build-demo' (about 1.5 hours on 2 CPU cores)"

_PICKLE_PROTOCOL_BYTE = 0x80  # first byte of every pickle of protocol >= 2
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default container


class BundleError(ValueError):
    """A model bundle is missing, damaged, tampered with or does not fit this SneakyNet."""


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`load_bundle` read from ``config.json`` (weights excluded)."""

    config: NetConfig
    spacing: tuple[float, float, float]  # model spacing in mm, (x, y, z) as SimpleITK orders it
    intensity: dict  # {"name": ..., "parameters": {...}}
    label_table_version: str
    description: str
    demo: bool
    disclaimer: str
    metrics: dict | None
    sha256: str
    path: Path
    training: dict = field(default_factory=dict)
    created: str = ""
    sneakynet_version: str = ""

    @property
    def patch_size(self) -> int:
        """S, voxels per side of the target patch."""
        return self.config.patch_size

    @property
    def num_context(self) -> int:
        """K, the number of context networks."""
        return self.config.num_context

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def normalization(self) -> CTNormalization:
        """The CT normalisation to apply before the network (see :func:`sneakynet.intensity.normalize_ct`)."""
        if self.intensity.get("name") != CT_INTENSITY_NAME:
            raise BundleError(f"{self.path / CONFIG_FILE}: unknown intensity normalisation "
                              f"{self.intensity.get('name')!r}")
        return CTNormalization.from_dict(self.intensity["parameters"])


def intensity_spec(normalization: CTNormalization) -> dict:
    """The ``intensity`` entry of a bundle for a CT normalisation: ``{"name", "parameters"}``."""
    return {"name": CT_INTENSITY_NAME, "parameters": normalization.to_dict()}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unwrap_model(model: nn.Module) -> MultiResolutionUNet:
    """The bare network inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, MultiResolutionUNet):
            return model
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected a MultiResolutionUNet (optionally wrapped), got {type(model).__name__}")
        model = inner


def verify_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Raise :class:`OutputWriteError` unless ``path`` has the header and size of ``tensors``.

    Read back before a checkpoint or bundle replaces anything: a full disk can leave a short file.
    """
    from safetensors import SafetensorError, safe_open

    expected = sum(t.numel() * t.element_size() for t in tensors.values())
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
        with open(path, "rb") as f:
            header = 8 + int.from_bytes(f.read(8), "little")
    except (SafetensorError, OSError, ValueError) as exc:
        raise OutputWriteError(path, f"written tensors do not read back ({exc})") from None
    if keys != set(tensors) or path.stat().st_size != header + expected:
        raise OutputWriteError(path, f"written tensors read back with {len(keys)} of {len(tensors)} tensors, "
                                     f"{path.stat().st_size} of {header + expected} bytes")


MIN_SPACING_MM, MAX_SPACING_MM = 0.1, 20.0  # paper 2 mm; a tiny spacing would make a huge model grid


def _check_spacing(spacing: Any, where: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise BundleError(f"{where}: spacing must be three numbers in mm, got {spacing!r}") from None
    if len(values) != 3 or not all(math.isfinite(s) and MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in values):
        raise BundleError(f"{where}: spacing must be three positive numbers in {MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm "
                          f"(x, y, z), got {spacing!r}")
    return values  # type: ignore[return-value]


def _check_intensity(intensity: Any, where: str) -> dict:
    if not isinstance(intensity, dict) or not isinstance(intensity.get("name"), str) \
            or not isinstance(intensity.get("parameters"), dict):
        raise BundleError(f"{where}: intensity must be {{'name': str, 'parameters': {{...}}}}, got {intensity!r}")
    if intensity["name"] == CT_INTENSITY_NAME:
        try:
            CTNormalization.from_dict(intensity["parameters"])
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: bad intensity parameters ({exc})") from None
    else:
        raise BundleError(f"{where}: unknown intensity normalisation {intensity['name']!r} "
                          f"(this SneakyNet knows {CT_INTENSITY_NAME!r})")
    return {"name": intensity["name"], "parameters": dict(intensity["parameters"])}


def save_bundle(model: nn.Module, out_dir: str | os.PathLike, *, spacing: tuple[float, float, float],
                intensity: dict, description: str, training: dict, demo: bool = False, disclaimer: str = "",
                metrics: dict | None = None) -> Path:
    """Write ``model`` as a bundle folder ``out_dir`` and return its path.

    ``spacing`` is the model spacing in mm (x, y, z); ``intensity`` is :func:`intensity_spec` of the
    normalisation used in training; ``training`` describes the run (data, iterations, seed, ...).
    A demo bundle without a disclaimer gets :data:`DEMO_DISCLAIMER`. The folder is written under a
    temporary name beside ``out_dir`` and renamed into place, so readers never see half a bundle;
    an existing bundle at ``out_dir`` is replaced.
    """
    from safetensors.torch import save_file

    from sneakynet import __version__

    net = unwrap_model(model)
    config: NetConfig = net.config
    out = Path(out_dir)
    spacing_t = _check_spacing(spacing, str(out))
    intensity_d = _check_intensity(intensity, str(out))
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out}: exists and is not a folder; refusing to replace it with a bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).is_file():
        raise BundleError(f"{out}: folder is not empty and holds no bundle; refusing to replace it")
    if demo and not disclaimer:
        disclaimer = DEMO_DISCLAIMER
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}
    with atomic_folder(out) as tmp:
        weights = tmp / WEIGHTS_FILE
        save_file(state, str(weights), metadata={"format": "pt", "sneakynet_bundle": str(FORMAT_VERSION)})
        verify_safetensors(weights, state)
        info = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "sneakynet_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "network": config.to_dict(),
            "label_table_version": load_label_table().version,
            "num_classes": config.num_classes,
            "spacing_mm": list(spacing_t),
            "intensity": intensity_d,
            "patch_size": config.patch_size,
            "num_context": config.num_context,
            "description": str(description),
            "training": json_safe(dict(training)),
            "demo": bool(demo),
            "disclaimer": str(disclaimer),
            "metrics": json_safe(metrics) if metrics is not None else None,
            "weights": {"file": WEIGHTS_FILE, "sha256": file_sha256(weights), "bytes": weights.stat().st_size,
                        "num_tensors": len(state)},
        }
        write_json(info, tmp / CONFIG_FILE)
    return out


# ----------------------------------------------------------------------------------------------
# loading


MAX_PARAMETERS = 300_000_000  # the paper's largest network has 62 M; 1.2 GB of float32 weights


def _check_size(config: NetConfig, where: Path) -> None:
    """Count the network's parameters on the meta device (no memory) and refuse absurd ones."""
    with torch.device("meta"):
        n = sum(p.numel() for p in build_network(config).parameters())
    if n > MAX_PARAMETERS:
        raise BundleError(f"{where}: the network would have {n / 1e6:.0f} M parameters; SneakyNet loads at most "
                          f"{MAX_PARAMETERS / 1e6:.0f} M (the paper's largest has 62 M)")


def _require(data: dict, key: str, types: type | tuple[type, ...], where: Path) -> Any:
    """``data[key]`` if present and of ``types`` (a bool never passes for an int)."""
    if key not in data:
        raise BundleError(f"{where}: missing key {key!r}")
    value = data[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise BundleError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def _check_label_table(data: dict, num_classes: int, cfg_path: Path) -> str:
    """The bundle's label table version, which must be this SneakyNet's, with room for its classes."""
    table = load_label_table()
    label_version = str(_require(data, "label_table_version", (str, int), cfg_path))
    if label_version != table.version:
        raise BundleError(f"{cfg_path}: model was trained with label table version {label_version}, this SneakyNet "
                          f"has version {table.version}; its label ids would be wrong")
    if num_classes > len(table) + 1:
        raise BundleError(f"{cfg_path}: {num_classes} classes, but the label table has only {len(table)} bones "
                          "+ background")
    return label_version


def _check_weights_entry(data: dict, cfg_path: Path) -> str:
    """The sha256 recorded for ``model.safetensors``."""
    weights = _require(data, "weights", dict, cfg_path)
    if weights.get("file") != WEIGHTS_FILE:
        raise BundleError(f"{cfg_path}: weights file must be {WEIGHTS_FILE!r}, got {weights.get('file')!r}")
    sha = weights.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise BundleError(f"{cfg_path}: weights.sha256 must be 64 lower-case hex digits, got {sha!r}")
    return sha


def read_bundle_info(path: str | os.PathLike) -> BundleInfo:
    """Read and validate ``config.json`` of a bundle (no weights are read, no hash is checked)."""
    folder = Path(path)
    if not folder.exists():
        raise BundleError(f"{folder}: model bundle folder does not exist")
    if not folder.is_dir():
        raise BundleError(f"{folder}: a model bundle is a folder (with {CONFIG_FILE} and {WEIGHTS_FILE}), got a file")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise BundleError(f"{cfg_path}: file is missing; {folder} is not a SneakyNet model bundle")
    data = read_json(cfg_path, BundleError, "bundle config")
    if not isinstance(data, dict):
        raise BundleError(f"{cfg_path}: must hold a JSON object")
    if data.get("format") != FORMAT_NAME:
        raise BundleError(f"{cfg_path}: 'format' is {data.get('format')!r}, expected {FORMAT_NAME!r}")
    version = _require(data, "format_version", int, cfg_path)
    if version > FORMAT_VERSION:
        raise BundleError(f"{cfg_path}: bundle format {version} is newer than this SneakyNet reads "
                          f"({FORMAT_VERSION}); update SneakyNet")
    if version < 1:
        raise BundleError(f"{cfg_path}: invalid format_version {version}")
    network = _require(data, "network", dict, cfg_path)
    try:
        config = NetConfig.from_dict(network)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{cfg_path}: invalid network config ({exc})") from None
    _check_size(config, cfg_path)
    num_classes = _require(data, "num_classes", int, cfg_path)
    if num_classes != config.num_classes:
        raise BundleError(f"{cfg_path}: num_classes {num_classes} disagrees with the network's {config.num_classes}")
    for key, value in (("patch_size", config.patch_size), ("num_context", config.num_context)):
        if _require(data, key, int, cfg_path) != value:
            raise BundleError(f"{cfg_path}: {key} {data[key]} disagrees with the network's {value}")
    label_version = _check_label_table(data, num_classes, cfg_path)
    sha = _check_weights_entry(data, cfg_path)
    metrics = data.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise BundleError(f"{cfg_path}: 'metrics' must be an object or null")
    training = data.get("training", {})
    if not isinstance(training, dict):
        raise BundleError(f"{cfg_path}: 'training' must be an object")
    demo = _require(data, "demo", bool, cfg_path)
    disclaimer = _require(data, "disclaimer", str, cfg_path)
    if demo and not disclaimer.strip():
        raise BundleError(f"{cfg_path}: a demo bundle must carry a disclaimer")
    return BundleInfo(
        config=config,
        spacing=_check_spacing(_require(data, "spacing_mm", list, cfg_path), str(cfg_path)),
        intensity=_check_intensity(_require(data, "intensity", dict, cfg_path), str(cfg_path)),
        label_table_version=label_version,
        description=str(_require(data, "description", str, cfg_path)),
        demo=demo,
        disclaimer=disclaimer,
        metrics=metrics,
        sha256=sha,
        path=folder,
        training=training,
        created=str(data.get("created", "")),
        sneakynet_version=str(data.get("sneakynet_version", "")),
    )


def _refuse_pickles(weights: Path) -> None:
    with open(weights, "rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        raise BundleError(f"{weights}: is a zip archive (torch.save checkpoint), not safetensors; "
                          "SneakyNet never unpickles model files, refusing to load it")
    if head[:1] == bytes([_PICKLE_PROTOCOL_BYTE]) and len(head) > 1 and head[1] <= 5:
        raise BundleError(f"{weights}: is a Python pickle, not safetensors; SneakyNet never unpickles model "
                          "files, refusing to load it")
    if len(head) < 8:
        raise BundleError(f"{weights}: file is truncated ({len(head)} bytes)")


def verify_weights(info: BundleInfo) -> Path:
    """Check that ``model.safetensors`` exists, is no pickle and has the sha256 of ``config.json``."""
    weights = info.path / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{weights}: weights file is missing")
    _refuse_pickles(weights)
    digest = file_sha256(weights)
    if digest != info.sha256:
        raise BundleError(f"{weights}: sha256 {digest[:16]}... does not match {info.sha256[:16]}... recorded in "
                          f"{CONFIG_FILE}; the file is truncated, damaged or was modified "
                          f"({weights.stat().st_size} bytes)")
    return weights


def check_architecture(state: dict[str, torch.Tensor], model: nn.Module, source: str | os.PathLike) -> None:
    """Raise :class:`BundleError` unless ``state`` has exactly the keys and shapes of ``model``."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s) (e.g. {extra[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensor(s) of the wrong shape (e.g. {k}: {got[k]} instead of {expected[k]})")
        raise BundleError(f"{source}: weights do not fit the network in {CONFIG_FILE}: " + "; ".join(parts))
    for k, v in state.items():
        if v.is_floating_point() != model.state_dict()[k].is_floating_point():
            raise BundleError(f"{source}: tensor {k} has dtype {v.dtype}, expected {model.state_dict()[k].dtype}")


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[MultiResolutionUNet, BundleInfo]:
    """Load a bundle: the network (eval mode, on ``device``) and its :class:`BundleInfo`.

    Checks, in order: folder and ``config.json`` (format, network config, label table version,
    spacing, intensity), weights present and not a pickle, sha256, then the weights' keys and shapes
    against ``build_network(config)``. Weights are read with safetensors only.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_bundle_info(path)
    weights = verify_weights(info)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{weights}: not a readable safetensors file ({exc})") from None
    model = build_network(info.config)
    check_architecture(state, model, weights)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info


def demo_bundle_folder() -> Path:
    """Where the demo model lives inside the package (it may not be built yet)."""
    return Path(str(resources.files("sneakynet").joinpath("resources/demo_model")))


def demo_bundle_path() -> Path:
    """The demo model shipped inside the package (``sneakynet/resources/demo_model``).

    Raises ``FileNotFoundError`` with instructions when it has not been built.
    """
    folder = demo_bundle_folder()
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{folder}: the demo model is not built; {DEMO_BUILD_HINT}")
    return folder


__all__ = ["BundleError", "BundleInfo", "CONFIG_FILE", "DEMO_DISCLAIMER", "FORMAT_VERSION", "WEIGHTS_FILE",
           "check_architecture", "demo_bundle_folder", "demo_bundle_path", "file_sha256", "intensity_spec", "json_safe", "load_bundle",
           "read_bundle_info", "save_bundle", "unwrap_model", "verify_weights"]
