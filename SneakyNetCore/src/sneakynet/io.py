"""Reading and writing medical images with clear errors and atomic writes.

All images are SimpleITK images in ITK's LPS world coordinates (millimetres).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import SimpleITK as sitk

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".mhd")


class ImageReadError(ValueError):
    """An input image could not be read or is not what was expected; the message names the file."""


def image_suffix(path: str | os.PathLike) -> str:
    """The full image suffix of ``path`` (``.nii.gz`` and ``.seg.nrrd`` count as one)."""
    name = Path(path).name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return Path(path).suffix.lower()


def read_dicom_series(folder: str | os.PathLike, series_id: str | None = None) -> sitk.Image:
    """Read one DICOM series from ``folder``; several series need an explicit ``series_id``."""
    folder = str(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise ImageReadError(f"{folder}: no DICOM series found in this folder")
    if series_id is None:
        if len(ids) > 1:
            listing = ", ".join(repr(i) for i in ids)
            raise ImageReadError(f"{folder}: holds {len(ids)} DICOM series ({listing}); choose one with --series")
        series_id = ids[0]
    elif series_id not in ids:
        raise ImageReadError(f"{folder}: no DICOM series {series_id!r} (found {list(ids)})")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_id)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(f"{folder}: DICOM series could not be read ({_first_line(exc)})") from None


def read_image(path: str | os.PathLike, series_id: str | None = None) -> sitk.Image:
    """Read a NIfTI/NRRD/MHA file or a DICOM series folder as a SimpleITK image."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: file or folder does not exist")
    if p.is_dir():
        return read_dicom_series(p, series_id)
    try:
        return sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ImageReadError(f"{p}: not a readable image ({_first_line(exc)})") from None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An existing file at ``path`` is never half-overwritten, and a failed write leaves nothing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(target) or target.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically (temporary file, then rename) and return the path."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return Path(path)


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file/line location; the description is the last line.
    return lines[-1] if lines else exc.__class__.__name__
