"""C-SESSION: EnsurePrefix → PrefillSuffix → Decode, ExplainContext, Snapshot/Restore, Close — the
counts a connector passes through, checked against the session oracle (contract_tests/oracles/session.py).

Sources: edge-cases.md §D (memory_test.go), §E (grpc_test.go), session-semantics.md §4, §5, §6."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from modeld_contract.clauses._util import (
    empty_slot,
    long_text,
    manifest,
    overflow_detail,
    prefix,
    raises_kind,
)
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.oracles.session import Failure, SessionModel, SessionRelations
from modeld_contract.profiles import suite_settings

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


def _open(modeld: Any, num_ctx: int = 128) -> str:
    return str(modeld.conn.open_session(modeld.model, {"NumCtx": num_ctx}))


def _fresh(modeld: Any, num_ctx: int = 128) -> str:
    """A session with nothing resident: the slot emptied first (a new handle on a resident model
    reuses its KV, session-semantics.md §3.6, and a shared daemon carries the previous clause's)."""
    empty_slot(modeld.conn)
    sid = _open(modeld, num_ctx)
    assert modeld.conn.explain_context(sid)["ResidentTokens"] == 0
    return sid


def _relations(r: dict[str, Any], *, old_resident: int, num_ctx: int) -> None:
    """The EnsurePrefix relations of session-semantics.md §4.2, whatever the tokenizer."""
    p = r["PrefixTokens"]
    assert 0 < p <= num_ctx, r
    assert r["ReusedTokens"] + r["PrefilledTokens"] == p, r
    assert r["DroppedTokens"] == old_resident - r["ReusedTokens"], (old_resident, r)
    assert 0 <= r["ReusedTokens"] <= min(old_resident, p), (old_resident, r)
    assert (r["ResidentTokens"], r["AvailableTokens"]) == (p, num_ctx - p), r


@clause("C-SESSION-01", source="edge-cases.md:56; session-semantics.md §4.2")
def test_C_SESSION_01_warm_reuse(modeld: Any) -> None:
    """The same prefix twice: cold (Reused 0, Prefilled = Prefix), then fully warm (Reused = Prefix, 0)."""
    s = _fresh(modeld)
    a = modeld.conn.ensure_prefix(s, prefix("hello"))
    _relations(a, old_resident=0, num_ctx=128)
    assert (a["ReusedTokens"], a["PrefilledTokens"]) == (0, a["PrefixTokens"]), a
    b = modeld.conn.ensure_prefix(s, prefix("hello"))
    _relations(b, old_resident=a["ResidentTokens"], num_ctx=128)
    p = a["PrefixTokens"]
    assert (b["ReusedTokens"], b["PrefilledTokens"], b["PrefixTokens"]) == (p, 0, p), b
    assert b["DroppedTokens"] == 0, b


@clause("C-SESSION-02", source="edge-cases.md:58; session-semantics.md §4.2")
def test_C_SESSION_02_changed_prefix_drops(modeld: Any) -> None:
    """A changed prefix: Reused + Prefilled = Prefix, Dropped = old resident − Reused, Resident = Prefix."""
    s = _fresh(modeld)
    modeld.conn.ensure_prefix(s, prefix("abcdef"))
    old = modeld.conn.prefill_suffix(s, prefix("XYZ"))["ResidentTokens"]
    r = modeld.conn.ensure_prefix(s, prefix("abcQQQQ"))
    _relations(r, old_resident=old, num_ctx=128)
    assert r["DroppedTokens"] > 0, "the suffix and the changed tail must be dropped"
    # the same changed prefix again: its own count, fully warm, nothing dropped
    again = modeld.conn.ensure_prefix(s, prefix("abcQQQQ"))
    p = r["PrefixTokens"]
    assert (again["PrefixTokens"], again["ReusedTokens"], again["DroppedTokens"]) == (p, p, 0), again


@clause("C-SESSION-03", source="edge-cases.md:60; session-semantics.md §4.3, §4.4")
def test_C_SESSION_03_suffix_then_decode(modeld: Any) -> None:
    """Resident = prefix + suffix; Decode MaxTokens 5 generates 5 tokens, which become resident, in at
    most 5 chunks (one per token with a non-empty piece; exactly 5 on the fake engine: C-SESSION-17)."""
    s = _fresh(modeld)
    p = modeld.conn.ensure_prefix(s, prefix("hello"))["PrefixTokens"]
    suf = modeld.conn.prefill_suffix(s, prefix(" world"))
    assert suf["SuffixTokens"] > 0
    assert (suf["PrefixTokens"], suf["ResidentTokens"]) == (p, p + suf["SuffixTokens"]), suf
    assert suf["AvailableTokens"] == 128 - suf["ResidentTokens"], suf
    res = modeld.conn.decode(s, {"MaxTokens": 5, "Temperature": 0})
    assert res.error is None, res.error
    assert 0 < len(res.chunks) <= 5, res.chunks
    rep = modeld.conn.explain_context(s)
    assert (rep["ResidentTokens"], rep["PrefixTokens"]) == (suf["ResidentTokens"] + 5, p), rep
    assert rep["AvailableTokens"] == 128 - rep["ResidentTokens"], rep


@clause(
    "C-SESSION-04",
    source="edge-cases.md:61,78,79; real-daemon-observations.md (overflow detail); session-semantics.md §5.6",
)
def test_C_SESSION_04_prefix_overflow(modeld: Any) -> None:
    """A prefix longer than NumCtx → context_overflow; its detail (stage prefix, counts) where the backend
    emits one (llama; OpenVINO sends the bare sentinel); nothing becomes resident."""
    s = _fresh(modeld, 64)
    err = raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix(long_text())))
    assert err.kind == "context_overflow"
    detail = overflow_detail(err, modeld.backend)
    if detail is not None:
        assert (detail["stage"], detail["resident_tokens"], detail["num_ctx"]) == ("prefix", 0, 64), detail
        assert detail["additional_tokens"] > 64, detail
    assert modeld.conn.explain_context(s)["ResidentTokens"] == 0


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
    """Cold then warm (0/P, P/0), suffix, 3 decoded tokens resident, snapshot, restore after another
    prefix."""
    s = _fresh(modeld, 100)
    a = modeld.conn.ensure_prefix(s, prefix("hello"))
    b = modeld.conn.ensure_prefix(s, prefix("hello"))
    p = a["PrefixTokens"]
    assert (a["ReusedTokens"], a["PrefilledTokens"], b["ReusedTokens"], b["PrefilledTokens"]) == (0, p, p, 0)
    resident = modeld.conn.prefill_suffix(s, prefix(" world"))["ResidentTokens"]
    assert resident > p
    res = modeld.conn.decode(s, {"MaxTokens": 3})
    assert res.error is None and 0 < len(res.chunks) <= 3, res
    snap = modeld.conn.snapshot(s)
    assert (snap.get("resident_tokens"), snap.get("prefix_tokens")) == (resident + 3, p)
    digest = modeld.conn.explain_context(s)["ManifestDigest"]
    modeld.conn.ensure_prefix(s, prefix("other"))
    modeld.conn.restore(s, snap)
    rep = modeld.conn.explain_context(s)
    assert (rep["ResidentTokens"], rep["PrefixTokens"], rep["ManifestDigest"]) == (resident + 3, p, digest)
    modeld.conn.close_session(s)
    assert raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix("x"))).kind == "session_closed"


@clause("C-SESSION-07", source="edge-cases.md:76; wire.md §7; session-semantics.md §4.6")
def test_C_SESSION_07_snapshot_state_id(modeld: Any) -> None:
    """The raw state never travels; a backend with native state (llama) sends a state_id; restore works."""
    s = _open(modeld)
    p = modeld.conn.ensure_prefix(s, prefix("hello"))["PrefixTokens"]
    snap = modeld.conn.snapshot(s)
    assert "State" not in snap
    if modeld.backend != "openvino":  # OpenVINO's snapshot carries no native state: nothing to store
        assert snap.get("state_id")
    modeld.conn.ensure_prefix(s, prefix("zz"))
    modeld.conn.restore(s, snap)
    assert modeld.conn.explain_context(s)["ResidentTokens"] == p


@clause(
    "C-SESSION-08",
    source="edge-cases.md:80; real-daemon-observations.md (decode at a full window); "
    "session-semantics.md §4.4",
)
def test_C_SESSION_08_decode_overflow_in_stream(modeld: Any) -> None:
    """A Decode that starts with nothing resident → one typed context_overflow and no text; its detail
    (stage decode) where the backend emits one (llama; OpenVINO: bare)."""
    s = _fresh(modeld, 64)
    res = modeld.conn.decode(s, {"MaxTokens": 3})
    assert res.error is not None and res.error.kind == "context_overflow"
    assert not any(c.get("text") for c in res.chunks)
    detail = overflow_detail(res.error, modeld.backend)
    if detail is not None:
        assert (detail["stage"], detail["num_ctx"]) == ("decode", 64), detail


@clause("C-SESSION-09", source="edge-cases.md:73; session-semantics.md §4.3, §5.2")
def test_C_SESSION_09_suffix_manifest_mismatch(modeld: Any) -> None:
    """A suffix manifest not runtime-compatible with the resident one → manifest_mismatch, whose text is
    the daemon's reason (``model_digest changed``) after the sentinel text exactly once."""
    s = _open(modeld)
    modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest()})
    err = raises_kind(
        lambda: modeld.conn.prefill_suffix(s, {"Text": "x", "Manifest": manifest(model_digest="d2")})
    )
    assert err.kind == "manifest_mismatch", err
    assert "contextasm: context manifest mismatch: model_digest changed" in err.message, err.message
    assert err.message.count("contextasm: context manifest mismatch") == 1, err.message


@clause("C-SESSION-10", source="edge-cases.md:57")
def test_C_SESSION_10_volatile_manifest_change_stays_warm(modeld: Any) -> None:
    """Changing only volatile fields (total_bytes) keeps the prefix warm (Reused = Prefix)."""
    s = _open(modeld)
    a = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(total_bytes=5)})
    r = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(total_bytes=99)})
    assert (r["ReusedTokens"], r["PrefilledTokens"]) == (a["PrefixTokens"], 0), r


@clause("C-SESSION-11", source="edge-cases.md:59")
def test_C_SESSION_11_manifest_change_is_cold(modeld: Any) -> None:
    """Identical text but another prompt_template_digest → cold (Reused 0, Prefilled = Prefix)."""
    s = _open(modeld)
    a = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest()})
    r = modeld.conn.ensure_prefix(s, {"Text": "hello", "Manifest": manifest(prompt_template_digest="t2")})
    assert (r["ReusedTokens"], r["PrefilledTokens"]) == (0, a["PrefixTokens"]), r
    assert r["DroppedTokens"] == a["ResidentTokens"], r


@clause("C-SESSION-12", source="edge-cases.md:74; session-semantics.md §4.4")
def test_C_SESSION_12_decode_config_reaches_the_daemon(modeld: Any) -> None:
    """Decode config crosses intact: greedy (Temperature 0) output is reproducible, MaxTokens honoured
    (4 tokens generated and resident)."""
    outs = []
    for _ in range(2):
        s = _open(modeld)
        p = modeld.conn.ensure_prefix(s, prefix("seeded"))["PrefixTokens"]
        res = modeld.conn.decode(s, {"MaxTokens": 4, "Temperature": 0, "Seed": 7})
        assert res.error is None and 0 < len(res.chunks) <= 4, res
        assert modeld.conn.explain_context(s)["ResidentTokens"] == p + 4
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


@clause("C-SESSION-14", source="session-semantics.md §4.3, §5.6; llama stage suffix")
def test_C_SESSION_14_suffix_overflow(modeld: Any) -> None:
    """A suffix that does not fit → context_overflow (llama: stage suffix, resident, additional; OpenVINO:
    bare); the resident set is unchanged."""
    s = _open(modeld, 64)
    resident = modeld.conn.ensure_prefix(s, prefix("x" * 40))["ResidentTokens"]
    err = raises_kind(lambda: modeld.conn.prefill_suffix(s, prefix(long_text())))
    assert err.kind == "context_overflow"
    detail = overflow_detail(err, modeld.backend)
    if detail is not None:
        assert (detail["stage"], detail["resident_tokens"], detail["num_ctx"]) == ("suffix", resident, 64)
        assert resident + detail["additional_tokens"] > 64, detail
    assert modeld.conn.explain_context(s)["ResidentTokens"] == resident


@clause("C-SESSION-15", source="real-daemon-observations.md (snapshot blob not found)")
def test_C_SESSION_15_restore_unknown_state(modeld: Any) -> None:
    """Restore of a state_id never stored fails with the daemon's Internal ``snapshot blob not found``
    (no sentinel), and the session stays usable with its resident set unchanged."""
    s = _open(modeld)
    p = modeld.conn.ensure_prefix(s, prefix("hello"))["PrefixTokens"]
    snap = modeld.conn.snapshot(s)
    snap["state_id"] = "0" * 64
    err = raises_kind(lambda: modeld.conn.restore(s, snap))
    assert err.kind == "internal", err
    assert "snapshot blob not found" in err.message, err.message
    assert modeld.conn.explain_context(s)["ResidentTokens"] == p


@clause("C-SESSION-17", source="docs/fake-engine.md (tokenizer); edge-cases.md:56,58,60,61,75")
@pytest.mark.needs_fake_engine
def test_C_SESSION_17_fake_engine_byte_arithmetic(modeld: Any) -> None:
    """Fake engine: one token per UTF-8 byte — hello 5 (cold 0/5, warm 5/0), " world" 6 → 11, 5 decoded → 16,
    "abcQQQQ" after "abcdef"+"XYZ" reuses 3 and drops 6, a 100-byte prefix in 64 overflows by 100."""
    s = _open(modeld)
    a = modeld.conn.ensure_prefix(s, prefix("hello"))
    assert (a["ReusedTokens"], a["PrefilledTokens"], a["PrefixTokens"]) == (0, 5, 5)
    b = modeld.conn.ensure_prefix(s, prefix("hello"))
    assert (b["ReusedTokens"], b["PrefilledTokens"], b["PrefixTokens"]) == (5, 0, 5)
    suf = modeld.conn.prefill_suffix(s, prefix(" world"))
    assert (suf["SuffixTokens"], suf["PrefixTokens"], suf["ResidentTokens"]) == (6, 5, 11)
    assert len(modeld.conn.decode(s, {"MaxTokens": 5, "Temperature": 0}).chunks) == 5
    assert modeld.conn.explain_context(s)["ResidentTokens"] == 16
    modeld.conn.ensure_prefix(s, prefix("abcdef"))
    modeld.conn.prefill_suffix(s, prefix("XYZ"))
    r = modeld.conn.ensure_prefix(s, prefix("abcQQQQ"))
    assert (r["ReusedTokens"], r["PrefilledTokens"], r["DroppedTokens"], r["PrefixTokens"]) == (3, 4, 6, 7)
    assert (r["ResidentTokens"], r["AvailableTokens"]) == (7, 128 - 7)
    modeld.conn.close_session(s)
    s = _open(modeld, 64)
    err = raises_kind(lambda: modeld.conn.ensure_prefix(s, prefix("x" * 100)))
    assert err.kind == "context_overflow" and err.detail is not None
    d = err.detail
    assert (d["stage"], d["resident_tokens"], d["additional_tokens"], d["num_ctx"]) == ("prefix", 0, 100, 64)


_TEXT = st.text(alphabet="abcdefgh ", min_size=1, max_size=24)


class SessionMachine(RuleBasedStateMachine):
    """ensure_prefix / prefill_suffix / decode / explain / snapshot / restore / close against the fake
    engine's byte-token oracle (exact token lists).

    Everything drawn comes from strategies and from bundles of what the machine itself sent (texts,
    snapshot keys), never from a value the connector returned: a connector answering from a cache must
    fail an assertion, not make the test's data generation flaky."""

    env: Any = None
    NUM_CTX = 128
    texts = Bundle("texts")
    snapshots = Bundle("snapshots")

    def __init__(self) -> None:
        super().__init__()
        self.model = SessionModel(self.NUM_CTX)
        self.sid = _open(self.env, self.NUM_CTX)
        # A new handle on the resident model reuses its KV (session-semantics.md §3.6): start from a
        # known state with a one-byte prefix no generated text begins with.
        first = self.env.conn.ensure_prefix(self.sid, prefix("\x00"))
        assert first["PrefixTokens"] == first["ResidentTokens"] == 1
        self.model.resident, self.model.prefix = [0], 1
        self.snaps: list[tuple[dict[str, Any], tuple[list[int], int]] | None] = []

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

    def _ensure(self, text: str) -> None:
        want = self.model.ensure_prefix(text)
        self._check(lambda: self.env.conn.ensure_prefix(self.sid, prefix(text)), want)

    @rule(target=texts, text=st.one_of(_TEXT, st.sampled_from(["abcabcabc", "abc", "x" * 200])))
    def ensure_prefix(self, text: str) -> str:
        self._ensure(text)
        return text

    @rule(text=texts)
    def ensure_known_prefix(self, text: str) -> None:
        """A prefix sent before, again (warm when it is still the resident one)."""
        self._ensure(text)

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

    @rule(target=snapshots)
    def snapshot(self) -> int:
        key = len(self.snaps)
        if self.model.closed:
            assert raises_kind(lambda: self.env.conn.snapshot(self.sid)).kind == "session_closed"
            self.snaps.append(None)
            return key
        snap = self.env.conn.snapshot(self.sid)
        assert snap.get("resident_tokens", 0) == len(self.model.resident)
        assert snap.get("prefix_tokens", 0) == self.model.prefix
        self.snaps.append((snap, self.model.snapshot()))
        return key

    @rule(key=snapshots)
    def restore(self, key: int) -> None:
        entry = self.snaps[key]
        if entry is None:
            return
        snap, msnap = entry
        if self.model.closed:
            assert raises_kind(lambda: self.env.conn.restore(self.sid, snap)).kind == "session_closed"
            return
        self.env.conn.restore(self.sid, snap)
        self.model.restore(msnap)

    @rule()
    def close(self) -> None:
        self.env.conn.close_session(self.sid)
        self.model.close()

    @invariant()
    def never_over_window(self) -> None:
        """The daemon's own report (read through the connector after every step): the window holds
        and the resident set is the oracle's."""
        if self.model.closed:
            return
        rep = self.env.conn.explain_context(self.sid)
        assert rep["NumCtx"] == self.NUM_CTX, rep
        assert 0 <= rep["ResidentTokens"] <= self.NUM_CTX, rep
        assert rep["AvailableTokens"] == self.NUM_CTX - rep["ResidentTokens"], rep
        assert rep["ResidentTokens"] == len(self.model.resident), (rep, len(self.model.resident))


def _answer(call: Any) -> dict[str, Any] | Failure:
    try:
        return dict(call())
    except ConnectorError as err:
        return (err.kind, err.detail)


class RelationsMachine(RuleBasedStateMachine):
    """The same calls against the tokenizer-agnostic oracle (counts learned, relations checked). Draws
    come only from strategies and bundles of what the machine sent (see :class:`SessionMachine`)."""

    env: Any = None
    NUM_CTX = 128
    texts = Bundle("texts")
    snapshots = Bundle("snapshots")

    def __init__(self) -> None:
        super().__init__()
        self.model = SessionRelations(self.NUM_CTX, detail_required=self.env.backend != "openvino")
        self.sid = _fresh(self.env, self.NUM_CTX)
        self.snaps: list[tuple[dict[str, Any], tuple[int, int, str | None]] | None] = []

    def teardown(self) -> None:
        with contextlib.suppress(ConnectorError):
            self.env.conn.close_session(self.sid)

    def _ok(self, bad: list[str]) -> None:
        assert not bad, "\n".join(bad)

    def _ensure(self, text: str) -> None:
        got = _answer(lambda: self.env.conn.ensure_prefix(self.sid, prefix(text)))
        self._ok(self.model.ensure_prefix(text, got))

    @rule(
        target=texts,
        text=st.one_of(_TEXT, st.sampled_from(["abcabcabc", "abc", "x" * 200, long_text(300)])),
    )
    def ensure_prefix(self, text: str) -> str:
        self._ensure(text)
        return text

    @rule(text=texts)
    def ensure_known_prefix(self, text: str) -> None:
        """A prefix sent before, again: its count is the one learned, fully warm while resident."""
        self._ensure(text)

    @rule(text=_TEXT)
    def prefill_suffix(self, text: str) -> None:
        got = _answer(lambda: self.env.conn.prefill_suffix(self.sid, prefix(text)))
        self._ok(self.model.prefill_suffix(text, got))

    @rule(n=st.integers(1, 6))
    def decode(self, n: int) -> None:
        if not self.model.decode_allowed(n):
            return
        res = self.env.conn.decode(self.sid, {"MaxTokens": n, "Temperature": 0})
        fail = None if res.error is None else (res.error.kind, res.error.detail)
        self._ok(self.model.decode(n, len(res.chunks), fail))

    @rule()
    def explain(self) -> None:
        self._ok(self.model.explain(_answer(lambda: self.env.conn.explain_context(self.sid))))

    @rule(target=snapshots)
    def snapshot(self) -> int:
        key = len(self.snaps)
        self.snaps.append(None)
        if self.model.closed:
            assert raises_kind(lambda: self.env.conn.snapshot(self.sid)).kind == "session_closed"
            return key
        if not self.model.resident:
            return key  # nothing to snapshot: a backend may refuse it
        snap = self.env.conn.snapshot(self.sid)
        self._ok(self.model.snapshot(snap))
        self.snaps[key] = (snap, self.model.state())
        return key

    @rule(key=snapshots)
    def restore(self, key: int) -> None:
        entry = self.snaps[key]
        if entry is None or self.model.closed:
            return
        snap, state = entry
        self.env.conn.restore(self.sid, snap)
        self.model.restore(state)

    @rule()
    def close(self) -> None:
        self.env.conn.close_session(self.sid)
        self.model.close()

    @invariant()
    def never_over_window(self) -> None:
        """The daemon's own report after every step agrees with the relations (resident ≤ window,
        Available = NumCtx − Resident, the resident and prefix counts the oracle holds)."""
        if self.model.closed:
            return
        rep = _answer(lambda: self.env.conn.explain_context(self.sid))
        self._ok(self.model.explain(rep))
        assert isinstance(rep, dict) and 0 <= int(rep.get("ResidentTokens", 0)) <= self.NUM_CTX, rep


def _run_machine(machine: Any, modeld: Any) -> None:
    machine.env = modeld
    current = suite_settings()
    machine.TestCase.settings = suite_settings(
        max_examples=max(10, current.max_examples // 3), stateful_step_count=25
    )
    machine.TestCase().runTest()


@clause("C-SESSION-16", source="session-semantics.md §4.2–4.7; edge-cases.md:56-63,75")
def test_C_SESSION_16_state_machine(modeld: Any) -> None:
    """Stateful: every count of every session call keeps the contract's relations (any tokenizer)."""
    _run_machine(RelationsMachine, modeld)


@clause("C-SESSION-18", source="docs/fake-engine.md (tokenizer); session-semantics.md §4.2–4.7")
@pytest.mark.needs_fake_engine
def test_C_SESSION_18_fake_engine_state_machine(modeld: Any) -> None:
    """Stateful, fake engine: every count of every session call equals the byte-token oracle's."""
    _run_machine(SessionMachine, modeld)
