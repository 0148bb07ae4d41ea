"""Helpers for the central/ platform tests (no tests here): a small registry, key files,
message builders signed by the tests' own HMAC helper, and fresh databases on SQLite and,
when FORECOURT_PG_URL is set, PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from central.db import Database
from central.migrate import migrate
from central.registry import import_registry, parse_registry

PG_URL = os.environ.get("FORECOURT_PG_URL")
T0 = 1775001600  # 2026-04-01T00:00:00Z = 08:00 Asia/Shanghai

REGISTRY_CSV = """\
# Test fleet ledger (synthetic names).
station_id,name,town,ownership,lat,lon,tanks,dispensers,dialect
UMB01,测试一站,海流图镇,private,41.57,108.52,1:92:30;2:95:20;3:0:50,1:1+2;2:1+3,int_be
UMB02,测试二站,甘其毛都镇,state,42.11,107.97,1:92:30;2:0:50,1:1+2;2:2+2,f32_le
UMB03,测试三站,乌加河镇,private,41.30,108.40,1:0:50,1:1,int_be
"""
STATIONS = parse_registry(REGISTRY_CSV, "test-registry.csv")
STATION_MAP = {s.station_id: s for s in STATIONS}
KEYS = {sid: {"k1": hashlib.sha256(f"key-{sid}".encode()).hexdigest()}
        for sid in ("UMB01", "UMB02", "UMB03")}


def key_file_doc(keys: dict[str, dict[str, str]] = KEYS,
                 active: dict[str, str] | None = None) -> dict[str, Any]:
    return {"format": "forecourt-keys/1",
            "stations": {sid: {"active": (active or {}).get(sid, next(iter(ks))), "keys": ks}
                         for sid, ks in keys.items()}}


def write_key_file(path: Path, keys: dict[str, dict[str, str]] = KEYS) -> Path:
    path.write_text(json.dumps(key_file_doc(keys)))
    return path


# -- the tests' own signer (independent of central.signing) --------------------------------
def sign(topic: str, payload: dict[str, Any], key_hex: str, kid: str = "k1") -> bytes:
    body = {k: v for k, v in payload.items() if k != "sig"}
    body["kid"] = kid
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body["sig"] = hmac.new(bytes.fromhex(key_hex), topic.encode() + b"\n" + canon.encode(),
                           hashlib.sha256).hexdigest()
    return json.dumps(body, ensure_ascii=False).encode()


def verify_ack(topic: str, raw: bytes, key_hex: str) -> dict[str, Any]:
    doc = json.loads(raw)
    body = {k: v for k, v in doc.items() if k != "sig"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    want = hmac.new(bytes.fromhex(key_hex), topic.encode() + b"\n" + canon.encode(),
                    hashlib.sha256).hexdigest()
    assert doc["sig"] == want, "ack signature does not verify"
    return doc


STREAMS = {"transaction": "transactions", "inventory": "inventory", "delivery": "deliveries",
           "event": "events", "state": "states"}
KEY_TIME = {"transaction": "start_time", "inventory": "device_time", "delivery": "start_time",
            "event": "device_time", "state": "device_time"}


def txn(station: str, device: str, seq: int, start: int, *, nozzle: int = 1, tank: int = 1,
        grade: str = "92", volume_ml: int = 40_000, price: int = 712, total_before: int = 0,
        amount_total_before: int = 0, duration: int = 90) -> dict[str, Any]:
    amount = round(volume_ml * price / 1000)
    rec = {"seq": seq, "collected_at": start + duration + 1.5, "nozzle": nozzle,
           "grade": grade, "tank": tank, "start_time": start, "end_time": start + duration,
           "volume_ml": volume_ml, "amount_fen": amount, "unit_price_fen": price,
           "volume_total_ml": total_before + volume_ml,
           "amount_total_fen": amount_total_before + amount}
    rec["key"] = f"{station}/{device}/transactions/{seq}/{start}"
    return rec


def inventory(station: str, seq: int, t: int, *, tank: int = 1, v20: int = 20_000_000,
              temp_mc: int = 20_000, device: str = "G") -> dict[str, Any]:
    return {"key": f"{station}/{device}/inventory/{seq}/{t}", "seq": seq,
            "collected_at": t + 2.0, "tank": tank, "device_time": t,
            "product_level_um": 1_500_000, "water_level_um": 0, "temperature_mc": temp_mc,
            "gross_volume_ml": v20, "volume_20c_ml": v20, "ullage_ml": 10_000_000,
            "water_volume_ml": 0}


def delivery(station: str, seq: int, start: int, end: int, *, tank: int = 1, v0: int,
             v1: int, temp0: int = 20_000, temp1: int = 20_000) -> dict[str, Any]:
    return {"key": f"{station}/G/deliveries/{seq}/{start}", "seq": seq,
            "collected_at": end + 5.0, "tank": tank, "start_time": start, "end_time": end,
            "start_gross_volume_ml": v0, "start_volume_20c_ml": v0, "end_gross_volume_ml": v1,
            "end_volume_20c_ml": v1, "start_temperature_mc": temp0,
            "end_temperature_mc": temp1, "start_level_um": 1_000_000,
            "end_level_um": 2_000_000}


def state(station: str, device: str, seq: int, t: int, *, seal_state: int = 0,
          device_status: int = 0, mainboard_id: str = "MB-1") -> dict[str, Any]:
    """A state report (uplink 1.1); a gauge has no mainboard/encoder ids."""
    gauge = device == "G"
    return {"key": f"{station}/{device}/states/{seq}/{t}", "seq": seq, "collected_at": t + 0.5,
            "device_time": t, "serial_number": f"SN-{device}", "software_id": "V3.2.1",
            "mainboard_id": "" if gauge else mainboard_id, "encoder_id": "" if gauge else "ENC-1",
            "seal_state": seal_state, "device_status": device_status}


def event(station: str, device: str, seq: int, t: int, code: int = 10) -> dict[str, Any]:
    return {"key": f"{station}/{device}/events/{seq}/{t}", "seq": seq, "collected_at": t + 1.0,
            "code": code, "unit": 1, "device_time": t, "value_old_e4": 71200,
            "value_new_e4": 72500}


def data_message(station: str, device: str, kind: str, records: list[dict[str, Any]],
                 msg_seq: int, sent_at: float, *, payload_station: str | None = None,
                 key_station: str | None = None, kid: str = "k1",
                 topic_device: str | None = None) -> tuple[str, bytes]:
    topic = f"fsx/v1/{station}/{topic_device or device}/evt/{kind}"
    payload = {"v": 1, "type": kind, "station_id": payload_station or station,
               "msg_seq": msg_seq, "sent_at": sent_at, "device": device, "records": records}
    return topic, sign(topic, payload, KEYS[key_station or station].get(kid, "00" * 32), kid)


def heartbeat(station: str, msg_seq: int, sent_at: float, *, boot_id: str = "boot-1",
              backlog: int = 0, devices: list[dict[str, Any]] | None = None) -> (
        tuple[str, bytes]):
    topic = f"fsx/v1/{station}/status/heartbeat"
    if devices is None:
        devices = [{"device": d, "online": True, "device_time": T0 + 100, "last_ok_at": sent_at,
                    "failures": 0, "error": None} for d in STATION_MAP[station].devices]
    payload = {"v": 1, "type": "heartbeat", "station_id": station, "msg_seq": msg_seq,
               "sent_at": sent_at, "boot_id": boot_id, "collector_version": "test/1",
               "backlog": backlog, "devices": devices}
    return topic, sign(topic, payload, KEYS[station]["k1"])


def online(station: str, msg_seq: int, sent_at: float, state: bool,
           boot_id: str = "boot-1") -> tuple[str, bytes]:
    topic = f"fsx/v1/{station}/status/online"
    payload = {"v": 1, "type": "online", "station_id": station, "msg_seq": msg_seq,
               "sent_at": sent_at, "online": state, "boot_id": boot_id}
    return topic, sign(topic, payload, KEYS[station]["k1"])


# -- databases -------------------------------------------------------------------------------
def _pg_admin_url(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    if not PG_URL:
        pytest.skip("FORECOURT_PG_URL is not set (no PostgreSQL server)")
    import psycopg

    name = f"fc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_admin_url(PG_URL, name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ready_database(url: str) -> Database:
    """A migrated database with the test registry imported."""
    db = Database(url)
    migrate(db)
    with db.borrow() as conn:
        import_registry(conn, STATIONS)
    return db


# -- the platform as a process ------------------------------------------------------------
def start_platform_process(tmp_path: Path, broker_url: str, keys: Path,
                           *extra: str) -> subprocess.Popen:
    """`central.cli` on the test registry, a fresh SQLite database and a free HTTP port,
    with none of this shell's FORECOURT_ variables; read its ready line with ready_line."""
    registry = tmp_path / "fleet.csv"
    registry.write_text(REGISTRY_CSV, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECOURT_")}
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from central.cli import main; "
                               "sys.exit(main(sys.argv[1:]))",
         "--db", f"sqlite:///{tmp_path / 'p.db'}", "--broker", broker_url,
         "--http", "127.0.0.1:0", "--keys", str(keys), "--registry", str(registry),
         "--log-level", "WARNING", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def ready_line(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """The platform's start-up line (docs/platform-api.md §8), or AssertionError with its
    stderr if none came."""
    assert proc.stdout is not None and proc.stderr is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert line and line[0], f"no ready line; stderr: {proc.stderr.read()[:2000]}"
    return dict(json.loads(line[0]))


def api_get(ready: dict[str, Any], path: str) -> Any:
    """GET `path` with the generated read token. /healthz's 503 body is returned too: the
    platform is degraded until ingest has subscribed (it prints its ready line before)."""
    req = urllib.request.Request(ready["http"] + path,
                                 headers={"Authorization": f"Bearer {ready['tokens']['read']}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if path != "/healthz" or exc.code != 503:
            raise
        return json.loads(exc.read())
