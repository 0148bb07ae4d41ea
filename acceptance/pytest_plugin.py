"""pytest plugin: run scenarios as test suites, one test per requirement.

    pytest --scenario scenarios/smoke.yaml [--scenario other.yaml] [--scenario-out runs/qa]
           [--scenario-broker auto|embedded|mosquitto] [--scenario-days 0.5] [--junitxml qa.xml]

Each scenario gets one acceptance run (the same as `forecourt run`), then one test per
requirement of the catalogue: a MUST or SHOULD that passed passes; a MUST that failed or
errored fails with its failing measurements; a SHOULD that failed is an expected failure
(reported, not gating, as in the verdict); a requirement without a checker, or one the
run did not cover (incomplete, e.g. too few days), is skipped.
With --scenario only these tests are collected. The plugin is registered through the
`pytest11` entry point of the package, and does nothing without --scenario.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_RUNS: dict[str, object] = {}  # scenario path → RunRecord or the harness error text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("forecourt", "Forecourt HIL acceptance scenarios")
    group.addoption("--scenario", action="append", default=[], metavar="PATH",
                    help="run this scenario as an acceptance suite (repeatable)")
    group.addoption("--scenario-out", default="runs/pytest", metavar="DIR",
                    help="parent directory of the run directories (default runs/pytest)")
    group.addoption("--scenario-broker", default="auto",
                    help="auto (Mosquitto with accounts if installed, else embedded), "
                         "embedded, mosquitto or mqtt://host:port")
    group.addoption("--scenario-days", type=float, default=None,
                    help="override every scenario's duration (days)")
    group.addoption("--scenario-mutant", default=None,
                    help="QA: run a deliberately broken reference collector")


def _run_dir(config: pytest.Config, scenario: Path) -> Path:
    base = Path(config.getoption("--scenario-out"))
    n = 1
    while (base / f"{scenario.stem}-{n}").exists():
        n += 1
    return base / f"{scenario.stem}-{n}"


def _record(config: pytest.Config, scenario: Path):
    """The scenario's run record, running it the first time it is asked for."""
    key = str(scenario.resolve())
    if key not in _RUNS:
        from acceptance.check import check_run
        from acceptance.run import HarnessError, RunOptions, execute
        from reports.junit import write_junit
        from reports.render import render_reports

        try:
            _, out = execute(RunOptions(scenario=scenario, out=_run_dir(config, scenario),
                                        broker=config.getoption("--scenario-broker"),
                                        days=config.getoption("--scenario-days"),
                                        mutant=config.getoption("--scenario-mutant"),
                                        progress=False))
            record = check_run(out)
            write_junit(record, out / "junit.xml")
            render_reports(record, out)
            _RUNS[key] = record
        except HarnessError as exc:
            _RUNS[key] = f"the harness could not run {scenario}: {exc}"
    return _RUNS[key]


class RequirementItem(pytest.Item):
    def __init__(self, *, scenario: Path, entry: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario, self.entry = scenario, entry
        self.add_marker(pytest.mark.forecourt_requirement(entry["id"]))

    def runtest(self) -> None:
        record = _record(self.config, self.scenario)
        if isinstance(record, str):
            raise RequirementError(record)
        rid = self.entry["id"]
        outcome = next(o for o in record.requirements if o.id == rid)
        if outcome.outcome == "not_checked":
            pytest.skip(f"{rid}: no checker yet")
        if outcome.outcome == "incomplete":  # e.g. a run shorter than STB-1's period
            pytest.skip(f"{rid}: not proven by this run: {outcome.summary}")
        if outcome.outcome == "pass":
            return
        failing = [m for m in record.measurements if m.requirement == rid and not m.passed]
        lines = [f"{rid} ({outcome.level}) {outcome.outcome}: {outcome.summary}"]
        if outcome.error:
            lines.append(f"checker error: {outcome.error}")
        for m in failing[:20]:
            where = f" [{m.station_id}]" if m.station_id else ""
            lines.append(f"  {m.name}{where}: {m.value} {m.unit} (limit {m.op} {m.limit})")
        if outcome.level == "SHOULD" and outcome.outcome == "fail":
            pytest.xfail("\n".join(lines))
        raise RequirementError("\n".join(lines))

    def repr_failure(self, excinfo, style=None):  # noqa: ANN001 - pytest's signature
        if isinstance(excinfo.value, RequirementError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.scenario, None, f"{self.scenario.name}::{self.entry['id']}"


class RequirementError(AssertionError):
    """A requirement the scenario's run did not meet."""


class ScenarioSuite(pytest.Collector):
    def __init__(self, *, scenario: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def collect(self):
        from acceptance.requirements import CATALOGUE

        for req in CATALOGUE:
            entry = req.to_dict()
            name = f"{entry['id']} {re.sub(r'[^A-Za-z0-9 _-]+', '', entry['title_en'])}"
            yield RequirementItem.from_parent(self, name=name, scenario=self.scenario,
                                              entry=entry)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "forecourt_requirement(id): a scenario requirement test")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    scenarios = config.getoption("--scenario")
    if not scenarios:
        return
    generated: list[pytest.Item] = []
    for path in scenarios:
        scenario = Path(path)
        if not scenario.is_file():
            raise pytest.UsageError(f"--scenario {path}: no such file")
        suite = ScenarioSuite.from_parent(session, name=f"scenario:{scenario}", scenario=scenario)
        generated.extend(suite.collect())
    items[:] = generated
