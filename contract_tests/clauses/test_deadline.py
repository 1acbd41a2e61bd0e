"""C-DEADLINE: the caller's deadline holds, tightly — a wedged daemon, a silent port, a hanging answer.

A call given ``timeout=T`` against a daemon that never answers ends with a typed error within
[T, T + 20 % + 50 ms] (``_util.deadline_bounds``): not before the caller's deadline (a connector may
not substitute a shorter one of its own) and not much after it (nor a longer one). A late answer is
measured again (at most three tries: a loaded machine delays the harness too); an early one fails at
once. Every method kind is held to it: lease-resolved unary calls (their probe and the call itself),
the server stream (Decode), the client stream (PushModel, where the connector offers it) and the
session calls that take the caller's context (EnsurePrefix, PrefillSuffix, Snapshot, Restore; Go's
``ExplainContext`` and ``Close`` take none, so no deadline is required of them).

"Never answers" is made three ways: a listener that accepts TCP and never speaks (the probe's Health
hangs), a SIGSTOPped ``modeld-sim serve`` (nothing on the connection answers, not even a reset), and the
simulator's ``hang`` fault (the call gets no answer; at the ``grpc-timeout`` it carried the stream is
reset, as grpc-go does).

Sources: real-daemon-observations.md (wedged daemon: the Go connector fails after its deadline),
lease-and-discovery.md §7.3 (timeout → unreachable), wire.md §9.1 (deadline_exceeded),
session-semantics.md §4.4."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from modeld_contract.clauses._util import (
    DEADLINE_S,
    binary_env,
    counting_listener,
    hold_deadline,
    lease_bytes,
    optional,
    prefix,
    write_lease,
)
from modeld_contract.targets import SubprocessSimTarget

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
T = DEADLINE_S
#: The probe could not confirm the owner in time (Go: ``ErrUnreachable``), or the deadline is reported.
NO_OWNER_IN_TIME = ("unreachable", "deadline_exceeded")
#: A small body the simulator's store accepts as a pushed llama model.
PUSH_BODY = b"GGUF" + bytes(60)

#: Lease-resolved calls (probe first), each with its wire method and a call given the deadline ``t``.
LEASE_RESOLVED: dict[str, tuple[str, Callable[[Any, dict[str, Any], float], Any]]] = {
    "status": ("Status", lambda c, m, t: c.status(timeout=t)),
    "describe": ("Describe", lambda c, m, t: c.describe(m, CFG, timeout=t)),
    "open_session": ("OpenSession", lambda c, m, t: c.open_session(m, CFG, timeout=t)),
    "load_model": ("LoadModel", lambda c, m, t: c.load_model(m, CFG, timeout=t)),
    "unload_model": ("UnloadModel", lambda c, m, t: c.unload_model(0, timeout=t)),
    "embed": ("Embed", lambda c, m, t: c.embed(m, CFG, "x", timeout=t)),
    "list_models": ("ListModels", lambda c, m, t: c.list_models(timeout=t)),
    "remove_model": ("RemoveModel", lambda c, m, t: c.remove_model("nothing", timeout=t)),
    "disk_stats": ("DiskStats", lambda c, m, t: c.disk_stats(timeout=t)),
}

#: Session calls that take the caller's context (Go: ``ctx`` argument), with their wire method.
SESSION_CALLS: dict[str, tuple[str, Callable[[Any, str, dict[str, Any], float], Any]]] = {
    "ensure_prefix": ("EnsurePrefix", lambda c, s, snap, t: c.ensure_prefix(s, prefix("hello"), timeout=t)),
    "prefill_suffix": ("PrefillSuffix", lambda c, s, snap, t: c.prefill_suffix(s, prefix(" x"), timeout=t)),
    "snapshot": ("Snapshot", lambda c, s, snap, t: c.snapshot(s, timeout=t)),
    "restore": ("Restore", lambda c, s, snap, t: c.restore(s, snap, timeout=t)),
}


@pytest.fixture
def wedged(tmp_path: Any) -> Iterator[SubprocessSimTarget]:
    t = SubprocessSimTarget(str(tmp_path / "wedged"))
    t.wedge()
    yield t
    t.unwedge()
    t.stop()


@pytest.fixture
def subprocess_sim(tmp_path: Any) -> Iterator[SubprocessSimTarget]:
    t = SubprocessSimTarget(str(tmp_path / "served"))
    yield t
    t.unwedge()
    t.stop()


@clause("C-DEADLINE-01", source="real-daemon-observations.md (wedged daemon, SIGSTOP)")
def test_C_DEADLINE_01_wedged_daemon(modeld_connector: Any, wedged: SubprocessSimTarget) -> None:
    """A SIGSTOPped daemon: available/backend answer from the lease; status ends at the caller's
    deadline (unreachable), within [T, T + 20 % + 50 ms]."""
    modeld_connector.configure(wedged.data_root)
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == "llama"
    hold_deadline(
        "status on a wedged daemon", lambda: modeld_connector.status(timeout=T), T, NO_OWNER_IN_TIME
    )


@clause("C-DEADLINE-02", source="lease-and-discovery.md §7.3 (health timeout → unreachable)")
@pytest.mark.parametrize("method", sorted(LEASE_RESOLVED))
def test_C_DEADLINE_02_silent_port(modeld_connector: Any, tmp_path: Any, method: str) -> None:
    """A port that accepts TCP but never speaks HTTP/2: every lease-resolved call ends at the caller's
    deadline (unreachable), within [T, T + 20 % + 50 ms]."""
    root = str(tmp_path / "data")
    call = LEASE_RESOLVED[method][1]
    model = {"model_name": "tiny", "type": "llama"}
    with counting_listener() as silent:
        write_lease(root, lease_bytes(endpoint=silent.endpoint))
        modeld_connector.configure(root, binary_env(root, True))
        hold_deadline(
            f"{method} against a silent port", lambda: call(modeld_connector, model, T), T, NO_OWNER_IN_TIME
        )


@clause(
    "C-DEADLINE-03", source="wire.md §9.1 (deadline_exceeded); real-daemon-observations.md (grpc-timeout)"
)
@pytest.mark.needs_scripting
@pytest.mark.parametrize("method", sorted(LEASE_RESOLVED))
def test_C_DEADLINE_03_hanging_unary_call(modeld_scripted: Any, method: str) -> None:
    """A daemon that answers Health but never answers the call: every lease-resolved unary call ends
    with deadline_exceeded at the caller's deadline, within [T, T + 20 % + 50 ms]."""
    env = modeld_scripted
    wire, call = LEASE_RESOLVED[method]
    env.target.faults.add(method=wire, action="hang")
    hold_deadline(f"{method} ({wire} hangs)", lambda: call(env.conn, env.model, T), T, ("deadline_exceeded",))
    env.target.faults.clear()


@clause("C-DEADLINE-04", source="session-semantics.md §4.4; wire.md §8.1")
@pytest.mark.needs_scripting
def test_C_DEADLINE_04_hanging_decode(modeld_scripted: Any) -> None:
    """A Decode (server stream) the daemon never answers ends with deadline_exceeded and no text at the
    caller's deadline, within [T, T + 20 % + 50 ms]."""
    env = modeld_scripted
    sid = env.conn.open_session(env.model, CFG)
    env.conn.ensure_prefix(sid, prefix("hello"))
    env.target.faults.add(method="Decode", action="hang")
    texts: list[str] = []

    def decode() -> Any:
        res = env.conn.decode(sid, {"MaxTokens": 3}, timeout=T)
        texts.extend(str(c.get("text")) for c in res.chunks if c.get("text"))
        return res

    hold_deadline("decode (Decode hangs)", decode, T, ("deadline_exceeded",))
    env.target.faults.clear()
    assert not texts, texts


@clause("C-DEADLINE-05", source="session-semantics.md §2.1 (session calls take the caller's context)")
@pytest.mark.needs_scripting
@pytest.mark.parametrize("method", sorted(SESSION_CALLS))
def test_C_DEADLINE_05_hanging_session_call(modeld_scripted: Any, method: str) -> None:
    """A session call the daemon never answers ends with deadline_exceeded at the caller's deadline,
    within [T, T + 20 % + 50 ms]."""
    env = modeld_scripted
    wire, call = SESSION_CALLS[method]
    sid = env.conn.open_session(env.model, CFG)
    env.conn.ensure_prefix(sid, prefix("hello"))
    snap = env.conn.snapshot(sid)
    env.target.faults.add(method=wire, action="hang")
    hold_deadline(f"{method} ({wire} hangs)", lambda: call(env.conn, sid, snap, T), T, ("deadline_exceeded",))
    env.target.faults.clear()


@clause("C-DEADLINE-06", source="wire.md §9.1; edge-cases.md:100-104 (PushModel); client stream")
@pytest.mark.needs_scripting
def test_C_DEADLINE_06_hanging_push(modeld_scripted: Any) -> None:
    """A PushModel (client stream) the daemon never answers ends with deadline_exceeded at the caller's
    deadline, within [T, T + 20 % + 50 ms] (not applicable to a connector without push_model)."""
    env = modeld_scripted
    push = optional(env.conn, "push_model")
    env.target.faults.add(method="PushModel", action="hang")
    hold_deadline(
        "push_model (PushModel hangs)",
        lambda: push("pushed", "llama", PUSH_BODY, timeout=T),
        T,
        ("deadline_exceeded",),
    )
    env.target.faults.clear()


@clause("C-DEADLINE-07", source="real-daemon-observations.md (wedged daemon); session-semantics.md §2.1")
def test_C_DEADLINE_07_session_calls_on_a_wedged_daemon(
    modeld_connector: Any, subprocess_sim: SubprocessSimTarget
) -> None:
    """The daemon freezes (SIGSTOP) under an open session: nothing answers, not even a stream reset, so
    the connector's own clock must end each session call (and a Decode) at the caller's deadline, within
    [T, T + 20 % + 50 ms]."""
    conn = modeld_connector
    conn.configure(subprocess_sim.data_root)
    sid = conn.open_session(subprocess_sim.model, CFG)
    conn.ensure_prefix(sid, prefix("hello"))
    snap = conn.snapshot(sid)
    subprocess_sim.wedge()
    bad: list[str] = []
    calls: dict[str, Any] = {
        name: (lambda call=call: call(conn, sid, snap, T)) for name, (_, call) in SESSION_CALLS.items()
    }
    calls["decode"] = lambda: conn.decode(sid, {"MaxTokens": 2}, timeout=T)
    for method in sorted(calls):
        try:
            hold_deadline(f"{method} on a wedged daemon", calls[method], T, ("deadline_exceeded",))
        except AssertionError as exc:
            bad.append(str(exc))
    subprocess_sim.unwedge()
    assert not bad, "\n".join(bad)
