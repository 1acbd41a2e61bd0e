"""The connector's lease-resolved API against the in-process simulator (pyfakefs data root, real
loopback listener): offline checks, probe-first calls, the Go request bodies, the switch retry,
takeover → redial, targeted endpoints and node admin."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from connector_testlib import CallSpy, closed_port

import modeldconn as mc
import modeldconn.client as client_mod
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn import gotime, probe, transport
from modeldconn import lease as liblease
from modeldconn.wire import codec, errors

# Imported before pyfakefs patches the file system (lazy imports would not find their files).
from google.rpc import error_details_pb2, status_pb2  # noqa: F401  # isort: skip

ROOT = "/data"
MODEL = "/models/tiny.gguf"


@pytest.fixture
def root(fs: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    fs.create_dir(ROOT)
    fs.create_dir("/models")
    write_fake_gguf(MODEL, context_length=256)
    fs.create_file("/usr/local/bin/modeld", contents="#!/bin/sh\n", st_mode=0o100755)
    monkeypatch.setenv(probe.BINARY_ENV, "/usr/local/bin/modeld")
    mc.set_data_root(ROOT)
    yield ROOT
    mc.set_data_root(None)


@pytest.fixture
async def connector(root: str) -> AsyncIterator[mc.Connector]:
    c = mc.Connector(root)
    yield c
    await c.aclose()


@pytest.fixture
async def sim(root: str) -> AsyncIterator[Simulator]:
    async with Simulator(data_root=root, backend="llama", stop_grace=0.2) as s:
        yield s


REF = mc.ModelRef("tiny", "llama", path=MODEL)
CFG = mc.Config(num_ctx=128)


def write_lease(
    root: str,
    *,
    endpoint: str,
    renewed_ago: float = 0.0,
    ttl: float = 60.0,
    instance: str = "iid-x",
    backend: str = "llama",
) -> None:
    now = time.time_ns() - int(renewed_ago * 1e9)
    t = gotime.GoTime(now, 0)
    rec = liblease.LeaseRecord(
        instance_id=instance,
        pid=1,
        host="h",
        acquired_at=t,
        renewed_at=t,
        ttl_ns=int(ttl * 1e9),
        meta={"endpoint": endpoint, "backend": backend},
    )
    with open(liblease.lease_path(root), "wb") as f:
        f.write(liblease.encode_record(rec))


# ------------------------------------------------------------------------------ offline checks


async def test_offline_checks_follow_the_lease(root: str, connector: mc.Connector) -> None:
    assert (connector.available(), connector.backend(), connector.serveable_backend()) == (False, "", "")
    async with Simulator(data_root=root, backend="openvino", stop_grace=0.2):
        assert connector.available() and connector.backend() == "openvino"
        assert connector.serveable_backend(now=1000.0) == "openvino"
        assert mc.available() and mc.backend() == "openvino"
    assert not connector.available() and connector.backend() == ""
    # grace window: 60 s inclusive, then forgotten (a later gap stays "")
    assert connector.serveable_backend(now=1059.0) == "openvino"
    assert connector.serveable_backend(now=1060.0) == "openvino"
    assert connector.serveable_backend(now=1060.5) == ""
    assert connector.serveable_backend(now=1061.0) == ""


async def test_set_data_root_resets_the_grace_memory(root: str) -> None:
    async with Simulator(data_root=root, backend="llama", stop_grace=0.2):
        assert mc.serveable_backend(now=10.0) == "llama"
    assert mc.serveable_backend(now=20.0) == "llama"
    mc.set_data_root(ROOT)
    assert mc.serveable_backend(now=20.0) == ""


def test_detect_needs_no_network(root: str) -> None:
    write_lease(root, endpoint=closed_port())
    assert mc.available() and mc.backend() == "llama"


# ------------------------------------------------------------------------------ probe errors


@pytest.mark.parametrize(
    "call",
    [
        "status",
        "open_session",
        "describe",
        "embed",
        "load_model",
        "unload_model",
        "list_models",
        "disk_stats",
    ],
)
async def test_no_owner_gives_the_probe_errors(
    root: str, connector: mc.Connector, call: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    args: dict[str, tuple[Any, ...]] = {
        "open_session": (REF, CFG),
        "describe": (REF, CFG),
        "embed": (REF, CFG, "x"),
        "load_model": (REF, CFG),
    }
    fn = getattr(connector, call)

    async def fails(cls: type[Exception], text: str) -> None:
        with pytest.raises(cls) as ei:
            await fn(*args.get(call, ()))
        assert str(ei.value) == text  # Go's exact text; the probe's reason is a note

    await fails(mc.NotRunning, "modeld is not running")
    write_lease(root, endpoint="127.0.0.1:1", renewed_ago=10, ttl=3)
    await fails(mc.Stale, "modeld owner is stale (the daemon may have crashed)")
    write_lease(root, endpoint=closed_port())
    t0 = time.monotonic()
    await fails(mc.Unreachable, "modeld holds a lease but does not answer a health probe")
    assert time.monotonic() - t0 < 2
    os.remove(liblease.lease_path(root))
    monkeypatch.delenv(probe.BINARY_ENV)
    monkeypatch.setenv("PATH", "/nowhere")
    await fails(mc.NotInstalled, "modeld is not installed")


async def test_an_owner_answering_with_another_instance_is_unreachable(
    sim: Simulator, connector: mc.Connector
) -> None:
    write_lease(sim.data_root, endpoint=sim.endpoint, instance="someone-else")
    with pytest.raises(mc.Unreachable):
        await connector.status()


# ------------------------------------------------------------------------------ calls and bodies


async def test_calls_probe_then_send_the_go_bodies(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CallSpy(monkeypatch)
    iid = sim.instance_id
    st = await connector.status()
    assert (st.owner_instance_id, st.backend, st.state, st.active) == (iid, "llama", "Empty", None)
    info = await connector.describe(REF, CFG)
    assert info.model_max_context == 256 and info.effective_context == 128
    vec = await connector.embed(REF, CFG, "hello")
    assert vec and all(isinstance(v, float) for v in vec)
    am = await connector.load_model(REF, CFG)
    assert am.model_name == "tiny" and am.generation >= 1 and am.config.num_ctx == 128
    with pytest.raises(errors.SlotGenerationStale):
        await connector.unload_model(am.generation + 7)
    await connector.unload_model()
    cfg_json = json.loads(codec.encode(CFG.to_pb()))
    ident = {
        "owner_instance_id": iid,
        "model_name": "tiny",
        "type": "llama",
        "path": MODEL,
        "config": cfg_json,
    }
    assert spy.calls[0][:2] == ("Health", {})
    assert [(m, b) for m, b, _, _ in spy.calls] == [
        ("Health", {}),
        ("Status", {"owner_instance_id": iid}),
        ("Health", {}),
        ("Describe", ident),
        ("Health", {}),
        ("Embed", {**ident, "text": "hello"}),
        ("Health", {}),
        ("LoadModel", ident),
        ("Health", {}),
        ("UnloadModel", {"owner_instance_id": iid, "expected_generation": am.generation + 7}),
        ("Health", {}),
        ("UnloadModel", {"owner_instance_id": iid}),
    ]
    # one cached connection fenced to the lease instance carries everything
    assert {c[3] for c in spy.calls} == {id(connector.cached_connection)}
    assert {c[2] for c in spy.calls if c[0] != "Health"} == {iid}


async def test_open_session_retries_once_after_a_switch(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await connector.open_session(REF, CFG) as s:
        assert s.handle.startswith(sim.instance_id + "/") and s.instance_id == sim.instance_id
    spy = CallSpy(monkeypatch)
    s2 = await connector.open_session(REF, mc.Config(num_ctx=64))
    assert spy.methods() == ["Health", "OpenSession", "LoadModel", "OpenSession"]
    assert spy.calls[2][1].get("expected_generation") is None  # LoadModel with generation 0
    assert spy.calls[1][1] == spy.calls[3][1]
    assert (await connector.status()).active.config.num_ctx == 64  # type: ignore[union-attr]
    # a second open while a handle is held: model_busy, no retry
    spy.clear()
    with pytest.raises(errors.ModelBusy):
        await connector.open_session(REF, mc.Config(num_ctx=64))
    assert spy.methods() == ["Health", "OpenSession"]
    await s2.close()


async def test_a_failing_load_is_returned_as_is(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await connector.open_session(REF, CFG)).close()
    spy = CallSpy(monkeypatch)
    with pytest.raises(errors.ModelLoadFailed) as ei:
        await connector.open_session(mc.ModelRef("tiny", "openvino", path=MODEL), CFG)
    assert isinstance(ei.value, errors.BackendMismatch)
    assert spy.methods() == ["Health", "OpenSession", "LoadModel"]


async def test_backend_mismatch_and_other_errors_unchanged(sim: Simulator, connector: mc.Connector) -> None:
    foreign = mc.ModelRef("tiny", "openvino", path=MODEL)
    with pytest.raises(errors.BackendMismatch) as e1:
        await connector.describe(foreign, CFG)
    assert not isinstance(e1.value, errors.ModelLoadFailed)
    with pytest.raises(errors.ModelLoadFailed) as e2:  # empty slot: wrapped by the load
        await connector.open_session(foreign, CFG)
    assert isinstance(e2.value, errors.BackendMismatch)
    with pytest.raises(errors.ModelNotFound):
        await connector.open_session(mc.ModelRef("nosuch", "llama"), CFG)


async def test_health_rides_on_the_cached_connection(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    orig = transport.Connection.__init__

    def init(self: transport.Connection, endpoint: str, owner: str = "") -> None:
        opened.append(endpoint)
        orig(self, endpoint, owner)

    monkeypatch.setattr(transport.Connection, "__init__", init)
    for _ in range(5):
        await connector.status()
    assert opened == [sim.endpoint]  # the first probe's connection became the cached one


# ------------------------------------------------------------------------------ takeover


async def test_takeover_redials_closes_the_old_channel_and_fences_old_sessions(
    root: str, connector: mc.Connector
) -> None:
    a = Simulator(data_root=root, backend="llama", stop_grace=0.2)
    await a.start()
    port = int(a.endpoint.rsplit(":", 1)[1])
    s_old = await connector.open_session(REF, CFG)
    old_conn = connector.cached_connection
    assert old_conn is not None and old_conn.owner == a.instance_id
    await a.stop()
    # a new owner on the same endpoint: the old session's calls reach it and it refuses the fence
    b = Simulator(data_root=root, backend="llama", port=port, stop_grace=0.2)
    await b.start()
    try:
        assert b.instance_id != a.instance_id
        with pytest.raises(errors.StaleFence):
            await s_old.ensure_prefix("hello")
        # the next lease-resolved call notices the takeover before any fenced call goes out
        st = await connector.status()
        assert st.owner_instance_id == b.instance_id
        new_conn = connector.cached_connection
        assert new_conn is not old_conn and new_conn is not None and new_conn.owner == b.instance_id
        assert old_conn.closed
        # the old session does not follow: its connection is gone
        with pytest.raises(errors.SessionClosed):
            await s_old.ensure_prefix("hello")
        await s_old.close()  # a no-op now
        async with await connector.open_session(REF, CFG) as s_new:
            assert s_new.instance_id == b.instance_id
    finally:
        await b.stop()


async def test_takeover_on_another_endpoint(root: str, connector: mc.Connector) -> None:
    async with Simulator(data_root=root, backend="llama", stop_grace=0.2) as a:
        await connector.status()
        old = connector.cached_connection
    async with Simulator(data_root=root, backend="openvino", stop_grace=0.2) as b:
        assert b.endpoint != a.endpoint or b.instance_id != a.instance_id
        assert (await connector.status()).backend == "openvino"
        assert old is not None and old.closed
        assert connector.cached_connection is not old


# ------------------------------------------------------------------------------ endpoint(addr)


async def test_endpoint_health_cache_and_restart(
    root: str, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = Simulator(data_root=root, backend="llama", stop_grace=0.2)
    await a.start()
    port = int(a.endpoint.rsplit(":", 1)[1])
    ec = await connector.endpoint(a.endpoint, "node-1")
    assert (ec.instance_id, ec.backend, ec.ready) == (a.instance_id, "llama", True)
    assert (await ec.status()).owner_instance_id == a.instance_id
    ec2 = await connector.endpoint(a.endpoint, "node-1")
    assert ec2.connection is ec.connection  # reused: Health still ready with the same instance
    other = await connector.endpoint(a.endpoint, "node-2")
    assert other.connection is not ec.connection
    # the local cache is separate
    await connector.status()
    assert connector.cached_connection not in (ec.connection, other.connection)
    await a.stop()
    b = Simulator(data_root=root, backend="openvino", port=port, stop_grace=0.2)
    await b.start()
    try:
        ec3 = await connector.endpoint(a.endpoint, "node-1")
        assert ec3.instance_id == b.instance_id and ec3.backend == "openvino"
        assert ec.connection.closed and ec3.connection is not ec.connection
        assert (await ec3.status()).owner_instance_id == b.instance_id
    finally:
        await b.stop()
    await connector.close_endpoint("node-1")
    await connector.close_endpoint("node-1")  # idempotent
    assert ec3.connection.closed
    with pytest.raises(mc.EndpointError, match=r"^modeldconn: health probe "):
        await connector.endpoint(closed_port(), "node-3")


async def test_endpoint_open_session_retries_like_the_local_path(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec = await connector.endpoint(sim.endpoint)
    await (await ec.open_session(REF, CFG)).close()
    spy = CallSpy(monkeypatch)
    s = await ec.open_session(REF, mc.Config(num_ctx=32))
    assert spy.methods() == ["OpenSession", "LoadModel", "OpenSession"]
    assert spy.calls[0][1]["owner_instance_id"] == sim.instance_id
    await s.close()
    assert (await ec.describe(REF, CFG)).model_max_context == 256


# ------------------------------------------------------------------------------ node admin


async def test_node_admin_push_list_stats_remove(
    sim: Simulator, connector: mc.Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "PUSH_CHUNK_BYTES", 100)
    with open(MODEL, "rb") as f:
        payload = f.read()
    sent: list[dict[str, Any]] = []
    orig = transport.Connection.client_stream

    async def spy(
        self: transport.Connection, method: str, req_cls: Any, requests: Any, reply: Any, **kw: Any
    ) -> Any:
        async def frames() -> Any:
            async for m in requests():
                sent.append(json.loads(codec.encode(m)))
                yield m

        return await orig(self, method, req_cls, frames, reply, **kw)

    monkeypatch.setattr(transport.Connection, "client_stream", spy)
    res = await connector.push_model(MODEL, "pushed", "llama")
    assert not res.already_present and res.bytes_written == len(payload)
    assert len(sent) == -(-len(payload) // 100) and len(sent) > 1
    assert sent[0]["manifest"] == {
        "name": "pushed",
        "type": "llama",
        "digest": hashlib.sha256(payload).hexdigest(),
        "total_bytes": len(payload),
        "format": "file",
    }
    assert sent[0]["owner_instance_id"] == sim.instance_id
    assert all("manifest" not in f and "owner_instance_id" not in f for f in sent[1:])
    again = await connector.push_model(payload, "pushed", "llama")
    assert again.already_present
    with pytest.raises(errors.DigestMismatch):
        await connector.push_model(b"abc", "other", "llama", digest="0" * 64)
    models = await connector.list_models()
    assert [m.name for m in models] == ["pushed"] and models[0].digest == hashlib.sha256(payload).hexdigest()
    # an empty upload still sends the manifest frame
    sent.clear()
    await connector.push_model(b"", "empty", "llama")
    assert len(sent) == 1 and "data" not in sent[0] and sent[0]["manifest"]["name"] == "empty"
    await connector.remove_model("empty")
    await connector.remove_model("pushed")
    assert await connector.list_models() == []
    with pytest.raises(errors.ModelNotFound):
        await connector.remove_model("pushed")
    with pytest.raises(errors.UnsupportedModelType):
        await connector.push_model(b"x" * 5000, "bad", "ollama")


# ------------------------------------------------------------------------------ module API


async def test_module_api_uses_the_default_connector(sim: Simulator) -> None:
    try:
        assert (await mc.status()).owner_instance_id == sim.instance_id
        assert await mc.local_endpoint_addr() == sim.endpoint
        s = await mc.open_session(REF, CFG)
        assert s.connection is mc.default_connector().cached_connection
        await s.close()
        assert (await mc.describe(REF, CFG)).model_max_context == 256
    finally:
        await mc.aclose()


async def test_deadline_covers_the_whole_call(sim: Simulator, connector: mc.Connector) -> None:
    with pytest.raises(errors.DeadlineExceeded):
        await connector.status(timeout=1e-9)


def test_client_module_exports() -> None:
    for name in client_mod.__all__:
        assert hasattr(client_mod, name)
    for name in mc.__all__:  # the package's names load lazily, every one of them
        assert hasattr(mc, name)


def test_lease_users_do_not_load_the_grpc_client() -> None:
    """The simulator shares modeldconn.lease / gotime: importing them must not pull grpclib in."""
    code = (
        "import sys, modeldconn.lease, modeldconn.gotime, modeldconn.probe; "
        "sys.exit(any(m.startswith(('grpclib', 'modeldconn.client')) for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_default_health_is_an_unfenced_fresh_connection(sim: Simulator) -> None:
    ans = await probe.default_health(sim.endpoint, 2)
    assert (ans.instance_id, ans.ready, ans.backend) == (sim.instance_id, True, "llama")
    st = await probe.probe(sim.data_root, timeout=2)
    assert st.state is probe.ProbeState.RUNNING


async def test_concurrent_calls_share_one_cached_connection(sim: Simulator, connector: mc.Connector) -> None:
    res = await asyncio.gather(*(connector.status() for _ in range(10)))
    assert {r.owner_instance_id for r in res} == {sim.instance_id}
    conn = connector.cached_connection
    await connector.status()
    assert connector.cached_connection is conn


async def test_disk_stats_on_a_real_root(tmp_path: Any) -> None:
    # statvfs is not faked by pyfakefs: this one runs on a real temporary data root.
    root = str(tmp_path)
    async with Simulator(data_root=root, backend="llama", stop_grace=0.2):
        c = mc.Connector(root)
        try:
            ds = await c.disk_stats()
            assert ds.total_bytes > 0 and ds.free_bytes >= 0
        finally:
            await c.aclose()


# ------------------------------------------------------------------------------ a wedged daemon


@pytest.fixture
async def served(tmp_path: Any) -> AsyncIterator[Any]:
    from connector_testlib import ServeProcess

    p = ServeProcess(str(tmp_path / "root"), "--ttl", "60s")
    try:
        await p.wait_ready()
        yield p
    finally:
        p.stop()


@pytest.mark.slow
async def test_a_sigstopped_daemon_is_unreachable_within_the_probe_deadline(served: Any) -> None:
    c = mc.Connector(served.root)  # documented defaults: probe deadline 5 s
    real_model = str(
        os.path.join(os.path.dirname(__file__), "..", "corpus", "modeld-v0.36.0", "tiny-llama-ctx256.gguf")
    )
    ref = mc.ModelRef("tiny", "llama", path=os.path.abspath(real_model))
    served.sigstop()
    try:
        t0 = time.monotonic()
        with pytest.raises(mc.Unreachable):
            await c.open_session(ref, CFG)
        took = time.monotonic() - t0
        assert took <= transport.DEFAULT_PROBE_TIMEOUT + 1.5, took
        assert c.available()  # the lease alone still says running (as Go's Available does)
    finally:
        served.sigcont()
        await c.aclose()


async def test_a_daemon_wedged_under_a_cached_connection_is_unreachable_too(served: Any) -> None:
    c = mc.Connector(served.root, timeouts=mc.Timeouts(probe=1.0))
    real_model = os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "corpus", "modeld-v0.36.0", "tiny-llama-ctx256.gguf")
    )
    ref = mc.ModelRef("tiny", "llama", path=real_model)
    try:
        s = await c.open_session(ref, CFG)
        await s.ensure_prefix("hello world")
        conn = c.cached_connection
        served.sigstop()
        t0 = time.monotonic()
        with pytest.raises(mc.Unreachable):
            await c.status()
        assert time.monotonic() - t0 <= 1.0 + 1.5
        served.sigcont()
        # the daemon resumes: same cached connection, the session survived
        assert (await c.status()).state in ("Ready", "Busy")
        assert c.cached_connection is conn
        assert (await s.ensure_prefix("hello world")).reused_tokens > 0
        await s.close()
    finally:
        served.sigcont()
        await c.aclose()
