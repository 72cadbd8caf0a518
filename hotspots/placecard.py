"""The place card: one place's evidence, computed once and drawn once, for the tasking
pack and the app alike (what is tested is what is shown).

Stable API
----------
``place_evidence(row, incidents, *, period, ...) -> PlaceEvidence``
    Computes the evidence of one ranked place. ``row`` is one row of
    :func:`hotspots.rank.rank_units` (a ``pandas.Series`` or a dict: ``rank``,
    ``place_id``, ``label``, ``n``, ``score``, ``component_<name>``, ``points_<name>``
    and, when present, ``repeat_locations``, ``n_at_repeat_locations``,
    ``repeat_callers``, ``n_from_repeat_callers``, ``trend_label``). ``incidents`` are
    the place's own incidents (columns of :data:`hotspots.schema.INCIDENT_COLUMNS`:
    ``source``, ``category``, ``date``, ``hour``, ``location_key``, ``caller_key``)
    over the period and, for the 12-month series, the 11 months before it (fewer months
    are shown as 0: pass them all). ``decisions`` (rows of
    :func:`hotspots.store.read_decisions`) give the tasking history: those whose
    ``geometry_wkt`` intersects ``geometry`` (EPSG:27700) or, without a geometry, whose
    ``place_id`` is the row's. ``label_of`` turns a category key into its label
    (``config.label``). Nothing is modified; no I/O.

``card_html(evidence) -> str``
    The card as one escaped HTML fragment (a ``<div class='hs-card'>``) with its own
    scoped CSS in :data:`CARD_CSS` (include it once per page: ``card_css()``). Bars,
    the hour-by-weekday grid and the sparkline are inline SVG/CSS: no JavaScript, so it
    prints and works in ``st.html``/``st.markdown(unsafe_allow_html=True)``.

``component_bars_html(row, *, weights=None) -> str``
    The score's components of one ranked row as small bars (for a ranked table).

:class:`PlaceEvidence` is a frozen dataclass; every field is plain data (str, int,
float, tuples, a 7 x 24 numpy array), so the app may also draw it with its own charts.
A partner card (``partner=True``) holds only what the partner table shows: no category
counts, no hour grid, no monthly counts, no callers, no tasking text.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from .rank import COMPONENTS
from .summary import Period, in_period
from .trends import WEEKDAYS, patrol_windows, time_profile

#: How each score component is named on a card.
COMPONENT_LABELS: dict[str, str] = {
    "volume": "Volume", "density": "Density", "harm": "Harm",
    "repeat_locations": "Repeat locations", "repeat_callers": "Repeat callers",
    "trend": "Trend",
}

#: Months in the card's series (the period's month and the 11 before it).
SERIES_MONTHS = 12


@dataclass(frozen=True)
class Component:
    """One score component: ``scaled`` 0-1 (its rank among the places) and ``points``
    (its share of the score: weight x scaled / sum of weights)."""

    name: str
    label: str
    scaled: float
    points: float


@dataclass(frozen=True)
class Tasking:
    """One earlier decision on the place, with counts inside it before and since."""

    meeting_date: str
    owner: str
    actions: str
    review_date: str
    status: str
    outcome: str
    n_before: int | None
    n_since: int | None
    days: int


@dataclass(frozen=True)
class PlaceEvidence:
    """Everything a place card shows. See the module docstring."""

    rank: object
    place_id: str
    label: str
    score: float | None
    n: object
    components: tuple[Component, ...]
    categories: tuple[tuple[str, int], ...]  # (label, count), most first
    profile: np.ndarray | None  # 7 x 24 counts of timed records; None: partner
    n_timed: int
    windows: tuple[str, ...]
    months: tuple[tuple[str, int], ...]  # (YYYY-MM, count), oldest first
    trend_words: str
    repeat_locations: int | None
    n_at_repeat_locations: int | None
    repeat_callers: int | None
    n_from_repeat_callers: int | None
    tasking: tuple[Tasking, ...]
    explanation: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    flags: tuple[str, ...] = ()
    partner: bool = False
    trend_label: str | None = None

    @property
    def tasked_before(self) -> bool:
        return bool(self.tasking)


def _get(row, key, default=None):
    value = row.get(key, default) if isinstance(row, Mapping) else getattr(row, key, default)
    if isinstance(value, float) and np.isnan(value):
        return default
    return value


def _components(row) -> tuple[Component, ...]:
    out = []
    for name in COMPONENTS:
        scaled, points = _get(row, f"component_{name}"), _get(row, f"points_{name}")
        if scaled is None or points is None or isinstance(scaled, str):
            continue
        out.append(Component(name, COMPONENT_LABELS[name], float(scaled), float(points)))
    return tuple(out)


def _months(period_end: dt.date) -> list[str]:
    end = pd.Period(period_end.strftime("%Y-%m"), freq="M")
    return [str(end - k) for k in range(SERIES_MONTHS - 1, -1, -1)]


def month_series(incidents: pd.DataFrame, period_end: dt.date) -> tuple[tuple[str, int], ...]:
    """Incidents per month over the 12 months ending with ``period_end``'s month."""
    months = _months(period_end)
    counts = incidents["date"].astype(str).str[:7].value_counts()
    return tuple((m, int(counts.get(m, 0))) for m in months)


def _month_name(month: str) -> str:
    return dt.date.fromisoformat(month + "-01").strftime("%b %Y")


def trend_words(months: tuple[tuple[str, int], ...], trend_label: str | None = None) -> str:
    """The 12-month series in one plain sentence, with the tested trend when given.

    >>> trend_words((("2024-06", 2), ("2024-07", 4), ("2024-08", 9)), "rising")
    '9 in Aug 2024, up from 4 in Jul 2024; the most of the 3 months (3.0 a month before). \
Against the rest of the borough: rising.'
    """
    values = [n for _, n in months]
    if not values or not sum(values):
        text = f"No incidents in the {len(values)} months shown."
    else:
        last, prev = values[-1], values[-2] if len(values) > 1 else 0
        move = ("up from" if last > prev else "down from" if last < prev else "the same as")
        text = f"{last} in {_month_name(months[-1][0])}, {move} {prev}"
        if len(values) > 1:
            text += f" in {_month_name(months[-2][0])}"
        earlier = values[:-1]
        if earlier:
            if last > max(earlier):
                text += f"; the most of the {len(values)} months"
            elif last < min(earlier):
                text += f"; the fewest of the {len(values)} months"
            text += f" ({np.mean(earlier):.1f} a month before)"
        text += "."
    if trend_label:
        text += f" Against the rest of the borough: {trend_label}."
    return text


def _tasking(decisions: pd.DataFrame | None, incidents: pd.DataFrame, place_id: str,
             geometry, data_end: dt.date) -> tuple[Tasking, ...]:
    """Earlier decisions on the place, counts before and since each meeting in equal
    windows (whole police.uk months only, as in the pack's review)."""
    if decisions is None or not len(decisions):
        return ()
    if geometry is not None and "geometry_wkt" in decisions.columns:
        shapes = shapely.from_wkt(decisions["geometry_wkt"].to_numpy())
        mine = decisions.loc[shapely.intersects(shapes, geometry)]
    else:
        mine = decisions.loc[decisions["place_id"].astype(str) == str(place_id)]
    out = []
    for d in mine.sort_values("meeting_date").itertuples(index=False):
        meeting = dt.date.fromisoformat(str(d.meeting_date))
        days = (data_end - meeting).days + 1
        before = since = None
        if days > 0 and len(incidents):
            since = int(in_period(incidents, Period(meeting, data_end)).sum())
            before = int(in_period(incidents, Period(meeting - dt.timedelta(days=days),
                                                     meeting - dt.timedelta(days=1))).sum())
        out.append(Tasking(
            meeting_date=str(d.meeting_date), owner=str(getattr(d, "owner", "")),
            actions=str(getattr(d, "actions", "") or ""),
            review_date=str(getattr(d, "review_date", "") or ""),
            status=str(getattr(d, "status", None) or "open"),
            outcome=str(getattr(d, "outcome", None) or ""),
            n_before=before, n_since=since, days=max(days, 0)))
    return tuple(out)


def place_evidence(row, incidents: pd.DataFrame, *, period, decisions: pd.DataFrame | None
                   = None, geometry=None, label_of: Callable[[str], str] | None = None,
                   explanation: str = "", facts=(), flags=(), owner_names: Mapping | None
                   = None) -> PlaceEvidence:
    """The evidence of one ranked place (see the module docstring). ``period`` is the
    ranked period (a :class:`hotspots.summary.Period`); the category mix, hour grid and
    repeats count its incidents only, the series the 12 months ending with it."""
    label_of = label_of or str
    now = incidents.loc[in_period(incidents, period)] if len(incidents) else incidents
    mix = now["category"].astype(str).value_counts() if len(now) else pd.Series(dtype=int)
    profile = time_profile(now).to_numpy()
    windows = tuple(w["label"] for w in patrol_windows(profile)) if profile.sum() else ()
    months = month_series(incidents, period.end)
    tasks = _tasking(decisions, incidents, str(_get(row, "place_id")), geometry, period.end)
    if owner_names:
        tasks = tuple(Tasking(**{**t.__dict__, "owner": owner_names.get(t.owner, t.owner)})
                      for t in tasks)
    return PlaceEvidence(
        rank=_get(row, "rank"), place_id=str(_get(row, "place_id", "")),
        label=str(_get(row, "label", "")), score=_get(row, "score"), n=_get(row, "n", len(now)),
        components=_components(row),
        categories=tuple((label_of(k), int(v)) for k, v in mix.items()),
        profile=profile, n_timed=int(profile.sum()), windows=windows, months=months,
        trend_words=trend_words(months, _get(row, "trend_label")),
        repeat_locations=_int(_get(row, "repeat_locations")),
        n_at_repeat_locations=_int(_get(row, "n_at_repeat_locations")),
        repeat_callers=_int(_get(row, "repeat_callers")),
        n_from_repeat_callers=_int(_get(row, "n_from_repeat_callers")),
        tasking=tasks, explanation=explanation, facts=tuple(facts), flags=tuple(flags),
        trend_label=_get(row, "trend_label"))


def partner_evidence(row, *, label: str, facts=()) -> PlaceEvidence:
    """A partner card from one row of :func:`hotspots.export.partner_table` only."""
    return PlaceEvidence(
        rank=_get(row, "rank"), place_id=str(_get(row, "place_id", "")), label=label,
        score=None, n=_get(row, "n"), components=(), categories=(), profile=None,
        n_timed=0, windows=(), months=(), trend_words="", repeat_locations=None,
        n_at_repeat_locations=None, repeat_callers=None, n_from_repeat_callers=None,
        tasking=(), facts=tuple(facts), partner=True)


def _int(v) -> int | None:
    return None if v is None or isinstance(v, str) else int(v)


# --- rendering --------------------------------------------------------------------------

CARD_CSS = """
.hs-card{border:1px solid #999;border-radius:4px;padding:8px 10px;break-inside:avoid;
page-break-inside:avoid;font:9.5pt/1.3 system-ui,'Segoe UI',Arial,sans-serif;background:#fff;
color:#111}.hs-card p{margin:2px 0}
.hs-card h3{font-size:12pt;margin:0 0 4px}.hs-card .hs-meta{color:#444;font-size:8.5pt}
.hs-card h4{font-size:9.5pt;margin:6px 0 2px;color:#3f007d}
.hs-card .hs-cols{display:grid;grid-template-columns:1fr 1fr;gap:4px 14px}
.hs-bar{display:grid;grid-template-columns:8.5em 1fr 2.6em;align-items:center;gap:4px;
font-size:8.5pt}.hs-bar .hs-track{background:#eee;height:9px;border-radius:2px}
.hs-bar .hs-fill{background:#3f007d;height:9px;border-radius:2px}
.hs-bar .hs-fill.hs-cat{background:#e08214}.hs-bar span:last-child{text-align:right;
font-variant-numeric:tabular-nums}
.hs-card table{border-collapse:collapse;width:100%;font-size:8.5pt}
.hs-card td,.hs-card th{border:1px solid #ccc;padding:1px 3px;text-align:left;
vertical-align:top}
.hs-badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:8pt;color:#fff;
background:#777}.hs-badge.rising{background:#b2182b}.hs-badge.falling{background:#2166ac}
.hs-badge.tasked{background:#e08214}
.hs-card svg{display:block;max-width:100%}
"""


def card_css() -> str:
    """The card's stylesheet as a ``<style>`` element (once per page)."""
    return f"<style>{CARD_CSS}</style>"


def _e(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return html.escape(str(value), quote=True)


def _bar(label: str, share: float, text: str, cls: str = "") -> str:
    width = max(0.0, min(1.0, float(share))) * 100
    return (f"<div class='hs-bar'><span>{_e(label)}</span><div class='hs-track'>"
            f"<div class='hs-fill {cls}' style='width:{width:.0f}%'></div></div>"
            f"<span>{_e(text)}</span></div>")


def component_bars_html(row, *, components: tuple[Component, ...] | None = None) -> str:
    """The score's components as bars (length: the 0-1 scaled value; figure: points)."""
    comps = components if components is not None else _components(row)
    return "".join(_bar(c.label, c.scaled, f"{c.scaled:.2f}") for c in comps)


def heat_grid_svg(profile: np.ndarray) -> str:
    """A 7 x 24 hour-by-weekday grid, darker = busier, hours labelled every 3."""
    values = np.asarray(profile, dtype=float)
    peak = values.max() or 1.0
    cw, ch, left, top = 11, 10, 26, 10
    parts = [f"<svg class='hs-heat' viewBox='0 0 {left + 24 * cw} {top + 7 * ch}' "
             f"width='{left + 24 * cw}' height='{top + 7 * ch}' role='img' "
             "aria-label='Incidents by hour and weekday' font-size='7' "
             "font-family='sans-serif'>"]
    parts += [f"<text x='{left + h * cw}' y='7'>{h:02d}</text>" for h in range(0, 24, 3)]
    for d, (day, row) in enumerate(zip(WEEKDAYS, values, strict=True)):
        y = top + d * ch
        parts.append(f"<text x='0' y='{y + 8}'>{day}</text>")
        for h, v in enumerate(row):
            fill = (f"fill='#3f007d' fill-opacity='{0.1 + 0.9 * v / peak:.2f}'" if v
                    else "fill='#f4f4f4'")
            parts.append(f"<rect x='{left + h * cw}' y='{y}' width='{cw - 1}' "
                         f"height='{ch - 1}' {fill}><title>{day} {h:02d}:00: {int(v)}"
                         "</title></rect>")
    return "".join(parts) + "</svg>"


def sparkline_svg(months: tuple[tuple[str, int], ...]) -> str:
    """Monthly counts as a line with its first and last month and its peak labelled."""
    if not months:
        return ""
    values = [n for _, n in months]
    w, h, pad = 240, 44, 12
    top = max(values) or 1
    step = (w - 2 * pad) / max(len(values) - 1, 1)
    pts = [(pad + i * step, h - 12 - (h - 20) * v / top) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    lx, ly = pts[-1]
    return (f"<svg class='hs-spark' viewBox='0 0 {w} {h}' width='{w}' height='{h}' "
            "role='img' aria-label='Incidents per month' font-size='7' "
            "font-family='sans-serif'>"
            f"<polyline points='{line}' fill='none' stroke='#3f007d' stroke-width='1.5'/>"
            f"<circle cx='{lx:.1f}' cy='{ly:.1f}' r='2.5' fill='#b2182b'/>"
            f"<text x='{pad}' y='{h - 2}'>{_e(_month_name(months[0][0]))}</text>"
            f"<text x='{w - pad}' y='{h - 2}' text-anchor='end'>"
            f"{_e(_month_name(months[-1][0]))}: {values[-1]}</text>"
            f"<text x='{pad}' y='8'>peak {top}</text></svg>")


def _categories_html(ev: PlaceEvidence) -> str:
    total = sum(n for _, n in ev.categories) or 1
    rows = [_bar(label, n / total, f"{n}", "hs-cat") for label, n in ev.categories[:6]]
    rest = sum(n for _, n in ev.categories[6:])
    if rest:
        rows.append(_bar("other", rest / total, f"{rest}", "hs-cat"))
    return "".join(rows) or "<p class='hs-meta'>No incidents in the period.</p>"


def _repeats_html(ev: PlaceEvidence) -> str:
    parts = []
    if ev.repeat_locations is not None:
        parts.append(f"{ev.repeat_locations} repeat location(s)"
                     + (f", {ev.n_at_repeat_locations} incidents there"
                        if ev.n_at_repeat_locations is not None else ""))
    if ev.repeat_callers is not None:
        parts.append(f"{ev.repeat_callers} repeat caller(s)"
                     + (f", {ev.n_from_repeat_callers} incidents from them"
                        if ev.n_from_repeat_callers is not None else ""))
    return "; ".join(_e(p) for p in parts) or "–"


def _tasking_html(ev: PlaceEvidence) -> str:
    if not ev.tasking:
        return "<p class='hs-meta'>Not tasked at an earlier meeting.</p>"
    rows = "".join(
        f"<tr><td>{_e(t.meeting_date)}</td><td>{_e(t.owner)}</td><td>{_e(t.actions)}</td>"
        f"<td>{_e(t.status)}{': ' + _e(t.outcome) if t.outcome else ''}</td>"
        f"<td>{_e(t.n_before)} / {_e(t.n_since)} ({t.days} days each)</td></tr>"
        for t in ev.tasking)
    return ("<table><tr><th>Meeting</th><th>Owner</th><th>Actions</th><th>Status</th>"
            f"<th>Before / since</th></tr>{rows}</table>")


def _heading(ev: PlaceEvidence) -> str:
    trend = ev.trend_label
    badge = ""
    if trend:
        cls = trend if trend in ("rising", "falling") else ""
        badge = f" <span class='hs-badge {cls}'>{_e(trend)}</span>"
    if ev.tasked_before:
        badge += " <span class='hs-badge tasked'>tasked before</span>"
    return (f"<h3>{_e(ev.rank)}. {_e(ev.label)} <span class='hs-meta'>({_e(ev.place_id)})"
            f"</span>{badge}</h3>")


def card_html(ev: PlaceEvidence) -> str:
    """One place's card as escaped HTML (see the module docstring)."""
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in ev.facts)
    parts = [f"<div class='hs-card' data-place='{_e(ev.place_id)}'>", _heading(ev)]
    if ev.explanation:
        parts.append(f"<p class='hs-meta'>{_e(ev.explanation)}</p>")
    if ev.partner:
        parts.append(f"<table>{facts}</table></div>")
        return "".join(parts)
    when = (heat_grid_svg(ev.profile) + f"<p class='hs-meta'>Busiest: "
            f"{_e(', '.join(ev.windows))} ({ev.n_timed} timed records)</p>"
            if ev.n_timed else "<p class='hs-meta'>No times of day (police.uk rows are "
            "dated by month; nothing is invented).</p>")
    parts += [
        "<div class='hs-cols'><div><h4>Why it ranks</h4>",
        component_bars_html(None, components=ev.components),
        "</div><div><h4>What</h4>", _categories_html(ev), "</div>",
        "<div><h4>When (hour by weekday)</h4>", when, "</div>",
        "<div><h4>12 months</h4>", sparkline_svg(ev.months),
        f"<p class='hs-meta'>{_e(ev.trend_words)}</p></div></div>",
        f"<h4>Repeats</h4><p class='hs-meta'>{_repeats_html(ev)}</p>",
    ]
    if facts:
        parts.append(f"<table>{facts}</table>")
    if ev.flags:
        parts.append("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in ev.flags) + "</ul>")
    parts += ["<h4>Tasking history</h4>", _tasking_html(ev), "</div>"]
    return "".join(parts)
