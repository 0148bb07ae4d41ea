"""A TCP proxy the harness controls, to cut the network between a collector and its broker.

`cut("reset")` closes every connection and refuses new ones (a link that drops hard);
`cut("blackhole")` keeps sockets open but forwards nothing (a 4G link that stalls, so the
peers only notice through their keep-alive timeouts). `restore()` heals the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, scheme: str = "mqtt") -> None:
        self.target = (target_host, target_port)
        self.scheme = scheme  # of `url`: bytes pass as they are, TLS included
        self.listen_host, self.listen_port = listen_host, listen_port
        self.mode = "open"  # "open" | "reset" | "blackhole"
        self.connections_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.listen_host}:{self.listen_port}"

    def start(self, timeout: float = 5.0) -> TcpProxy:
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("TCP proxy did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, self.listen_host, self.listen_port))
        self.listen_port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (TimeoutError, OSError):
            writer.close()
            return
        self.connections_total += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # swallowed: the link is down but nobody is told
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _call(self, fn) -> None:
        assert self._loop is not None, "proxy not started"
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def cut(self, mode: str = "reset") -> None:
        if mode not in ("reset", "blackhole"):
            raise ValueError(f"cut mode {mode!r}: expected 'reset' or 'blackhole'")

        def apply() -> None:
            self.mode = mode
            if mode == "reset":
                for w in list(self._writers):
                    w.close()
                self._writers.clear()

        self._call(apply)

    def restore(self) -> None:
        def apply() -> None:
            was_blackhole = self.mode == "blackhole"
            self.mode = "open"
            if was_blackhole:  # stalled sessions are dead by now; make the peers reconnect
                for w in list(self._writers):
                    w.close()
                self._writers.clear()

        self._call(apply)

    def stop(self) -> None:
        loop = self._loop
        if not loop:
            return

        def shutdown() -> None:
            for w in list(self._writers):
                w.close()
            if self._server:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        if self._thread:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
