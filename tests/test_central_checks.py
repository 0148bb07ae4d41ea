"""Message admission without a database or broker: topics, strict JSON and schemas,
signatures (a known vector), key files, the registry ledger, VCF, and fuzzed payloads
through the whole batch ingest (which must never crash)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_central_support import (
    KEYS,
    REGISTRY_CSV,
    STATION_MAP,
    STATIONS,
    T0,
    data_message,
    delivery,
    event,
    fresh_database,
    heartbeat,
    inventory,
    key_file_doc,
    online,
    ready_database,
    state,
    txn,
)

from central import schemas, signing
from central.checks import Inbound, Rejection, Verified, check_message
from central.keys import KeyFile, KeyFileError, parse_key_file
from central.registry import RegistryError, parse_registry
from central.store import Ingestor
from central.topics import TopicError, parse_topic
from central.vcf import Vcf, expansion_coefficient, parse_densities, vcf

RING = parse_key_file(json.dumps(key_file_doc()), "test-keys")
UPLINK_KINDS = ("transaction", "inventory", "delivery", "event", "state", "heartbeat", "online",
                "ack")


def check(topic_payload: tuple[str, bytes]) -> Verified | Rejection:
    return check_message(Inbound(*topic_payload, received_at=0.0), STATION_MAP, RING)


# -- topics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("topic,expected", [
    ("fsx/v1/UMB01/D1/evt/transaction", ("UMB01", "transaction", "D1")),
    ("fsx/v1/UMB01/G/evt/inventory", ("UMB01", "inventory", "G")),
    ("fsx/v1/S-9_x/D12/evt/event", ("S-9_x", "event", "D12")),
    ("fsx/v1/UMB01/status/heartbeat", ("UMB01", "heartbeat", None)),
    ("fsx/v1/UMB01/status/online", ("UMB01", "online", None)),
    ("fsx/v1/UMB01/D2/evt/state", ("UMB01", "state", "D2")),
])
def test_topics_parse(topic: str, expected: tuple) -> None:
    t = parse_topic(topic)
    assert (t.station_id, t.kind, t.device) == expected


@pytest.mark.parametrize("topic", [
    "fsx/v1/UMB01/D1/evt/refuel", "fsx/v2/UMB01/D1/evt/transaction", "fsx/v1/UMB01/D0/evt/event",
    "fsx/v1/UMB01/X1/evt/event", "fsx/v1/UMB 01/D1/evt/event", "fsx/v1/UMB01/status/ack",
    "fsx/v1/UMB01/status/online/extra", "fsx/v1/UMB01/ack", "", "fsx/v1/" + "A" * 33 + "/G/evt/event",
])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


# -- JSON and schemas ---------------------------------------------------------------------------
def test_uplink_schemas_are_valid_and_share_one_envelope() -> None:
    envelopes = []
    for kind in UPLINK_KINDS:
        s = schemas.schema(kind)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        schemas.validator(kind)  # check_schema passes
        env = {k: v for k, v in s["properties"].items()
               if k in ("v", "station_id", "msg_seq", "sent_at", "kid", "sig")}
        envelopes.append(json.dumps(env, sort_keys=True))
        assert s["properties"]["type"] == {"const": kind}
    assert len(set(envelopes)) == 1


def test_signed_examples_pass_and_float_integers_fail() -> None:
    rec = txn("UMB01", "D1", 1, T0)
    assert isinstance(check(data_message("UMB01", "D1", "transaction", [rec], 1, 1.0e9)),
                      Verified)
    assert isinstance(check(heartbeat("UMB01", 2, 1.0e9)), Verified)
    # 40000.0 is an integer for JSON Schema, but the uplink carries exact integers only.
    r = check(data_message("UMB01", "D1", "transaction", [dict(rec, volume_ml=40000.0)], 3,
                           1.0e9))
    assert isinstance(r, Rejection) and r.reason == "schema"
    assert r.detail.startswith("records[0].volume_ml")
    r = check(data_message("UMB01", "D1", "transaction", [dict(rec, nozzle=True)], 4, 1.0e9))
    assert isinstance(r, Rejection) and r.reason == "schema"


@pytest.mark.parametrize("raw,why", [
    (b"\xff\xfe{}", "utf-8"), (b'{"v": NaN}', "NaN"), (b'{"v": 1, "v": 1}', "duplicate"),
    (b"[" * 100_000, "nesting"), (b"{", "truncated"),
])
def test_malformed_json_is_rejected(raw: bytes, why: str) -> None:
    r = check(("fsx/v1/UMB01/G/evt/inventory", raw))
    assert isinstance(r, Rejection) and r.reason == "malformed_json", why


def test_lone_surrogate_in_free_text_is_malformed() -> None:
    topic, raw = heartbeat("UMB01", 2, 1.0e9)
    doc = json.loads(raw)
    doc["devices"][0]["error"] = "SURROGATE"
    raw = json.dumps(doc).replace('"SURROGATE"', '"\\ud800"').encode()
    r = check((topic, raw))
    assert isinstance(r, Rejection) and r.reason == "malformed_json"


def test_uplink_1_1_messages_pass_and_bad_ones_are_rejected_with_the_path() -> None:
    """delivery.bol_volume_20c_ml, state reports and heartbeat drained_through (uplink 1.1);
    1.0 messages without them stay valid."""
    drop = delivery("UMB01", 1, T0, T0 + 900, v0=1, v1=2)
    for rec in (drop, dict(drop, bol_volume_20c_ml=0), dict(drop, bol_volume_20c_ml=11_975_400)):
        assert isinstance(check(data_message("UMB01", "G", "delivery", [rec], 1, 1.0e9)),
                          Verified)
    rep = state("UMB01", "D1", 7, T0, seal_state=0b101)
    assert isinstance(check(data_message("UMB01", "D1", "state", [rep], 2, 1.0e9)), Verified)
    gauge = state("UMB01", "G", 0, T0)
    assert isinstance(check(data_message("UMB01", "G", "state", [gauge], 3, 1.0e9)), Verified)
    devices = [{"device": "G", "online": True, "device_time": T0, "last_ok_at": 1.0e9,
                "failures": 0, "error": None, "drained_through": T0 - 1},
               {"device": "D1", "online": False, "device_time": None, "last_ok_at": None,
                "failures": 5, "error": "timeout", "drained_through": None}]
    assert isinstance(check(heartbeat("UMB01", 4, 1.0e9, devices=devices)), Verified)
    bad = [
        (data_message("UMB01", "G", "delivery", [dict(drop, bol_volume_20c_ml=-1)], 5, 1.0e9),
         "records[0].bol_volume_20c_ml"),
        (data_message("UMB01", "G", "delivery", [dict(drop, bol_volume_20c_ml=1.5)], 6, 1.0e9),
         "records[0].bol_volume_20c_ml"),
        (data_message("UMB01", "D1", "state", [dict(rep, seq=65536)], 7, 1.0e9),
         "records[0].seq"),
        (data_message("UMB01", "D1", "state", [{k: v for k, v in rep.items()
                                                if k != "encoder_id"}], 8, 1.0e9), "records[0]"),
        (data_message("UMB01", "D1", "state", [dict(rep, seal_state="0")], 9, 1.0e9),
         "records[0].seal_state"),
        (data_message("UMB01", "D1", "state", [dict(rep, mainboard_id="M" * 17)], 10, 1.0e9),
         "records[0].mainboard_id"),
        (data_message("UMB01", "D1", "state", [dict(rep, key="UMB01/D1/events/7/1")], 11,
                      1.0e9), "records[0].key"),
        (heartbeat("UMB01", 12, 1.0e9, devices=[dict(devices[0], drained_through=1.5)]),
         "devices[0].drained_through"),
        (heartbeat("UMB01", 13, 1.0e9, devices=[dict(devices[0], drained_through=-1)]),
         "devices[0].drained_through"),
    ]
    for msg, path in bad:
        r = check(msg)
        assert isinstance(r, Rejection) and r.reason == "schema", (path, r)
        assert r.detail.startswith(path), (path, r.detail)


def test_non_object_payload_is_a_schema_rejection() -> None:
    r = check(("fsx/v1/UMB01/G/evt/inventory", b"[1, 2]"))
    assert isinstance(r, Rejection) and r.reason == "schema"


# -- signatures ----------------------------------------------------------------------------------
def test_signature_known_vector() -> None:
    # HMAC-SHA256(key 00..1f, b"fsx/v1/S1/ack\n" + '{"a":[1,2],"b":"é","kid":"k1","v":1}')
    key = bytes(range(32))
    signed = signing.sign(key, "k1", "fsx/v1/S1/ack", {"v": 1, "b": "é", "a": [1, 2]})
    assert signed["sig"] == "9b5eb78ea306a65957fd6416bf86b592f2d254285a897713e17a1122acc2e972"
    assert signing.verify(key, "fsx/v1/S1/ack", signed)
    assert not signing.verify(key, "fsx/v1/S2/ack", signed)  # the topic is signed too
    assert not signing.verify(key, "fsx/v1/S1/ack", dict(signed, b="e"))


def test_signature_covers_topic_so_a_station_cannot_publish_as_another() -> None:
    rec = inventory("UMB02", 1, T0)
    topic, raw = data_message("UMB02", "G", "inventory", [rec], 1, 1.0e9)
    moved = topic.replace("UMB02", "UMB01")
    r = check((moved, raw))
    assert isinstance(r, Rejection) and r.reason == "station_mismatch"
    doc = json.loads(raw)
    doc["station_id"] = "UMB01"  # now consistent, but signed by UMB02 for UMB02's topic
    r = check((moved, json.dumps(doc).encode()))
    assert isinstance(r, Rejection) and r.reason == "bad_signature"


def test_key_rotation_accepts_any_listed_kid(tmp_path: Path) -> None:
    keys = {sid: dict(ks) for sid, ks in KEYS.items()}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(key_file_doc(keys)))
    kf = KeyFile(path)
    rec = inventory("UMB01", 1, T0)
    msg = data_message("UMB01", "G", "inventory", [rec], 1, 1.0e9, kid="k2")
    assert check_message(Inbound(*msg, 0.0), STATION_MAP, kf.current()).reason == "unknown_kid"
    keys["UMB01"]["k2"] = "ab" * 32
    KEYS["UMB01"]["k2"] = "ab" * 32  # the test signer looks keys up here
    try:
        path.write_text(json.dumps(key_file_doc(keys, active={"UMB01": "k2"})))
        msg = data_message("UMB01", "G", "inventory", [rec], 1, 1.0e9, kid="k2")
        assert isinstance(check_message(Inbound(*msg, 0.0), STATION_MAP, kf.current()),
                          Verified)
        assert kf.current().active("UMB01")[0] == "k2"
        path.write_text("{ half written")  # a botched edit keeps the previous keys
        assert kf.current().active("UMB01")[0] == "k2"
    finally:
        del KEYS["UMB01"]["k2"]


@pytest.mark.parametrize("doc,fragment", [
    ({"format": "x", "stations": {}}, "field format"),
    ({"format": "forecourt-keys/1", "stations": []}, "field stations"),
    ({"format": "forecourt-keys/1", "stations": {"A": {"active": "k1", "keys": {"k1": "zz"}}}},
     "stations.A.keys.k1"),
    ({"format": "forecourt-keys/1",
      "stations": {"A": {"active": "k2", "keys": {"k1": "00" * 32}}}}, "stations.A.active"),
    ({"format": "forecourt-keys/1", "stations": {"A B": {"active": "k1", "keys": {}}}},
     "stations.A B"),
])
def test_key_file_errors_name_the_field(doc: dict, fragment: str) -> None:
    with pytest.raises(KeyFileError, match="keys.json") as err:
        parse_key_file(json.dumps(doc), "keys.json")
    assert fragment in str(err.value)


# -- registry ------------------------------------------------------------------------------------
def test_registry_parses_tanks_and_dispensers() -> None:
    s = STATION_MAP["UMB01"]
    assert s.ownership == "private" and s.town == "海流图镇"
    assert [(t.tank, t.grade, t.nominal_m3) for t in s.tanks] == [(1, "92", 30), (2, "95", 20),
                                                                 (3, "0", 50)]
    assert [(d.dispenser, d.nozzle_tanks) for d in s.dispensers] == [(1, (1, 2)), (2, (1, 3))]
    assert s.devices == ("G", "D1", "D2")
    assert s.extra["dialect"] == "int_be"


@pytest.mark.parametrize("edit,fragment", [
    (("private,41.57", "public,41.57"), "row 1 (UMB01) column ownership"),
    (("1:92:30;2:95:20;3:0:50", "1:92:30;2:97:20"), "row 1 (UMB01) column tanks"),
    (("1:1+2;2:1+3", "1:1+2;2:1+4"), "row 1 (UMB01) column dispensers"),
    (("UMB02,测试二站", "UMB01,测试二站"), "row 2 (UMB01) column station_id"),
    (("station_id,name", "id,name"), "missing column"),
])
def test_registry_errors_name_row_and_column(edit: tuple[str, str], fragment: str) -> None:
    with pytest.raises(RegistryError) as err:
        parse_registry(REGISTRY_CSV.replace(*edit, 1), "fleet.csv")
    assert "fleet.csv" in str(err.value) and fragment in str(err.value)


# -- VCF ------------------------------------------------------------------------------------------
def test_vcf_matches_the_domain_formula() -> None:
    assert vcf(735.0, 20.0) == 1.0
    a = (346.4228 + 0.4388 * 735.0) / 735.0 ** 2
    assert expansion_coefficient(735.0) == pytest.approx(a)
    assert a == pytest.approx(0.00124, abs=2e-5)  # domain brief §3
    assert vcf(735.0, 30.0) == pytest.approx(math.exp(-a * 10 * (1 + 0.8 * a * 10)))
    diesel = (186.9696 + 0.4862 * 845.0) / 845.0 ** 2
    assert expansion_coefficient(845.0) == pytest.approx(diesel)
    assert expansion_coefficient(800.0) == pytest.approx(594.5418 / 800.0 ** 2)
    v = Vcf()
    assert v.factor("92", 10.0) > 1.0 > v.factor("92", 30.0)
    assert v.to_20c_ml("0", 1000.0, 20_000) == 1000.0
    assert Vcf(parse_densities("92=730")).densities["92"] == 730.0
    with pytest.raises(ValueError, match="--densities"):
        parse_densities("92:730")
    with pytest.raises(ValueError, match="density"):
        parse_densities("92=7.3")


# -- fuzzing: payloads never crash ingest and are rejected with a reason ---------------------------
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=False), st.text(max_size=12))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=20)
_topics = st.one_of(
    st.sampled_from(["fsx/v1/UMB01/D1/evt/transaction", "fsx/v1/UMB01/G/evt/inventory",
                     "fsx/v1/UMB02/G/evt/delivery", "fsx/v1/UMB01/D2/evt/event",
                     "fsx/v1/UMB03/status/heartbeat", "fsx/v1/UMB03/status/online",
                     "fsx/v1/UMB09/D1/evt/transaction"]),
    st.text(max_size=40))


def _mutated_valid() -> st.SearchStrategy[tuple[str, bytes]]:
    """A valid signed message with one field changed, dropped or retyped (keeps the sig)."""
    base_topic, base_raw = data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 1, T0)],
                                        1, 1.0e9)
    base = json.loads(base_raw)

    @st.composite
    def mutate(draw: st.DrawFn) -> tuple[str, bytes]:
        doc = json.loads(json.dumps(base))
        target = doc if draw(st.booleans()) else doc["records"][0]
        field = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[field]
        else:
            target[field] = draw(_json)
        assume(doc != base)  # an unchanged message would rightly be accepted
        return base_topic, json.dumps(doc).encode()

    return mutate()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(msgs=st.lists(st.one_of(
    st.tuples(_topics, st.binary(max_size=64)),
    st.tuples(_topics, _json.map(lambda v: json.dumps(v).encode())),
    _mutated_valid()), min_size=1, max_size=5))
def test_fuzzed_messages_never_crash_ingest(msgs: list[tuple[str, bytes]],
                                            fuzz_ingestor: Ingestor) -> None:
    outcomes = fuzz_ingestor.process([Inbound(t, p, 1.0e9) for t, p in msgs])
    assert len(outcomes) == len(msgs)
    for o in outcomes:
        assert o.status == "rejected", o  # nothing random is valid and correctly signed
        assert o.reason in {"bad_topic", "unknown_station", "malformed_json", "schema",
                            "station_mismatch", "device_mismatch", "unknown_kid",
                            "bad_signature"}
    with fuzz_ingestor.conn.transaction():
        (stored,) = fuzz_ingestor.conn.query_one("SELECT COUNT(*) FROM transactions")
    assert stored == 0


def test_numbers_out_of_range_are_malformed_and_the_batch_goes_on(tmp_path: Path) -> None:
    """Issue 10: `"sent_at": 1e400` (no double holds it) and, from a key holder, 10**20 (no
    64-bit column holds it) once raised inside the checks or the database and rolled back
    the whole batch; now each is rejected as malformed JSON and the good message of the
    same batch is stored."""
    db = ready_database(next(fresh_database("sqlite", tmp_path)))
    conn = db.connect()
    ingestor = Ingestor(conn, STATION_MAP, lambda: RING, 600.0, lambda: 1.0e9)
    good = data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 1, T0)], 1, 1.0e9)
    huge = data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 2, T0 + 60)], 2,
                        10**20)
    topic, raw = data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 3, T0 + 120)],
                              3, 1.0e9)
    assert b'"sent_at": 1000000000.0' in raw
    infinite = (topic, raw.replace(b'"sent_at": 1000000000.0', b'"sent_at": 1e400'))
    outcomes = ingestor.process([Inbound(t, p, 1.0e9) for t, p in (good, huge, infinite)])
    assert [(o.status, o.reason) for o in outcomes] == [
        ("stored", None), ("rejected", "malformed_json"), ("rejected", "malformed_json")]
    assert "64-bit" in outcomes[1].detail and "1e400" in outcomes[2].detail
    assert conn.query_one("SELECT COUNT(*) FROM transactions") == (1,)
    conn.close()


def test_identifiers_with_a_trailing_newline_are_refused() -> None:
    """Issue 10: patterns ending in `$` let "D1\\n" through (Python's `$` matches before a
    final newline): the schemas now use ECMA-262's `$`, the parsers full matches."""
    from collector.endpoints import FORMAT as ENDPOINTS_FORMAT
    from collector.endpoints import EndpointError, parse_endpoints
    from collector.keys import KeyFileError as CollectorKeyFileError
    from collector.keys import parse_key_file as collector_keys

    beat = json.loads(heartbeat("UMB01", 1, 1.0e9)[1])
    beat["devices"][0]["device"] = "D1\n"
    assert "does not match" in (schemas.first_error("heartbeat", beat) or "")
    assert not schemas.fast("heartbeat")(beat)
    with pytest.raises(KeyFileError, match="station id"):
        parse_key_file(json.dumps(key_file_doc({"UMB01\n": {"k1": "00" * 32}})), "keys")
    with pytest.raises(KeyFileError, match="64 hex"):
        parse_key_file(json.dumps(key_file_doc({"UMB01": {"k1": "00" * 32 + "\n"}})), "keys")
    with pytest.raises(CollectorKeyFileError, match="64 hex"):
        collector_keys(key_file_doc({"UMB01": {"k1": "00" * 32 + "\n"}}), "keys")
    with pytest.raises(EndpointError, match="station id"):
        parse_endpoints({"format": ENDPOINTS_FORMAT, "stations": {"UMB01\n": {}}}, "endpoints")


@pytest.fixture(scope="module")
def fuzz_ingestor(tmp_path_factory: pytest.TempPathFactory) -> Ingestor:
    gen = fresh_database("sqlite", tmp_path_factory.mktemp("fuzz"))
    db = ready_database(next(gen))
    conn = db.connect()
    yield Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: RING, 600.0,
                   lambda: 1.0e9)
    conn.close()


# -- the compiled validator agrees with jsonschema ------------------------------------------------
def _bases() -> dict[str, dict]:
    docs = {
        "transaction": data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 1, T0)],
                                    1, 1.0e9),
        "inventory": data_message("UMB01", "G", "inventory", [inventory("UMB01", 1, T0)], 1,
                                  1.0e9),
        "delivery": data_message("UMB01", "G", "delivery",
                                 [delivery("UMB01", 1, T0, T0 + 900, v0=1, v1=2)], 1, 1.0e9),
        "event": data_message("UMB01", "D1", "event", [event("UMB01", "D1", 1, T0)], 1, 1.0e9),
        "state": data_message("UMB01", "D1", "state", [state("UMB01", "D1", 1, T0)], 1, 1.0e9),
        "heartbeat": heartbeat("UMB01", 1, 1.0e9),
        "online": online("UMB01", 1, 1.0e9, False),
    }
    out = {k: json.loads(raw) for k, (_, raw) in docs.items()}
    out["ack"] = signing.sign(b"k" * 32, "k1", "fsx/v1/UMB01/ack", {
        "v": 1, "type": "ack", "station_id": "UMB01", "msg_seq": 3, "sent_at": 1.0e9,
        "acked_msg_seq": 1, "accepted": ["a"], "duplicates": [],
        "rejected": [{"key": "b", "reason": "conflict"}]})
    return out


BASES = _bases()
_EDGE = st.one_of(_json, st.sampled_from([
    0, -1, 1, 1.0, 0.5, -0.0, True, False, None, "", "x" * 130, 65535, 65536, 2**63 - 1, 2**63,
    2**53, -(2**53) - 1, 4294967295, 4294967296, [], {}, "UMB01", "G", "D1", "92", "k1",
    "a" * 64, "UMB01\n", 1e300]))


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def _mutated_docs(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(st.sampled_from(UPLINK_KINDS))
    doc: object = json.loads(json.dumps(BASES[kind]))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(doc)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(_EDGE)
        else:
            parent[path[-1]] = draw(_EDGE)
    if draw(st.integers(0, 20)) == 0:
        doc = draw(_json)
    return kind, doc


@settings(max_examples=400, deadline=None)
@given(case=_mutated_docs())
def test_compiled_validator_agrees_with_jsonschema(case: tuple[str, object]) -> None:
    kind, doc = case
    full = next(schemas.validator(kind).iter_errors(doc), None) is None
    assert schemas.fast(kind)(doc) == full
    assert (schemas.first_error(kind, doc) is None) == full


def test_compiled_validator_refuses_unknown_keywords() -> None:
    from central.fastcheck import compile_schema

    with pytest.raises(ValueError, match="oneOf"):
        compile_schema({"oneOf": [{"type": "string"}]})
    assert all(schemas.fast(k)(BASES[k]) for k in UPLINK_KINDS)


# -- interoperability with the independently written reference collector -------------------------
def test_collector_signatures_verify_here_and_platform_acks_verify_there(
        tmp_path: Path) -> None:
    """Both sides implement docs/uplink.md §2 on their own; they must agree byte for byte."""
    col_keys = pytest.importorskip("collector.keys")
    col_signing = pytest.importorskip("collector.signing")
    path = col_keys.generate_key_file(["UMB01"], tmp_path / "keys.json")
    station_keys = col_keys.load_key_file(path)["UMB01"]
    ring = KeyFile(path).current()
    rec = dict(txn("UMB01", "D1", 3, T0), grade="95")
    topic = "fsx/v1/UMB01/D1/evt/transaction"
    payload = {"v": 1, "type": "transaction", "station_id": "UMB01", "msg_seq": 77,
               "sent_at": 1.0e9 + 0.25, "device": "D1", "records": [rec]}
    raw = col_signing.sign(topic, payload, station_keys)
    verified = check_message(Inbound(topic, raw, 0.0), STATION_MAP, ring)
    assert isinstance(verified, Verified), verified
    db = ready_database(next(fresh_database("sqlite", tmp_path)))
    conn = db.connect()
    try:
        ingestor = Ingestor(conn, STATION_MAP, lambda: ring, 600.0, lambda: 1.0e9)
        [out] = ingestor.process([Inbound(topic, raw, 1.0e9)])
    finally:
        conn.close()
    assert out.accepted == [rec["key"]]
    ack_topic, ack_raw = out.ack
    assert col_signing.verify(ack_topic, json.loads(ack_raw), station_keys)


# -- the command line refuses bad input, naming it ---------------------------------------------
def test_cli_bad_input_exits_2_naming_the_problem(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from central.cli import main, migrate

    registry = tmp_path / "fleet.csv"
    registry.write_text(REGISTRY_CSV, encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(key_file_doc()))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    base = {"--db": db, "--broker": "mqtt://127.0.0.1:1", "--http": "127.0.0.1:0",
            "--keys": str(keys), "--registry": str(registry)}
    cases = [
        ({"--keys": str(tmp_path / "missing.json")}, "missing.json"),
        ({"--registry": str(keys)}, "missing column"),
        ({"--db": "mysql://x/y"}, "--db"),
        ({"--broker": "http://x"}, "--broker"),
        ({"--densities": "92=abc"}, "--densities"),
        ({"--timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ]
    for override, fragment in cases:
        args = [part for item in {**base, **override}.items() for part in item]
        assert main(args) == 2, override
        assert fragment in capsys.readouterr().err, override
    assert main(["--db", db]) == 2  # no --broker/--keys/--registry
    assert "--broker" in capsys.readouterr().err
    assert migrate(["--db", db]) == 0
    shipped = sorted(p.name.split(".")[0] for p in
                     (Path(__file__).resolve().parents[1] / "central" / "migrations").glob(
                         "[0-9][0-9][0-9][0-9]_*.sql"))
    assert json.loads(capsys.readouterr().out)["applied"] == sorted(set(shipped))
    assert shipped[:2] == ["0001_initial", "0002_cheat_warning"]


def test_the_shipped_fleet_ledger_is_readable_as_plain_data() -> None:
    ledger = Path(__file__).resolve().parents[1] / "scenarios/fleets/urad-middle-banner.csv"
    if not ledger.exists():
        pytest.skip("the fleet ledger is not in this checkout yet")
    from central.registry import load_registry

    stations = load_registry(ledger)
    assert len(stations) == 46
    assert sum(s.ownership == "private" for s in stations) == 27
    assert all(s.devices[0] == "G" and len(s.devices) >= 2 for s in stations)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_flood_of_garbage_is_counted_but_keeps_a_bounded_sample(engine: str,
                                                                  tmp_path: Path) -> None:
    """Issue 10: every rejected message was a database row, so an anonymous publisher grew
    the database without bound; now each is counted, only the newest few per station are
    kept as a sample, and an honest message after the flood is stored."""
    for url in fresh_database(engine, tmp_path):
        _flood(ready_database(url).connect())


def _flood(conn: Any) -> None:
    ingestor = Ingestor(conn, STATION_MAP, lambda: RING, 600.0, lambda: 1.0e9,
                        rejection_sample=25)
    garbage = [Inbound("fsx/v1/UMB01/D1/evt/transaction", b"not json %d" % i, 1.0e9)
               for i in range(200)]
    unknown = [Inbound("fsx/v1/NOBODY/D1/evt/transaction", b"{}", 1.0e9)] * 40
    good = data_message("UMB01", "D1", "transaction", [txn("UMB01", "D1", 1, T0)], 1, 1.0e9)
    for k in range(0, 200, 50):
        ingestor.process(garbage[k:k + 50] + unknown[k // 5:k // 5 + 10])
    outcomes = ingestor.process([Inbound(*good, 1.0e9)])
    assert [o.status for o in outcomes] == ["stored"]
    kept = dict(conn.query("SELECT station_id, COUNT(*) FROM ingest_rejections "
                           "GROUP BY station_id"))
    assert kept == {"UMB01": 25, "": 25}
    counted = dict(conn.query("SELECT name, SUM(value) FROM ingest_counters GROUP BY name"))
    assert counted["rejected:malformed_json"] == 200
    assert counted["rejected:unknown_station"] == 40
    conn.close()
