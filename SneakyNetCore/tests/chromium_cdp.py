"""Headless Debian Chromium driven over the DevTools protocol (websocket-client), for the viewer tests.

Why this route: one browser process serves every check (page load, clicks, console, network,
screenshots) in a few seconds, with only a small pure-Python websocket client; no Node.js or
browser download. Chromium runs with SwiftShader (software WebGL) and no flag that loosens
file access. Every wait is bounded.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-gpu-sandbox", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    """Path of Debian's chromium (or another Chromium/Chrome on PATH), else None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page; ``events`` keeps console, exception, log and network events."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1000, 700), timeout: float = 30.0) -> None:
        import websocket

        exe = find_chromium()
        if exe is None:
            raise RuntimeError("chromium not found")
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port(timeout)
        deadline = time.monotonic() + timeout
        while True:
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
            pages = [p for p in pages if p.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False)

    def _devtools_port(self, timeout: float) -> int:
        found: list[int] = []

        def read() -> None:
            for line in self.proc.stderr:
                if "DevTools listening on ws://" in line:
                    found.append(int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
                    break
            # keep draining so Chromium never blocks on a full pipe
            for _ in self.proc.stderr:
                pass

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        if not found:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        return found[0]

    def call(self, method: str, timeout: float = 60.0, **params: object) -> dict:
        """Send one DevTools command and return its result; events seen meanwhile go to ``events``."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def evaluate(self, expression: str, timeout: float = 60.0) -> object:
        """Value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, offline: bool = False) -> None:
        """Navigate (with the network switched off if ``offline``) and forget earlier events."""
        self.call("Network.emulateNetworkConditions", offline=offline, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        """The first event ``method`` since the last ``open`` (waits at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event["method"] == method:
                    return event
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} in {timeout} s")

    def screenshot(self) -> np.ndarray:
        """The page as an (H, W, 3) float array in 0..1."""
        import matplotlib.image

        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries since the last ``open``."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(str(p.get("exceptionDetails", {}).get("exception", {}).get("description", p)))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since the last ``open``."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        """End the browser (bounded)."""
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing a socket that may already be gone
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


WAIT_DRAWN = """(async () => {
  const v = window.sneakynetViewer;
  if (!v) throw new Error("no viewer on this page");
  await Promise.race([v.loaded, new Promise((_, no) => setTimeout(() => no(new Error("model not loaded in 40 s")), 40000))]);
  const mv = document.getElementById("sn-model");
  for (let i = 0; i < 200 && !mv.modelIsVisible; i++) await new Promise(r => setTimeout(r, 50));
  for (let i = 0; i < 6; i++) await new Promise(r => requestAnimationFrame(r));
  return {visible: mv.modelIsVisible, errors: v.errors, status: document.getElementById("sn-status").dataset.state};
})()"""

NEXT_FRAMES = "(async () => { for (let i = 0; i < 6; i++) await new Promise(r => requestAnimationFrame(r)); return 1; })()"
