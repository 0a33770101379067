"""argparse ``type=`` checkers for numeric options: a value out of range is a usage error (exit 2).

Every numeric option of every command goes through one of these, so ``--batch-size -1`` or
``--overlap 7`` stops with a message naming the option's allowed range instead of running.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``lo..hi`` (``hi`` None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_range(lo, hi)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """A finite number in the interval from ``lo`` to ``hi`` (ends open where asked)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = (not math.isfinite(value) or value < lo or (lo_open and value == lo)
               or (hi is not None and (value > hi or (hi_open and value == hi))))
        if bad:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            upper = "inf)" if hi is None else f"{hi:g}{right}"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {upper}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _range(lo: int, hi: int | None) -> str:
    return f">= {lo}" if hi is None else f"in {lo}..{hi}"
