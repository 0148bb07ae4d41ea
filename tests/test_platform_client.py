"""The harness's API client reads a platform's answers as the platform wrote them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acceptance.observe import ApiError, PlatformClient, decode_json

# JSON values with integers of any size (a vendor's platform may send one beyond 64 bits)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(_json)
def test_every_number_decodes_as_written(value):
    """An integer stays an integer of the same value, however large (orjson alone reads one
    beyond 64 bits as a float: 2**64 would come back as 1.8446744073709552e+19)."""
    body = json.dumps(value).encode()
    assert json.dumps(decode_json(body)) == json.dumps(value)


@pytest.fixture()
def platform() -> Iterator[dict[str, bytes]]:
    """A stand-in platform on loopback answering each path with the body put in for it."""
    bodies: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            body = bodies[self.path.split("?")[0]]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bodies["url"] = f"http://127.0.0.1:{server.server_address[1]}".encode()
    try:
        yield bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_listing_keeps_a_huge_integer_exact_and_a_nan_is_an_error(platform):
    client = PlatformClient(platform["url"].decode(), "token")
    platform["/api/v1/transactions"] = (
        b'{"items": [{"key": "k1", "volume_ml": 1180591620717411303424, "received_at": '
        b'1775001600.25}, {"key": "k2", "volume_ml": 20000, "received_at": 1775001601.5}], '
        b'"next_cursor": null}')
    items = list(client.items("transactions"))
    assert [i["volume_ml"] for i in items] == [2**70, 20000]
    assert isinstance(items[0]["volume_ml"], int)
    assert [i["received_at"] for i in items] == [1775001600.25, 1775001601.5]
    # NaN is not JSON, whichever decoder reads the body (a huge integer beside it: json)
    platform["/api/v1/inventory"] = b'{"items": [{"key": "k", "temperature_mc": NaN}]}'
    with pytest.raises(ApiError, match=r"/api/v1/inventory.*not JSON.*char 42"):
        list(client.items("inventory"))
    platform["/api/v1/events"] = b'{"items": [{"key": "k", "seq": 10000000000000000000000, ' \
        b'"value_old_e4": NaN}]}'
    with pytest.raises(ApiError, match=r"/api/v1/events.*not JSON.*NaN"):
        list(client.items("events"))
