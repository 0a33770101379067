"""One bone segmentation in its own worker process, polled by the GUI (no Qt, no MRML here).

A torch crash, a CUDA error or the out-of-memory killer then ends the worker, not Slicer; Cancel
kills the worker at once instead of waiting for the current tile batch. This follows
SlicerMONAIAuto3DSeg (``MONAIAuto3DSeg.py``: the inference script in the module's ``Scripts/``
folder, started with ``PythonSlicer``, its output read by a thread, the process tree killed on
Cancel). What passes between the processes:

- the CT goes as an uncompressed ``.nrrd`` in a temporary folder, the labels come back the same way;
- the worker (``Scripts/segment_worker.py``) prints one line per event on stdout,
  ``@sneakynet {"progress": 0.4, "message": "..."}``, ``@sneakynet {"done": true, "device": "cpu"}``
  or ``@sneakynet {"error": "...", "kind": "ModelError"}``; every other line is its log;
- the worker watches Slicer's process id and exits when Slicer is gone, so a crashed Slicer
  leaves no orphan computing in the background.

:class:`WorkerProcessJob` has the interface of :class:`SneakyNetLib.job.SegmentationJob`
(``start``, ``poll``, ``cancel``, ``wait``, ``result``, ``error``, ``context``, ``device``), so
the logic and the widget treat both alike.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from . import errors
from .errors import SegmentationCancelled, SneakyNetError
from .job import CANCELLED, DONE, FAILED, PENDING, RUNNING, JobProgress

PROTOCOL_PREFIX = "@sneakynet "
WORKER_SCRIPT = Path(__file__).resolve().parent.parent / "Scripts" / "segment_worker.py"
LOG_TAIL_LINES = 20


def pythonExecutable() -> str:
    """The Python that runs the worker: ``PythonSlicer`` inside the Slicer application (it sets up
    Slicer's library paths), else this interpreter (slicer-core, plain Python)."""
    try:
        import slicer

        inApplication = getattr(slicer, "app", None) is not None
    except ImportError:
        inApplication = False
    if inApplication:
        found = shutil.which("PythonSlicer")
        if not found:
            raise SneakyNetError("PythonSlicer was not found next to Slicer; cannot start the segmentation process.")
        return found
    return sys.executable


def encodeMessage(**fields: Any) -> str:
    """One protocol line (the worker's side)."""
    return PROTOCOL_PREFIX + json.dumps(fields)


def decodeMessage(line: str) -> dict | None:
    """The fields of a protocol line, or None for a log line."""
    if not line.startswith(PROTOCOL_PREFIX):
        return None
    try:
        fields = json.loads(line[len(PROTOCOL_PREFIX):])
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def errorFromWorker(kind: str, message: str) -> SneakyNetError:
    """The module's error class the worker named (any unknown name becomes :class:`SneakyNetError`)."""
    cls = getattr(errors, str(kind), SneakyNetError)
    if not (isinstance(cls, type) and issubclass(cls, SneakyNetError)):
        cls = SneakyNetError
    return cls(message)


def describeExit(returncode: int) -> str:
    """Why a worker ended without reporting: killed by a signal (POSIX: negative code) or an exit code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " - the system may have run out of memory" if -returncode == signal.SIGKILL else ""
        return f"it was killed ({name}{hint})"
    return f"it exited with code {returncode}"


def killProcessTree(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Kill the worker and everything it started (``PythonSlicer`` is a launcher with a child).

    POSIX: the worker leads its own process group (``start_new_session``), so one ``killpg`` ends
    them all. Windows: psutil's recursive children (as SlicerMONAIAuto3DSeg does), else ``taskkill /T``.
    """
    if process.poll() is None:
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                _killTreeWindows(process.pid)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.kill()
        except OSError:
            pass
    process.wait(timeout)


def _killTreeWindows(pid: int) -> None:
    try:
        import psutil
    except ImportError:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


class WorkerProcessJob(JobProgress):
    """Predict bone labels for one SimpleITK CT image in a worker process.

    ``workerArguments``: the worker script's model options (``--model``, ``--device``, ...).
    ``command``: the program to run instead of ``[python, segment_worker.py]`` (tests use it to
    stand in a worker that crashes); the job always appends ``--input``, ``--output`` and
    ``--parent-pid``. ``onProgress(fraction, message)`` is called from the reader thread.
    """

    def __init__(self, image: sitk.Image, workerArguments: list[str], context: Any = None,
                 command: list[str] | None = None, onProgress: Callable[[float, str], None] | None = None) -> None:
        self.image = image
        self.context = context
        self._arguments = list(workerArguments)
        self._command = list(command) if command else None
        self._onProgress = onProgress
        self._lock = threading.Lock()
        self._state, self._fraction, self._message = PENDING, 0.0, "waiting"
        self._start = self._end = None
        self._cancelRequested = False
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._report: dict = {}
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self.result: sitk.Image | None = None
        self.error: SneakyNetError | None = None
        self.device = ""

    # ----------------------------------------------------------------- control
    def start(self) -> "WorkerProcessJob":
        """Write the CT to a temporary folder and start the worker; returns at once."""
        if self._state != PENDING:
            raise SneakyNetError("this segmentation job was already started")
        self._folder = Path(tempfile.mkdtemp(prefix="sneakynet-"))
        inputPath, outputPath = self._folder / "input.nrrd", self._folder / "labels.nrrd"
        try:
            sitk.WriteImage(self.image, str(inputPath), False)  # uncompressed: fast to write and read
            command = (self._command or [pythonExecutable(), str(WORKER_SCRIPT)]) + self._arguments + [
                "--input", str(inputPath), "--output", str(outputPath), "--parent-pid", str(os.getpid())]
            self.process = subprocess.Popen(command, **_popenOptions())
        except (OSError, RuntimeError, SneakyNetError) as exc:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise SneakyNetError(f"The segmentation process could not be started: {exc}") from None
        with self._lock:
            self._state, self._start, self._message = RUNNING, time.monotonic(), "starting the segmentation process"
        self._thread = threading.Thread(target=self._readOutput, args=(outputPath,),
                                        name="SneakyNet worker output", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Start and block until the worker ended (scripts)."""
        self.start()
        self.wait()

    def cancel(self) -> None:
        """Kill the worker now (no waiting for a tile batch); the job ends as ``cancelled``."""
        with self._lock:
            self._cancelRequested = True
            if self._state == PENDING:
                self._state, self.error = CANCELLED, SegmentationCancelled("Segmentation cancelled.")
                return
        if self.process is not None:
            killProcessTree(self.process)
        if self._thread is not None:
            self._thread.join(5.0)


    @property
    def cancelRequested(self) -> bool:
        return self._cancelRequested

    # ----------------------------------------------------------------- the reader thread
    def _readOutput(self, outputPath: Path) -> None:
        """Follow the worker's stdout until it closes, then settle the job's state."""
        try:
            for line in self.process.stdout:
                self._handleLine(line.rstrip("\r\n"))
            self.process.wait()
            self._finish(outputPath)
        except BaseException as exc:  # noqa: BLE001 - the GUI must always see the job end
            self._settle(FAILED, SneakyNetError(f"Reading the segmentation result failed: {exc}"))
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def _handleLine(self, line: str) -> None:
        fields = decodeMessage(line)
        if fields is None:
            if line.strip():
                self._tail.append(line)
                logging.info("SneakyNet worker: %s", line)
            return
        if "progress" in fields:
            with self._lock:
                self._fraction = max(self._fraction, min(1.0, float(fields["progress"])))
                self._message = str(fields.get("message", self._message))
                fraction, message = self._fraction, self._message
            if self._onProgress is not None:
                self._onProgress(fraction, message)
        else:
            self._report.update(fields)

    def _finish(self, outputPath: Path) -> None:
        code = self.process.returncode
        if self._cancelRequested:
            self._settle(CANCELLED, SegmentationCancelled("Segmentation cancelled."))
        elif "error" in self._report:
            self._settle(FAILED, errorFromWorker(self._report.get("kind", ""), str(self._report["error"])))
        elif code == 0 and self._report.get("done") and outputPath.is_file():
            self.result = sitk.ReadImage(str(outputPath))
            self.device = str(self._report.get("device", ""))
            self._settle(DONE, None)
        else:
            last = f" Its last output: {self._tail[-1]}" if self._tail else ""
            self._settle(FAILED, SneakyNetError(
                f"The segmentation process stopped unexpectedly: {describeExit(code)}. Slicer and the scene "
                f"are unaffected; try the CPU, 'fast' quality or a smaller CT.{last}"))

    def _settle(self, state: str, error: SneakyNetError | None) -> None:
        with self._lock:
            self._state, self.error, self._end = state, error, time.monotonic()
            if state == DONE:
                self._fraction, self._message = 1.0, "prediction finished"
            else:
                self._message = str(error)


def _popenOptions() -> dict:
    """Text-mode pipes (stderr into stdout), and no console window / own process group per OS."""
    options = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                   encoding="utf-8", errors="replace", bufsize=1)
    if os.name == "posix":
        options["start_new_session"] = True
    else:
        options["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return options
