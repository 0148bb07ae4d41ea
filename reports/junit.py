"""JUnit XML from the run record: one test case per requirement, for CI.

Outcome mapping: `pass` → passed, `fail` → <failure> carrying the failing measurements (a
failing SHOULD requirement is a failure too, typed "SHOULD", though it does not refuse
acceptance — the `verdict` property says accepted, not_accepted or incomplete), `not_checked`
and `incomplete` (the run did not cover it, e.g. too few days) → <skipped>, `error` → <error> with the checker's message. Suite properties carry the scenario
digest, seed and harness commit, so a CI log names exactly what was run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from acceptance.record import OUTCOMES, Measurement, RunRecord
from reports.outcomes import requirement_views
from reports.text import clip, fmt_evidence, fmt_number, xml_safe

FAILURES_LISTED = 50  # failing measurements written into one <failure> body


def junit_tree(record: RunRecord) -> ET.ElementTree:
    scenario = str(record.scenario.get("name") or "scenario")
    classname = f"forecourt.{scenario}"
    views = requirement_views(record)
    counts = {o: sum(v.outcome.outcome == o for v in views) for o in OUTCOMES}
    attrs = {"tests": str(len(views)), "failures": str(counts["fail"]),
             "errors": str(counts["error"]),
             "skipped": str(counts["not_checked"] + counts["incomplete"]),
             "time": "0"}
    root = ET.Element("testsuites", {"name": "forecourt", **attrs})
    suite = ET.SubElement(root, "testsuite", {
        "name": xml_safe(classname), **attrs, "timestamp": xml_safe(record.created_at),
        "id": xml_safe(record.run_id)})
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", record.run_id), ("scenario", scenario),
                        ("scenario_digest", record.scenario.get("digest")),
                        ("seed", record.scenario.get("seed")),
                        ("git_commit", record.harness.get("git_commit")),
                        ("harness_version", record.harness.get("version")),
                        ("accepted", record.accepted), ("verdict", record.verdict)):
        ET.SubElement(props, "property", {"name": name, "value": xml_safe(_text(value))})
    for v in views:
        title = v.entry.get("title_en") or v.entry.get("title_zh") or ""
        case = ET.SubElement(suite, "testcase", {
            "classname": xml_safe(classname), "name": xml_safe(f"{v.id} {title}".strip()),
            "time": "0"})
        o = v.outcome
        if o.outcome == "fail":
            bad = [m for m in record.measurements
                   if m.requirement == v.id and not m.passed and not m.scope]
            el = ET.SubElement(case, "failure", {
                "type": o.level,
                "message": xml_safe(clip(f"{len(bad)} of {v.measured} measurements out of "
                                         f"limits: {_first_names(bad)}", 500))})
            el.text = xml_safe(_failure_body(bad, o.summary))
        elif o.outcome == "error":
            el = ET.SubElement(case, "error", {
                "type": "checker error", "message": xml_safe(clip(o.error or o.summary, 500))})
            el.text = xml_safe(o.error or o.summary)
        elif o.outcome in ("not_checked", "incomplete"):
            ET.SubElement(case, "skipped", {"message": xml_safe(
                f"{o.outcome.replace('_', ' ')}: {o.summary}")})
        ET.SubElement(case, "system-out").text = xml_safe(o.summary)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(record: RunRecord, path: Path | str) -> Path:
    path = Path(path)
    junit_tree(record).write(path, encoding="utf-8", xml_declaration=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n")
    return path


def _failure_body(bad: list[Measurement], summary: str) -> str:
    lines = [summary]
    for m in bad[:FAILURES_LISTED]:
        where = m.station_id or "fleet-wide"
        ev = "; ".join(f"{k}: {val}" for k, val in fmt_evidence(m.evidence))
        lines.append(f"{where}: {m.name} = {fmt_number(m.value)} {m.unit}, required "
                     f"{m.op} {fmt_number(m.limit)}" + (f" [{ev}]" if ev else ""))
    if len(bad) > FAILURES_LISTED:
        lines.append(f"… {len(bad) - FAILURES_LISTED} more failing measurements in record.json")
    return "\n".join(lines)


def _first_names(bad: list[Measurement]) -> str:
    names = sorted({m.name for m in bad})
    return ", ".join(names) if names else "no failing measurement recorded"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
