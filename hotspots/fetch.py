"""police.uk street-level crimes straight from the police.uk API, for the study area.

``crimes-street/<category>?poly=lat,lng:lat,lng:...&date=YYYY-MM`` answers the crimes of
one month inside a polygon. The study area (EPSG:27700) is widened by a margin and
simplified until it fits a GET of at most 4,094 characters (a longer polygon goes by
POST); an area holding more than 10,000 crimes is answered 503, and is then split into
quarters and asked again, tile by tile. Crimes on a tile edge come back twice and are
kept once, by the API's record ``id`` (unique per record: the ``persistent_id`` of a
crime may legitimately appear on two records, as it does in the CSVs, and anti-social
behaviour has none). Crimes outside the study area itself (the margin) are dropped.

Each month's answer becomes a file with the police.uk CSV's own columns, in the store's
folder (``<store name>.policeuk-api/``), written only once the whole month has arrived; the months
are then loaded by :func:`hotspots.jobs.ingest_files`, the same path as a downloaded
CSV, one load (one transaction) per month. A month already loaded is skipped; a month
fetched but not yet loaded (an interrupted run) is loaded without asking again; only
months that ``crimes-street-dates`` lists are asked for.

The API gives no LSOA code, so the police.uk rules that follow a row's own LSOA
(:func:`hotspots.assign.prefer_own`) do not apply: a crime on a shared LSOA edge takes
the smallest code (the CSV gives it its own), and one just outside the area is left out
(the CSV accepts it when its own LSOA is in the area). Otherwise a fetched month gives
its CSV's incidents, LSOAs, wards and places.

Politeness: at most 15 requests a second; 429 and 5xx answers are retried with
exponential back-off (``Retry-After`` honoured).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from . import geography, jobs, store
from .config import Config
from .errors import FetchError, HotspotsError
from .schema import POLICE_UK_HEADER, WORKING_CRS, transformer
from .webclient import Client, read_json, short_url, write_atomic

log = logging.getLogger(__name__)

DEFAULT_POLICEUK_API = "https://data.police.uk/api"
#: Environment variable naming another API base (a mirror, or a test server).
POLICEUK_API_ENV = "HOTSPOTS_POLICEUK_API"
#: Longest GET the API accepts (characters of the URL); longer requests go by POST.
MAX_GET_CHARS = 4094
#: Deepest split of the area on 503 answers, and most 503 answers in a month, before
#: the service is taken to be down rather than the area too full (10,000 crimes a month
#: in a tile 1/64 of a borough across does not happen; an outage answers 503 to all).
MAX_SPLIT_DEPTH = 6
MAX_503_PER_MONTH = 40

#: API category slugs and the CSV ``Crime type`` each one is.
API_CRIME_TYPES: dict[str, str] = {
    "anti-social-behaviour": "Anti-social behaviour",
    "bicycle-theft": "Bicycle theft",
    "burglary": "Burglary",
    "criminal-damage-arson": "Criminal damage and arson",
    "drugs": "Drugs",
    "other-crime": "Other crime",
    "other-theft": "Other theft",
    "possession-of-weapons": "Possession of weapons",
    "public-order": "Public order",
    "robbery": "Robbery",
    "shoplifting": "Shoplifting",
    "theft-from-the-person": "Theft from the person",
    "vehicle-crime": "Vehicle crime",
    "violent-crime": "Violence and sexual offences",
}
#: Crime ID of an API record without a persistent id: this prefix and the API's id.
API_ID_PREFIX = "api-"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def parse_months(text: str) -> list[str]:
    """``2024-01..2024-12`` (inclusive), ``2024-03`` or ``2024-01,2024-03`` -> months
    (``latest[:N]`` is resolved by :func:`fetch_policeuk`, see :func:`parse_latest`)."""
    months: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("..")
        last = last or first
        for m in (first, last):
            if not _MONTH.match(m):
                raise HotspotsError(f"--months: '{m}' is not a month; write YYYY-MM, a range "
                                    "YYYY-MM..YYYY-MM, or a comma-separated list.")
        if last < first:
            raise HotspotsError(f"--months: the range {part} ends before it starts.")
        y, mo = map(int, first.split("-"))
        while f"{y:04d}-{mo:02d}" <= last:
            months.append(f"{y:04d}-{mo:02d}")
            y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
    return sorted(set(months))


def parse_latest(text: str) -> int:
    """``latest`` -> 1, ``latest:12`` -> 12, anything else -> 0 (not a 'latest' spec)."""
    word, _, n = text.strip().partition(":")
    if word != "latest":
        return 0
    if n and not (n.isdigit() and int(n) > 0):
        raise HotspotsError(f"--months {text}: write latest or latest:N with N months, e.g. "
                            "latest:12.")
    return int(n or 1)


def api_base(base_url: str | None = None) -> str:
    """The API base: ``base_url``, else ``$HOTSPOTS_POLICEUK_API``, else the public API."""
    return (base_url or os.environ.get(POLICEUK_API_ENV) or DEFAULT_POLICEUK_API).rstrip("/")


def available_months(client: Client, base: str) -> set[str]:
    """Months the API holds street-level crime for (``crimes-street-dates``)."""
    url = f"{base}/crimes-street-dates"
    status, body, ctype = client.request(url, what="months available")
    dates = read_json(body, ctype, what="months available", url=url)
    if not isinstance(dates, list) or not all(isinstance(d, dict) and "date" in d
                                              for d in dates):
        raise FetchError(f"months available: {url} did not answer a list of "
                         "{\"date\": \"YYYY-MM\"} entries; check the service address.")
    return {str(d["date"]) for d in dates}


def query_polygons(area: shapely.Geometry, *, margin_m: float = 25.0,
                   max_chars: int = MAX_GET_CHARS - 200) -> list[shapely.Polygon]:
    """The study area (EPSG:27700) as polygons in lon/lat for the API's ``poly``: each
    part without holes, widened by ``margin_m`` and simplified (at half the margin, so
    it still covers the part; the margin doubles until the polygon fits ``max_chars``
    or reaches 800 m). Coordinates are rounded to 6 decimals (about 0.1 m). A part that a
    larger part's polygon already covers (a sliver of a boundary file, metres from the
    rest) gets no polygon of its own: it would cost a request a month for nothing."""
    parts = sorted(getattr(area, "geoms", [area]), key=lambda p: -p.area)
    out: list[shapely.Polygon] = []
    covering: list[shapely.Polygon] = []
    for part in parts:
        shell = shapely.Polygon(part.exterior)
        if any(c.covers(shell) for c in covering):
            continue
        margin = margin_m
        while True:
            simple = shell.buffer(margin).simplify(margin / 2)
            simple = shapely.Polygon(getattr(simple, "exterior", shell.exterior))
            if simple.covers(shell) and (len(poly_param(_lonlat(simple))) <= max_chars
                                         or margin >= 800):
                break
            margin *= 2
        covering.append(simple)
        out.append(_lonlat(simple))
    return out


def _lonlat(poly: shapely.Polygon) -> shapely.Polygon:
    return shapely.transform(poly, lambda xy: np.round(
        np.column_stack(transformer(WORKING_CRS, "EPSG:4326").transform(xy[:, 0], xy[:, 1])), 6))


def poly_param(poly: shapely.Polygon) -> str:
    """``lat,lng:lat,lng:...`` of the outer ring (the API closes the ring itself)."""
    coords = list(poly.exterior.coords)[:-1]
    return ":".join(f"{lat:.6f},{lon:.6f}" for lon, lat in coords)


def _quarters(poly: shapely.Polygon) -> list[shapely.Polygon]:
    minx, miny, maxx, maxy = poly.bounds
    mx, my = round((minx + maxx) / 2, 6), round((miny + maxy) / 2, 6)
    tiles = []
    for box in (shapely.box(minx, miny, mx, my), shapely.box(mx, miny, maxx, my),
                shapely.box(minx, my, mx, maxy), shapely.box(mx, my, maxx, maxy)):
        piece = poly.intersection(box)
        tiles += [g for g in getattr(piece, "geoms", [piece])
                  if isinstance(g, shapely.Polygon) and g.area > 0]
    return tiles


@dataclass
class MonthStats:
    """What fetching one month took: requests, tiles, duplicates and crimes outside."""

    requests: int = 0
    tiles: int = 0
    splits: int = 0  # 503 answers: each split its tile into quarters
    received: int = 0
    duplicates: int = 0
    outside: int = 0


def _crimes(client: Client, base: str, slug: str, month: str, poly: shapely.Polygon,
            stats: MonthStats, depth: int = 0) -> list[dict]:
    what = f"{slug} crimes for {month}"
    params = f"date={month}&poly={poly_param(poly)}"
    url = f"{base}/crimes-street/{slug}?{params}"
    before = client.requests
    if len(url) <= MAX_GET_CHARS:
        status, body, ctype = client.request(url, what=what, accept=(503,))
    else:
        url = f"{base}/crimes-street/{slug}"
        status, body, ctype = client.request(url, data=params.encode(), what=what,
                                             accept=(503,))
    stats.requests += client.requests - before
    if status == 503:
        if depth >= MAX_SPLIT_DEPTH or stats.splits >= MAX_503_PER_MONTH:
            raise FetchError(f"{what}: the service answered 503 {stats.splits + 1} times, "
                             f"still for a tile split {depth} times (1/{2 ** depth} of the "
                             "area across); it is more likely down than the area too full. "
                             "Nothing of the month was kept; run again later (it resumes).")
        stats.splits += 1
        log.info("%s: more than the service answers at once; split into quarters", what)
        return [c for tile in _quarters(poly)
                for c in _crimes(client, base, slug, month, tile, stats, depth + 1)]
    stats.tiles += 1
    data = read_json(body, ctype, what=what, url=url)
    if not isinstance(data, list):
        raise FetchError(f"{what}: {short_url(url)} answered {type(data).__name__}, not a list "
                         "of crimes. Check the service address.")
    for c in data:
        try:
            got = c["month"]
            float(c["location"]["latitude"]), float(c["location"]["longitude"])
            c["id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise FetchError(f"{what}: a crime in the answer lacks {exc} (month, location "
                             "latitude/longitude, id); the answer is not police.uk's crime "
                             "format. Nothing of the month was kept.") from exc
        if got != month:
            raise FetchError(f"{what}: the answer holds a crime of {got} (id {c['id']}); the "
                             f"service answered for the wrong month. Nothing of {month} was "
                             "kept; run again later.")
    return data


def month_rows(crimes: list[dict]) -> list[list[str]]:
    """API crimes -> rows with the police.uk CSV's columns (:data:`POLICE_UK_HEADER`),
    sorted so the same crimes always give the same file. ``Crime ID`` is the
    ``persistent_id``, or ``api-<id>`` for records without one (anti-social behaviour).
    The API gives no force and no LSOA: those columns stay empty (LSOAs are assigned
    from the boundaries, by the edge rule alone: see the module's notes)."""
    rows = []
    for c in crimes:
        loc = c["location"]
        street = (loc.get("street") or {}).get("name") or ""
        outcome = (c.get("outcome_status") or {}).get("category") or ""
        slug = str(c.get("category", ""))
        # a record without a persistent id (anti-social behaviour) keeps the API's id, so a
        # revised record replaces its earlier version instead of adding a second
        ref = c.get("persistent_id") or f"{API_ID_PREFIX}{c['id']}"
        rows.append([ref, c["month"], "", "",
                     str(loc["longitude"]), str(loc["latitude"]), street, "", "",
                     API_CRIME_TYPES.get(slug, slug), outcome, c.get("context") or "",
                     str(c["id"])])
    rows.sort(key=lambda r: (r[9], r[0], r[4], r[5], r[6], r[10], r[11], r[12]))
    return [r[:-1] for r in rows]


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(POLICE_UK_HEADER)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def fetch_month(client: Client, base: str, month: str, slugs: list[str],
                polygons: list[shapely.Polygon], area: shapely.Geometry
                ) -> tuple[list[list[str]], MonthStats]:
    """One month's crimes of the study area as CSV rows, with the request figures."""
    stats = MonthStats()
    seen: dict[str, dict] = {}
    for slug in slugs:
        for poly in polygons:
            for c in _crimes(client, base, slug, month, poly, stats):
                stats.received += 1
                key = str(c["id"])
                if key in seen:
                    stats.duplicates += 1
                else:
                    seen[key] = c
    crimes = list(seen.values())
    if crimes:
        lon = np.array([float(c["location"]["longitude"]) for c in crimes])
        lat = np.array([float(c["location"]["latitude"]) for c in crimes])
        x, y = transformer("EPSG:4326", WORKING_CRS).transform(lon, lat)
        inside = shapely.intersects_xy(area, x, y)
        stats.outside = int((~inside).sum())
        crimes = [c for c, keep in zip(crimes, inside, strict=True) if keep]
    return month_rows(crimes), stats


def _slugs(config: Config, categories: list[str] | None) -> list[str]:
    if not categories:
        return ["all-crime"]
    by_type = {t: slug for slug, t in API_CRIME_TYPES.items()}
    slugs = set()
    for key in categories:
        found = [by_type[t] for t, k in config.police_uk_types.items()
                 if k == key and t in by_type]
        if not found:
            keys = sorted({k for t, k in config.police_uk_types.items() if t in by_type})
            raise HotspotsError(f"--categories: '{key}' is not a police.uk category; use "
                                f"taxonomy keys such as {keys}.")
        slugs.update(found)
    return sorted(slugs)


def file_name(config: Config, month: str, slugs: list[str]) -> str:
    """The month's file: ``YYYY-MM-policeuk-api_<area>_<categories>.csv``."""
    area = re.sub(r"[^a-z0-9]+", "-", (config.code or config.name).lower()).strip("-")
    return f"{month}-policeuk-api_{area}_{'+'.join(slugs)}.csv"


def fetch_policeuk(*, config: Config, months: list[str] | None = None, latest: int = 0,
                   categories: list[str] | None = None,
                   store_file: str | Path | None = None, cache: str | Path | None = None,
                   base_url: str | None = None, refresh: bool = False,
                   client: Client | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Fetch months of police.uk crimes for the study area and load them into the store.

    Parameters
    ----------
    months : ``YYYY-MM`` months (see :func:`parse_months`); or
    latest : the newest ``latest`` months that ``crimes-street-dates`` lists.
    categories : taxonomy keys of police.uk categories (default: all crime and ASB).
    base_url : the API (default :func:`api_base`).
    refresh : ask again for months already loaded (police.uk revises past months).
    progress : called with a line of text per month (the CLI prints it on a terminal).

    Returns
    -------
    ``{"store", "api", "requests", "months": [...], "ingest": ingest report, "error"}``;
    each month has ``month, status`` (``loaded``, ``already_loaded``, ``unavailable``,
    ``not_fetched``, ``failed``), ``file`` and the request figures. On a bad answer the
    months before it are still loaded, the failed month leaves nothing in the store, and
    ``error`` says what happened; a later run resumes.
    """
    client = client or Client()
    base = api_base(base_url)
    slugs = _slugs(config, categories)
    listed: set[str] | None = None
    if latest:
        listed = available_months(client, base)
        months = sorted(listed)[-latest:]
    if not months:
        raise HotspotsError("no months to fetch: give --months YYYY-MM..YYYY-MM or latest[:N].")
    boundary = config.boundary_layer  # the study area is this layer's union
    area = geography.study_area(
        {boundary: geography.read_layer(config.layers[boundary], cache=cache)}, config)
    polygons = query_polygons(area)
    db = store.store_path(store_file)
    folder = db.parent / f"{db.stem}.policeuk-api"
    with store.connection(db) as conn:
        loaded = set(store.read_loads(conn)["file"])
    say = progress or (lambda _line: None)
    report: dict = {"store": str(db), "api": base, "months": [], "error": None}
    pending: list[Path] = []
    for month in months:
        name = file_name(config, month, slugs)
        entry: dict = {"month": month, "status": None, "file": str(folder / name)}
        report["months"].append(entry)
        if name in loaded and not refresh:
            entry["status"] = "already_loaded"
            say(f"{month}: already loaded")
            continue
        if (folder / name).is_file() and not refresh:
            entry["status"] = "fetched"  # by an earlier, interrupted run
            pending.append(folder / name)
            say(f"{month}: fetched earlier, to load")
            continue
        if report["error"]:
            entry["status"] = "not_fetched"
            continue
        try:
            if listed is None:
                listed = available_months(client, base)
            if month not in listed:
                entry["status"] = "unavailable"
                say(f"{month}: not available from police.uk (crimes-street-dates)")
                continue
            rows, stats = fetch_month(client, base, month, slugs, polygons, area)
        except FetchError as exc:
            entry["status"] = "failed"
            report["error"] = str(exc)
            say(f"{month}: FAILED: {exc}")
            continue
        entry.update(status="fetched", crimes=len(rows), **vars(stats))
        write_atomic(folder / name, _csv_bytes(rows))
        pending.append(folder / name)
        say(f"{month}: {len(rows):,} crimes ({stats.requests} requests, {stats.tiles} "
            f"tile(s), {stats.duplicates} on tile edges kept once, {stats.outside} outside "
            "the area left out)")
    report["requests"] = client.requests
    report["ingest"] = jobs.ingest_files(pending, config=config, store_file=db, cache=cache) \
        if pending else {"store": str(db), "files": []}
    by_path = {f["path"]: f for f in report["ingest"]["files"]}
    for entry in report["months"]:
        done = by_path.get(entry["file"])
        if done is not None:
            entry["status"] = ("failed" if done.get("error") else
                               "unchanged" if done.get("load_id") is None else "loaded")
            if done.get("error") and not report["error"]:
                report["error"] = done["error"]
    return report
