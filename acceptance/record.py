"""The run record (record.json): every measurement, each requirement's outcome, the verdict.

It is the single source for verdicts and reports: checkers produce `Measurement`s from a
run directory, `decide` turns them into requirement outcomes and a verdict, and reports/
renders the record without looking at anything else. The schema is in docs/run-record.md.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORD_FORMAT = "forecourt-record/1"
OPS = {">=": lambda v, lim: v >= lim, "<=": lambda v, lim: v <= lim,
       "==": lambda v, lim: v == lim, ">": lambda v, lim: v > lim, "<": lambda v, lim: v < lim}
# incomplete: measured as far as the run went, but the run did not cover what the requirement
# asks (e.g. fewer days than STB-1's stability period)
OUTCOMES = ("pass", "fail", "not_checked", "error", "incomplete")
# accepted (exit 0); not accepted: a MUST requirement failed (exit 1); incomplete: none failed
# but one was not checked, errored or not covered by the run (exit 3). Exit 2: could not run.
VERDICTS = {"accepted": 0, "not_accepted": 1, "incomplete": 3}
VERDICT_WORDS = {"accepted": "ACCEPTED", "not_accepted": "NOT ACCEPTED",
                 "incomplete": "INCOMPLETE"}


@dataclass(frozen=True)
class Measurement:
    """One measured figure against its limit (OpenHTF-style), with evidence."""

    requirement: str  # e.g. "DAT-1"
    name: str  # e.g. "transactions.received_once_ratio"
    value: float | int | None
    op: str  # one of OPS
    limit: float | int
    unit: str  # "ratio", "records", "s", "days", "MiB", …
    station_id: str | None = None  # None: fleet-wide
    evidence: dict[str, Any] = field(default_factory=dict)  # which stations/records, small
    # True: a figure of what the run covered, not of the SUT (e.g. its days); failing it
    # leaves the requirement incomplete rather than failed
    scope: bool = False
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"measurement {self.name}: op {self.op!r} is not one of {list(OPS)}")
        ok = (self.value is not None and not (isinstance(self.value, float) and math.isnan(self.value))
              and OPS[self.op](self.value, self.limit))
        object.__setattr__(self, "passed", bool(ok))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        d = {k: v for k, v in d.items() if k != "passed"}
        return cls(**d)


@dataclass(frozen=True)
class RequirementOutcome:
    id: str
    level: str  # MUST | SHOULD
    outcome: str  # one of OUTCOMES
    summary: str  # one line, in English; reports translate via the catalogue
    error: str | None = None  # when the checker itself failed


@dataclass
class RunRecord:
    run_id: str
    created_at: str  # ISO 8601, wall clock of the harness
    scenario: dict[str, Any]  # name, path, digest, seed, start, days
    harness: dict[str, Any]  # version, git_commit
    sut: dict[str, Any]  # what was under test, versions
    stations: list[dict[str, Any]]  # the station ledger (站点台账) rows in scope
    criteria: dict[str, Any]  # thresholds as used (defaults filled in)
    measurements: list[Measurement]
    requirements: list[RequirementOutcome]
    accepted: bool  # verdict == "accepted"
    verdict: str = ""  # one of VERDICTS; filled from `accepted` for older records
    catalogue: list[dict[str, Any]] = field(default_factory=list)  # requirement entries used
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # data for charts
    notes: list[str] = field(default_factory=list)  # harness problems, drain timeouts, …
    complete: bool = True  # False: the run was interrupted (SIGTERM, SIGINT) before its end
    format: str = RECORD_FORMAT

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = "accepted" if self.accepted else "not_accepted"
        if self.verdict not in VERDICTS or self.accepted != (self.verdict == "accepted"):
            raise ValueError(f"record {self.run_id}: verdict {self.verdict!r} with accepted "
                             f"{self.accepted}")

    @property
    def exit_code(self) -> int:
        return VERDICTS[self.verdict]

    @property
    def verdict_word(self) -> str:
        return VERDICT_WORDS[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measurements"] = [m.to_dict() for m in self.measurements]
        return d

    def write(self, path: Path) -> Path:
        return write_json(path, self.to_dict(), sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if d.get("format") != RECORD_FORMAT:
            raise ValueError(f"{path}: format {d.get('format')!r}, expected {RECORD_FORMAT!r}")
        d["measurements"] = [Measurement.from_dict(m) for m in d["measurements"]]
        d["requirements"] = [RequirementOutcome(**r) for r in d["requirements"]]
        return cls(**d)

    def verdict_line(self) -> str:
        """One line for a terminal: the verdict and the requirements behind it."""
        failed, unproven = self.failed(), self.unproven_must()
        parts = ([f"failed {', '.join(failed)}"] if failed else []) + (
            [f"not proven {', '.join(unproven)}"] if unproven else [])
        return self.verdict_word + (f" ({'; '.join(parts)})" if parts else "")

    def failed(self) -> list[str]:
        return [r.id for r in self.requirements if r.outcome in ("fail", "error")]

    def unproven_must(self) -> list[str]:
        """MUST requirements the run did not prove either way (why a verdict is incomplete)."""
        return [r.id for r in self.requirements
                if r.level == "MUST" and r.outcome in ("not_checked", "error", "incomplete")]


def write_json(path: Path | str, doc: Any, *, sort_keys: bool = False,
               default: Any = None) -> Path:
    """Write a run-directory JSON file atomically (a temporary file renamed over it), so a
    reader — or a run interrupted mid-write — never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=sort_keys,
                              default=default or _json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _json_default(obj: Any) -> Any:
    # numpy scalars from checkers
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def decide(measurements: list[Measurement], catalogue: list[dict[str, Any]],
           errors: dict[str, str] | None = None, *, complete: bool = True
           ) -> tuple[list[RequirementOutcome], str]:
    """Requirement outcomes from measurements, and the verdict (one of VERDICTS).

    A requirement with no checker yet is `not_checked`; one whose checker raised is `error`;
    one whose SUT measurements all pass but whose scope measurements (what the run covered)
    do not is `incomplete`. None of the three is a pass: a verdict never claims more than the
    run proved. The verdict is `not_accepted` when a MUST requirement failed, else
    `incomplete` when a MUST requirement is not proven or the run did not complete (it was
    interrupted), else `accepted`.
    """
    errors = errors or {}
    outcomes: list[RequirementOutcome] = []
    for req in catalogue:
        rid = req["id"]
        mine = [m for m in measurements if m.requirement == rid]
        if rid in errors:
            outcomes.append(RequirementOutcome(rid, req["level"], "error",
                                               "checker failed", errors[rid]))
        elif not req.get("checker"):
            outcomes.append(RequirementOutcome(rid, req["level"], "not_checked",
                                               "no checker yet"))
        elif not mine:
            outcomes.append(RequirementOutcome(rid, req["level"], "error",
                                               "checker produced no measurement",
                                               "no measurement"))
        else:
            bad = [m for m in mine if not m.passed and not m.scope]
            short = [m for m in mine if not m.passed and m.scope]
            summary = (f"{len(mine) - len(bad) - len(short)}/{len(mine)} measurements within "
                       "limits"
                       + (f"; failed: {', '.join(sorted({m.name for m in bad}))}" if bad else "")
                       + (f"; not covered by the run: {', '.join(sorted({m.name for m in short}))}"
                          if short else ""))
            outcome = "fail" if bad else "incomplete" if short else "pass"
            outcomes.append(RequirementOutcome(rid, req["level"], outcome, summary))
    return outcomes, verdict_of(outcomes, complete)


def verdict_of(outcomes: list[RequirementOutcome], complete: bool = True) -> str:
    """not_accepted when a MUST failed, else incomplete when a MUST is not proven or the run
    did not complete, else accepted."""
    must = {o.outcome for o in outcomes if o.level == "MUST"}
    if "fail" in must:
        return "not_accepted"
    return "incomplete" if must - {"pass"} or not complete else "accepted"
