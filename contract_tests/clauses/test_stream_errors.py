"""C-STREAM: how a Decode stream fails — before it starts, and by an error chunk inside it.

Before the stream starts (nothing generated yet): a deadline that has already passed, or a daemon that
is gone, fails the Decode typed and with no chunk. Inside the stream the daemon reports a failure as a
last chunk carrying ``error`` (the text, without the token prefix), ``error_token`` (the sentinel's
token) and, for an overflow, ``error_detail``; the stream then ends with status OK. The connector
delivers the chunks before it, then the error typed by its token (Go ``errors.Is``); a token it does
not know, or none, is a plain error with the daemon's text that matches no sentinel. Nothing after the
error chunk is delivered.

Sources: wire.md §8.1.3 (in-stream errors), §9.1 (the table); session-semantics.md §4.4; transport/grpc
client.go grpcSession.Decode and errors.go decodeWireError (v0.36.0)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.clauses._util import prefix
from modeld_contract.connectors.protocol import HARNESS_TIMEOUT, SENTINEL_KINDS, ConnectorError
from modeld_contract.oracles.errors import TOKENS
from modeld_contract.rawnode import RawNode

clause = pytest.mark.clause
CFG = {"NumCtx": 256}
DECODE = {"MaxTokens": 4}


def _session(env: Any) -> str:
    sid = str(env.conn.open_session(env.model, CFG, timeout=10.0))
    env.conn.ensure_prefix(sid, prefix("hello stream"), timeout=10.0)
    return sid


@clause("C-STREAM-01", source="session-semantics.md §4.4; wire.md §9.1 (deadline_exceeded)")
@pytest.mark.needs_scripting
def test_C_STREAM_01_expired_deadline_fails_before_the_stream(modeld_scripted: Any) -> None:
    """A Decode whose deadline has already passed fails deadline_exceeded with no chunk; the session is
    untouched and the next Decode streams."""
    env = modeld_scripted
    sid = _session(env)
    res = env.conn.decode(sid, DECODE, timeout=1e-6)
    assert res.error is not None, f"a Decode past its deadline returned {res.chunks!r} without an error"
    assert res.error.matches("deadline_exceeded"), f"want deadline_exceeded, got {res.error}"
    assert res.chunks == [], f"no chunk may arrive after the deadline passed, got {res.chunks!r}"
    again = env.conn.decode(sid, DECODE, timeout=10.0)
    assert again.error is None and again.text, f"the session must still decode, got {again.to_json()}"


@clause("C-STREAM-02", source="wire.md §6 (the connection is the session's lifetime); edge-cases.md:37")
@pytest.mark.needs_scripting
def test_C_STREAM_02_daemon_gone_fails_before_the_stream(modeld_scripted: Any) -> None:
    """A Decode on a session whose daemon has gone (its port closed, its lease left behind) fails
    typed with no chunk, within the caller's deadline."""
    env = modeld_scripted
    sid = _session(env)
    env.target.kill()
    res = env.conn.decode(sid, DECODE, timeout=5.0)
    assert res.error is not None, f"a Decode on a dead daemon returned {res.chunks!r} without an error"
    assert res.error.kind != HARNESS_TIMEOUT, f"the Decode did not end by itself: {res.error}"
    assert res.chunks == [], f"a dead daemon streams nothing, got {res.chunks!r}"


@clause("C-STREAM-03", source="wire.md §8.1.3, §9.1; errors.go decodeWireError")
@pytest.mark.needs_scripting
def test_C_STREAM_03_every_in_stream_token_is_typed(modeld_scripted: Any) -> None:
    """After one chunk, an error chunk of each token of the table: the chunk arrives, then that
    token's typed error (its kind, matched as errors.Is)."""
    env = modeld_scripted
    sid = _session(env)
    bad: list[str] = []
    for token in TOKENS:
        env.target.faults.clear()
        env.target.faults.add(
            method="Decode", action="decode", after_chunks=1, then="error", token=token, first=1
        )
        res = env.conn.decode(sid, DECODE, timeout=10.0)
        if res.error is None or res.error.kind != token or not res.error.matches(token):
            bad.append(f"{token}: ended with {res.error!r}")
        elif len(res.chunks) != 1 or not res.chunks[0].get("text"):
            bad.append(f"{token}: want the one chunk sent before the error, got {res.chunks!r}")
    env.target.faults.clear()
    assert not bad, "in-stream error tokens:\n" + "\n".join(bad)


def _plain(err: ConnectorError | None, text: str) -> str | None:
    """Why ``err`` is not the plain error carrying ``text`` (None when it is)."""
    if err is None:
        return "the stream ended without an error"
    if any(err.matches(t) for t in SENTINEL_KINDS):
        return f"a plain error was typed as a sentinel: {err}"
    if err.kind == HARNESS_TIMEOUT:
        return f"the stream did not end: {err}"
    if text not in err.message:
        return f"the daemon's text {text!r} is lost: {err.message!r}"
    return None


@clause("C-STREAM-04", source="wire.md §8.1.3 (error without token); errors.go decodeWireError")
@pytest.mark.needs_scripting
def test_C_STREAM_04_error_chunk_without_token(modeld_scripted: Any) -> None:
    """An error chunk without a token is a plain error with the daemon's text, after the chunks
    before it."""
    env = modeld_scripted
    sid = _session(env)
    text = "engine fault 7: the sampler fell over"
    env.target.faults.add(
        method="Decode", action="decode", after_chunks=2, then="error", detail=text, first=1
    )
    res = env.conn.decode(sid, DECODE, timeout=10.0)
    env.target.faults.clear()
    why = _plain(res.error, text)
    assert why is None, why
    assert len(res.chunks) == 2, f"want the two chunks sent before the error, got {res.chunks!r}"


@pytest.fixture
def raw_node(tmp_path: Path) -> Iterator[RawNode]:
    node = RawNode().start()
    node.lease(str(tmp_path / "raw-root"))
    node.data_root = str(tmp_path / "raw-root")  # type: ignore[attr-defined]
    yield node
    node.stop()


@clause("C-STREAM-05", source="wire.md §8.1.3, §9.3 (a token outside the table); errors.go decodeWireError")
def test_C_STREAM_05_unknown_token_and_nothing_after_the_error(
    modeld_connector: Any, raw_node: RawNode
) -> None:
    """An error chunk whose token is not in the table is a plain error with the daemon's text; the
    chunk before it arrives, the chunk after it does not."""
    text = "a failure this client does not know"
    raw_node.streams["Decode"] = [
        {"text": "first"},
        {"error": text, "error_token": "flux_capacitor_overheated"},
        {"text": "after the end"},
    ]
    modeld_connector.configure(raw_node.data_root)  # type: ignore[attr-defined]
    sid = modeld_connector.open_session({"model_name": "tiny", "type": "llama"}, CFG, timeout=5.0)
    res = modeld_connector.decode(sid, DECODE, timeout=5.0)
    with contextlib.suppress(ConnectorError):
        modeld_connector.close_session(sid, timeout=2.0)
    why = _plain(res.error, text)
    assert why is None, why
    texts = [c.get("text", "") for c in res.chunks]
    assert texts == ["first"], f"want only the chunk before the error, got {res.chunks!r}"
