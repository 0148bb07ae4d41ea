"""Signing (docs/uplink.md §2), key files, endpoint maps and profiles as the collector reads them."""

from __future__ import annotations

import hashlib
import hmac
import json
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.endpoints import EndpointError, load_endpoints, parse_endpoints
from collector.keys import KeyFileError, StationKeys, generate_key_file, load_key_file
from collector.profile import ProfileError, load_profile, load_profiles, parse_profile
from collector.signing import canonical_bytes, canonical_text, sign, sign_records, verify

KEY = bytes(range(32))  # 000102…1f
KEYS = StationKeys("UMB01", "k1", {"k1": KEY, "k0": b"\x11" * 32})


def test_canonical_form_and_signature_known_vector():
    """Canonical bytes typed out by hand; the MAC computed with `openssl dgst -sha256 -hmac`."""
    ack = {"v": 1, "type": "ack", "station_id": "UMB01", "msg_seq": 3, "sent_at": 1767225600.5,
           "kid": "k1", "acked_msg_seq": 7,
           "accepted": ["UMB01/D1/transactions/65535/1767252600"], "duplicates": [],
           "rejected": [], "sig": "ignored"}
    canonical = (b'{"accepted":["UMB01/D1/transactions/65535/1767252600"],"acked_msg_seq":7,'
                 b'"duplicates":[],"kid":"k1","msg_seq":3,"rejected":[],'
                 b'"sent_at":1767225600.5,"station_id":"UMB01","type":"ack","v":1}')
    assert canonical_bytes(ack) == canonical
    expected = "73624b650a0ce6d7851a9514ba2260ac7e406bcb02cf98f23a5288e1f4f6c81d"
    assert hmac.new(KEY, b"fsx/v1/UMB01/ack\n" + canonical, hashlib.sha256).hexdigest() == expected
    ack["sig"] = expected
    assert verify("fsx/v1/UMB01/ack", ack, KEYS)


def test_sign_non_ascii_stays_utf8_and_matches_openssl():
    msg = {"v": 1, "type": "transaction", "station_id": "UMB01", "msg_seq": 42,
           "sent_at": 1767252700.25, "device": "D1", "备注": "油",
           "records": [{"seq": 65535, "key": "UMB01/D1/transactions/65535/1767252600",
                        "amount_fen": 28487}]}
    data = sign("fsx/v1/UMB01/D1/evt/transaction", msg, KEYS)
    assert msg["kid"] == "k1"
    assert msg["sig"] == "b6536c72cbf0ac3862f77121b5b2c02487707932880da78873e63ee6fcd0e751"
    assert json.loads(data) == msg  # what goes on the wire is the signed object
    assert "油".encode() in data


def test_verify_rejects_tampering_other_topic_and_unknown_kid():
    msg = {"v": 1, "type": "ack", "station_id": "UMB01", "msg_seq": 1, "sent_at": 1.0}
    sign("fsx/v1/UMB01/ack", msg, KEYS)
    assert verify("fsx/v1/UMB01/ack", msg, KEYS)
    assert not verify("fsx/v1/UMB02/ack", msg, KEYS)  # the topic is inside the MAC
    assert not verify("fsx/v1/UMB01/ack", {**msg, "msg_seq": 2}, KEYS)
    assert not verify("fsx/v1/UMB01/ack", {**msg, "kid": "k9"}, KEYS)
    assert not verify("fsx/v1/UMB01/ack", {**msg, "sig": 5}, KEYS)
    assert not verify("fsx/v1/UMB01/ack", ["not", "an", "object"], KEYS)
    # Rotation: a message signed with another listed key id verifies too.
    old = {"v": 1, "type": "ack", "station_id": "UMB01", "msg_seq": 9, "sent_at": 1.0}
    sign("fsx/v1/UMB01/ack", old, StationKeys("UMB01", "k0", KEYS.keys))
    assert old["kid"] == "k0" and verify("fsx/v1/UMB01/ack", old, KEYS)


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8) \
    | st.floats(allow_nan=False, allow_infinity=False)
_RECORD = st.dictionaries(st.text(max_size=6), _JSON_SCALARS, max_size=6)


@given(envelope=st.dictionaries(st.text(max_size=9), _JSON_SCALARS, max_size=6),
       records=st.lists(_RECORD, max_size=4))
def test_records_spliced_as_canonical_text_sign_the_same_bytes(envelope, records):
    """The uplink splices the spool's canonical record texts into the message: the bytes
    and the signature are those of signing the parsed records, whatever the envelope's keys
    (sorting before or after "records", non-ASCII)."""
    envelope.pop("records", None)
    whole = {**envelope, "records": records}
    spliced = dict(envelope)
    assert sign_records("fsx/v1/UMB01/D1/evt/transaction", spliced,
                        [canonical_text(r) for r in records], KEYS) \
        == sign("fsx/v1/UMB01/D1/evt/transaction", whole, KEYS)
    assert spliced["sig"] == whole["sig"] and "records" not in spliced


def test_generated_key_file_round_trips(tmp_path):
    path = generate_key_file(["UMB01", "UMB02"], tmp_path / "keys.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    ring = load_key_file(path)
    assert set(ring) == {"UMB01", "UMB02"}
    assert ring["UMB01"].active == "k1" and len(ring["UMB01"].active_key) == 32
    assert ring["UMB01"].active_key != ring["UMB02"].active_key


@pytest.mark.parametrize(("doc", "message"), [
    ({"format": "other"}, "format"),
    ({"format": "forecourt-keys/1", "stations": {"A": {"active": "k1", "keys": {"k1": "abc"}}}},
     "stations.A.keys.k1: expected 64 hex"),
    ({"format": "forecourt-keys/1", "stations": {"A": {"active": "k2",
                                                       "keys": {"k1": "00" * 32}}}},
     "stations.A.active"),
])
def test_bad_key_files_name_the_field(tmp_path, doc, message):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match=message) as info:
        load_key_file(path)
    assert str(path) in str(info.value)


ENDPOINTS = {
    "format": "forecourt-endpoints/1", "scenario": "smoke", "compression": 600,
    "timezone": "Asia/Shanghai",
    "stations": {
        "UMB01": {"transport": "tcp", "host": "127.0.0.1", "port": 15020, "dialect": "int_be",
                  "devices": [{"device": "G", "kind": "tank_gauge", "unit_id": 1,
                               "profile": "tank_gauge", "tanks": [1, 2, 3]},
                              {"device": "D1", "kind": "dispenser", "unit_id": 11,
                               "profile": "dispenser", "nozzles": [1, 2]}]},
        "UMB02": {"transport": "rtu", "serial_port": "/tmp/x.col", "baudrate": 38400,
                  "parity": "N", "stopbits": 1, "bytesize": 8, "dialect": "f32_le",
                  "devices": [{"device": "D1", "kind": "dispenser", "unit_id": 11,
                               "profile": "dispenser", "nozzles": [1]}]},
    },
}


def test_endpoint_map_parses_both_transports(tmp_path):
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(ENDPOINTS))
    emap = load_endpoints(path)
    s1, s2 = emap.stations["UMB01"], emap.stations["UMB02"]
    assert (s1.transport, s1.port, s1.dialect, s1.devices[0].units) == ("tcp", 15020, "int_be",
                                                                        (1, 2, 3))
    assert (s2.transport, s2.serial_port, s2.baudrate, s2.dialect) == ("rtu", "/tmp/x.col", 38400,
                                                                       "f32_le")
    assert s2.describe() == "rtu:/tmp/x.col@38400"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(format="x"), "format"),
    (lambda d: d["stations"]["UMB01"].update(transport="udp"), "stations.UMB01.transport"),
    (lambda d: d["stations"]["UMB01"]["devices"][1].update(unit_id=300),
     r"stations.UMB01.devices\[1\].unit_id"),
    (lambda d: d["stations"]["UMB01"]["devices"][0].update(tanks=[]),
     r"stations.UMB01.devices\[0\].tanks"),
    (lambda d: d["stations"]["UMB01"]["devices"][1].update(device="G"), "duplicate device"),
    (lambda d: d["stations"]["UMB01"].pop("port"), "missing field 'port'"),
    (lambda d: d["stations"].update({"bad id!": d["stations"]["UMB01"]}), "station id"),
])
def test_bad_endpoint_maps_name_the_field(mutate, message):
    doc = json.loads(json.dumps(ENDPOINTS))
    mutate(doc)
    with pytest.raises(EndpointError, match=message):
        parse_endpoints(doc, "endpoints.json")


def test_endpoint_file_errors_name_the_file(tmp_path):
    path = tmp_path / "endpoints.json"
    path.write_text("{not json")
    with pytest.raises(EndpointError, match="endpoints.json: not valid JSON"):
        load_endpoints(path)


def test_published_profiles_load():
    profiles = load_profiles()
    assert set(profiles) == {"dispenser", "tank_gauge"}
    d = profiles["dispenser"]
    assert d.fifos["transactions"].read_count == 122
    assert d.fifos["transactions"].ack_address == 1004
    assert profiles["tank_gauge"].fifos["inventory"].read_count == 120
    assert d.blocks["nozzle"].address(2) == 200
    assert d.dialects["f32_le"].low_word_first and d.dialects["f32_le"].floating
    # register map v2: both profiles at version 2; the bill of lading came with it
    g = profiles["tank_gauge"]
    assert (d.version, g.version) == (2, 2)
    bol = g.fifos["deliveries"].record["bol_volume_20c"]
    assert (bol.offset, bol.type, bol.scale, bol.since) == (22, "measure", Fraction(1, 10), 2)
    assert g.fifos["deliveries"].record["end_level"].since == 1
    assert {11: "pulse_factor_change", 12: "parameter_change", 20: "seal_broken",
            21: "mainboard_replaced", 22: "encoder_replaced", 23: "seal_restored",
            24: "software_changed", 25: "self_lock", 26: "self_unlock",
            2: "power_down"}.items() <= d.event_codes.items()


def test_a_field_since_must_be_a_version():
    doc = {"profile": "x", "profile_id": 1, "version": 2, "max_read_registers": 125,
           "dialects": {}, "fifos": [],
           "blocks": [{"name": "header", "base": 0, "size": 10, "fields": [
               {"name": "a", "offset": 0, "type": "u16", "since": 0}]}]}
    with pytest.raises(ProfileError, match=r"header\).fields\[0\]\(a\).since: expected a "
                                           r"profile version"):
        parse_profile(doc, "x.yaml")


def test_bad_profile_names_file_and_path(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("profile: x\nprofile_id: 1\nversion: 1\nmax_read_registers: 125\n"
                    "dialects: {int_be: {code: 1, word_order: sideways, numeric: scaled_int}}\n"
                    "blocks: []\nfifos: []\n")
    with pytest.raises(ProfileError, match=r"p.yaml: dialects.int_be.word_order"):
        load_profile(path)
    with pytest.raises(ProfileError, match="no register profiles"):
        load_profiles(tmp_path / "empty")


def test_overlapping_fields_are_rejected():
    doc = {"profile": "x", "profile_id": 1, "version": 1, "max_read_registers": 125,
           "dialects": {}, "fifos": [],
           "blocks": [{"name": "header", "base": 0, "size": 10, "fields": [
               {"name": "a", "offset": 0, "type": "u32"}, {"name": "b", "offset": 1,
                                                           "type": "u16"}]}]}
    with pytest.raises(ProfileError, match="register 1 overlaps 'a'"):
        parse_profile(doc, "x.yaml")
