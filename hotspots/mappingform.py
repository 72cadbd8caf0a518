"""Mappings made by picking columns instead of writing TOML: suggest a mapping for an
export's columns and category values, write it as the TOML that
:func:`hotspots.ingest.read_mapping` reads, and keep it per source next to the store, so
next week's export of the same system loads in one step.

File I/O (saving and listing mappings) lives in the last two functions.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from pathlib import Path

import pandas as pd

from . import store
from .config import Config
from .ingest import Mapping, check_mapping
from .schema import MAPPING_FIELDS

#: Words in an export's column names that suggest each mapping field (lower case; the
#: first column whose name holds one of them is suggested).
_HINTS = {
    "reference": ("ref", "id", "number", "case"),
    "datetime": ("datetime", "date/time", "date time", "reported", "received", "created"),
    "date": ("date", "day"),
    "time": ("time",),
    "category": ("type", "category", "class", "nature"),
    "latitude": ("lat",),
    "longitude": ("lon", "lng"),
    "easting": ("easting", "east", "x coord"),
    "northing": ("northing", "north", "y coord"),
    "location": ("address", "location", "street", "where"),
    "caller": ("caller", "victim", "reporter", "customer"),
    "description": ("detail", "description", "notes", "text", "comment"),
    "count": ("count", "qty", "quantity", "canister", "number of"),
    "extract_date": ("export", "extract"),
}


def suggest_columns(columns: list[str]) -> dict[str, str]:
    """A first guess of the mapping field -> export column, by the columns' names; each
    column is suggested for one field at most. Coordinates: latitude/longitude or
    easting/northing, whichever pair is complete (lat/lon first); the date: one column
    holding both date and time, else a date and a time column."""
    lower = {c: c.casefold().strip() for c in columns}
    used: set[str] = set()
    out: dict[str, str] = {}
    for field in MAPPING_FIELDS:
        for c in columns:
            if c not in used and any(h in lower[c] for h in _HINTS[field]):
                if field == "date" and "time" in lower[c]:
                    continue  # a date-and-time column is the datetime
                out[field] = c
                used.add(c)
                break
    if "datetime" in out:
        for f in ("date", "time"):
            if f in out and out[f] != out["datetime"]:
                used.discard(out.pop(f))
    pairs = (("latitude", "longitude"), ("easting", "northing"))
    whole = next((p for p in pairs if all(f in out for f in p)), None)
    for pair in pairs:
        if pair != whole:
            for f in pair:
                out.pop(f, None)
    return out


def category_values(text: pd.Series, *, limit: int = 50) -> list[str]:
    """The distinct non-empty values of an export's category column, the commonest first
    (ties by value), at most ``limit``."""
    counts = text.astype(str).str.strip().loc[lambda s: s != ""].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [v for v, _ in ranked[:limit]]


def suggest_category(value: str, config: Config) -> str | None:
    """The taxonomy key an export value already reads as (its key or label, any case), as
    the ingest's own lookup would find it; None when it needs mapping."""
    v = value.strip().casefold()
    for key, cat in config.categories.items():
        if v in (key.casefold(), cat.label.casefold()):
            return key
    return None


def make_mapping(*, source: str, columns: dict[str, str | None],
                 categories: dict[str, str | None], config: Config,
                 date_format: str | None = None, sheet: str | None = None) -> Mapping:
    """A mapping from a form's choices (None or '' = not mapped), checked.

    Raises
    ------
    ConfigError
        a required field is not chosen, a category key is unknown, a date format cannot
        read a date back (:func:`hotspots.ingest.check_mapping`'s messages).
    """
    mapping = Mapping(source=source.strip(), columns={f: c for f, c in columns.items() if c},
                      categories={v: k for v, k in categories.items() if k},
                      date_format=(date_format or "").strip() or None,
                      sheet=(sheet or "").strip() or None, path="the mapping form")
    check_mapping(mapping, config)
    return mapping


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def mapping_toml(mapping: Mapping) -> str:
    """The mapping as TOML text that :func:`hotspots.ingest.read_mapping` reads back to
    the same mapping (source, sheet, date format, columns and categories)."""
    lines = ["# written by the hotspots mapping form", f"source = {_string(mapping.source)}"]
    if mapping.sheet:
        lines.append(f"sheet = {_string(mapping.sheet)}")
    if mapping.date_format:
        lines.append(f"date_format = {_string(mapping.date_format)}")
    lines += ["", "[columns]"]
    lines += [f"{f} = {_string(c)}" for f, c in mapping.columns.items()]
    if mapping.categories:
        lines += ["", "[categories]  # export value = taxonomy key"]
        lines += [f"{_string(v)} = {_string(k)}" for v, k in mapping.categories.items()]
    return "\n".join(lines) + "\n"


def mapping_dir(store_file: str | Path | None = None) -> Path:
    """Where saved mappings are kept: ``mappings/`` next to a store file (``data/mappings``
    for a server store)."""
    return store.rejected_dir(store_file).with_name("mappings")


def _file_name(source: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", source).strip("-")[:60] or "mapping"
    if slug != source:  # two sources must not share a file
        slug += "-" + hashlib.sha256(source.encode()).hexdigest()[:8]
    return slug + ".toml"


def save_mapping(mapping: Mapping, folder: str | Path) -> Path:
    """Write the mapping as ``<folder>/<source>.toml`` (replacing that source's earlier
    one in one step, so a reader never sees half a file); return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _file_name(mapping.source)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(mapping_toml(mapping))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def saved_mappings(folder: str | Path) -> dict[str, Path]:
    """The saved mappings by source, in order of source (files that do not read as a
    mapping with a source are left out)."""
    found = {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            source = tomllib.loads(path.read_text("utf-8")).get("source")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(source, str) and source:
            found[source] = path
    return dict(sorted(found.items()))
