"""A progress bar for long command-line work (ingest, backtest), drawn on standard error
only when a person is watching: both standard output and standard error are a terminal
and the command was not asked for ``--json``. Otherwise nothing is drawn."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Redraw at most this often, in seconds (the last step is always drawn).
REDRAW_S = 0.1


class Bar:
    """``bar(done, total, step)`` redraws one line: ``[#####     ] 3/10 step``, and ends
    the line when ``done == total``."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self._drawn = 0.0

    def __call__(self, done: int, total: int, step: str = "") -> None:
        now = time.monotonic()
        last = done >= total
        if not last and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        filled = round(self.width * done / total) if total else self.width
        end = "\n" if last else ""
        step = step if len(step) <= 60 else "..." + step[-57:]  # the step's end: its verb
        print(f"\r[{'#' * filled:<{self.width}}] {done}/{total} {step:<60}", end=end,
              file=self.stream, flush=True)


def watched(json: bool = False, *, stdout: TextIO | None = None,
            stderr: TextIO | None = None) -> bool:
    """Whether a person is watching: not ``json``, and both streams are terminals."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    return not json and _tty(out) and _tty(err)


def bar(json: bool = False, *, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> Bar | None:
    """A :class:`Bar` on standard error when :func:`watched`, else None (no progress)."""
    if not watched(json, stdout=stdout, stderr=stderr):
        return None
    return Bar(stderr or sys.stderr)


def _tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
