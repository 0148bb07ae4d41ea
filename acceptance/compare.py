"""Ground truth ↔ platform: classify every record (DAT-1/DAT-2 evidence).

Records are matched by (station, device, stream, seq, device time) — the fields of the
uplink's idempotency key (docs/uplink.md §3), taken from the record's own fields, not from
its `key` string, so a platform that stores one record twice under two keys is caught.
Each ground-truth record is

- ``received_once``: exactly one platform record, every field equal;
- ``altered``: exactly one platform record, some field differs (``altered`` names them);
- ``duplicated``: two or more platform records (``altered`` names any field that differs);
- ``lost``: no platform record (``dropped_at_device`` when the device's FIFO overflowed
  and never served it, per fifo_drops.parquet);

and every platform record without a ground-truth record is ``unexpected``.

Expected values are what the device shows, in the uplink's integer units: the ground
truth's value (mL, fen, mm, °C, L …) at the register resolution of its profile field
(contracts/register_profiles/*.yaml), through the station's dialect — scaled int32/uint64, or
float32/float64 rounded back to the resolution (docs/uplink.md §3, decoding rule) — then
converted exactly to µm, m°C, mL, fen or value × 10⁴. Device times are the device clock's
whole seconds: the floor of the simulated time, or what a wrong clock showed (a clock fault
of the scenario, listed in the manifest).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from acceptance.observe import RECORD_FIELDS, PlatformClient, observe_records
from devices.profile import Profile, load_profile
from sim.config import ClockFault
from sim.device_clock import device_faults, shown_array
from sim.ledger import read_truth

STATUSES = ("received_once", "lost", "duplicated", "altered", "unexpected")
STREAMS = tuple(RECORD_FIELDS)
MATCH_KEY = ("station_id", "device", "seq", "device_time")
RECORD_COLUMNS = ("stream", "station_id", "device", "seq", "device_time", "time", "status",
                  "copies", "altered", "detail", "dropped_at_device")
_KEY_TIME = {"transactions": "start_time", "deliveries": "start_time",
             "inventory": "device_time", "events": "device_time"}


class CompareError(ValueError):
    """Inputs that cannot be compared (missing table or column, ambiguous ground truth)."""


# ---- what the device shows, per stream ------------------------------------------------

@dataclass(frozen=True)
class Plain:
    """Platform field `out` = truth column `source` as is (`floor`: device-clock seconds)."""

    out: str
    source: str
    kind: str  # "int" | "floor" | "str"


@dataclass(frozen=True)
class Measure:
    """Platform field `out` from truth column `source` ÷ `divisor` (the device's engineering
    value, as devices/streams.py computes it) at the resolution of FIFO record field
    `register`; `unit` is the platform unit in engineering units (mL in L: 1/1000)."""

    out: str
    source: str
    register: str
    unit: Fraction
    divisor: int = 1
    optional: bool = False  # a ground truth without `source` (an older run) leaves it out


@dataclass(frozen=True)
class StreamSpec:
    stream: str
    table: str  # ground-truth table
    time_column: str  # truth column of the key's device time
    record_time: str  # truth column of the instant the device logged the record
    plain: tuple[Plain, ...]
    measures: tuple[Measure, ...]


MILLI, CENTI, E4 = Fraction(1, 1000), Fraction(1, 100), Fraction(1, 10000)


def _readings(prefix_out: str, prefix_src: str) -> tuple[Measure, ...]:
    return (
        Measure(f"{prefix_out}gross_volume_ml", f"{prefix_src}gross_l", f"{prefix_out}gross_volume", MILLI),
        Measure(f"{prefix_out}volume_20c_ml", f"{prefix_src}volume_20c_l", f"{prefix_out}volume_20c", MILLI),
    )


SPECS: dict[str, StreamSpec] = {
    "transactions": StreamSpec(
        "transactions", "transactions", "start_time", "end_time",
        (Plain("nozzle", "nozzle", "int"), Plain("grade", "grade", "str"),
         Plain("tank", "tank", "int"), Plain("start_time", "start_time", "floor"),
         Plain("end_time", "end_time", "floor")),
        (Measure("volume_ml", "displayed_volume_ml", "volume", MILLI, 1000),
         Measure("amount_fen", "amount_fen", "amount", CENTI, 100),
         Measure("unit_price_fen", "unit_price_fen", "unit_price", CENTI, 100),
         Measure("volume_total_ml", "volume_total_after_ml", "volume_totalizer_end", MILLI, 1000),
         Measure("amount_total_fen", "amount_total_after_fen", "amount_totalizer_end", CENTI,
                 100))),
    "inventory": StreamSpec(
        "inventory", "tank_states", "time", "time",
        (Plain("tank", "tank", "int"), Plain("device_time", "time", "floor")),
        (Measure("product_level_um", "gauge_level_mm", "product_level", MILLI),
         Measure("water_level_um", "gauge_water_level_mm", "water_level", MILLI),
         Measure("temperature_mc", "gauge_temperature_c", "temperature", MILLI),
         Measure("gross_volume_ml", "gauge_gross_l", "gross_volume", MILLI),
         Measure("volume_20c_ml", "gauge_volume_20c_l", "volume_20c", MILLI),
         Measure("ullage_ml", "gauge_ullage_l", "ullage", MILLI),
         Measure("water_volume_ml", "gauge_water_l", "water_volume", MILLI))),
    "deliveries": StreamSpec(
        "deliveries", "deliveries", "start_time", "end_time",
        (Plain("tank", "tank", "int"), Plain("start_time", "start_time", "floor"),
         Plain("end_time", "end_time", "floor")),
        (*_readings("start_", "start_"), *_readings("end_", "end_"),
         Measure("start_temperature_mc", "start_temperature_c", "start_temperature", MILLI),
         Measure("end_temperature_mc", "end_temperature_c", "end_temperature", MILLI),
         Measure("start_level_um", "start_level_mm", "start_level", MILLI),
         Measure("end_level_um", "end_level_mm", "end_level", MILLI),
         # register map v2 / uplink 1.1: the bill of lading keyed in at the gauge (0 = none)
         Measure("bol_volume_20c_ml", "bol_keyed_20c_l", "bol_volume_20c", MILLI,
                 optional=True))),
    "events": StreamSpec(
        "events", "events", "time", "time",
        (Plain("code", "code", "int"), Plain("unit", "unit", "int"),
         Plain("device_time", "time", "floor")),
        (Measure("value_old_e4", "value_old", "value_old", E4),
         Measure("value_new_e4", "value_new", "value_new", E4))),
}


def _at_resolution(v: np.ndarray, scale: float) -> np.ndarray:
    """devices.codec.at_resolution, vectorised (same float operations, same results)."""
    inverse = 1.0 / scale
    whole = round(inverse)
    if abs(inverse - whole) < 1e-9:
        return np.rint(v * whole) / whole
    return np.rint(v / scale) * scale


def register_counts(values: np.ndarray, scale: float, field_type: str, numeric: str
                    ) -> np.ndarray:
    """Counts of `scale` that a collector decodes from the device's registers."""
    v = np.asarray(values, dtype=np.float64)
    if numeric == "scaled_int":
        return np.rint(v / scale)
    shown = _at_resolution(v, scale)
    if field_type == "measure":  # float32 on the wire; counters travel as float64
        shown = shown.astype(np.float32).astype(np.float64)
    return np.rint(shown / scale)


def _to_unit(counts: np.ndarray, scale: float, unit: Fraction) -> np.ndarray:
    factor = Fraction(str(scale)) / unit
    if factor.denominator == 1:
        return counts * factor.numerator
    return np.rint(counts * factor.numerator / factor.denominator)


@dataclass(frozen=True)
class Truth:
    """The ground-truth tables a comparison needs (docs/ground-truth.md)."""

    transactions: pd.DataFrame
    tank_states: pd.DataFrame
    deliveries: pd.DataFrame
    events: pd.DataFrame
    fifo_drops: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)


_DROPS_COLUMNS = ("station_id", "device", "stream", "seq", "time", "dropped_total")


def load_truth(directory: str | Path) -> Truth:
    """Read a ground-truth directory (devices --out or simulate --out), either layout."""
    d = Path(directory)
    manifest_path = d / "manifest.json"
    if not manifest_path.is_file():
        raise CompareError(f"ground truth {d}: no manifest.json (not a ground-truth directory, "
                           f"or the devices were not stopped yet)")
    manifest = json.loads(manifest_path.read_text())
    frames: dict[str, pd.DataFrame] = {}
    for name in ("transactions", "tank_states", "deliveries", "events"):
        try:
            frames[name] = read_truth(d, name).to_pandas()
        except (OSError, KeyError) as exc:
            raise CompareError(f"ground truth {d}: cannot read table {name!r} ({exc})") from None
    drops = d / "fifo_drops.parquet"
    frames["fifo_drops"] = pd.read_parquet(drops) if drops.is_file() \
        else pd.DataFrame(columns=list(_DROPS_COLUMNS))
    return Truth(**frames, manifest=manifest)


def dialects_from_endpoints(path: str | Path) -> dict[str, str]:
    """station_id → register dialect, from an endpoint map (endpoints.json)."""
    doc = json.loads(Path(path).read_text())
    try:
        return {sid: st["dialect"] for sid, st in doc["stations"].items()}
    except (KeyError, TypeError, AttributeError):
        raise CompareError(f"{path}: not an endpoint map with a dialect per station") from None


def load_profiles(profiles: Mapping[str, Profile] | None = None) -> dict[str, Profile]:
    """The register profiles by device kind: `profiles`, or the repository's."""
    return dict(profiles) if profiles else dict(_repository_profiles())


@functools.cache
def _repository_profiles() -> dict[str, Profile]:
    # parsed once per process: a check builds expected records station by station, and
    # parsing the YAML each time was a sixth of `forecourt check` (issue 11)
    return {"dispenser": load_profile("dispenser"), "tank_gauge": load_profile("tank_gauge")}


class _Profiles:
    def __init__(self, profiles: Mapping[str, Profile] | None) -> None:
        self.by_kind = load_profiles(profiles)

    def field(self, kind: str, stream: str, name: str):
        fifo = self.by_kind[kind].fifo(stream)
        for f in fifo.record:
            if f.name == name:
                return f
        raise CompareError(f"profile {kind}: FIFO {stream!r} has no field {name!r}")

    def numeric(self, kind: str, dialect: str) -> str:
        try:
            return self.by_kind[kind].dialects[dialect].numeric
        except KeyError:
            raise CompareError(f"profile {kind}: unknown dialect {dialect!r}") from None


def _truth_rows(spec: StreamSpec, truth: Truth) -> pd.DataFrame:
    df = truth.table(spec.table)
    if spec.stream == "inventory":
        df = df[(df["kind"] == "interval") & df["inventory_seq"].notna()]
        df = df.assign(seq=df["inventory_seq"], device="G")
    elif spec.stream == "transactions":
        df = df.assign(device="D" + df["dispenser"].astype(str))
    elif spec.stream == "deliveries":
        df = df.assign(device="G")
    return df.reset_index(drop=True)


class _DeviceClocks:
    """The device clock's whole second at true times, row by row: the floor of the simulated
    time, or what a wrong clock showed (the manifest's `clock_faults`, sim/device_clock.py)."""

    def __init__(self, truth: Truth, stations: np.ndarray, devices: np.ndarray) -> None:
        faults = tuple(ClockFault(**f) for f in truth.manifest.get("clock_faults", []))
        self.rows = [(np.flatnonzero((stations == sid) & (devices == dev)),
                      device_faults(faults, sid, dev))
                     for sid, dev in {(f.station_id, f.device) for f in faults}]

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.array(t, dtype=np.float64)
        for rows, faults in self.rows:
            t[rows] = shown_array(faults, t[rows])
        return np.floor(t).astype(np.int64)


def expected_records(truth: Truth, dialects: Mapping[str, str],
                     profiles: Mapping[str, Profile] | None = None) -> dict[str, pd.DataFrame]:
    """Per stream, the records the platform should hold, in its fields and units, plus
    `time` (simulated instant the device logged it)."""
    prof = _Profiles(profiles)
    out: dict[str, pd.DataFrame] = {}
    for stream, spec in SPECS.items():
        src = _truth_rows(spec, truth)
        spec = _present(spec, src)
        missing = sorted(set(_needed_columns(spec)) - set(src.columns))
        if missing:
            raise CompareError(f"ground truth {spec.table}: missing column(s) {missing}")
        unknown = sorted(set(src["station_id"].unique()) - set(dialects))
        if unknown:
            raise CompareError(f"no register dialect for station(s) {unknown} "
                               f"(dialects given for {sorted(dialects)})")
        stamp = _DeviceClocks(truth, src["station_id"].astype(str).to_numpy(),
                              src["device"].astype(str).to_numpy())
        exp = pd.DataFrame({
            "station_id": src["station_id"].astype(str), "device": src["device"].astype(str),
            "seq": src["seq"].astype(np.int64),
            "device_time": stamp(src[spec.time_column].to_numpy(np.float64)),
            "time": src[spec.record_time].astype(np.float64)})
        for p in spec.plain:
            col = src[p.source]
            exp[p.out] = (col.astype(str) if p.kind == "str" else
                          stamp(col.to_numpy(np.float64)) if p.kind == "floor"
                          else col.astype(np.int64))
        kinds = np.where(exp["device"].to_numpy() == "G", "tank_gauge", "dispenser")
        # once, not per measure and kind
        row_dialects = exp["station_id"].map(dialects).to_numpy()
        for m in spec.measures:
            values = np.zeros(len(src), dtype=np.int64)
            for kind in ("tank_gauge", "dispenser"):
                for dialect in set(row_dialects):
                    rows = (kinds == kind) & (row_dialects == dialect)
                    if not rows.any():
                        continue
                    f = prof.field(kind, stream, m.register)
                    engineering = src[m.source].to_numpy(np.float64)[rows] / m.divisor
                    counts = register_counts(engineering, f.scale, f.type,
                                             prof.numeric(kind, dialect))
                    values[rows] = _to_unit(counts, f.scale, m.unit).astype(np.int64)
            exp[m.out] = values
        out[stream] = exp
    return out


def _present(spec: StreamSpec, src: pd.DataFrame) -> StreamSpec:
    """The spec without optional measures the ground truth has no column for."""
    measures = tuple(m for m in spec.measures if not m.optional or m.source in src.columns)
    return spec if measures == spec.measures else replace(spec, measures=measures)


def _needed_columns(spec: StreamSpec) -> list[str]:
    return ["station_id", spec.time_column, spec.record_time,
            *(p.source for p in spec.plain), *(m.source for m in spec.measures)]


# ---- the comparison -------------------------------------------------------------------

@dataclass
class Comparison:
    """`records`: one row per ground-truth record and per unexpected platform record."""

    records: pd.DataFrame

    def counts(self, by: tuple[str, ...] = ("stream",)) -> pd.DataFrame:
        """Records per status (columns, all of STATUSES) for each group of `by`."""
        table = self.records.groupby([*by, "status"]).size().unstack("status", fill_value=0)
        return table.reindex(columns=list(STATUSES), fill_value=0)

    def summary(self) -> dict[str, int]:
        got = self.records["status"].value_counts()
        return {s: int(got.get(s, 0)) for s in STATUSES}

    @property
    def ok(self) -> bool:
        """Every ground-truth record received once with equal values, nothing unexpected."""
        return bool((self.records["status"] == "received_once").all())

    def problems(self, limit: int = 20) -> list[str]:
        bad = self.records[self.records["status"] != "received_once"]
        lines = [f"{r.stream} {r.station_id}/{r.device} seq {r.seq} @{r.device_time}: "
                 f"{r.status}" + (f" ({r.detail!s})" if r.detail else "")
                 + (" [dropped at the device]" if r.dropped_at_device else "")
                 for r in bad.head(limit).itertuples()]
        if len(bad) > limit:
            lines.append(f"... and {len(bad) - limit} more")
        return lines


def _platform_rows(stream: str, frame: pd.DataFrame) -> pd.DataFrame:
    time_col = _KEY_TIME[stream]
    for col in ("station_id", "device", "seq", time_col):
        if col not in frame.columns:
            raise CompareError(f"platform {stream}: no column {col!r}")
    df = frame.copy()
    df["station_id"] = df["station_id"].astype(str)
    df["device"] = df["device"].astype(str)
    df["seq"] = pd.to_numeric(df["seq"], errors="coerce")
    df["device_time"] = pd.to_numeric(df[time_col], errors="coerce")
    return df.reset_index(drop=True)


def _compared_fields(stream: str) -> list[str]:
    spec = SPECS[stream]
    return [c for c in [p.out for p in spec.plain] + [m.out for m in spec.measures]
            if c not in MATCH_KEY]


def _differences(fields: list[str], merged: pd.DataFrame, platform: pd.DataFrame
                 ) -> dict[int, list[tuple[str, str]]]:
    """Merged rows (by position) whose fields differ: [(field, 'field: truth X, platform Y')].
    Y is the value as `platform` holds it: the merge turns an int column with an unmatched
    row into floats, which would make the text depend on records elsewhere in the frame."""
    matched = merged["_matched"].to_numpy()
    got_ids = merged["_got_id"].to_numpy()
    out: dict[int, list[tuple[str, str]]] = {}
    for col in fields:
        exp = merged[f"{col}_exp"]
        got = merged[f"{col}_got"]
        if exp.dtype == object:
            equal = exp.astype(str).to_numpy() == got.astype(str).to_numpy()
        else:
            num = pd.to_numeric(got, errors="coerce").to_numpy(np.float64)
            equal = num == exp.to_numpy(np.float64)
        held = platform[col] if col in platform.columns else None
        for i in np.flatnonzero(~equal & matched):
            shown: object = None if held is None else held.iat[int(got_ids[i])]
            out.setdefault(int(i), []).append(
                (col, f"{col}: truth {exp.iat[int(i)]}, platform {shown}"))
    return out


def _compare_stream(stream: str, exp: pd.DataFrame, got: pd.DataFrame,
                    drops: pd.DataFrame) -> pd.DataFrame:
    key = list(MATCH_KEY)
    dup_truth = exp.duplicated(key, keep=False)
    if dup_truth.any():
        first = exp[dup_truth].iloc[0]
        raise CompareError(f"ground truth {stream}: two records share "
                           f"{'/'.join(str(first[k]) for k in key)}")
    fields = [c for c in _compared_fields(stream) if c in exp.columns]
    exp = exp.reset_index(drop=True)
    left = exp[key].assign(_truth_id=np.arange(len(exp)))
    for c in fields:
        left[f"{c}_exp"] = exp[c]
    right = got[key].assign(_got_id=np.arange(len(got)))
    for c in fields:
        right[f"{c}_got"] = got[c] if c in got.columns else None
    right = right.dropna(subset=["seq", "device_time"])
    right = right.astype({"seq": np.int64, "device_time": np.int64})
    merged = left.merge(right, on=key, how="left", indicator=True)
    merged["_matched"] = (merged["_merge"] == "both").to_numpy()
    copies = merged.groupby("_truth_id")["_matched"].sum().reindex(
        np.arange(len(exp)), fill_value=0).to_numpy()
    altered: dict[int, dict[str, str]] = {}
    truth_ids = merged["_truth_id"].to_numpy()
    for row, diffs in _differences(fields, merged, got).items():
        slot = altered.setdefault(int(truth_ids[row]), {})
        for name, text in diffs:
            slot.setdefault(name, text)
    status = np.where(copies == 0, "lost", np.where(copies > 1, "duplicated", "received_once"))
    names = np.full(len(exp), "", dtype=object)
    detail = np.full(len(exp), "", dtype=object)
    for tid, texts in altered.items():
        names[tid] = ",".join(sorted(texts))
        detail[tid] = "; ".join(texts[n] for n in sorted(texts))
        if status[tid] == "received_once":
            status[tid] = "altered"
    for dup in np.flatnonzero(copies > 1):
        detail[dup] = f"{copies[dup]} copies" + (f"; {detail[dup]}" if detail[dup] else "")
    out = pd.DataFrame({
        "stream": stream, "station_id": exp["station_id"], "device": exp["device"],
        "seq": exp["seq"].astype(np.int64), "device_time": exp["device_time"].astype(np.int64),
        "time": exp["time"].astype(np.float64), "status": status, "copies": copies.astype(np.int64),
        "altered": names, "detail": detail, "dropped_at_device": False},
        columns=list(RECORD_COLUMNS))
    matched_ids = merged.loc[merged["_matched"], "_got_id"].astype(int)
    extra = got[~np.isin(np.arange(len(got)), matched_ids.to_numpy())]
    if len(extra):
        out = pd.concat([out, pd.DataFrame({
            "stream": stream, "station_id": extra["station_id"], "device": extra["device"],
            "seq": extra["seq"], "device_time": extra["device_time"], "time": np.nan,
            "status": "unexpected", "copies": 1, "altered": "",
            "detail": "not in the ground truth", "dropped_at_device": False},
            columns=list(RECORD_COLUMNS))], ignore_index=True)
    return _mark_dropped(stream, out, drops)


def _mark_dropped(stream: str, out: pd.DataFrame, drops: pd.DataFrame) -> pd.DataFrame:
    """Lost records that a FIFO overflow pushed out: the latest record of that
    (station, device, seq) logged at or before the overflow (seq wraps at 16 bits)."""
    d = drops[drops["stream"] == stream] if len(drops) else drops
    lost = out[out["status"] == "lost"]
    if not len(d) or not len(lost):
        return out
    left = d[["station_id", "device", "seq", "time"]].astype(
        {"station_id": str, "device": str, "seq": np.int64, "time": np.float64}
    ).sort_values("time")
    right = out[out["status"] != "unexpected"][["station_id", "device", "seq", "time"]].astype(
        {"seq": np.int64}).reset_index().rename(columns={"index": "_row"}).sort_values("time")
    hit = pd.merge_asof(left, right, on="time", by=["station_id", "device", "seq"],
                        direction="backward")
    rows = hit["_row"].dropna().astype(int)
    out.loc[rows[out.loc[rows, "status"].eq("lost").to_numpy()], "dropped_at_device"] = True
    return out


def compare(truth: Truth, platform: Mapping[str, pd.DataFrame], dialects: Mapping[str, str],
            profiles: Mapping[str, Profile] | None = None) -> Comparison:
    """Classify every ground-truth record and every platform record (see module doc)."""
    parts = list(compare_streams(truth, platform, dialects, profiles).values())
    records = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=list(RECORD_COLUMNS))
    return Comparison(records.astype({"dropped_at_device": bool}))


def compare_streams(truth: Truth, platform: Mapping[str, pd.DataFrame],
                    dialects: Mapping[str, str], profiles: Mapping[str, Profile] | None = None,
                    expected: Mapping[str, pd.DataFrame] | None = None
                    ) -> dict[str, pd.DataFrame]:
    """Per stream, the records of `compare`: ground-truth records first (in the truth's
    order), then the unexpected platform records (in the platform's order). `expected`:
    the truth's `expected_records`, if the caller built them already."""
    missing = [s for s in STREAMS if s not in platform]
    if missing:
        raise CompareError(f"platform records: no frame for {missing}")
    if expected is None:
        expected = expected_records(truth, dialects, profiles)
    return {s: _compare_stream(s, expected[s], _platform_rows(s, platform[s]), truth.fifo_drops)
            for s in STREAMS}


def compare_platform(truth_dir: str | Path, client: PlatformClient,
                     station_ids: list[str] | None = None,
                     dialects: Mapping[str, str] | None = None) -> Comparison:
    """Read the ground truth of `truth_dir`, observe the platform (only `station_ids`, or
    the truth's stations) and compare. Dialects default to `truth_dir`/endpoints.json."""
    truth = load_truth(truth_dir)
    if dialects is None:
        dialects = dialects_from_endpoints(Path(truth_dir) / "endpoints.json")
    ids = station_ids if station_ids is not None else truth.manifest.get("stations")
    return compare(truth, observe_records(client, ids), dialects)
