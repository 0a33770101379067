"""Errors the SneakyNet module shows to the user as a message (never as a traceback).

Every class derives from :class:`SneakyNetError`; the widget catches that base class and
shows ``str(error)`` with ``slicer.util.errorDisplay``, the batch script prints it and exits
with a non-zero code. Anything else that escapes is a bug.
"""
from __future__ import annotations


class SneakyNetError(Exception):
    """A problem the user can fix; the message says what and how."""


class InputVolumeError(SneakyNetError):
    """The selected input is missing or is not a 3D CT volume."""


class ModelError(SneakyNetError):
    """The model bundle is missing, damaged or cannot run on the chosen device."""


class DependencyError(SneakyNetError):
    """PyTorch, SimpleITK or the sneakynet core package is not installed in Slicer's Python."""


class SegmentationCancelled(SneakyNetError):
    """The user cancelled the segmentation; the scene was left as it was."""


class ExportError(SneakyNetError):
    """Meshes or a segmentation file could not be written."""
