"""Shared fixtures of the extension-level tests (run under slicer-core, no Slicer application).

- ``SlicerSneakyNet/`` goes on ``sys.path`` so ``SneakyNetLib`` imports as Slicer imports it.
- ``model_bundle``: the bundled demo model when it is built, else a randomly initialised
  ``lite`` network saved with ``sneakynet.bundle.save_bundle`` (same code path, no training).
- ``phantom_ct``: a small synthetic upper-body CT (4 mm, field of view cut to 40 %, about
  45 bones) so one prediction takes seconds on two CPU cores.
- ``module_file``: SneakyNet.py imported with stand-ins for the application-only parts
  (Qt, ScriptedLoadableModule, parameterNodeWrapper).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "SlicerSneakyNet"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

PHANTOM_SPACING = (4.0, 4.0, 4.0)
PHANTOM_FOV = 0.4


def demo_model_available() -> bool:
    """True when sneakynet/resources/demo_model holds a bundle."""
    from sneakynet.bundle import demo_bundle_path

    try:
        demo_bundle_path()
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def model_bundle(tmp_path_factory) -> str | None:
    """Bundle argument for the logic: None (= the demo model) or a random-weights bundle folder."""
    if demo_model_available():
        return None
    import torch

    from sneakynet.bundle import intensity_spec, save_bundle
    from sneakynet.intensity import CTNormalization
    from sneakynet.models import build_network, preset

    torch.manual_seed(0)
    net = build_network(preset("lite", "D", 1, patch_size=32))
    folder = tmp_path_factory.mktemp("bundle") / "random_lite"
    save_bundle(net, folder, spacing=PHANTOM_SPACING, intensity=intensity_spec(CTNormalization()),
                description="randomly initialised lite D network (tests only; the demo model is not built)",
                training={"iterations": 0})
    return str(folder)


def make_phantom(seed: int, spacing=PHANTOM_SPACING, fov_scale: float = PHANTOM_FOV):
    """(ct, labels) SimpleITK images of a small phantom (oblique direction matrix, LPS)."""
    from sneakynet.phantom import PhantomOptions, generate_case

    return generate_case(seed, PhantomOptions(spacing=spacing, fov_scale=fov_scale))


@pytest.fixture(scope="session")
def phantom_ct():
    """One small phantom CT (seed 3) and its reference labels."""
    return make_phantom(3)


@pytest.fixture
def module_file(monkeypatch):
    """SneakyNet.py imported with minimal stand-ins for the parts only the Slicer application has.

    The stand-in ScriptedLoadableModuleLogic has the real one's constructor chain
    (``super().__init__()``, moduleName from the class name), so base-class order mistakes fail
    here as they would in Slicer. Qt is an empty module: the widget is not instantiated.
    """
    import importlib.util
    import types
    import unittest

    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            super().__init__()
            self.moduleName = self.__class__.__name__
            if self.moduleName.endswith("Logic"):
                self.moduleName = self.moduleName[:-5]
            self.isSingletonParameterNode = True

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            self.displayed = getattr(self, "displayed", []) + [message]

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", tuple(choices))
    pnw.WithinRange = lambda low, high: ("WithinRange", low, high)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", pnw)
    monkeypatch.setitem(sys.modules, "qt", types.ModuleType("qt"))
    spec = importlib.util.spec_from_file_location("SneakyNet_under_test", MODULE_DIR / "SneakyNet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
