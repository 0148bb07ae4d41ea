"""Scenario files, the fleet ledger, the loader's error messages, and the world-config builder."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acceptance.world_config import build_world_config
from scenarios import timespec
from scenarios.errors import ScenarioError
from scenarios.fleet import COLUMNS, equivalent_capacity_m3
from scenarios.loader import load_scenario, scenario_digest, validate_file
from scenarios.schemacheck import load_schema
from sim.config import GRADES, DeliveryPolicy, ProbeConfig, TankConfig, WorldConfig

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "scenarios" / "smoke.yaml"
BANNER = ROOT / "scenarios" / "urad-middle-banner.yaml"
LEDGER = ROOT / "scenarios" / "fleets" / "urad-middle-banner.csv"
BAD = Path(__file__).resolve().parent / "data" / "bad"

# the banner's towns, sumu and farms (乌拉特中旗 administrative divisions)
BANNER_TOWNS = {"海流图镇", "乌加河镇", "德岭山镇", "石哈河镇", "甘其毛都镇", "温更镇", "呼勒斯太苏木",
                "巴音乌兰苏木", "川井苏木", "新忽热苏木", "同和太种畜场", "牧羊海牧场"}

MINIMAL = """\
name: minimal
seed: 7
start: 2026-04-01T00:00:00+08:00
days: 1
fleet: {fleet}
stations: [UMB25]
prices:
  - {{from: "2026-03-24T00:00:00+08:00", grade: 92, price: 7.03}}
  - {{from: "2026-03-24T00:00:00+08:00", grade: 0, price: 6.71}}
"""


def write_scenario(directory: Path, text: str, name: str = "s.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- shipped scenarios


def test_smoke_scenario_has_what_the_acceptance_run_needs():
    s = load_scenario(SMOKE)
    stations = s.stations
    assert s.name == "smoke" and s.data["days"] == 2 and len(stations) == 2
    assert {st_["dialect"] for st_ in stations} == {"int_be", "f32_le"}
    assert len(s.rtu_station_ids) == 1
    kinds = [c["kind"] for c in s.data["cheats"]]
    assert kinds[:2] == ["price_tamper", "pulse_factor"] and "tax_under_declaration" in kinds
    assert s.data["tax"]["period_days"] == 0.25  # declarations inside a 0.6-day run too
    for cheat in s.data["cheats"]:  # early enough that the platform can flag it in the run
        assert s.start_epoch < s.instant(cheat["start"]) <= s.end_epoch - 86400
    later = [p for p in s.data["prices"] if s.instant(p["from"]) > s.start_epoch]
    assert later and all(s.instant(p["from"]) < s.end_epoch for p in later)
    assert {f["kind"] for f in s.data["faults"]} == {"collector_crash", "network_cut", "device_silent"}
    assert len(s.digest) == 64 and int(s.digest, 16) >= 0


def test_banner_scenario_runs_all_46_stations_for_180_days():
    s = load_scenario(BANNER)
    assert len(s.station_ids) == 46 and s.data["days"] == 180
    assert s.data["start"] == "2026-04-01T00:00:00+08:00" and s.timezone == "Asia/Shanghai"
    owners = {row["station_id"]: row["ownership"] for row in s.fleet}
    from sim.cheats.registry import CHEAT_KINDS

    classes = {CHEAT_KINDS[c["kind"]].cheat_class for c in s.data["cheats"]}
    assert classes >= {"PULSE", "PART", "DATA", "PRICE", "STOCK", "DELIV", "LOOK"}
    cheating = {c["station"] for c in s.data["cheats"]
                if CHEAT_KINDS[c["kind"]].cheat_class != "LOOK"}
    assert 5 <= len(cheating) <= 10  # a handful among 46 honest stations
    assert all(owners[sid] == "private" for sid in cheating)


def test_banner_prices_move_like_ndrc_adjustments():
    s = load_scenario(BANNER)
    for grade in GRADES:
        steps = sorted((s.instant(p["from"]), p["price"]) for p in s.data["prices"] if p["grade"] == grade)
        assert steps[0][0] <= s.start_epoch
        in_run = [(t, p) for t, p in steps if s.start_epoch < t < s.end_epoch]
        assert len(in_run) >= 8, "about every ten working days over six months"
        for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False):
            assert 7 <= (t1 - t0) / 86400 <= 30
            assert 0.1 <= abs(p1 - p0) <= 0.3 + 1e-9
            assert 5.0 < p1 < 10.0


# ---------------------------------------------------------------- fleet ledger


def test_ledger_has_the_banners_46_stations_27_private_19_state():
    rows = load_scenario(BANNER).fleet
    ids = [r["station_id"] for r in rows]
    assert ids == [f"UMB{i:02d}" for i in range(1, 47)]
    owners = [r["ownership"] for r in rows]
    assert owners.count("private") == 27 and owners.count("state") == 19
    assert {r["town"] for r in rows} <= BANNER_TOWNS
    assert len({r["town"] for r in rows}) >= 10, "spread over the banner's towns and sumu"


def test_ledger_says_the_names_are_synthetic():
    header = [line for line in LEDGER.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert header and "SYNTHETIC" in " ".join(header)


def test_ledger_is_a_plausible_mixed_fleet():
    rows = load_scenario(BANNER).fleet
    dialects = [r["dialect"] for r in rows]
    assert 0.5 <= dialects.count("int_be") / len(rows) <= 0.7  # ~60/40, as real fleets are mixed
    assert 1 <= sum(r["transport"] == "rtu" for r in rows) <= 6
    for r in rows:
        assert 41.0 < r["lat"] < 42.5 and 107.2 < r["lon"] < 109.8  # inside the banner
        assert 2000 <= sum(r["throughput_l_per_day"].values()) <= 30000
        assert equivalent_capacity_m3(r["tanks"]) <= 180
    port = [r for r in rows if r["town"] == "甘其毛都镇"]
    for r in port:  # coal trucks from the Ganqimaodu port buy diesel
        thr = r["throughput_l_per_day"]
        assert thr["0"] / sum(thr.values()) > 0.8 and r["truck_share"] > 0.5
    assert max(r["throughput_l_per_day"]["0"] for r in port) >= 15000

    def mean_sales(owner: str) -> float:
        sales = [sum(r["throughput_l_per_day"].values()) for r in rows if r["ownership"] == owner]
        return sum(sales) / len(sales)

    assert mean_sales("state") > mean_sales("private")


# ---------------------------------------------------------------- bad files


def _expectations(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip()
            for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# expect:")]


BAD_FILES = sorted(BAD.glob("*.yaml"))


def test_there_are_bad_files():
    assert len(BAD_FILES) >= 20


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_file_gives_the_expected_messages(path: Path):
    expected = _expectations(path)
    assert expected, f"{path.name} declares no '# expect:' line"
    messages = validate_file(path)
    assert messages, f"{path.name} was accepted"
    for want in expected:
        assert any(want in m for m in messages), f"missing {want!r} in {messages}"
    for m in messages:
        assert m.startswith(str(path)) and "expected " in m and ", found " in m
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.messages == messages


def test_several_problems_are_reported_at_once():
    assert len(validate_file(BAD / "many_errors.yaml")) >= 5


# fleet ledger mutations: (station, column, new cell, expected message part)
FLEET_CASES = [
    ("UMB07", "tanks", "1:92", "fleet row 7 (UMB07) column tanks: expected entries "
     "'tank:grade:nominal_m3' separated by ';' (e.g. '1:92:30;2:0:50'), found '1:92'"),
    ("UMB07", "tanks", "1:92:30;2:95:40;3:0:30",
     "column tanks: expected a nominal size of 20, 30 or 50 m³, found 40 in '2:95:40'"),
    ("UMB07", "tanks", "1:92:30;2:97:20;3:0:30", "column tanks: expected a grade 92, 95 or 0, found '97'"),
    ("UMB07", "dispensers", "1:1+2;2:5+3",
     "fleet row 7 (UMB07) column dispensers: expected a tank of this station (1, 2, 3), "
     "found tank 5 for dispenser 2 nozzle 1"),
    ("UMB07", "dispensers", "1:1+2+3+1+2", "expected 1 to 4 nozzles per dispenser, found 5 nozzles"),
    ("UMB07", "dispensers", "1:1+2;1:3", "expected each dispenser number once, found dispenser 1 again"),
    ("UMB12", "throughput", "92:1400;95:300;0:1900", "fleet row 12 (UMB12) column throughput: "
     "expected a tank of grade 95 for its throughput, found tanks of grades 0, 92"),
    ("UMB12", "throughput", "92:1400", "column throughput: expected a throughput for grade 0 "
     "(sold by dispenser 1 nozzle 2), found none"),
    ("UMB12", "throughput", "92:1400;0:-5", "column throughput: expected litres per day in (0, 100000], found '0:-5'"),
    ("UMB12", "throughput", "92:1400;0", "column throughput: expected entries 'grade:litres_per_day'"),
    ("UMB07", "ownership", "public", "column ownership: expected private or state, found 'public'"),
    ("UMB07", "dialect", "f32_be", "column dialect: expected int_be or f32_le, found 'f32_be'"),
    ("UMB07", "transport", "udp", "column transport: expected tcp or rtu, found 'udp'"),
    ("UMB07", "site_class", "3", "fleet row 7 (UMB07) column site_class: expected 2 for 65 m³"),
    ("UMB12", "tanks", "1:92:50;2:0:20", "column tanks: expected single tanks of at most 30 m³ at a "
     "class 3 site, found a 50 m³ tank"),
    ("UMB07", "lat", "95", "column lat: expected a number from -90 to 90, found '95'"),
    ("UMB07", "truck_share", "1.5", "column truck_share: expected a number from 0 to 1, found '1.5'"),
    ("UMB08", "station_id", "UMB07", "fleet row 8 (UMB07) column station_id: expected a unique "
     "station id, found 'UMB07' again (first on line 14)"),
    ("UMB07", "name", "", "column name: expected a non-empty text, found an empty cell"),
]


def _mutated_ledger(station: str, column: str, value: str) -> str:
    lines = LEDGER.read_text(encoding="utf-8").splitlines()
    index = COLUMNS.index(column)
    for i, line in enumerate(lines):
        cells = line.split(",")
        if cells[0] == station:
            cells[index] = value
            lines[i] = ",".join(cells)
            return "\n".join(lines) + "\n"
    raise AssertionError(station)


@pytest.mark.parametrize(("station", "column", "value", "want"), FLEET_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in FLEET_CASES])
def test_bad_ledger_row_names_row_column_expected_and_found(tmp_path, station, column, value, want):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(_mutated_ledger(station, column, value), encoding="utf-8")
    messages = validate_file(write_scenario(tmp_path, MINIMAL.format(fleet="fleet.csv")))
    assert any(want in m for m in messages), messages
    assert all(m.startswith(str(fleet)) for m in messages)


@pytest.mark.parametrize(("header", "want"), [
    (",".join(c for c in COLUMNS if c != "dialect"), "fleet header: expected a column 'dialect'"),
    (",".join(COLUMNS).replace("truck_share", "truckshare"),
     "found unknown column 'truckshare' (did you mean 'truck_share'?)"),
])
def test_bad_ledger_header(tmp_path, header, want):
    lines = LEDGER.read_text(encoding="utf-8").splitlines()
    lines = [header if line.startswith("station_id,") else line for line in lines]
    (tmp_path / "fleet.csv").write_text("\n".join(lines), encoding="utf-8")
    messages = validate_file(write_scenario(tmp_path, MINIMAL.format(fleet="fleet.csv")))
    assert any(want in m for m in messages), messages


def test_ledger_row_with_wrong_cell_count(tmp_path):
    text = LEDGER.read_text(encoding="utf-8").replace(",int_be,tcp\n", ",int_be\n", 1)
    (tmp_path / "fleet.csv").write_text(text, encoding="utf-8")
    messages = validate_file(write_scenario(tmp_path, MINIMAL.format(fleet="fleet.csv")))
    assert any("column (all): expected 13 cells as in the header, found 12 cells" in m
               for m in messages), messages


# ---------------------------------------------------------------- loader behaviour


def test_dates_stay_text_and_grades_become_strings(tmp_path):
    s = load_scenario(write_scenario(tmp_path, MINIMAL.format(fleet=LEDGER)))
    assert s.data["start"] == "2026-04-01T00:00:00+08:00"  # unquoted in the file
    assert [p["grade"] for p in s.data["prices"]] == ["92", "0"]  # written as numbers


def test_schema_defaults_are_the_worlds_defaults(tmp_path):
    data = load_scenario(write_scenario(tmp_path, MINIMAL.format(fleet=LEDGER))).data
    assert data["probe"] == dataclasses.asdict(ProbeConfig())
    policy = dataclasses.asdict(DeliveryPolicy())
    policy["lead_time_h"] = list(policy["lead_time_h"])
    assert data["deliveries"] == policy
    assert data["inventory_interval_min"] * 60 == WorldConfig.__dataclass_fields__[
        "inventory_interval_s"].default
    assert data["fifo"] == {"depth": 500} and data["timezone"] == "Asia/Shanghai"
    assert data["stations"] == ["UMB25"] and data["rtu_stations"] is None
    assert data["cheats"] == data["faults"] == data["tank_conditions"] == []
    cond = load_schema()["$defs"]["tank_condition"]["properties"]
    for name in ("initial_fill", "leak_l_per_h", "water_ingress_l_per_day"):
        assert cond[name]["default"] == TankConfig.__dataclass_fields__[name].default


def test_schema_is_draft_2020_12_and_its_patterns_are_the_parsers():
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["instant"]["pattern"] == timespec.INSTANT_PATTERN
    assert schema["$defs"]["duration"]["pattern"] == timespec.DURATION_PATTERN
    assert schema["properties"]["start"]["pattern"] == timespec.DATETIME_PATTERN


@pytest.mark.parametrize(("text", "seconds"), [
    ("30min", 1800), ("2h", 7200), ("1d12h", 129600), ("90s", 90), ("1.5h", 5400), ("1d1h1min1s", 90061),
])
def test_durations(text, seconds):
    assert timespec.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "1 h", "2m", "1h1d", "-1h", "+1h"])
def test_bad_durations(text):
    with pytest.raises(timespec.TimeSpecError):
        timespec.parse_duration(text)


def test_instants_absolute_and_relative():
    start = datetime.fromisoformat("2026-04-01T00:00:00+08:00").timestamp()
    assert timespec.parse_instant("+1d6h", start) == start + 30 * 3600
    assert timespec.parse_instant("2026-04-01T06:00:00+08:00", start) == start + 6 * 3600
    assert timespec.parse_instant("2026-03-31T22:00:00Z", start) == start + 6 * 3600
    with pytest.raises(timespec.TimeSpecError):
        timespec.parse_instant("2026-04-01T06:00:00", start)  # no offset: ambiguous


def test_digest_covers_scenario_and_ledger(tmp_path):
    fleet = tmp_path / "fleet.csv"
    fleet.write_bytes(LEDGER.read_bytes())
    path = write_scenario(tmp_path, MINIMAL.format(fleet="fleet.csv"))
    first = load_scenario(path).digest
    assert first == load_scenario(path).digest
    assert first == scenario_digest(path.read_bytes(), fleet.read_bytes())
    fleet.write_bytes(LEDGER.read_bytes().replace(b"0.21,int_be", b"0.22,int_be"))
    second = load_scenario(path).digest
    path.write_text(MINIMAL.format(fleet="fleet.csv") + "# a comment\n", encoding="utf-8")
    assert len({first, second, load_scenario(path).digest}) == 3


def test_unreadable_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert validate_file(missing) == [
        f"{missing}: (file): expected a readable scenario file, found No such file or directory"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe")
    assert "expected UTF-8 text, found an undecodable byte at offset 6" in validate_file(binary)[0]


def test_cli_entry_point(capsys):
    from scenarios.loader import main

    assert main([str(SMOKE)]) == 0
    assert main([str(BAD / "many_errors.yaml")]) == 2
    assert "seed: expected a value of at least 0" in capsys.readouterr().err


# ---------------------------------------------------------------- hypothesis: only ScenarioError

INTERESTING = st.sampled_from([
    "UMB25", "UMB44", "UMB99", "UMB07", "+1d", "+30h", "+0s", "2026-04-01T00:00:00+08:00",
    "2026-13-01T00:00:00+08:00", "2026-04-01", "92", "95", "0", "pulse_factor", "network_cut",
    "device_silent", "collector_crash", "D1", "D9", "G", "Asia/Shanghai", "Mars/Base", "Asia/",
    "10min", "", "fleets/none.csv", 92, 0, -1, 1, 2, 7, 1.03, 0.5, 10**20, True, None,
])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | INTERESTING,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | INTERESTING.filter(
        lambda v: isinstance(v, str)), inner, max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutate(data, draw):
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    op = draw(st.sampled_from(["delete", "replace", "replace", "add"]))
    if op == "delete":
        del parent[path[-1]]
    elif op == "replace":
        parent[path[-1]] = draw(VALUES)
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=10) | INTERESTING.filter(lambda v: isinstance(v, str)))] = (
            draw(VALUES))
    else:
        parent.append(draw(VALUES))


def _smoke_data() -> dict:
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["fleet"] = str(LEDGER)
    return data


def _must_load_or_reject(path: Path) -> None:
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        return
    config = build_world_config(scenario)  # what loads must also build
    assert config.stations and all(
        tank.grade in GRADES for station in config.stations for tank in station.tanks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_scenarios_never_crash_the_loader(tmp_path_factory, data):
    scenario = _smoke_data()
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(scenario, data.draw)
    text = yaml.safe_dump(scenario, allow_unicode=True, sort_keys=False)
    _must_load_or_reject(write_scenario(tmp_path_factory.mktemp("mut"), text))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mangled_yaml_text_never_crashes_the_loader(tmp_path_factory, data):
    text = SMOKE.read_text(encoding="utf-8").replace(
        "fleet: fleets/urad-middle-banner.csv", f"fleet: {json.dumps(str(LEDGER))}")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + text[at:at + data.draw(st.integers(1, 20))][::-1] + text[at + 20:]
        else:
            junk = data.draw(st.text(alphabet=":-[]{}#&*!|>'\"\n\t ,?%@`0+", max_size=4))
            text = text[:at] + junk + text[at:]
    _must_load_or_reject(write_scenario(tmp_path_factory.mktemp("txt"), text))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mangled_ledger_never_crashes_the_loader(tmp_path_factory, data):
    lines = LEDGER.read_text(encoding="utf-8").splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("UMB")]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from(rows))
        cells = lines[i].split(",")
        j = data.draw(st.integers(0, len(cells) - 1))
        cells[j] = data.draw(st.text(alphabet="0123456789:;+.-x92 \"", max_size=12) | st.text(max_size=6))
        lines[i] = ",".join(cells)
    directory = tmp_path_factory.mktemp("csv")
    (directory / "fleet.csv").write_text("\n".join(lines), encoding="utf-8")
    _must_load_or_reject(write_scenario(directory, MINIMAL.format(fleet="fleet.csv")))


# ---------------------------------------------------------------- world config


def _check_consistent(config: WorldConfig) -> None:
    priced = {p.grade for p in config.prices if p.at <= config.start}
    for station in config.stations:
        tanks = {t.tank: t for t in station.tanks}
        for disp in station.dispensers:
            assert 1 <= len(disp.nozzle_tanks) <= 4
            assert all(t in tanks for t in disp.nozzle_tanks)
        assert set(station.throughput_l_per_day) <= {t.grade for t in tanks.values()}
        assert {t.grade for t in tanks.values()} <= priced
        assert station.transport in ("tcp", "rtu") and station.dialect in ("int_be", "f32_le")
    for p in config.prices:
        assert isinstance(p.price_fen, int) and 500 <= p.price_fen <= 1000
    assert [p.at for p in config.prices] == sorted(p.at for p in config.prices)
    ids = {s.station_id: s for s in config.stations}
    for cheat in config.cheats:
        station = ids[cheat.station_id]
        if cheat.dispenser:  # a nozzle or dispenser cheat (nozzle 0: the whole dispenser)
            disp = {d.dispenser: d for d in station.dispensers}[cheat.dispenser]
            assert 0 <= cheat.nozzle <= len(disp.nozzle_tanks)
        elif cheat.tank:  # a tank cheat
            assert cheat.tank in {t.tank for t in station.tanks}
        else:  # a station cheat (its paperwork)
            from sim.cheats.registry import CHEAT_KINDS

            assert CHEAT_KINDS[cheat.kind].target == "station"
        assert config.start <= cheat.start < config.end
        assert cheat.end is None or cheat.end > cheat.start


def test_banner_world_config_is_consistent():
    scenario = load_scenario(BANNER)
    config = build_world_config(scenario)
    _check_consistent(config)
    assert len(config.stations) == 46 and config.days == 180.0 and config.seed == scenario.data["seed"]
    assert config.start == 1774972800.0  # 2026-03-31T16:00:00Z, epoch seconds
    assert config.end == config.start + 180 * 86400
    assert config.inventory_interval_s == 900 and config.timezone == "Asia/Shanghai"
    assert {s.station_id for s in config.stations if s.transport == "rtu"} == {"UMB39", "UMB44", "UMB46"}
    first = {p.grade: p.price_fen for p in config.prices if p.at <= config.start}
    assert first == {"92": 703, "95": 752, "0": 671}
    stations = {s.station_id: s for s in config.stations}
    assert {t.tank: t.leak_l_per_h for t in stations["UMB17"].tanks}[2] == 0.76
    assert {t.tank: t.initial_fill for t in stations["UMB28"].tanks}[1] == 0.85
    toggled = next(c for c in config.cheats if c.station_id == "UMB32")
    assert toggled.start == datetime.fromisoformat("2026-06-01T00:00:00+08:00").timestamp()
    assert toggled.end - toggled.start == (30 + 14) * 86400  # June 1 to July 15
    assert toggled.kind == "remote_skim" and toggled.params["factor"] == 1.12
    assert toggled.schedule == {"kind": "remote", "mean_on_h": 3, "mean_off_h": 9}
    assert build_world_config(scenario) == config  # same input, same config


def test_smoke_world_config_and_overrides():
    scenario = load_scenario(SMOKE)
    config = build_world_config(scenario)
    _check_consistent(config)
    assert [s.station_id for s in config.stations] == ["UMB25", "UMB44"]
    assert {s.station_id: s.transport for s in config.stations} == {"UMB25": "tcp", "UMB44": "rtu"}
    tamper, skim = config.cheats[:2]
    assert tamper.start == config.start + 4 * 3600  # "+4h"
    assert skim.start == config.start + 20 * 3600 and skim.params["log_event"] is True
    assert math.isclose(config.end - config.start, 2 * 86400)

    short = build_world_config(scenario, days=0.5, seed=99, station_ids=["UMB44"])
    assert short.days == 0.5 and short.seed == 99
    assert [s.station_id for s in short.stations] == ["UMB44"]
    assert {c.station_id for c in short.cheats} == {"UMB44"}  # UMB25's cheats left out
    both = build_world_config(scenario, station_ids=["UMB44", "UMB25"])
    assert [s.station_id for s in both.stations] == ["UMB25", "UMB44"]  # ledger order
    with pytest.raises(ValueError, match=r"station_ids: expected some of .* found 'UMB07'"):
        build_world_config(scenario, station_ids=["UMB07"])
    with pytest.raises(ValueError, match="days"):
        build_world_config(scenario, days=0)


def test_rtu_override_replaces_the_ledgers_transport(tmp_path):
    text = MINIMAL.format(fleet=LEDGER).replace("stations: [UMB25]", "stations: [UMB25, UMB39]")
    config = build_world_config(load_scenario(write_scenario(tmp_path, text)))
    assert {s.station_id: s.transport for s in config.stations} == {"UMB25": "tcp", "UMB39": "rtu"}
    over = text + "rtu_stations: [UMB25]\n"
    config = build_world_config(load_scenario(write_scenario(tmp_path, over)))
    assert {s.station_id: s.transport for s in config.stations} == {"UMB25": "rtu", "UMB39": "tcp"}


def test_messages_name_file_and_line_for_every_scenario_field():
    # every message of a file carries a line number (the fleet's carry the CSV line)
    for path in BAD_FILES:
        for m in validate_file(path):
            if "empty file" in m:
                continue
            assert re.match(rf"{re.escape(str(path))}:\d+(:\d+)?: ", m), m
