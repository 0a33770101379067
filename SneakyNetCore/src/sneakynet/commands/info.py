"""``sneakynet info``: the label table, the network presets and their parameter counts."""
from __future__ import annotations

import argparse

from sneakynet.commands.argtypes import int_in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", action="store_true", help="list all 125 bones with id, group and colour")
    parser.add_argument("--forward", type=int_in(0, 256), metavar="S", default=0,
                        help="also run one forward pass of the lite D (K=1) network on an S^3 patch on the CPU")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from sneakynet.labels import load_label_table
    from sneakynet.models import PAPER_PARAMS, build_network, count_parameters, preset

    table = load_label_table()
    print(f"label table v{table.version}: {len(table)} bones in groups "
          + ", ".join(f"{g} ({len(ids)})" for g, ids in table.groups().items()))
    if args.labels:
        for b in table:
            print(f"{b.id:4d}  {b.name:28s} {b.group:12s} {b.side:6s} rgb{b.color}")
    print("\npreset  config            parameters   paper Table 1")
    rows = [("paper", v, k) for v, k in PAPER_PARAMS if v != "slim"] + [("slim", "A", 0)]
    rows += [("lite", "A", 0)] + [("lite", "D", k) for k in (1, 2, 3)]
    for name, v, k in rows:
        size = 128 if name == "slim" else 64
        with torch.device("meta"):
            config = preset(name, v, k, size)
            n = count_parameters(build_network(config))
        ref = PAPER_PARAMS.get(("slim", 0) if name == "slim" else (v, k)) if name != "lite" else None
        print(f"{name:7s} {config.describe():17s} {n / 1e6:8.1f} M   " + (f"{ref / 1e6:.0f} M" if ref else "-"))
    if args.forward:
        config = preset("lite", "D", 1, args.forward)
        model = build_network(config).eval()
        x = torch.randn(1, 1, *(args.forward,) * 3)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model(x, [x])
        print(f"\nforward of {config.describe()} on the CPU: output {tuple(out.target.shape)} "
              f"in {time.perf_counter() - t0:.2f} s")
    return 0
