"""Fixtures shared by the core's test files."""
from __future__ import annotations

import pytest
import torch

from sneakynet.bundle import intensity_spec, save_bundle
from sneakynet.intensity import CTNormalization
from sneakynet.models import NetConfig, build_network


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small randomly initialised D bundle at 6 mm: its labels mean nothing; for files, geometry
    and messages."""
    torch.manual_seed(0)
    model = build_network(NetConfig("D", 1, 32, widths=(4, 8, 8, 16, 16)))
    return save_bundle(model, tmp_path_factory.mktemp("b") / "bundle", spacing=(6.0, 6.0, 6.0),
                       intensity=intensity_spec(CTNormalization()), description="random test network",
                       training={"data": "none"})
