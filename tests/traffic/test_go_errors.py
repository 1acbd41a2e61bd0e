"""Errors as the Go connector reports them: for every error line of ``go-connector.api.jsonl`` our
exception (from the traffic walk) has Go's text, is the class of the sentinel Go's ``errors.Is``
matched, and keeps the server's message (which is the real daemon's, ``go-connector.wire.jsonl``).

One deliberate difference (docs/conformance/go-modeldconn.md): OpenSession with a model typed for
another backend raises :class:`~modeldconn.wire.errors.BackendMismatchLoadFailed`, both a
``ModelLoadFailed`` (what Go matched) and a ``BackendMismatch``; backend none's
``model_load_failed`` stays a plain ``ModelLoadFailed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from traffic_relay import go_api, go_wire, normalise
from traffic_walk import CFG, REF, Walk, go_rpcs_by_call, run_walk

import modeldconn as mc
from modeld_sim.simulator import Simulator
from modeldconn.wire import errors

#: The sentinel token Go's errors.Is matched → our exception class (an oracle written out here,
#: independent of modeldconn's own table).
SENTINEL_CLASS: dict[str, type[errors.SentinelError]] = {
    "context_overflow": errors.ContextOverflow,
    "session_closed": errors.SessionClosed,
    "model_busy": errors.ModelBusy,
    "backend_mismatch": errors.BackendMismatch,
    "model_load_failed": errors.ModelLoadFailed,
    "slot_generation_stale": errors.SlotGenerationStale,
    "model_not_found": errors.ModelNotFound,
}
#: Where ours matches more than Go's errors.Is did, on purpose.
EXTRA_TOKENS = {"OpenSession.foreign_type": {"backend_mismatch"}}

ERROR_LINES = [d for d in go_api() if "error" in d]


@pytest.fixture(scope="module")
def walk() -> Iterator[Walk]:
    yield run_walk()


def test_traffic_errors_every_go_error_line_is_tested() -> None:
    assert [d["call"] for d in ERROR_LINES] == [
        "EnsurePrefix.overflow",
        "EnsurePrefix.after_close",
        "OpenSession.busy",
        "Describe.foreign_type",
        "OpenSession.foreign_type",
        "LoadModel.stale",
        "UnloadModel.stale",
        "OpenSession.unknown_name",
    ]
    assert all(len(d["is"]) == 1 and d["is"][0] in SENTINEL_CLASS for d in ERROR_LINES)


@pytest.mark.parametrize("line", ERROR_LINES, ids=[d["call"] for d in ERROR_LINES])
def test_traffic_error_is_what_go_reported(line: dict[str, Any], walk: Walk) -> None:
    call = line["call"]
    err = walk.outcome(call).error
    assert err is not None, f"{call}: no error, Go: {line['error']!r}"
    # Go's text (the sentinel wrapped around the server's message)
    assert str(err) == line["error"]
    # the class of the sentinel Go matched - and of no other sentinel
    (token,) = line["is"]
    assert isinstance(err, SENTINEL_CLASS[token])
    assert isinstance(err, errors.SentinelError) and err.token == token
    extra = EXTRA_TOKENS.get(call, set())
    assert set(err.wrapped_tokens()) == {token} | extra
    for other, cls in SENTINEL_CLASS.items():
        if other != token and other not in extra:
            assert not isinstance(err, cls), f"{call} is also a {cls.__name__}"
    # the server's message is kept, and it is the real daemon's (the Go recording's) message
    go_rpc = go_rpcs_by_call(walk, go_wire())[call][-1]
    go_message = dict(go_rpc.get("server_trailers") or go_rpc["server_headers"])["grpc-message"]
    assert normalise(err.server_message, walk.subs) == go_message
    assert walk.outcome(call).rpcs[-1].status()[1] == err.server_message


def test_traffic_error_overflow_carries_the_detail(walk: Walk) -> None:
    err = walk.outcome("EnsurePrefix.overflow").error
    assert isinstance(err, errors.ContextOverflow)
    assert err.overflow_detail() == errors.OverflowDetail("prefix", 0, 300, 128)


def test_traffic_error_foreign_type_is_caught_by_both_except_clauses(walk: Walk) -> None:
    err = walk.outcome("OpenSession.foreign_type").error
    assert type(err) is errors.BackendMismatchLoadFailed
    assert err is not None
    caught: list[str] = []
    try:
        raise err
    except errors.BackendMismatch:
        caught.append("BackendMismatch")
    try:
        raise err
    except errors.ModelLoadFailed:
        caught.append("ModelLoadFailed")
    assert caught == ["BackendMismatch", "ModelLoadFailed"]
    # Describe with the same foreign type is a plain BackendMismatch (as Go: not a load failure)
    d = walk.outcome("Describe.foreign_type").error
    assert type(d) is errors.BackendMismatch


async def test_traffic_error_backend_none_load_failure_stays_plain(tmp_path: Path) -> None:
    """Backend none's model_load_failed (go-connector-discovery.jsonl, no_binary_live_daemon) is a
    plain ModelLoadFailed: an ``except BackendMismatch`` does not catch it."""
    (go_line,) = [
        d for d in _discovery() if d["scenario"] == "no_binary_live_daemon" and d["call"] == "OpenSession"
    ]
    async with Simulator(str(tmp_path / "root"), backend="none", stop_grace=0.2):
        c = mc.Connector(str(tmp_path / "root"))
        try:
            with pytest.raises(errors.ModelLoadFailed) as ei:
                try:
                    await c.open_session(REF, CFG)
                except errors.BackendMismatch:  # pragma: no cover - must not match
                    pytest.fail("backend none's load failure caught as a BackendMismatch")
        finally:
            await c.aclose()
    assert type(ei.value) is errors.ModelLoadFailed
    assert set(ei.value.wrapped_tokens()) == {"model_load_failed"}
    assert str(ei.value) == go_line["error"]


def _discovery() -> list[dict[str, Any]]:
    from traffic_relay import go_discovery

    return go_discovery()
