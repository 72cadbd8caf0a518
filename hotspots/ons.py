"""A local authority's LSOAs, wards and population from their official sources.

* ONS Open Geography Portal (ArcGIS REST feature services): the LSOA 2021 -> ward 2022
  -> local authority lookup gives the authority's LSOA and ward codes; the LSOA 2021
  boundaries (full resolution, clipped to the coastline: they stop at mean high water)
  and the ward 2022 boundaries (full extent of the realm: wards run into rivers) are
  then asked for by code, in EPSG:27700, page by page (``resultOffset`` while the
  service says ``exceededTransferLimit``).
* Nomis: Census 2021 TS001 usual residents (all residence types) by LSOA 2021.

Files are written deterministically (features sorted by code, fixed property order,
coordinates rounded to 1 cm, no time stamps), so the same answer gives the same bytes
and a checksum; and checked before anything is written (every LSOA of the lookup has a
boundary and a population, geometries valid, the LSOAs lie within the wards).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import urllib.parse
from pathlib import Path

import numpy as np
import shapely

from .errors import FetchError
from .geography import sha256_file
from .schema import WORKING_CRS, transformer
from .webclient import Client, read_json, write_atomic

DEFAULT_ONS_ARCGIS = "https://services1.arcgis.com/ESMARspQHYMw9BZ9/arcgis/rest/services"
DEFAULT_NOMIS = "https://www.nomisweb.co.uk"
#: Environment variables naming other bases (a mirror, or a test server).
ONS_ENV, NOMIS_ENV = "HOTSPOTS_ONS_ARCGIS", "HOTSPOTS_NOMIS"
#: Feature services (name, code field, name field) on the ONS portal.
LOOKUP = ("LSOA21_WD22_LAD22_EW_LU_v3", "LSOA21CD", "LSOA21NM")
LSOA_BOUNDARIES = ("Lower_layer_Super_Output_Areas_December_2021_Boundaries_EW_BFC_V10",
                   "LSOA21CD", "LSOA21NM")
WARD_BOUNDARIES = ("Wards_December_2022_Boundaries_UK_BFE", "WD22CD", "WD22NM")
#: Nomis dataset of Census 2021 TS001 (usual residents); 0 = all residence types.
NOMIS_TS001 = "NM_2021_1"
PAGE = 1000
_LAD = re.compile(r"^[EWSN]\d{8}$")


def _base(given: str | None, env: str, default: str) -> str:
    return (given or os.environ.get(env) or default).rstrip("/")


def query_features(client: Client, base: str, service: str, where: str, *, fields: str,
                   order_by: str, geometry: bool = True, page: int = PAGE) -> list[dict]:
    """Every feature of an ArcGIS REST query, page by page (POST: ``where`` may be long).
    With ``geometry``, GeoJSON features in EPSG:27700; else ``{"properties": ...}``."""
    url = f"{base}/{service}/FeatureServer/0/query"
    what = f"ONS {service}"
    out: list[dict] = []
    while True:
        params = {"where": where, "outFields": fields, "orderByFields": order_by,
                  "returnGeometry": "true" if geometry else "false",
                  "resultOffset": str(len(out)), "resultRecordCount": str(page),
                  "f": "geojson" if geometry else "json"}
        if geometry:
            params["outSR"] = "27700"
        status, body, ctype = client.request(url, data=urllib.parse.urlencode(params).encode(),
                                             what=what)
        answer = read_json(body, ctype, what=what, url=url)
        if not isinstance(answer, dict) or "error" in answer:
            err = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise FetchError(f"{what}: the service refused the query ({err.get('code', '?')} "
                             f"{err.get('message', answer)!s:.200}); the service may have "
                             "been renamed: check the address.")
        feats = answer.get("features", [])
        if not geometry:
            feats = [{"properties": f.get("attributes", {})} for f in feats]
        out += feats
        more = answer.get("exceededTransferLimit") or \
            (answer.get("properties") or {}).get("exceededTransferLimit")
        if not more or not feats:
            return out


def _in(field: str, codes: list[str]) -> str:
    return f"{field} IN ({','.join(repr(str(c)) for c in codes)})"


def _to_bng(geom: shapely.Geometry) -> shapely.Geometry:
    """EPSG:27700 as asked; a service that answers GeoJSON in degrees all the same (RFC
    7946 says GeoJSON is lon/lat) is projected here."""
    minx, miny, maxx, maxy = geom.bounds
    if -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90:
        return shapely.transform(geom, lambda xy: np.column_stack(
            transformer("EPSG:4326", WORKING_CRS).transform(xy[:, 0], xy[:, 1])))
    return geom


def _round(geom: shapely.Geometry) -> shapely.Geometry:
    fixed = shapely.transform(geom, lambda xy: np.round(xy, 2))
    return fixed if fixed.is_valid else shapely.make_valid(fixed)


def _geojson(features: list[tuple[dict, shapely.Geometry]]) -> bytes:
    """A FeatureCollection in EPSG:27700 with a ``crs`` member, one feature a line."""
    lines = [json.dumps({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(geom))},
                        ensure_ascii=False, separators=(",", ":"))
             for props, geom in features]
    head = ('{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":'
            '"urn:ogc:def:crs:EPSG::27700"}},"features":[\n')
    return (head + ",\n".join(lines) + "\n]}\n").encode("utf-8")


def _boundaries(client: Client, base: str, spec: tuple[str, str, str], codes: list[str],
                ) -> list[tuple[dict, shapely.Geometry]]:
    service, code_f, name_f = spec
    found: dict[str, tuple[dict, shapely.Geometry]] = {}
    for i in range(0, len(codes), 200):  # keep each query a reasonable size
        for f in query_features(client, base, service, _in(code_f, codes[i:i + 200]),
                                fields=f"{code_f},{name_f}", order_by=code_f):
            props = f.get("properties") or {}
            code = str(props.get(code_f, ""))
            if code in found or not f.get("geometry"):
                continue
            geom = _round(_to_bng(shapely.from_geojson(json.dumps(f["geometry"]))))
            found[code] = ({code_f: code, name_f: str(props.get(name_f, ""))}, geom)
    missing = sorted(set(codes) - set(found))
    if missing:
        raise FetchError(f"ONS {service}: no boundary for {len(missing)} of {len(codes)} "
                         f"codes (first {missing[:3]}); the service may hold another "
                         "edition. Nothing was written.")
    return [found[c] for c in sorted(codes)]


def population(client: Client, base: str, codes: list[str]) -> dict[str, int]:
    """Census 2021 usual residents (TS001) of each LSOA code, from Nomis."""
    url = f"{base}/api/v01/dataset/{NOMIS_TS001}.data.csv"
    out: dict[str, int] = {}
    for i in range(0, len(codes), 200):
        query = urllib.parse.urlencode({
            "date": "latest", "geography": ",".join(codes[i:i + 200]),
            "c2021_restype_3": "0", "measures": "20100",
            "select": "geography_code,geography_name,obs_value"}, safe=",")
        status, body, ctype = client.request(f"{url}?{query}", what="Nomis TS001")
        text = body.decode("utf-8-sig", errors="replace")
        rows = list(csv.DictReader(io.StringIO(text)))
        if "html" in ctype.lower() or not rows or not {"GEOGRAPHY_CODE", "OBS_VALUE"} <= \
                {k.upper() for k in rows[0]}:
            raise FetchError(f"Nomis TS001: {url} did not answer a CSV with GEOGRAPHY_CODE "
                             f"and OBS_VALUE (it starts {text.strip()[:60]!r}). Check the "
                             "address; nothing was written.")
        for r in rows:
            r = {k.upper(): v for k, v in r.items()}
            try:
                out[r["GEOGRAPHY_CODE"]] = int(float(r["OBS_VALUE"]))
            except ValueError as exc:
                raise FetchError(f"Nomis TS001: {r['GEOGRAPHY_CODE']} has population "
                                 f"{r['OBS_VALUE']!r}, not a number.") from exc
    bad = sorted(c for c in codes if out.get(c, 0) <= 0)
    if bad:
        raise FetchError(f"Nomis TS001: no positive population for {len(bad)} LSOA(s) "
                         f"(first {bad[:3]}). Nothing was written.")
    return {c: out[c] for c in codes}


def fetch_area(la_code: str, out_dir: str | Path, *, client: Client | None = None,
               ons_url: str | None = None, nomis_url: str | None = None) -> dict:
    """Download a local authority's LSOA 2021 and ward boundaries and LSOA population.

    Writes ``<name>_lsoa21.geojson`` (``LSOA21CD``, ``LSOA21NM``),
    ``<name>_wards_2022.geojson`` (``WD22CD``, ``WD22NM``), both EPSG:27700, and
    ``<name>_population_lsoa21.csv`` (``lsoa21cd, lsoa21nm, usual_residents``), where
    ``<name>`` is the authority's name in lower case, into ``out_dir``.

    Returns
    -------
    ``{"la_code", "la_name", "files": {kind: {"name", "sha256", "rows"}}, "checks"}``.

    Raises
    ------
    FetchError
        an unknown code, a service failing or answering badly, or a check failing;
        then no file is written.
    """
    if not _LAD.match(la_code):
        raise FetchError(f"--la '{la_code}' is not a local authority code; give its GSS "
                         "code, e.g. E09000007 (Camden).")
    client = client or Client()
    ons = _base(ons_url, ONS_ENV, DEFAULT_ONS_ARCGIS)
    nomis = _base(nomis_url, NOMIS_ENV, DEFAULT_NOMIS)
    rows = query_features(client, ons, LOOKUP[0], f"LAD22CD = '{la_code}'",
                          fields="LSOA21CD,LSOA21NM,WD22CD,WD22NM,LAD22CD,LAD22NM",
                          order_by="LSOA21CD", geometry=False)
    lookup = {str(r["properties"]["LSOA21CD"]): r["properties"] for r in rows}
    if not lookup:
        raise FetchError(f"ONS: no LSOAs for local authority {la_code} in the LSOA 2021 -> "
                         "ward 2022 -> local authority 2022 lookup; check the code (2022 "
                         "local authority codes).")
    la_name = str(next(iter(lookup.values())).get("LAD22NM", la_code))
    lsoa_codes = sorted(lookup)
    ward_codes = sorted({str(p["WD22CD"]) for p in lookup.values() if p.get("WD22CD")})
    lsoas = _boundaries(client, ons, LSOA_BOUNDARIES, lsoa_codes)
    wards = _boundaries(client, ons, WARD_BOUNDARIES, ward_codes)
    people = population(client, nomis, lsoa_codes)

    # checks, before anything is written
    wards_union = shapely.union_all([g for _, g in wards])
    # each LSOA at least 95% inside the wards (boundary sets of different resolution
    # disagree by a few metres: 1.5% of one small LSOA of the default area), 99% of all LSOAs
    inside = [shapely.intersection(g, wards_union).area for _, g in lsoas]
    outside = [p["LSOA21CD"] for (p, g), a in zip(lsoas, inside, strict=True)
               if a < 0.95 * g.area]
    if outside or sum(inside) < 0.99 * sum(g.area for _, g in lsoas):
        raise FetchError(f"ONS: the LSOAs of {la_code} lie partly outside its wards "
                         f"({len(outside)} by more than 5%, first {outside[:3]}); the two "
                         "services disagree. Nothing was written.")
    stem = re.sub(r"[^a-z0-9]+", "_", la_name.lower()).strip("_")
    out = Path(out_dir)
    pop = io.StringIO()
    w = csv.writer(pop, lineterminator="\n")
    w.writerow(["lsoa21cd", "lsoa21nm", "usual_residents"])
    w.writerows([c, lookup[c].get("LSOA21NM", ""), people[c]] for c in lsoa_codes)
    files = {"lsoa": (f"{stem}_lsoa21.geojson", _geojson(lsoas), len(lsoas)),
             "ward": (f"{stem}_wards_2022.geojson", _geojson(wards), len(wards)),
             "population": (f"{stem}_population_lsoa21.csv", pop.getvalue().encode(),
                            len(lsoa_codes))}
    report: dict = {"la_code": la_code, "la_name": la_name, "crs": WORKING_CRS, "files": {},
              "checks": {"lsoas": len(lsoas), "wards": len(wards),
                         "usual_residents": sum(people.values()),
                         "lsoa_km2": round(sum(g.area for _, g in lsoas) / 1e6, 3),
                         "ward_km2": round(wards_union.area / 1e6, 3)}}
    for kind, (name, data, n) in files.items():
        write_atomic(out / name, data)
        report["files"][kind] = {"name": name, "path": str(out / name),
                                 "sha256": sha256_file(out / name), "rows": n}
    return report

