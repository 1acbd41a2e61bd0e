"""The connector's liveness watch: a daemon that freezes under a waiting call is Unreachable within
``liveness_interval + liveness_timeout`` (2 s + 3 s by default), while a long healthy call runs to its end.

The wedge is made two ways: a SIGSTOPped ``modeld-sim serve`` process (nothing answers, not even
TCP-level resets) and the in-process simulator's wedge gate (every call held, Health included, while
HTTP/2 itself still answers - the case an HTTP/2 PING would miss). Against the real daemon:
``tests/real/test_real_liveness.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from connector_testlib import ServeProcess

import modeldconn as mc
from modeld_sim.faults import FaultInjector, FaultSet
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn import transport

TINY = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "corpus", "modeld-v0.36.0", "tiny-llama-ctx256.gguf")
)
CFG = mc.Config(num_ctx=128)
#: the documented defaults: a wedge is reported within 5 s (the issue's acceptance adds 20 %)
WEDGE_BOUND_S = (transport.DEFAULT_LIVENESS_INTERVAL + transport.DEFAULT_LIVENESS_TIMEOUT) * 1.2
#: small values for the in-process tests
FAST = mc.Timeouts(liveness_interval=0.2, liveness_timeout=0.5)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    p = ServeProcess(str(tmp_path / "root"), "--ttl", "60s")
    try:
        await p.wait_ready()
        yield p
    finally:
        p.stop()


class Sim:
    def __init__(self, sim: Simulator, faults: FaultSet, gate: FaultInjector, ref: mc.ModelRef) -> None:
        self.sim, self.faults, self.gate, self.ref = sim, faults, gate, ref


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[Sim]:
    sim = Simulator(str(tmp_path / "data"))
    faults = FaultSet()
    gate = FaultInjector(faults, instance=lambda: sim.instance_id)
    sim.hooks = gate
    await sim.start()
    ref = mc.ModelRef("m", "llama", path=write_fake_gguf(tmp_path / "m.gguf"))
    try:
        yield Sim(sim, faults, gate, ref)
    finally:
        gate.unwedge()
        await sim.stop()


@pytest.mark.slow
async def test_session_calls_on_a_sigstopped_daemon_end_unreachable_within_5_s(served: ServeProcess) -> None:
    c = mc.Connector(served.root)  # the documented defaults; session and decode deadlines are 600 s
    ref = mc.ModelRef("tiny", "llama", path=TINY)
    try:
        s = await c.open_session(ref, CFG)
        await s.ensure_prefix("hello world")
        conn = c.cached_connection
        served.sigstop()
        calls: list[tuple[str, Any]] = [
            ("EnsurePrefix", lambda: s.ensure_prefix("hello world, again")),
            ("Decode", lambda: s.decode(mc.DecodeConfig(max_tokens=4)).collect()),
            ("PrefillSuffix", lambda: s.prefill_suffix(" and more")),
        ]
        for method, call in calls:
            t0 = time.monotonic()
            with pytest.raises(mc.Unreachable) as info:
                await call()
            took = time.monotonic() - t0
            assert transport.DEFAULT_LIVENESS_INTERVAL <= took <= WEDGE_BOUND_S, (method, took)
            assert str(info.value).startswith(f"{method}: modeld at {served_endpoint(c)} stopped answering")
        served.sigcont()
        # the daemon resumes: the connection was kept, and the session on it carries on
        assert (await s.ensure_prefix("hello world")).reused_tokens > 0
        assert c.cached_connection is conn and conn is not None and conn.liveness_checks >= 3
        await s.close()
    finally:
        served.sigcont()
        await c.aclose()


async def until(cond: Any, limit: float = 5.0) -> None:
    """Wait for a condition with a deadline."""
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.005)


def served_endpoint(c: mc.Connector) -> str:
    conn = c.cached_connection
    assert conn is not None
    return conn.endpoint


async def test_a_wedge_the_http2_layer_hides_is_seen_too(scripted: Sim) -> None:
    # every call held, Health included, while h2 still acknowledges PINGs: a ping would say "alive"
    c = mc.Connector(scripted.sim.data_root, timeouts=FAST)
    try:
        s = await c.open_session(scripted.ref, CFG)
        scripted.gate.wedge()
        t0 = time.monotonic()
        with pytest.raises(mc.Unreachable):
            await s.ensure_prefix("hello")
        took = time.monotonic() - t0
        assert FAST.liveness_interval <= took <= (FAST.liveness_interval + FAST.liveness_timeout) + 1.0
        scripted.gate.unwedge()
        # the same session answers again on the same connection
        assert (await s.ensure_prefix("hello")).prefix_tokens > 0
    finally:
        await c.aclose()


async def test_a_long_healthy_call_is_never_cut(scripted: Sim) -> None:
    c = mc.Connector(scripted.sim.data_root, timeouts=FAST)
    try:
        s = await c.open_session(scripted.ref, CFG)
        await s.ensure_prefix("hello")
        conn = c.cached_connection
        assert conn is not None
        before = conn.liveness_checks
        # silent far longer than interval + timeout, several times over, yet answering Health
        scripted.faults.add({"method": "EnsurePrefix", "action": "delay", "delay": "3s", "first": 1})
        scripted.faults.add({"method": "Decode", "action": "delay", "delay": "3s", "first": 1})
        await s.ensure_prefix("hello world")
        text = await s.decode(mc.DecodeConfig(max_tokens=3)).text()
        assert text  # the whole answer came
        assert conn.liveness_checks - before >= 2 * int(3 / (FAST.liveness_interval + 0.1))
        # nothing but Health and the calls went out: the same connection, no GOAWAY
        assert c.cached_connection is conn and conn.connected
        await s.close()
    finally:
        await c.aclose()


async def test_a_slow_upload_is_watched_and_not_cut(scripted: Sim) -> None:
    c = mc.Connector(scripted.sim.data_root, timeouts=FAST)
    try:
        node = await c.endpoint(scripted.sim.endpoint)
        source = SlowSource(chunks=8, pause=0.3)
        res = await node.push_model(cast(BinaryIO, source), "slow", "llama")
        assert res.bytes_written == source.sent
        assert node.connection.liveness_checks >= 3
    finally:
        await c.aclose()


async def test_liveness_off_leaves_a_wedge_to_the_deadline(scripted: Sim) -> None:
    c = mc.Connector(scripted.sim.data_root, timeouts=mc.Timeouts(liveness_interval=0))
    try:
        s = await c.open_session(scripted.ref, CFG)
        scripted.gate.wedge()
        t0 = time.monotonic()
        with pytest.raises(mc.DeadlineExceeded):
            await s.ensure_prefix("hello", timeout=1.5)
        assert time.monotonic() - t0 >= 1.5
        conn = c.cached_connection
        assert conn is not None and conn.liveness_checks == 0
    finally:
        scripted.gate.unwedge()
        await c.aclose()


async def test_a_call_deadline_shorter_than_the_watch_still_wins(scripted: Sim) -> None:
    c = mc.Connector(scripted.sim.data_root)  # defaults: the watch would speak after 5 s
    try:
        s = await c.open_session(scripted.ref, CFG)
        scripted.gate.wedge()
        with pytest.raises(mc.DeadlineExceeded):
            await s.ensure_prefix("hello", timeout=1.0)
    finally:
        scripted.gate.unwedge()
        await c.aclose()


async def test_a_cancelled_call_stays_cancelled(scripted: Sim) -> None:
    # the watch converts only its own cancellation
    c = mc.Connector(scripted.sim.data_root, timeouts=FAST)
    try:
        s = await c.open_session(scripted.ref, CFG)
        scripted.gate.wedge()
        task = asyncio.ensure_future(s.ensure_prefix("hello"))
        conn = c.cached_connection
        assert conn is not None
        await until(lambda: conn._watches)  # the call waits under the watch
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        scripted.gate.unwedge()
        await c.aclose()


def test_the_sync_facade_reports_the_wedge_too(tmp_path: Path) -> None:
    from modeldconn import sync

    async def start() -> ServeProcess:
        p = ServeProcess(str(tmp_path / "root"), "--ttl", "60s")
        await p.wait_ready()
        return p

    proc = asyncio.run(start())
    sync.set_data_root(proc.root)
    sync.set_timeouts(mc.Timeouts(liveness_interval=0.3, liveness_timeout=0.7))
    try:
        s = sync.open_session(mc.ModelRef("tiny", "llama", path=TINY), CFG)
        s.ensure_prefix("hello")
        proc.sigstop()
        t0 = time.monotonic()
        with pytest.raises(mc.Unreachable):
            s.decode(mc.DecodeConfig(max_tokens=2)).text()
        assert time.monotonic() - t0 <= 0.3 + 0.7 + 1.0
    finally:
        proc.sigcont()
        sync.close()
        sync.set_timeouts(mc.Timeouts())
        sync.set_data_root(None)
        proc.stop()


class SlowSource(io.RawIOBase):
    """A model file produced slowly (a pause before each chunk, in the connector's reader thread): the
    upload stays silent on the daemon's side for longer than the liveness interval."""

    def __init__(self, chunks: int, pause: float) -> None:
        super().__init__()
        self._left = chunks
        self._pause = pause
        self._tick = threading.Event()  # never set: its wait is the pause
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        self._tick.wait(self._pause)
        self._left -= 1
        data = (b"GGUF" if self.sent == 0 else b"") + bytes(60)
        self.sent += len(data)
        return data
