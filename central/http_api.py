"""The platform's HTTP API (docs/platform-api.md) on the standard library's
ThreadingHTTPServer: JSON in and out, bearer tokens, JSON error bodies."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from central import alerts, audit, stations
from central.auth import Principal, TokenStore, roles_for
from central.chain_check import verify_here
from central.checks import parse_json
from central.db import Conn, Database, unavailable_errors
from central.inputs import InputError, store_tax_declaration, store_verification_record
from central.openapi import ALERT_STATUS_SCHEMA, PREFIX, openapi_document
from central.params import ParamError, storable_text
from central.prices import store_posted_price
from central.resources import (
    ALERTS,
    COMPUTED_RESOURCES,
    TABLE_RESOURCES,
    Context,
    ListResource,
    check_known_params,
    station_param,
)
from central.schemas import StrictValidator, json_path

log = logging.getLogger(__name__)
# GET /integrity/chain's verification: (request's connection, station) → report
ChainVerify = Callable[[Conn, str], dict[str, Any]]
MAX_BODY = 1 << 20  # bytes of a request body; a larger one is not read (413)
SOCKET_TIMEOUT_S = 30.0  # per socket read/write of a connection (ApiServer's default)
# A request (line, headers and body) must arrive whole within this: a client trickling a
# byte at a time would otherwise hold its thread forever, each read within the timeout.
REQUEST_DEADLINE_S = 60.0
# Connections served at once (a thread each); one more is answered 503 and closed, so a
# crowd of idle clients costs bounded threads and memory, not the process.
MAX_CONNECTIONS = 1024
_ALERT_STATUS_PATH = re.compile(rf"{PREFIX}/alerts/([A-Za-z0-9_-]{{1,64}})/status")
_ALERT_STATUS = StrictValidator(ALERT_STATUS_SCHEMA)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def encode(body: Any) -> bytes:
    """A JSON answer. orjson: encoding record listings was 44 % of the platform's CPU in a
    run's export (docs/performance.md); `json` for what orjson refuses (a float subclass, an
    integer beyond 64 bits), so no answer fails that did before."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error(status: int, code: str, message: str, parameter: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"status": status, "code": code, "parameter": parameter,
                                       "message": message}}, headers or {})


@dataclass(frozen=True)
class _Write:
    """One POST as received, for handling and auditing."""

    route: str  # the path as the OpenAPI document writes it (the permission's key)
    path: str
    target: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes | None  # None: larger than MAX_BODY, not read
    principal: Principal | None
    client: str


def _storable_texts(doc: Any) -> None:
    """InputError naming the field of a string the database cannot store as given: one
    holding U+0000 (PostgreSQL refuses it) or a lone UTF-16 surrogate (no UTF-8 for it)."""
    todo: list[tuple[str, Any]] = [("$", doc)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                todo += [(path, k), (k if path == "$" else f"{path}.{k}", v)]
        elif isinstance(value, list):
            todo += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, str) and not storable_text(value):
            raise InputError(path, "holds U+0000 (NUL) or a lone UTF-16 surrogate")


def _refusal(principal: Principal | None, method: str, route: str,
             headers: Any) -> Response | None:
    """401 without a known token, 403 when its role may not call `method route`."""
    if principal is None:
        return error(401, "unauthorized", "send Authorization: Bearer <token>",
                     headers={"WWW-Authenticate": 'Bearer realm="forecourt"'})
    if not principal.may(method, route):
        needed = " or ".join(roles_for(method, route))
        return error(403, "forbidden", f"token {principal.name!r} has role "
                                       f"{principal.role!r}; {method} {route} needs role "
                                       f"{needed}")
    return None


def _unreadable(w: _Write) -> Response | None:
    """The request's own faults found before its body is parsed."""
    if w.query:
        return error(400, "bad_parameter", "POST takes no query parameters", next(iter(w.query)))
    ctype = (w.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return error(415, "unsupported_media_type",
                     f"send Content-Type: application/json (got {ctype or 'none'})")
    if w.body is None:
        return error(413, "too_large", f"body larger than {MAX_BODY} bytes (1 MiB)", "body")
    return None


def _failure(exc: Exception, method: str, target: str) -> Response:
    """The answer to an exception raised while handling a request."""
    if isinstance(exc, ParamError):
        code = "not_found" if exc.status == 404 else "bad_parameter"
        return error(exc.status, code, exc.message, exc.parameter)
    if isinstance(exc, InputError):
        code = "conflict" if exc.status == 409 else "bad_body"
        return error(exc.status, code, exc.message, exc.field)
    if isinstance(exc, unavailable_errors()):
        # locked, busy or unreachable: the client may retry; not a platform bug
        log.warning("%s %s: database unavailable: %s", method, target, exc)
        return error(503, "unavailable", "the database is unavailable now; retry later",
                     headers={"Retry-After": "5"})
    log.error("%s %s failed", method, target, exc_info=exc)
    return error(500, "internal_error", "the platform failed; see its log")


def _chain_report(conn: Conn, query: dict[str, list[str]], verify: ChainVerify
                  ) -> dict[str, Any]:
    """GET /api/v1/integrity/chain?station_id=S: the station's record chain verified."""
    check_known_params(query, ("station_id",))
    sid = station_param(query)
    if sid is None:
        raise ParamError("station_id", "required: the station whose chain to verify")
    if conn.query_one("SELECT 1 FROM stations WHERE station_id = ?", (sid,)) is None:
        raise ParamError("station_id", f"no station {sid} in the registry", status=404)
    return verify(conn, sid)


class Api:
    """Routing, authentication and handlers; independent of the socket server."""

    def __init__(self, db: Database, tokens: TokenStore, ctx: Context,
                 health: Callable[[], dict[str, Any]] | None = None,
                 chain_check: ChainVerify = verify_here) -> None:
        self.db = db
        self.tokens = tokens
        self.ctx = ctx
        self.health = health or (lambda: {})
        self._openapi = json.dumps(openapi_document(), ensure_ascii=False).encode()
        self.get_routes: dict[str, Callable[[Any, dict], Any]] = {
            f"{PREFIX}/stations": lambda c, q: stations.list_stations(c, q, self.ctx),
            f"{PREFIX}/stats/ingest": lambda c, q: {**stations.ingest_stats(c, q),
                                                     "ingest": self.health()},
            f"{PREFIX}/integrity/chain": lambda c, q: _chain_report(c, q, chain_check),
        }
        for res in (*TABLE_RESOURCES, *COMPUTED_RESOURCES):
            def list_route(c: Any, q: dict, r: ListResource = res) -> Any:
                return r.list(c, q, self.ctx)
            self.get_routes[f"{PREFIX}/{res.name}"] = list_route
        self.post_routes: dict[str, Callable[[Any, Any, Principal], Any]] = {
            f"{PREFIX}/tax-declarations":
                lambda c, b, p: store_tax_declaration(c, b, self.ctx.zone, p.name),
            f"{PREFIX}/verification-records":
                lambda c, b, p: store_verification_record(c, b, self.ctx.zone, p.name),
            f"{PREFIX}/posted-prices":
                lambda c, b, p: store_posted_price(c, b, self.ctx.zone, p.name),
        }
        # POST routes with a path parameter (as the OpenAPI document writes them)
        self.post_templates = (f"{PREFIX}/alerts/{{id}}/status",)

    def handle(self, method: str, target: str, headers: Any, body: bytes | None,
               client: str = "") -> Response:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        try:
            query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False,
                             max_num_fields=100)
        except ValueError as exc:
            return error(400, "bad_parameter", f"query string: {exc}", "query")
        for name, values in query.items():  # PostgreSQL cannot hold or compare a NUL
            if "\x00" in name or any("\x00" in v for v in values):
                return error(400, "bad_parameter", "holds U+0000 (NUL)", name)
        if path == "/healthz" and method == "GET":
            return self._healthz()
        if path == "/openapi.json" and method == "GET":
            return Response(200, self._openapi)
        status_of = _ALERT_STATUS_PATH.fullmatch(path)
        known = path in self.get_routes or path in self.post_routes or status_of is not None
        if not known:
            return error(404, "not_found", f"no resource {path}; see /openapi.json")
        allowed = ["POST"] if status_of else [
            m for m, routes in (("GET", self.get_routes), ("POST", self.post_routes))
            if path in routes]
        if method not in allowed:
            return error(405, "method_not_allowed", f"{method} is not allowed on {path}",
                         headers={"Allow": ", ".join(allowed)})
        route = self.post_templates[0] if status_of else path
        principal = self.tokens.authenticate(headers.get("Authorization"))
        if method == "POST":
            write = _Write(route, path, target, query, headers, body, principal, client)
            return self._write(write, status_of)
        try:
            refused = _refusal(principal, method, route, headers)
            if refused is not None:
                return refused
            with self.db.borrow() as conn:
                return Response(200, self.get_routes[path](conn, query))
        except Exception as exc:
            return _failure(exc, method, target)

    def _write(self, w: _Write, status_of: re.Match[str] | None) -> Response:
        """A POST, audited: an accepted write in its own transaction, anything else apart."""
        try:
            resp = _refusal(w.principal, "POST", w.route, w.headers) or _unreadable(w)
            if resp is None and w.principal is not None:
                try:  # strict: UTF-8, no NaN, no duplicate keys, 64-bit integers
                    doc = parse_json(w.body or b"")
                except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                    raise InputError("body", f"not JSON: {exc}") from None
                _storable_texts(doc)
                with self.db.borrow() as conn, conn.transaction():
                    if status_of is not None:
                        resp = self._alert_status(conn, status_of.group(1), doc, w.principal)
                    else:
                        resp = Response(201, self.post_routes[w.path](conn, doc, w.principal))
                    if resp.status < 300:
                        audit.record(conn, self._entry(w, resp))
                        return resp
        except Exception as exc:
            resp = _failure(exc, "POST", w.target)
        assert resp is not None  # a refusal, a fault, or a handler's answer
        try:  # the answer stands even if its audit row cannot be written now
            with self.db.borrow() as conn, conn.transaction():
                audit.record(conn, self._entry(w, resp))
        except Exception as exc:
            log.warning("POST %s: audit row not written: %s", w.path, exc)
        return resp

    def _entry(self, w: _Write, resp: Response) -> audit.AuditEntry:
        accepted = resp.status < 300
        item = resp.body if accepted and isinstance(resp.body, dict) else {}
        if accepted:
            summary = audit.summarize(item)
        elif resp.status == 401:
            summary = ("unauthorized: unknown bearer token" if w.headers.get("Authorization")
                       else "unauthorized: no bearer token")
        else:
            err = resp.body.get("error", {}) if isinstance(resp.body, dict) else {}
            where = f" [{err['parameter']}]" if err.get("parameter") else ""
            summary = f"{err.get('code', '')}{where}: {err.get('message', '')}"
        try:
            declared = int(w.headers.get("Content-Length") or 0)
        except ValueError:
            declared = -1
        return audit.AuditEntry(
            at=self.ctx.now(), principal=w.principal.name if w.principal else "",
            role=w.principal.role if w.principal else "", client=w.client, method="POST",
            path=w.path, status=resp.status, station_id=str(item.get("station_id") or ""),
            summary=summary, body=w.body,
            body_bytes=len(w.body) if w.body is not None else declared)

    @staticmethod
    def _alert_status(conn: Conn, alert_id: str, doc: Any, principal: Principal) -> Response:
        """POST /api/v1/alerts/{id}/status: move an alert along open → confirmed → closed."""
        errors = sorted(_ALERT_STATUS.iter_errors(doc),
                        key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            raise InputError(json_path(errors[0].absolute_path), errors[0].message[:300])
        try:
            alerts.set_status(conn, alert_id, doc["status"], by=principal.name,
                              note=doc.get("note", ""))
        except KeyError:
            return error(404, "not_found", f"no alert {alert_id}")
        except alerts.AlertStatusError as exc:
            return error(409, "conflict", str(exc), "status")
        return Response(200, ALERTS.one(conn, alert_id))

    def _healthz(self) -> Response:
        info = dict(self.health())
        try:
            with self.db.borrow() as conn:
                conn.query_one("SELECT 1")
            info["database"] = True
        except Exception as exc:
            info["database"] = False
            info["database_error"] = str(exc)[:200]
        problems = list(info.get("problems") or [])
        if not info["database"]:
            problems.append("the database does not answer")
        info["problems"] = problems
        info["status"] = "degraded" if problems else "ok"
        return Response(503 if problems else 200, info)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forecourt-platform/1"
    api: Api  # set on the subclass made by ApiServer
    # Seconds a socket read or write may wait (StreamRequestHandler sets it on the socket):
    # a half-sent request or an idle keep-alive connection frees its thread after this.
    timeout = SOCKET_TIMEOUT_S
    deadlines: _Deadlines  # set on the subclass made by ApiServer
    expired = False  # set by the deadline thread: the request is not served

    def handle_one_request(self) -> None:
        self.deadlines.arm(self)
        try:
            super().handle_one_request()
        finally:
            self.deadlines.disarm(self)

    def _serve(self, method: str) -> None:
        body: bytes | None = b""
        length = self.headers.get("Content-Length")
        if length:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n < 0:
                self._send(error(400, "bad_request", "bad Content-Length"), close=True)
                return
            if n > MAX_BODY:
                body = None
                self.close_connection = True  # do not read a huge body
            else:
                try:
                    body = self.rfile.read(n)
                except TimeoutError:
                    self._send(error(408, "timeout", f"the body did not arrive within "
                                                     f"{self.timeout} s"), close=True)
                    return
                if len(body) < n:  # the client closed mid-body: nobody to answer
                    self.close_connection = True
                    return
        self.deadlines.disarm(self)  # read whole: the time to answer is not the client's
        if self.expired:  # cut off mid-request: what arrived is not the whole request
            self.close_connection = True
            return
        self._send(self.api.handle(method, self.path, self.headers, body,
                                   client=str(self.client_address[0])))

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def _send(self, resp: Response, close: bool = False) -> None:
        payload = resp.body if isinstance(resp.body, bytes) else encode(resp.body)
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (TimeoutError, ConnectionError):  # the client stopped reading or left
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class _Deadlines:
    """One thread that cuts off connections whose request is not read whole in time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: dict[_Handler, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
        self._thread.start()

    def arm(self, handler: _Handler) -> None:
        with self._lock:
            self._due[handler] = time.monotonic() + self.seconds

    def disarm(self, handler: _Handler) -> None:
        with self._lock:
            self._due.pop(handler, None)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [h for h, due in self._due.items() if due <= now]
                for h in late:
                    del self._due[h]
            for h in late:
                h.expired = True
                h.close_connection = True
                with contextlib.suppress(OSError):  # wakes the handler's blocked read
                    h.connection.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


_BUSY = json.dumps(error(503, "busy", f"more than {MAX_CONNECTIONS} connections open; "
                                      "try again").body).encode()


class _Server(ThreadingHTTPServer):
    # Connections the kernel queues before accept (socketserver's default is 5): a burst of
    # clients waits instead of being refused.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[_Handler],
                 max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Type: application/json; charset=utf-8\r\n"
                                b"Connection: close\r\nContent-Length: "
                                + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class ApiServer:
    """The API on a ThreadingHTTPServer in a background thread."""

    def __init__(self, api: Api, host: str, port: int,
                 socket_timeout_s: float = SOCKET_TIMEOUT_S,
                 request_deadline_s: float = REQUEST_DEADLINE_S,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._deadlines = _Deadlines(request_deadline_s)
        handler = type("Handler", (_Handler,), {"api": api, "timeout": socket_timeout_s,
                                                "deadlines": self._deadlines})
        self.httpd = _Server((host, port), handler, max_connections)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http-api",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._deadlines.stop()
        if self._thread:
            self._thread.join(timeout)

