"""Derived files kept in the geodata cache's ``derived/`` folder: built once, read back by
the next process (dissolved layers, unions, simplified web layers, forecast grids).

One rule for all of them: a file that cannot be read is built again, one that cannot be
written is not kept (both logged), and the cache folder itself is never created (a
command run from another folder must not leave a ``geodata/cache`` behind). Each writer
writes a file of its own (process and thread) and renames it into place.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import shapely

log = logging.getLogger(__name__)
T = TypeVar("T")


def kept(path: Path, build: Callable[[], T], *, read: Callable[[Path], T],
         write: Callable[[T, Path], object], what: str) -> T:
    """``read(path)`` when a process kept ``path`` before, else ``build()``, kept there by
    ``write(value, file)``. ``read`` raises OSError or ValueError (or a GEOS error) for a
    file it cannot use."""
    if path.is_file():
        try:
            return read(path)
        except (OSError, ValueError, shapely.errors.GEOSException) as exc:
            log.warning("%s %s unreadable (%s); building it again", what, path, exc)
    out = build()
    try:
        path.parent.mkdir(exist_ok=True)  # in the cache, never a new cache
        tmp = path.with_suffix(f".part-{os.getpid()}-{threading.get_ident()}")
        write(out, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("%s not kept in %s: %s", what, path.parent, exc)
    return out
