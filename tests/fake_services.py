"""Local stand-ins (127.0.0.1 only) for the police.uk API, the ONS ArcGIS feature
services and Nomis, behaving as those services do: police.uk crimes built from real
police.uk CSV rows with the polygon filter done point in polygon, the 503 of an area
holding too many crimes (threshold settable, so a split can be forced with little
data), the 4,094-character GET limit, 429s, months missing from crimes-street-dates,
and bad answers on demand (``faults``, used one per crimes-street request: 429, 500,
503, html, truncated, cut, wrong_month); and published files at their own URL's host and
path under ``/files/`` (``files``), for the hosts a download names."""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

SLUGS = {
    "Anti-social behaviour": "anti-social-behaviour", "Bicycle theft": "bicycle-theft",
    "Burglary": "burglary", "Criminal damage and arson": "criminal-damage-arson",
    "Drugs": "drugs", "Other crime": "other-crime", "Other theft": "other-theft",
    "Possession of weapons": "possession-of-weapons", "Public order": "public-order",
    "Robbery": "robbery", "Shoplifting": "shoplifting",
    "Theft from the person": "theft-from-the-person", "Vehicle crime": "vehicle-crime",
    "Violence and sexual offences": "violent-crime",
}


def crimes_from_csvs(paths: list[Path]) -> dict[str, list[dict]]:
    """police.uk CSV rows as the API gives them (rows without a location are not in the
    API), by month; every record gets its own ``id``."""
    months: dict[str, list[dict]] = {}
    streets: dict[str, int] = {}
    next_id = 100_000
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if not row["Longitude"] or not row["Latitude"]:
                    continue
                next_id += 1
                street = streets.setdefault(row["Location"], 900_000 + len(streets))
                outcome = row["Last outcome category"]
                months.setdefault(row["Month"], []).append({
                    "category": SLUGS[row["Crime type"]], "location_type": "Force",
                    "location": {"latitude": row["Latitude"],
                                 "street": {"id": street, "name": row["Location"]},
                                 "longitude": row["Longitude"]},
                    "context": row["Context"],
                    "outcome_status": ({"category": outcome, "date": row["Month"]}
                                       if outcome else None),
                    "persistent_id": row["Crime ID"], "id": next_id,
                    "location_subtype": "", "month": row["Month"]})
    return months


@dataclass
class Fake:
    crimes: dict[str, list[dict]] = field(default_factory=dict)
    dates: list[str] | None = None  # months listed (default: every month held)
    max_crimes: int = 10_000
    max_get: int = 4094
    faults: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each request
    retry_after: str = "0"  # the Retry-After of a 429
    files: dict[str, Path] = field(default_factory=dict)  # "host/path" -> published copy
    features: dict[str, list[dict]] = field(default_factory=dict)  # ArcGIS service -> features
    page_size: int = 1000
    nomis: dict[str, int] = field(default_factory=dict)  # LSOA code -> usual residents
    base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def query(self, slug: str, month: str, poly: str) -> list[dict] | None:
        pts = [tuple(map(float, p.split(","))) for p in poly.split(":")]
        shape = shapely.Polygon([(lng, lat) for lat, lng in pts])
        held = [c for c in self.crimes.get(month, [])
                if slug == "all-crime" or c["category"] == slug]
        if not held:
            return []
        lon = np.array([float(c["location"]["longitude"]) for c in held])
        lat = np.array([float(c["location"]["latitude"]) for c in held])
        inside = shapely.intersects_xy(shape, lon, lat)
        found = [c for c, keep in zip(held, inside, strict=True) if keep]
        return None if len(found) > self.max_crimes else found


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: Fake

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._route("GET", urllib.parse.urlsplit(self.path).query)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self._route("POST", body)

    def _route(self, method: str, query: str) -> None:
        fake = self.fake
        path = urllib.parse.urlsplit(self.path).path
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        with fake.lock:
            fake.log.append((method, path))
            fake.times.append(time.monotonic())
        if path.startswith("/files/"):
            src = fake.files.get(path[len("/files/"):])
            if src is None:
                return self._send(404, b"<html><body>Not found</body></html>", "text/html")
            return self._send(200, src.read_bytes(), "application/octet-stream")
        if path == "/police/crimes-street-dates":
            months = sorted(fake.crimes) if fake.dates is None else fake.dates
            self._send(200, json.dumps([{"date": m, "stop-and-search": []}
                                        for m in sorted(months, reverse=True)]).encode())
        elif path.startswith("/police/crimes-street/"):
            self._crimes(method, path.rsplit("/", 1)[1], params)
        elif path.startswith("/arcgis/") and path.endswith("/query"):
            self._arcgis(path.split("/")[2], params)
        elif path == "/nomis/api/v01/dataset/NM_2021_1.data.csv":
            self._nomis(params)
        else:
            self._send(404, b"<html><body>Not found</body></html>", "text/html")

    def _crimes(self, method: str, slug: str, params: dict) -> None:
        fake = self.fake
        if method == "GET" and len(fake.base) + len(self.path) > fake.max_get:
            return self._send(400, b"", "text/plain")
        with fake.lock:
            fault = fake.faults.pop(0) if fake.faults else None
        if fault == "429":
            return self._send(429, b"Too Many Requests", "text/plain",
                              {"Retry-After": fake.retry_after})
        if fault in ("500", "503"):
            return self._send(int(fault), b"<html><body>Service error</body></html>",
                              "text/html")
        if fault == "html":
            return self._send(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>",
                              "text/html")
        found = fake.query(slug, params["date"], params["poly"])
        if found is None:
            return self._send(503, b"", "text/plain")
        if fault == "wrong_month":
            found = [dict(c, month="2019-01") for c in found]
        body = json.dumps(found).encode()
        if fault == "truncated":
            body = body[: len(body) // 2]
        if fault == "cut":  # the connection drops mid-answer: fewer bytes than announced
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return
        self._send(200, body)

    def _arcgis(self, service: str, params: dict) -> None:
        fake = self.fake
        feats = fake.features.get(service)
        if feats is None:  # ArcGIS answers errors with status 200 and an error object
            return self._send(200, json.dumps({"error": {"code": 400, "message":
                                                         "Invalid URL"}}).encode())
        where = params.get("where", "1=1")
        field_, _, values = where.partition(" IN ")
        if values:
            wanted = {v.strip(" '") for v in values.strip("()").split(",")}
        else:
            field_, _, value = where.partition("=")
            wanted = {value.strip(" '")}
        field_ = field_.strip()
        chosen = [f for f in feats if str(f["properties"].get(field_)) in wanted]
        order = params.get("orderByFields", "OBJECTID")
        chosen.sort(key=lambda f: str(f["properties"].get(order, "")))
        offset = int(params.get("resultOffset", 0))
        page = chosen[offset: offset + min(fake.page_size,
                                           int(params.get("resultRecordCount", 10**6)))]
        more = offset + len(page) < len(chosen)
        if params.get("f") == "json":
            out = {"features": [{"attributes": f["properties"]} for f in page]}
            if more:
                out["exceededTransferLimit"] = True
        else:
            out = {"type": "FeatureCollection", "features": page}
            if more:
                out["properties"] = {"exceededTransferLimit": True}
        self._send(200, json.dumps(out).encode(), "application/geo+json")

    def _nomis(self, params: dict) -> None:
        codes = params.get("geography", "").split(",")
        lines = ['"GEOGRAPHY_CODE","GEOGRAPHY_NAME","OBS_VALUE"']
        lines += [f'"{c}","{c} name","{self.fake.nomis[c]}"' for c in codes
                  if c in self.fake.nomis]
        self._send(200, ("\n".join(lines) + "\n").encode(), "text/csv")


def _features(gdf, props) -> list[dict]:
    gdf = gdf.to_crs(27700)
    return [{"type": "Feature", "properties": props(r),
             "geometry": json.loads(shapely.to_geojson(r.geometry))}
            for r in gdf.itertuples()]


def ons_services(shared: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """ArcGIS services (lookup, LSOA and ward boundaries) and Nomis populations as the
    ONS and Nomis serve them, built from the shared Tower Hamlets, City and London files:
    ``(features by service, usual residents by LSOA)``."""
    import geopandas as gpd

    from hotspots import ons

    th_code = "E09000030"
    wards = gpd.read_file(shared / "tower_hamlets_wards_2022.geojson").to_crs(27700)
    th = gpd.read_file(shared / "tower_hamlets_lsoa21.geojson").to_crs(27700)
    city = gpd.read_file(shared / "city_of_london_lsoa21.geojson").to_crs(27700)
    london = gpd.read_file(shared / "london_lsoa21.gpkg", layer="lsoa21",
                           ignore_geometry=True)
    # best-fit ward of each Tower Hamlets LSOA: the ward holding most of it
    best = {}
    for r in th.itertuples():
        share = wards.geometry.intersection(r.geometry).area
        best[r.LSOA21CD] = wards.iloc[int(share.argmax())]
    lookup = [{"properties": {
        "LSOA21CD": r.lsoa21cd, "LSOA21NM": r.lsoa21nm,
        "WD22CD": best[r.lsoa21cd]["wardcode"] if r.lsoa21cd in best else "",
        "WD22NM": best[r.lsoa21cd]["name"] if r.lsoa21cd in best else "",
        "LAD22CD": r.lad22cd, "LAD22NM": r.lad22nm}} for r in london.itertuples()]
    with open(shared / "population_lsoa21_london.csv", newline="") as fh:
        people = {r["lsoa21cd"]: int(r["usual_residents"]) for r in csv.DictReader(fh)}
    return {
        ons.LOOKUP[0]: lookup,
        ons.LSOA_BOUNDARIES[0]: _features(th, lambda r: {"LSOA21CD": r.LSOA21CD,
                                                         "LSOA21NM": r.LSOA21NM})
        + _features(city, lambda r: {"LSOA21CD": r.lsoa21cd, "LSOA21NM": r.lsoa21nm}),
        ons.WARD_BOUNDARIES[0]: _features(wards, lambda r: {
            "WD22CD": r.wardcode, "WD22NM": r.name, "LAD22CD": th_code}),
    }, people


def published_copies(shared: Path, manifest: Path, base: str) -> tuple[dict[str, Path], str]:
    """The manifest's files that have a download ``url``, as the stand-in serves them
    (``host/path`` -> the copy in ``shared``: the manifest's sha256 says they are the
    published bytes), and the manifest's text with each ``https://`` address moved under
    ``{base}/files/``; files without a ``url`` are not served, as on the internet."""
    import tomllib

    text = manifest.read_text("utf-8")
    files = {}
    for entry in tomllib.loads(text)["files"]:
        if entry.get("url"):
            parts = urllib.parse.urlsplit(entry["url"])
            files[parts.netloc + parts.path] = shared / entry["name"]
    return files, text.replace('url = "https://', f'url = "{base}/files/')


@contextlib.contextmanager
def serve(fake: Fake):
    """Serve ``fake`` on 127.0.0.1; yields the base URL (``fake.base``)."""
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # polled every 50 ms, not 0.5 s: shutdown() waits for the next poll
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake.base
    finally:
        server.shutdown()
        server.server_close()
