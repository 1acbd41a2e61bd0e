"""C-LOAD: the load an open_session makes by itself, and its failure.

OpenSession answered ``model_switch_required`` or ``model_not_active`` makes the connector load the
model (LoadModel with the same identity) and retry OpenSession once. When that load fails, the caller
gets the **load's** error as it is — not the switch it was meant to resolve, not a second OpenSession.
The same holds for a session opened on a node reached by address (Go ``OpenSessionTarget``).

Sources: session-semantics.md §7 ("a LoadModel error is returned as-is"); wire.md §9.1; modeldconn.go
OpenSession / OpenSessionTarget (v0.36.0)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modeld_contract.applicability import not_applicable
from modeld_contract.clauses._util import prefix, raises_kind
from modeld_contract.connectors.extensions import NodeTarget, target_ops

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
T = 10.0

#: (what OpenSession answers, what the implicit LoadModel answers)
_FAILED_LOADS = [("model_switch_required", "insufficient_memory"), ("model_not_active", "device_busy")]


def _opener(env: Any, targeted: bool) -> Callable[[], str]:
    if not targeted:
        return lambda: str(env.conn.open_session(env.model, CFG, timeout=T))
    ops = target_ops(env.conn)
    if ops is None:
        not_applicable("the connector has no targeted API (endpoint(addr))")
    node = NodeTarget(env.target.endpoint, "load-node")
    return lambda: str(ops.target_open_session(node, env.model, CFG, timeout=T))


def _counts(env: Any) -> tuple[int, int]:
    fs = env.target.faults.set
    return fs.call_count("OpenSession"), fs.call_count("LoadModel")


@pytest.mark.needs_scripting
@pytest.mark.parametrize(
    ("targeted", "switch", "load_error"),
    [
        pytest.param(
            targeted,
            switch,
            load_error,
            marks=clause(f"C-LOAD-{n:02d}", source="session-semantics.md §7; modeldconn.go OpenSession"),
            id=f"{'targeted' if targeted else 'lease'}-{switch}",
        )
        for n, (targeted, (switch, load_error)) in enumerate(
            [(t, pair) for t in (False, True) for pair in _FAILED_LOADS], 1
        )
    ],
)
def test_C_LOAD_failed_implicit_load(
    modeld_scripted: Any, targeted: bool, switch: str, load_error: str
) -> None:
    """OpenSession says switch / not active, the load it triggers fails: the caller gets the load's
    error, after exactly one OpenSession and one LoadModel."""
    env = modeld_scripted
    open_session = _opener(env, targeted)
    opens, loads = _counts(env)
    env.target.faults.error("OpenSession", switch)
    env.target.faults.error("LoadModel", load_error)
    err = raises_kind(open_session)
    env.target.faults.clear()
    assert err.kind == load_error and err.matches(load_error), (
        f"OpenSession {switch} → LoadModel {load_error}: the caller must get {load_error}, got {err}"
    )
    assert not err.matches(switch), f"the switch error must not surface once the load failed: {err}"
    opens2, loads2 = _counts(env)
    assert (opens2 - opens, loads2 - loads) == (1, 1), (
        f"want one OpenSession and one LoadModel, the daemon saw {opens2 - opens} and {loads2 - loads}"
    )


@clause("C-LOAD-05", source="session-semantics.md §7; modeldconn.go OpenSessionTarget")
@pytest.mark.needs_scripting
def test_C_LOAD_05_targeted_open_loads_and_retries(modeld_scripted: Any) -> None:
    """A session opened on a node by address: switch required once → LoadModel, one more OpenSession,
    and the session works."""
    env = modeld_scripted
    open_session = _opener(env, True)
    opens, loads = _counts(env)
    env.target.faults.error("OpenSession", "model_switch_required")
    sid = open_session()
    env.target.faults.clear()
    opens2, loads2 = _counts(env)
    assert (opens2 - opens, loads2 - loads) == (2, 1), (
        f"want OpenSession, LoadModel, OpenSession; the daemon saw {opens2 - opens} and {loads2 - loads}"
    )
    status = env.conn.ensure_prefix(sid, prefix("loaded on demand"), timeout=T)
    assert int(status.get("PrefixTokens", 0)) > 0, status
