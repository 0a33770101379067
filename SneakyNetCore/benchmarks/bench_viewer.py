"""Benchmark: size of the GLB and of ``bones.html``, and the page's load time, with and without
meshopt compression and decimation, on a 2 mm phantom (all 125 bones).

Load time: headless Chromium (Debian) with SwiftShader, i.e. software WebGL on the CPU, from
navigation to model-viewer's ``load`` event and to the first frame that shows the model; a GPU
draws the first frame far faster, so these are upper bounds. Each page is loaded ``--repeat``
times in one browser; the median is printed.

    python SneakyNetCore/benchmarks/bench_viewer.py [--spacing 2] [--seed 0] [--repeat 3] [--out DIR]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the DevTools driver of the tests

DECIMATIONS = (0.0, 0.5, 0.8)


def page_load(browser, page: Path, repeat: int) -> tuple[float, float]:
    """Median seconds to model-viewer's ``load`` event and to the first frame with the model."""
    from chromium_cdp import WAIT_DRAWN

    loaded, drawn = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        browser.open(page.as_uri(), offline=True)
        state = browser.evaluate(WAIT_DRAWN, timeout=300)
        drawn.append(time.perf_counter() - start)
        if state["status"] != "loaded" or state["errors"]:
            raise RuntimeError(f"{page}: {state}")
        loaded.append(browser.evaluate("window.sneakynetViewer.timing.loaded") / 1000.0)
    return statistics.median(loaded), statistics.median(drawn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from chromium_cdp import Chromium

    from sneakynet.export import export_meshes
    from sneakynet.phantom import PhantomOptions, generate_case
    from sneakynet.viewer.page import write_viewer_page

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    _, labels = generate_case(args.seed, PhantomOptions(spacing=(args.spacing,) * 3))
    print(f"phantom seed {args.seed}, {args.spacing:g} mm, size {labels.GetSize()}; files in {out}")
    browser = Chromium(out / "profile", size=(1000, 700))
    rows = []
    try:
        for decimate in DECIMATIONS:
            folder = out / f"decimate_{decimate:g}"
            start = time.perf_counter()
            export_meshes(labels, folder, fmt="glb", decimate=decimate)
            export_s = time.perf_counter() - start
            write_viewer_page(folder / "bones.glb", folder / "plain.html", compress=False)
            for name, label in (("plain.html", "none"), ("bones.html", "meshopt")):
                html = folder / name
                loaded, drawn = page_load(browser, html, args.repeat)
                rows.append((decimate, label, (folder / "bones.glb").stat().st_size, html.stat().st_size,
                             export_s, loaded, drawn))
    finally:
        browser.close()
    print("\n| decimate | compression | bones.glb MB | bones.html MB | export s | load event s | first frame s |")
    print("|---|---|---|---|---|---|---|")
    for decimate, label, glb, html, export_s, loaded, drawn in rows:
        print(f"| {decimate:g} | {label} | {glb / 1e6:.1f} | {html / 1e6:.1f} | {export_s:.1f} | {loaded:.1f} | "
              f"{drawn:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
