"""The one guard of every cell the package writes to a table file: text that would run as a
formula when the file is opened in a spreadsheet gets a leading apostrophe.

Text from records (locations, labels, category names typed by a call handler) can begin
with ``=`` or ``@``. Every text cell and header of the CSV, XLSX, GeoJSON and GeoPackage
files written by :mod:`hotspots.export` goes through :func:`neutralise`.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re

import numpy as np
import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection"):
#: ``= + - @``, tab and carriage return, plus their full-width forms, which some
#: spreadsheet locales also accept as formula starts.
DANGEROUS_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r",
                                     "\uff1d", "\uff0b", "\uff0d", "\uff20")

#: A plain decimal number written as text (``-0.0739``, ``+44``, ``1e-3``): a spreadsheet
#: reads it as that number, never as a formula, so it is not guarded. ASCII digits only.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def neutralise(value):
    """Make a cell value safe to open in a spreadsheet: the one guard of every CSV and
    XLSX cell the package writes.

    Text whose first character (or first after leading spaces/newlines) is one of
    :data:`DANGEROUS_STARTS` (``=``, ``+``, ``-``, ``@``, tab, carriage return and their
    full-width forms) gets a leading apostrophe ``'``, as the OWASP CSV-injection
    guidance recommends: the spreadsheet then shows the text instead of evaluating it,
    the reader sees it was altered, and the original is the value without its first
    character. Text that is a plain decimal number (``-0.0739``, a negative longitude
    read from an export as text) is a number, not a formula, and stays as it is, so a
    file written here reads back with the same values. Anything that is not text
    (numbers, including negative ones, booleans, None) is returned unchanged.

    Parameters
    ----------
    value : any cell value.

    Returns
    -------
    The value, or ``"'" + value`` for dangerous text (always a plain ``str`` for text).
    """
    if not isinstance(value, str):
        return value
    text = str(value)
    if _NUMBER_TEXT.fullmatch(text):
        return text
    if text.startswith(DANGEROUS_STARTS) or text.lstrip(" \n").startswith(DANGEROUS_STARTS):
        return "'" + text
    return text


def to_cell(value):
    """A cell value as None, bool, int, float or neutralised str."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp):
        return value.isoformat()
    return neutralise(value if isinstance(value, str) else str(value))


