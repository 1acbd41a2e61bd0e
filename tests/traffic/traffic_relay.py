"""A byte-exact HTTP/2 relay for the traffic tests, and the recordings' vocabulary.

:class:`Relay` listens on loopback and forwards every byte of every client connection, unchanged,
to one upstream endpoint (a new upstream connection per client connection), as the relay that
recorded the Go connector did (``tests/corpus/go-connector-v0.36.0/go-connector.wire.jsonl``).
Both directions are also decoded passively - frame headers, HPACK header blocks, DATA payloads -
into one :class:`RPC` per stream, in the format of that recording: ``client_headers``,
``client_messages``, ``client_data_frames``, ``client_ended``, ``server_headers``,
``server_messages``, ``server_data_frames``, ``server_trailers``, ``server_ended``. Nothing is
terminated or re-encoded, so what is recorded is what the connector put on the wire.

Also here: the recording's placeholders (:func:`normalise`), the typed JSON comparison
(:func:`typed`: key order and JSON types count, ``0``/``0.0``/``false`` differ), the corpus readers,
and :func:`mirror_lease` (a data root whose lease names the relay instead of the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import hpack

from modeldconn import gotime
from modeldconn import lease as liblease

CORPUS: Final = Path(__file__).resolve().parent.parent / "corpus"
GO_DIR: Final = CORPUS / "go-connector-v0.36.0"
MODEL: Final = str(CORPUS / "modeld-v0.36.0" / "tiny-llama-ctx256.gguf")

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA, _HEADERS, _RST, _CONTINUATION = 0x0, 0x1, 0x3, 0x9
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def go_wire() -> list[dict[str, Any]]:
    """The Go connector's RPCs (the ``connection_opened`` lines dropped)."""
    return [d for d in read_jsonl(GO_DIR / "go-connector.wire.jsonl") if "conn" in d]


def go_api() -> list[dict[str, Any]]:
    return read_jsonl(GO_DIR / "go-connector.api.jsonl")


def go_discovery() -> list[dict[str, Any]]:
    return read_jsonl(GO_DIR / "go-connector-discovery.jsonl")


# ----------------------------------------------------------------------------- one RPC


@dataclass
class RPC:
    """One stream as it crossed the relay (the recording's keys)."""

    conn: int
    stream: int
    client_headers: list[tuple[str, str]] = field(default_factory=list)
    client_body: bytearray = field(default_factory=bytearray)
    client_data_frames: int = 0
    client_ended: bool = False
    server_headers: list[tuple[str, str]] = field(default_factory=list)
    server_body: bytearray = field(default_factory=bytearray)
    server_data_frames: int = 0
    server_trailers: list[tuple[str, str]] | None = None
    server_ended: bool = False
    reset: bool = False

    @property
    def method(self) -> str:
        return dict(self.client_headers).get(":path", "").rsplit("/", 1)[-1]

    @property
    def client_messages(self) -> list[Any]:
        return grpc_messages(bytes(self.client_body))

    @property
    def server_messages(self) -> list[Any]:
        return grpc_messages(bytes(self.server_body))

    def status(self) -> tuple[str | None, str | None]:
        """(grpc-status, grpc-message) from the trailers, or from a Trailers-Only answer."""
        hdrs = dict(self.server_trailers if self.server_trailers is not None else self.server_headers)
        return hdrs.get("grpc-status"), hdrs.get("grpc-message")


def grpc_messages(body: bytes) -> list[Any]:
    """Decode length-prefixed gRPC messages as JSON (dict key order kept)."""
    out: list[Any] = []
    while len(body) >= 5:
        (n,) = struct.unpack(">I", body[1:5])
        out.append(json.loads(body[5 : 5 + n]))
        body = body[5 + n :]
    if body:
        raise ValueError(f"{len(body)} trailing bytes after the last gRPC message")
    return out


# ----------------------------------------------------------------------------- passive decoding


class _Direction:
    """Passive decoder of one direction of one HTTP/2 connection."""

    def __init__(self, relay: Relay, conn: int, from_client: bool) -> None:
        self.relay = relay
        self.conn = conn
        self.from_client = from_client
        self.buf = bytearray()
        self.preface_left = len(PREFACE) if from_client else 0
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 30
        self.block = bytearray()
        self.block_stream = 0
        self.block_end_stream = False

    def feed(self, data: bytes) -> None:
        self.buf.extend(data)
        if self.preface_left:
            take = min(self.preface_left, len(self.buf))
            del self.buf[:take]
            self.preface_left -= take
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[9 : 9 + length])
            del self.buf[: 9 + length]
            self._frame(ftype, flags, sid, payload)

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if flags & _PADDED:
            pad = payload[0]
            return payload[1 : len(payload) - pad]
        return payload

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == _DATA:
            rpc = self.relay._rpc(self.conn, sid, create=False)
            if rpc is None:
                return
            body = self._unpad(flags, payload)
            if self.from_client:
                rpc.client_body.extend(body)
                rpc.client_data_frames += 1
                rpc.client_ended |= bool(flags & _END_STREAM)
            else:
                rpc.server_body.extend(body)
                rpc.server_data_frames += 1
                rpc.server_ended |= bool(flags & _END_STREAM)
        elif ftype == _HEADERS:
            block = self._unpad(flags, payload)
            if flags & _PRIORITY:
                block = block[5:]
            self.block = bytearray(block)
            self.block_stream = sid
            self.block_end_stream = bool(flags & _END_STREAM)
            if flags & _END_HEADERS:
                self._headers_done()
        elif ftype == _CONTINUATION:
            self.block.extend(payload)
            if flags & _END_HEADERS:
                self._headers_done()
        elif ftype == _RST:
            rpc = self.relay._rpc(self.conn, sid, create=False)
            if rpc is not None:
                rpc.reset = True

    def _headers_done(self) -> None:
        headers = [(str(k), str(v)) for k, v in self.decoder.decode(bytes(self.block), raw=False)]
        sid, end = self.block_stream, self.block_end_stream
        if self.from_client:
            rpc = self.relay._rpc(self.conn, sid, create=True)
            assert rpc is not None
            rpc.client_headers = headers
            rpc.client_ended |= end
            return
        rpc = self.relay._rpc(self.conn, sid, create=False)
        if rpc is None:
            return
        if not rpc.server_headers:
            rpc.server_headers = headers
        else:
            rpc.server_trailers = headers
        rpc.server_ended |= end


# ----------------------------------------------------------------------------- the relay


class Relay:
    """``async with Relay(upstream) as relay:`` - ``relay.endpoint`` forwards to ``upstream``.

    ``relay.log`` holds ``("open", n)`` per accepted connection and ``("rpc", RPC)`` per stream, in
    the order they began; ``relay.rpcs()`` the RPCs alone."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.endpoint = ""
        self.log: list[tuple[str, Any]] = []
        self._by_key: dict[tuple[int, int], RPC] = {}
        self._conns = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    def rpcs(self) -> list[RPC]:
        return [r for kind, r in self.log if kind == "rpc"]

    @property
    def connections(self) -> int:
        return self._conns

    def _rpc(self, conn: int, sid: int, *, create: bool) -> RPC | None:
        rpc = self._by_key.get((conn, sid))
        if rpc is None and create:
            rpc = self._by_key[(conn, sid)] = RPC(conn, sid)
            self.log.append(("rpc", rpc))
        return rpc

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns += 1
        n = self._conns
        self.log.append(("open", n))
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, _Direction(self, n, True))),
            asyncio.ensure_future(self._pump(up_reader, writer, _Direction(self, n, False))),
        ]
        for t in pumps:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        with contextlib.suppress(BaseException):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.close()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, decode: _Direction) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                decode.feed(data)
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            dst.write_eof()


# ----------------------------------------------------------------------------- comparison helpers


def normalise(value: Any, subs: dict[str, str]) -> Any:
    """Replace every occurrence of each ``subs`` key in every string (keys and values) by its
    placeholder, longest key first."""
    order = sorted(subs, key=len, reverse=True)

    def sub(s: str) -> str:
        for k in order:
            if k:
                s = s.replace(k, subs[k])
        return s

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return sub(v)
        if isinstance(v, dict):
            return {sub(k): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value)


def typed(value: Any) -> Any:
    """A form of decoded JSON whose equality sees key order and JSON types."""
    if isinstance(value, dict):
        return ("object", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [typed(v) for v in value])
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if value is None:
        return ("null", None)
    return (type(value).__name__, value)


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where two decoded JSON values first differ (key order and types included), or None."""
    if typed(a) == typed(b):
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
    return f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"


def mirror_lease(src_root: str, dst_root: str, endpoint: str, *, ttl: float = 600.0) -> None:
    """Write into ``dst_root`` the lease of ``src_root`` (same instance id, backend, pid, host),
    renewed now with ``ttl``, advertising ``endpoint`` (the relay) instead of the daemon's."""
    rec = liblease.inspect(liblease.lease_path(src_root))
    now = gotime.GoTime(time.time_ns(), 0)
    meta = {**rec.meta, "endpoint": endpoint}
    mirrored = dataclasses.replace(rec, renewed_at=now, ttl_ns=int(ttl * 1e9), meta=meta)
    os.makedirs(dst_root, exist_ok=True)
    with open(liblease.lease_path(dst_root), "wb") as f:
        f.write(liblease.encode_record(mirrored))
    os.chmod(liblease.lease_path(dst_root), 0o600)
