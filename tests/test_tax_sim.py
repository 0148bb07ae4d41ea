"""The world's tax declarations (sim/tax.py) and the under-declaring station
(sim/cheats/tax_under_declaration.py): periods, the honest timing difference, the declared
share, left-out grades, determinism, the live filings of the ledger, bodies the platform
accepts, and bad configurations refused naming the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from test_cheats import DAY, START, TZ, ZONE, Run, cheat, config

from central.inputs import TAX_DECLARATION_SCHEMA, period_epochs
from central.schemas import INPUT_FORMATS, StrictValidator
from scenarios.loader import ScenarioError, load_scenario
from sim.config import TaxPolicy
from sim.ledger import FILINGS, Ledger, read_truth
from sim.runner import simulate
from sim.tax import describe_period, period_bounds
from sim.world import World

ROOT = Path(__file__).resolve().parents[1]
SHORT = TaxPolicy(period_days=0.5, filing_lag_h=2, booking_cutoff_min=20)


def _run(*cheats, tax: TaxPolicy = SHORT, days: float = 2.0) -> Run:
    return Run(config(*cheats, days=days, tax=tax))


def _sales(r: Run, grade: str, lo: float, hi: float) -> tuple[int, int]:
    fills = [t for t in r.rec["transactions"] if t.grade == grade and lo <= t.end_time < hi]
    return sum(t.displayed_volume_ml for t in fills), sum(t.amount_fen for t in fills)


def test_periods_are_calendar_months_or_shortened_from_the_start():
    apr1 = dt.datetime(2026, 4, 1, tzinfo=ZONE).timestamp()
    may1 = dt.datetime(2026, 5, 1, tzinfo=ZONE).timestamp()
    jun1 = dt.datetime(2026, 6, 1, tzinfo=ZONE).timestamp()
    months = TaxPolicy()
    assert period_bounds(apr1, jun1, months, ZONE) == [(apr1, may1), (may1, jun1)]
    assert period_bounds(apr1, jun1 - 1, months, ZONE) == [(apr1, may1)]  # May not ended
    # a run from mid-April: April's period began before it and ends inside it
    assert period_bounds(apr1 + 14 * DAY, may1 + 5 * DAY, months, ZONE) == [(apr1, may1)]
    quarter = TaxPolicy(period_days=0.25)
    got = period_bounds(START, START + DAY, quarter, ZONE)
    assert got == [(START + k * 21600, START + (k + 1) * 21600) for k in range(4)]
    assert describe_period(months) == "calendar month" and describe_period(quarter) == "0.25 day(s)"


def test_an_honest_station_declares_its_books_closed_before_each_period_ends():
    r = _run()
    decls = r.truth["tax_declaration"]
    assert len(decls) == 4 * 3  # four 12-hour periods, every grade sold
    cutoff = SHORT.booking_cutoff_min * 60
    for d in decls:
        assert not d.under_declared and d.filed and d.cheat == -1 and d.declared_share == 1
        assert (d.booked_from, d.booked_to) == (d.period_start - cutoff, d.period_end - cutoff)
        assert (d.declared_volume_ml, d.declared_amount_fen) == _sales(
            r, d.grade, d.booked_from, d.booked_to)
        assert (d.true_volume_ml, d.true_amount_fen) == _sales(
            r, d.grade, d.period_start, d.period_end)
        # the honest timing difference: the last minutes booked next, minus those booked here
        late = _sales(r, d.grade, d.period_end - cutoff, d.period_end)
        early = _sales(r, d.grade, d.period_start - cutoff, d.period_start)
        assert d.gap_volume_ml == late[0] - early[0] and d.gap_amount_fen == late[1] - early[1]
        assert d.filed_at == d.period_end + SHORT.filing_lag_h * 3600
        assert d.declared_tax_base_fen == round(d.declared_amount_fen / 1.13)
        assert d.declared_tax_fen == round(d.declared_tax_base_fen * 0.13)
    assert sum(d.true_volume_ml for d in decls) == sum(
        t.displayed_volume_ml for t in r.rec["transactions"] if t.end_time < r.world.end)


def test_an_under_declaring_station_declares_its_share_in_one_period_of_n():
    r = _run(cheat("tax_under_declaration", start=START, declared_share=0.85, every_n=2))
    honest = {(d.period_start, d.grade): d for d in _run().truth["tax_declaration"]}
    acted = []
    for d in r.truth["tax_declaration"]:
        h = honest[(d.period_start, d.grade)]  # the same world, honest paperwork
        assert (d.true_volume_ml, d.true_amount_fen) == (h.true_volume_ml, h.true_amount_fen)
        k = round((d.period_start - START) / (0.5 * DAY))
        if k % 2:
            assert d == h
            continue
        acted.append(d)
        assert d.under_declared and d.cheat == 0 and d.declared_share == 0.85
        assert d.declared_volume_ml == int(h.declared_volume_ml * 0.85 + 0.5)
        assert d.declared_amount_fen == int(h.declared_amount_fen * 0.85 + 0.5)
        assert json.loads(d.body)["declared_sales_fen"] == d.declared_amount_fen
    assert len(acted) == 2 * 3
    inst = r.instance
    assert inst.cheat_class == "TAX" and inst.attribution == "station" and inst.device == ""
    assert json.loads(inst.trace) == ["tax_under_declared"]
    assert json.loads(inst.expected_alerts) == ["tax_under_declaration"]
    undeclared = sum(honest[(d.period_start, d.grade)].declared_volume_ml
                     - d.declared_volume_ml for d in acted)
    assert inst.effect_l == pytest.approx(undeclared / 1000)


def test_a_grade_left_out_is_not_filed():
    r = _run(cheat("tax_under_declaration", start=START, declared_share=1.0, omit_grade="0"))
    for d in r.truth["tax_declaration"]:
        if d.grade == "0":
            assert not d.filed and d.body == "" and d.declared_share == 0 and d.under_declared
            assert d.gap_amount_fen == d.true_amount_fen and d.declared_amount_fen == 0
        else:  # the others are declared in full: not under-declared
            assert d.filed and not d.under_declared and d.cheat == -1


def test_a_cheat_switched_on_at_a_period_end_leaves_that_period_honest():
    r = _run(cheat("tax_under_declaration", start=START + 0.5 * DAY, declared_share=0.5))
    first = [d for d in r.truth["tax_declaration"] if d.period_end == START + 0.5 * DAY]
    assert first and not any(d.under_declared for d in first)
    assert all(d.under_declared for d in r.truth["tax_declaration"]
               if d.period_end > START + 0.5 * DAY)


def test_declarations_are_deterministic_and_in_the_ground_truth(tmp_path):
    cfg = config(cheat("tax_under_declaration", start=START, every_n=3), days=2.0, tax=SHORT)
    one = simulate(cfg, tmp_path / "one", workers=1)
    two = simulate(cfg, tmp_path / "two", workers=1)
    assert one["files"]["tax_declarations.parquet"] == two["files"]["tax_declarations.parquet"]
    table = read_truth(tmp_path / "one", "tax_declarations").to_pandas()
    assert len(table) == 12 and table["under_declared"].sum() == 3 * 2  # periods 0 and 3
    assert list(table.columns[:4]) == ["station_id", "period_start", "period_end", "grade"]


def test_only_periods_that_end_inside_the_run_are_declared():
    assert _run(days=0.4).truth["tax_declaration"] == []
    assert _run(tax=TaxPolicy(), days=2.0).truth["tax_declaration"] == []  # no month ends
    ends = {d.period_end for d in _run(days=1.0).truth["tax_declaration"]}
    assert ends == {START + 0.5 * DAY, START + DAY}  # the one ending at the run's end too


def test_bodies_are_what_the_platform_accepts():
    validator = StrictValidator(TAX_DECLARATION_SCHEMA,
                                format_checker=INPUT_FORMATS)
    r = _run(cheat("tax_under_declaration", start=START))
    for d in r.truth["tax_declaration"]:
        body = json.loads(d.body)
        assert not list(validator.iter_errors(body))
        assert period_epochs(body["period_start"], body["period_end"], ZONE) == (
            d.period_start, d.period_end)
        assert body["reference"] == d.reference and body["station_id"] == "S1"
    # calendar months are written as dates, the last day inclusive
    apr1 = dt.datetime(2026, 4, 1, tzinfo=ZONE).timestamp()
    base = config(days=31.0)
    prices = tuple(dataclasses.replace(c, at=apr1) for c in base.prices if c.at < START)
    w = World(dataclasses.replace(base, start=apr1, prices=prices, tax=TaxPolicy()))
    seen: list = []
    w.add_truth_listener(lambda _s, kind, rec: seen.append(rec) if kind == "tax_declaration"
                         else None)
    w.run_until(apr1 + 30 * DAY)
    body = json.loads(seen[0].body)
    assert (body["period_start"], body["period_end"]) == ("2026-04-01", "2026-04-30")
    assert period_epochs("2026-04-01", "2026-04-30", ZONE) == (apr1, apr1 + 30 * DAY)


def test_a_live_ledger_files_each_declaration_at_once(tmp_path):
    cfg = config(cheat("tax_under_declaration", start=START, omit_grade="95"), days=1.0,
                 tax=SHORT)
    world = World(cfg)
    ledger = Ledger(tmp_path, cfg).attach(world)
    world.run_until(START + 0.5 * DAY)
    lines = [json.loads(x) for x in (tmp_path / FILINGS).read_text().splitlines()]
    assert len(lines) == 3 and {x["kind"] for x in lines} == {"tax_declaration"}
    world.run_until(world.end)
    ledger.close()
    lines = [json.loads(x) for x in (tmp_path / FILINGS).read_text().splitlines()]
    table = read_truth(tmp_path, "tax_declarations").to_pylist()
    assert [{k: v for k, v in x.items() if k != "kind"} for x in lines] == table
    assert [x["filed"] for x in lines if x["grade"] == "95"] == [False, False]


@pytest.mark.parametrize(("params", "message"), [
    ({"declared_share": 1.0}, "changes nothing"),
    ({"declared_share": 1.2}, "params.declared_share must be a number >= 0 and <= 1"),
    ({"omit_grade": 92}, "params.omit_grade must be one of"),
    ({"every_n": 0}, "params.every_n must be a whole number >= 1"),
])
def test_bad_cheat_parameters_are_refused_naming_the_field(params, message):
    with pytest.raises(ValueError, match=message):
        World(config(cheat("tax_under_declaration", start=START, **params)))


def test_a_left_out_grade_the_station_does_not_sell_is_refused():
    cfg = config(cheat("tax_under_declaration", start=START, omit_grade="95"))
    station = dataclasses.replace(cfg.stations[0], tanks=cfg.stations[0].tanks[:1] + (
        dataclasses.replace(cfg.stations[0].tanks[2], tank=2),) + cfg.stations[0].tanks[2:],
        throughput_l_per_day={"92": 6000.0, "0": 7000.0})
    with pytest.raises(ValueError, match=r"cheats\[0\]: omit_grade '95': station S1 sells"):
        World(dataclasses.replace(cfg, stations=(station,)))


def test_a_bad_tax_policy_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="tax.period_days"):
        TaxPolicy(period_days=0.01)
    with pytest.raises(ValueError, match="tax.booking_cutoff_min"):
        TaxPolicy(booking_cutoff_min=45)


@pytest.mark.parametrize(("tax", "field"), [
    ("{period_days: 0.01}", "tax.period_days"),
    ("{period_days: 1, booking_cutoff_min: 60}", "tax.booking_cutoff_min"),
    ("{filing_lag: 2}", "tax"),
])
def test_the_scenario_schema_names_a_bad_tax_field(tmp_path, tax, field):
    text = (ROOT / "scenarios" / "smoke.yaml").read_text(encoding="utf-8")
    text = text.replace("fleet: fleets/urad-middle-banner.csv",
                        f"fleet: {ROOT / 'scenarios' / 'fleets' / 'urad-middle-banner.csv'}")
    text = text.replace("tax: {period_days: 0.25, filing_lag_h: 1}", f"tax: {tax}")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert any(f": {field}" in m or f" {field}:" in m or f"{field}." in m
               for m in err.value.messages), err.value.messages


def test_the_scenario_tax_reaches_the_world():
    from acceptance.world_config import build_world_config

    smoke = build_world_config(load_scenario(ROOT / "scenarios" / "smoke.yaml"))
    assert smoke.tax == TaxPolicy(period_days=0.25, filing_lag_h=1.0)
    assert smoke.timezone == TZ
