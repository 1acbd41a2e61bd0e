"""The connector's wire client against a scripted HTTP/2 server: headers, deadlines, and every
kind of malformed answer becoming a typed error (never a hang, never a half-built object)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from connector_testlib import (
    CT,
    CloseConnection,
    Data,
    Hang,
    Headers,
    RawServer,
    Request,
    Reset,
    Sleep,
    Trailers,
    closed_port,
    frame,
    ok_headers,
    silent_listener,
    status_only,
    trailers,
    unary_ok,
)

from modeldconn import transport
from modeldconn.session import Session
from modeldconn.types import DecodeConfig
from modeldconn.wire import errors
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

MARGIN = 1.5  # seconds of slack on a deadline measured with time.monotonic


async def test_headers_fence_and_body_of_a_fenced_call() -> None:
    async with RawServer(lambda r: unary_ok({"owner_instance_id": "iid", "state": "Empty"})) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        out = await conn.unary("Status", pb.StatusReq(owner_instance_id="iid"), pb.DaemonStatus, timeout=5)
        conn.close()
    assert out.state == "Empty"
    (req,) = srv.requests
    assert req.headers[":path"] == "/contenox.transport.v1.Compute/Status"
    assert req.headers["content-type"] == CT
    assert req.headers["te"] == "trailers"
    assert "grpc-timeout" in req.headers
    assert [v for k, v in req.header_list if k == "x-contenox-owner-instance"] == ["iid"]
    assert req.body == frame(b'{"owner_instance_id":"iid"}')


async def test_health_is_sent_unfenced_with_an_empty_object() -> None:
    async with RawServer(
        lambda r: unary_ok({"instance_id": "iid", "ready": True, "backend": "llama"})
    ) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        h = await conn.health(2)
        conn.close()
    assert (h.instance_id, h.ready, h.backend) == ("iid", True, "llama")
    (req,) = srv.requests
    assert "x-contenox-owner-instance" not in req.headers
    assert req.body == frame(b"{}")


@pytest.mark.parametrize(
    ("actions", "error"),
    [
        pytest.param(unary_ok(b"\x00\xffnot json"), errors.DecodeError, id="garbage-bytes"),
        pytest.param(unary_ok(b'{"ready":"yes"}'), errors.DecodeError, id="wrong-type"),
        pytest.param(unary_ok(b'{"ready":true} trailing'), errors.DecodeError, id="trailing-garbage"),
        pytest.param(unary_ok(b""), errors.DecodeError, id="empty-payload"),
        pytest.param([Headers(ok_headers()), Trailers(trailers())], errors.DecodeError, id="no-message"),
        pytest.param(
            [
                Headers(ok_headers()),
                Data(frame({"ready": True}) + frame({"ready": True})),
                Trailers(trailers()),
            ],
            errors.DecodeError,
            id="two-messages",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"ready": True})[:8], end=True)],
            errors.DecodeError,
            id="truncated-frame",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"ready": True}), end=True)],
            errors.TransportError,
            id="no-trailers",
        ),
        pytest.param(
            [Headers(ok_headers("application/grpc+proto")), Data(frame({})), Trailers(trailers())],
            errors.TransportError,
            id="foreign-content-type",
        ),
        pytest.param(
            [Headers([(":status", "415"), ("content-type", CT)], end=True)], errors.TransportError, id="415"
        ),
        pytest.param([Headers(ok_headers()), Reset()], errors.TransportError, id="reset"),
        pytest.param([CloseConnection()], errors.TransportError, id="connection-closed"),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"ready": True}, flag=1)), Trailers(trailers())],
            errors.TransportError,
            id="compressed-flag",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({})), Trailers([("grpc-status", "nope")])],
            errors.TransportError,
            id="bad-grpc-status",
        ),
    ],
)
async def test_malformed_unary_answers_raise_typed_errors(actions: list[Any], error: type[Exception]) -> None:
    async with RawServer(lambda r: actions) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        t0 = time.monotonic()
        with pytest.raises(error):
            await conn.health(3)
        assert time.monotonic() - t0 < 3 + MARGIN
        conn.close()


async def test_status_errors_become_the_sentinel_classes() -> None:
    answers = {
        "Status": status_only(9, "stale_fence: stale owner fence token"),
        "LoadModel": status_only(
            13,
            "model_load_failed: modeld failed to load model: model type not served by "
            'this modeld backend: requested "openvino", this daemon serves llama',
        ),
        "UnloadModel": status_only(2, "something odd"),
    }
    async with RawServer(lambda r: answers[r.method]) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        with pytest.raises(errors.StaleFence) as e1:
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=3)
        assert str(e1.value) == "stale owner fence token: stale owner fence token"
        with pytest.raises(errors.ModelLoadFailed) as e2:
            await conn.unary("LoadModel", pb.LoadModelReq(), pb.ActiveModel, timeout=3)
        assert isinstance(e2.value, errors.BackendMismatch)
        with pytest.raises(errors.TransportError) as e3:
            await conn.unary("UnloadModel", pb.UnloadModelReq(), pb.UnloadModelResp, timeout=3)
        assert e3.value.code == 2
        conn.close()


async def test_context_overflow_details_survive() -> None:
    import base64

    from modeldconn.wire.errors import OverflowDetail, status_details_for_overflow

    msg = (
        "context_overflow: exceeded the session context window during prefix: resident_tokens=0 "
        "additional_tokens=300 num_ctx=128"
    )
    det = status_details_for_overflow(8, msg, OverflowDetail("prefix", 0, 300, 128))
    extra = [("grpc-status-details-bin", base64.b64encode(det).decode().rstrip("="))]
    async with RawServer(lambda r: status_only(8, msg, extra)) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        with pytest.raises(errors.ContextOverflow) as ei:
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=3)
        conn.close()
    assert (ei.value.stage, ei.value.additional_tokens, ei.value.num_ctx) == ("prefix", 300, 128)


async def test_a_silent_server_hits_the_deadline() -> None:
    async with RawServer(lambda r: [Hang()]) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        t0 = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=0.5)
        assert time.monotonic() - t0 < 0.5 + MARGIN
        conn.close()


async def test_a_stream_reset_at_the_deadline_is_deadline_exceeded() -> None:
    """grpc-go (and our simulator) answer an expired deadline with RST_STREAM(CANCEL), no status; that
    reset can reach the client just before its own timer fires. Either way: DeadlineExceeded."""
    from modeld_sim.transport import GrpcServer, ServerCall

    async def never(call: ServerCall, payload: bytes) -> bytes:
        await asyncio.Event().wait()  # the server's deadline timer ends this with a reset
        raise AssertionError("unreachable")

    server = GrpcServer({"contenox.transport.v1.Compute": {"Status": ("unary", never)}})
    await server.start()
    try:
        conn = transport.Connection(f"127.0.0.1:{server.port}", owner="iid")
        for _ in range(5):
            with pytest.raises(errors.DeadlineExceeded):
                await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=0.2)
        conn.close()
    finally:
        await server.close(grace=0)


def test_a_reset_is_read_against_the_deadline() -> None:
    """The race above decided deterministically: a reset at/after the deadline is DeadlineExceeded,
    a reset well before it is the daemon dropping the stream (Unavailable)."""
    from grpclib.exceptions import StreamTerminatedError

    now = time.monotonic()
    late = transport._map_exception(StreamTerminatedError("reset"), "Status", 0.2, now - 0.01)
    assert isinstance(late, errors.DeadlineExceeded)
    early = transport._map_exception(StreamTerminatedError("reset"), "Status", 10, now + 10)
    assert isinstance(early, errors.TransportError) and early.code == errors.GrpcCode.UNAVAILABLE


async def test_a_wedged_listener_fails_the_health_check_within_its_deadline() -> None:
    with silent_listener() as ep:
        t0 = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            await transport.health_check(ep, 0.5)
        assert time.monotonic() - t0 < 0.5 + MARGIN


async def test_a_closed_port_is_unavailable() -> None:
    with pytest.raises(errors.TransportError) as ei:
        await transport.health_check(closed_port(), 2)
    assert ei.value.code == errors.GrpcCode.UNAVAILABLE


async def test_a_closed_connection_fails_locally() -> None:
    async with RawServer(lambda r: unary_ok({"ready": True})) as srv:
        conn = transport.Connection(srv.endpoint)
        await conn.health(2)
        conn.close()
        conn.close()  # idempotent
        with pytest.raises(errors.TransportError):
            await conn.health(2)


async def test_oversize_messages_are_refused_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_MESSAGE_BYTES", 16)
    async with RawServer(lambda r: unary_ok({"instance_id": "x" * 40, "ready": True})) as srv:
        conn = transport.Connection(srv.endpoint)
        with pytest.raises(transport.MessageTooLarge):
            await conn.health(2)  # the answer is too large
        with pytest.raises(transport.MessageTooLarge):
            await conn.unary("Status", pb.StatusReq(owner_instance_id="y" * 40), pb.DaemonStatus, timeout=2)
        conn.close()


def test_split_endpoint() -> None:
    assert transport.split_endpoint("127.0.0.1:5") == ("127.0.0.1", 5)
    assert transport.split_endpoint("[::1]:9090") == ("::1", 9090)
    assert transport.split_endpoint(":80") == ("127.0.0.1", 80)
    for bad in ("nohost", "h:x", "h:0", "h:70000"):
        with pytest.raises(errors.TransportError):
            transport.split_endpoint(bad)


# ------------------------------------------------------------------------------------ Decode


def _decode_server(actions: list[Any]) -> RawServer:
    def respond(r: Request) -> list[Any]:
        if r.method == "Decode":
            return actions
        return unary_ok({})

    return RawServer(respond)


async def _decode_all(srv: RawServer, timeout: float = 3) -> list[str]:
    conn = transport.Connection(srv.endpoint, owner="iid")
    s = Session(conn, "iid/1/1")
    try:
        return [c.text async for c in s.decode(DecodeConfig(max_tokens=3), timeout=timeout)]
    finally:
        conn.close()


async def test_decode_streams_chunks_and_sends_the_go_request() -> None:
    body = frame({"text": "a"}) + frame({"text": "b", "thinking": "t"}) + frame({})
    async with _decode_server([Headers(ok_headers()), Data(body), Trailers(trailers())]) as srv:
        assert await _decode_all(srv) == ["a", "b", ""]
    (req,) = srv.requests
    assert req.messages() == [
        {
            "handle": "iid/1/1",
            "config": {
                "MaxTokens": 3,
                "Temperature": None,
                "TopP": None,
                "TopK": 0,
                "Seed": None,
                "ParserProtocols": None,
                "ReasoningFormat": "",
                "StructuredOutput": {"Protocol": "", "Payload": "", "ToolName": ""},
            },
        }
    ]
    assert req.headers["x-contenox-owner-instance"] == "iid"


async def test_decode_in_stream_error_chunk_raises_typed_after_its_text() -> None:
    err = {
        "text": "z",
        "error": "exceeded the session context window during decode: resident_tokens=3 "
        "additional_tokens=1 num_ctx=4",
        "error_token": "context_overflow",
        "error_detail": {"stage": "decode", "resident_tokens": 3, "additional_tokens": 1, "num_ctx": 4},
    }
    body = frame({"text": "a"}) + frame(err) + frame({"text": "never"})
    async with _decode_server([Headers(ok_headers()), Data(body), Trailers(trailers())]) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        got: list[str] = []
        with pytest.raises(errors.ContextOverflow) as ei:
            async for c in Session(conn, "iid/1/1").decode():
                got.append(c.text)
        conn.close()
    assert got == ["a", "z"]
    assert (ei.value.stage, ei.value.resident_tokens, ei.value.num_ctx) == ("decode", 3, 4)


async def test_decode_error_token_without_text_is_not_an_error_and_unknown_token_is_stream_error() -> None:
    body = frame({"text": "a", "error_token": "session_closed"}) + frame(
        {"error": "boom", "error_token": "nope"}
    )
    async with _decode_server([Headers(ok_headers()), Data(body), Trailers(trailers())]) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        got = []
        with pytest.raises(errors.StreamError, match="boom"):
            async for c in Session(conn, "iid/1/1").decode():
                got.append(c.text)
        conn.close()
    assert got == ["a"]


async def test_decode_rejection_by_status_raises_the_sentinel() -> None:
    async with _decode_server(status_only(9, "session_closed: session is closed")) as srv:
        with pytest.raises(errors.SessionClosed):
            await _decode_all(srv)


@pytest.mark.parametrize(
    ("actions", "error"),
    [
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"})), Sleep(0.2), Reset()],
            errors.TransportError,
            id="reset",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"})), Sleep(0.2), CloseConnection()],
            errors.TransportError,
            id="connection-lost",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"}) + frame({"text": 5}))],
            errors.DecodeError,
            id="wrong-type",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"}) + b"\x00\x00\x00\x10{", end=True)],
            errors.DecodeError,
            id="truncated",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"}), end=True)],
            errors.TransportError,
            id="ends-without-status",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"})), Trailers(trailers(13, "internal: x"))],
            errors.InternalError,
            id="error-status-after-chunks",
        ),
        pytest.param(
            [Headers(ok_headers()), Data(frame({"text": "a"})), Sleep(30)],
            errors.DeadlineExceeded,
            id="stalls",
        ),
    ],
)
async def test_decode_streams_ending_abnormally_raise_typed(
    actions: list[Any], error: type[Exception]
) -> None:
    async with _decode_server(actions) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        got = []
        t0 = time.monotonic()
        with pytest.raises(error):
            async for c in Session(conn, "iid/1/1").decode(timeout=1.0):
                got.append(c.text)
        assert time.monotonic() - t0 < 1.0 + MARGIN
        conn.close()
    assert got == ["a"]


async def test_leaving_a_decode_early_resets_the_stream() -> None:
    body = frame({"text": "a"})
    async with _decode_server([Headers(ok_headers()), Data(body), Hang()]) as srv:
        conn = transport.Connection(srv.endpoint, owner="iid")
        async with Session(conn, "iid/1/1").decode(timeout=5) as stream:
            async for _ in stream:
                break
        # the connection is still usable afterwards
        await conn.health(2)
        conn.close()


async def test_an_empty_handle_is_a_decode_error() -> None:
    async with RawServer(lambda r: unary_ok({"handle": ""})) as srv:
        from modeldconn.client import EndpointClient, Timeouts
        from modeldconn.types import Health, ModelRef

        conn = transport.Connection(srv.endpoint, owner="iid")
        ec = EndpointClient("b", srv.endpoint, conn, Health("iid", True, "llama"), Timeouts())
        with pytest.raises(errors.DecodeError):
            await ec.open_session(ModelRef("m", "llama"))
        conn.close()


async def test_many_concurrent_calls_share_one_connection() -> None:
    async with RawServer(lambda r: unary_ok({"instance_id": "iid", "ready": True})) as srv:
        conn = transport.Connection(srv.endpoint)
        res = await asyncio.gather(*(conn.health(3) for _ in range(20)))
        conn.close()
    assert all(r.ready for r in res)
    assert srv.connections == 1
