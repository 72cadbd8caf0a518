"""The ``hotspots`` command. Every command prints a short summary, or with --json one JSON
object (figures and files written). Exit status: 0 ok, 1 a file or input failed, 2 usage.
"""

# The docstring above is the command's --help description. The parser and main() are
# here; the commands' handlers are grouped by topic: data (ingest, fetch, export, synth),
# analyse (summarise, detect, pack, backtest) and admin (geodata, area, user, demo);
# ``task`` is hotspots.taskcli.

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import auth, jobs, store, taskcli
from ..area import check_store_area
from ..config import load_config, resolve_settings
from ..errors import HotspotsError
from ..summary import MEASURES
from .admin import _cmd_area, _cmd_demo, _cmd_geodata, _cmd_user
from .analyse import _cmd_backtest, _cmd_detect, _cmd_pack, _cmd_summarise
from .data import _cmd_export, _cmd_fetch_policeuk, _cmd_ingest, _cmd_synth
from .data import _synthetic_exports as _synthetic_exports  # the demo's pairs, for tests


def build_parser() -> argparse.ArgumentParser:
    """The ``hotspots`` command line: every subcommand and its flags."""
    p = argparse.ArgumentParser(prog="hotspots", description=__doc__)
    p.add_argument("--config", help="study-area configuration TOML (default: "
                                    "$HOTSPOTS_CONFIG or the packaged default)")
    p.add_argument("--geodata", help="geodata cache folder (default: $HOTSPOTS_GEODATA or "
                                     "geodata/cache)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, store=True):
        sp.add_argument("--json", action="store_true", help="print one JSON object")
        if store:
            sp.add_argument("--store", help="store file or postgresql://user@host/db server "
                                            "(default: $HOTSPOTS_STORE or "
                                            "data/hotspots.sqlite)")

    g = sub.add_parser("geodata", help="boundary and open data files")
    gsub = g.add_subparsers(dest="geodata_command", required=True)
    gi = gsub.add_parser("install", help="install into the cache, checked by sha256")
    gi.add_argument("--from", dest="source_dir", help="copy from this folder, not download")
    gi.add_argument("--base-url", help="download NAME from BASE_URL/NAME (a mirror)")
    gi.add_argument("--skip-unavailable", action="store_true",
                    help="downloading, pass over files with no published source")
    gi.add_argument("--manifest", help="geodata manifest (default: the configuration's)")
    common(gi, store=False)
    gi.set_defaults(func=_cmd_geodata)

    i = sub.add_parser("ingest", help="load exports into the store")
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument("--mapping", help="mapping TOML for council exports")
    i.add_argument("--force-older", action="store_true",
                   help="let an export replace records that came from a later-dated export")
    i.add_argument("--dry-run", action="store_true",
                   help="say what would be new, replaced, unchanged and rejected, with the "
                   "replaced records' changes; write nothing")
    common(i)
    i.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("summarise", aliases=["summarize"],
                       help="ranked area table (CSV, XLSX, GeoJSON, GeoPackage) and map "
                            "(HTML) for a period")
    s.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    s.add_argument("--start", help="first day, YYYY-MM-DD (with --end)")
    s.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    s.add_argument("--level", default="lsoa",
                   help="any layer of the configuration: lsoa (default), ward, msoa...")
    s.add_argument("--measure", choices=MEASURES, default="density_per_km2",
                   help="shade and rank by (default density_per_km2)")
    s.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    s.add_argument("--formats", default="csv,xlsx,geojson,gpkg",
                   help="table files to write, comma-separated (default csv,xlsx,geojson,gpkg; "
                        "the CSV is always written)")
    s.add_argument("--out", default="out", help="output folder (default out/)")
    common(s)
    s.set_defaults(func=_cmd_summarise)

    t = sub.add_parser("detect", help="hotspots in metres: grid, kernel density, Gi*, places")
    t.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    t.add_argument("--start", help="first day, YYYY-MM-DD (with --end)")
    t.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    t.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    t.add_argument("--cell-size-m", type=float, help="grid cell size (default: chosen by rule)")
    t.add_argument("--shape", choices=("square", "hex"), default="square")
    t.add_argument("--bandwidth-m", type=float, help="KDE bandwidth (default: chosen by rule)")
    t.add_argument("--kernel", choices=("quartic", "gaussian"), default="quartic")
    t.add_argument("--method", choices=("dbscan", "hdbscan"), default="dbscan")
    t.add_argument("--no-fdr", action="store_true", help="Gi* without FDR correction")
    t.add_argument("--out", default="out", help="output folder (default out/)")
    common(t)
    t.set_defaults(func=_cmd_detect)

    pk = sub.add_parser("pack", help="tasking pack (HTML; ranked table as XLSX, CSV, GeoJSON, "
                                     "GeoPackage) for the latest complete month")
    pk.add_argument("--out", default="out", help="output folder (default out/)")
    pk.add_argument("--partner", action="store_true",
                    help="partner version: aggregates only, small counts suppressed")
    pk.add_argument("--top", type=int, default=20, help="places in the pack (default 20)")
    pk.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    pk.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    pk.add_argument("--units", choices=("places", "lsoa", "cells"), default="places",
                    help="what to rank: cluster places (default), LSOAs or grid cells")
    pk.add_argument("--cell-size-m", type=float,
                    help="grid cell size, as for detect (default: chosen by rule)")
    pk.add_argument("--areas", metavar="AREAS",
                    help="comma-separated codes or names of areas of the main layer (wards, "
                         "say): the pack lists the places in them, with their "
                         "ranks in the whole area, as the app's area filter (default: all)")
    common(pk)
    pk.set_defaults(func=_cmd_pack)

    bt = sub.add_parser("backtest", help="PAI of each hotspot method on past months; "
                                         "which one to use by default")
    bt.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    bt.add_argument("--sources", help="comma-separated sources, e.g. policeuk (default: all)")
    bt.add_argument("--test-months", type=int, default=12,
                    help="latest months to test, each with 3 months of history before it "
                         "(default 12)")
    bt.add_argument("--cell-sizes", help="comma-separated cell sizes in metres, multiples of "
                                         "the smallest (default 50,100,150,200,250)")
    bt.add_argument("--out", default="out", help="output folder (default out/)")
    common(bt)
    bt.set_defaults(func=_cmd_backtest)

    taskcli.add_parser(sub, common)

    e = sub.add_parser("export", help="the store's incidents for QGIS (GeoPackage, GeoParquet), "
                                      "Power BI (CSV with latitude and longitude) or ArcGIS "
                                      "(GeoJSON)")
    e.add_argument("--format", choices=jobs.EXPORT_FORMATS, default="gpkg")
    e.add_argument("--out", help="file to write (default out/incidents.gpkg, .parquet, .csv "
                                 "or .geojson)")
    e.add_argument("--start", help="first day, YYYY-MM-DD (default: all)")
    e.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    e.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    common(e)
    e.set_defaults(func=_cmd_export)

    y = sub.add_parser("synth", help="write SYNTHETIC council-style exports with planted truth")
    y.add_argument("--out", type=Path, default=Path("data/synthetic"))
    y.add_argument("--n", type=int, default=20_000, help="incidents (default 20000)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--start", default="2022-09-01")
    y.add_argument("--end", default="2024-08-31")
    common(y, store=False)
    y.set_defaults(func=_cmd_synth)

    u = sub.add_parser("user", help="app users who sign in with a password")
    usub = u.add_subparsers(dest="user_command", required=True)
    ua = usub.add_parser("add", help="add a user, or set a user's password and role, in "
                                     "the app's secrets file (Argon2 hash)")
    ua.add_argument("name", help="user name (letters, digits and . _ @ -)")
    ua.add_argument("--role", required=True, choices=auth.ROLES,
                    help="analyst or chair: every page; officer: patrol map; "
                         "partner: partner pack")
    ua.add_argument("--secrets", type=Path, default=auth.DEFAULT_SECRETS,
                    help="secrets file (default .streamlit/secrets.toml; created if absent)")
    ua.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin, not the terminal")
    common(ua, store=False)
    ua.set_defaults(func=_cmd_user)

    a = sub.add_parser("area", help="set up another area")
    asub = a.add_subparsers(dest="area_command", required=True)
    ai = asub.add_parser("init", help="write a configuration and a geodata manifest for an "
                                      "area, from boundary files or the London LSOAs")
    ai.add_argument("--borough", help="a London borough's code or name, or 'all' (from "
                                      "london_lsoa21.gpkg in the geodata cache)")
    ai.add_argument("--lsoa", help="LSOA boundaries, any format GDAL reads "
                                   "(FILE or FILE:CODE_COLUMN:NAME_COLUMN)")
    ai.add_argument("--la", help="a local authority's GSS code (e.g. E09000007): its LSOAs, "
                                 "wards and population downloaded from ONS and Nomis "
                                 "($HOTSPOTS_ONS_ARCGIS, $HOTSPOTS_NOMIS name other "
                                 "addresses)")
    ai.add_argument("--layer", action="append", metavar="KEY=FILE",
                    help="another layer (ward, snt, pspo, estate...); repeatable")
    ai.add_argument("--name", help="the area's name (default: the borough's)")
    ai.add_argument("--code", help="the area's code (default: the borough's)")
    ai.add_argument("--population", help="residents by LSOA, CSV (default in London: "
                                         "population_lsoa21_london.csv)")
    ai.add_argument("--out", help="folder to write to (default areas/<name>)")
    ai.add_argument("--json", action="store_true", help="print one JSON object")
    ai.set_defaults(func=_cmd_area)

    f = sub.add_parser("fetch", help="data from its official sources online")
    fsub = f.add_subparsers(dest="fetch_command", required=True)
    fp = fsub.add_parser("policeuk", help="police.uk crimes for the study area, by API, "
                                          "into the store (one load per month)")
    fp.add_argument("--months", required=True,
                    help="YYYY-MM, YYYY-MM..YYYY-MM (inclusive), a comma-separated list, or "
                         "latest[:N] (the newest N months police.uk holds; N=1)")
    fp.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    fp.add_argument("--api-url", help="police.uk API base (default: $HOTSPOTS_POLICEUK_API "
                                      "or the public API)")
    fp.add_argument("--refresh", action="store_true",
                    help="ask again for months already loaded (police.uk revises them)")
    common(fp)
    fp.set_defaults(func=_cmd_fetch_policeuk)

    d = sub.add_parser("demo", help="install geodata, load police.uk + synthetic data, "
                                    "summarise the latest month")
    d.add_argument("--from", dest="source_dir", help="install geodata from this folder")
    d.add_argument("--data", default="data", help="store and synthetic data folder (data/)")
    d.add_argument("--out", default="out", help="tables and maps (out/)")
    d.add_argument("--n", type=int, default=20_000, help="synthetic incidents (20000)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = resolve_settings(config=args.config, store=getattr(args, "store", None),
                                    geodata=args.geodata)
        args.geodata = str(settings.geodata)
        config = load_config(settings.config)
        if hasattr(args, "store"):
            args.store = settings.store
            if args.command not in ("ingest",) and store.exists(settings.store):
                with store.connection(settings.store) as conn:
                    check_store_area(conn, config, store_file=settings.store,
                                     cache=settings.geodata)
        return args.func(args, config)
    except (HotspotsError, ValueError) as exc:
        print(f"hotspots: error: {exc}", file=sys.stderr)
        return 1
