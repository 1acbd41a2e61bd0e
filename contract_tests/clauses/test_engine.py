"""C-ENGINE: the fake engine makes every value a connector carries observable, and the connector's
results match the engine's documented rules (docs/fake-engine.md, restated by
``contract_tests/oracles/fake_engine.py``): a Decode's chunks are a function of the resident tokens,
the seed, the temperature, top-p, top-k and MaxTokens; the reasoning and tool parsers shape them;
embeddings are exact vectors; a snapshot restored brings back what ExplainContext reported and what
a greedy Decode sends.

All of them need the fake engine's arithmetic (``needs_fake_engine``). Values are drawn by Hypothesis
from the contract's domains, never from the system's answers."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from modeld_contract.clauses._util import empty_slot, prefix
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.oracles import fake_engine as oracle
from modeld_contract.oracles.wire import differences, float32
from modeld_contract.profiles import suite_settings

clause = pytest.mark.clause
NUM_CTX = 128
CFG = {"NumCtx": NUM_CTX}

#: Prefix texts: any Unicode, short enough that prefix + suffix + generated tokens fit the window.
_PREFIX = st.text(min_size=1, max_size=12).filter(lambda t: len(t.encode("utf-8")) <= 40)
_SEED = st.integers(0, 2**63 - 1)
_MAX = st.integers(1, 16)
#: Sampling values: greedy ones (Temperature <= 0), the default (null), any positive double.
_TEMPERATURE = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, 0.7, 1.0, None]),
    st.floats(min_value=1e-6, max_value=4.0),
)
_TOP_P = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 0.9]), st.floats(0.0, 1.0))
_TOP_K = st.one_of(st.sampled_from([0, 1, 40]), st.integers(-(2**63), 2**63 - 1))


def _chunks(res: Any) -> list[dict[str, Any]]:
    """The chunks as the protocol carries them, empty keys left out (a connector may send them)."""
    return [{k: v for k, v in c.items() if v not in ("", [], None)} for c in res.chunks]


def _session(env: Any) -> str:
    return str(env.conn.open_session(env.model, CFG))


def _check_decode(env: Any, sid: str, text: str, cfg: dict[str, Any], tools: str = "") -> None:
    """EnsurePrefix(text) makes the resident tokens exactly its bytes; then Decode(cfg) must send what
    the documented rules say, and leave the generated tokens resident."""
    p = prefix(text)
    if tools:
        p["Tools"] = tools
    env.conn.ensure_prefix(sid, p)
    want = oracle.decode(oracle.tokens(text), cfg, num_ctx=NUM_CTX, tools=tools)
    res = env.conn.decode(sid, cfg)
    if want.error is not None:
        assert res.error is not None and res.error.kind == want.error, (cfg, res.error)
        return
    assert res.error is None, f"Decode {cfg} failed: {res.error}"
    got = _chunks(res)
    assert got == want.chunks, (
        f"Decode {cfg} after prefix {text!r}:\n  returned {got}\n  the rule {want.chunks}\n"
        "(docs/fake-engine.md, Decode: the tokens are a function of the resident tokens and every "
        "sampling field)"
    )
    resident = env.conn.explain_context(sid)["ResidentTokens"]
    assert resident == len(oracle.tokens(text)) + len(want.generated), (resident, cfg)


@clause("C-ENGINE-01", source="docs/fake-engine.md (Decode, Sampling); session-semantics.md §4.4")
@pytest.mark.needs_fake_engine
def test_C_ENGINE_01_decode_is_a_function_of_every_sampling_field(modeld: Any) -> None:
    """Decode's chunks equal the fake engine's documented function of (prefix, Seed, Temperature, TopP,
    TopK, MaxTokens): a sampling field lost, narrowed or replaced on the way changes the text."""
    sid = _session(modeld)

    @suite_settings()
    @given(text=_PREFIX, seed=_SEED, n=_MAX, temperature=_TEMPERATURE, top_p=_TOP_P, top_k=_TOP_K)
    @example(text="hello", seed=7, n=12, temperature=0.7, top_p=0.9, top_k=40)
    @example(text="hello", seed=0, n=12, temperature=0.0, top_p=0.0, top_k=0)
    @example(text="hello", seed=0, n=12, temperature=None, top_p=None, top_k=0)
    def check(
        text: str, seed: int, n: int, temperature: float | None, top_p: float | None, top_k: int
    ) -> None:
        cfg: dict[str, Any] = {"MaxTokens": n, "Seed": seed, "TopK": top_k}
        if temperature is not None:
            cfg["Temperature"] = temperature
        if top_p is not None:
            cfg["TopP"] = top_p
        _check_decode(modeld, sid, text, cfg)

    check()
    modeld.conn.close_session(sid)


@clause("C-ENGINE-02", source="docs/fake-engine.md (Parsers); wire.md (DecodeConfig.ParserProtocols)")
@pytest.mark.needs_fake_engine
def test_C_ENGINE_02_reasoning_parser_sends_thinking(modeld: Any) -> None:
    """With the reasoning parser and a ReasoningFormat, the first half of the tokens arrive as
    ``thinking`` (format ``none``: all ``text``; no format: ``unsupported_feature``)."""
    sid = _session(modeld)

    @suite_settings()
    @given(
        text=_PREFIX,
        n=_MAX,
        fmt=st.sampled_from(["deepseek", "auto", "none", "deepseek-legacy", ""]),
        extra=st.lists(st.sampled_from(["", oracle.TOOL_PARSER]), max_size=2),
        first=st.booleans(),
        seed=st.one_of(st.none(), _SEED),
    )
    @example(text="think", n=8, fmt="deepseek", extra=[], first=True, seed=None)
    @example(text="think", n=8, fmt="none", extra=[oracle.TOOL_PARSER], first=False, seed=3)
    def check(text: str, n: int, fmt: str, extra: list[str], first: bool, seed: int | None) -> None:
        parsers = [oracle.REASONING_PARSER, *extra] if first else [*extra, oracle.REASONING_PARSER]
        cfg: dict[str, Any] = {"MaxTokens": n, "ParserProtocols": parsers, "ReasoningFormat": fmt}
        if seed is None:
            cfg["Temperature"] = 0  # greedy
        else:
            cfg.update(Seed=seed, Temperature=0.9)
        _check_decode(modeld, sid, text, cfg)

    check()
    modeld.conn.close_session(sid)


_TOOLS = st.one_of(
    st.just(""),
    st.text(max_size=8),
    st.builds(
        lambda name, nested: (
            f'[{{"type":"function","function":{{"name":{name}}}}}]' if nested else f'[{{"name":{name}}}]'
        ),
        st.text(min_size=1, max_size=8).map(json.dumps),
        st.booleans(),
    ),
)


@clause(
    "C-ENGINE-03", source="docs/fake-engine.md (Parsers); wire.md (WireChunk.tool_calls, PrefixInput.Tools)"
)
@pytest.mark.needs_fake_engine
def test_C_ENGINE_03_tool_parser_sends_a_tool_call(modeld: Any) -> None:
    """With the tool parser the stream ends with one tool call naming the prefix's first tool and
    counting the tokens generated, every field as the daemon sent it."""
    sid = _session(modeld)

    @suite_settings()
    @given(text=_PREFIX, n=_MAX, tools=_TOOLS, blanks=st.integers(0, 2))
    @example(text="call", n=5, tools='[{"type":"function","function":{"name":"get_weather"}}]', blanks=0)
    def check(text: str, n: int, tools: str, blanks: int) -> None:
        cfg = {"MaxTokens": n, "Temperature": 0, "ParserProtocols": [""] * blanks + [oracle.TOOL_PARSER]}
        _check_decode(modeld, sid, text, cfg, tools)

    check()
    modeld.conn.close_session(sid)


@clause("C-ENGINE-04", source="docs/fake-engine.md (Embed); wire.md (EmbedResp.vector float32)")
@pytest.mark.needs_fake_engine
def test_C_ENGINE_04_embedding_is_the_exact_vector(modeld: Any) -> None:
    """embed returns the documented vector of the text, every float32 exactly (no rounding, no
    truncation, nothing reordered)."""
    empty_slot(modeld.conn)

    @suite_settings()
    @given(text=st.text(max_size=40))
    @example(text="hello")
    def check(text: str) -> None:
        got = [float32(x) for x in modeld.conn.embed(modeld.model, CFG, text)]
        want = oracle.embedding(text)
        bad = differences(want, got, path="vector", labels=("the rule", "returned"))
        assert not bad, f"embed({text!r}):\n" + "\n".join(bad[:8])

    check()


@clause("C-ENGINE-05", source="docs/fake-engine.md (Snapshot / Restore); session-semantics.md §4.5, §4.6")
@pytest.mark.needs_fake_engine
def test_C_ENGINE_05_snapshot_restore_round_trip(modeld: Any) -> None:
    """A snapshot holds the resident tokens (prefix + suffix + generated); after another prefix, its
    Restore brings back ExplainContext's report and the text a greedy Decode sends next."""
    sid = _session(modeld)

    @suite_settings()
    @given(
        text=_PREFIX,
        suffix=st.text(max_size=8).filter(lambda t: len(t.encode("utf-8")) <= 16),
        n=st.integers(0, 8),
        seed=_SEED,
        after=st.integers(1, 8),
        other=_PREFIX,
    )
    @example(text="hello", suffix=" world", n=3, seed=7, after=4, other="other")
    def check(text: str, suffix: str, n: int, seed: int, after: int, other: str) -> None:
        st0 = modeld.conn.ensure_prefix(sid, prefix(text))
        assert st0["StableTokenHash"] == oracle.token_hash(oracle.tokens(text)), st0
        resident = oracle.tokens(text)
        if suffix:
            modeld.conn.prefill_suffix(sid, prefix(suffix))
            resident += oracle.tokens(suffix)
        if n:
            cfg = {"MaxTokens": n, "Seed": seed, "Temperature": 0.8}
            resident += oracle.decode(resident, cfg, num_ctx=NUM_CTX).generated
            assert modeld.conn.decode(sid, cfg).error is None
        snap = modeld.conn.snapshot(sid)
        report = modeld.conn.explain_context(sid)
        assert snap.get("resident_token_ids") == resident, (snap, resident)
        assert (report["ResidentTokens"], report["PrefixTokens"]) == (len(resident), len(oracle.tokens(text)))
        greedy = {"MaxTokens": after, "Temperature": 0}
        want = oracle.decode(resident, greedy, num_ctx=NUM_CTX).chunks
        modeld.conn.ensure_prefix(sid, prefix(other))
        modeld.conn.restore(sid, snap)
        again = modeld.conn.explain_context(sid)
        keys = ("ResidentTokens", "PrefixTokens", "StableTokenHash", "ManifestDigest", "NumCtx")
        assert {k: again[k] for k in keys} == {k: report[k] for k in keys}, (report, again)
        got = _chunks(modeld.conn.decode(sid, greedy))
        assert got == want, f"after Restore a greedy Decode sent {got}, the snapshot's tokens give {want}"

    check()
    with contextlib.suppress(ConnectorError):
        modeld.conn.close_session(sid)
