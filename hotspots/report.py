"""The tasking pack: one self-contained HTML page that prints on A4 as a brief a chair can
take in as it is.

Page 1 is the brief in plain English (the top places: where, what, when, the trend, why
each ranks, whether it was tasked before); then a large map with its legend and insets;
last meeting's tasked places and the ranked table; the place cards, at most two a page
(:mod:`hotspots.placecard`, the same cards as the app); and the method and statistics
in an appendix. Every printed page carries the protective marking, the period and the
date produced: a fixed header and footer (Chromium repeats ``position: fixed`` on every
printed page; ``@page`` margin boxes it does not print), with the content in a table
whose empty ``thead``/``tfoot`` keep room for them on each page.

Every value is escaped here; record text can never become markup. The partner version
is built from the minimised tables of :func:`hotspots.export.partner_table` only (its
brief too) and has no cards (a partner card would only repeat its table row): no caller
keys, no record text, no value that gives a small count away.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .placecard import CARD_CSS, PlaceEvidence, brief_row, card_html
from .printmap import PrintMap

#: Columns of the ranked table: name -> (heading, digits or None for text).
RANKED_COLUMNS = {
    "rank": ("Rank", 0), "place_id": ("Place", None), "label": ("Where", None),
    "ward": ("Ward", None),
    "score": ("Score", 2), "n": ("Incidents", 0), "density_per_km2": ("Per km²", 0),
    "per_1000_residents": ("Per 1,000 residents", 1),
    "harm": ("Harm", 1), "repeat_location_share": ("% at repeat locations", 0),
    "repeat_caller_share": ("% from repeat callers", 0), "n_previous": ("Previous month", 0),
    "n_last_year": ("Same month last year", 0),
    "expected": ("Expected from the borough's change", 0), "trend_label": ("Trend", None),
    "patrol_windows": ("Patrol windows", None),
}
TASKED_COLUMNS = {
    "meeting_date": ("Meeting", None), "place_id": ("Place", None), "label": ("Where", None),
    "ward": ("Ward", None),
    "owner": ("Owner", None), "actions": ("Actions", None), "review_date": ("Review", None),
    "n_before": ("Before", 0), "n_after": ("Since", 0), "days": ("Days each", 0),
    "p_value": ("p (exact)", 3), "expected": ("Expected from the borough's change", 0),
    "p_borough": ("p against the borough", 3), "verdict": ("What happened", None),
    "rank_now": ("Rank now", None), "status": ("Status", None),
}

#: Columns of the brief, in order: key -> heading.
BRIEF_COLUMNS = {"rank": "#", "where": "Where", "incidents": "Incidents", "what": "What",
                 "when": "When",
                 "trend": "Trend", "why": "Why it ranks", "tasked": "Tasked before"}

_CSS = """
:root{font:10.5pt/1.35 system-ui,-apple-system,'Segoe UI',Arial,sans-serif;color:#111}
body{margin:0 auto;max-width:1000px;padding:0 12px}
h1{font-size:17pt;margin:0 0 4px}h2{font-size:13pt;margin:14px 0 6px;
border-bottom:2px solid #3f007d;break-after:avoid}
.meta{color:#444;font-size:9pt}.notes li{font-size:9pt;color:#333;margin-bottom:3px}
table{border-collapse:collapse;width:100%;font-size:8.5pt}
th,td{border:1px solid #bbb;padding:2px 4px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.frame,table.frame>*>tr>td{border:0;padding:0;font-size:inherit}
table.brief{font-size:9pt}table.brief td{padding:3px 4px}
table.brief td:first-child{font-weight:bold;text-align:center}
.hs-mark{font-size:8pt;color:#222;display:flex;justify-content:space-between;gap:8px;
padding:3px 0;background:#fff;white-space:nowrap}.hs-mark .hs-t{flex:1 1 auto;
overflow:hidden;text-overflow:ellipsis;min-width:0;text-align:center}
.hs-mark b{color:#a00;letter-spacing:.04em}
.hs-mark-head{border-bottom:1px solid #999}.hs-mark-foot{border-top:1px solid #999}
.frame-space{display:none}
.section{break-before:page}
.hs-map>svg{display:block;margin:auto;height:205mm;width:auto;max-width:100%;
border:1px solid #999}.hs-map.hs-crowded>svg{height:165mm}
.hs-legend{font-size:8.5pt;margin:4px 0}.hs-legend-row{display:flex;flex-wrap:wrap;
gap:4px 12px;align-items:center}.hs-legend i{display:inline-block;width:14px;height:10px;
margin-right:3px;vertical-align:middle;font-style:normal}
.hs-swatch i{border:1px solid #999}.hs-legend-note{color:#444}
.hs-k-area{border:2px solid #222}.hs-k-ward{border-top:1px dashed #888}
.hs-k-place{background:rgba(106,61,154,.12);border:1px solid #3f007d}
.hs-k-num,.hs-k-inset{color:#fff;font:bold 8pt sans-serif;text-align:center;
line-height:12px;height:12px!important;width:12px!important}
.hs-k-num{background:#3f007d;border-radius:6px}.hs-k-inset{background:#e08214}
.hs-insets{display:flex;flex-wrap:wrap;gap:8px}.hs-inset{break-inside:avoid;
font-size:8.5pt}.hs-inset svg{border:1px solid #e08214;display:block}
.cardpage{display:flex;flex-direction:column;gap:8px;margin-bottom:8px}
.cardpage h2{margin:0}table.ranked td:last-child{min-width:9em}
.partner{background:#fff3cd;border:1px solid #e0c060;padding:4px 8px}
@media screen{table.frame,table.frame>tbody,table.frame>tbody>tr,table.frame>tbody>tr>td{
display:block}table.frame>thead,table.frame>tfoot{display:none}}
@media screen and (max-width:700px){h1{font-size:14pt}
table.brief,table.ranked,section>table{display:block;overflow-x:auto}
.hs-map>svg,.hs-map.hs-crowded>svg{width:100%;height:auto}
.hs-card .hs-cols{grid-template-columns:1fr}.hs-mark .hs-t,.hs-mark b+span+span+b{display:none}}
@page{size:A4;margin:9mm 11mm}
@media print{body{max-width:none;padding:0}
.hs-mark{position:fixed;left:0;right:0}.hs-mark-head{top:0}.hs-mark-foot{bottom:0}
.frame-space{display:block;height:9mm}
.cardpage{break-before:page;margin:0}.cardpage:first-of-type{break-before:auto}
tr{break-inside:avoid}}
"""


def _e(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 0) -> str:
    if isinstance(value, str):
        return _e(value)  # suppressed counts arrive as text such as "<5"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, int | None]],
           cls: str = "") -> str:
    """columns: name -> (header, digits or None for text)."""
    head = "".join(f"<th>{_e(h)}</th>" for h, _ in columns.values())
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for col, (_, digits) in columns.items():
            v = r.get(col)
            cells.append(f"<td>{_e(v)}</td>" if digits is None
                         else f"<td class='num'>{_num(v, digits)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def _marking(marking: str, title: str, period: str, produced: str, where: str) -> str:
    return (f"<div class='hs-mark hs-mark-{where}'><b>{_e(marking)}</b>"
            f"<span class='hs-t'>{_e(title)}</span><span>Period {_e(period)} · produced "
            f"{_e(produced)}</span><b>{_e(marking)}</b></div>")


def brief_html(rows: Sequence[dict], *, intro: str, after: Sequence[str] = ()) -> str:
    """Page 1: one row per top place, columns of :data:`BRIEF_COLUMNS` that the rows
    have (the partner version has fewer)."""
    cols = [k for k in BRIEF_COLUMNS if any(k in r for r in rows)]
    head = "".join(f"<th>{_e(BRIEF_COLUMNS[k])}</th>" for k in cols)
    body = "".join("<tr>" + "".join(f"<td>{_e(r.get(k))}</td>" for k in cols) + "</tr>"
                   for r in rows)
    extra = "".join(f"<p class='meta'>{_e(a)}</p>" for a in after)
    return (f"<section class='brief'><p>{_e(intro)}</p><table class='brief'><thead><tr>"
            f"{head}</tr></thead><tbody>{body}</tbody></table>{extra}</section>")


def brief_section(cards: Sequence[PlaceEvidence], *, n_incidents: int, period: str,
                  where: dict[str, str], tasked: pd.DataFrame | None, n: int,
                  partner: bool, caveats: Sequence[str] = ()) -> str:
    """Page 1 from the first ``n`` cards (:func:`hotspots.placecard.brief_row`); the
    partner version from its cards' facts alone (the partner table), with no total."""
    rows: list[dict]
    if partner:
        rows = [{"rank": c.rank, "where": f"{c.label} ({c.place_id})",
                 "incidents": "{Incidents} ({Per km²} per km²)".format_map(dict(c.facts))}
                for c in cards[:n]]
        intro = (f"The {len(rows)} places with the highest tasking score in {period}, by "
                 "area; counts under the threshold are not shown.")
    else:
        rows = [brief_row(c, where=where.get(c.place_id, c.label)) for c in cards[:n]]
        intro = (f"{n_incidents:,} incidents in {period}. The {len(rows)} places with the "
                 "highest tasking score: what happens there, when, how it moved and why "
                 "each ranks (the method is in the appendix).")
    after = list(caveats)  # such as "SYNTHETIC demonstration data": never only at the back
    if tasked is not None and len(tasked):
        fewer = int(tasked["verdict"].astype(str).str.startswith("fewer").sum())
        after.append(f"Under review: {len(tasked)} decision(s) of the previous meeting "
                     f"({tasked['meeting_date'].max()}) and earlier ones still open; {fewer} "
                     "with fewer incidents since (the review follows the map).")
    return brief_html(rows, intro=intro, after=after)


def _percent(v):
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    return v if pd.isna(v) else 100 * v


def percent_cells(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Shares (0-1) of ``columns`` as percentages, cell by cell: a text cell (``"[c]"``)
    stays text and the numbers beside it (also numbers read back as text) are scaled."""
    return frame.assign(**{c: frame[c].map(_percent) for c in columns if c in frame.columns})


def table_view(ranked_out: pd.DataFrame) -> pd.DataFrame:
    """The ranked table as shown: shares as percentages, n/a for rates of areas without
    residents."""
    shares = [c for c in ("repeat_location_share", "repeat_caller_share")
              if c in ranked_out.columns]
    # cell by cell: a column holding one "[c]" kept its other shares as 0-1 fractions,
    # which the 0-digit format printed as 0 (the partner pack's "0%")
    shown = percent_cells(ranked_out, shares)
    if "per_1000_residents" in shown.columns:  # an area with no residents counted
        shown = shown.assign(per_1000_residents=shown["per_1000_residents"].astype(object)
                             .where(shown["per_1000_residents"].notna(), "n/a"))
    return shown


def map_section(pm: PrintMap, *, heading: str, interactive: str | None) -> str:
    """The map page: the map, its legend, then the insets of crowded places."""
    insets = "".join(f"<div class='hs-inset'><b>Inset {_e(letter)}</b>{svg}</div>"
                     for letter, svg in pm.insets)
    link = (f"<p class='meta'>The interactive map ({_e(interactive)}) has the same places "
            "with Gi* hot spots and next month's forecast.</p>" if interactive else "")
    crowded = " hs-crowded" if pm.insets else ""  # a smaller map leaves room for insets
    return (f"<section class='section hs-map{crowded}'><h2>{_e(heading)}</h2>{pm.svg}"
            f"{pm.legend}"
            + (f"<div class='hs-insets'>{insets}</div>" if insets else "") + link
            + "</section>")


def cards_section(cards: Sequence[PlaceEvidence]) -> str:
    """The cards, two to a printed page (the heading inside the first page's block, so
    that it never pushes the second card over)."""
    pages = ["<div class='cardpage'>" + ("<h2>Places in detail</h2>" if i == 0 else "")
             + "".join(card_html(c) for c in cards[i:i + 2]) + "</div>"
             for i in range(0, len(cards), 2)]
    return "<section class='section'>" + "".join(pages) + "</section>"


def pack_html(*, title: str, marking: str, period: str, produced: str, brief: str,
              notes: list[str], ranked: pd.DataFrame,
              ranked_columns: dict[str, tuple[str, int | None]],
              cards: Sequence[PlaceEvidence], tasked: pd.DataFrame | None = None,
              tasked_columns: dict[str, tuple[str, int | None]] | None = None,
              map_html: str = "", partner: bool = False) -> str:
    """Assemble the pack page from its parts (``brief`` from :func:`brief_html`,
    ``map_html`` from :func:`map_section`); ``notes`` go to the appendix."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>{_e(title)}</title><style>{_CSS}{CARD_CSS}</style></head><body>",
             _marking(marking, title, period, produced, "head"),
             "<table class='frame'><thead><tr><td><div class='frame-space'></div></td></tr>"
             "</thead><tfoot><tr><td><div class='frame-space'></div></td></tr></tfoot>"
             "<tbody><tr><td>",
             f"<h1>{_e(title)}</h1>"]
    if partner:
        parts.append("<p class='partner'>Partner version: aggregates only; counts under the "
                     "threshold are suppressed; no caller identifiers and no text from "
                     "records.</p>")
    parts += [brief, map_html, "<section class='section'><h2>Last meeting's tasked places"
              "</h2>"]
    if tasked is not None and len(tasked) and tasked_columns:
        parts.append(_table(tasked, tasked_columns))
    else:
        parts.append("<p class='meta'>No decisions recorded at an earlier meeting.</p>")
    parts.append("<h2>Ranked places</h2>" + _table(ranked, ranked_columns, "ranked")
                 + "</section>")
    if cards:
        parts.append(cards_section(cards))
    parts.append("<section class='section'><h2>Appendix: method and statistics</h2>"
                 "<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes)
                 + "</ul></section>")
    parts += ["</td></tr></tbody></table>", _marking(marking, title, period, produced, "foot"),
              "</body></html>"]
    return "".join(parts)
