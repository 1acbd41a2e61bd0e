"""modeld_sim.faults: rule checking, selectors, and every action against a running simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import modeldconn as mc
from modeld_sim.cluster import Cluster
from modeld_sim.faults import FaultRuleError, FaultSet, parse_rule, sentinel_error
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.transcript import Transcript
from modeldconn import transport as t
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


# --- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"action": "explode"}, "action"),
        ({}, "action"),
        ({"action": "error"}, "token"),
        ({"action": "error", "token": "stale"}, "token"),
        ({"action": "error", "token": "stale_fence", "colour": 1}, "colour"),
        ({"action": "error", "token": "stale_fence", "method": "Nope"}, "method"),
        ({"action": "status", "code": "Sideways"}, "code"),
        ({"action": "status", "code": 0}, "code"),
        ({"action": "delay"}, "delay"),
        ({"action": "delay", "delay": "5 parsecs"}, "delay"),
        ({"action": "delay", "delay": 10, "nth": 0}, "nth"),
        ({"action": "delay", "delay": 10, "probability": 1.5}, "probability"),
        ({"action": "decode", "method": "Health"}, "method"),
        ({"action": "decode", "then": "explode"}, "then"),
        ({"action": "decode", "then": "error"}, "token"),
        ({"action": "health"}, ""),
        ({"action": "health", "ready": "no"}, "ready"),
        ({"action": "hang", "token": "stale_fence"}, "token"),
    ],
)
def test_bad_rules_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(FaultRuleError) as ei:
        parse_rule(spec, default_id="r1")
    assert ei.value.field == field
    if field:
        assert repr(field) in str(ei.value)


def test_sentinel_errors_are_the_daemons() -> None:
    for row in werr.SENTINELS:
        code, message, _ = werr.status_for(sentinel_error(row.token))
        assert code == row.code
        assert message == f"{row.token}: {row.text}"
    code, message, _ = werr.status_for(sentinel_error("model_busy", "busy now"))
    assert message == "model_busy: modeld active model slot is busy: busy now"


def _fire(spec: dict[str, object], n: int) -> list[int]:
    rule = parse_rule({"action": "delay", "delay": 0, **spec}, default_id="r")
    return [i for i in range(1, n + 1) if rule.select()]


def test_selectors() -> None:
    assert _fire({"nth": 3}, 10) == [3]
    assert _fire({"every": 3}, 10) == [3, 6, 9]
    assert _fire({"first": 2}, 10) == [1, 2]
    assert _fire({"every": 2, "first": 5}, 10) == [2, 4]
    a = _fire({"probability": 0.5, "seed": 7}, 200)
    assert a == _fire({"probability": 0.5, "seed": 7}, 200)  # reproducible
    assert 60 < len(a) < 140
    assert _fire({"probability": 0.0, "seed": 1}, 50) == []


def test_method_model_handle_matching() -> None:
    rule = parse_rule({"action": "delay", "delay": 1, "method": ["Status", "Embed"]})
    assert rule.matches("Status", None, None) and not rule.matches("Health", None, None)
    r2 = parse_rule({"action": "delay", "delay": 1, "model": "tiny", "handle": "abc/*"})
    assert r2.matches("Decode", "tiny", "abc/1/2")
    assert not r2.matches("Decode", "other", "abc/1/2")
    assert not r2.matches("Decode", "tiny", "xyz/1/2")


def test_set_add_remove_ids() -> None:
    fs = FaultSet()
    a = fs.add({"action": "delay", "delay": 1})
    b = fs.add({"action": "delay", "delay": 1, "id": "slow"})
    assert (a.id, b.id) == ("r1", "slow")
    assert [r["id"] for r in fs.describe()] == ["r1", "slow"]
    assert fs.remove("r1") and not fs.remove("r1")
    assert fs.clear() == 1 and fs.rules() == []


# --- against a running simulator --------------------------------------------------------------------


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Cluster, mc.ModelRef]]:
    root = tmp_path / "root"
    root.mkdir()
    model = tmp_path / "tiny.gguf"
    write_fake_gguf(str(model), context_length=256)
    c = Cluster(root, 1, ttl=2.0, transcript=Transcript(), stop_grace=0.2)
    await c.start()
    try:
        yield c, mc.ModelRef("tiny", "llama", path=str(model))
    finally:
        await c.stop()


def _conn(c: Cluster) -> t.Connection:
    lead = c.node(None)
    return t.Connection(lead.endpoint, lead.instance_id)


async def _open(conn: t.Connection, ref: mc.ModelRef) -> str:
    req = ref.open_request(conn.owner, mc.Config(num_ctx=128))
    resp = await conn.unary("OpenSession", req, pb.OpenSessionResp, timeout=5)
    return str(resp.handle)


async def _prefix(conn: t.Connection, handle: str) -> None:
    req = pb.EnsurePrefixReq(handle=handle, prefix=pb.PrefixInput(Text="hello world"))
    await conn.unary("EnsurePrefix", req, pb.PrefixStatus, timeout=5)


async def _decode(conn: t.Connection, handle: str, n: int = 8, timeout: float = 5) -> list[pb.WireChunk]:
    req = pb.DecodeReq(handle=handle, config=pb.DecodeConfig(MaxTokens=n))
    out: list[pb.WireChunk] = []
    async with conn.server_stream("Decode", req, pb.WireChunk, timeout=timeout) as stream:
        async for chunk in stream:
            out.append(chunk)
    return out


async def test_sentinel_error_and_status(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, ref = env
    conn = _conn(c)
    try:
        c.faults.add({"method": "OpenSession", "action": "error", "token": "model_busy", "nth": 2})
        handle = await _open(conn, ref)
        await conn.unary("CloseSession", pb.CloseReq(handle=handle), pb.CloseResp, timeout=5)
        with pytest.raises(werr.ModelBusy) as ei:
            await _open(conn, ref)
        assert ei.value.server_message == "model_busy: modeld active model slot is busy"
        await _open(conn, ref)  # third call: the rule no longer fires
        c.faults.clear()
        c.faults.add(
            {"method": "Status", "action": "status", "code": "Unavailable", "message": "gone fishing"}
        )
        with pytest.raises(werr.TransportError) as te:
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=5)
        assert (te.value.code, te.value.message) == (14, "gone fishing")
        rec = c.transcript.calls("Status")[-1] if c.transcript else {}
        assert rec["code"] == 14 and rec["faults"] == ["r2:status"]
    finally:
        conn.close()


async def test_delay_hang_close_reset(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, _ = env
    conn = _conn(c)
    try:
        c.faults.add({"method": "Status", "action": "delay", "delay": "150ms", "first": 1})
        t0 = time.monotonic()
        await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=5)
        assert time.monotonic() - t0 >= 0.15
        c.faults.clear()
        c.faults.add({"method": "Status", "action": "hang", "first": 1})
        t0 = time.monotonic()
        with pytest.raises(werr.ModeldError):
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=0.3)
        assert 0.25 <= time.monotonic() - t0 < 3
        assert c.transcript is not None
        # the server's deadline timer and the client's own RST_STREAM race: either ends the hang
        await wait_for(
            lambda: (
                c.transcript is not None
                and c.transcript.calls("Status")[-1].get("outcome") in ("deadline", "cancelled")
            ),
            what="the hang in the transcript",
        )
        c.faults.clear()
        c.faults.add({"method": "Status", "action": "close_connection", "first": 1})
        with pytest.raises(werr.TransportError):
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=5)
        await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=5)  # reconnects
        c.faults.clear()
        c.faults.add({"method": "Status", "action": "reset_stream", "first": 1})
        with pytest.raises(werr.ModeldError):
            await conn.unary("Status", pb.StatusReq(), pb.DaemonStatus, timeout=5)
        outcomes = [e.get("outcome") for e in c.transcript.calls("Status")]
        assert "connection closed" in outcomes and "stream reset" in outcomes
    finally:
        conn.close()


async def test_decode_cut_and_in_stream_error(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, ref = env
    conn = _conn(c)
    try:
        handle = await _open(conn, ref)
        await _prefix(conn, handle)
        c.faults.add({"action": "decode", "after_chunks": 3, "then": "end", "first": 1})
        assert len(await _decode(conn, handle)) == 3
        c.faults.clear()
        c.faults.add(
            {"action": "decode", "after_chunks": 2, "then": "error", "token": "context_overflow", "first": 1}
        )
        chunks = await _decode(conn, handle)
        assert len(chunks) == 3
        assert chunks[-1].error == "exceeded the session context window"
        assert chunks[-1].error_token == "context_overflow"
        c.faults.clear()
        c.faults.add({"action": "decode", "after_chunks": 1, "then": "close_connection", "first": 1})
        with pytest.raises(werr.ModeldError):
            await _decode(conn, handle)
        # the session died with its connection
        with pytest.raises(werr.SessionClosed):
            await _prefix(conn, handle)
        assert len(await _decode(conn, await _open_prefixed(conn, ref))) == 8  # rule spent
    finally:
        conn.close()


async def _open_prefixed(conn: t.Connection, ref: mc.ModelRef) -> str:
    h = await _open(conn, ref)
    await _prefix(conn, h)
    return h


async def test_health_faults_and_live_changes(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, _ = env
    conn = _conn(c)
    try:
        ok = await conn.health(5)
        assert ok.ready and ok.instance_id == conn.owner
        c.faults.add({"action": "health", "ready": False, "id": "nr"})
        assert not (await conn.health(5)).ready
        c.faults.remove("nr")
        c.faults.add({"action": "health", "instance_id": "someone-else", "backend": "openvino", "id": "w"})
        h = await conn.health(5)
        assert (h.instance_id, h.backend, h.ready) == ("someone-else", "openvino", True)
        c.faults.remove("w")
        c.faults.add({"action": "health", "delay": "120ms", "id": "slow"})
        t0 = time.monotonic()
        await conn.health(5)
        assert time.monotonic() - t0 >= 0.12
    finally:
        conn.close()


async def test_backend_mismatch_and_model_handle_selectors(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, ref = env
    conn = _conn(c)
    try:
        c.faults.add({"method": ["OpenSession", "Describe"], "action": "backend_mismatch", "model": "other"})
        other = mc.ModelRef("other", "llama", path=ref.path)
        with pytest.raises(werr.ModelLoadFailed) as ei:
            await _open(conn, other)
        assert str(ei.value.server_message).startswith(
            "model_load_failed: modeld failed to load model: model type not served by this modeld backend"
        )
        req = other.open_request(conn.owner, mc.Config(num_ctx=128))
        with pytest.raises(werr.BackendMismatch):
            await conn.unary("Describe", req, pb.DescribeResp, timeout=5)
        handle = await _open(conn, ref)  # "tiny" is not selected
        c.faults.clear()
        c.faults.add({"method": "EnsurePrefix", "action": "error", "token": "session_fatal", "model": "tiny"})
        with pytest.raises(werr.SessionFatal):  # the handle's model was learned from OpenSession
            await _prefix(conn, handle)
        c.faults.clear()
        c.faults.add(
            {"method": "EnsurePrefix", "action": "error", "token": "stale_fence", "handle": "nope/*"}
        )
        await _prefix(conn, handle)
    finally:
        conn.close()


async def test_wedge_gate(env: tuple[Cluster, mc.ModelRef]) -> None:
    c, _ = env
    node = c.node(None)
    assert node.injector is not None
    node.injector.wedge()
    conn = _conn(c)
    try:
        with pytest.raises(werr.ModeldError):
            await conn.health(0.3)
        node.injector.unwedge()
        assert (await conn.health(5)).ready
    finally:
        conn.close()
