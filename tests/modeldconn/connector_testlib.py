"""Test helpers of the connector tests: a tiny scripted HTTP/2 gRPC server and a call spy.

:class:`RawServer` answers each request with a list of actions chosen by a test (headers, raw
DATA bytes, trailers, RST_STREAM, closing the connection, sleeping, hanging), so the connector can
be fed what no correct server sends: garbage bytes, wrong JSON types, a truncated frame, a stream
that ends without trailers, a foreign content-type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

CT = "application/grpc+contenoxtransportjson"


def frame(payload: bytes | str | dict[str, Any], flag: int = 0) -> bytes:
    """One gRPC length-prefixed message."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"))
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">BI", flag, len(payload)) + payload


def ok_headers(ct: str = CT) -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", ct)]


def trailers(code: int = 0, message: str = "") -> list[tuple[str, str]]:
    return [("grpc-status", str(code)), ("grpc-message", message)]


@dataclass
class Request:
    method: str
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body: bytes
    conn_id: int

    def messages(self) -> list[Any]:
        out, b = [], self.body
        while len(b) >= 5:
            n = struct.unpack(">I", b[1:5])[0]
            out.append(json.loads(b[5 : 5 + n]))
            b = b[5 + n :]
        return out


# Actions
@dataclass
class Headers:
    headers: list[tuple[str, str]]
    end: bool = False


@dataclass
class Data:
    data: bytes
    end: bool = False


@dataclass
class Trailers:
    headers: list[tuple[str, str]]


@dataclass
class Reset:
    code: int = 2  # INTERNAL_ERROR


@dataclass
class CloseConnection:
    pass


@dataclass
class Sleep:
    seconds: float


@dataclass
class Hang:
    pass


Action = Headers | Data | Trailers | Reset | CloseConnection | Sleep | Hang
Responder = Callable[[Request], list[Action] | Awaitable[list[Action]]]


def unary_ok(payload: bytes | str | dict[str, Any]) -> list[Action]:
    return [Headers(ok_headers()), Data(frame(payload)), Trailers(trailers())]


def status_only(code: int, message: str, extra: list[tuple[str, str]] | None = None) -> list[Action]:
    """A Trailers-Only answer."""
    return [Headers([*ok_headers(), *trailers(code, message), *(extra or [])], end=True)]


@dataclass
class RawServer:
    responder: Responder
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        return f"{self.host}:{port}"

    async def close(self) -> None:
        self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> RawServer:
        self.endpoint = await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn_id = self.connections
        self._writers.append(writer)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
        conn.increment_flow_control_window((1 << 31) - 1 - 65535)
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        lock = asyncio.Lock()

        async def flush() -> None:
            data = conn.data_to_send()
            if data:
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        async def respond(sid: int, req: Request) -> None:
            result = self.responder(req)
            actions = await result if asyncio.iscoroutine(result) else result
            for a in actions:  # type: ignore[union-attr]
                async with lock:
                    if isinstance(a, Headers):
                        conn.send_headers(sid, a.headers, end_stream=a.end)
                    elif isinstance(a, Data):
                        conn.send_data(sid, a.data, end_stream=a.end)
                    elif isinstance(a, Trailers):
                        conn.send_headers(sid, a.headers, end_stream=True)
                    elif isinstance(a, Reset):
                        conn.reset_stream(sid, a.code)
                    elif isinstance(a, CloseConnection):
                        await flush()
                        writer.close()
                        return
                    await flush()
                if isinstance(a, Sleep):
                    await asyncio.sleep(a.seconds)
                elif isinstance(a, Hang):
                    await asyncio.Event().wait()

        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                async with lock:
                    events = conn.receive_data(data)
                    for ev in events:
                        if isinstance(ev, h2.events.RequestReceived):
                            streams[ev.stream_id] = ([(str(k), str(v)) for k, v in ev.headers], bytearray())
                            if ev.stream_ended:
                                self._dispatch(ev.stream_id, streams, conn_id, respond)
                        elif isinstance(ev, h2.events.DataReceived):
                            if ev.stream_id in streams:
                                streams[ev.stream_id][1].extend(ev.data)
                            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        elif isinstance(ev, h2.events.StreamEnded):
                            self._dispatch(ev.stream_id, streams, conn_id, respond)
                    await flush()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _dispatch(
        self,
        sid: int,
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]],
        conn_id: int,
        respond: Callable[[int, Request], Awaitable[None]],
    ) -> None:
        hdrs, body = streams[sid]
        hmap = dict(hdrs)
        req = Request(hmap.get(":path", "").rsplit("/", 1)[-1], hmap, hdrs, bytes(body), conn_id)
        self.requests.append(req)
        t = asyncio.ensure_future(respond(sid, req))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)


@contextlib.contextmanager
def silent_listener() -> Any:
    """A TCP listener that never accepts: connects succeed (kernel backlog), nothing answers -
    like a SIGSTOPped daemon."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


def closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


class CallSpy:
    """Records every unary call of ``modeldconn.transport.Connection`` (method, body, owner)."""

    def __init__(self, monkeypatch: Any) -> None:
        from modeldconn import transport
        from modeldconn.wire import codec

        self.calls: list[tuple[str, dict[str, Any], str, int]] = []
        orig = transport.Connection.unary
        spy = self

        async def unary(self: Any, method: str, request: Any, reply_cls: Any, **kw: Any) -> Any:
            spy.calls.append((method, json.loads(codec.encode(request)), self.owner, id(self)))
            return await orig(self, method, request, reply_cls, **kw)

        monkeypatch.setattr(transport.Connection, "unary", unary)

    def methods(self) -> list[str]:
        return [c[0] for c in self.calls]

    def clear(self) -> None:
        self.calls.clear()


class ServeProcess:
    """``modeld-sim serve --data-root ROOT`` in a subprocess; ready once the lease names a live
    owner that answers Health (polled, bounded)."""

    def __init__(self, root: str, *extra: str) -> None:
        import subprocess
        import sys
        import tempfile

        self.root = root
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", root, *extra],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.stopped = False

    async def wait_ready(self, limit: float = 20.0) -> Any:
        import time

        from modeldconn import probe

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"modeld-sim exited with {self.proc.returncode}: {err}")
            st = await probe.probe(self.root, timeout=1.0)
            if st.state is probe.ProbeState.RUNNING:
                return st
            await asyncio.sleep(0.05)
        raise TimeoutError("modeld-sim did not become ready")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)

    def sigstop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)
