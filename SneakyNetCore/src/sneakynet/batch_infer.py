"""Batch inference across GPUs and machines: ``sneakynet segment`` folder mode under ``torchrun``.

    torchrun --nproc-per-node 4 -m sneakynet.cli segment CTS OUT                  # 4 GPUs, one machine
    torchrun --nnodes 2 --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
             --nproc-per-node 8 -m sneakynet.cli segment CTS OUT                  # 16 GPUs, 2 machines

Rank 0 lists the cases still to do (finished outputs are skipped, so a rerun resumes) and sends the
list to every rank as JSON over gloo; rank r takes entries r, r+W, r+2W, ... of that sorted list, so
each case is done by exactly one rank. Each rank runs on its own GPU (``cuda:LOCAL_RANK``) or on the
CPU. A failed case is reported and its rank goes on; at the end the ranks gather their results, rank
0 prints the summary, and every rank exits with the code of the worst failure on any rank (torchrun
itself then exits 1 and lists each rank's code). Several machines need one shared output folder.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from sneakynet.distributed import DistContext, broadcast_json, gather_json, init_distributed, shutdown_distributed

# a rank that finishes its share early waits at the final gather for the slowest one
GATHER_TIMEOUT_MIN = 24 * 60.0


def shard(todo: list, rank: int, world_size: int) -> list:
    """This rank's share of the to-do list: round-robin over the (sorted) list, each entry once."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    return todo[rank::world_size]


def run_sharded(args: argparse.Namespace) -> int:
    """``sneakynet segment`` as one rank of several; returns the worst exit code across all ranks."""
    from sneakynet.console import UserError

    try:
        ctx = init_distributed(args.device, backend="gloo", timeout_min=GATHER_TIMEOUT_MIN)
    except ValueError as exc:  # --device cuda without a GPU: the same on every rank
        raise UserError(str(exc)) from None
    try:
        plan = _plan(ctx, args)
        if plan["error"] is not None:  # bad input: rank 0 says so, the others exit quietly with its code
            if ctx.is_main:
                raise UserError(plan["error"])
            return plan["code"]
        todo = [(Path(c), Path(o)) for c, o in plan["todo"]]
        mine = shard(todo, ctx.rank, ctx.world_size)
        if ctx.is_main:
            print(f"sharing {len(todo)} case(s) over {ctx.world_size} ranks, round-robin")
        failures = _run_share(ctx, args, mine)
        results = gather_json(ctx, {"device": str(ctx.device), "cases": len(mine),
                                    "failures": [[str(c), code, msg] for c, code, msg in failures]})
        return _summary(ctx, results, len(todo))
    finally:
        shutdown_distributed()


def _plan(ctx: DistContext, args: argparse.Namespace) -> dict:
    """Rank 0's to-do list (or its input error) on every rank, so all ranks share out the same list."""
    from sneakynet.cli import EXIT_BAD_INPUT
    from sneakynet.console import UserError
    from sneakynet.commands.segment import _jobs

    plan: dict = {"todo": [], "error": None, "code": 0}
    if ctx.is_main:
        try:
            if args.dicom_seg is not None:
                raise UserError(f"{args.dicom_seg}: --dicom-seg writes one series; run it without torchrun")
            plan["todo"] = [[str(c), str(o)] for c, o in _jobs(args)]
        except UserError as exc:
            plan.update(error=str(exc), code=EXIT_BAD_INPUT)
        except OSError as exc:
            from sneakynet.cli import EXIT_ENVIRONMENT, describe_os_error

            plan.update(error=describe_os_error(exc), code=EXIT_ENVIRONMENT)
    return broadcast_json(ctx, plan)  # type: ignore[return-value]


def _run_share(ctx: DistContext, args: argparse.Namespace,
               mine: list[tuple[Path, Path]]) -> list[tuple[Path, int, str]]:
    """Segment this rank's cases on its device; a model that fails to load fails each of them.
    Only rank 0 shows progress bars and the model's notes; every rank prints one line per case."""
    from sneakynet.console import UserError
    from sneakynet.commands.segment import _failure, _load_predictor, _segment_cases

    if not mine:
        return []
    quiet = None if ctx.is_main else (lambda message: None)
    try:
        predictor = _load_predictor(args, device=str(ctx.device), log=quiet)
    except (UserError, OSError, MemoryError) as exc:
        code, message = _failure(exc)
        return [(case, code, message) for case, _output in mine]
    with open(os.devnull, "w") as devnull, \
            (contextlib.nullcontext() if ctx.is_main else contextlib.redirect_stderr(devnull)):
        return _segment_cases(predictor, mine, args)


def _summary(ctx: DistContext, results: list[dict], total: int) -> int:
    """Rank 0 prints what each rank did and every failure; all ranks return the worst exit code."""
    from sneakynet.commands.segment import _report_failures

    failures = [(Path(c), code, msg) for r in results for c, code, msg in r["failures"]]
    if not ctx.is_main:
        return max((code for _c, code, _m in failures), default=0)
    for rank, r in enumerate(results):
        print(f"rank {rank} ({r['device']}): {r['cases'] - len(r['failures'])} of {r['cases']} case(s) segmented")
    return _report_failures(failures, total)


__all__ = ["run_sharded", "shard"]
