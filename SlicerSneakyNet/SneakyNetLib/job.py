"""One bone segmentation running in a thread of this process (no Qt, no MRML here).

The Slicer GUI runs predictions in a worker *process* (``worker.py``); this in-process job serves
scripts (``batch_segment.py`` is already a process of its own), tests with stand-in predictors,
and the worker script itself, which shares :func:`translateError`.

The worker only touches SimpleITK images and the predictor: the MRML scene is read before the
job starts (volume -> image) and written after it finished (image -> segmentation node), both
on the main thread, so a cancelled or failed job leaves the scene exactly as it was.

PyTorch releases the GIL inside its kernels, so Slicer's event loop stays responsive while a
``qt.QTimer`` calls :meth:`SegmentationJob.poll` a few times per second. Cancel is cooperative:
the predictor checks the :class:`CancelToken` between tile batches (well under a second).
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import SimpleITK as sitk

from .errors import InputVolumeError, ModelError, SegmentationCancelled, SneakyNetError

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class JobStatus:
    """A snapshot for the GUI: state, progress fraction 0..1, a status line, seconds so far."""

    state: str
    fraction: float
    message: str
    elapsed: float

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)


class JobProgress:
    """What both job kinds share: a thread that runs them, and a lock-protected progress snapshot
    (``_state``, ``_fraction``, ``_message``, ``_start``/``_end`` monotonic times)."""

    _thread: threading.Thread | None
    _lock: threading.Lock
    _state: str
    _fraction: float
    _message: str
    _start: float | None
    _end: float | None

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job's thread ends (or ``timeout`` seconds); return the status."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.poll()

    def poll(self) -> JobStatus:
        """Thread-safe snapshot of the progress."""
        with self._lock:
            elapsed = 0.0 if self._start is None else (self._end or time.monotonic()) - self._start
            return JobStatus(self._state, self._fraction, self._message, elapsed)


class SegmentationJob(JobProgress):
    """Predict bone labels for one SimpleITK CT image, synchronously (:meth:`run`) or in a thread (:meth:`start`).

    ``predictorFactory`` returns a ``sneakynet.infer.Predictor`` (it may load the model, which is
    why it runs in the worker too). ``context`` is whatever the caller needs to finish the job on
    the main thread (volume node id, options); the job does not look at it. ``cancelToken`` lets a
    script cancel a blocking run from another thread; ``onProgress(fraction, message)`` is called
    from the thread that runs the job (not the GUI thread when started with :meth:`start`).
    """

    def __init__(self, image: sitk.Image, predictorFactory: Callable[[], Any], context: Any = None,
                 cancelToken: Any = None, onProgress: Callable[[float, str], None] | None = None) -> None:
        from sneakynet.infer import CancelToken

        self.image = image
        self.context = context
        self._predictorFactory = predictorFactory
        self._token = cancelToken if cancelToken is not None else CancelToken()
        self._onProgress = onProgress
        self._lock = threading.Lock()
        self._state, self._fraction, self._message = PENDING, 0.0, "waiting"
        self._start = self._end = None
        self._thread: threading.Thread | None = None
        self.result: sitk.Image | None = None
        self.error: SneakyNetError | None = None
        self.predictor = None

    # ----------------------------------------------------------------- control
    def start(self) -> "SegmentationJob":
        """Run in a daemon worker thread; returns at once. Poll with :meth:`poll`."""
        if self._state != PENDING:
            raise SneakyNetError("this segmentation job was already started")
        self._thread = threading.Thread(target=self.run, name="SneakyNet segmentation", daemon=True)
        self._state = RUNNING
        self._thread.start()
        return self

    def run(self) -> None:
        """Do the work in the calling thread (scripts, tests, the worker thread)."""
        with self._lock:
            self._state, self._start = RUNNING, time.monotonic()
        try:
            self._token_check()
            self._report(0.0, "loading the model")
            self.predictor = self._predictorFactory()
            self._token_check()
            labels = self.predictor.predict_image(self.image, progress=self._report, cancel=self._token)
            self._token_check()
            with self._lock:
                self.result, self._state = labels, DONE
                self._fraction, self._message = 1.0, "prediction finished"
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a state + message for the GUI
            error = translateError(exc)
            with self._lock:
                self.error = error
                self._state = CANCELLED if isinstance(error, SegmentationCancelled) else FAILED
                self._message = str(error)
            if self._state == FAILED and not isinstance(exc, SneakyNetError):
                logging.error("SneakyNet segmentation failed:\n%s", traceback.format_exc())
        finally:
            self._end = time.monotonic()

    def cancel(self) -> None:
        """Ask the worker to stop at the next tile batch; the job ends as ``cancelled``."""
        self._token.cancel()
        with self._lock:
            if self._state == PENDING:
                self._state, self.error = CANCELLED, SegmentationCancelled("Segmentation cancelled.")

    @property
    def cancelRequested(self) -> bool:
        return self._token.cancelled

    @property
    def device(self) -> str:
        """The device the prediction ran on ('' before the model was loaded)."""
        predictor = self.predictor
        return str(getattr(predictor, "device", "") or getattr(getattr(predictor, "stats", None), "device", ""))

    # ----------------------------------------------------------------- internals
    def _report(self, fraction: float, message: str) -> None:
        with self._lock:
            self._fraction = max(0.0, min(1.0, float(fraction)))
            self._message = message
        if self._onProgress is not None:
            self._onProgress(self._fraction, message)

    def _token_check(self) -> None:
        if self._token.cancelled:
            raise SegmentationCancelled("Segmentation cancelled.")


def translateError(exc: BaseException) -> SneakyNetError:
    """Map core exceptions to the module's user-facing errors (message kept, no traceback)."""
    from sneakynet.infer import Cancelled

    if isinstance(exc, SneakyNetError):
        return exc
    if isinstance(exc, Cancelled):
        return SegmentationCancelled("Segmentation cancelled.")
    try:
        from sneakynet.bundle import BundleError
    except ImportError:  # pragma: no cover - core without bundles
        BundleError = ()  # type: ignore[assignment]
    try:
        from sneakynet.geometry import InputImageError
    except ImportError:  # pragma: no cover
        InputImageError = ()  # type: ignore[assignment]
    from sneakynet.io import ImageReadError

    if isinstance(exc, ImageReadError):
        return InputVolumeError(str(exc))
    if BundleError and isinstance(exc, BundleError):
        return ModelError(f"The model bundle cannot be used: {exc}")
    if isinstance(exc, FileNotFoundError):
        return ModelError(f"The model is missing: {exc}")
    if InputImageError and isinstance(exc, InputImageError):
        return InputVolumeError(str(exc))
    if isinstance(exc, MemoryError):
        return SneakyNetError("Out of memory while segmenting. Choose 'fast' quality, the CPU, or crop the CT.")
    if type(exc).__name__ == "OutOfMemoryError":
        return SneakyNetError(f"The GPU ran out of memory ({exc}). Choose the CPU or 'fast' quality.")
    return SneakyNetError(f"Segmentation failed: {type(exc).__name__}: {exc}")
