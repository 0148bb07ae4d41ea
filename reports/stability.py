"""The stability report (连续稳定运行监测报告) of `forecourt observe`, from its run record.

It reuses the run reports' machinery — the same view (verdict, requirements, heat maps,
provenance, signatures), labels and base template — and adds the observation's own tables
from `record.tables`: `observe_fleet` (daily, with the cumulative run of days every station
was compliant), `observe_cumulative` (per station), `observe_daily` (per station and day;
the report lists the days that were not compliant) and `observe_alerts` (alert lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acceptance.record import RunRecord
from reports.render import environment
from reports.view import ReportView, build_view

TEMPLATE = "stability.html.j2"
MAX_LISTED_DAYS = 500  # non-compliant station-days listed; the rest are counted


@dataclass(frozen=True)
class StabilitySection:
    fleet: list[dict[str, Any]]
    cumulative: list[dict[str, Any]]
    bad_days: list[dict[str, Any]]  # station-days not compliant (first MAX_LISTED_DAYS)
    bad_total: int
    alerts: list[dict[str, Any]]
    measurement: dict[str, Any]  # stability.run_days' evidence and value
    required_days: float
    observed_days: float | None

    def ratio(self, v: float | None) -> str:
        return "—" if v is None else f"{v * 100:.2f}%"

    def days(self, v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"


def stability_section(record: RunRecord) -> StabilitySection:
    tables = record.tables
    daily = tables.get("observe_daily", [])
    bad = [r for r in daily if not r.get("compliant")]
    scope = next((m for m in record.measurements if m.name == "stability.run_days"), None)
    return StabilitySection(
        fleet=tables.get("observe_fleet", []), cumulative=tables.get("observe_cumulative", []),
        bad_days=bad[:MAX_LISTED_DAYS], bad_total=len(bad),
        alerts=tables.get("observe_alerts", []),
        measurement={} if scope is None else dict(scope.evidence),
        required_days=float(record.criteria.get("stability_days", 180)),
        observed_days=None if scope is None or scope.value is None else float(scope.value))


def render_stability_html(record: RunRecord, lang: str = "zh-CN") -> str:
    view: ReportView = build_view(record, lang)
    return environment().get_template(TEMPLATE).render(
        v=view, t=view.t, s=stability_section(record))


def render_stability(record: RunRecord, path: Path | str, *, lang: str = "zh-CN") -> Path:
    """Write the stability report; the same record and language give the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_stability_html(record, lang), encoding="utf-8")
    tmp.replace(path)
    return path
