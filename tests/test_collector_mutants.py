"""The deliberately broken collectors change records exactly as documented."""

from __future__ import annotations

import pytest

from collector.spool import Spool, SpoolRecord
from mutants.collector import EVERY, forget_spool, install, record_mutator


def _txn(seq: int) -> SpoolRecord:
    payload = {"key": f"S1/D1/transactions/{seq}/{1000 + seq}", "seq": seq, "start_time": 1000 + seq,
               "end_time": 1100 + seq, "volume_ml": 45_230, "amount_fen": 31_800,
               "unit_price_fen": 703}
    return SpoolRecord(payload["key"], "transaction", "D1", payload)


def _inv(seq: int) -> SpoolRecord:
    payload = {"key": f"S1/G/inventory/{seq}/{seq}", "seq": seq, "gross_volume_ml": 1}
    return SpoolRecord(payload["key"], "inventory", "G", payload)


def _run(name: str, dialect: str = "int_be") -> list[SpoolRecord]:
    mutate = record_mutator(name, dialect)
    out: list[SpoolRecord] = []
    for seq in range(1, 2 * EVERY + 1):
        out += mutate(_txn(seq)) + mutate(_inv(seq))
    return out


def test_drop_loses_every_nth_transaction_only():
    out = _run("drop")
    txns = [r for r in out if r.kind == "transaction"]
    assert len(txns) == 2 * EVERY - 2
    assert {r.payload["seq"] for r in txns}.isdisjoint({EVERY, 2 * EVERY})
    assert sum(r.kind == "inventory" for r in out) == 2 * EVERY


def test_duplicate_adds_a_shifted_copy_with_a_consistent_key():
    out = _run("duplicate")
    copies = [r for r in out if r.kind == "transaction" and r.payload["seq"] == EVERY]
    assert len(copies) == 2
    shifted = copies[1].payload
    assert shifted["start_time"] == copies[0].payload["start_time"] + 1
    assert shifted["key"].endswith(f"/{shifted['start_time']}") and copies[1].key == shifted["key"]


def test_round_volume_rounds_to_whole_litres():
    out = _run("round-volume")
    assert {r.payload["volume_ml"] for r in out if r.kind == "transaction"} == {45_000}


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_word_order_alters_transaction_values_and_keeps_them_valid(dialect):
    out = _run("word-order", dialect)
    txn = next(r for r in out if r.kind == "transaction").payload
    assert (txn["volume_ml"], txn["amount_fen"]) != (45_230, 31_800)
    assert all(isinstance(txn[f], int) and txn[f] >= 0
               for f in ("volume_ml", "amount_fen", "unit_price_fen"))
    assert next(r for r in out if r.kind == "inventory").payload["gross_volume_ml"] == 1


def test_no_spool_forgets_what_a_crash_left(tmp_path):
    spool = Spool(tmp_path, "S1")
    spool.add([_txn(1), _txn(2)])
    spool.close()
    spool = Spool(tmp_path, "S1")
    assert spool.backlog == 2
    assert forget_spool(spool) == 2
    assert spool.backlog == 0 and spool.pending_keys() == []
    spool.close()
    assert record_mutator("no-spool", "int_be") is None


def test_unknown_mutant_is_refused_by_name():
    with pytest.raises(ValueError, match="nonsense"):
        record_mutator("nonsense", "int_be")
    with pytest.raises(ValueError, match="nonsense"):
        install("nonsense")
