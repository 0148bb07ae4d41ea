"""Charts as inline SVG from record.tables: daily heat maps and reconciliation small multiples.

* `daily_heatmap`: one row per station, one column per simulated day (the days present in
  record.tables["daily"], sorted), cells coloured by completeness or on-line ratio in fixed
  bands; equal neighbouring cells are merged so 46 stations × 180 days stay small. The right
  margin gives compliant days and the longest run of consecutive compliant columns; a dark
  bar marks the days the record says were not compliant (the bands are fixed, the limits
  are the criteria's, so the bar — not the colour — tells compliance).
* `reconciliation_panels`: one panel per station, the cumulative variance (% of sales) of each
  tank per day, with guide lines at ±0.5 % (investigate) and ±1 % (escalate), the industry
  rule of thumb of the domain brief — guides for the eye, not acceptance limits.
* `cheat_timeline`: simulated time across, one row per station with a cheat instance or an
  alert; each instance a bar from its first activation to its last deactivation (or the
  run's end) coloured by class (honest look-alikes grey, dashed), a tick at its class's
  time limit, and each alert a marker at its `as_of` shaped by the oracle's judgement.

Both return a list of SVG documents, each small enough for one printed A4 page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reports.svg import el, num, svg, text, title
from reports.text import target_text

if TYPE_CHECKING:
    from reports.cheats import AlertRow, CheatRow, CheatWarning

# (lower bound, colour, legend key); first band whose bound the value reaches
BANDS = ((1.0, "#1a7f37", "band.full"), (0.999, "#5aae61", "band.999"),
         (0.99, "#a6d96a", "band.99"), (0.95, "#fee08b", "band.95"),
         (0.9, "#fdae61", "band.90"), (-math.inf, "#d73027", "band.low"))
NO_DATA = "#d9d9d9"
NON_COMPLIANT = "#101828"  # bar under the days that were not compliant (both metrics' charts)
TANK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                "#e377c2", "#17becf")
GUIDES_PCT = ((0.5, "#e6a700"), (1.0, "#c0392b"))

# cheat classes (docs/cheats.md §2) and the alert judgements of acceptance/oracle.py
CLASS_COLOURS = {"PULSE": "#1f77b4", "PART": "#9467bd", "DATA": "#ff7f0e", "PRICE": "#17becf",
                 "STOCK": "#8c564b", "DELIV": "#e377c2"}
OTHER_CLASS = "#7f7f7f"
LOOK_FILL, LOOK_STROKE = "#d0d5dd", "#475467"
JUDGEMENT_COLOURS = {"explained": "#1a7f37", "false": "#d92d20", "operational": "#667085"}
DEADLINE = "#101828"
DAY_S = 86400.0

class Label(Protocol):
    """The label table charts draw with (reports.i18n.Labels): `t(key, **fields)` and
    `t.get(key, default)`."""

    def __call__(self, key: str, **fields: object) -> str: ...

    def get(self, key: str, default: str) -> str: ...


@dataclass(frozen=True)
class DailyRow:
    station_id: str
    day: Any
    completeness: float | None
    online_ratio: float | None
    compliant: bool | None


def daily_rows(rows: list[dict[str, Any]]) -> list[DailyRow]:
    out = []
    for i, r in enumerate(rows):
        where = f"record.tables['daily'][{i}]"
        _require(r, where, ("station_id", "day", "completeness", "online_ratio", "compliant"))
        out.append(DailyRow(str(r["station_id"]), r["day"],
                            _ratio(r["completeness"], f"{where}.completeness"),
                            _ratio(r["online_ratio"], f"{where}.online_ratio"),
                            None if r["compliant"] is None else bool(r["compliant"])))
    return out


def band(value: float | None) -> tuple[str, str]:
    """(colour, legend key) of a ratio."""
    if value is None:
        return NO_DATA, "band.none"
    for bound, colour, key in BANDS:
        if value >= bound:
            return colour, key
    raise AssertionError("unreachable: the last band has no lower bound")


def daily_heatmap(rows: list[DailyRow], metric: str, stations: list[str], t: Label,
                  per_chart: int = 50) -> list[str]:
    """Heat maps of `metric` ("completeness" | "online_ratio") per station and day, one SVG
    per `per_chart` stations so that a printed page never cuts a chart; [] without data."""
    if metric not in ("completeness", "online_ratio"):
        raise ValueError(f"daily_heatmap: unknown metric {metric!r}")
    if not rows:
        return []
    days = sorted({r.day for r in rows}, key=_day_key)
    col = {d: i for i, d in enumerate(days)}
    order = _station_order(stations, [r.station_id for r in rows])
    cells: dict[str, list[DailyRow | None]] = {s: [None] * len(days) for s in order}
    for r in rows:
        if cells[r.station_id][col[r.day]] is not None:
            raise ValueError(f"record.tables['daily']: station {r.station_id} has two rows "
                             f"for day {r.day!r}")
        cells[r.station_id][col[r.day]] = r
    return [_heatmap(order[i:i + per_chart], cells, days, metric, t)
            for i in range(0, len(order), per_chart)]


def _heatmap(order: list[str], cells: dict[str, list[DailyRow | None]], days: list[Any],
             metric: str, t: Label) -> str:
    label_w, row_h, top, right_w, fs = 64.0, 16.0, 30.0, 220.0, 12
    cw = min(40.0, max(3.0, 700.0 / len(days)))
    grid_w = cw * len(days)
    legend = [(colour, t(key)) for _b, colour, key in (*BANDS, (None, NO_DATA, "band.none"))]
    legend.append((NON_COMPLIANT, t("band.non_compliant")))
    legend_w = sum(18 + _text_width(label, fs) + 16 for _, label in legend)
    width = label_w + max(grid_w + right_w, legend_w)
    legend_y = top + row_h * len(order) + 14
    height = legend_y + 28
    body: list[str] = []
    step = max(1, math.ceil(len(days) / 9))
    for i in range(0, len(days), step):
        body.append(text(label_w + i * cw + cw / 2, top - 8, _day_label(days[i]),
                         font_size=fs, text_anchor="middle", fill="#333"))
    for y_i, sid in enumerate(order):
        y = top + y_i * row_h
        body.append(text(label_w - 6, y + row_h - 4, sid, font_size=fs, text_anchor="end"))
        line = cells[sid]
        start = 0
        while start < len(days):  # merge runs of equal bands into one rectangle
            colour, key = band(_metric(line[start], metric))
            end = start + 1
            while end < len(days) and band(_metric(line[end], metric))[1] == key:
                end += 1
            tip = f"{sid} {_day_label(days[start])}"
            tip += f"–{_day_label(days[end - 1])}" if end - start > 1 else ""
            body.append(el("rect", title(f"{tip}: {t(key)}"), x=label_w + start * cw,
                           y=y + 1, width=(end - start) * cw, height=row_h - 2, fill=colour))
            start = end
        compliant = [bool(c and c.compliant) for c in line]
        start = 0
        while start < len(days):  # mark runs of days with data that were not compliant
            if line[start] is None or compliant[start]:
                start += 1
                continue
            end = start + 1
            while end < len(days) and line[end] is not None and not compliant[end]:
                end += 1
            body.append(el("rect", x=label_w + start * cw, y=y + row_h - 5,
                           width=(end - start) * cw, height=3.0, fill=NON_COMPLIANT,
                           class_="non-compliant"))
            start = end
        body.append(text(label_w + grid_w + 8, y + row_h - 4,
                         t("chart.daily_right", ok=sum(compliant), days=len(days),
                           run=_longest_run(compliant)), font_size=fs - 1, fill="#333"))
    x = label_w
    for colour, label in legend:
        tall = colour != NON_COMPLIANT  # the marker's swatch looks like the marker
        body.append(el("rect", x=x, y=legend_y + (0 if tall else 8), width=14.0,
                       height=12.0 if tall else 3.0, fill=colour))
        body.append(text(x + 18, legend_y + 11, label, font_size=fs))
        x += 18 + _text_width(label, fs) + 16
    return svg(width, height, body, t(f"chart.{metric}"))


def reconciliation_panels(rows: list[dict[str, Any]], stations: list[str], t: Label,
                          panel_rows: int = 3) -> list[str]:
    """Small multiples: cumulative variance % per tank and day, one panel per station, one
    SVG per `panel_rows` rows of panels (so print pages break between them); [] without data."""
    series: dict[str, dict[Any, list[tuple[Any, float | None]]]] = {}
    for i, r in enumerate(rows):
        where = f"record.tables['reconciliation'][{i}]"
        _require(r, where, ("station_id", "tank", "day", "cumulative_pct"))
        pct = _number(r["cumulative_pct"], f"{where}.cumulative_pct")
        series.setdefault(str(r["station_id"]), {}).setdefault(r["tank"], []).append((r["day"], pct))
    if not series:
        return []
    days = sorted({d for tanks in series.values() for pts in tanks.values() for d, _ in pts},
                  key=_day_key)
    col = {d: i for i, d in enumerate(days)}
    order = _station_order(stations, list(series))
    per_row, pw, ph, gap = 4, 240.0, 150.0, 10.0
    width = per_row * (pw + gap)
    per_chart = per_row * panel_rows
    charts = []
    for c in range(0, len(order), per_chart):
        chunk = order[c:c + per_chart]
        height = math.ceil(len(chunk) / per_row) * (ph + gap) + 24
        body = [_guide_legend(t)]
        for k, sid in enumerate(chunk):
            body.append(_panel(sid, series[sid], col, len(days), (k % per_row) * (pw + gap),
                               24 + (k // per_row) * (ph + gap), pw, ph, t))
        charts.append(svg(width, height, body, t("chart.reconciliation")))
    return charts


def _panel(sid: str, tanks: dict[Any, list[tuple[Any, float | None]]], col: dict[Any, int],
           ndays: int, x0: float, y0: float, w: float, h: float, t: Label) -> str:
    left, top, bottom = 38.0, 18.0, 36.0
    pw, ph = w - left - 6, h - top - bottom
    values = [v for pts in tanks.values() for _, v in pts if v is not None]
    span = max([1.2] + [abs(v) * 1.1 for v in values])

    def ys(v: float) -> float:
        return y0 + top + ph / 2 - (v / span) * (ph / 2)

    def xs(day: Any) -> float:
        return x0 + left + (pw * col[day] / (ndays - 1) if ndays > 1 else pw / 2)

    parts = [el("rect", x=x0, y=y0, width=w, height=h, fill="#fff", stroke="#bbb"),
             text(x0 + 4, y0 + 13, sid, font_size=12, font_weight="bold"),
             el("line", x1=x0 + left, x2=x0 + left + pw, y1=ys(0), y2=ys(0), stroke="#888"),
             text(x0 + left - 3, ys(span) + 9, f"{span:+.1f}%", font_size=9, text_anchor="end"),
             text(x0 + left - 3, ys(-span), f"{-span:+.1f}%", font_size=9, text_anchor="end")]
    for pct, colour in GUIDES_PCT:
        if pct < span:
            for sign in (1, -1):
                parts.append(el("line", x1=x0 + left, x2=x0 + left + pw, y1=ys(sign * pct),
                                y2=ys(sign * pct), stroke=colour, stroke_dasharray="3 3"))
    legend = []
    for n, (tank, pts) in enumerate(sorted(tanks.items(), key=lambda kv: str(kv[0]))):
        colour = TANK_COLOURS[n % len(TANK_COLOURS)]
        pts = sorted(pts, key=lambda p: col[p[0]])
        for seg in _segments(pts):
            coords = " ".join(f"{xs(d):.1f},{ys(v):.1f}" for d, v in seg)
            if len(seg) == 1:
                parts.append(el("circle", cx=xs(seg[0][0]), cy=ys(seg[0][1]), r=2.0, fill=colour))
            else:
                parts.append(el("polyline", points=coords, fill="none", stroke=colour,
                                stroke_width=1.5))
        last = next((v for _, v in reversed(pts) if v is not None), None)
        shown = "—" if last is None else f"{last:+.2f}%"
        legend.append((colour, t("chart.tank", tank=tank) + f" {shown}"))
    for n, (colour, label) in enumerate(legend[:6]):
        lx = x0 + 6 + (n % 3) * 78
        ly = y0 + h - 20 + (n // 3) * 12
        parts.append(el("rect", x=lx, y=ly - 7, width=8.0, height=3.0, fill=colour))
        parts.append(text(lx + 10, ly, label, font_size=9))
    return el("g", "".join(parts), class_="panel")


def _guide_legend(t: Label) -> str:
    parts = []
    x = 4.0
    for pct, colour in GUIDES_PCT:
        parts.append(el("line", x1=x, x2=x + 20, y1=10.0, y2=10.0, stroke=colour,
                        stroke_dasharray="3 3"))
        label = t("chart.guide", pct=pct)
        parts.append(text(x + 24, 14, label, font_size=12))
        x += 24 + _text_width(label, 12) + 20
    return el("g", "".join(parts))


def cheat_timeline(cw: CheatWarning, names: dict[str, str], t: Label,
                   per_chart: int = 30) -> list[str]:
    """Cheat instances as bars and alerts as markers over the run, one row per station that
    has either, one SVG per `per_chart` stations; [] when there is neither."""
    by_station: dict[str, tuple[list[CheatRow], list[AlertRow]]] = {}
    rows = [d.row for d in cw.detections] + [la.row for la in cw.lookalikes]
    limits = {(d.row.station_id, d.row.cheat): d.limit for d in cw.detections}
    for r in rows:
        if r.first_start is not None:
            by_station.setdefault(r.station_id, ([], []))[0].append(r)
    placed = [a for a in cw.alerts if a.as_of is not None]
    for a in placed:
        by_station.setdefault(a.station_id, ([], []))[1].append(a)
    if not by_station:
        return []
    lo, hi = _time_span(cw, rows, placed)
    order = _station_order(list(names), list(by_station))
    unplaced = len(cw.alerts) - len(placed)
    return [_timeline(order[i:i + per_chart], by_station, limits, names, lo, hi, cw, t,
                      unplaced if i + per_chart >= len(order) else 0)
            for i in range(0, len(order), per_chart)]


def _time_span(cw: CheatWarning, rows: list[CheatRow], alerts: list[AlertRow]
               ) -> tuple[float, float]:
    """The run (record.scenario start and days), else the span of what is drawn."""
    seen = [x for r in rows for x in (r.first_start, r.last_end) if x is not None]
    seen += [a.as_of for a in alerts if a.as_of is not None]
    lo = cw.run_start if cw.run_start is not None else min(seen)
    hi = cw.run_end if cw.run_end is not None else max(seen)
    return (lo, hi) if hi > lo else (lo, lo + DAY_S)


def _lanes(rows: list[CheatRow], hi: float) -> list[int]:
    """A lane per bar so that overlapping instances of a station do not hide each other."""
    ends: list[float] = []
    out = []
    for r in rows:
        start = r.first_start or 0.0
        end = r.last_end if r.last_end is not None else hi
        lane = next((i for i, e in enumerate(ends) if e < start), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        out.append(lane)
    return out


def _timeline(order: list[str], by_station: dict[str, tuple[list[CheatRow], list[AlertRow]]],
              limits: dict[tuple[str, int], float | None], names: dict[str, str], lo: float,
              hi: float, cw: CheatWarning, t: Label, unplaced: int) -> str:
    fs, top, pw, bar_h, lane_gap, mark_h = 12, 30.0, 620.0, 10.0, 3.0, 14.0
    labels = {sid: _clip_width(f"{sid} {names.get(sid, '')}".strip(), 190.0, fs) for sid in order}
    label_w = max(64.0, max(_text_width(s, fs) for s in labels.values()) + 12)
    x0 = label_w

    def xs(ts: float) -> float:
        return x0 + pw * (min(max(ts, lo), hi) - lo) / (hi - lo)

    body: list[str] = []
    rows_y: list[tuple[str, float, float]] = []
    y = top
    for sid in order:
        cheats, alerts = by_station[sid]
        cheats = sorted(cheats, key=lambda r: (r.first_start or 0.0, r.cheat))
        lanes = _lanes(cheats, hi)
        n_lanes = max(lanes, default=-1) + 1
        h = 4 + n_lanes * (bar_h + lane_gap) + mark_h + 4
        rows_y.append((sid, y, h))
        for r, lane in zip(cheats, lanes, strict=True):
            by = y + 4 + lane * (bar_h + lane_gap)
            body.append(_bar(r, xs, by, bar_h, hi, cw, t))
            limit = limits.get((r.station_id, r.cheat))
            if limit is not None and r.first_start is not None \
                    and lo <= r.first_start + limit * DAY_S <= hi:
                dx = xs(r.first_start + limit * DAY_S)
                body.append(el("line", title(t("chart.cheat.deadline", days=f"{limit:g}")),
                               x1=dx, x2=dx, y1=by - 2, y2=by + bar_h + 2, stroke=DEADLINE,
                               stroke_width=2.0, class_="deadline"))
        my = y + 4 + n_lanes * (bar_h + lane_gap) + mark_h / 2
        for a in sorted(alerts, key=lambda a: (a.as_of or 0.0, a.id)):
            body.append(_marker(a.judgement, xs(a.as_of or lo), my, _alert_tip(a, cw, t)))
        y += h
    # the grid goes under the rows: stripes, separators and day ticks first
    grid: list[str] = []
    for k, (sid, ry, h) in enumerate(rows_y):
        if k % 2:
            grid.append(el("rect", x=x0, y=ry, width=pw, height=h, fill="#f9fafb"))
        grid.append(el("line", x1=x0, x2=x0 + pw, y1=ry + h, y2=ry + h, stroke="#eaecf0"))
        grid.append(text(x0 - 6, ry + h / 2 + 4, labels[sid], font_size=fs, text_anchor="end"))
    for ts, label in _day_ticks(lo, hi, cw.tz):
        grid.append(el("line", x1=xs(ts), x2=xs(ts), y1=top - 4, y2=y, stroke="#d0d5dd",
                       stroke_dasharray="2 3"))
        grid.append(text(xs(ts), top - 8, label, font_size=fs - 1, text_anchor="middle",
                         fill="#333"))
    grid.append(el("rect", x=x0, y=top, width=pw, height=y - top, fill="none", stroke="#98a2b3"))
    legend, lh = _timeline_legend(x0 - label_w + 4, y + 14, t, fs)
    if unplaced:
        legend.append(text(4, y + 14 + lh + 12, t("chart.cheat.unplaced", n=unplaced),
                           font_size=fs - 1, fill="#b54708"))
        lh += 18
    width = max(x0 + pw + 24, 720.0)  # room for the last day's label
    return svg(width, y + 14 + lh + 6, grid + body + legend, t("chart.cheat_timeline"))


def _bar(r: CheatRow, xs: Callable[[float], float], y: float, h: float, hi: float,
         cw: CheatWarning, t: Label) -> str:
    start = r.first_start or 0.0
    end = r.last_end if r.last_end is not None else hi
    x1, x2 = xs(start), xs(end)
    look = r.lookalike or r.cls == "LOOK"
    until = cw.local(r.last_end) if r.last_end is not None else t("chart.cheat.to_end")
    tip = (f"{r.station_id} · {t.get('kind.' + r.kind, r.kind)} ({r.kind}) · "
           f"{t.get('class.' + r.cls, r.cls)} · {cw.local(start)} – {until}")
    style: dict[str, object] = (
        {"fill": LOOK_FILL, "stroke": LOOK_STROKE, "stroke_dasharray": "3 2",
         "class_": "lookalike"} if look else
        {"fill": CLASS_COLOURS.get(r.cls, OTHER_CLASS), "class_": f"cheat cls-{r.cls}"})
    return el("rect", title(tip), x=x1, y=y, width=max(2.0, x2 - x1), height=h, **style)


def _marker(judgement: str, x: float, y: float, tip: str | None, r: float = 4.5) -> str:
    """explained: a circle; false: a diamond; operational: a square (colour by judgement);
    without a tip it is the legend's swatch."""
    colour = JUDGEMENT_COLOURS.get(judgement, OTHER_CLASS)
    cls = f"alert alert-{judgement}" if tip is not None else "legend"
    kids = title(tip) if tip is not None else ""
    if judgement == "explained":
        return el("circle", kids, cx=x, cy=y, r=r, fill=colour, stroke="#fff", class_=cls)
    if judgement == "false":
        d = (f"M{num(x)} {num(y - r - 1)}L{num(x + r + 1)} {num(y)}L{num(x)} {num(y + r + 1)}"
             f"L{num(x - r - 1)} {num(y)}Z")
        return el("path", kids, d=d, fill=colour, stroke="#fff", class_=cls)
    return el("rect", kids, x=x - r + 0.5, y=y - r + 0.5, width=2 * r - 1, height=2 * r - 1,
              fill=colour, stroke="#fff", class_=cls)


def _alert_tip(a: AlertRow, cw: CheatWarning, t: Label) -> str:
    return (f"{a.station_id} · {t.get('alert.' + a.kind, a.kind)} ({a.kind}) · "
            f"{target_text(t, a.device, a.nozzle, a.tank)} · {cw.local(a.as_of)} · "
            f"{t('judgement.' + a.judgement)}")


def _timeline_legend(x: float, y: float, t: Label, fs: int) -> tuple[list[str], float]:
    """Class swatches on one line, the look-alike, limit tick and alert markers on the next."""
    parts: list[str] = []
    lx = x
    for cls, colour in CLASS_COLOURS.items():
        label = t(f"class.{cls}")
        parts.append(el("rect", x=lx, y=y, width=14.0, height=10.0, fill=colour))
        parts.append(text(lx + 18, y + 9, label, font_size=fs))
        lx += 18 + _text_width(label, fs) + 14
    y2, lx = y + 20, x
    label = t("class.LOOK")
    parts.append(el("rect", x=lx, y=y2, width=14.0, height=10.0, fill=LOOK_FILL,
                    stroke=LOOK_STROKE, stroke_dasharray="3 2"))
    parts.append(text(lx + 18, y2 + 9, label, font_size=fs))
    lx += 18 + _text_width(label, fs) + 14
    label = t("chart.cheat.limit")
    parts.append(el("line", x1=lx + 6, x2=lx + 6, y1=y2 - 1, y2=y2 + 11, stroke=DEADLINE,
                    stroke_width=2.0))
    parts.append(text(lx + 16, y2 + 9, label, font_size=fs))
    lx += 16 + _text_width(label, fs) + 14
    for judgement in ("explained", "false", "operational"):
        label = t(f"judgement.{judgement}")
        parts.append(_marker(judgement, lx + 6, y2 + 5, None))
        parts.append(text(lx + 16, y2 + 9, label, font_size=fs))
        lx += 16 + _text_width(label, fs) + 14
    return parts, 32.0


def _day_ticks(lo: float, hi: float, tz: dt.tzinfo, most: int = 10) -> list[tuple[float, str]]:
    """Local midnights in [lo, hi], at most `most` of them, labelled MM-DD."""
    day = dt.datetime.fromtimestamp(lo, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if day.timestamp() < lo:
        day += dt.timedelta(days=1)
    step = max(1, math.ceil((hi - lo) / DAY_S / most))
    out = []
    while day.timestamp() <= hi:
        out.append((day.timestamp(), day.strftime("%m-%d")))
        day += dt.timedelta(days=step)
    return out


def _clip_width(s: str, width: float, size: float) -> str:
    if _text_width(s, size) <= width:
        return s
    while s and _text_width(s + "…", size) > width:
        s = s[:-1]
    return s + "…"


def _segments(pts: list[tuple[Any, float | None]]) -> list[list[tuple[Any, float]]]:
    """Runs of points with values (a gap in the data breaks the line)."""
    segs: list[list[tuple[Any, float]]] = [[]]
    for d, v in pts:
        if v is None:
            segs.append([])
        else:
            segs[-1].append((d, v))
    return [s for s in segs if s]


def _longest_run(flags: list[bool]) -> int:
    best = cur = 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    return best


def _text_width(s: str, size: float) -> float:
    """Rough advance width: CJK glyphs are square, Latin ones about 0.6 em."""
    return sum(size if ord(c) >= 0x2E80 else 0.6 * size for c in s)


def _metric(row: DailyRow | None, metric: str) -> float | None:
    return None if row is None else getattr(row, metric)


def _station_order(ledger: list[str], seen: list[str]) -> list[str]:
    """Ledger order first, then stations only the table knows, by id."""
    known = [s for s in ledger if s in set(seen)]
    return known + sorted(set(seen) - set(known))


def _day_key(day: Any) -> tuple[int, Any]:
    return (0, day) if isinstance(day, int | float) else (1, str(day))


def _day_label(day: Any) -> str:
    s = str(day)
    return s[5:10] if len(s) >= 10 and s[4] == "-" else s  # 2026-04-01 → 04-01


def _require(row: Any, where: str, keys: tuple[str, ...]) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{where}: missing {missing}")


def _number(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{where}: expected a number or null, got {v!r}")
    if math.isinf(v):
        raise ValueError(f"{where}: expected a finite number, got {v!r}")
    return None if math.isnan(v) else float(v)  # NaN: not measured, shown as no data


def _ratio(v: Any, where: str) -> float | None:
    x = _number(v, where)
    if x is not None and not 0.0 <= x <= 1.0 + 1e-9:
        raise ValueError(f"{where}: expected a ratio in [0, 1], got {v!r}")
    return x
