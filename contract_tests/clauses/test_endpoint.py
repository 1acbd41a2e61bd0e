"""C-ENDPOINT: one node reached by address — Go ``modeldconn.Endpoint(backendID, addr)`` and the
``*Target`` helpers, Python ``modeldconn.endpoint(addr, backend_id)``.

The targeted path needs no lease: the connector asks the node's unfenced Health for its instance id,
requires it ready with a non-empty instance, and fences every call to that instance. It caches one
connection per backend id, apart from the lease-resolved connection: a cached entry is reused while
the node answers ready with the remembered instance (sessions opened through it live on), and is
dropped and redialed when the node restarted with a new instance; ``close_endpoint`` drops it (its
sessions end) and a later call redials. A node that cannot be reached or is not ready is an error of
the connector (no sentinel: the daemon judged nothing), never a cached success; a node that never
answers ends the call with the caller's deadline (``deadline_exceeded``). Every clause against a
connector without the targeted API is not applicable.

Sources: session-semantics.md §7 (remote/targeted path); edge-cases.md:45,47 (endpoint_test.go);
modeldconn endpoint.go, modeldconn.go *Target (v0.36.0)."""

from __future__ import annotations

import functools
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.applicability import not_applicable
from modeld_contract.clauses._util import binary_env, lease_bytes, prefix, raises_kind, supported, write_lease
from modeld_contract.connectors.extensions import NodeTarget, TargetedConnector, target_ops
from modeld_contract.connectors.protocol import HARNESS_TIMEOUT, PROBE_KINDS, SENTINEL_KINDS, ConnectorError
from modeld_contract.targets import HealthStub, SimTarget, closed_port, silent_listener

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
T = 5.0
_BODY = b"GGUF pushed to one node by address " * 8
_SRC = "session-semantics.md §7 (targeted path); endpoint.go Endpoint"


def _ops(conn: Any) -> TargetedConnector:
    ops = target_ops(conn)
    if ops is None:
        not_applicable("the connector has no targeted API (endpoint(addr))")
    return ops


@pytest.fixture
def far(modeld_options: Any, tmp_path: Path) -> Iterator[SimTarget]:
    """A second node, not named by the lease the connector reads."""
    if not modeld_options.scriptable:
        pytest.skip(f"needs the in-process simulator; target is {modeld_options.target}")
    node = SimTarget(str(tmp_path / "far-root"))
    yield node
    node.stop()


def _not_a_verdict(err: ConnectorError | None, what: str) -> None:
    """An unreachable or unready node: a typed error of the connector, not a daemon's verdict."""
    assert err is not None, f"{what}: succeeded"
    assert err.kind != HARNESS_TIMEOUT, f"{what}: no answer at all ({err})"
    assert not any(err.matches(t) for t in SENTINEL_KINDS), f"{what}: no daemon judged this, got {err}"
    assert err.kind not in PROBE_KINDS, f"{what}: the targeted path has no lease probe, got {err}"


@clause("C-ENDPOINT-01", source=_SRC)
@pytest.mark.needs_scripting
def test_C_ENDPOINT_01_health_of_the_node(modeld_connector: Any, far: SimTarget, tmp_path: Path) -> None:
    """endpoint(addr) with no lease anywhere answers the node's own health: its instance, its backend,
    ready."""
    modeld_connector.configure(str(tmp_path / "no-lease-here"))
    got = _ops(modeld_connector).endpoint(NodeTarget(far.endpoint, "far"), timeout=T)
    assert got == {"instance_id": far.instance_id, "backend": far.backend, "ready": True}, got


def _check_status(out: Any, node: SimTarget) -> str | None:
    return None if out.get("owner_instance_id") == node.instance_id else f"owner_instance_id {out!r}"


def _stage(node: SimTarget, name: str) -> str:
    node.stage_model(name)
    return os.path.join(node.data_root, "models", name)


#: op → (wire method, call(ops, conn, node, target) → what it returned, check(result, node) → why not)
_TARGETED: dict[str, tuple[str, Callable[..., Any], Callable[[Any, SimTarget], str | None]]] = {
    "status": ("Status", lambda o, c, n, t: o.target_status(t, timeout=T), _check_status),
    "describe": (
        "Describe",
        lambda o, c, n, t: o.target_describe(t, n.model, CFG, timeout=T),
        lambda out, n: None if int(out.get("model_max_context", 0)) > 0 else f"describe {out!r}",
    ),
    "open_session": (
        "OpenSession",
        lambda o, c, n, t: c.ensure_prefix(o.target_open_session(t, n.model, CFG, timeout=T), prefix("hi")),
        lambda out, n: None if int(out.get("PrefixTokens", 0)) > 0 else f"ensure_prefix {out!r}",
    ),
    "load_model": (
        "LoadModel",
        lambda o, c, n, t: o.target_load_model(t, n.model, CFG, timeout=T),
        lambda out, n: None if out.get("model_name") == n.model["model_name"] else f"active {out!r}",
    ),
    "unload_model": (
        "UnloadModel",
        lambda o, c, n, t: o.target_unload_model(t, 0, timeout=T),
        lambda out, n: None,
    ),
    "embed": (
        "Embed",
        lambda o, c, n, t: o.target_embed(t, n.model, CFG, "by address", timeout=T),
        lambda out, n: None if len(out) > 0 else f"vector {out!r}",
    ),
    "list_models": (
        "ListModels",
        lambda o, c, n, t: o.target_list_models(t, timeout=T),
        lambda out, n: None if n.model["model_name"] in [m.get("name") for m in out] else f"models {out!r}",
    ),
    "remove_model": (
        "RemoveModel",
        lambda o, c, n, t: o.target_remove_model(t, "spare", timeout=T),
        lambda out, n: (
            "spare still in the store"
            if os.path.exists(os.path.join(n.data_root, "models", "spare"))
            else None
        ),
    ),
    "disk_stats": (
        "DiskStats",
        lambda o, c, n, t: o.target_disk_stats(t, timeout=T),
        lambda out, n: None if int(out.get("total_bytes", 0)) > 0 else f"disk {out!r}",
    ),
    "push_model": (
        "PushModel",
        lambda o, c, n, t: o.target_push_model(
            t, "pushed-far", "llama", _BODY, hashlib.sha256(_BODY).hexdigest(), timeout=T
        ),
        lambda out, n: (
            None
            if _read(os.path.join(n.data_root, "models", "pushed-far", "model.gguf")) == _BODY
            else "the pushed bytes are not in the node's store"
        ),
    ),
}


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


@pytest.mark.needs_scripting
@pytest.mark.parametrize(
    "op",
    [
        pytest.param(op, marks=clause(f"C-ENDPOINT-{i:02d}", source=_SRC + "; modeldconn.go *Target"), id=op)
        for i, op in enumerate(_TARGETED, 2)
    ],
)
def test_C_ENDPOINT_targeted_call_reaches_the_node(modeld_scripted: Any, far: SimTarget, op: str) -> None:
    """A targeted call goes to the node at the address (fenced to its instance) and answers as that
    node; the owner the lease names gets nothing."""
    env = modeld_scripted
    ops = _ops(env.conn)
    wire, call, check = _TARGETED[op]
    if op == "remove_model":
        _stage(far, "spare")
    target = NodeTarget(far.endpoint, "far")
    near_before = env.target.faults.set.call_count(wire)
    out = call(ops, env.conn, far, target)
    why = check(out, far)
    assert why is None, f"{op} by address: {why}"
    assert far.faults is not None
    assert far.faults.set.call_count(wire) == 1, f"{op}: the node at the address saw no {wire}"
    assert env.target.faults.set.call_count(wire) == near_before, f"{op}: went to the lease's owner"


@clause("C-ENDPOINT-12", source=_SRC + " (a cached entry is reused while the instance is unchanged)")
@pytest.mark.needs_scripting
def test_C_ENDPOINT_12_cached_connection_keeps_its_sessions(modeld_scripted: Any, far: SimTarget) -> None:
    """Further targeted calls for the same backend id, the node unchanged, reuse the connection: a
    session opened through it lives on."""
    env = modeld_scripted
    ops = _ops(env.conn)
    target = NodeTarget(far.endpoint, "far")
    sid = ops.target_open_session(target, far.model, CFG, timeout=T)
    env.conn.ensure_prefix(sid, prefix("kept"), timeout=T)
    for _ in range(3):
        ops.target_status(target, timeout=T)
        assert ops.endpoint(target, timeout=T)["instance_id"] == far.instance_id
    again = env.conn.ensure_prefix(sid, prefix("kept"), timeout=T)
    assert int(again.get("ReusedTokens", -1)) == int(again.get("PrefixTokens", -2)), (
        f"the session must live on with its prefix resident, got {again}"
    )


@clause("C-ENDPOINT-13", source="edge-cases.md:45 (TestUnit_Endpoint_RedialsAfterNodeRestartWithNewInstance)")
@pytest.mark.needs_scripting
def test_C_ENDPOINT_13_node_restart_is_redialed(modeld_scripted: Any, far: SimTarget) -> None:
    """The node restarts on the same address with a new instance: the next targeted call redials and
    is fenced to the new instance (no permanent stale_fence)."""
    env = modeld_scripted
    ops = _ops(env.conn)
    target = NodeTarget(far.endpoint, "far")
    assert ops.target_status(target, timeout=T)["owner_instance_id"] == far.instance_id
    old = far.instance_id
    new = far.restart(same_port=True)
    assert new != old
    assert ops.target_status(target, timeout=T)["owner_instance_id"] == new
    assert ops.endpoint(target, timeout=T)["instance_id"] == new


@clause("C-ENDPOINT-14", source=_SRC + " (health error → modeldconn: health probe <addr>: …)")
def test_C_ENDPOINT_14_unreachable_node(modeld_connector: Any, tmp_path: Path) -> None:
    """A node whose port is closed: endpoint and every targeted call fail with the connector's error,
    at once (nothing to wait for), and nothing is cached."""
    modeld_connector.configure(str(tmp_path / "no-lease-here"))
    ops = _ops(modeld_connector)
    target = NodeTarget(closed_port(), "gone")
    model = {"model_name": "tiny", "type": "llama"}
    calls: dict[str, Callable[[], Any]] = {
        "endpoint": lambda: ops.endpoint(target, timeout=T),
        "target_status": lambda: ops.target_status(target, timeout=T),
        "target_describe": lambda: ops.target_describe(target, model, CFG, timeout=T),
        "target_open_session": lambda: ops.target_open_session(target, model, CFG, timeout=T),
        "target_load_model": lambda: ops.target_load_model(target, model, CFG, timeout=T),
        "target_unload_model": lambda: ops.target_unload_model(target, 0, timeout=T),
        "target_embed": lambda: ops.target_embed(target, model, CFG, "x", timeout=T),
        "target_list_models": lambda: ops.target_list_models(target, timeout=T),
        "target_remove_model": lambda: ops.target_remove_model(target, "tiny", timeout=T),
        "target_disk_stats": lambda: ops.target_disk_stats(target, timeout=T),
        "target_push_model": lambda: ops.target_push_model(target, "p", "llama", _BODY, timeout=T),
    }
    for what, fn in calls.items():
        t0 = time.monotonic()
        err = raises_kind(fn)
        _not_a_verdict(err, f"{what} to a closed port")
        assert time.monotonic() - t0 < T, f"{what}: a refused connection must fail before the deadline"


@clause("C-ENDPOINT-15", source=_SRC + " (require ready and a non-empty instance)")
def test_C_ENDPOINT_15_not_ready_node(modeld_connector: Any, tmp_path: Path) -> None:
    """A node answering Health not ready, or ready without an instance id, is refused; once it answers
    ready with an instance, the same backend id works (the refusal was not cached)."""
    modeld_connector.configure(str(tmp_path / "no-lease-here"))
    ops = _ops(modeld_connector)
    stub = HealthStub(str(uuid.uuid4()), ready=False).start()
    try:
        target = NodeTarget(stub.endpoint, "stub")
        _not_a_verdict(raises_kind(lambda: ops.endpoint(target, timeout=T)), "endpoint of a node not ready")
        iid, stub.instance_id, stub.ready = stub.instance_id, "", True
        _not_a_verdict(raises_kind(lambda: ops.endpoint(target, timeout=T)), "endpoint without an instance")
        stub.instance_id = iid
        got = ops.endpoint(target, timeout=T)
        assert got == {"instance_id": iid, "backend": "llama", "ready": True}, got
    finally:
        stub.stop()


@clause("C-ENDPOINT-16", source="edge-cases.md:47 (TestUnit_CloseEndpoint_DropsCacheWithoutPanicking)")
@pytest.mark.needs_scripting
def test_C_ENDPOINT_16_close_endpoint(modeld_scripted: Any, far: SimTarget) -> None:
    """close_endpoint ends the cached connection (its sessions end), may be repeated, and a later
    targeted call redials."""
    env = modeld_scripted
    ops = _ops(env.conn)
    target = NodeTarget(far.endpoint, "far")
    sid = ops.target_open_session(target, far.model, CFG, timeout=T)
    env.conn.ensure_prefix(sid, prefix("soon gone"), timeout=T)
    ops.close_endpoint(target)
    ops.close_endpoint(target)
    err = raises_kind(lambda: env.conn.ensure_prefix(sid, prefix("soon gone"), timeout=T))
    assert err.kind in ("session_closed", "context_canceled", "stale_fence"), (
        f"a session of a closed endpoint must be over, got {err}"
    )
    assert ops.target_status(target, timeout=T)["owner_instance_id"] == far.instance_id


@clause("C-ENDPOINT-17", source="endpoint.go (the per-backend cache never evicts the local connection)")
@pytest.mark.needs_scripting
def test_C_ENDPOINT_17_caches_are_apart(modeld_scripted: Any, far: SimTarget) -> None:
    """Targeted calls and close_endpoint — to another node, or to the lease's own owner under a backend
    id — leave the lease-resolved connection and its sessions alone."""
    env = modeld_scripted
    ops = _ops(env.conn)
    sid = env.conn.open_session(env.model, CFG, timeout=T)
    env.conn.ensure_prefix(sid, prefix("lease path"), timeout=T)
    for target in (NodeTarget(far.endpoint, "far"), NodeTarget(env.target.endpoint, "near-by-address")):
        ops.target_status(target, timeout=T)
        ops.close_endpoint(target)
    again = env.conn.ensure_prefix(sid, prefix("lease path"), timeout=T)
    assert int(again.get("ReusedTokens", -1)) == int(again.get("PrefixTokens", -2)), (
        f"the lease-resolved session must live on, got {again}"
    )


@clause(
    "C-ENDPOINT-18", source="wire.md §9.1 (deadline); endpoint.go Endpoint (Health takes the caller's ctx)"
)
def test_C_ENDPOINT_18_silent_node_within_the_deadline(modeld_connector: Any, tmp_path: Path) -> None:
    """A node that accepts TCP and never answers: endpoint and a targeted call fail within the
    caller's deadline (not before it, not much after), as ``deadline_exceeded``: Go wraps the
    Health error, the caller's context ending, into the endpoint error."""
    modeld_connector.configure(str(tmp_path / "no-lease-here"))
    ops = _ops(modeld_connector)
    t = 1.0
    with silent_listener() as addr:
        target = NodeTarget(addr, "silent")
        for what, fn in (
            ("endpoint", lambda: ops.endpoint(target, timeout=t)),
            ("target_status", lambda: ops.target_status(target, timeout=t)),
        ):
            t0 = time.monotonic()
            err = raises_kind(fn)
            took = time.monotonic() - t0
            assert err.kind != HARNESS_TIMEOUT and err.kind not in PROBE_KINDS, f"{what}: {err}"
            assert err.kind == "deadline_exceeded", f"{what}: the caller's deadline ended it, got {err}"
            assert t <= took <= t * 1.2 + 0.05, f"{what}: ended after {took:.3f} s for a {t} s deadline"


@clause(
    "C-ENDPOINT-19",
    source="lease-and-discovery.md §7.3 (no answer → unreachable); endpoint.go Endpoint (dial)",
)
def test_C_ENDPOINT_19_addresses_that_are_no_address(modeld_connector: Any, tmp_path: Path) -> None:
    """An endpoint that is not a dialable address (a bad port, a broken escape, no closing bracket):
    named by a fresh lease, the probe and a lease-resolved call say unreachable; reached by address,
    the connector's error. Each at once, never a success and never a hang."""
    root = str(tmp_path / "root")
    ops = target_ops(modeld_connector)
    for addr in ("127.0.0.1:%zz", "127.0.0.1:99999", "[::1"):
        write_lease(root, lease_bytes(endpoint=addr))
        modeld_connector.configure(root, binary_env(root, True))
        t0 = time.monotonic()
        err = raises_kind(lambda: modeld_connector.status(timeout=T))
        assert err.kind == "unreachable", f"lease endpoint {addr!r}: status must be unreachable, got {err}"
        probe = supported(lambda: modeld_connector.probe(timeout=T), "probe")
        assert probe["state"] == "unreachable", f"lease endpoint {addr!r}: probe {probe}"
        if ops is not None:
            node = NodeTarget(addr, "odd")
            _not_a_verdict(
                raises_kind(functools.partial(ops.endpoint, node, timeout=T)), f"endpoint({addr!r})"
            )
        assert time.monotonic() - t0 < T, f"{addr!r}: nothing here needs the deadline"
