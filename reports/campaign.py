"""The detection-power page of a campaign (检测能力评估) from its campaign.json.

One chart per cheat class: detection probability against days since the cheat started,
with the 95 % Wilson interval as a band; a table of the same figures; the false-alert rate
on honest stations with its exact Poisson bound; the honest noise level. Self-contained
HTML (inline SVG), the same bytes for the same campaign.json.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from reports.svg import el, num, svg, text, title
from reports.text import fmt_number

W, H = 300.0, 190.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 12.0, 26.0, 30.0


def _x(day: float, max_day: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * day / max_day


def _y(p: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1.0 - p)


def pd_chart(cls: dict[str, Any]) -> str:
    """PD-versus-days curve of one class, with its Wilson band and the 95 % line."""
    days = sorted(int(d) for d in cls["pd_by_day"])
    max_day = float(max(days)) if days else 1.0
    body = [el("rect", x=LEFT, y=TOP, width=W - LEFT - RIGHT, height=H - TOP - BOTTOM,
               fill="#fafafa", stroke="#ccc")]
    for p in (0.0, 0.5, 0.95, 1.0):
        y = _y(p)
        body.append(el("line", x1=LEFT, x2=W - RIGHT, y1=y, y2=y,
                       stroke="#c00" if p == 0.95 else "#ddd",
                       stroke_dasharray="4 3" if p == 0.95 else None))
        body.append(text(LEFT - 4, y + 4, f"{p:.0%}", font_size=10, text_anchor="end"))
    for d in days:
        body.append(text(_x(d, max_day), H - BOTTOM + 14, str(d), font_size=10,
                         text_anchor="middle"))
    body.append(text((LEFT + W - RIGHT) / 2, H - 4, "days since the cheat started",
                     font_size=10, text_anchor="middle"))
    pts = [(d, cls["pd_by_day"][str(d)], cls["pd_ci95_by_day"][str(d)]) for d in days
           if cls["pd_by_day"][str(d)] is not None]
    if pts:
        upper = " ".join(f"{num(_x(d, max_day))},{num(_y(ci[1]))}" for d, _, ci in pts)
        lower = " ".join(f"{num(_x(d, max_day))},{num(_y(ci[0]))}" for d, _, ci in
                         reversed(pts))
        body.append(el("polygon", points=f"{upper} {lower}", fill="#1f77b4",
                       fill_opacity="0.18", stroke="none"))
        body.append(el("polyline", points=" ".join(f"{num(_x(d, max_day))},{num(_y(p))}"
                                                   for d, p, _ in pts),
                       fill="none", stroke="#1f77b4", stroke_width="2"))
        for d, p, ci in pts:
            n = cls["n_by_day"][str(d)]
            body.append(el("circle", title(f"day {d}: PD {p:.1%} (95 % CI {ci[0]:.1%}–"
                                           f"{ci[1]:.1%}, n = {n})"),
                           cx=_x(d, max_day), cy=_y(p), r=3.0, fill="#1f77b4"))
    label = f"{cls['kind']} {cls['size']}".strip()
    body.append(text(LEFT, 16, label, font_size=12, font_weight="bold"))
    return svg(W, H, body, f"Detection probability of {label} against days")


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def render_campaign(doc: dict[str, Any]) -> str:
    pfa = doc["pfa_per_station_month"]
    noise = doc["noise"]
    rows = []
    for c in doc["classes"]:
        cells = "".join(
            f"<td>{_pct(c['pd_by_day'][d])}<br><small>{_pct(c['pd_ci95_by_day'][d][0])}–"
            f"{_pct(c['pd_ci95_by_day'][d][1])}, n={c['n_by_day'][d]}</small></td>"
            for d in sorted(c["pd_by_day"], key=int))
        rows.append(f"<tr><td>{html.escape(c['kind'])}</td><td>{html.escape(str(c['size']))}"
                    f"</td><td>{c['instances']}</td>{cells}<td>"
                    f"{fmt_number(c['median_days_to_detect'])}</td><td>"
                    f"{_pct(c['attribution_rate'])}</td></tr>")
    days = sorted(doc["classes"][0]["pd_by_day"], key=int) if doc["classes"] else []
    head = "".join(f"<th>PD ≤ {d} d</th>" for d in days)
    charts = "".join(f"<figure>{pd_chart(c)}</figure>" for c in doc["classes"])
    transport = doc.get("transport_check")
    transport_html = "" if not transport else (
        f"<h2>Full transport versus direct feed</h2><p>{transport['worlds']} worlds run through "
        f"Modbus, MQTT and the platform process: {transport['identical']} gave the same alerts "
        f"as the direct feed.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Detection campaign {html.escape(doc['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}}
td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;margin:4px}}
svg.chart{{max-width:100%;height:auto}}</style></head><body>
<h1>Detection campaign (检测能力评估): {html.escape(doc['name'])}</h1>
<p>{html.escape(doc.get('description', ''))}</p>
<p>Platform: {html.escape(doc.get('platform', ''))}; transport: {html.escape(doc['transport'])};
{doc['worlds']} worlds in {fmt_number(doc.get('wall_s'))} s.</p>
<h2>False alerts on honest stations</h2>
<p>{pfa['false_alerts']} false alerts in {fmt_number(pfa['station_months'])} honest
station-months: {fmt_number(pfa['estimate'])} per station-month (95 % upper bound
{fmt_number(pfa['ci95_high'])}).</p>
<h2>Honest noise</h2>
<p>Median over {noise['tanks']} honest tanks of the standard deviation of the daily variance
(book minus gauge, at 20 °C) as a share of the tank's mean daily sales:
{fmt_number(noise['median_daily_variance_sd_pct'])} % (10th–90th percentile
{fmt_number(noise.get('p10'))}–{fmt_number(noise.get('p90'))} %).</p>
<h2>Detection probability</h2>
<table><tr><th>kind</th><th>size</th><th>instances</th>{head}<th>median days</th>
<th>attribution</th></tr>{''.join(rows)}</table>
{charts}
{transport_html}
</body></html>
"""


def write_campaign_report(campaign_json: Path, out: Path | None = None) -> Path:
    doc = json.loads(Path(campaign_json).read_text(encoding="utf-8"))
    path = out or Path(campaign_json).with_name("campaign.html")
    path.write_text(render_campaign(doc), encoding="utf-8")
    return path
