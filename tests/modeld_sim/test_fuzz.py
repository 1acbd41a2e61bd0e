"""Fuzz: every method gets random JSON and random bytes; every call gets a status, nothing leaks.

The simulator must survive anything a client sends (the real daemon recovers handler panics into
Internal statuses: runtime/transport/grpc/wire.go recoveredHandlerPanic). Examples: 2,000 in the
default profile (this test's own floor), more under HYPOTHESIS_PROFILE=deep.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modeld_contract.h2client import RawGrpcClient

from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn.wire.fence import FENCE_HEADER
from modeldconn.wire.methods import METHODS

_MIN_EXAMPLES = 2000


class _SimThread:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = Simulator(str(root / "data"), backend="llama")
        self.run(self.sim.start())
        host, _, port = self.sim.endpoint.rpartition(":")
        self.client = RawGrpcClient(host, int(port))

    def run(self, coro: Any, timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=timeout)

    def close(self) -> None:
        try:
            self.run(self.client.aclose())
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def sim_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SimThread]:
    root = tmp_path_factory.mktemp("fuzz")
    write_fake_gguf(str(root / "m.gguf"), context_length=64)
    s = _SimThread(root)
    s.model = str(root / "m.gguf")  # type: ignore[attr-defined]
    yield s
    s.close()


_json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _keys_of(cls: Any) -> list[str]:
    return [f.json_name for f in cls.DESCRIPTOR.fields]


@st.composite
def _payload(draw: st.DrawFn, method: Any, model: str, iid: str) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "shaped"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return json.dumps(draw(_json), allow_nan=True).encode()
    # A body with the request's own keys, random values (sometimes plausible ones), so fuzzing reaches
    # past the decoder into the fence, the slot and the store.
    keys = _keys_of(method.request)
    body: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)) if keys else []:
        body[key] = draw(
            _json
            | st.sampled_from(["llama", "openvino", "", model, iid, f"{iid}/1/1", "tiny", "file", "tar"])
        )
    return json.dumps(body, allow_nan=True).encode()


@settings(
    max_examples=max(_MIN_EXAMPLES, settings().max_examples),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(data=st.data())
def test_fuzz_every_method_answers_with_a_status(sim_thread: _SimThread, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(METHODS))
    iid = sim_thread.sim.instance_id
    model = sim_thread.model  # type: ignore[attr-defined]
    n = data.draw(st.integers(0, 3))
    payloads = [data.draw(_payload(method, model, iid)) for _ in range(n)]
    fenced = data.draw(st.booleans())
    metadata = [(FENCE_HEADER, iid)] if fenced else []
    reply = sim_thread.run(
        sim_thread.client.call(method.path, payloads, metadata=metadata, connection="fuzz", timeout=10)
    )
    assert reply.code is not None, f"{method.name}: no status ({reply})"
    assert 0 <= reply.code <= 16
    if reply.code == 0 and method.kind.value != "server_stream":
        assert len(reply.messages) == 1


def test_fuzz_left_nothing_behind(sim_thread: _SimThread) -> None:
    """After the fuzz connection ends, its sessions are gone and the server still answers Health."""
    sim_thread.run(sim_thread.client.close_connection("fuzz"))
    server = sim_thread.sim.server
    assert server is not None
    deadline = time.monotonic() + 10
    while server.open_sessions and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the server's own count; the close runs on its loop
    assert server.open_sessions == 0
    reply = sim_thread.run(sim_thread.client.call(METHODS[0].path, [b"{}"]))
    assert reply.code == 0
