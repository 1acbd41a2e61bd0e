"""The raw h2 gRPC server against a toy handler table, driven by the raw client and by grpclib."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpclib.client
import grpclib.const
import grpclib.exceptions
import h2.config
import h2.connection
import pytest
from grpclib.encoding.base import CodecBase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from modeld_contract.h2client import RawGrpcClient, frame_message

from modeld_sim.transport import (
    GrpcServer,
    GrpcStatus,
    ServerCall,
    decode_grpc_message,
    encode_grpc_message,
    parse_grpc_timeout,
)

SVC = "test.v1.Toy"
CT = "application/grpc+contenoxtransportjson"
UNMARSHAL = "grpc: error unmarshalling request: failed to unmarshal, message is *grpc.req, want proto.Message"


class Recorder:
    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.closed: list[int] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()


async def until(cond: Any, timeout: float = 5.0) -> None:
    """Wait for a condition the server reaches on its own (polling with a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached within the deadline")
        await asyncio.sleep(0.002)


def make_services(rec: Recorder) -> dict[str, Any]:
    async def echo(call: ServerCall, payload: bytes) -> bytes:
        if not call.codec_ok:
            raise GrpcStatus(13, UNMARSHAL)
        if payload == b"":
            raise GrpcStatus(13, "grpc: error unmarshalling request: unexpected end of JSON input")
        return payload

    async def meta(call: ServerCall, payload: bytes) -> bytes:
        return json.dumps(
            {
                "fence": call.metadata("x-contenox-owner-instance"),
                "conn": call.conn_id,
                "deadline": call.deadline is not None,
                "ct": call.content_type,
            }
        ).encode()

    async def stream(call: ServerCall, payload: bytes) -> None:
        n = json.loads(payload)["n"]
        for i in range(n):
            await call.send(json.dumps({"i": i}).encode())

    async def stream_fail(call: ServerCall, payload: bytes) -> None:
        await call.send(b"{}")
        raise GrpcStatus(9, "session_closed: session is closed")

    async def collect(call: ServerCall) -> bytes:
        total, count = 0, 0
        async for m in call:
            total += len(m)
            count += 1
        if count == 0:
            raise GrpcStatus(2, "EOF")
        return json.dumps({"count": count, "bytes": total}).encode()

    async def sleep(call: ServerCall, payload: bytes) -> bytes:
        rec.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            rec.cancelled.append(call.method)
            raise
        return b"{}"

    async def gate(call: ServerCall, payload: bytes) -> bytes:
        rec.started.set()
        await rec.gate.wait()
        return b"{}"

    async def boom(call: ServerCall, payload: bytes) -> bytes:
        raise ValueError("kaboom")

    async def fail(call: ServerCall, payload: bytes) -> bytes:
        raise GrpcStatus(8, "context_overflow: ü 100% \n", b"\x08\x08\x12\x01x")

    async def big(call: ServerCall, payload: bytes) -> bytes:
        return b'"' + b"a" * (int(payload) - 2) + b'"'

    return {
        SVC: {
            "Echo": ("unary", echo),
            "Meta": ("unary", meta),
            "Stream": ("server_stream", stream),
            "StreamFail": ("server_stream", stream_fail),
            "Collect": ("client_stream", collect),
            "Sleep": ("unary", sleep),
            "Gate": ("unary", gate),
            "Boom": ("unary", boom),
            "Fail": ("unary", fail),
            "Big": ("unary", big),
        }
    }


@pytest.fixture
async def env() -> AsyncIterator[tuple[GrpcServer, RawGrpcClient, Recorder]]:
    rec = Recorder()
    server = GrpcServer(make_services(rec), on_connection_closed=rec.closed.append)
    await server.start()
    client = RawGrpcClient("127.0.0.1", server.port)
    try:
        yield server, client, rec
    finally:
        await client.aclose()
        await server.close(grace=1.0)


def p(m: str) -> str:
    return f"/{SVC}/{m}"


async def test_unary_ok(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b'{"a":1}'])
    assert (r.http_status, r.content_type, r.code, r.message) == (200, CT, 0, "")
    assert r.messages == [b'{"a":1}']
    assert r.trailers == [("grpc-status", "0"), ("grpc-message", "")]
    assert r.data_frames == 1


async def test_unary_two_messages_second_ignored(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b"{}", b"[1]"])
    assert (r.code, r.messages) == (0, [b"{}"])


async def test_unary_no_message_is_unknown_eof(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [])
    assert (r.code, r.message, r.trailers_only) == (2, "EOF", True)
    r = await c.call(p("Echo"), None)  # HEADERS ending the stream: same answer, no hang
    assert (r.code, r.message) == (2, "EOF")


async def test_zero_byte_message_reaches_handler(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b""])
    assert (r.code, r.message) == (13, "grpc: error unmarshalling request: unexpected end of JSON input")


@pytest.mark.parametrize(
    "ct",
    [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc+contenoxtransportjson; charset=utf-8",
    ],
)
async def test_foreign_grpc_content_type_reaches_handler_and_is_echoed(env: Any, ct: str) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b"{}"], content_type=ct)
    assert (r.http_status, r.code, r.message, r.content_type) == (200, 13, UNMARSHAL, ct)


async def test_semicolon_subtype_reply_content_type_like_grpc_go(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b"{}"], content_type="application/grpc;x=y")
    assert (r.code, r.content_type) == (13, "application/grpc+x=y")


async def test_uppercase_subtype_is_a_foreign_codec(env: Any) -> None:
    # Checked against the real grpc-go server (tests/go): the codec name is matched as sent.
    _, c, _ = env
    r = await c.call(p("Echo"), [b"{}"], content_type="application/grpc+CONTENOXTRANSPORTJSON")
    assert (r.code, r.message, r.content_type) == (13, UNMARSHAL, "application/grpc+CONTENOXTRANSPORTJSON")


@pytest.mark.parametrize(
    "ct,shown", [(None, ""), ("text/plain", "text/plain"), ("application/grpcx", "application/grpcx")]
)
async def test_non_grpc_content_type_is_415(env: Any, ct: str | None, shown: str) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), [b"{}"], content_type=ct)
    assert (r.http_status, r.content_type, r.code) == (415, "application/grpc", 3)
    assert r.message == f'invalid gRPC request content-type "{shown}"'
    assert r.trailers_only


async def test_accept_plain_grpc_option() -> None:
    rec = Recorder()
    async with GrpcServer(make_services(rec), accept_plain_grpc=True) as server:
        c = RawGrpcClient("127.0.0.1", server.port)
        r = await c.call(p("Echo"), [b"{}"], content_type="application/grpc")
        assert (r.code, r.messages, r.content_type) == (0, [b"{}"], "application/grpc")


async def test_unknown_service_method_and_malformed_path(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Nope"), [b"{}"])
    assert (r.code, r.message) == (12, f"unknown method Nope for service {SVC}")
    r = await c.call("/test.v2.Toy/Echo", [b"{}"])
    assert (r.code, r.message) == (12, "unknown service test.v2.Toy")
    r = await c.call("/nodelimiter", [b"{}"])
    assert (r.code, r.message) == (12, 'malformed method name: "/nodelimiter"')


async def test_server_stream(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Stream"), [b'{"n":3}'])
    assert r.code == 0
    assert [json.loads(m) for m in r.messages] == [{"i": 0}, {"i": 1}, {"i": 2}]
    r = await c.call(p("Stream"), [])
    assert (r.code, r.message) == (
        13,
        "cardinality violation: received no request message from non-client-streaming RPC",
    )
    r = await c.call(p("StreamFail"), [b"{}"])
    assert (r.code, r.message) == (9, "session_closed: session is closed")
    assert (r.messages, r.trailers_only) == ([b"{}"], False)


async def test_client_stream(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Collect"), [b"a", b"bb", b"ccc"])
    assert (r.code, json.loads(r.messages[0])) == (0, {"count": 3, "bytes": 6})
    r = await c.call(p("Collect"), [])
    assert (r.code, r.message) == (2, "EOF")


async def test_client_stream_16mib(env: Any) -> None:
    _, c, _ = env
    chunk = b"x" * (4 << 20)
    r = await c.call(p("Collect"), [chunk] * 4, timeout=60)
    assert (r.code, json.loads(r.messages[0])) == (0, {"count": 4, "bytes": 16 << 20})


async def test_big_reply_respects_peer_window(env: Any) -> None:
    # the grpclib client advertises ordinary windows: the server must wait for WINDOW_UPDATEs
    server, _, _ = env
    async with grpclib.client.Channel("127.0.0.1", server.port, codec=BytesCodec()) as ch:
        reply = await uu(ch, "Big")(str(8 << 20).encode())
        assert len(reply) == 8 << 20


async def test_framing_errors(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Echo"), None, raw_data=frame_message(b"{}", flag=1))
    assert (r.code, r.message) == (13, "grpc: compressed flag set with identity or empty encoding")
    r = await c.call(p("Echo"), None, raw_data=frame_message(b"{}", flag=7))
    assert (r.code, r.message) == (13, "grpc: received unexpected payload format 7")
    r = await c.call(p("Echo"), None, raw_data=b"\x00\x00\x00\x00\x09{}")
    assert (r.code, r.message) == (2, "unexpected EOF")
    r = await c.call(p("Echo"), [b"{}"], metadata=[("grpc-encoding", "gzip")])
    assert (r.code, r.message) == (12, 'grpc: Decompressor is not installed for grpc-encoding "gzip"')


async def test_oversize_message() -> None:
    async with GrpcServer(make_services(Recorder()), max_receive_message_size=10) as server:
        c = RawGrpcClient("127.0.0.1", server.port)
        r = await c.call(p("Echo"), [b"x" * 11])
        assert (r.code, r.message) == (8, "grpc: received message larger than max (11 vs. 10)")
        # header alone suffices: the server answers before the body arrives
        r = await c.call(p("Echo"), None, raw_data=b"\x00\x20\x00\x00\x00")
        assert (r.code, r.message) == (8, f"grpc: received message larger than max ({0x20000000} vs. 10)")


async def test_metadata_duplicates_and_connection_ids(env: Any) -> None:
    _, c, _ = env
    md = [("x-contenox-owner-instance", "a"), ("x-contenox-owner-instance", "b")]
    r1 = await c.call(p("Meta"), [b"{}"], metadata=md, connection="s1")
    r2 = await c.call(p("Meta"), [b"{}"], connection="s1")
    r3 = await c.call(p("Meta"), [b"{}"])
    a, b, d = (json.loads(r.messages[0]) for r in (r1, r2, r3))
    assert a["fence"] == ["a", "b"] and b["fence"] == []
    assert a["conn"] == b["conn"] != d["conn"]
    assert a["ct"] == CT


async def test_status_encoding_and_details(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Fail"), [b"{}"])
    assert (r.code, r.message, r.details) == (8, "context_overflow: ü 100% \n", b"\x08\x08\x12\x01x")
    raw = dict(r.headers)
    assert raw["grpc-message"] == "context_overflow: %C3%BC 100%25 %0A"
    assert raw["grpc-status-details-bin"] == "CAgSAXg"  # unpadded base64


async def test_handler_exception_is_internal_and_server_survives(env: Any) -> None:
    _, c, _ = env
    r = await c.call(p("Boom"), [b"{}"])
    assert (r.code, r.message) == (13, "internal: handler Boom panicked: kaboom")
    assert (await c.call(p("Echo"), [b"{}"])).code == 0


async def test_deadline_resets_stream_and_cancels_handler(env: Any) -> None:
    _, c, rec = env
    r = await c.call(p("Sleep"), [b"{}"], metadata=[("grpc-timeout", "100m")])
    assert r.code is None and r.reset_code == 8  # grpc-go: RST_STREAM(CANCEL), no status
    await until(lambda: rec.cancelled)
    assert rec.cancelled == ["Sleep"]
    r = await c.call(p("Sleep"), [b"{}"], metadata=[("grpc-timeout", "0n")])
    assert (r.code, r.message) == (4, "context deadline exceeded")
    r = await c.call(p("Echo"), [b"{}"], metadata=[("grpc-timeout", "1x")])
    assert (r.http_status, r.code) == (400, 13)
    assert r.message == 'malformed grpc-timeout: transport: timeout unit is not recognized: "1x"'


async def test_deadline_status_option() -> None:
    rec = Recorder()
    async with GrpcServer(make_services(rec), deadline_status=True) as server:
        c = RawGrpcClient("127.0.0.1", server.port)
        r = await c.call(p("Sleep"), [b"{}"], metadata=[("grpc-timeout", "50m")])
        assert (r.code, r.message) == (4, "context deadline exceeded")


async def test_client_reset_cancels_handler(env: Any) -> None:
    _, c, rec = env
    r = await c.call(p("Sleep"), [b"{}"], timeout=0.2)  # the client resets on its timeout
    assert r.timed_out
    await until(lambda: rec.cancelled)
    assert rec.cancelled == ["Sleep"]


async def test_connection_closed_callback(env: Any) -> None:
    server, c, rec = env
    await c.call(p("Echo"), [b"{}"], connection="s1")
    ids = list(server.connections)
    assert len(ids) == 1
    await c.close_connection("s1")
    await until(lambda: rec.closed)
    assert rec.closed == ids
    assert server.connections == {}


async def test_abort_all_connections_and_graceful_close() -> None:
    rec = Recorder()
    server = GrpcServer(make_services(rec), on_connection_closed=rec.closed.append)
    await server.start()
    c = RawGrpcClient("127.0.0.1", server.port)
    await c.call(p("Echo"), [b"{}"], connection="a")
    server.abort_all_connections()
    await until(lambda: rec.closed)
    assert len(rec.closed) == 1
    # graceful close lets an in-flight call finish: the call is held in its handler while close starts
    task = asyncio.create_task(c.call(p("Gate"), [b"{}"], connection="b"))
    await rec.started.wait()
    closing = asyncio.create_task(server.close(grace=5.0))
    await until(lambda: server._closing)
    assert not task.done()
    rec.gate.set()
    r = await task
    await closing
    assert r.code == 0
    await c.aclose()


def test_message_codec_helpers() -> None:
    assert encode_grpc_message("plain") == "plain"
    assert encode_grpc_message("a%b\tü") == "a%25b%09%C3%BC"
    assert decode_grpc_message("a%25b%09%C3%BC") == "a%b\tü"
    assert decode_grpc_message("100%") == "100%"
    assert parse_grpc_timeout("5S") == 5.0 and parse_grpc_timeout("250m") == 0.25
    with pytest.raises(ValueError):
        parse_grpc_timeout("123456789S")


# --- grpclib as the client --------------------------------------------------------------------


def uu(ch: grpclib.client.Channel, m: str) -> grpclib.client.UnaryUnaryMethod[bytes, bytes]:
    return grpclib.client.UnaryUnaryMethod(ch, p(m), bytes, bytes)


class BytesCodec(CodecBase):
    __content_subtype__ = "contenoxtransportjson"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data


async def test_grpclib_client_all_kinds(env: Any) -> None:
    server, _, _ = env
    async with grpclib.client.Channel("127.0.0.1", server.port, codec=BytesCodec()) as ch:
        unary = uu(ch, "Echo")
        assert await unary(b'{"x":1}') == b'{"x":1}'
        assert await unary(b"{}", timeout=5) == b"{}"
        async with grpclib.client.UnaryStreamMethod(ch, p("Stream"), bytes, bytes).open() as st:
            await st.send_message(b'{"n":4}', end=True)
            got = [m async for m in st]
        assert len(got) == 4
        async with grpclib.client.StreamUnaryMethod(ch, p("Collect"), bytes, bytes).open() as st:
            for _ in range(3):
                await st.send_message(b"abc")
            await st.end()
            assert json.loads(await st.recv_message()) == {"count": 3, "bytes": 9}
        with pytest.raises(grpclib.exceptions.GRPCError) as ei:
            await uu(ch, "StreamFail")(b"{}")
        with pytest.raises(grpclib.exceptions.GRPCError) as ei:
            await uu(ch, "Nope")(b"{}")
        assert ei.value.status.value == 12
        assert ei.value.message == f"unknown method Nope for service {SVC}"
        with pytest.raises(grpclib.exceptions.GRPCError) as ei:
            await uu(ch, "Fail")(b"{}")
        assert ei.value.message == "context_overflow: ü 100% \n"
        # grpclib's own timer races the server's RST_STREAM(CANCEL) (what grpc-go sends on expiry)
        # (or grpclib's own client-side TimeoutError when its timer fires first under load)
        with pytest.raises(
            (grpclib.exceptions.GRPCError, grpclib.exceptions.StreamTerminatedError, TimeoutError)
        ) as ej:
            await uu(ch, "Sleep")(b"{}", timeout=0.1)
        if isinstance(ej.value, grpclib.exceptions.GRPCError):
            assert ej.value.status == grpclib.const.Status.DEADLINE_EXCEEDED


async def test_grpclib_many_concurrent_calls(env: Any) -> None:
    server, _, _ = env
    async with grpclib.client.Channel("127.0.0.1", server.port, codec=BytesCodec()) as ch:
        unary = uu(ch, "Echo")
        res = await asyncio.gather(*(unary(json.dumps({"i": i}).encode()) for i in range(200)))
        assert [json.loads(r)["i"] for r in res] == list(range(200))


# --- fuzz: garbage never takes the server down ------------------------------------------------


def _h2_preface_and_headers(path: str) -> bytes:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "x"),
            ("content-type", CT),
        ],
    )
    return conn.data_to_send()


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=hs.sampled_from(["raw", "preface", "after_headers"]),
    garbage=hs.lists(hs.binary(max_size=200), max_size=5),
)
def test_fuzz_server_survives_garbage(mode: str, garbage: list[bytes]) -> None:
    async def run() -> None:
        async with GrpcServer(make_services(Recorder())) as server:
            loop = asyncio.get_running_loop()
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setblocking(False)
            try:
                if mode == "preface":
                    await loop.sock_sendall(s, _PREFACE)
                elif mode == "after_headers":
                    await loop.sock_sendall(s, _h2_preface_and_headers(p("Echo")))
                for g in garbage:
                    await loop.sock_sendall(s, g)
                await asyncio.sleep(0.01)
            except OSError:
                pass
            finally:
                s.close()
            async with RawGrpcClient("127.0.0.1", server.port) as c:
                r = await c.call(p("Echo"), [b"{}"], timeout=5)
                assert (r.code, r.messages) == (0, [b"{}"])

    asyncio.run(run())


async def test_listening_before_serving_queues_early_dialers() -> None:
    """`start(serve=False)` is Go's net.Listen before Serve: a client dialing in between is not
    refused (the TCP handshake completes from the backlog); calls are answered once serving begins."""
    rec = Recorder()
    server = GrpcServer(make_services(rec))
    await server.start(serve=False)
    try:
        _, early = await asyncio.open_connection("127.0.0.1", server.port)  # refused if not listening
        await server.begin_serving()
        c = RawGrpcClient("127.0.0.1", server.port)
        r = await c.call(p("Echo"), [b"{}"], timeout=5)
        assert (r.code, r.messages) == (0, [b"{}"])
        await c.aclose()
        early.close()
    finally:
        await server.close(grace=0)


async def test_accepted_connections_send_small_frames_at_once(env: Any) -> None:
    """Nagle's algorithm is off on every accepted socket: a stream's last frames are not held back
    waiting for the client's delayed ACK (asyncio leaves TCP_NODELAY off on accepted sockets)."""
    import socket

    server, c, _ = env
    await c.connection("kept open")
    await until(lambda: server.connections)
    for conn in server.connections.values():
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
