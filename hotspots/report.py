"""The tasking pack: one self-contained HTML page (map, ranked table, a card per place,
last meeting's tasked places) that opens offline apart from map tiles and prints on A4.

Every value is escaped here; record text can never become markup. The partner version
is built from the minimised tables of :func:`hotspots.export.partner_table` only (its
cards too): no caller keys, no record text, no value that gives a small count away.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_CSS = """
:root{font:11pt/1.35 system-ui,-apple-system,'Segoe UI',Arial,sans-serif;color:#111}
body{margin:0 auto;max-width:1100px;padding:12px}
h1{font-size:18pt;margin:0 0 4px}h2{font-size:14pt;margin:18px 0 6px;
border-bottom:2px solid #3f007d}h3{font-size:12pt;margin:0 0 4px}
.meta{color:#444;font-size:9.5pt}.notes li{font-size:9.5pt;color:#333}
table{border-collapse:collapse;width:100%;font-size:9pt}
th,td{border:1px solid #bbb;padding:2px 4px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
.map{width:100%;height:520px;border:1px solid #999}
.cards{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.card{border:1px solid #999;border-radius:4px;padding:8px;break-inside:avoid;
page-break-inside:avoid}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:8.5pt;color:#fff}
.rising{background:#b2182b}.falling{background:#2166ac}.steady{background:#777}
table.profile td{width:3.5%;height:9px;padding:0;border:1px solid #eee}
table.profile th{font-size:7pt;font-weight:normal;padding:0 2px}
.partner{background:#fff3cd;border:1px solid #e0c060;padding:4px 8px}
@media (max-width:700px){.cards{grid-template-columns:1fr}.map{height:380px}}
@page{size:A4;margin:12mm}
@media print{body{max-width:none;padding:0}.map{height:150mm}
h2{break-after:avoid}.cards{display:block}.card{margin-bottom:6px}
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


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, int | None]]) -> str:
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def profile_table(profile: pd.DataFrame | None) -> str:
    """A 7 x 24 hour-by-weekday grid shaded by count (darker = busier)."""
    if profile is None or not np.asarray(profile).sum():
        return ("<p class='meta'>No times of day for this place (police.uk rows are dated "
                "by month only; nothing is invented).</p>")
    values = np.asarray(profile, dtype=float)
    peak = values.max()
    head = "<tr><th></th>" + "".join(f"<th>{h:02d}</th>" if h % 3 == 0 else "<th></th>"
                                     for h in range(24)) + "</tr>"
    body = []
    for d, row in zip(WEEKDAYS, values, strict=True):
        cells = "".join(
            f"<td title='{d} {h:02d}:00 {int(v)}' style='background:rgba(63,0,125,"
            f"{0.08 + 0.92 * v / peak:.2f})'></td>" if v else "<td></td>"
            for h, v in enumerate(row))
        body.append(f"<tr><th>{d}</th>{cells}</tr>")
    return f"<table class='profile'>{head}{''.join(body)}</table>"


def _trend_badge(trend: str) -> str:
    cls = {"rising": "rising", "falling": "falling"}.get(trend, "steady")
    return f"<span class='badge {cls}'>{_e(trend)}</span>"


def card_html(card: dict) -> str:
    """One place's evidence. Keys: rank, label, place_id, explanation, facts (list of
    (name, value) pairs), trend, windows (list of labels), profile, flags (list); no
    badge without a trend and no line without an explanation (the partner version)."""
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in card["facts"])
    windows = (", ".join(_e(w) for w in card["windows"]) if card.get("windows")
               else "no times of day recorded")
    flags = "".join(f"<li>{_e(f)}</li>" for f in card.get("flags", []))
    when = ("" if card.get("partner") else  # hour-by-day counts are small counts
            f"<p><b>Patrol windows:</b> {windows}</p>{profile_table(card.get('profile'))}")
    badge = _trend_badge(card["trend"]) if card.get("trend") else ""
    explanation = (f"<p class='meta'>{_e(card['explanation'])}</p>" if card.get("explanation")
                   else "")
    return (
        f"<div class='card'><h3>{_e(card['rank'])}. {_e(card['label'])} "
        f"<span class='meta'>({_e(card['place_id'])})</span> {badge}"
        f"</h3>{explanation}<table>{facts}</table>"
        + when + (f"<ul>{flags}</ul>" if flags else "") + "</div>")


def pack_html(*, title: str, subtitle: str, notes: list[str], ranked: pd.DataFrame,
              ranked_columns: dict[str, tuple[str, int | None]], cards: list[dict],
              tasked: pd.DataFrame | None = None,
              tasked_columns: dict[str, tuple[str, int | None]] | None = None,
              map_page: str | None = None, partner: bool = False) -> str:
    """Assemble the pack page. ``map_page`` is a whole map HTML page, embedded offline
    through an iframe ``srcdoc`` (escaped, so it cannot break out of the attribute)."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1><p class='meta'>{_e(subtitle)}</p>"]
    if partner:
        parts.append("<p class='partner'>Partner version: aggregates only; counts under the "
                     "threshold are suppressed; no caller identifiers and no text from "
                     "records.</p>")
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append("<h2>Last meeting's tasked places</h2>")
    if tasked is not None and len(tasked) and tasked_columns:
        parts.append(_table(tasked, tasked_columns))
    else:
        parts.append("<p class='meta'>No decisions recorded at an earlier meeting.</p>")
    if map_page:
        parts.append("<h2>Map</h2><iframe class='map' title='Hotspot map' srcdoc=\""
                     + html.escape(map_page, quote=True) + "\"></iframe>")
    parts.append("<h2>Ranked places</h2>" + _table(ranked, ranked_columns))
    parts.append("<h2>Places in detail</h2><div class='cards'>"
                 + "".join(card_html(c) for c in cards) + "</div>")
    parts.append("</body></html>")
    return "".join(parts)
