"""Drive a paho-mqtt client from the asyncio event loop instead of its own network thread.

A fleet process serves dozens of stations: with `loop_start()` each client had its own thread
waking on every publish, PUBACK and ack, and half of the process's CPU went to those threads
and to handing the GIL between them (docs/performance.md, issue 11). Here the client's socket
is watched by the event loop (paho's "external event loop" callbacks): reads, writes and the
keepalive run on the loop thread, so paho's callbacks run there too.

`connect()` may still run in a worker thread (a TLS handshake blocks): socket callbacks that
arrive off the loop thread are handed over with `call_soon_threadsafe`.

uvloop (the collectors' loop) closes an fd's poll handle when the poll reports an error
(POLLERR: a connection reset by the broker or the network) after running the callbacks once,
but keeps the closed handle registered. The socket is then read no more, and the next
add_writer raises RuntimeError (uvloop#552). paho reads at most a few packets per call, so
that one read may leave the reset unseen. The driver therefore re-registers the socket when
uvloop refuses, and once per MISC_INTERVAL_S in any case: the next poll reports the error
again, and paho, reading, sees it and closes the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import paho.mqtt.client as mqtt

MISC_INTERVAL_S = 1.0  # keepalive pings and their timeouts are checked this often


class LoopDriver:
    """Attach one paho client to one asyncio loop; `detach()` when its session ended."""

    def __init__(self, client: mqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self._thread = threading.get_ident()  # the loop's thread: callers construct us on it
        self._sock: Any = None
        self._writing = False
        self._misc: asyncio.Task | None = None
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write

    def _on_loop(self, fn, *args) -> None:
        if threading.get_ident() == self._thread:
            fn(*args)
        elif not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                self.loop.call_soon_threadsafe(fn, *args)

    # -- paho's socket callbacks (any thread) -----------------------------------------------------

    def _opened(self, client, userdata, sock) -> None:
        self._on_loop(self._watch, sock)

    def _closed(self, client, userdata, sock) -> None:
        self._on_loop(self._unwatch, sock)

    def _want_write(self, client, userdata, sock) -> None:
        self._on_loop(self._set_writer, sock, True)

    def _no_write(self, client, userdata, sock) -> None:
        self._on_loop(self._set_writer, sock, False)

    # -- on the loop thread --------------------------------------------------------------------

    def _watch(self, sock: Any) -> None:
        if sock is None or self.client.socket() is not sock:
            return  # closed again before the loop got to it
        self._sock = sock  # typed Any: paho's SocketLike has no fileno() in its stubs
        self._keep_reading()
        if self.client.want_write():
            self._set_writer(self._sock, True)
        if self._misc is None or self._misc.done():
            self._misc = self.loop.create_task(self._misc_loop())

    def _keep_reading(self) -> None:
        """Register the reader (again: a no-op for a live uvloop handle)."""
        with contextlib.suppress(ValueError, OSError):  # closed: paho's close callback follows
            try:
                self.loop.add_reader(self._sock, self._read)
            except RuntimeError:  # uvloop closed the handle after a poll error (module doc)
                self._rearm()

    def _rearm(self) -> None:
        """Drop the socket's stale uvloop handle, and register the reader (and the writer if
        paho has something to send) anew."""
        sock = self._sock
        for remove in (self.loop.remove_reader, self.loop.remove_writer):
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                remove(sock)
        self.loop.add_reader(sock, self._read)
        self._writing = self.client.want_write()
        if self._writing:
            self.loop.add_writer(sock, self._write)

    def _unwatch(self, sock) -> None:
        if sock is not self._sock:
            return
        with contextlib.suppress(ValueError, OSError):  # fd already closed
            self.loop.remove_reader(sock)
            if self._writing:
                self.loop.remove_writer(sock)
        self._sock, self._writing = None, False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _set_writer(self, sock, on: bool) -> None:
        if sock is not self._sock or on == self._writing:
            return
        try:
            if on:
                self.loop.add_writer(sock, self._write)
            else:
                self.loop.remove_writer(sock)
        except RuntimeError:  # uvloop closed the handle after a poll error (module doc)
            self._rearm()
            return
        self._writing = on

    def _read(self) -> None:
        self.client.loop_read()
        # TLS: records already decrypted by the SSL layer do not make the socket readable
        sock = self.client.socket()
        while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
            if self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                break
            sock = self.client.socket()

    def _write(self) -> None:
        self.client.loop_write()

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            if self._sock is not None:
                self._keep_reading()  # a reset that one read left unseen is read within 1 s
            await asyncio.sleep(MISC_INTERVAL_S)

    def detach(self) -> None:
        """Stop watching the client's socket (its session is over, or we are closing)."""
        if self._sock is not None:
            self._unwatch(self._sock)
