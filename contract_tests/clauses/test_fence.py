"""C-FENCE: every fenced call carries the lease's owner instance; a changed owner is followed.

Sources: edge-cases.md:45,65,77,94; wire.md §5, §6; session-semantics.md §6, §7."""

from __future__ import annotations

from typing import Any

import pytest
from modeld_contract.clauses._util import prefix, raises_kind
from modeld_contract.connectors.protocol import ConnectorError

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


@clause("C-FENCE-01", source="edge-cases.md:65,94; wire.md §5 (metadata + body fence)")
def test_C_FENCE_01_fenced_calls_succeed_on_the_owner(modeld: Any) -> None:
    """Every fenced call (status, describe, load, open, session calls, node admin, unload) is accepted."""
    c, m = modeld.conn, modeld.model
    c.status()
    c.describe(m, CFG)
    c.list_models()
    c.disk_stats()
    gen = int(c.load_model(m, CFG)["generation"])
    sid = c.open_session(m, CFG)
    c.ensure_prefix(sid, prefix("hello"))
    c.prefill_suffix(sid, prefix(" you"))
    assert c.decode(sid, {"MaxTokens": 1}).error is None
    c.explain_context(sid)
    c.restore(sid, c.snapshot(sid))
    c.close_session(sid)
    c.unload_model(gen)


@clause("C-FENCE-02", source="edge-cases.md:77,94; wire.md §9.1 (stale_fence)")
@pytest.mark.needs_scripting
def test_C_FENCE_02_stale_fence_is_typed(modeld_scripted: Any) -> None:
    """A stale_fence answer surfaces as stale_fence (OpenSession and node admin)."""
    env = modeld_scripted
    for wire, call in (
        ("OpenSession", lambda: env.conn.open_session(env.model, CFG)),
        ("ListModels", lambda: env.conn.list_models()),
        ("DiskStats", lambda: env.conn.disk_stats()),
        ("RemoveModel", lambda: env.conn.remove_model("x")),
    ):
        env.target.faults.clear()
        env.target.faults.error(wire, "stale_fence")
        assert raises_kind(call).kind == "stale_fence", wire
    env.target.faults.clear()


@clause("C-FENCE-03", source="edge-cases.md:45; session-semantics.md §7")
@pytest.mark.needs_scripting
def test_C_FENCE_03_restart_on_same_address_redials(modeld_scripted: Any) -> None:
    """The node restarts on the same address with a new instance: the next call reaches it."""
    env = modeld_scripted
    assert env.conn.status()["owner_instance_id"] == env.target.instance_id
    new = env.target.restart(same_port=True)
    st = env.conn.status()
    assert st["owner_instance_id"] == new
    sid = env.conn.open_session(env.model, CFG)
    env.conn.ensure_prefix(sid, prefix("after restart"))
    env.conn.close_session(sid)


@clause("C-FENCE-04", source="wire.md §6; session-semantics.md §6 (owner takeover / restart)")
@pytest.mark.needs_scripting
def test_C_FENCE_04_old_handle_after_restart(modeld_scripted: Any) -> None:
    """A session of the previous owner is dead after a restart: stale_fence, session_closed or canceled."""
    env = modeld_scripted
    sid = env.conn.open_session(env.model, CFG)
    env.conn.ensure_prefix(sid, prefix("hello"))
    env.target.restart(same_port=True)
    env.conn.status()
    err = raises_kind(lambda: env.conn.ensure_prefix(sid, prefix("hello")))
    # The real Go connector closed the old connection when it redialed the new instance (modeldconn.go
    # dial): the old session's call fails in grpc-go's closed ClientConn (Canceled "grpc: the client
    # connection is closing"), which transport/grpc/errors.go decodeError maps to context.Canceled.
    assert err.kind in ("stale_fence", "session_closed", "context_canceled"), err


@clause("C-FENCE-05", source="wire.md §5 (fence = lease instance)")
def test_C_FENCE_05_status_names_the_lease_instance(modeld: Any) -> None:
    """The owner the connector talks to is the one the lease names (Status owner == lease instance_id,
    read by the harness; the probe's own report of it is C-PROBE-01)."""
    assert modeld.conn.status()["owner_instance_id"] == modeld.target.instance_id


@clause("C-FENCE-06", source="wire.md §6 (handles are opaque, bound to the owner)")
def test_C_FENCE_06_sessions_are_independent_of_each_other(modeld: Any) -> None:
    """A closed session stays closed while a new one on the same owner works."""
    c = modeld.conn
    s1 = c.open_session(modeld.model, CFG)
    c.close_session(s1)
    s2 = c.open_session(modeld.model, CFG)
    c.ensure_prefix(s2, prefix("abc"))
    try:
        c.ensure_prefix(s1, prefix("abc"))
    except ConnectorError as err:
        assert err.kind == "session_closed"
    else:
        raise AssertionError("a closed session answered")
    c.close_session(s2)
