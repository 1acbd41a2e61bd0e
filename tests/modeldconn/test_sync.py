"""The blocking facade: same behaviour, callable from plain code, from other threads while another
event loop runs, and (blocking it) from inside a running loop; never from its own loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modeldconn as mc
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn import sync
from modeldconn.wire import errors


class SimThread:
    """A simulator on its own loop in its own thread (the facade has its own loop too)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = Simulator(data_root=root, backend="llama", stop_grace=0.2)
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SimThread, mc.ModelRef]]:
    root = str(tmp_path / "root")
    model = write_fake_gguf(str(tmp_path / "tiny.gguf"), context_length=256)
    st = SimThread(root)
    sync.set_data_root(root)
    try:
        yield st, mc.ModelRef("tiny", "llama", path=model)
    finally:
        sync.close()
        sync.set_data_root(None)
        st.stop()


def test_the_sync_walk(served: tuple[SimThread, mc.ModelRef]) -> None:
    st, ref = served
    assert sync.available() and sync.backend() == "llama" and sync.serveable_backend() == "llama"
    assert sync.status().owner_instance_id == st.sim.instance_id
    assert sync.describe(ref, mc.Config(num_ctx=128)).model_max_context == 256
    with sync.open_session(ref, mc.Config(num_ctx=128)) as s:
        assert s.ensure_prefix("hello world").prefilled_tokens > 0
        s.prefill_suffix(" again")
        chunks = list(s.decode(mc.DecodeConfig(max_tokens=8)))
        assert len(chunks) == 8
        with s.decode(mc.DecodeConfig(max_tokens=1000)) as it:
            next(it)
        assert s.explain_context().resident_tokens > 0
        snap = s.snapshot()
        s.restore(snap)
    with pytest.raises(errors.SessionClosed):
        s.ensure_prefix("x")
    # switch + retry through the facade
    with sync.open_session(ref, mc.Config(num_ctx=64)):
        assert sync.status().active.config.num_ctx == 64  # type: ignore[union-attr]
        with pytest.raises(errors.ModelBusy):
            sync.open_session(ref, mc.Config(num_ctx=64))
    am = sync.load_model(ref, mc.Config(num_ctx=64))
    with pytest.raises(errors.SlotGenerationStale):
        sync.unload_model(am.generation + 1)
    sync.unload_model()
    assert sync.embed(ref, mc.Config(num_ctx=64), "x")
    ec = sync.endpoint(st.sim.endpoint, "n1")
    assert ec.instance_id == st.sim.instance_id and ec.status().backend == "llama"
    sync.close_endpoint("n1")
    assert sync.list_models() == []
    assert sync.local_endpoint_addr() == st.sim.endpoint


def test_probe_errors_through_the_facade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_ = tmp_path / "modeld"
    bin_.write_text("#!/bin/sh\n")
    monkeypatch.setenv("CONTENOX_MODELD_BIN", str(bin_))
    sync.set_data_root(str(tmp_path / "empty"))
    try:
        with pytest.raises(mc.NotRunning):
            sync.status()
    finally:
        sync.set_data_root(None)


def test_from_threads_while_another_loop_runs(served: tuple[SimThread, mc.ModelRef]) -> None:
    st, _ = served
    results: list[Any] = []

    async def app() -> None:
        # another event loop is running in this thread; the facade is used from worker threads
        def work() -> str:
            return sync.status().owner_instance_id

        got = await asyncio.gather(*(asyncio.to_thread(work) for _ in range(6)))
        results.extend(got)

    t = threading.Thread(target=lambda: asyncio.run(app()))
    t.start()
    t.join(30)
    assert results == [st.sim.instance_id] * 6


def test_from_inside_a_running_loop_it_blocks_but_works(served: tuple[SimThread, mc.ModelRef]) -> None:
    st, _ = served

    async def app() -> str:
        return sync.status().owner_instance_id  # blocks this loop for the call

    assert asyncio.run(app()) == st.sim.instance_id


def test_from_its_own_loop_it_refuses_instead_of_deadlocking(served: tuple[SimThread, mc.ModelRef]) -> None:
    sync.status()  # the facade's loop is running

    async def inside() -> None:
        sync.status()

    with pytest.raises(RuntimeError, match="own event loop"):
        sync._run(inside())


def test_close_then_use_again(served: tuple[SimThread, mc.ModelRef]) -> None:
    st, ref = served
    s = sync.open_session(ref, mc.Config(num_ctx=128))
    sync.close()
    sync.close()  # idempotent
    assert sync.status().owner_instance_id == st.sim.instance_id  # a new private loop
    with pytest.raises(errors.SessionClosed):
        s.ensure_prefix("x")  # its connection was closed with the facade
