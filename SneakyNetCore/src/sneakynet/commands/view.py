"""``sneakynet view``: serve an export's viewer page on this computer or, with ``--lan``, to phones and headsets."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sneakynet.console import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sneakynet view``."""
    parser.add_argument("target", type=Path, metavar="FOLDER_OR_GLB",
                        help="an export-meshes folder (its bones.glb) or a .glb file")
    parser.add_argument("--lan", action="store_true",
                        help="also serve on the local network and print the URL as a QR code for a phone")
    parser.add_argument("--port", type=int, default=8765, help="TCP port, 0 = any free one (default: %(default)s)")
    parser.add_argument("--open", action="store_true", help="open the page in this computer's browser")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; bad input raises UserError (exit code 2)."""
    from sneakynet.viewer.server import serve

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    try:
        server = serve(args.target, lan=args.lan, port=args.port)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on port {args.port}: {exc.strerror or exc}") from None
    print(f"showing {server.glb}")
    print(f"open {server.url}", flush=True)
    if args.lan:
        _print_qr(server.url)
        print("anyone on this network can open it while it runs; use a trusted network")
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    print("Ctrl-C stops the server", flush=True)
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.stop()
    return 0


def _print_qr(url: str) -> None:
    """The URL as a QR code in the terminal (segno), for a phone's camera."""
    import segno

    segno.make(url, error="m").terminal(compact=True, border=2)
