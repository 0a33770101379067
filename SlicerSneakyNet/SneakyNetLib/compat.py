"""Which Slicer releases can run SneakyNet, and the message an older one shows instead.

The sneakynet core needs Python >= 3.10. Slicer's Python (``Slicer_REQUIRED_PYTHON_VERSION`` in
the top-level ``CMakeLists.txt`` of Slicer/Slicer): 3.9.10 in every 5.0-5.8 release (v5.8.1),
3.12.10 from 5.10.0 on (v5.10.0 to v5.12.3). So 5.10 is the first release that works;
the extension's CMakeLists.txt refuses to build against an older one.
"""
from __future__ import annotations

import sys

MINIMUM_PYTHON = (3, 10)
MINIMUM_SLICER = "5.10"
SLICER_DOWNLOAD_URL = "https://download.slicer.org"


def unsupportedReason(pythonVersion: tuple[int, ...] = tuple(sys.version_info[:2]),
                      slicerVersion: str | None = None) -> str | None:
    """None when this Python can run SneakyNet, else the message the module shows instead of its GUI."""
    if tuple(pythonVersion[:2]) >= MINIMUM_PYTHON:
        return None
    running = f"Slicer {slicerVersion}" if slicerVersion else "This Slicer"
    python = ".".join(str(part) for part in pythonVersion[:2])
    return (f"SneakyNet needs Slicer {MINIMUM_SLICER} or later. {running} runs Python {python}; SneakyNet needs "
            f"Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or newer. Install a current Slicer from "
            f"{SLICER_DOWNLOAD_URL}.")
