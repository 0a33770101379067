"""``sneakynet view``: the viewer page and its model over HTTP, for this computer or the local network.

Fixed routes and nothing else (no directory listing, no other file of the disk): ``/`` and
``/bones.html`` (the page, with the model by URL instead of embedded) and ``/bones.glb`` (the
plain export). The served page loads the plain GLB, not the compressed copy ``bones.html``
embeds: Android's Scene Viewer fetches the model by its URL itself, and plain glTF is what
every AR viewer reads; on a local network its size does not matter. Phones reach the server
over the local network (``lan=True``).
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sneakynet.viewer.page import load_glb, page_html, viewer_meta

DEFAULT_PORT = 8765


def find_glb(target: str | os.PathLike) -> Path:
    """The GLB to show: ``target`` itself, or ``bones.glb`` / the only ``*.glb`` in a folder."""
    target = Path(target)
    if target.is_file():
        if target.suffix.lower() != ".glb":
            raise ValueError(f"{target}: not a .glb file (export one with: sneakynet export-meshes LABELS OUTDIR)")
        return target
    if not target.is_dir():
        raise ValueError(f"{target}: no such file or folder")
    if (target / "bones.glb").is_file():
        return target / "bones.glb"
    found = sorted(target.glob("*.glb"))
    if len(found) != 1:
        raise ValueError(f"{target}: holds {len(found)} .glb files; name the one to show")
    return found[0]


@dataclass
class Site:
    """What the server answers: route -> (content type, bytes)."""

    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    @classmethod
    def for_glb(cls, glb: Path) -> "Site":
        gltf, blob = load_glb(glb)
        meta = viewer_meta(gltf, blob)
        meta["glb_url"] = "bones.glb"
        page = page_html(meta, None, title=f"SneakyNet bones: {meta['source'] or glb.name}").encode("utf-8")
        return cls({
            "/": ("text/html; charset=utf-8", page),
            "/bones.html": ("text/html; charset=utf-8", page),
            "/bones.glb": ("model/gltf-binary", glb.read_bytes()),
        })


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            route = site.routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_error(404, "not found")
                return
            content_type, data = route
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
            pass

    return Handler


def lan_address() -> str:
    """This computer's address on the local network (no packet is sent), or 127.0.0.1 if none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))  # UDP connect only picks the outgoing interface
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


class ViewerServer:
    """A running viewer server (in a background thread); ``url`` to open, ``stop()`` to end it."""

    def __init__(self, target: str | os.PathLike, lan: bool = False, port: int = DEFAULT_PORT) -> None:
        self.glb = find_glb(target)
        site = Site.for_glb(self.glb)
        self.httpd = ThreadingHTTPServer(("0.0.0.0" if lan else "127.0.0.1", port), _handler(site))
        self.httpd.daemon_threads = True
        host = lan_address() if lan else "127.0.0.1"
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="sneakynet-view", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and free the port (waits at most ``timeout`` seconds)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout)


def serve(target: str | os.PathLike, lan: bool = False, port: int = DEFAULT_PORT) -> ViewerServer:
    """Start serving ``target`` (a GLB or an export folder) in the background; see :class:`ViewerServer`.

    A Slicer "View in browser" button can call this and open ``server.url`` with Qt.
    """
    return ViewerServer(target, lan=lan, port=port)
