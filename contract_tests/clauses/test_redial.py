"""C-REDIAL: every lease-resolved call follows a takeover, whatever the connector had cached.

A connector keeps the connection to the owner it last resolved (Go: one client keyed by endpoint and
instance for the session path, one per backend id for the node-admin path). When the lease names a new
owner, the next call of every kind must go to the new owner, whatever the connector had cached. The
takeover is the one the contract describes: the old owner's lease lapses, a new owner takes it, and the
old owner, having lost its lease, stops serving (session-semantics.md §6). Each kind is checked on its
own: the call is made once before the takeover (so the old owner is what the connector has cached),
then once after; the new owner's own call count tells that it got the call.

Sources: edge-cases.md:10,45; lease-and-discovery.md §5 (re-resolve on every call); session-semantics.md
§6; modeldconn.go dial, endpoint.go Endpoint (v0.36.0)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from modeld_contract.clauses._util import binary_env, optional
from modeld_contract.connectors.protocol import ConnectorError

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
T = 5.0
_BODY = b"GGUF pushed through a takeover " * 8


def _push(c: Any, m: Any, name: str) -> Any:
    return optional(c, "push_model")(name, "llama", _BODY, hashlib.sha256(_BODY).hexdigest(), timeout=T)


#: connector op → (wire method, the call; ``n`` numbers the calls so each push is a new model)
_CALLS: dict[str, tuple[str, Callable[[Any, Any, int], Any]]] = {
    "status": ("Status", lambda c, m, n: c.status(timeout=T)),
    "describe": ("Describe", lambda c, m, n: c.describe(m, CFG, timeout=T)),
    "open_session": ("OpenSession", lambda c, m, n: c.open_session(m, CFG, timeout=T)),
    "load_model": ("LoadModel", lambda c, m, n: c.load_model(m, CFG, timeout=T)),
    "unload_model": ("UnloadModel", lambda c, m, n: c.unload_model(0, timeout=T)),
    "embed": ("Embed", lambda c, m, n: c.embed(m, CFG, "follow the lease", timeout=T)),
    "list_models": ("ListModels", lambda c, m, n: c.list_models(timeout=T)),
    "remove_model": ("RemoveModel", lambda c, m, n: c.remove_model(f"never-there-{n}", timeout=T)),
    "disk_stats": ("DiskStats", lambda c, m, n: c.disk_stats(timeout=T)),
    "push_model": ("PushModel", lambda c, m, n: _push(c, m, f"pushed-{n}")),
}
#: answers that are the node's own (the call reached a live owner and was judged there)
_NODE_ANSWERS = {"remove_model": ("model_not_found",)}


def _reached(op: str, call: Callable[[], Any]) -> str | None:
    """None when the call got the owner's answer; else why not."""
    try:
        call()
    except ConnectorError as err:
        if any(err.matches(k) for k in _NODE_ANSWERS.get(op, ())):
            return None
        return f"{op} failed: {err}"
    return None if op not in _NODE_ANSWERS else f"{op} succeeded although the owner holds no such model"


@pytest.mark.needs_scripting
@pytest.mark.parametrize(
    "op",
    [
        pytest.param(
            op,
            marks=clause(f"C-REDIAL-{i:02d}", source="edge-cases.md:10,45; lease-and-discovery.md §5"),
            id=op,
        )
        for i, op in enumerate(_CALLS, 1)
    ],
)
def test_C_REDIAL_call_follows_the_takeover(
    modeld_connector: Any, modeld_cluster: Any, tmp_path: Any, op: str
) -> None:
    """With the old owner cached, the call after a takeover (the old owner stopped serving) gets the
    new owner's answer, and the new owner saw exactly that call."""
    wire, call = _CALLS[op]
    c = modeld_connector
    c.configure(modeld_cluster.data_root, binary_env(str(tmp_path / "b"), True))
    old = modeld_cluster.owner
    why = _reached(op, lambda: call(c, modeld_cluster.model, 1))
    assert why is None, f"before the takeover: {why}"
    assert old.faults.set.call_count(wire) >= 1, f"{op} never reached the owner before the takeover"

    modeld_cluster.takeover()
    old.stop()  # it lost its lease: it stops serving (its lease record is the new owner's now)
    new = modeld_cluster.owner
    assert new.instance_id != old.instance_id
    why = _reached(op, lambda: call(c, modeld_cluster.model, 2))
    assert why is None, f"after the takeover: {why}"
    assert new.faults.set.call_count(wire) == 1, (
        f"{op}: the new owner saw {new.faults.set.call_count(wire)} {wire} calls, want 1"
    )
