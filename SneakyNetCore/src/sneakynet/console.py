"""What the command-line commands share: the user-error exception and the progress bar."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class UserError(Exception):
    """A problem with the user's input (file, option); printed without a traceback, exit code 2."""


@contextmanager
def progress_bar(desc: str, disable: bool = False) -> Iterator[Callable[[float, str], None]]:
    """A tqdm percentage bar, yielded as the ``progress(fraction, message)`` callback the core takes."""
    from tqdm import tqdm

    with tqdm(total=100, unit="%", desc=desc, disable=disable,
              bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message, refresh=True)

        yield progress


__all__ = ["UserError", "progress_bar"]
