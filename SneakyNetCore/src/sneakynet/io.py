"""Reading and writing medical images and JSON with clear errors and verified, atomic writes.

All images are SimpleITK images in ITK's LPS world coordinates (millimetres).

Every output goes through one publisher: :func:`atomic_path` (a file) or :func:`atomic_folder`
(a folder). Both write under a hidden temporary name beside the target (``.<name>.sntmp-<pid>-…``),
check what was written (``verify``), and only then rename it onto the target, so an existing
result is never replaced by a damaged one and a failed write leaves nothing behind. Temporaries
of a killed process are removed by the next write to the same folder
(:func:`remove_stale_temporaries`). Failures are ``OSError`` subclasses naming the path.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import SimpleITK as sitk

# every suffix we recognise as one image file (``.nii.gz`` and ``.seg.nrrd`` count as one suffix)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd")
# those that can hold a CT volume: a ``.seg.nrrd`` is a Slicer segmentation, never a CT input
CT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
TEMP_MARK = ".sntmp-"  # in the names of our temporary files and folders
OLD_MARK = ".snold-"  # a replaced folder, kept until its successor is in place
_GZIP_BLOCK = 1 << 24
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # no '-' in it
FOREIGN_STALE_SECONDS = 24 * 3600  # a temporary of another machine (shared disk) is stale after a day


class ImageReadError(ValueError):
    """An input image could not be read or is not what was expected; the message names the file."""


class OutputWriteError(OSError):
    """A written file did not read back as written (full disk, failing device); nothing was replaced."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(errno.EIO, f"{problem}; nothing was replaced (is the disk full?)", str(path))
        self.problem = problem


def image_suffix(path: str | os.PathLike) -> str:
    """The full image suffix of ``path`` (``.nii.gz`` and ``.seg.nrrd`` count as one)."""
    name = Path(path).name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return Path(path).suffix.lower()


def is_ct_file(path: str | os.PathLike) -> bool:
    """True for a file name that can hold a CT volume (not a ``.seg.nrrd`` segmentation, not hidden)."""
    return not Path(path).name.startswith(".") and image_suffix(path) in CT_SUFFIXES


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same existing file or folder (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


# ----------------------------------------------------------------------------------------------
# reading


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
    """Read a NIfTI/NRRD/MHA file or a DICOM series folder as a SimpleITK image.

    Compressed files are checked end to end first (ITK reads a truncated ``.gz`` as zeros without
    an error), and NIfTI files for NaN/Inf as stored (ITK's reader turns them into 0).
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: file or folder does not exist")
    if p.is_dir():
        return read_dicom_series(p, series_id)
    check_file_integrity(p)
    try:
        return sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ImageReadError(f"{p}: not a readable image ({_first_line(exc)})") from None


def read_volume(path: str | os.PathLike, problem: str) -> sitk.Image:
    """:func:`read_image`, refused with ``"<path>: <problem>"`` unless it is a 3-D scalar image (a CT
    or a label map: not a 2-D slice, a time series or an RGB volume)."""
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(f"{path}: {problem}")
    return image


def check_file_integrity(path: Path) -> None:
    """Raise :class:`ImageReadError` for a truncated or corrupt gzip stream, a NIfTI file shorter
    than its header says, or non-finite values stored in a floating-point NIfTI."""
    name = path.name.lower()
    if name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                while f.read(_GZIP_BLOCK):
                    pass
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise ImageReadError(f"{path}: not a readable image: compressed data is truncated or corrupt ({exc}); "
                                 "the file is damaged or was not copied completely") from None
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path)


def _check_nifti(path: Path) -> None:
    """NIfTI-specific checks with nibabel: the data fits the file, floating-point data is finite."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        dtype = img.header.get_data_dtype()
        if path.name.lower().endswith(".nii"):
            needed = int(img.header.get_data_offset()) + int(np.prod(img.shape)) * dtype.itemsize
            if path.stat().st_size < needed:
                raise ImageReadError(f"{path}: not a readable image: file is truncated ({path.stat().st_size} of {needed} bytes)")
        if dtype.kind != "f":
            return
        proxy = img.dataobj
        depth = img.shape[2] if len(img.shape) >= 3 else 1
        step = max(1, depth // 8)
        for z in range(0, depth, step):
            block = proxy[:, :, z:z + step] if len(img.shape) >= 3 else np.asanyarray(proxy)
            if not np.isfinite(block).all():
                raise ImageReadError(f"{path}: holds NaN or infinite values (ITK would read them as 0); "
                                     "fix the file or replace them explicitly")
    except ImageReadError:
        raise
    except Exception as exc:  # nibabel's header and data errors have no common base class
        raise ImageReadError(f"{path}: not a readable image: not a valid NIfTI file ({_first_line(exc)})") from None


# ----------------------------------------------------------------------------------------------
# the publisher


def umask() -> int:
    """The process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (psutil where installed, else POSIX signal 0).

    Without psutil on Windows it answers True: there ``os.kill(pid, 0)`` would send Ctrl-C to it.
    """
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return psutil.pid_exists(pid)
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner() -> str:
    """``<pid>@<host code>``: who writes a temporary (in its name)."""
    return f"{os.getpid()}@{_HOST}"


def _writer_gone(path: Path, owner: str) -> bool:
    """True when the process that named a temporary ``owner`` no longer runs."""
    pid, _, host = owner.partition("@")
    if not pid.isdigit():
        return False
    if host and host != _HOST:  # another machine's process: judge by age only
        return time.time() - path.stat().st_mtime > FOREIGN_STALE_SECONDS
    return not pid_alive(int(pid))


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete our temporaries in ``folder`` (of target ``name`` only, if given) whose writer is dead.

    A replaced folder (``OLD_MARK``) whose successor never arrived is put back instead.
    """
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        mark = TEMP_MARK if TEMP_MARK in p.name else OLD_MARK if OLD_MARK in p.name else None
        if mark is None or not p.name.startswith("."):
            continue
        target_name, _, rest = p.name[1:].partition(mark)
        if (name is not None and target_name != name) or not _writer_gone(p, rest.split("-", 1)[0]):
            continue
        inner = p / target_name
        if mark == OLD_MARK and inner.exists() and not (folder / target_name).exists():
            os.replace(inner, folder / target_name)
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextmanager
def made_folders(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` and missing parents; if the block fails, remove what it created as far as
    it holds no files (so a failed command leaves no empty folders behind)."""
    folder = Path(folder)
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, so no folder can be made in it", str(p))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if missing:
            _remove_empty_tree(missing[-1])  # the top folder this call created
        raise


def _remove_empty_tree(top: Path) -> None:
    """Remove ``top`` and its sub-folders as far as they hold no files (bottom up)."""
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def _refuse_folder(target: Path) -> None:
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is an existing folder; give a file name", str(target))


@contextmanager
def atomic_path(path: str | os.PathLike, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds
    and ``verify(tmp)`` (if given) accepts what was written.

    An existing file at ``path`` is never half-overwritten or replaced by an unverified file, and
    a failed write leaves nothing (not even folders it created).
    """
    target = Path(path)
    _refuse_folder(target)
    with made_folders(target.parent):
        remove_stale_temporaries(target.parent, target.name)
        suffix = image_suffix(target) or target.suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}{_owner()}-", suffix=suffix,
                                   dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            try:
                (verify or verify_by_format)(tmp_path)
            except OutputWriteError as exc:  # name the output, not our temporary file
                problem = exc.problem.replace(f"{tmp_path}: ", "").replace(str(tmp_path), "the file")
                raise OutputWriteError(target, problem) from None
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp_path, 0o666 & ~umask())  # mkstemp makes 0600 files; give the usual permissions
            _refuse_folder(target)
            os.replace(tmp_path, target)
        except OSError as exc:
            raise _naming(exc, tmp_path, target) from None
        finally:
            tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike, merge: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; publish it as ``path`` if the block succeeds.

    Without ``merge`` an existing folder at ``path`` is replaced as a whole (moved aside, the new
    one renamed in, the old one deleted). With ``merge`` the staged entries are renamed into an
    existing folder one by one. A failed block leaves nothing behind.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(target))
    with made_folders(target.parent):
        remove_stale_temporaries(target.parent, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}{_owner()}-", dir=target.parent))
        try:
            os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; the result gets the usual permissions
            yield tmp
            if merge and target.is_dir():
                for entry in sorted(tmp.iterdir()):
                    os.replace(entry, target / entry.name)
            else:
                _swap_in(tmp, target)
        except OSError as exc:
            raise _naming(exc, tmp, target) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _naming(exc: OSError, tmp: Path, target: Path) -> OSError:
    """``exc`` naming the output instead of our temporary name (or naming it at all: a failed
    ``write()`` carries no file name)."""
    names = [None if n is None else str(n).replace(str(tmp), str(target)) for n in (exc.filename, exc.filename2)]
    if names[0] is None:
        names[0] = str(target)
    if names == [exc.filename, exc.filename2]:
        return exc
    if isinstance(exc, OutputWriteError):
        return OutputWriteError(names[0], exc.problem)
    return OSError(exc.errno, exc.strerror, names[0], None, names[1])


def verify_by_format(path: Path) -> None:
    """Read back what a file's format allows cheaply: PNG ends in IEND, a GLB's length field is its
    size, JSON/glTF parse, gzip streams are complete. Other formats pass (no cheap check)."""
    name = path.name.lower()
    problem = None
    if name.endswith(".png"):
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, path.stat().st_size - 8))
            complete = head == b"\x89PNG\r\n\x1a\n" and f.read().endswith(b"IEND\xaeB`\x82")
        problem = None if complete else "written PNG is incomplete"
    elif name.endswith(".glb"):
        with open(path, "rb") as f:
            head = f.read(12)
        if len(head) < 12 or head[:4] != b"glTF" or int.from_bytes(head[8:12], "little") != path.stat().st_size:
            problem = "written GLB is incomplete"
    elif name.endswith((".json", ".gltf")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problem = "written JSON does not parse"
    elif name.endswith(".gz"):
        try:
            check_file_integrity(path)
        except ImageReadError:
            problem = "written file is not a complete gzip stream"
    if problem:
        raise OutputWriteError(path, problem)


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` survives a kill until then."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}{_owner()}-", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# images and JSON


def verify_image_file(path: Path, expected: sitk.Image) -> None:
    """Raise :class:`OutputWriteError` unless ``path`` reads back as ``expected`` (header and voxels)."""
    try:
        check_file_integrity(path)
        got = sitk.ReadImage(str(path))
    except (ImageReadError, RuntimeError) as exc:
        raise OutputWriteError(path, f"written image does not read back ({_first_line(exc)})") from None
    if got.GetSize() != expected.GetSize() or got.GetPixelID() != expected.GetPixelID():
        raise OutputWriteError(path, f"written image reads back as {got.GetPixelIDTypeAsString()} "
                                     f"{got.GetSize()}, expected {expected.GetPixelIDTypeAsString()} {expected.GetSize()}")
    if not np.allclose(got.GetSpacing(), expected.GetSpacing(), rtol=1e-5) or \
            not np.allclose(got.GetOrigin(), expected.GetOrigin(), atol=1e-3):
        raise OutputWriteError(path, "written image reads back with another spacing or origin")
    a, b = sitk.GetArrayViewFromImage(got), sitk.GetArrayViewFromImage(expected)
    if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        raise OutputWriteError(path, "written image reads back with other voxel values")


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically, read it back and compare before it replaces anything."""
    with atomic_path(path, verify=lambda tmp: verify_image_file(tmp, image)) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), compress)
        except RuntimeError as exc:
            raise OutputWriteError(path, f"could not write the image ({_first_line(exc)})") from None
    return Path(path)


def read_json(path: str | os.PathLike, error: type[Exception] = ValueError, what: str = "file") -> Any:
    """Parse a JSON file; a missing, empty, non-UTF-8 or invalid file raises ``error`` naming it."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} is missing")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not a UTF-8 text file ({exc.reason})") from None
    if not text.strip():
        raise error(f"{p}: {what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{p}: not valid JSON ({exc})") from None


def json_safe(obj: Any) -> Any:
    """JSON-safe copy (for :func:`write_json`): NaN/inf become None, tuples lists, numpy scalars Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(data: Any, indent: int | None = 1) -> str:
    """JSON text of ``data`` (NaN/Inf refused: they are not JSON), ending in a newline."""
    return json.dumps(data, indent=indent, allow_nan=False) + "\n"


def write_json(data: Any, path: str | os.PathLike, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON atomically; the file is read back and compared before it replaces anything."""
    text = json_text(data, indent)

    def verify(tmp: Path) -> None:
        if tmp.read_text(encoding="utf-8") != text:
            raise OutputWriteError(path, f"written JSON reads back different ({tmp.stat().st_size} of "
                                         f"{len(text.encode())} bytes)")

    with atomic_path(path, verify=verify) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file/line location; the description is the last line.
    return lines[-1] if lines else exc.__class__.__name__
