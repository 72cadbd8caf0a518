"""The store's own facts (the area it was built for: see :mod:`hotspots.area`) and the
results it keeps against its current data (backtests)."""

from __future__ import annotations

import json

from .tasking import _now


def read_meta(conn) -> dict[str, str]:
    """The store's key/value facts (the area it was built for: see hotspots.area)."""
    return dict(conn.query("SELECT key, value FROM meta"))


def write_meta(conn, **values: str) -> None:
    """Set some key/value facts of the store (others are kept)."""
    with conn.transaction():
        conn.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                         "value = excluded.value", [(k, str(v)) for k, v in values.items()])


def data_fingerprint(conn) -> str:
    """What the store's data are now, as the results kept against them know them: the last
    load and the number of incidents."""
    load, n = conn.query("SELECT (SELECT max(load_id) FROM loads), count(*) FROM incidents")[0]
    return f"load{load or 0}:n{n}"


def write_backtest(conn, selection: str, result: dict, *,
                   fingerprint: str | None = None, only: bool = False) -> None:
    """Keep a backtest result (or another result of the data: a forecast layer) for a
    selection (sources, categories, options) against the store's data as
    :func:`data_fingerprint` gave them (``fingerprint``, read before the data the result
    was made from; default: now); an earlier result for the same selection and data is
    replaced. ``only``: the selection's results for other data are deleted (a result
    that is only a saving of time, as a forecast layer is, need not outlive its data)."""
    fingerprint = fingerprint or data_fingerprint(conn)
    with conn.transaction():
        if only:
            conn.executemany("DELETE FROM backtests WHERE selection = ? AND fingerprint <> ?",
                             [(selection, fingerprint)])
        conn.executemany(
            "INSERT INTO backtests VALUES (?, ?, ?, ?) ON CONFLICT (selection, fingerprint) "
            "DO UPDATE SET created_at = excluded.created_at, result_json = excluded.result_json",
            [(selection, fingerprint, _now(),
              json.dumps(result, allow_nan=True))])


def read_backtest(conn, selection: str) -> dict | None:
    """The latest backtest result kept for a selection, or None when there is none for the
    store's current data (a load since then changes the data and so the answer)."""
    rows = conn.query("SELECT result_json FROM backtests WHERE selection = ? AND fingerprint "
                      "= ? ORDER BY created_at DESC LIMIT 1",
                      (selection, data_fingerprint(conn)))
    return json.loads(rows[0][0]) if rows else None
