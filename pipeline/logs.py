"""What kdaug writes while it works, for a person at a terminal and for a log file alike.

On a terminal: phase lines and tqdm progress bars. Anywhere else (a scheduler's log, a pipe, a
file): every line starts with its UTC time, and progress is a line every `KDAUG_PROGRESS_SECONDS`
(30 by default) and one at the end, never a `\\r` bar or an ANSI code, so a 10-minute run's log
stays a few lines long and says when each thing happened.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def stamp(message: str) -> str:
    """`message` prefixed with the UTC time when stderr is no terminal."""
    if on_terminal():
        return message
    return time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + message


def say(message: str) -> None:
    """One line of a phase on stderr (stdout keeps the summary)."""
    print(stamp(message), file=sys.stderr, flush=True)


class LineProgress:
    """tqdm's `update`/`close`/`n`/`total` as timestamped lines: one every `every` seconds while work
    advances, and one at `close`."""

    disable = False

    def __init__(self, total: int | None, desc: str, unit: str = "it", every: float | None = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.every = every if every is not None else float(os.environ.get("KDAUG_PROGRESS_SECONDS", "30"))
        self._started = self._last = time.monotonic()
        self._closed, self._shown = False, -1
        self.postfix = ""

    def set_postfix(self, **values: object) -> None:
        """Figures shown after the count (tqdm's `set_postfix`), e.g. the loss."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if n and time.monotonic() - self._last >= self.every:
            self._line()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._shown:
                self._line()

    def _line(self) -> None:
        self._last, self._shown = time.monotonic(), self.n
        seconds = self._last - self._started
        of = f"/{self.total:,}" if self.total else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        say(f"{self.desc}: {self.n:,}{of} {self.unit}{share}{postfix}, {seconds:.0f} s")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", enabled: bool = True, **tqdm_options):
    """A tqdm bar on a terminal, else `LineProgress`; a disabled tqdm (which writes nothing) when not
    `enabled`."""
    from tqdm.auto import tqdm

    if not enabled:
        return tqdm(total=total, disable=True)
    if on_terminal():
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, **tqdm_options)
    return LineProgress(total, desc, unit)
