"""A raw HTTP/2 gRPC client (h2 + asyncio) that sends exactly what a recorded exchange describes.

It can send any content-type or none, duplicated metadata, any list of raw payloads (each framed with
the 5-byte gRPC prefix; an empty list = one empty DATA frame with END_STREAM; ``None`` = a HEADERS
frame that itself ends the stream), pre-framed raw DATA bytes, a custom ``:path``, on a named
long-lived connection or on a fresh one. Used by the corpus replay test, the recorder and the
transport tests.

    async with RawGrpcClient("127.0.0.1", port) as c:
        r = await c.call("/contenox.transport.v1.Compute/Health", [b"{}"])
        r.code, r.message, r.messages

For hostile input: ``validate_headers=False`` sends header names and values exactly as given (empty
``:path``, a NUL, surrounding spaces, a ``connection`` header); ``header_list_size`` sets what the client
advertises as SETTINGS_MAX_HEADER_LIST_SIZE (h2's 64 KiB by default; ``None`` advertises none, as grpc-go
clients do); long values go out as plain HPACK literals (h2's Huffman encoder is quadratic in the length);
:meth:`RawGrpcClient.ping`, :meth:`RawGrpcClient.open_stream` (a stream left open) and
:meth:`RawGrpcClient.goaway` show the connection-level side; ``connection(name, hold_settings_ack=True)``
sends the SETTINGS ACK in the same segment as the first request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

__all__ = [
    "DEFAULT",
    "DEFAULT_CONTENT_TYPE",
    "GoAway",
    "RawGrpcClient",
    "RawReply",
    "RawStream",
    "frame_message",
    "parse_messages",
]

DEFAULT_CONTENT_TYPE: Final = "application/grpc+contenoxtransportjson"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: sentinel: "use the JSON codec's content-type"
DEFAULT: Final = _Default()


def frame_message(payload: bytes, flag: int = 0) -> bytes:
    """The 5-byte gRPC length prefix + payload."""
    return bytes((flag,)) + len(payload).to_bytes(4, "big") + payload


def parse_messages(data: bytes) -> tuple[list[bytes], bytes]:
    """Split framed messages; returns (messages, leftover bytes)."""
    out: list[bytes] = []
    i, n = 0, len(data)
    while n - i >= 5:
        length = int.from_bytes(data[i + 1 : i + 5], "big")
        if n - i - 5 < length:
            break
        out.append(data[i + 5 : i + 5 + length])
        i += 5 + length
    return out, data[i:]


def _decode_grpc_message(msg: str) -> str:
    # grpc-go decodeGrpcMessage (internal/transport/http_util.go)
    if "%" not in msg:
        return msg
    raw = msg.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    hexd = b"0123456789abcdefABCDEF"
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and raw[i + 1] in hexd and raw[i + 2] in hexd:
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(b)
        i += 1
    return out.decode("utf-8", "replace")


def _b64_unpadded(v: str) -> bytes:
    v = v.strip()
    return base64.b64decode(v + "=" * (-len(v) % 4))


#: Values longer than this are sent as plain literals (h2's Huffman encoder is quadratic in the length).
_HUFFMAN_MAX = 1024
#: What the client reads in one header list when it advertises no limit (grpc-go clients read as much).
_READ_HEADER_LIST_MAX = 16 << 20


class _Encoder(hpack.Encoder):
    def add(self, to_add: tuple[bytes, bytes], sensitive: bool, huffman: bool = False) -> bytes:
        return super().add(to_add, sensitive, huffman and len(to_add[1]) <= _HUFFMAN_MAX)


@dataclass(frozen=True)
class GoAway:
    """A GOAWAY the server sent: error code, debug data, last stream id."""

    error_code: int
    debug_data: bytes
    last_stream_id: int


@dataclass
class RawReply:
    """What came back. ``code`` / ``message`` are ``None`` when no grpc-status came (reset, timeout)."""

    http_status: int | None = None
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    code: int | None = None
    message: str | None = None
    details: bytes | None = None
    trailers: list[tuple[str, str]] = field(default_factory=list)
    trailers_only: bool = False
    reset_code: int | None = None
    timed_out: bool = False
    data_frames: int = 0
    leftover: bytes = b""
    #: the connection ended (GOAWAY or closed) before this stream did
    connection_lost: bool = False


class _StreamState:
    def __init__(self) -> None:
        self.reply = RawReply()
        self.data = bytearray()
        self.got_headers = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.window: asyncio.Event = asyncio.Event()


class _ClientConn(asyncio.Protocol):
    def __init__(
        self,
        validate_headers: bool = True,
        header_list_size: int | _Default | None = DEFAULT,
        hold_settings_ack: bool = False,
    ) -> None:
        if validate_headers:
            cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        else:
            cfg = h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.encoder = _Encoder()
        self.header_list_size = header_list_size
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _StreamState] = {}
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.goaway: GoAway | None = None
        self.settings_received = asyncio.Event()
        self.pings: dict[bytes, asyncio.Future[None]] = {}
        #: while True nothing is written: the SETTINGS ACK waits for the first request
        self.holding = hold_settings_ack

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.header_list_size is None:
            # h2 always advertises a MAX_HEADER_LIST_SIZE: start from settings without it
            self.h2.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
            )
            self.h2.decoder.max_header_list_size = _READ_HEADER_LIST_MAX
        self.h2.initiate_connection()
        settings: dict[h2.settings.SettingCodes | int, int] = {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1
        }
        if isinstance(self.header_list_size, int):
            settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] = self.header_list_size
        self.h2.update_settings(settings)
        self.h2.increment_flow_control_window((1 << 31) - 1 - 65535)
        self.write_preface()

    def write_preface(self) -> None:
        # the preface and our SETTINGS go out at once even when the ACK of the server's is held
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        for st in self.streams.values():
            if not st.done.done():
                st.reply.connection_lost = True
                st.done.set_result(None)
            st.window.set()
        for fut in self.pings.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the connection closed before the PING ACK"))
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        if self.holding:
            return
        if self.transport is not None and not self.transport.is_closing():
            data = self.h2.data_to_send()
            if data:
                self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            sid = getattr(ev, "stream_id", None)
            st = self.streams.get(sid) if sid else None
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st.got_headers = True
                st.reply.headers = [(str(k), str(v)) for k, v in ev.headers]
                for k, v in st.reply.headers:
                    if k == ":status":
                        st.reply.http_status = int(v)
                    elif k == "content-type":
                        st.reply.content_type = v
                if ev.stream_ended is not None:
                    st.reply.trailers_only = True
                    self._status_from(st, st.reply.headers)
            elif isinstance(ev, h2.events.TrailersReceived) and st is not None:
                st.reply.trailers = [(str(k), str(v)) for k, v in ev.headers]
                self._status_from(st, st.reply.trailers)
            elif isinstance(ev, h2.events.DataReceived):
                if ev.flow_controlled_length:
                    with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if st is not None:
                    st.data += ev.data
                    st.reply.data_frames += 1
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                self._finish(st)
            elif isinstance(ev, h2.events.StreamReset) and st is not None:
                st.reply.reset_code = int(ev.error_code)
                self._finish(st)
            elif isinstance(ev, h2.events.WindowUpdated):
                targets = self.streams.values() if ev.stream_id == 0 else ([st] if st is not None else [])
                for t in targets:
                    t.window.set()
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_received.set()
                for t in self.streams.values():
                    t.window.set()
            elif isinstance(ev, h2.events.PingAckReceived):
                fut = self.pings.pop(bytes(ev.ping_data), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = GoAway(
                    int(ev.error_code if ev.error_code is not None else 0),
                    bytes(ev.additional_data or b""),
                    int(ev.last_stream_id or 0),
                )
        self.flush()

    @staticmethod
    def _status_from(st: _StreamState, hdrs: list[tuple[str, str]]) -> None:
        for k, v in hdrs:
            if k == "grpc-status":
                with contextlib.suppress(ValueError):
                    st.reply.code = int(v)
            elif k == "grpc-message":
                st.reply.message = _decode_grpc_message(v)
            elif k == "grpc-status-details-bin":
                with contextlib.suppress(ValueError):
                    st.reply.details = _b64_unpadded(v)
        if st.reply.code is not None and st.reply.message is None:
            st.reply.message = ""

    def _finish(self, st: _StreamState) -> None:
        msgs, left = parse_messages(bytes(st.data))
        st.reply.messages = msgs
        st.reply.leftover = left
        if not st.done.done():
            st.done.set_result(None)
        st.window.set()

    async def send_all(self, sid: int, st: _StreamState, data: bytes, end: bool) -> None:
        mv = memoryview(data)
        while True:
            if st.done.done() or self.closed.done():
                return
            try:
                window = self.h2.local_flow_control_window(sid)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return
            if not mv and end:
                self.h2.send_data(sid, b"", end_stream=True)
                self.flush()
                return
            if not mv:
                return
            if window <= 0:
                st.window.clear()
                self.flush()
                await st.window.wait()
                continue
            size = min(window, self.h2.max_outbound_frame_size, len(mv))
            last = size == len(mv)
            self.h2.send_data(sid, mv[:size], end_stream=end and last)
            mv = mv[size:]
            self.flush()
            if last:
                return


class RawGrpcClient:
    """Raw client over h2c. Named connections live until :meth:`close_connection` / :meth:`aclose`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        validate_headers: bool = True,
        header_list_size: int | _Default | None = DEFAULT,
    ) -> None:
        self.host = host
        self.port = port
        self.validate_headers = validate_headers
        self.header_list_size = header_list_size
        self._named: dict[str, _ClientConn] = {}
        self._pings = 0

    async def __aenter__(self) -> RawGrpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open(self, hold_settings_ack: bool = False) -> _ClientConn:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: _ClientConn(self.validate_headers, self.header_list_size, hold_settings_ack),
            self.host,
            self.port,
        )
        return proto

    async def connection(
        self, name: str, *, hold_settings_ack: bool = False, timeout: float = 5.0
    ) -> _ClientConn:
        """The named connection (opened on first use). ``hold_settings_ack``: a new connection waits for
        the server's SETTINGS and sends its ACK together with the first request, in one segment."""
        c = self._named.get(name)
        if c is None or c.closed.done():
            c = await self._open(hold_settings_ack)
            self._named[name] = c
            if hold_settings_ack:
                async with asyncio.timeout(timeout):
                    await c.settings_received.wait()
        return c

    def goaway(self, name: str) -> GoAway | None:
        """The GOAWAY the server sent on the named connection, if any."""
        c = self._named.get(name)
        return c.goaway if c is not None else None

    async def ping(self, name: str, timeout: float = 5.0) -> bool:
        """One PING on the named connection: True when its ACK came within ``timeout``; False when it did
        not or the connection ended first (see :meth:`goaway`)."""
        c = await self.connection(name)
        self._pings += 1
        data = self._pings.to_bytes(8, "big")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        c.pings[data] = fut
        try:
            c.h2.ping(data)
            c.flush()
            async with asyncio.timeout(timeout):
                await fut
        except (TimeoutError, ConnectionError, h2.exceptions.ProtocolError):
            return False
        finally:
            c.pings.pop(data, None)
        return True

    async def open_stream(
        self,
        path: str,
        *,
        connection: str,
        content_type: str | _Default | None = DEFAULT,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> RawStream:
        """Open a stream and leave it open (HEADERS without END_STREAM) on the named connection; send on
        it with :meth:`RawStream.send`, end it with :meth:`RawStream.end`, read with
        :meth:`RawStream.reply`."""
        conn = await self.connection(connection)
        sid = conn.h2.get_next_available_stream_id()
        st = _StreamState()
        conn.streams[sid] = st
        conn.h2.send_headers(sid, self._headers(path, content_type, metadata, "POST", None), end_stream=False)
        conn.flush()
        return RawStream(conn, sid, st)

    def _headers(
        self,
        path: str,
        content_type: str | _Default | None,
        metadata: Sequence[tuple[str, str]],
        method: str,
        authority: str | None,
    ) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority or f"{self.host}:{self.port}"),
        ]
        if isinstance(content_type, _Default):
            headers.append(("content-type", DEFAULT_CONTENT_TYPE))
        elif content_type is not None:
            headers.append(("content-type", content_type))
        headers.append(("te", "trailers"))
        headers.extend(metadata)
        return headers

    async def close_connection(self, name: str) -> None:
        c = self._named.pop(name, None)
        if c is not None:
            await self._close(c)

    @staticmethod
    async def _close(c: _ClientConn) -> None:
        with contextlib.suppress(Exception):
            c.h2.close_connection()
            c.flush()
        if c.transport is not None:
            c.transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(c.closed), 2.0)

    async def aclose(self) -> None:
        for name in list(self._named):
            await self.close_connection(name)

    async def call(
        self,
        path: str,
        payloads: Sequence[bytes] | None,
        *,
        content_type: str | _Default | None = DEFAULT,
        metadata: Sequence[tuple[str, str]] = (),
        connection: str | None = None,
        timeout: float = 10.0,
        raw_data: bytes | None = None,
        method: str = "POST",
        authority: str | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
    ) -> RawReply:
        """One call. ``path``: the ``:path`` (``/svc/Method``). ``payloads``: raw messages, each framed;
        ``[]`` → one empty DATA frame with END_STREAM; ``None`` → HEADERS with END_STREAM.
        ``raw_data``: send these bytes as the body instead (already framed or deliberately not).
        ``content_type``: ``DEFAULT`` (the JSON codec), a string, or ``None`` (no header).
        ``headers``: the whole header list as given, in order (``path``, ``content_type``, ``metadata``,
        ``method`` and ``authority`` are then unused)."""
        conn = await (self.connection(connection) if connection else self._open())
        hdrs = (
            list(headers)
            if headers is not None
            else self._headers(path, content_type, metadata, method, authority)
        )
        try:
            return await self._call(conn, hdrs, payloads, timeout, raw_data)
        finally:
            if connection is None:
                await self._close(conn)

    async def _call(
        self,
        conn: _ClientConn,
        headers: list[tuple[str, str]],
        payloads: Sequence[bytes] | None,
        timeout: float,
        raw_data: bytes | None,
    ) -> RawReply:
        sid = conn.h2.get_next_available_stream_id()
        st = _StreamState()
        conn.streams[sid] = st
        ends_on_headers = payloads is None and raw_data is None
        conn.h2.send_headers(sid, headers, end_stream=ends_on_headers)
        conn.flush()
        try:
            async with asyncio.timeout(timeout):
                if not ends_on_headers:
                    body = (
                        raw_data
                        if raw_data is not None
                        else b"".join(frame_message(p) for p in payloads or ())
                    )
                    await conn.send_all(sid, st, body, True)
                if conn.holding:  # the held SETTINGS ACK, the HEADERS and the body in one write
                    conn.holding = False
                    conn.flush()
                await asyncio.shield(st.done)
        except TimeoutError:
            st.reply.timed_out = True
            with contextlib.suppress(Exception):
                conn.h2.reset_stream(sid)
                conn.flush()
            msgs, left = parse_messages(bytes(st.data))
            st.reply.messages, st.reply.leftover = msgs, left
        finally:
            conn.streams.pop(sid, None)
        return st.reply


class RawStream:
    """A stream left open by :meth:`RawGrpcClient.open_stream`."""

    def __init__(self, conn: _ClientConn, sid: int, st: _StreamState) -> None:
        self._conn = conn
        self.stream_id = sid
        self._st = st

    async def send(self, payload: bytes, *, end: bool = False) -> None:
        """One framed message (and END_STREAM with ``end``)."""
        await self._conn.send_all(self.stream_id, self._st, frame_message(payload), end)

    async def end(self) -> None:
        """END_STREAM (an empty DATA frame)."""
        await self._conn.send_all(self.stream_id, self._st, b"", True)

    async def reply(self, timeout: float = 10.0) -> RawReply:
        """Wait for the stream's end (``timed_out`` when it did not come within ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._st.done)
        except TimeoutError:
            self._st.reply.timed_out = True
            msgs, left = parse_messages(bytes(self._st.data))
            self._st.reply.messages, self._st.reply.leftover = msgs, left
        finally:
            if self._st.done.done():
                self._conn.streams.pop(self.stream_id, None)
        return self._st.reply

    def reset(self, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            self._conn.h2.reset_stream(self.stream_id, error_code)
            self._conn.flush()
        self._conn.streams.pop(self.stream_id, None)
