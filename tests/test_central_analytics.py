"""Baseline analytics on hand-made data, on SQLite and PostgreSQL: daily wetstock
reconciliation at 20 °C and totalizer / sequence continuity."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_central_support import (
    STATIONS,
    data_message,
    delivery,
    fresh_database,
    inventory,
    key_file_doc,
    ready_database,
    txn,
)

from central.checks import Inbound
from central.continuity import station_continuity
from central.db import Database
from central.keys import parse_key_file
from central.reconciliation import _by_tank, reconcile_station
from central.store import Ingestor
from central.vcf import Vcf

ZONE = ZoneInfo("Asia/Shanghai")
M0 = 1774972800  # 2026-04-01 00:00 Asia/Shanghai
M1, M2 = M0 + 86400, M0 + 2 * 86400
H = 3600


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database on each engine (PostgreSQL only with FORECOURT_PG_URL)."""
    yield from fresh_database(request.param, tmp_path)


def load(db: Database, messages: list[tuple[str, bytes]]) -> None:
    ring = parse_key_file(json.dumps(key_file_doc()), "keys")
    conn = db.connect()
    try:
        ing = Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: ring, 600.0,
                       lambda: 1.9e9)
        outs = ing.process([Inbound(t, p, 1.9e9) for t, p in messages])
        assert all(o.status == "stored" and not o.rejected for o in outs), outs
    finally:
        conn.close()


def test_daily_reconciliation_arithmetic(db_url: str) -> None:
    db = ready_database(db_url)
    s = "UMB03"  # one diesel tank, nozzle D1/1
    readings = [(M0, 30_000_000, 20_000), (M0 + 6 * H, 29_900_000, 20_000),
                (M0 + 12 * H, 29_000_000, 30_000), (M1, 38_000_000, 20_000),
                (M1 + 12 * H, 37_500_000, 20_000), (M2, 37_000_000, 20_000)]
    inv = [inventory(s, i, t, v20=v, temp_mc=c) for i, (t, v, c) in enumerate(readings)]
    fills = [(M0 - 200, 10_000),    # before the first reading: not reconciled
             (M0 + 1 * H, 60_000),   # interval at 20 °C
             (M0 + 6 * H, 40_000),   # ends exactly at a reading: belongs to the earlier one
             (M0 + 13 * H, 50_000),  # interval at 30 °C
             (M0 + 14 * H + 1800, 100_000),  # during the delivery, 30 °C interval
             (M1 + 2 * H, 500_000)]  # day 2
    total = 0
    tx = []
    for i, (end, vol) in enumerate(fills):
        tx.append(txn(s, "D1", i, end - 60, volume_ml=vol, grade="0", duration=60,
                      total_before=total))
        total += vol
    drop = delivery(s, 0, M0 + 14 * H, M0 + 15 * H, v0=28_900_000, v1=38_800_000)
    load(db, [data_message(s, "G", "inventory", inv, 1, 1.9e9),
              data_message(s, "D1", "transaction", tx, 2, 1.9e9),
              data_message(s, "G", "delivery", [drop], 3, 1.9e9)])

    with db.borrow() as conn:
        rows = reconcile_station(conn, s, ZONE, Vcf())
    assert [r["day"] for r in rows] == ["2026-04-01", "2026-04-02"]
    d1, d2 = rows

    alpha = 594.5418 / 835.0 ** 2  # 0# diesel, 835 kg/m³ is in the 788–839 band
    vcf30 = math.exp(-alpha * 10 * (1 + 0.8 * alpha * 10))
    sales1 = round(60_000 + 40_000 + 50_000 * vcf30 + 100_000 * vcf30)
    delivered = (38_800_000 - 28_900_000) + 100_000  # gauge rise + sales during the drop
    assert d1["opening_time"] == M0 and d1["opening_volume_20c_ml"] == 30_000_000
    assert d1["closing_time"] == M1 and d1["closing_volume_20c_ml"] == 38_000_000
    assert d1["transactions"] == 4 and d1["sales_ml"] == 250_000
    assert d1["sales_20c_ml"] == sales1
    assert d1["deliveries"] == 1 and d1["deliveries_20c_ml"] == delivered
    assert d1["variance_ml"] == 30_000_000 + delivered - sales1 - 38_000_000
    assert d1["variance_pct_of_sales"] == round(100 * d1["variance_ml"] / sales1, 4)
    assert d1["readings"] == 3 and d1["day_start"] == M0 and d1["day_end"] == M1
    assert d1["grade"] == "0" and d1["tank"] == 1

    assert d2["opening_volume_20c_ml"] == 38_000_000 and d2["closing_time"] == M2
    assert d2["sales_20c_ml"] == 500_000 and d2["deliveries_20c_ml"] == 0
    assert d2["variance_ml"] == 38_000_000 - 500_000 - 37_000_000
    assert d2["cumulative_sales_20c_ml"] == sales1 + 500_000
    assert d2["cumulative_variance_ml"] == d1["variance_ml"] + d2["variance_ml"]
    assert d2["cumulative_variance_pct_of_sales"] == round(
        100 * (d1["variance_ml"] + d2["variance_ml"]) / (sales1 + 500_000), 4)


def test_totalizer_and_sequence_continuity(db_url: str) -> None:
    db = ready_database(db_url)
    s, t = "UMB01", M0
    n1 = [txn(s, "D1", 10, t, nozzle=1, total_before=0),
          txn(s, "D1", 11, t + 600, nozzle=1, total_before=40_000,
              amount_total_before=28_480)]
    # seq 12 (nozzle 1, 40 L) never reached the platform
    n1.append(txn(s, "D1", 13, t + 1800, nozzle=1, total_before=120_000,
                  amount_total_before=85_440))
    n2 = [txn(s, "D1", 14, t + 2400, nozzle=2, tank=2, grade="95", total_before=5_000_000)]
    # Gauge: two tanks read at once across the 16-bit wrap, then one more reading.
    inv = [inventory(s, 65534, t, tank=1), inventory(s, 65535, t + 900, tank=1),
           inventory(s, 0, t + 900, tank=2), inventory(s, 1, t + 1800, tank=1)]
    load(db, [data_message(s, "D1", "transaction", n1 + n2, 1, 1.9e9),
              data_message(s, "G", "inventory", inv, 2, 1.9e9)])

    with db.borrow() as conn:
        items = station_continuity(conn, s)
    by = {(i["device"], i["check"], i.get("nozzle"), i.get("stream")): i for i in items}
    noz1 = by[("D1", "totalizer", 1, None)]
    assert noz1["transactions"] == 3 and not noz1["continuous"]
    assert noz1["break_count"] == 1 and noz1["volume_unexplained_ml"] == 40_000
    assert noz1["breaks"] == [{
        "after_key": n1[1]["key"], "key": n1[2]["key"],
        "expected_volume_total_ml": 120_000, "found_volume_total_ml": 160_000,
        "volume_gap_ml": 40_000, "expected_amount_total_fen": 85_440,
        "found_amount_total_fen": n1[2]["amount_total_fen"],
        "amount_gap_fen": n1[2]["amount_total_fen"] - 85_440}]
    assert noz1["volume_total_start_ml"] == 0 and noz1["volume_total_end_ml"] == 160_000
    noz2 = by[("D1", "totalizer", 2, None)]
    assert noz2["continuous"] and noz2["volume_unexplained_ml"] == 0

    seq_tx = by[("D1", "sequence", None, "transactions")]
    assert seq_tx["records"] == 4 and seq_tx["gap_count"] == 1
    assert seq_tx["missing_records"] == 1
    assert seq_tx["gaps"][0]["after_seq"] == 11 and seq_tx["gaps"][0]["seq"] == 13
    seq_inv = by[("G", "sequence", None, "inventory")]
    assert seq_inv["continuous"] and seq_inv["records"] == 4
    assert (seq_inv["first_seq"], seq_inv["last_seq"]) == (65534, 1)

    with db.borrow() as conn:  # a time window sees only what is inside it
        window = station_continuity(conn, s, "D1", t + 500, t + 2000)
    w1 = [i for i in window if i.get("nozzle") == 1][0]
    assert w1["transactions"] == 2 and w1["break_count"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(-2**62, 2**62),
                          st.sampled_from(["92", "95", "0"])), max_size=60))
def test_rows_split_by_tank_keep_their_order(rows: list[tuple[int, int, str]]) -> None:
    """station_inputs' split (`_by_tank`): each tank's values in their order of arrival,
    the columns of one row kept together, as a loop over the rows would give them."""
    tanks = np.array([r[0] for r in rows], dtype=np.int64)
    split = _by_tank(tanks, np.array([r[1] for r in rows], dtype=np.int64),
                     np.array([r[2] for r in rows], dtype=str))
    expected: dict[int, tuple[list[int], list[str]]] = {}
    for tank, value, grade in rows:
        expected.setdefault(tank, ([], []))[0].append(value)
        expected[tank][1].append(grade)
    assert sorted(split) == sorted(expected)
    for tank, (values, grades) in expected.items():
        assert split[tank][0].tolist() == values and split[tank][1].tolist() == grades
