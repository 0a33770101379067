"""``sneakynet ablation``: the paper's A/B/C/D comparison (Table 2, Fig. 4) on phantoms, one command.

Generates the phantoms once, trains every config on the same fold-0 split with the same seed,
iterations and batch size, evaluates each on the same held-out test cases and writes a Markdown
results document. Rerunning the same command skips finished configs and resumes an interrupted one.
"""
from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

from sneakynet.commands.argtypes import float_in, int_in
from sneakynet.devices import DEVICE_HELP, parse_device
from sneakynet.train_options import parse_widths


def _configs(text: str) -> tuple[str, ...]:
    items = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    bad = [c for c in items if c not in ("A", "B", "C", "D")]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"configs must be a comma-separated subset of A,B,C,D, got {text!r}")
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="study folder: phantoms, one run per config, study.json (resumable)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="reuse this nnU-Net-style dataset folder instead of generating phantoms")
    parser.add_argument("--cases", type=int_in(5, 10000), default=12, help="phantom cases to generate (default 12)")
    parser.add_argument("--spacing", type=float_in(0.5, 20.0), default=4.0, metavar="MM",
                        help="phantom and model spacing in mm, isotropic (default 4)")
    parser.add_argument("--patch", type=int_in(32, 256), default=32, metavar="S", help="target patch size S (default 32)")
    parser.add_argument("--iterations", type=int_in(1), default=500, help="training iterations per config (default 500)")
    parser.add_argument("--batch-size", type=int_in(1, 1024), default=2)
    parser.add_argument("--configs", type=_configs, default=("A", "B", "C", "D"), metavar="A,B,C,D")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="phantom seeds, split and training seed (default 0)")
    parser.add_argument("--threads", type=int_in(0, 1024), default=1, help="torch threads for training (default 1)")
    parser.add_argument("--workers", type=int_in(0, 256), default=1, help="patch loader worker processes (default 1)")
    parser.add_argument("--widths", type=parse_widths, default=None, metavar="W0,..,W4",
                        help="override the lite preset's channel widths (tiny test networks)")
    parser.add_argument("--device", type=parse_device, default="cpu", metavar="DEVICE",
                        help=f"training and test device: {DEVICE_HELP} (default cpu)")
    parser.add_argument("--doc", type=Path, default=None,
                        help="results document (default <out>/ablation.md); PNGs go to the folder of the same "
                             "name without .md")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def canonical_command(args: argparse.Namespace) -> str:
    """The command line with every option spelled out (what the document records).

    Relative paths stay as typed; absolute ones are shown relative to the working folder or to the
    study folder's parent (else by name), so the committed document carries no machine path.
    """
    from sneakynet.ablation import portable_path

    def shown(path: Path) -> str:
        return str(path) if not path.is_absolute() else portable_path(path, Path.cwd(), args.out.resolve().parent)

    parts = ["sneakynet", "ablation", "--out", shown(args.out)]
    if args.dataset is not None:
        parts += ["--dataset", shown(args.dataset)]
    else:
        parts += ["--cases", str(args.cases)]
    parts += ["--spacing", f"{args.spacing:g}", "--patch", str(args.patch), "--iterations", str(args.iterations),
              "--batch-size", str(args.batch_size), "--configs", ",".join(args.configs), "--seed", str(args.seed),
              "--threads", str(args.threads), "--workers", str(args.workers), "--device", args.device]
    if args.widths is not None:
        parts += ["--widths", ",".join(str(w) for w in args.widths)]
    if args.doc is not None:
        parts += ["--doc", shown(args.doc)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from sneakynet.ablation import AblationError, AblationOptions, parse_table_rows, run_ablation
    from sneakynet.console import UserError

    if args.dataset is not None and not (args.dataset / "dataset.json").is_file():
        raise UserError(f"{args.dataset / 'dataset.json'}: not found; --dataset needs an nnU-Net-style dataset folder")
    try:
        options = AblationOptions(
            out=args.out, configs=args.configs, cases=args.cases, spacing=args.spacing, patch=args.patch,
            iterations=args.iterations, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
            workers=args.workers, widths=args.widths, dataset=args.dataset, doc=args.doc, device=args.device,
            command=canonical_command(args), progress=not args.quiet)
        doc = run_ablation(options)
    except AblationError as exc:
        raise UserError(str(exc)) from None
    rows = parse_table_rows(doc.read_text(encoding="utf-8"))
    for config, (median, plus, minus, nonzero) in rows.items():
        spread = "n/a (no class with DSC > 0)" if math.isnan(median) else f"{median:.2f} +{plus:.2f} -{minus:.2f}"
        print(f"{config}: median DSC {spread}, non-zero {nonzero:.1f} %")
    print(f"results document: {doc}")
    return 0
