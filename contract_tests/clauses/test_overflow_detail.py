"""C-DETAIL: a context_overflow status whose ErrorInfo detail is missing, foreign or malformed.

The daemon attaches the overflow's numbers as a ``google.rpc.ErrorInfo`` (reason ``context_overflow``,
metadata ``stage`` / ``resident_tokens`` / ``additional_tokens`` / ``num_ctx`` as decimal strings) to
a ResourceExhausted ``context_overflow: …`` status. The status is the error: whatever the detail looks
like, the caller gets ``context_overflow``. The detail is read only from an ErrorInfo whose reason is
``context_overflow`` (the first such one that carries anything); a count that is missing or not a
decimal integer reads as 0; with no stage and no readable count there is no detail, which a connector
may report as absent or as the zero detail (stage "", counts 0) — the same thing to a caller.

A scripted node (:mod:`modeld_contract.rawnode`) sends these answers to ``ensure_prefix``: no real
daemon sends a malformed detail, so no simulator fault is needed and none is used.

Sources: wire.md §9.2 (ErrorInfo); transport/grpc errors.go overflowDetailFromStatus,
overflowDetailFromMetadata, atoiMetadata (v0.36.0)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.clauses._util import raises_kind
from modeld_contract.rawnode import RawNode, overflow_status_details

clause = pytest.mark.clause

_RESOURCE_EXHAUSTED = 8
_MESSAGE = "context_overflow: exceeded the session context window"
_ZERO = ("", 0, 0, 0)
_MODEL = {"model_name": "tiny", "type": "llama"}

#: case → (the ErrorInfos the status carries, the detail the caller must get)
_CASES: dict[str, tuple[list[tuple[str, dict[str, str]]], tuple[str, int, int, int]]] = {
    "foreign-reason": ([("quota_exceeded", {"stage": "prefix", "num_ctx": "4"})], _ZERO),
    "empty-metadata": ([("context_overflow", {})], _ZERO),
    "non-numeric-counts": (
        [
            (
                "context_overflow",
                {"stage": "suffix", "resident_tokens": "12x", "additional_tokens": "", "num_ctx": "40"},
            )
        ],
        ("suffix", 0, 0, 40),
    ),
    "nothing-readable": ([("context_overflow", {"resident_tokens": "many", "num_ctx": "1e3"})], _ZERO),
    "count-without-stage": ([("context_overflow", {"additional_tokens": "-3"})], ("", 0, -3, 0)),
    "foreign-then-ours": (
        [
            ("quota_exceeded", {"stage": "prefix", "num_ctx": "4"}),
            (
                "context_overflow",
                {"stage": "decode", "resident_tokens": "7", "additional_tokens": "9", "num_ctx": "16"},
            ),
        ],
        ("decode", 7, 9, 16),
    ),
}
_IDS = {name: f"C-DETAIL-{i:02d}" for i, name in enumerate(_CASES, 1)}


@pytest.fixture
def raw_node(tmp_path: Path) -> Iterator[RawNode]:
    node = RawNode().start()
    node.lease(str(tmp_path / "raw-root"))
    node.data_root = str(tmp_path / "raw-root")  # type: ignore[attr-defined]
    yield node
    node.stop()


def _detail(detail: Mapping[str, Any] | None) -> tuple[str, int, int, int]:
    if not detail:
        return _ZERO
    return (
        str(detail.get("stage", "")),
        int(detail.get("resident_tokens", 0)),
        int(detail.get("additional_tokens", 0)),
        int(detail.get("num_ctx", 0)),
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            name,
            marks=clause(_IDS[name], source="wire.md §9.2; errors.go overflowDetailFromStatus/atoiMetadata"),
            id=name,
        )
        for name in _CASES
    ],
)
def test_C_DETAIL_malformed_overflow_detail(modeld_connector: Any, raw_node: RawNode, case: str) -> None:
    """A context_overflow status stays context_overflow whatever its ErrorInfo; the detail comes only
    from a context_overflow ErrorInfo, unreadable counts read as 0, nothing readable = no detail."""
    infos, want = _CASES[case]
    raw_node.unary["EnsurePrefix"] = (
        _RESOURCE_EXHAUSTED,
        _MESSAGE,
        overflow_status_details(_RESOURCE_EXHAUSTED, _MESSAGE, infos),
    )
    modeld_connector.configure(raw_node.data_root)  # type: ignore[attr-defined]
    sid = modeld_connector.open_session(_MODEL, {"NumCtx": 16}, timeout=5.0)
    err = raises_kind(lambda: modeld_connector.ensure_prefix(sid, {"Text": "hello"}, timeout=5.0))
    assert err.kind == "context_overflow", f"{case}: the status is a context_overflow, got {err}"
    got = _detail(err.detail)
    assert got == want, f"{case}: ErrorInfos {infos} → detail {got}, want {want} (sent {err.detail!r})"
    assert "EnsurePrefix" in raw_node.calls
