"""Department roles, the audit log of writes and the API's limits, over real sockets
(docs/platform-api.md §2, §3, §5.17)."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_central_api import Client, Clock
from test_central_support import T0, fresh_database, ready_database
from waiting import wait_for

from central.alerts import raise_alert
from central.auth import PERMISSIONS, ROLES, TokenError, TokenStore, load_tokens, roles_for
from central.db import Database
from central.http_api import MAX_BODY, Api, ApiServer
from central.openapi import openapi_document
from central.resources import Context
from central.vcf import Vcf

TOKENS = {role: f"{role}-token-0123456789" for role in ROLES}
NAMES = {role: f"{role}-desk" for role in ROLES}
WRITES = ("/api/v1/tax-declarations", "/api/v1/verification-records",
          "/api/v1/posted-prices", "/api/v1/alerts/{id}/status")
ALLOWED = {"/api/v1/tax-declarations": {"admin", "tax"},
           "/api/v1/verification-records": {"admin", "market"},
           "/api/v1/posted-prices": {"admin", "market"},
           "/api/v1/alerts/{id}/status": {"admin", "market"}}


class Platform:
    def __init__(self, url: str, alerts: dict[str, str], socket_timeout_s: float) -> None:
        self.db = Database(url)
        self.clock = Clock()
        tokens = TokenStore([(TOKENS[r], r, NAMES[r]) for r in ROLES])
        ctx = Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, self.clock)
        self.api = Api(self.db, tokens, ctx)
        self.server = ApiServer(self.api, "127.0.0.1", 0,
                                socket_timeout_s=socket_timeout_s).start()
        self.alerts = alerts  # role → id of an open alert it may try to confirm
        self.client = Client(self.server.url, TOKENS["admin"])

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        return self.client.walk("/api/v1/audit", **params)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    gen = fresh_database(request.param, tmp_path_factory.mktemp("roles"))
    url = next(gen)
    db = ready_database(url)
    alerts = {}
    with db.borrow() as conn:
        for i, role in enumerate(ROLES):
            alerts[role] = raise_alert(conn, station_id="UMB03", kind="seal_broken",
                                       severity="info", raised_at=T0 + i, title="seal broken",
                                       device="D1", as_of=T0, detector="identity",
                                       dedup_key=f"roles-{role}")
    db.close()
    plat = Platform(url, alerts, socket_timeout_s=0.5)
    try:
        yield plat
    finally:
        plat.server.stop()
        plat.db.close()
        gen.close()


def _body(route: str, role: str) -> dict[str, Any]:
    """A valid body for `route`, distinct per role (so no write repeats another)."""
    i = ROLES.index(role)
    if route == "/api/v1/tax-declarations":
        return {"station_id": "UMB01", "period_start": "2026-04-01",
                "period_end": "2026-04-30", "declared_sales_fen": 1000 + i,
                "reference": f"TAX-{role}"}
    if route == "/api/v1/verification-records":
        return {"station_id": "UMB01", "device": "D1", "nozzle": 1, "kind": "verification",
                "performed_at": f"2026-04-0{i + 1}T10:00:00+08:00",
                "valid_until": "2026-10-01", "result": "pass",
                "certificate_no": f"JD-{role}", "organisation": "巴彦淖尔市计量所",
                "signatures": {"maintainer": "甲", "verifier": "乙", "station": "丙"}}
    if route == "/api/v1/posted-prices":
        return {"station_id": "UMB02", "grade": "92", "price_fen": 700 + i,
                "valid_from": f"2026-04-0{i + 1}T00:00:00+08:00"}
    return {"status": "confirmed", "note": f"checked by {role}"}


def _path(plat: Platform, route: str, role: str) -> str:
    return route.replace("{id}", plat.alerts[role])


# -- roles ----------------------------------------------------------------------------------
def test_the_permission_table_covers_every_write_route() -> None:
    api = Api(Database("sqlite:///unused.db"), TokenStore([]),
              Context(ZoneInfo("UTC"), Vcf(), 90, lambda: 0.0))
    posts = set(api.post_routes) | set(api.post_templates)
    assert posts == set(WRITES)
    assert {route for method, route in PERMISSIONS if method == "POST"} == posts
    for route in WRITES:
        assert set(roles_for("POST", route)) == ALLOWED[route]
    assert roles_for("POST", "/api/v1/anything-new") == ("admin",)  # fail closed
    assert roles_for("GET", "/api/v1/transactions") == ROLES
    assert roles_for("GET", "/api/v1/audit") == ("admin",)
    # the OpenAPI document states the same table
    paths = openapi_document()["paths"]
    for route in WRITES:
        assert set(paths[route]["post"]["x-roles"]) == ALLOWED[route]
        assert "403" in paths[route]["post"]["responses"]
    assert paths["/api/v1/audit"]["get"]["x-roles"] == ["admin"]
    assert paths["/api/v1/transactions"]["get"]["x-roles"] == list(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_writes_only_its_departments_inputs(platform: Platform, role: str) -> None:
    client = Client(platform.server.url, TOKENS[role])
    for route in WRITES:
        body = _body(route, role)
        status, out, _ = client.call("POST", _path(platform, route, role), body=body)
        if role in ALLOWED[route]:
            assert status in (200, 201), (role, route, out)
        else:
            assert status == 403, (role, route, out)
            err = out["error"]
            assert err["code"] == "forbidden" and err["status"] == 403
            assert repr(role) in err["message"] and repr(NAMES[role]) in err["message"]
            needed = " or ".join(roles_for("POST", route))
            assert f"needs role {needed}" in err["message"], err
    # every role reads everything but the audit log
    assert client.call("GET", "/api/v1/transactions")[0] == 200
    assert client.call("GET", "/api/v1/tax-checks")[0] == 200
    status, out, _ = client.call("GET", "/api/v1/audit")
    if role == "admin":
        assert status == 200
    else:
        assert status == 403 and "needs role admin" in out["error"]["message"]


def test_the_tax_bureau_cannot_post_a_verification_record(platform: Platform) -> None:
    client = Client(platform.server.url, TOKENS["tax"])
    status, out, _ = client.call("POST", "/api/v1/verification-records",
                                 body=_body("/api/v1/verification-records", "market"))
    assert status == 403, out
    assert out["error"]["message"] == (
        "token 'tax-desk' has role 'tax'; POST /api/v1/verification-records needs role "
        "admin or market")
    records = platform.client.walk("/api/v1/verification-records", station_id="UMB01")
    assert "tax-desk" not in {r["created_by"] for r in records}  # nothing stored


def test_no_token_401_and_read_token_403(platform: Platform) -> None:
    client = Client(platform.server.url, None)
    body = _body("/api/v1/posted-prices", "read")
    status, out, headers = client.call("POST", "/api/v1/posted-prices", body=body)
    assert status == 401 and out["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, out, _ = client.call("POST", "/api/v1/posted-prices", body=body,
                                 token="not-a-known-token-000")
    assert status == 401
    status, out, _ = client.call("POST", "/api/v1/posted-prices", body=body,
                                 token=TOKENS["read"])
    assert status == 403 and "'read'" in out["error"]["message"]


# -- the audit log --------------------------------------------------------------------------
def test_audit_rows_for_accepted_and_refused_writes(platform: Platform) -> None:
    platform.clock.t += 1000  # rows of this test only: from this instant on
    since = platform.clock.t
    tax = Client(platform.server.url, TOKENS["tax"])
    decl = {"station_id": "UMB02", "period_start": "2026-05-01", "period_end": "2026-05-31",
            "declared_sales_fen": 42, "reference": "TAX-AUDIT-1"}
    raw = json.dumps(decl).encode()
    status, stored, _ = tax.call("POST", "/api/v1/tax-declarations", body=raw)
    assert status == 201
    platform.clock.t += 1
    assert tax.call("POST", "/api/v1/tax-declarations", body=raw)[0] == 409
    platform.clock.t += 1
    rec = json.dumps(_body("/api/v1/verification-records", "tax")).encode()
    assert tax.call("POST", "/api/v1/verification-records", body=rec)[0] == 403
    platform.clock.t += 1
    assert tax.call("POST", "/api/v1/tax-declarations", body=raw, token=None)[0] == 401

    rows = platform.audit(**{"from": since})
    assert [(r["principal"], r["role"], r["status"], r["outcome"]) for r in rows] == [
        ("tax-desk", "tax", 201, "accepted"), ("tax-desk", "tax", 409, "rejected"),
        ("tax-desk", "tax", 403, "refused"), ("", "", 401, "refused")]
    accepted, conflict, forbidden, anonymous = rows
    assert accepted["at"] == since and anonymous["at"] == since + 3  # platform wall clock
    assert accepted["method"] == "POST" and accepted["path"] == "/api/v1/tax-declarations"
    assert accepted["station_id"] == "UMB02"
    assert f'id="{stored["id"]}"' in accepted["summary"]
    assert 'reference="TAX-AUDIT-1"' in accepted["summary"]
    assert accepted["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert accepted["body_bytes"] == len(raw)
    assert conflict["summary"].startswith("conflict [reference]")
    assert forbidden["path"] == "/api/v1/verification-records"
    assert forbidden["body_sha256"] == hashlib.sha256(rec).hexdigest()
    assert "needs role admin or market" in forbidden["summary"]
    assert forbidden["station_id"] == ""  # nothing was written
    assert anonymous["summary"] == "unauthorized: no bearer token"
    assert all(r["client"] == "127.0.0.1" and len(r["summary"]) <= 500 for r in rows)
    # filters and pagination (§4)
    assert [r["status"] for r in platform.audit(**{"from": since}, principal="tax-desk",
                                                outcome="refused")] == [403]
    assert [r["status"] for r in platform.audit(**{"from": since}, principal="")] == [401]
    assert [r["status"] for r in platform.audit(**{"from": since}, station_id="UMB02")] == [201]
    assert platform.audit(**{"from": since}, limit=1) == rows
    status, out, _ = platform.client.call("GET", "/api/v1/audit", {"outcome": "maybe"})
    assert status == 400 and out["error"]["parameter"] == "outcome"


def test_alert_status_changes_are_audited(platform: Platform) -> None:
    platform.clock.t += 1000
    since = platform.clock.t
    market = Client(platform.server.url, TOKENS["market"])
    alert = platform.alerts["commerce"]  # left open by the role tests
    status, out, _ = market.call("POST", f"/api/v1/alerts/{alert}/status",
                                 body={"status": "closed", "note": "误报"})
    assert status == 200 and out["status_changed_by"] == "market-desk", out
    [row] = platform.audit(**{"from": since})
    assert (row["principal"], row["role"], row["outcome"], row["station_id"]) == (
        "market-desk", "market", "accepted", "UMB03")
    assert row["path"] == f"/api/v1/alerts/{alert}/status"
    assert f'id="{alert}"' in row["summary"] and 'status="closed"' in row["summary"]


def test_reads_are_not_audited(platform: Platform) -> None:
    platform.clock.t += 1000
    since = platform.clock.t
    Client(platform.server.url, TOKENS["commerce"]).get("/api/v1/commerce/sales")
    assert platform.client.call("GET", "/api/v1/audit", token=TOKENS["read"])[0] == 403
    assert platform.audit(**{"from": since}) == []


# -- limits ---------------------------------------------------------------------------------
def test_page_size_is_capped(platform: Platform) -> None:
    for path in ("/api/v1/audit", "/api/v1/transactions", "/api/v1/stations"):
        status, out, _ = platform.client.call("GET", path, {"limit": "1001"})
        assert status == 400 and out["error"]["parameter"] == "limit", out
        assert "between 1 and 1000" in out["error"]["message"]
        assert platform.client.call("GET", path, {"limit": "1000"})[0] == 200


def test_a_body_over_the_limit_is_413_and_not_read(platform: Platform) -> None:
    platform.clock.t += 1000
    since = platform.clock.t
    host, port = platform.server.address
    for role, length in (("admin", MAX_BODY + 1), ("market", 50_000_000)):
        platform.clock.t += 1
        # Only the headers are sent: the answer comes at once, without waiting for the body.
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/posted-prices HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + TOKENS[role].encode() + b"\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: " + str(length).encode() + b"\r\n\r\n")
            answer = _read_answer(sock)
            assert sock.recv(1024) == b""  # and the connection is closed
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        err = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
        assert (err["code"], err["parameter"]) == ("too_large", "body")
    rows = platform.audit(**{"from": since})
    assert [(r["principal"], r["status"], r["body_sha256"], r["body_bytes"]) for r in rows] == [
        ("admin-desk", 413, "", MAX_BODY + 1), ("market-desk", 413, "", 50_000_000)]
    assert platform.client.call("POST", "/api/v1/posted-prices",
                                body=b"{" + b" " * (MAX_BODY - 2) + b"}")[0] == 400  # read


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(rest) >= length:
                return data


def test_a_half_sent_request_does_not_hold_its_connection(platform: Platform) -> None:
    """The fixture's server times a socket out after 0.5 s (the default is 30 s)."""
    host, port = platform.server.address
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")  # headers never end
        t0 = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - t0 < 4
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /api/v1/posted-prices HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert sock.recv(1024) == b""
    assert platform.client.call("GET", "/healthz", token=None)[0] == 200


def test_a_request_trickled_in_is_cut_off_at_the_request_deadline(platform: Platform) -> None:
    """Each byte arrives within the socket timeout, so only a deadline on the whole request
    frees the thread; the trickle would last 60 s, the deadline is 1 s."""
    server = ApiServer(platform.api, "127.0.0.1", 0, socket_timeout_s=5.0,
                       request_deadline_s=1.0).start()
    try:
        with socket.create_connection(server.address, timeout=5) as sock:
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 300
            for i in range(len(request)):
                try:
                    sock.sendall(request[i:i + 1])
                except OSError:  # reset by the server: cut off
                    break
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable and sock.recv(1024) == b"":
                    break
            else:
                pytest.fail("the server still reads a request trickled in for 60 s")
        assert Client(server.url, TOKENS["read"]).call("GET", "/healthz", token=None)[0] == 200
    finally:
        server.stop()


def test_connections_beyond_the_limit_are_answered_busy(platform: Platform) -> None:
    server = ApiServer(platform.api, "127.0.0.1", 0, max_connections=2).start()
    client = Client(server.url, TOKENS["read"])
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(2)]
    try:
        # Both idle connections hold their slot until they close: a third is answered at
        # once, before it sends anything.
        with socket.create_connection(server.address, timeout=5) as third:
            answer = _read_answer(third)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
        assert json.loads(body)["error"]["code"] == "busy"
        idle.pop().close()
        wait_for(lambda: client.call("GET", "/healthz", token=None)[0] == 200,
                 what="a slot freed")
    finally:
        for sock in idle:
            sock.close()
        server.stop()


# -- the token file -------------------------------------------------------------------------
def test_token_file_may_hold_sha256_digests_instead_of_tokens(tmp_path: Path) -> None:
    secret = "a-tax-bureau-token-0123456789"
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [
        {"sha256": hashlib.sha256(secret.encode()).hexdigest().upper(), "role": "tax",
         "name": "tax-bureau"},
        {"token": "plain-admin-token-0123", "role": "admin", "name": "harness"}]}))
    store, generated = load_tokens(path, env={})
    assert generated == {} and len(store) == 2
    who = store.authenticate(f"Bearer {secret}")
    assert who is not None and (who.name, who.role) == ("tax-bureau", "tax")
    assert who.may("POST", "/api/v1/tax-declarations")
    assert not who.may("POST", "/api/v1/posted-prices")
    assert store.authenticate("Bearer " + hashlib.sha256(secret.encode()).hexdigest()) is None
    admin = store.authenticate("Bearer plain-admin-token-0123")
    assert admin is not None and admin.role == "admin"
    assert "secret" not in path.read_text() and secret not in path.read_text()
    for entry, fragment in (
            ({"sha256": "abc", "role": "tax"}, "tokens[0].sha256: expected 64 hex digits"),
            ({"sha256": "0" * 64, "token": "x" * 20, "role": "tax"}, "exactly one of"),
            ({"role": "tax"}, "exactly one of"),
            ({"sha256": "0" * 64, "role": "police"}, "tokens[0].role: expected one of")):
        path.write_text(json.dumps({"tokens": [entry]}))
        with pytest.raises(TokenError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
            load_tokens(path, env={})


def test_environment_tokens_and_generated_ones_keep_working() -> None:
    store, generated = load_tokens(None, env={"FORECOURT_ADMIN_TOKEN": "env-admin-0123456789",
                                              "FORECOURT_READ_TOKEN": "env-read-01234567890"})
    assert generated == {}
    admin = store.authenticate("Bearer env-admin-0123456789")
    read = store.authenticate("Bearer env-read-01234567890")
    assert admin is not None and admin.may("POST", "/api/v1/verification-records")
    assert read is not None and not read.may("POST", "/api/v1/verification-records")
    store, generated = load_tokens(None, env={})
    assert set(generated) == {"admin", "read"}
    assert store.authenticate(f"Bearer {generated['admin']}") is not None
