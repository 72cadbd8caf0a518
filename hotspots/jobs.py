"""Jobs with I/O at the edges, shared by the CLI and the app: load exports into the
store, summarise a period to files, build the demo. Each returns a JSON-able dict."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path

from . import geography, store
from .config import Config
from .errors import HotspotsError
from .ingest import read_export, read_mapping, to_incidents
from .maps import area_map, save_map
from .summary import Period, area_summary, in_period, month_period

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest_files(paths: list[str | Path], *, config: Config, store_file: str | Path | None = None,
                 mapping: str | Path | None = None, cache: str | Path | None = None,
                 today: dt.date | None = None) -> dict:
    """Load exports into the store, one transaction per file.

    Returns ``{"store", "files": [...]}``; a file that cannot be read at all gets an
    ``error`` and the others still load. Rejected rows go to
    ``<store folder>/rejected/<file>.load<N>.rejected.csv``.
    """
    db = store.store_path(store_file)
    layers = geography.read_layers(config, cache=cache)
    area = geography.study_area(layers, config)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    conn = store.connect(db)
    files = []
    try:
        for p in map(Path, paths):
            entry = {"path": str(p), "format": None, "read": None, "accepted": None,
                     "rejected": None, "inserted": None, "replaced": None, "unchanged": None,
                     "unassigned": None, "lsoa_agreement": None, "reasons": {}}
            try:
                frame = read_export(p, sheet=mapping_obj.sheet if mapping_obj else None)
                res = to_incidents(frame, file=p.name, config=config, layers=layers, area=area,
                                   mapping=mapping_obj, today=today)
                written = store.write_load(conn, res, path=str(p), content_sha256=_sha256(p))
            except HotspotsError as exc:
                entry["error"] = str(exc)
                files.append(entry)
                continue
            inc = res.incidents
            entry.update({
                "format": res.format, "read": res.n_read, "accepted": len(inc),
                "rejected": len(res.rejected), "inserted": written["inserted"],
                "replaced": written["replaced"], "unchanged": written["unchanged"],
                "unassigned": int(((inc["ward_code"] == "") | (inc["lsoa_code"] == "")).sum()),
                "lsoa_agreement": res.lsoa_agreement, "reasons": res.reasons,
                "load_id": written["load_id"], "already_loaded": written["already_loaded"],
            })
            if len(res.rejected) and written["load_id"] is not None:
                out = db.parent / "rejected" / f"{p.stem}.load{written['load_id']}.rejected.csv"
                out.parent.mkdir(parents=True, exist_ok=True)
                res.rejected.to_csv(out, index=False)
                entry["rejected_file"] = str(out)
            files.append(entry)
    finally:
        conn.close()
    return {"store": str(db), "files": files}


def latest_complete_month(conn) -> str:
    """The last month in the store that is complete: the month of the latest incident if
    that incident is dated the month's last day or by month only, else the month before."""
    last = conn.execute("SELECT max(date) FROM incidents").fetchone()[0]
    if last is None:
        raise HotspotsError("the store has no incidents yet; load exports with `hotspots "
                            "ingest FILE...` first.")
    day = dt.date.fromisoformat(last)
    month = month_period(day.strftime("%Y-%m"))
    month_only = conn.execute("SELECT count(*) FROM incidents WHERE date = ? AND source = "
                              "'policeuk'", (last,)).fetchone()[0]
    if day == month.end or (month_only and day.day == 1):
        return month.label
    return month.previous().label


def summarise(*, config: Config, period: Period | None = None, level: str = "lsoa",
              measure: str = "density_per_km2", categories: list[str] | None = None,
              store_file: str | Path | None = None, out_dir: str | Path = "out",
              cache: str | Path | None = None) -> dict:
    """Ranked area table (CSV) and map (HTML) for a period (default: latest complete month).
    """
    if categories:
        unknown = sorted(set(categories) - set(config.categories))
        if unknown:
            raise HotspotsError(f"unknown categories {unknown}; use taxonomy keys such as "
                                f"{sorted(config.categories)[:5]}...")
    conn = store.connect(store_file)
    try:
        period = period or month_period(latest_complete_month(conn))
        prev = period.previous()
        inc = store.read_incidents(conn, start=prev.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories)
    finally:
        conn.close()
    layers = geography.read_layers(config, cache=cache)
    table, meta = area_summary(inc, layers[level], level=level, period=period, config=config,
                               rank_by=measure)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{level}_{period.label.replace(' ', '_')}"
    csv_path, html_path = out / f"areas_{stem}.csv", out / f"map_{stem}.html"
    table.drop(columns="geometry").to_csv(csv_path, index=False, float_format="%.4f")
    save_map(area_map(table, meta, config=config, incidents=inc.loc[in_period(inc, period)],
                      measure=measure), html_path)
    top = table.head(5)
    meta.update({
        "files": {"table": str(csv_path), "map": str(html_path)},
        "total_in_areas": int(table["n"].sum()),
        "top": [{"rank": int(r["rank"]), "code": r["code"], "name": r["name"], "n": int(r["n"]),
                 measure: float(r[measure])} for _, r in top.iterrows()],
    })
    return meta
