"""Which Python packages the module needs in Slicer's Python, and how to install them.

Nothing here downloads anything by itself: the widget shows :func:`describeInstall` (what would
be installed and roughly how big it is) and asks the user first; only then it calls
:func:`installDependencies`. PyTorch is installed through the PyTorch Utils module of the
"PyTorch" extension when it is there (it knows which CUDA build fits the NVIDIA driver), else
with pip from the official PyTorch wheel index (CPU build) or PyPI (CUDA build on Linux).

The sneakynet core package is installed without its dependencies, because its ``vtk`` and
``SimpleITK`` requirements are already satisfied by Slicer's own builds and installing the
PyPI wheels over them would break Slicer; the small pure-Python dependencies are added one by
one when missing.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

TORCH_REQUIREMENT = ">=2.4"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# import name -> pip requirement; Slicer already ships numpy, vtk and SimpleITK builds of its own
# (psutil: the worker process's watchdog and process-tree kill, as SlicerMONAIAuto3DSeg uses it;
# highdicom: the DICOM SEG export)
CORE_EXTRAS = {"safetensors": "safetensors>=0.4", "tqdm": "tqdm>=4.66", "pygltflib": "pygltflib>=1.16",
               "scipy": "scipy>=1.11", "matplotlib": "matplotlib>=3.8", "psutil": "psutil>=5.9",
               "nibabel": "nibabel>=5.0", "segno": "segno>=1.5", "meshopt": "meshopt>=0.1",
               "highdicom": "highdicom>=0.23"}
REQUIRED = {"torch": "PyTorch", "SimpleITK": "SimpleITK", "sneakynet": "SneakyNet core (sneakynet)"}
TORCH_BACKENDS = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class InstallStep:
    """One thing :func:`installDependencies` will do: a human description and the pip arguments."""

    description: str
    pipArguments: list[str]  # one list item per argument: a path with spaces or backslashes stays whole
    approxDownloadMB: int
    viaPyTorchUtils: bool = False


def isImportable(moduleName: str) -> bool:
    """True if ``moduleName`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(moduleName) is not None
    except (ImportError, ValueError):
        return False


def missingDependencies() -> list[str]:
    """Import names of the required packages that are not installed (empty: ready to run)."""
    missing = [name for name in REQUIRED if not isImportable(name)]
    if "sneakynet" not in missing:
        missing += [name for name in CORE_EXTRAS if not isImportable(name)]
    return missing


def coreSource(moduleDir: str | Path | None = None) -> str:
    """Where to pip-install the core from: the copy installed with the extension
    (``<module dir>/SneakyNetCore``), the SneakyNetCore folder of a source checkout
    (``<module dir>/../SneakyNetCore``), else the package name for PyPI."""
    moduleDir = Path(moduleDir) if moduleDir else Path(__file__).resolve().parent.parent
    for candidate in (moduleDir / "SneakyNetCore", moduleDir.parent / "SneakyNetCore"):
        if (candidate / "pyproject.toml").is_file():
            return str(candidate)
    return "sneakynet"


def installPlan(missing: list[str], torchBackend: str = "cpu", pyTorchUtilsAvailable: bool = False,
                coreLocation: str | None = None) -> list[InstallStep]:
    """The steps that would install ``missing`` (from :func:`missingDependencies`), in order.

    ``torchBackend``: ``cpu`` (about 200 MB), ``cuda`` (about 2.5 GB, needs an NVIDIA GPU) or
    ``auto`` (PyTorch Utils picks the CUDA build matching the driver, or CPU).
    """
    if torchBackend not in TORCH_BACKENDS:
        raise ValueError(f"torch backend must be one of {TORCH_BACKENDS}, got {torchBackend!r}")
    steps = []
    if "torch" in missing:
        size = 200 if torchBackend == "cpu" else 2500
        if pyTorchUtilsAvailable:
            steps.append(InstallStep(f"PyTorch ({torchBackend} build) via the PyTorch Utils module",
                                     [f"torch{TORCH_REQUIREMENT}"], size, viaPyTorchUtils=True))
        elif torchBackend == "cpu":
            steps.append(InstallStep("PyTorch (CPU build) from the PyTorch wheel index",
                                     [f"torch{TORCH_REQUIREMENT}", "--index-url", CPU_TORCH_INDEX], size))
        else:
            steps.append(InstallStep("PyTorch (default PyPI build; CUDA on Linux, CPU on Windows/macOS)",
                                     [f"torch{TORCH_REQUIREMENT}"], size))
    if "SimpleITK" in missing:
        steps.append(InstallStep("SimpleITK", ["SimpleITK>=2.3"], 60))
    if "sneakynet" in missing:
        location = coreLocation or coreSource()
        steps.append(InstallStep(f"SneakyNet core from {location} (without re-installing vtk/SimpleITK)",
                                 ["--no-deps", location], 1))
    extras = [requirement for name, requirement in CORE_EXTRAS.items()
              if name in missing or ("sneakynet" in missing and not isImportable(name))]
    if extras:
        steps.append(InstallStep("small helper packages: " + ", ".join(e.split(">")[0] for e in extras),
                                 extras, 60))
    return steps


def describeInstall(steps: list[InstallStep]) -> str:
    """A confirmation text for the user: what is installed and the approximate download size."""
    total = sum(s.approxDownloadMB for s in steps)
    lines = [f"- {s.description}" for s in steps]
    size = f"about {total / 1000:.1f} GB" if total >= 1000 else f"about {total} MB"
    return ("SneakyNet needs these Python packages in Slicer:\n" + "\n".join(lines)
            + f"\n\nDownload size: {size}. Slicer may need a restart afterwards. Install now?")


def pyTorchUtilsLogic():
    """The PyTorch Utils logic of the PyTorch extension, or None when it is not installed."""
    try:
        import PyTorchUtils  # type: ignore[import-not-found]
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def installDependencies(torchBackend: str = "cpu", log: Callable[[str], None] = logging.info) -> list[str]:
    """Install what :func:`missingDependencies` reports, after the user agreed; return what is still missing.

    Only call this from the Slicer application (it uses ``slicer.util.pip_install``).
    """
    import slicer

    from .errors import DependencyError

    torchUtils = pyTorchUtilsLogic()
    for step in installPlan(missingDependencies(), torchBackend, torchUtils is not None):
        log(f"Installing {step.description} ...")
        try:
            if step.viaPyTorchUtils:
                backend = {"cpu": "cpu", "cuda": None, "auto": None}[torchBackend]
                if torchUtils.installTorch(askConfirmation=False, forceComputationBackend=backend,
                                           torchVersionRequirement=TORCH_REQUIREMENT) is None:
                    raise DependencyError("PyTorch was not installed (PyTorch Utils gave up).")
            else:  # a list, never one string: Slicer's pip_install shlex-splits strings (eats "\\", splits at " ")
                slicer.util.pip_install(list(step.pipArguments))
        except DependencyError:
            raise
        except Exception as exc:  # pip reports failures as CalledProcessError or RuntimeError
            raise DependencyError(f"Installing {step.description} failed: {exc}") from None
    importlib.invalidate_caches()
    return missingDependencies()
