"""Everything a report template shows, computed once from the run record (no logic in templates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acceptance.record import Measurement, RunRecord, verdict_of
from reports import charts
from reports.cheats import (
    OUTCOME_BADGE,
    OUTCOMES,
    AlertRow,
    CheatRow,
    CheatWarning,
    Detection,
    Lookalike,
    cheat_warning,
)
from reports.commerce import Commerce, commerce
from reports.credit import CreditSection, credit_section
from reports.i18n import Labels, labels
from reports.metrology import MetrologySection, metrology_section
from reports.outcomes import MeasurementGroup, RequirementView, requirement_views
from reports.rectification import RectificationItem, rectification_days, rectification_ledger
from reports.stations import Coverage, StationResult, coverage, station_results
from reports.subsidy import SubsidyRow, subsidy
from reports.tax import TaxSection, tax_section
from reports.text import clip, fmt_evidence, fmt_money, fmt_number, fmt_quantity, target_text

OP_SIGNS = {">=": "≥", "<=": "≤", "==": "=", ">": ">", "<": "<"}
# Signature blocks, per the plan's division of duties (label keys in reports/i18n)
COUNTY_SIGNERS = ("dept.county_group", "dept.county_amr", "dept.county_commerce",
                  "dept.county_tax", "dept.county_finance", "dept.county_data",
                  "dept.county_towns")
CITY_SIGNERS = ("dept.city_group", "dept.city_amr", "dept.city_commerce", "dept.city_tax",
                "dept.city_finance", "dept.city_data", "dept.county_government")
THREE_PARTY = ("party.maintainer", "party.verifier", "party.station")
METROLOGY_REQUIREMENT = "MET-1"
COMMERCE_REQUIREMENT = "COM-1"
TAX_REQUIREMENT = "TAX-1"
CREDIT_REQUIREMENT = "CRD-1"
CN_NUMERALS = "〇一二三四五六七八九十"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # acceptance.record.VERDICTS
    accepted: bool
    failed_must: tuple[str, ...]
    failed_should: tuple[str, ...]
    not_checked: tuple[str, ...]
    not_checked_must: tuple[str, ...]
    incomplete: tuple[str, ...]  # covered only partly by the run (e.g. a run too short)
    shortened_stability_days: int | None  # STB-1 period when the scenario lowered it


@dataclass
class ReportView:
    lang: str
    t: Labels
    record: RunRecord
    verdict: Verdict
    provenance: list[tuple[str, str]]
    requirements: list[RequirementView]
    stations: list[StationResult]
    coverage: Coverage
    subsidy_rows: list[SubsidyRow]
    subsidy_total: SubsidyRow
    rectification: list[RectificationItem]
    rectification_days: int
    charts: dict[str, list[str]]  # SVG documents per chart ([] without data)
    cheat: CheatWarning
    county_signers: tuple[str, ...] = COUNTY_SIGNERS
    city_signers: tuple[str, ...] = CITY_SIGNERS
    three_party: tuple[str, ...] = THREE_PARTY
    commerce: Commerce | None = None  # the city report's 商务运行分析 (reports/commerce.py)
    tax: TaxSection | None = None  # the city report's 以销核税 (reports/tax.py)
    # the city report's 计量器具检定台账 (reports/metrology.py)
    metrology_audit: MetrologySection | None = None
    credit: CreditSection | None = None  # the city report's 信用等级 (reports/credit.py)

    # --- helpers the templates call -------------------------------------------------------
    def heading(self, n: int, key: str) -> str:
        """Numbered section heading: 一、… in Chinese (official document style), 1. … in English."""
        if self.lang == "zh-CN" and 0 < n < 20:  # 一 … 十, then 十一 … 十九
            words = CN_NUMERALS[n] if n <= 10 else "十" + CN_NUMERALS[n - 10]
            return f"{words}、{self.t(key)}"
        return f"{n}. {self.t(key)}"

    def entry(self, rid: str) -> dict[str, Any]:
        return next(v.entry for v in self.requirements if v.id == rid)

    def title(self, rid: str) -> str:
        return self._pick(self.entry(rid), "title", rid)

    def department(self, rid: str) -> str:
        return self._pick(self.entry(rid), "department", self.t("dept.unassigned"))

    def outcome(self, outcome: str) -> str:
        return self.t(f"outcome.{outcome}")

    def station_name(self, sid: str | None) -> str:
        if sid is None:
            return self.t("fleet_wide")
        return next((s.name for s in self.stations if s.station_id == sid), sid)

    def station_town(self, sid: str | None) -> str:
        return next((s.town for s in self.stations if s.station_id == sid), "—")

    def quantity(self, value: Any, unit: str) -> str:
        if value is None:
            return self.t("value.none")
        return fmt_quantity(value, unit, self.t.get(f"unit.{unit}", unit))

    def limit(self, m: Measurement | MeasurementGroup) -> str:
        limits = m.limits if isinstance(m, MeasurementGroup) else (m.limit,)
        shown = (self.quantity(limits[0], m.unit) if len(limits) == 1 else
                 f"{self.quantity(limits[0], m.unit)} … {self.quantity(limits[-1], m.unit)}")
        return f"{OP_SIGNS[m.op]} {shown}"

    def measured(self, m: Measurement) -> str:
        """A measurement's value; a null one as its name's own words when it has some
        (a cheat never alerted is "未预警", not "未测得")."""
        if m.value is None:
            return self.t.get(f"value.none.{m.name}", self.t("value.none"))
        return self.quantity(m.value, m.unit)

    def problem(self, m: Measurement) -> str:
        text = self.t("problem", name=m.name, value=self.measured(m), limit=self.limit(m))
        kind = m.evidence.get("kind") if isinstance(m.evidence, dict) else None
        label = self.t.get(f"kind.{kind}", "") if isinstance(kind, str) else ""
        return f"{label} {text}" if label else text  # which cheat, for a per-cheat figure

    def evidence(self, m: Measurement) -> list[tuple[str, str]]:
        return fmt_evidence(m.evidence)

    def money(self, amount: int) -> str:
        return fmt_money(amount)

    def number(self, v: Any) -> str:
        return fmt_number(v)

    def pct(self, v: float) -> str:
        return f"{v:.1f}%"

    def clip(self, s: Any, n: int = 240) -> str:
        return clip(s, n)

    # --- cheat warning (作弊预警) ----------------------------------------------------------
    def local(self, ts: float | None) -> str:
        return self.cheat.local(ts)

    def cheat_kind(self, kind: str) -> str:
        return self.t.get(f"kind.{kind}", kind)

    def alert_kind(self, kind: str | None) -> str:
        return "—" if kind is None else self.t.get(f"alert.{kind}", kind)

    def cheat_class(self, cls: str) -> str:
        return self.t.get(f"class.{cls}", cls)

    def target(self, device: str | None, nozzle: object, tank: object) -> str:
        return target_text(self.t, device, nozzle, tank)

    def cheat_target(self, r: CheatRow) -> str:
        return self.target(r.device, r.nozzle, r.tank)

    def alert_target(self, a: AlertRow) -> str:
        return self.target(a.device, a.nozzle, a.tank)

    def detect_time(self, d: Detection) -> str:
        """Days to detect against the class limit: 0.21 天（≤ 1 天）."""
        unit = self.t("unit.days")
        shown = "—" if d.row.days_to_detect is None else f"{d.row.days_to_detect:.2f} {unit}"
        if d.limit is None:
            return shown
        return self.t("cheat.vs_limit", value=shown, limit=f"{d.limit:g} {unit}")

    def attribution(self, d: Detection) -> tuple[str, str]:
        """(text, badge outcome) of whether the alerts named the right target."""
        level = self.t.get(f"cheat.level.{d.row.attribution}", d.row.attribution)
        if not d.row.detected:
            return self.t("cheat.attr_none"), "not_checked"
        ok = bool(d.row.attributed)
        return (self.t("cheat.attr_ok" if ok else "cheat.attr_wrong", level=level),
                "pass" if ok else "fail")

    def cheat_outcome(self, outcome: str) -> tuple[str, str]:
        """(text, badge outcome) of a detection outcome."""
        return self.t(f"cheat.o.{outcome}"), OUTCOME_BADGE[outcome]

    def cheat_counts(self) -> str:
        """Cheat instances by outcome, the non-zero ones: 按时预警 2 · 超时 1 · …"""
        return " · ".join(f"{self.t('cheat.o.' + o)} {self.cheat.counts[o]}"
                          for o in OUTCOMES if self.cheat.counts.get(o))

    def lookalike_outcome(self, la: Lookalike) -> tuple[str, str]:
        """(text, badge outcome): an honest look-alike must raise no cheat alert."""
        if la.row.first_start is None:
            return self.t("cheat.o.not_active"), "not_checked"
        if la.false_alerts:
            return self.t("look.o.false", n=len(la.false_alerts)), "fail"
        return self.t("look.o.clean"), "pass"

    def judgement(self, judgement: str) -> str:
        return self.t(f"judgement.{judgement}")

    def _pick(self, entry: dict[str, Any], field: str, default: str) -> str:
        first, second = ("zh", "en") if self.lang == "zh-CN" else ("en", "zh")
        return str(entry.get(f"{field}_{first}") or entry.get(f"{field}_{second}") or default)

    @property
    def commerce_requirement(self) -> RequirementView | None:
        return next((v for v in self.requirements if v.id == COMMERCE_REQUIREMENT), None)

    @property
    def tax_requirement(self) -> RequirementView | None:
        return next((v for v in self.requirements if v.id == TAX_REQUIREMENT), None)

    @property
    def metrology(self) -> RequirementView | None:
        return next((v for v in self.requirements if v.id == METROLOGY_REQUIREMENT), None)

    @property
    def credit_requirement(self) -> RequirementView | None:
        return next((v for v in self.requirements if v.id == CREDIT_REQUIREMENT), None)


def build_view(record: RunRecord, lang: str = "zh-CN") -> ReportView:
    t = labels(lang)
    reqs = requirement_views(record)
    _check_verdict(record)
    stations = station_results(record)
    rows, total = subsidy(stations, record.accepted)
    ledger_ids = [s.station_id for s in stations]
    daily = charts.daily_rows(record.tables.get("daily", []))
    cheat = cheat_warning(record, ledger_ids)
    return ReportView(
        lang=lang, t=t, record=record, verdict=_verdict(record, reqs),
        provenance=_provenance(record, t), requirements=reqs, stations=stations,
        coverage=coverage(stations), subsidy_rows=rows, subsidy_total=total,
        rectification=rectification_ledger(record), rectification_days=rectification_days(record),
        cheat=cheat, commerce=commerce(record.tables, t), tax=tax_section(record, ledger_ids),
        metrology_audit=metrology_section(record, ledger_ids),
        credit=credit_section(record, ledger_ids),
        charts={
            "completeness": charts.daily_heatmap(daily, "completeness", ledger_ids, t),
            "online_ratio": charts.daily_heatmap(daily, "online_ratio", ledger_ids, t),
            "reconciliation": charts.reconciliation_panels(
                record.tables.get("reconciliation", []), ledger_ids, t),
            "cheat_timeline": charts.cheat_timeline(
                cheat, {s.station_id: s.name for s in stations}, t),
        })


def _check_verdict(record: RunRecord) -> None:
    """The stored verdict must follow from the stored outcomes (a report never papers over)."""
    expected = verdict_of(record.requirements, record.complete)
    if record.verdict != expected:
        raise ValueError(f"record.verdict is {record.verdict!r} but its MUST requirements "
                         f"make it {expected!r} (failed: {record.failed() or 'none'}; "
                         f"not proven: {record.unproven_must() or 'none'})")


def _verdict(record: RunRecord, reqs: list[RequirementView]) -> Verdict:
    bad = [v.outcome for v in reqs if v.outcome.outcome in ("fail", "error")]
    unchecked = [v.outcome for v in reqs if v.outcome.outcome == "not_checked"]
    # the stability checker's scope measurement says whether the scenario shortened STB-1
    scope = next((m.evidence for m in record.measurements
                  if m.name == "stability.run_days" and m.evidence.get("shortened")), None)
    return Verdict(verdict=record.verdict, accepted=record.accepted,
                   failed_must=tuple(o.id for o in bad if o.level == "MUST"),
                   failed_should=tuple(o.id for o in bad if o.level != "MUST"),
                   not_checked=tuple(o.id for o in unchecked),
                   not_checked_must=tuple(o.id for o in unchecked if o.level == "MUST"),
                   incomplete=tuple(v.outcome.id for v in reqs
                                    if v.outcome.outcome == "incomplete"),
                   shortened_stability_days=scope["stability_days"] if scope else None)


def _provenance(record: RunRecord, t: Labels) -> list[tuple[str, str]]:
    sc, h = record.scenario, record.harness
    rows = [("prov.run_id", record.run_id), ("prov.created_at", record.created_at),
            ("prov.scenario", sc.get("name")), ("prov.scenario_path", sc.get("path")),
            ("prov.digest", sc.get("digest")), ("prov.seed", sc.get("seed")),
            ("prov.start", sc.get("start")), ("prov.days", sc.get("days")),
            ("prov.harness_version", h.get("version")), ("prov.git_commit", h.get("git_commit")),
            ("prov.format", record.format)]
    out = [(t(k), "—" if v is None else clip(v)) for k, v in rows]
    for key, value in _flatten(record.sut, "sut"):
        out.append((key, clip(value)))
    return out


def _flatten(d: Any, prefix: str) -> list[tuple[str, str]]:
    """Nested SUT description as dotted keys (sut.collector.version = 1.2)."""
    if isinstance(d, dict):
        out: list[tuple[str, str]] = []
        for k in sorted(d, key=str):
            out += _flatten(d[k], f"{prefix}.{k}")
        return out
    if isinstance(d, list):
        return [(prefix, ", ".join(fmt_number(x) if isinstance(x, int | float) else str(x)
                                   for x in d))]
    return [(prefix, fmt_number(d) if isinstance(d, int | float) or d is None else str(d))]
