"""C-ERR: every sentinel of the wire's table, on every method, surfaces as its typed error.

The daemon is made to answer each method with each sentinel (``modeld_sim`` fault rules, the exact
status the daemon sends: code + ``"<token>: <text>"``); the connector must report that token.
Exceptions the contract itself makes: ``open_session`` meeting ``model_switch_required`` /
``model_not_active`` once loads the model and retries (session-semantics.md §7).

Sources: edge-cases.md:72,73,81,88,94; wire.md §9.1–9.3; real-daemon-observations.md (backend)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from modeld_contract.clauses._util import empty_slot, foreign_type, prefix, raises_kind
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.oracles.errors import TOKENS

clause = pytest.mark.clause
CFG = {"NumCtx": 128}

_UNARY: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "status": ("Status", lambda c, m: c.status()),
    "describe": ("Describe", lambda c, m: c.describe(m, CFG)),
    "load_model": ("LoadModel", lambda c, m: c.load_model(m, CFG)),
    "unload_model": ("UnloadModel", lambda c, m: c.unload_model(0)),
    "embed": ("Embed", lambda c, m: c.embed(m, CFG, "x")),
    "list_models": ("ListModels", lambda c, m: c.list_models()),
    "remove_model": ("RemoveModel", lambda c, m: c.remove_model("nothing")),
    "disk_stats": ("DiskStats", lambda c, m: c.disk_stats()),
}
_SESSION: dict[str, tuple[str, Callable[[Any, str, Any], Any]]] = {
    "ensure_prefix": ("EnsurePrefix", lambda c, s, snap: c.ensure_prefix(s, prefix("hi"))),
    "prefill_suffix": ("PrefillSuffix", lambda c, s, snap: c.prefill_suffix(s, prefix("yo"))),
    "snapshot": ("Snapshot", lambda c, s, snap: c.snapshot(s)),
    "restore": ("Restore", lambda c, s, snap: c.restore(s, snap)),
}
_NUM = {
    name: i for i, name in enumerate([*_UNARY, "open_session", *_SESSION, "decode", "explain_context"], 1)
}


def _mismatch(method: str, token: str, err: ConnectorError | None, got: Any = None) -> str:
    if err is None:
        return f"{method}: {token} → returned {got!r} instead of the typed error"
    return f"{method}: {token} → {err.kind} ({err.message})"


@pytest.mark.needs_scripting
@pytest.mark.parametrize(
    "method",
    [
        pytest.param(
            m, marks=clause(f"C-ERR-{_NUM[m]:02d}", source="wire.md §9.1-9.3; edge-cases.md:72,94"), id=m
        )
        for m in _UNARY
    ],
)
def test_C_ERR_unary_sentinels(modeld_scripted: Any, method: str) -> None:
    """Every sentinel answered by a lease-resolved call surfaces as that typed error."""
    wire, call = _UNARY[method]
    env = modeld_scripted
    bad: list[str] = []
    for token in TOKENS:
        env.target.faults.clear()
        env.target.faults.error(wire, token)
        try:
            got = call(env.conn, env.model)
        except ConnectorError as err:
            if not err.matches(token):
                bad.append(_mismatch(method, token, err))
        else:
            bad.append(_mismatch(method, token, None, got))
    env.target.faults.clear()
    assert not bad, "\n".join(bad)


@clause(f"C-ERR-{_NUM['open_session']:02d}", source="wire.md §9.1; session-semantics.md §7; edge-cases.md:81")
@pytest.mark.needs_scripting
def test_C_ERR_open_session_sentinels(modeld_scripted: Any) -> None:
    """open_session: every sentinel typed; switch-required / not-active once → load + retry succeeds."""
    env = modeld_scripted
    bad: list[str] = []
    for token in TOKENS:
        env.target.faults.clear()
        env.target.faults.error("OpenSession", token)
        try:
            sid = env.conn.open_session(env.model, CFG)
        except ConnectorError as err:
            if token in ("model_switch_required", "model_not_active"):
                bad.append(f"open_session: one {token} must be retried after LoadModel, got {err.kind}")
            elif not err.matches(token):
                bad.append(_mismatch("open_session", token, err))
        else:
            env.conn.close_session(sid)
            if token not in ("model_switch_required", "model_not_active"):
                bad.append(_mismatch("open_session", token, None, sid))
    # twice in a row: the retry is made once, then the error is returned
    env.target.faults.clear()
    env.target.faults.error("OpenSession", "model_switch_required", first=2)
    twice = raises_kind(lambda: env.conn.open_session(env.model, CFG))
    if not twice.matches("model_switch_required"):
        bad.append(f"open_session: switch-required twice → {twice.kind}")
    env.target.faults.clear()
    assert not bad, "\n".join(bad)


@pytest.mark.needs_scripting
@pytest.mark.parametrize(
    "method",
    [
        pytest.param(
            m, marks=clause(f"C-ERR-{_NUM[m]:02d}", source="wire.md §8.1, §9.1; edge-cases.md:88"), id=m
        )
        for m in [*_SESSION, "decode", "explain_context"]
    ],
)
def test_C_ERR_session_sentinels(modeld_scripted: Any, method: str) -> None:
    """Every sentinel answered by a session call surfaces as that typed error (explain: or Closed)."""
    env = modeld_scripted
    bad: list[str] = []
    for token in TOKENS:
        env.target.faults.clear()
        sid = env.conn.open_session(env.model, CFG)
        env.conn.ensure_prefix(sid, prefix("hello"))
        snap = env.conn.snapshot(sid)
        if method == "decode":
            env.target.faults.error("Decode", token)
            res = env.conn.decode(sid, {"MaxTokens": 2})
            if res.error is None or not res.error.matches(token):
                bad.append(_mismatch(method, token, res.error, res.chunks))
        elif method == "explain_context":
            env.target.faults.error("ExplainContext", token)
            try:
                rep = env.conn.explain_context(sid)
            except ConnectorError as err:
                if not err.matches(token):
                    bad.append(_mismatch(method, token, err))
            else:
                if rep.get("Closed") is not True:
                    bad.append(_mismatch(method, token, None, rep))
        else:
            wire, call = _SESSION[method]
            env.target.faults.error(wire, token)
            try:
                got = call(env.conn, sid, snap)
            except ConnectorError as err:
                if not err.matches(token):
                    bad.append(_mismatch(method, token, err))
            else:
                bad.append(_mismatch(method, token, None, got))
        env.target.faults.clear()
        with contextlib.suppress(ConnectorError):
            env.conn.close_session(sid)
    assert not bad, "\n".join(bad)


@clause("C-ERR-16", source="wire.md §9.3 (unknown token → raw status)")
@pytest.mark.needs_scripting
def test_C_ERR_16_foreign_status_is_not_a_sentinel(modeld_scripted: Any) -> None:
    """A status outside the table (Unavailable "boom") is not mistaken for any sentinel."""
    env = modeld_scripted
    env.target.faults.add(method="Status", action="status", code="Unavailable", message="boom", first=1)
    err = raises_kind(lambda: env.conn.status())
    assert not any(err.matches(t) for t in TOKENS), err


@clause(
    "C-ERR-17",
    source="real-daemon-observations.md (backend llama: Describe openvino); session-semantics.md §3.2; "
    "wire.md §9.1",
)
def test_C_ERR_17_backend_mismatch_on_describe(modeld: Any) -> None:
    """describe / embed with a type the daemon does not serve (openvino on llama, llama on openvino; the
    backend from the target's lease) → backend_mismatch (never swallowed)."""
    ref = {**modeld.model, "type": foreign_type(modeld.backend)}
    empty_slot(modeld.conn)  # Embed on an explicitly loaded model would be model_busy first
    assert raises_kind(lambda: modeld.conn.describe(ref, CFG)).kind == "backend_mismatch"
    assert raises_kind(lambda: modeld.conn.embed(ref, CFG, "x")).kind == "backend_mismatch"


@clause(
    "C-ERR-18",
    source="real-daemon-observations.md (OpenSession openvino → model_load_failed); "
    "session-semantics.md §3.2",
)
def test_C_ERR_18_backend_mismatch_on_open_is_load_failed(modeld: Any) -> None:
    """open_session with a type the daemon does not serve (backend from the lease), on an empty slot →
    model_load_failed."""
    ref = {**modeld.model, "type": foreign_type(modeld.backend)}
    empty_slot(modeld.conn)
    assert raises_kind(lambda: modeld.conn.open_session(ref, CFG)).kind == "model_load_failed"


@clause("C-ERR-19", source="edge-cases.md:81; wire.md §9.3 (code Canceled)")
@pytest.mark.needs_scripting
def test_C_ERR_19_canceled_status_is_canceled(modeld_scripted: Any) -> None:
    """A bare Canceled status (no token) surfaces as context_canceled."""
    env = modeld_scripted
    env.target.faults.add(method="Status", action="status", code="Canceled", message="gone", first=1)
    assert raises_kind(lambda: env.conn.status()).matches("context_canceled")


@clause("C-ERR-20", source="edge-cases.md:79; wire.md §9.2 (ErrorInfo)")
@pytest.mark.needs_scripting
def test_C_ERR_20_overflow_detail_over_unary(modeld_scripted: Any) -> None:
    """A unary overflow with ErrorInfo arrives typed with identical fields."""
    env = modeld_scripted
    sid = env.conn.open_session(env.model, {"NumCtx": 4})
    err = raises_kind(lambda: env.conn.ensure_prefix(sid, prefix("hello")))
    assert err.kind == "context_overflow"
    assert err.detail is not None
    assert (
        err.detail["stage"],
        err.detail["resident_tokens"],
        err.detail["additional_tokens"],
        err.detail["num_ctx"],
    ) == ("prefix", 0, 5, 4)
