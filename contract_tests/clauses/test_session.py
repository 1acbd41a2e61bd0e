"""C-SESSION: EnsurePrefix → PrefillSuffix → Decode, ExplainContext, Snapshot/Restore, Close — the
counts a connector passes through, checked against the session oracle (contract_tests/oracles/session.py).

Sources: edge-cases.md §D (memory_test.go), §E (grpc_test.go), session-semantics.md §4, §5, §6."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contract_tests.clauses._util import manifest, prefix, raises_kind
from contract_tests.connectors.protocol import ConnectorError
from contract_tests.oracles.session import SessionModel

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


def _open(modeld: Any, num_ctx: int = 128) -> str:
    return str(modeld.conn.open_session(modeld.model, {"NumCtx": num_ctx}))


@clause("C-SESSION-01", source="edge-cases.md:56")
def test_C_SESSION_01_warm_reuse(modeld: Any) -> None:
    """The same prefix twice: cold (Reused 0, Prefilled = Prefix), then warm (Reused = Prefix, 0)."""
    s = _open(modeld)
    a = modeld.conn.ensure_prefix(s, prefix("hello"))
    assert (a["ReusedTokens"], a["PrefilledTokens"], a["PrefixTokens"]) == (0, 5, 5)
    b = modeld.conn.ensure_prefix(s, prefix("hello"))
    assert (b["ReusedTokens"], b["PrefilledTokens"], b["PrefixTokens"]) == (5, 0, 5)


@clause("C-SESSION-02", source="edge-cases.md:58; session-semantics.md §4.2")
def test_C_SESSION_02_changed_prefix_drops(modeld: Any) -> None:
    """A changed prefix: Reused + Prefilled = Prefix, Dropped = old resident − Reused."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("abcdef"))
    modeld.conn.prefill_suffix(s, prefix("XYZ"))
    r = modeld.conn.ensure_prefix(s, prefix("abcQQQQ"))
    assert r["ReusedTokens"] + r["PrefilledTokens"] == r["PrefixTokens"] == 7
    assert r["DroppedTokens"] == 9 - r["ReusedTokens"]
    assert r["ResidentTokens"] == 7 and r["AvailableTokens"] == 128 - 7


@clause("C-SESSION-03", source="edge-cases.md:60")
def test_C_SESSION_03_suffix_then_decode(modeld: Any) -> None:
    """Resident = prefix + suffix; Decode MaxTokens 5 yields exactly 5 chunks; explain agrees."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("hello"))
    suf = modeld.conn.prefill_suffix(s, prefix(" world"))
    assert (suf["SuffixTokens"], suf["PrefixTokens"], suf["ResidentTokens"]) == (6, 5, 11)
    res = modeld.conn.decode(s, {"MaxTokens": 5, "Temperature": 0})
    assert res.error is None, res.error
    assert len(res.chunks) == 5
    rep = modeld.conn.explain_context(s)
    assert rep["ResidentTokens"] == 16 and rep["PrefixTokens"] == 5


@clause("C-SESSION-04", source="edge-cases.md:61,78,79; real-daemon-observations.md (overflow detail)")
def test_C_SESSION_04_prefix_overflow(modeld: Any) -> None:
    """A prefix longer than NumCtx → context_overflow with its detail (stage, counts)."""
    s = _open(modeld, 64)
    err = raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix("x" * 100)))
    assert err.kind == "context_overflow"
    assert err.detail is not None, "the typed overflow must carry its detail"
    assert err.detail.get("stage") == "prefix"
    assert (err.detail["resident_tokens"], err.detail["additional_tokens"], err.detail["num_ctx"]) == (
        0,
        100,
        64,
    )


@clause("C-SESSION-05", source="edge-cases.md:63; session-semantics.md §6")
def test_C_SESSION_05_closed_session(modeld: Any) -> None:
    """After close every session call fails session_closed (explain: the error or a Closed report)."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("hello"))
    modeld.conn.close_session(s)
    assert raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix("x"))).kind == "session_closed"
    assert raises_kind(lambda: modeld.conn.prefill_suffix(s, prefix("x"))).kind == "session_closed"
    assert raises_kind(lambda: modeld.conn.snapshot(s)).kind == "session_closed"
    res = modeld.conn.decode(s, {"MaxTokens": 2})
    assert res.error is not None and res.error.kind == "session_closed" and not res.chunks
    try:
        rep = modeld.conn.explain_context(s)
    except ConnectorError as err:
        assert err.kind == "session_closed"
    else:
        assert rep.get("Closed") is True


@clause("C-SESSION-06", source="edge-cases.md:75")
def test_C_SESSION_06_round_trip_contract(modeld: Any) -> None:
    """Cold/warm 5/0 then 0/5, suffix, 3 chunks, resident 11+3, snapshot, restore after another prefix."""
    s = _open(modeld, 100)
    a = modeld.conn.ensure_prefix(s, prefix("hello"))
    b = modeld.conn.ensure_prefix(s, prefix("hello"))
    assert (a["ReusedTokens"], a["PrefilledTokens"], b["ReusedTokens"], b["PrefilledTokens"]) == (0, 5, 5, 0)
    assert modeld.conn.prefill_suffix(s, prefix(" world"))["ResidentTokens"] == 11
    assert len(modeld.conn.decode(s, {"MaxTokens": 3}).chunks) == 3
    snap = modeld.conn.snapshot(s)
    assert (snap.get("resident_tokens"), snap.get("prefix_tokens")) == (14, 5)
    digest = modeld.conn.explain_context(s)["ManifestDigest"]
    modeld.conn.ensure_prefix(s, prefix("other"))
    modeld.conn.restore(s, snap)
    rep = modeld.conn.explain_context(s)
    assert (rep["ResidentTokens"], rep["PrefixTokens"], rep["ManifestDigest"]) == (14, 5, digest)
    modeld.conn.close_session(s)
    assert raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix("x"))).kind == "session_closed"


@clause("C-SESSION-07", source="edge-cases.md:76; wire.md §7")
def test_C_SESSION_07_snapshot_state_id(modeld: Any) -> None:
    """Snapshot carries a state_id (the raw state never travels); restore by state_id works."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("hello"))
    snap = modeld.conn.snapshot(s)
    assert snap.get("state_id")
    assert "State" not in snap
    modeld.conn.ensure_prefix(s, prefix("zz"))
    modeld.conn.restore(s, snap)
    assert modeld.conn.explain_context(s)["ResidentTokens"] == 5


@clause("C-SESSION-08", source="edge-cases.md:80; real-daemon-observations.md (decode at a full window)")
def test_C_SESSION_08_decode_overflow_in_stream(modeld: Any) -> None:
    """A Decode that starts with nothing resident → one typed context_overflow (stage decode) and no text."""
    s = _open(modeld, 64)
    res = modeld.conn.decode(s, {"MaxTokens": 3})
    assert res.error is not None and res.error.kind == "context_overflow"
    assert not any(c.get("text") for c in res.chunks)
    if res.error.detail is not None:
        assert res.error.detail.get("stage") == "decode"


@clause("C-SESSION-09", source="edge-cases.md:73; session-semantics.md §4.3, §5.2")
def test_C_SESSION_09_suffix_manifest_mismatch(modeld: Any) -> None:
    """A suffix manifest not runtime-compatible with the resident one → manifest_mismatch."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest()})
    err = raises_kind(
        lambda: modeld.conn.prefill_suffix(s, {"Text": "x", "Manifest": manifest(model_digest="d2")})
    )
    assert err.kind == "manifest_mismatch"
    assert err.message.count("contextasm: context manifest mismatch") <= 2


@clause("C-SESSION-10", source="edge-cases.md:57")
def test_C_SESSION_10_volatile_manifest_change_stays_warm(modeld: Any) -> None:
    """Changing only volatile fields (total_bytes) keeps the prefix warm."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(total_bytes=5)})
    r = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(total_bytes=99)})
    assert r["ReusedTokens"] == 5


@clause("C-SESSION-11", source="edge-cases.md:59")
def test_C_SESSION_11_manifest_change_is_cold(modeld: Any) -> None:
    """Identical text but another prompt_template_digest → cold (Reused 0)."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest()})
    r = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(prompt_template_digest="t2")})
    assert r["ReusedTokens"] == 0 and r["PrefilledTokens"] == 5


@clause("C-SESSION-12", source="edge-cases.md:74; session-semantics.md §4.4")
def test_C_SESSION_12_decode_config_reaches_the_daemon(modeld: Any) -> None:
    """Decode config crosses intact: greedy (Temperature 0) output is reproducible, MaxTokens honoured."""
    outs = []
    for _ in range(2):
        s = _open(modeld)
        modeld.conn.ensure_prefix(s, prefix("seeded"))
        res = modeld.conn.decode(s, {"MaxTokens": 4, "Temperature": 0, "Seed": 7})
        assert res.error is None and len(res.chunks) == 4
        outs.append(res.text)
        modeld.conn.close_session(s)
    assert outs[0] == outs[1]


@clause("C-SESSION-13", source="edge-cases.md:88; wire.md §8.1")
def test_C_SESSION_13_in_stream_sentinel_is_typed(modeld: Any) -> None:
    """An in-stream error chunk (unsupported structured output) surfaces as its typed error."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("hello"))
    res = modeld.conn.decode(s, {"MaxTokens": 2, "StructuredOutput": {"Protocol": "nope"}})
    assert res.error is not None and res.error.kind == "unsupported_feature"


@clause("C-SESSION-14", source="session-semantics.md §4.3; llama stage suffix")
def test_C_SESSION_14_suffix_overflow(modeld: Any) -> None:
    """A suffix that does not fit → context_overflow (stage suffix); the resident set is unchanged."""
    s = _open(modeld, 64)
    modeld.conn.ensure_prefix(s, prefix("x" * 40))
    err = raises_kind(lambda: modeld.conn.prefill_suffix(s, prefix("y" * 30)))
    assert err.kind == "context_overflow"
    if err.detail is not None:
        assert err.detail.get("stage") == "suffix"
    assert modeld.conn.explain_context(s)["ResidentTokens"] == 40


@clause("C-SESSION-15", source="real-daemon-observations.md (snapshot blob not found)")
def test_C_SESSION_15_restore_unknown_state(modeld: Any) -> None:
    """Restore of a state_id never stored fails (internal), the session stays usable."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, prefix("hello"))
    snap = modeld.conn.snapshot(s)
    snap["state_id"] = "0" * 64
    err = raises_kind(lambda: modeld.conn.restore(s, snap))
    assert err.kind not in ("session_closed", "stale_fence")
    assert modeld.conn.explain_context(s)["ResidentTokens"] == 5


_TEXT = st.text(alphabet="abcdefgh ", min_size=1, max_size=24)


class SessionMachine(RuleBasedStateMachine):
    """ensure_prefix / prefill_suffix / decode / explain / snapshot / restore / close against the oracle."""

    env: Any = None
    NUM_CTX = 128

    def __init__(self) -> None:
        super().__init__()
        self.model = SessionModel(self.NUM_CTX)
        self.sid = _open(self.env, self.NUM_CTX)
        # A new handle on the resident model reuses its KV (session-semantics.md §3.6): start from a
        # known state with a one-byte prefix no generated text begins with.
        first = self.env.conn.ensure_prefix(self.sid, prefix("\x00"))
        assert first["PrefixTokens"] == first["ResidentTokens"] == 1
        self.model.resident, self.model.prefix = [0], 1
        self.snaps: list[tuple[dict[str, Any], tuple[list[int], int]]] = []
        self.prefixes: list[str] = []

    def teardown(self) -> None:
        with contextlib.suppress(ConnectorError):
            self.env.conn.close_session(self.sid)

    def _check(self, call: Any, want: Any) -> dict[str, Any] | None:
        if isinstance(want, tuple):
            err = raises_kind(call)
            assert err.kind == want[0], f"want {want[0]}, got {err}"
            if want[0] == "context_overflow" and err.detail is not None:
                for k, v in want[1].items():
                    assert err.detail.get(k) == v, (k, err.detail, want[1])
            return None
        got = call()
        for k, v in want.items():
            assert got[k] == v, f"{k}: got {got[k]}, oracle {v} (full answer {got})"
        return dict(got)

    @rule(text=st.one_of(_TEXT, st.sampled_from(["abcabcabc", "abc", "x" * 200])))
    def ensure_prefix(self, text: str) -> None:
        want = self.model.ensure_prefix(text)
        self._check(lambda: self.env.conn.ensure_prefix(self.sid, prefix(text)), want)

    @rule(data=st.data())
    @precondition(lambda self: True)
    def ensure_known_prefix(self, data: st.DataObject) -> None:
        if not self.prefixes:
            return
        text = data.draw(st.sampled_from(self.prefixes))
        want = self.model.ensure_prefix(text)
        self._check(lambda: self.env.conn.ensure_prefix(self.sid, prefix(text)), want)

    @rule(text=_TEXT)
    def prefill_suffix(self, text: str) -> None:
        want = self.model.prefill_suffix(text)
        self._check(lambda: self.env.conn.prefill_suffix(self.sid, prefix(text)), want)

    @rule(n=st.integers(1, 6))
    def decode(self, n: int) -> None:
        if not self.model.decode_allowed(n):
            return
        want = self.model.decode(n)
        res = self.env.conn.decode(self.sid, {"MaxTokens": n, "Temperature": 0})
        if isinstance(want, str):
            assert res.error is not None and res.error.kind == want, res
            return
        assert res.error is None, res.error
        assert len(res.chunks) == want, f"want {want} chunks, got {len(res.chunks)}"
        self.model.decoded([str(c.get("text", "")) for c in res.chunks])

    @rule()
    def explain(self) -> None:
        want = self.model.explain()
        if isinstance(want, str):
            try:
                rep = self.env.conn.explain_context(self.sid)
            except ConnectorError as err:
                assert err.kind == want
            else:
                assert rep.get("Closed") is True
            return
        self._check(lambda: self.env.conn.explain_context(self.sid), want)

    @rule()
    def snapshot(self) -> None:
        if self.model.closed:
            assert raises_kind(lambda: self.env.conn.snapshot(self.sid)).kind == "session_closed"
            return
        snap = self.env.conn.snapshot(self.sid)
        assert snap.get("resident_tokens", 0) == len(self.model.resident)
        assert snap.get("prefix_tokens", 0) == self.model.prefix
        self.snaps.append((snap, self.model.snapshot()))

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        if not self.snaps or self.model.closed:
            return
        snap, msnap = data.draw(st.sampled_from(self.snaps))
        self.env.conn.restore(self.sid, snap)
        self.model.restore(msnap)

    @rule()
    def close(self) -> None:
        self.env.conn.close_session(self.sid)
        self.model.close()

    @invariant()
    def never_over_window(self) -> None:
        assert len(self.model.resident) <= self.NUM_CTX


@clause("C-SESSION-16", source="session-semantics.md §4.2–4.7; edge-cases.md:56-63,75")
def test_C_SESSION_16_state_machine(modeld: Any) -> None:
    """Stateful: every count of every session call agrees with the token oracle."""
    from hypothesis import settings

    SessionMachine.env = modeld
    current = settings()
    SessionMachine.TestCase.settings = settings(
        current, max_examples=max(10, current.max_examples // 3), stateful_step_count=25
    )
    SessionMachine.TestCase().runTest()
