"""A fake platform API for observe-mode tests: serves stations, records and alerts from
Python lists (docs/platform-api.md's shapes: list pages, filters station_id and from, bearer
token), and can be broken on purpose — a station off line, a sequence gap, a wrong token,
a body that is not JSON, an unavailable server."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "observe-test-token-0123456789"
TIME_FIELD = {"transactions": "end_time", "inventory": "device_time",
              "deliveries": "end_time", "events": "device_time"}


def station(sid: str, *, online: bool = True, drained: float | None = None) -> dict[str, Any]:
    return {"station_id": sid, "name": f"站{sid}", "town": "海流图镇", "ownership": "private",
            "active": True, "tanks": [{"tank": 1, "grade": "92"}],
            "dispensers": [{"dispenser": 1, "nozzles": [{"nozzle": 1, "tank": 1}]}],
            "collector": {"heard": True, "online": online},
            "devices": [{"device": "G", "expected": True, "online": online,
                         "drained_through": drained},
                        {"device": "D1", "expected": True, "online": online,
                         "drained_through": drained}]}


def inventory(sid: str, seq: int, t: int, received: float | None = None) -> dict[str, Any]:
    return {"key": f"{sid}/G/inventory/{seq}/{t}", "station_id": sid, "device": "G",
            "seq": seq, "tank": 1, "device_time": t,
            "received_at": float(t + 2) if received is None else received}


def fill(sid: str, seq: int, t: int, volume: int, total: int) -> dict[str, Any]:
    return {"key": f"{sid}/D1/transactions/{seq}/{t}", "station_id": sid, "device": "D1",
            "seq": seq, "nozzle": 1, "start_time": t - 60, "end_time": t,
            "volume_ml": volume, "volume_total_ml": total, "received_at": float(t + 3)}


class FakePlatform:
    def __init__(self) -> None:
        self.stations: list[dict[str, Any]] = []
        self.records: dict[str, list[dict[str, Any]]] = {k: [] for k in TIME_FIELD}
        self.alerts: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | 500 (transient error) | garbage (not JSON)
        self.requests = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake.requests += 1
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": {"status": 401, "code": "unauthorized",
                                                      "message": "unknown token"}})
                if fake.mode == "500":
                    return self._send(500, {"error": {"status": 500, "code": "internal_error",
                                                      "message": "boom"}})
                if fake.mode == "garbage":
                    return self._raw(200, b"<html>proxy error</html>")
                with fake.lock:
                    items = fake.items(url.path.removeprefix("/api/v1/"), query)
                if items is None:
                    return self._send(404, {"error": {"status": 404, "code": "not_found",
                                                      "message": "no such resource"}})
                self._send(200, {"items": items, "next_cursor": None})

            def _send(self, status: int, doc: Any) -> None:
                self._raw(status, json.dumps(doc).encode())

            def _raw(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def items(self, resource: str, query: dict[str, str]) -> list[dict[str, Any]] | None:
        sid = query.get("station_id")
        if resource == "stations":
            return [s for s in self.stations if sid in (None, s["station_id"])]
        if resource == "alerts":
            return [a for a in self.alerts if sid in (None, a["station_id"])]
        if resource not in self.records:
            return None
        since = float(query.get("from", "-inf"))
        tf = TIME_FIELD[resource]
        return sorted((r for r in self.records[resource]
                       if sid in (None, r["station_id"]) and r[tf] >= since),
                      key=lambda r: (r[tf], r["key"]))

    def __enter__(self) -> FakePlatform:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
