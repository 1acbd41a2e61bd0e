"""Sessions against the in-process simulator: the session calls, ``async with``, decode as an
async iterator with typed errors, and the binding to the owner epoch it was opened on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from connector_testlib import CallSpy

import modeldconn as mc
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn.wire import errors

from google.rpc import error_details_pb2, status_pb2  # noqa: F401  # isort: skip

ROOT = "/data"
MODEL = "/models/tiny.gguf"
REF = mc.ModelRef("tiny", "llama", path=MODEL)
CFG = mc.Config(num_ctx=128)


@pytest.fixture
def root(fs: Any) -> Iterator[str]:
    fs.create_dir(ROOT)
    fs.create_dir("/models")
    write_fake_gguf(MODEL, context_length=256)
    yield ROOT


@pytest.fixture
async def sim(root: str) -> AsyncIterator[Simulator]:
    async with Simulator(data_root=root, backend="llama", stop_grace=0.2) as s:
        yield s


@pytest.fixture
async def connector(root: str) -> AsyncIterator[mc.Connector]:
    c = mc.Connector(root)
    yield c
    await c.aclose()


async def test_a_session_walk(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await connector.open_session(REF, CFG) as s:
        spy = CallSpy(monkeypatch)
        p1 = await s.ensure_prefix("hello world")
        assert p1.reused_tokens == 0 and p1.prefilled_tokens == p1.prefix_tokens > 0
        assert p1.resident_tokens == p1.prefix_tokens and p1.available_tokens == 128 - p1.resident_tokens
        p2 = await s.ensure_prefix(mc.PrefixInput("hello world"))
        assert p2.reused_tokens == p1.prefix_tokens and p2.prefilled_tokens == 0
        sfx = await s.prefill_suffix(" again")
        assert sfx.resident_tokens == p1.prefix_tokens + sfx.suffix_tokens
        chunks = [c async for c in s.decode(mc.DecodeConfig(max_tokens=8))]
        assert len(chunks) == 8 and all(isinstance(c, mc.Chunk) and c.text for c in chunks)
        rep = await s.explain_context()
        assert rep.resident_tokens == sfx.resident_tokens + 8 and not rep.closed
        snap = await s.snapshot()
        assert snap.resident_tokens == rep.resident_tokens and snap.state_id
        await s.ensure_prefix("other text entirely")
        await s.restore(snap)
        assert (await s.explain_context()).resident_tokens == snap.resident_tokens
        # session calls do not probe, and carry the handle only
        assert "Health" not in spy.methods()
        ensure = spy.calls[0][1]
        assert ensure == {
            "handle": s.handle,
            "prefix": {
                "Text": "hello world",
                "Manifest": {
                    "backend": "",
                    "prompt_format": "",
                    "prompt_template_digest": "",
                    "runtime_digest": "",
                    "add_bos": False,
                    "stable_bytes": 0,
                    "total_bytes": 0,
                    "stable_byte_hash": "",
                },
            },
        }
    assert s.closed
    with pytest.raises(errors.SessionClosed) as ei:
        await s.ensure_prefix("x")
    assert str(ei.value) == "session is closed: session is closed"  # as the Go connector says it
    await s.close()  # idempotent


async def test_decode_helpers_and_overflow(sim: Simulator, connector: mc.Connector) -> None:
    s = await connector.open_session(REF, mc.Config(num_ctx=32))
    try:
        await s.ensure_prefix("abc")
        assert len(await s.decode(mc.DecodeConfig(max_tokens=3)).text()) >= 1
        with pytest.raises(errors.ContextOverflow) as ei:
            await s.ensure_prefix("x" * 400)
        assert ei.value.stage == "prefix" and ei.value.num_ctx == 32
    finally:
        await s.close()


async def test_decode_rejected_by_the_daemon_raises_at_the_first_step(
    sim: Simulator, connector: mc.Connector
) -> None:
    s = await connector.open_session(REF, CFG)
    await s.close()
    stream = s.decode(mc.DecodeConfig(max_tokens=3))
    with pytest.raises(errors.SessionClosed):
        await stream.__anext__()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_leaving_decode_early_frees_the_slot(sim: Simulator, connector: mc.Connector) -> None:
    async with await connector.open_session(REF, CFG) as s:
        await s.ensure_prefix("hello")
        t0 = time.monotonic()
        async with s.decode(mc.DecodeConfig(max_tokens=100000)) as stream:
            async for _ in stream:
                break
        # the daemon's operation lock is free again: the next call is answered
        await s.explain_context(timeout=5)
        assert time.monotonic() - t0 < 5


async def test_an_exception_inside_async_with_is_not_masked(sim: Simulator, connector: mc.Connector) -> None:
    with pytest.raises(KeyError):
        async with await connector.open_session(REF, CFG) as s:
            raise KeyError("mine")
    # it was closed anyway: the slot takes a new handle
    async with await connector.open_session(REF, CFG) as s2:
        assert s2.handle != s.handle


async def test_a_session_does_not_follow_a_takeover(root: str, connector: mc.Connector) -> None:
    a = Simulator(data_root=root, backend="llama", stop_grace=0.2)
    await a.start()
    port = int(a.endpoint.rsplit(":", 1)[1])
    s = await connector.open_session(REF, CFG)
    assert s.endpoint == a.endpoint and s.instance_id == a.instance_id
    await a.stop()
    b = Simulator(data_root=root, backend="llama", port=port, stop_grace=0.2)
    await b.start()
    try:
        # the same endpoint, a new owner: the daemon refuses the old fence
        with pytest.raises(errors.StaleFence):
            await s.ensure_prefix("hello")
        with pytest.raises(errors.StaleFence):
            await s.decode().__anext__()
        # once the connector noticed the takeover its connection is closed: SessionClosed locally
        await connector.status()
        with pytest.raises(errors.SessionClosed):
            await s.snapshot()
        with pytest.raises(errors.SessionClosed):
            await s.decode().__anext__()
        assert s.closed
    finally:
        await b.stop()


async def test_the_connection_that_opened_the_session_ending_closes_it(
    sim: Simulator, connector: mc.Connector
) -> None:
    s = await connector.open_session(REF, CFG)
    await connector.aclose()
    with pytest.raises(errors.SessionClosed):
        await s.ensure_prefix("x")
    # the daemon released the slot with the connection: a new session opens
    async with await connector.open_session(REF, CFG):
        pass


async def test_an_empty_handle_is_refused() -> None:
    class FakeConn:
        closed = False
        endpoint = "x:1"
        owner = "o"

    with pytest.raises(errors.DecodeError):
        mc.Session(FakeConn(), "")  # type: ignore[arg-type]
