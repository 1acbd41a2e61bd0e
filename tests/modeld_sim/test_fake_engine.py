"""modeld_sim.engines.fake: llama arithmetic, the recorded eviction outcomes, error texts, hashes, and a
Hypothesis state machine against an independent model of the resident tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _sim_recorded import TINY_GGUF, recorded, reply_messages
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from modeld_sim.engines.base import Chunk, PlainError, compatible_runtime, manifest_is_zero
from modeld_sim.engines.fake import BOS_ID, FakeEngine, FakeSession, derive_eviction_budget, tokenize
from modeld_sim.gguf import write_fake_gguf
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.codec import manifest_digest, token_hash

REC = "real-llama.jsonl"
LLAMA_M = pb.ContextManifest(backend="llama")


def cfg(num_ctx: int, **kw: Any) -> pb.Config:
    c = pb.Config(NumCtx=num_ctx)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


async def session(
    num_ctx: int = 128, path: Path = TINY_GGUF, engine: FakeEngine | None = None
) -> FakeSession:
    eng = engine or FakeEngine("llama")
    model = await eng.load(str(path), cfg(num_ctx), [])
    return model.session()


def prefix(text: str, m: pb.ContextManifest = LLAMA_M) -> pb.PrefixInput:
    p = pb.PrefixInput(Text=text)
    p.Manifest.CopyFrom(m)
    return p


def suffix(text: str, m: pb.ContextManifest = LLAMA_M) -> pb.SuffixInput:
    s = pb.SuffixInput(Text=text)
    s.Manifest.CopyFrom(m)
    return s


def dcfg(max_tokens: int, seed: int | None = 7, temperature: float | None = 0.0) -> pb.DecodeConfig:
    c = pb.DecodeConfig(MaxTokens=max_tokens)
    if seed is not None:
        c.Seed = seed
    if temperature is not None:
        c.Temperature = temperature
    return c


async def collect(sess: FakeSession, c: pb.DecodeConfig) -> list[Chunk]:
    return [ch async for ch in sess.decode(c)]


async def fill(sess: FakeSession, prefix_text: str, total: int) -> None:
    """Resident = prefix_text, then decoded tokens up to ``total`` resident."""
    await sess.ensure_prefix(prefix(prefix_text))
    more = total - len(sess.resident)
    if more > 0:
        chunks = await collect(sess, dcfg(more))
        assert all(c.error is None for c in chunks)
    assert len(sess.resident) == total


# --------------------------------------------------------------------------- hashes and manifests


def test_recorded_hashes_and_digests() -> None:
    # llama.snapshot: the first 6 resident ids are the stable prefix, the next 4 the suffix
    snap = reply_messages(REC, "llama.snapshot")[0]
    ids = snap["resident_token_ids"]
    assert token_hash(ids[:6]) == snap["manifest"]["stable_token_hash"]
    assert token_hash(ids[6:10]) == snap["manifest"]["volatile_token_hash"]
    ens = reply_messages(REC, "llama.ensure.diverge")[0]
    assert ens["StableTokenHash"] == token_hash(ids[:6])
    assert ens["ManifestDigest"] == manifest_digest(LLAMA_M)  # digest of the request manifest
    # explain: digest of the resident (enriched) manifest
    m = pb.ContextManifest(
        backend="llama",
        stable_token_hash=snap["manifest"]["stable_token_hash"],
        volatile_token_hash=snap["manifest"]["volatile_token_hash"],
    )
    assert reply_messages(REC, "llama.explain")[0]["ManifestDigest"] == manifest_digest(m)
    assert reply_messages(REC, "llama.prefill")[0]["ManifestDigest"] == manifest_digest(m)
    full = reply_messages(REC, "llama.explain_full")[0]
    m2 = pb.ContextManifest(backend="llama", stable_token_hash=full["StableTokenHash"])
    assert full["ManifestDigest"] == manifest_digest(m2)


def test_manifest_rules() -> None:
    zero = pb.ContextManifest()
    assert manifest_is_zero(zero) and manifest_digest(zero) == ""
    assert manifest_is_zero(pb.ContextManifest(stable_token_hash="x", add_bos=True))
    a = pb.ContextManifest(backend="llama", prompt_format="f")
    assert compatible_runtime(a, zero) == (True, "")
    assert compatible_runtime(a, pb.ContextManifest(backend="llama", prompt_format="g")) == (
        False,
        "prompt_format changed",
    )
    assert compatible_runtime(a, pb.ContextManifest(backend="llama", prompt_format="f", add_bos=True)) == (
        False,
        "bos policy changed",
    )
    assert compatible_runtime(
        pb.ContextManifest(backend="x", profile_id="p"), pb.ContextManifest(backend="y", profile_id="q")
    ) == (False, "profile_id changed")
    assert compatible_runtime(
        a, pb.ContextManifest(backend="llama", prompt_format="f", stable_byte_hash="h")
    )[0]


def test_eviction_budget() -> None:
    assert derive_eviction_budget(128, 0).recent_tokens == 32
    assert derive_eviction_budget(256, 0).recent_tokens == 64
    assert derive_eviction_budget(256, 0).sink_tokens == 16
    assert derive_eviction_budget(3, 0).valid is False
    assert derive_eviction_budget(1024, 128).recent_tokens == 32


# --------------------------------------------------------------------------- the recorded arithmetic


async def test_ensure_prefix_arithmetic_like_recording() -> None:
    s = await session(128)
    st = await s.ensure_prefix(prefix("hello world"))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens, st.PrefixTokens) == (0, 11, 0, 11)
    assert st.AvailableTokens == 117 and st.StableTokenHash == token_hash(tokenize("hello world", False))
    st = await s.ensure_prefix(prefix("hello world"))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens) == (11, 0, 0)
    st = await s.ensure_prefix(prefix("hello world and more"))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens, st.PrefixTokens) == (11, 9, 0, 20)
    st = await s.ensure_prefix(prefix("hello there"))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens, st.ResidentTokens) == (6, 5, 14, 11)
    for r in (st,):
        assert r.ReusedTokens + r.PrefilledTokens == r.PrefixTokens
    sf = await s.prefill_suffix(suffix(" again"))
    assert (sf.SuffixTokens, sf.PrefixTokens, sf.ResidentTokens, sf.AvailableTokens) == (6, 11, 17, 111)
    assert sf.ManifestDigest == manifest_digest(s.manifest) != manifest_digest(LLAMA_M)
    assert s.manifest.volatile_token_hash == token_hash(tokenize(" again", False))
    chunks = await collect(s, dcfg(8))
    assert len(chunks) == 8 and all(len(c.text) == 1 for c in chunks)
    rep = s.explain()
    # counters: 4 prefills with tokens (11, 9, 5, 6) + the decode's 1-token tail refresh
    assert (
        rep.ResidentTokens,
        rep.PrefixTokens,
        rep.physical_prefill_calls,
        rep.physical_prefill_tokens,
        rep.decode_calls,
    ) == (25, 11, 5, 32, 1)
    assert rep.residency.budget_tokens == 128
    caps = rep.residency.capabilities
    assert caps.remove_tail and caps.remove_middle and caps.position_shift
    assert rep.HotContextTokens == rep.PlannerEffectiveContext == rep.NumCtx == 128
    # a manifest that is not runtime compatible forces a cold start (not an error)
    st = await s.ensure_prefix(prefix("hello there", pb.ContextManifest(backend="llama", prompt_format="x")))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens) == (0, 11, 25)


async def test_recorded_outcome_18_resident_500_tokens_window_128() -> None:
    # llama.decode_overflow + llama.explain_after_overflow: prefix 6, resident 18 → 500 chunks, 68 resident
    s = await session(128)
    await fill(s, "hello ", 18)
    assert s.prefix_len == 6
    chunks = await collect(s, dcfg(500))
    assert len(chunks) == len(reply_messages(REC, "llama.decode_overflow")) == 500
    assert all(c.error is None for c in chunks)
    rep = s.explain()
    want = reply_messages(REC, "llama.explain_after_overflow")[0]
    assert rep.ResidentTokens == want["ResidentTokens"] == 68
    assert rep.PrefixTokens == 6 and rep.AvailableTokens == want["AvailableTokens"]


async def test_recorded_outcomes_window_256() -> None:
    s = await session(256)
    # llama.ensure_225 + decode_at_window_end: 225 of 256 resident, MaxTokens 100 → 31 chunks, ends OK
    st = await s.ensure_prefix(prefix("w" * 225))
    assert st.AvailableTokens == 31
    chunks = await collect(s, dcfg(100))
    assert len(chunks) == len(reply_messages(REC, "llama.decode_at_window_end")) == 31
    assert all(c.error is None for c in chunks)
    full = reply_messages(REC, "llama.explain_full")[0]
    rep = s.explain()
    assert (rep.ResidentTokens, rep.PrefixTokens, rep.AvailableTokens) == (
        full["ResidentTokens"],
        full["PrefixTokens"],
        full["AvailableTokens"],
    )
    assert (rep.physical_prefill_calls, rep.physical_prefill_tokens, rep.decode_calls) == (
        full["physical_prefill_calls"],
        full["physical_prefill_tokens"],
        full["decode_calls"],
    )
    # llama.decode_when_full: one in-stream context_overflow chunk
    chunks = await collect(s, dcfg(5))
    assert len(chunks) == 1
    want = reply_messages(REC, "llama.decode_when_full")[0]
    wire = chunks[0].to_wire()
    assert wire.error == want["error"]
    assert wire.error_token == want["error_token"]
    assert (
        wire.error_detail.stage,
        wire.error_detail.resident_tokens,
        wire.error_detail.additional_tokens,
        wire.error_detail.num_ctx,
    ) == tuple(want["error_detail"][k] for k in ("stage", "resident_tokens", "additional_tokens", "num_ctx"))
    # llama.ensure_short_again + decode_max_tokens_zero: 20 resident, MaxTokens 0 → 256 chunks, 104 left
    st = await s.ensure_prefix(prefix("w" * 20))
    assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens) == (20, 0, 236)
    chunks = await collect(s, dcfg(0))
    assert len(chunks) == len(reply_messages(REC, "llama.decode_max_tokens_zero")) == 256
    after = reply_messages(REC, "llama.explain_after_default_decode")[0]
    rep = s.explain()
    assert (
        (rep.ResidentTokens, rep.PrefixTokens, rep.AvailableTokens)
        == (104, 20, 152)
        == (after["ResidentTokens"], after["PrefixTokens"], after["AvailableTokens"])
    )
    assert (rep.physical_prefill_calls, rep.physical_prefill_tokens, rep.decode_calls) == (
        after["physical_prefill_calls"],
        after["physical_prefill_tokens"],
        after["decode_calls"],
    )


async def test_overflow_texts() -> None:
    s = await session(128)
    with pytest.raises(werr.ContextOverflow) as ei:
        await s.ensure_prefix(prefix("word " * 400))
    assert str(ei.value) == (
        "exceeded the session context window during prefix: resident_tokens=0 "
        "additional_tokens=2000 num_ctx=128"
    )
    assert werr.status_for(ei.value)[1] == recorded(REC)["llama.ensure.overflow"]["reply"]["message"]
    await fill(s, "hello ", 68)
    with pytest.raises(werr.ContextOverflow) as ei:
        await s.prefill_suffix(suffix("word " * 400))
    assert werr.status_for(ei.value)[1] == recorded(REC)["llama.prefill.overflow"]["reply"]["message"]
    assert len(s.resident) == 68  # nothing changed
    # decode with nothing resident: refreshTailLogits overflow
    s2 = await session(128)
    chunks = await collect(s2, dcfg(3))
    assert len(chunks) == 1 and str(chunks[0].error) == (
        "exceeded the session context window during decode: resident_tokens=0 additional_tokens=1 num_ctx=128"
    )


async def test_manifest_mismatch_texts() -> None:
    s = await session(128)
    a = pb.ContextManifest(backend="llama", stable_bytes=6, total_bytes=6, stable_byte_hash="aaa")
    b = pb.ContextManifest(backend="llama", stable_bytes=6, total_bytes=7, stable_byte_hash="bbb")
    st = await s.ensure_prefix(prefix("stable", a))
    assert st.StableByteHash == "aaa" and st.ManifestDigest == manifest_digest(a)
    with pytest.raises(werr.ManifestMismatch) as ei:
        await s.prefill_suffix(suffix("x", b))
    assert werr.status_for(ei.value)[1] == recorded(REC)["llama.prefill_manifest_b"]["reply"]["message"]
    with pytest.raises(werr.ManifestMismatch) as ei:
        await s.prefill_suffix(suffix("x", pb.ContextManifest(backend="other")))
    assert str(ei.value) == "contextasm: context manifest mismatch: backend changed"
    # a zero suffix manifest is compatible and skips the stable-hash check
    sf = await s.prefill_suffix(suffix("x", pb.ContextManifest()))
    assert sf.SuffixTokens == 1


async def test_bos_handling(tmp_path: Path) -> None:
    p = write_fake_gguf(
        tmp_path / "bos.gguf", context_length=64, extra={"tokenizer.ggml.add_bos_token": True}
    )
    eng = FakeEngine("llama")
    s = (await eng.load(p, cfg(64), [])).session()
    st = await s.ensure_prefix(prefix("ab"))
    assert st.PrefixTokens == 3 and s.resident[0] == BOS_ID
    s2 = (await eng.load(p, cfg(64, DisableBOS=True), [])).session()
    assert (await s2.ensure_prefix(prefix("ab"))).PrefixTokens == 2
    # a suffix on an empty session gets the BOS too
    s3 = (await eng.load(p, cfg(64), [])).session()
    assert (await s3.prefill_suffix(suffix("ab"))).SuffixTokens == 3


async def test_decode_determinism_and_config(tmp_path: Path) -> None:
    a, b = await session(128), await session(128)
    for s in (a, b):
        await s.ensure_prefix(prefix("same prefix"))
    ca = [c.text for c in await collect(a, dcfg(20, seed=1, temperature=0.7))]
    cb = [c.text for c in await collect(b, dcfg(20, seed=1, temperature=0.7))]
    assert ca == cb
    c = await session(128)
    await c.ensure_prefix(prefix("same prefix"))
    cc = [x.text for x in await collect(c, dcfg(20, seed=2, temperature=0.7))]
    assert cc != ca
    # greedy ignores the seed
    g1, g2 = await session(128), await session(128)
    for s in (g1, g2):
        await s.ensure_prefix(prefix("p"))
    assert [x.text for x in await collect(g1, dcfg(10, seed=1))] == [
        x.text for x in await collect(g2, dcfg(10, seed=99))
    ]
    # invalid UTF-8 single bytes are U+FFFD; printable otherwise
    texts = [x.text for x in await collect(g1, dcfg(200))]
    assert all(len(t) == 1 for t in texts)
    # decode_text
    p = write_fake_gguf(tmp_path / "t.gguf", context_length=64, decode_text="abc")
    s = (await FakeEngine("llama").load(p, cfg(64), [])).session()
    await s.ensure_prefix(prefix("x"))
    assert "".join(x.text for x in await collect(s, dcfg(7))) == "abcabca"
    # protocols
    bad = dcfg(3)
    bad.StructuredOutput.Protocol = "xml"
    ch = await collect(s, bad)
    assert len(ch) == 1 and werr.status_for(ch[0].error)[1] == (  # type: ignore[arg-type]
        'unsupported_feature: unsupported transport feature: structured output protocol "xml" is not '
        "supported by the llama backend"
    )
    bad = dcfg(3)
    bad.ParserProtocols.append("nope")
    ch = await collect(s, bad)
    assert str(ch[0].error) == 'unsupported transport feature: parser protocol "nope"'


# --------------------------------------------------------------------------- the documented decode rules
# docs/fake-engine.md (Sampling, Parsers, Embed), restated here from the text, not from the engine.


def doc_key(seed: int, temperature: float | None, top_p: float | None, top_k: int) -> bytes:
    t = 0.8 if temperature is None else temperature
    if t <= 0:
        return b""
    p = b"\x00" if top_p is None else b"\x01" + struct.pack("<d", top_p)
    return struct.pack("<Q", seed % 2**64) + struct.pack("<d", t) + p + struct.pack("<q", top_k)


def doc_tokens(resident: list[int], key: bytes, n: int) -> list[int]:
    tape, out = list(resident), []
    for _ in range(n):
        d = hashlib.sha256(key + b"".join(struct.pack("<q", t) for t in tape[-8:])).digest()
        tok = 0x80 + d[0] % 0x40 if d[1] < 16 else 0x20 + d[0] % 0x5F
        tape.append(tok)
        out.append(tok)
    return out


def doc_piece(tok: int) -> str:
    return chr(tok) if tok < 0x80 else "\ufffd"


async def fake_session(tmp_path: Path, num_ctx: int = 128) -> FakeSession:
    path = write_fake_gguf(tmp_path / "m.gguf", context_length=512)
    return (await FakeEngine("llama").load(path, cfg(num_ctx), [])).session()


def sampled(
    max_tokens: int,
    *,
    seed: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int = 0,
    parsers: tuple[str, ...] = (),
    reasoning: str = "",
) -> pb.DecodeConfig:
    c = pb.DecodeConfig(MaxTokens=max_tokens, TopK=top_k, ReasoningFormat=reasoning)
    c.ParserProtocols.extend(parsers)
    for name, v in (("Seed", seed), ("Temperature", temperature), ("TopP", top_p)):
        if v is not None:
            setattr(c, name, v)
    return c


@pytest.mark.parametrize(
    ("seed", "temperature", "top_p", "top_k"),
    [
        (7, 0.0, None, 0),
        (7, -1.0, 0.5, 40),
        (7, None, None, 0),
        (7, 0.7, None, 0),
        (7, struct.unpack("<f", struct.pack("<f", 0.7))[0], None, 0),
        (8, 0.7, None, 0),
        (7, 0.7, 0.9, 0),
        (7, 0.7, 0.0, 0),
        (7, 0.7, None, 40),
        (2**63 - 1, 1.5, 1.0, -3),
    ],
)
async def test_decode_text_is_the_documented_function(
    tmp_path: Path, seed: int, temperature: float | None, top_p: float | None, top_k: int
) -> None:
    s = await fake_session(tmp_path)
    await s.ensure_prefix(prefix("the prefix", pb.ContextManifest()))
    c = sampled(12, seed=seed, temperature=temperature, top_p=top_p, top_k=top_k)
    chunks = await collect(s, c)
    want = doc_tokens(list(b"the prefix"), doc_key(seed, temperature, top_p, top_k), 12)
    assert [ch.text for ch in chunks] == [doc_piece(t) for t in want]
    assert s.resident == list(b"the prefix") + want


async def test_every_sampling_field_changes_the_text(tmp_path: Path) -> None:
    base = {"seed": 7, "temperature": 0.7, "top_p": 0.9, "top_k": 40}
    changed = [
        {},
        {"seed": 8},
        {"temperature": struct.unpack("<f", struct.pack("<f", 0.7))[0]},
        {"temperature": None},
        {"top_p": None},
        {"top_k": 0},
    ]
    texts = []
    for change in changed:
        s = await fake_session(tmp_path)
        await s.ensure_prefix(prefix("same", pb.ContextManifest()))
        texts.append("".join(c.text for c in await collect(s, sampled(16, **{**base, **change}))))
    assert len(set(texts)) == len(texts), texts
    # greedy: seed, top-p and top-k do not matter
    greedy = []
    for seed, top_p, top_k in ((1, None, 0), (2, 0.5, 9)):
        s = await fake_session(tmp_path)
        await s.ensure_prefix(prefix("same", pb.ContextManifest()))
        greedy.append(
            [c.text for c in await collect(s, sampled(8, seed=seed, temperature=0, top_p=top_p, top_k=top_k))]
        )
    assert greedy[0] == greedy[1]


async def test_reasoning_parser_sends_the_first_half_as_thinking(tmp_path: Path) -> None:
    want = [doc_piece(t) for t in doc_tokens(list(b"think"), b"", 7)]
    for fmt, n_thinking in (("deepseek", 3), ("auto", 3), ("none", 0)):
        s = await fake_session(tmp_path)
        await s.ensure_prefix(prefix("think", pb.ContextManifest()))
        c = sampled(7, temperature=0, parsers=("llama:common_chat_reasoning_parser",), reasoning=fmt)
        chunks = await collect(s, c)
        assert [ch.thinking for ch in chunks] == want[:n_thinking] + [""] * (7 - n_thinking), fmt
        assert [ch.text for ch in chunks] == [""] * n_thinking + want[n_thinking:], fmt
        assert len(s.resident) == 5 + 7
    # the parser without a format is refused before any token
    s = await fake_session(tmp_path)
    await s.ensure_prefix(prefix("think", pb.ContextManifest()))
    ch = await collect(s, sampled(4, temperature=0, parsers=("llama:common_chat_reasoning_parser",)))
    assert len(ch) == 1 and ch[0].error is not None and len(s.resident) == 5


@pytest.mark.parametrize(
    ("tools", "name"),
    [
        ("", "fake_tool"),
        ('[{"type":"function","function":{"name":"get_weather","parameters":{}}}]', "get_weather"),
        ('[{"name":"lookup"},{"name":"second"}]', "lookup"),
        ('[{"function":{"name":""},"name":"outer"}]', "outer"),
        ("not json", "fake_tool"),
        ("[1, 2]", "fake_tool"),
        ('{"name": "an object, not an array"}', "fake_tool"),
    ],
)
async def test_tool_parser_ends_with_one_tool_call(tmp_path: Path, tools: str, name: str) -> None:
    s = await fake_session(tmp_path)
    p = prefix("call", pb.ContextManifest())
    p.Tools = tools
    await s.ensure_prefix(p)
    chunks = await collect(s, sampled(5, temperature=0, parsers=("llama:common_chat_tool_parser",)))
    assert [c.text for c in chunks[:5]] == [doc_piece(t) for t in doc_tokens(list(b"call"), b"", 5)]
    last = chunks[-1]
    assert len(chunks) == 6 and (last.text, last.thinking, last.error) == ("", "", None)
    assert [(t.id, t.type, t.function.name, t.function.arguments) for t in last.tool_calls] == [
        ("call_0", "function", name, '{"tokens":5}')
    ]
    assert len(s.resident) == 4 + 5  # the tool call adds no token


async def test_tool_call_counts_tokens_up_to_the_window_end(tmp_path: Path) -> None:
    # 20 resident in a window of 24 with prefix 20: nothing can slide, the stream stops after 4 tokens
    s = await fake_session(tmp_path, 24)
    await s.ensure_prefix(prefix("p" * 20, pb.ContextManifest()))
    chunks = await collect(s, sampled(10, temperature=0, parsers=("llama:common_chat_tool_parser",)))
    assert len(chunks) == 5 and chunks[-1].tool_calls[0].function.arguments == '{"tokens":4}'


async def test_restore_takes_the_books_from_the_snapshot_as_sent(tmp_path: Path) -> None:
    s = await fake_session(tmp_path)
    await s.ensure_prefix(prefix("snap", pb.ContextManifest()))
    await s.prefill_suffix(suffix(" me", pb.ContextManifest()))
    snap = await s.snapshot()
    after_snapshot = [c.text for c in await collect(s, sampled(6, temperature=0))]
    report = s.explain()
    await s.ensure_prefix(prefix("something else", pb.ContextManifest()))
    await s.restore(snap.snapshot, snap.state)
    assert [c.text for c in await collect(s, sampled(6, temperature=0))] == after_snapshot
    again = s.explain()
    assert (again.ResidentTokens, again.PrefixTokens, again.StableTokenHash) == (
        report.ResidentTokens,
        report.PrefixTokens,
        report.StableTokenHash,
    )
    # other token ids in the snapshot: the session continues from those
    other = pb.SessionSnapshot()
    other.CopyFrom(snap.snapshot)
    other.resident_token_ids[:] = list(b"snap yo")
    await s.restore(other, snap.state)
    assert s.resident == list(b"snap yo")
    assert [c.text for c in await collect(s, sampled(3, temperature=0))] == [
        doc_piece(t) for t in doc_tokens(list(b"snap yo"), b"", 3)
    ]


async def test_embed_is_the_documented_vector(tmp_path: Path) -> None:
    path = write_fake_gguf(tmp_path / "e.gguf", embedding_length=20)
    for text in ("", "hello", "ünïcødé ✓"):
        values: list[float] = []
        c = 0
        while len(values) < 20:
            d = hashlib.sha256(f"{c}".encode() + b"\x00" + text.encode()).digest()
            values += [u / 2**31 - 1.0 for u in struct.unpack("<8I", d)]
            c += 1
        values = values[:20]
        norm = math.sqrt(math.fsum(v * v for v in values))
        want = [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]
        assert await FakeEngine("llama").embed(path, cfg(0), text) == want


class VirtualTime:
    """Virtual time for :class:`FakeEngine`: a decode's per-token ``sleep`` parks until the timer task
    (:meth:`run`, another task on the same loop) advances the clock by exactly that delay and wakes it."""

    def __init__(self, t0: float = 1000.0) -> None:
        self.t = t0
        self.fired = 0
        self._due: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    def __call__(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._due.put_nowait((delay, fut))
        await fut

    async def run(self) -> None:
        while True:
            delay, fut = await self._due.get()
            self.t += delay
            self.fired += 1
            fut.set_result(None)


async def test_decode_latency_and_deadline() -> None:
    vt = VirtualTime()
    eng = FakeEngine("llama", token_latency=1 / 64, sleep=vt.sleep, clock=vt)  # 1/64 s: exact in binary
    s = (await eng.load(str(TINY_GGUF), cfg(128), [])).session()
    await s.ensure_prefix(prefix("p"))
    timer = asyncio.create_task(vt.run())
    try:
        # an already-expired deadline (on the engine's clock) ends before any token wait
        chunks = [c async for c in s.decode(dcfg(100), deadline=vt.t)]
        assert len(chunks) == 1 and isinstance(chunks[0].error, werr.DeadlineExceeded) and vt.fired == 0
        chunks = await asyncio.wait_for(_collect_stream(s.decode(dcfg(100), deadline=vt.t + 0.1)), 5)
    finally:
        timer.cancel()
    # Every token's latency was awaited and only the timer task (another task) could end the wait:
    # the loop kept running during decode. 6 tokens fit in 0.1 s at 1/64 s; the 7th wait crosses it.
    assert vt.fired == 7 and vt.t == 1000.0 + 7 / 64
    assert len(chunks) == 7 and all(c.text and c.error is None for c in chunks[:6])
    assert isinstance(chunks[-1].error, werr.DeadlineExceeded)


async def _collect_stream(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in stream]


async def test_snapshot_restore_checks() -> None:
    s = await session(128)
    await fill(s, "hello ", 18)
    snap = await s.snapshot()
    assert snap.snapshot.resident_tokens == 18 and snap.snapshot.prefix_tokens == 6
    assert list(snap.snapshot.resident_token_ids) == s.resident and snap.state
    await s.ensure_prefix(prefix("other"))
    await s.restore(snap.snapshot, snap.state)
    assert len(s.resident) == 18 and s.prefix_len == 6
    assert s.explain().ManifestDigest == manifest_digest(snap.snapshot.manifest)

    def variant(**kw: Any) -> pb.SessionSnapshot:
        v = pb.SessionSnapshot()
        v.CopyFrom(snap.snapshot)
        for k, val in kw.items():
            if k == "resident_token_ids":
                del v.resident_token_ids[:]
                v.resident_token_ids.extend(val)
            else:
                setattr(v, k, val)
        return v

    cases: list[tuple[pb.SessionSnapshot, bytes, type[Exception], str]] = [
        (
            variant(num_ctx=64),
            snap.state,
            werr.ManifestMismatch,
            "contextasm: context manifest mismatch: snapshot context window changed",
        ),
        (
            variant(prefix_tokens=19),
            snap.state,
            PlainError,
            "llamasession restore invalid snapshot: prefix_tokens=19 resident_tokens=18",
        ),
        (
            variant(resident_tokens=200, prefix_tokens=0),
            snap.state,
            werr.ContextOverflow,
            "exceeded the session context window during restore: resident_tokens=0 additional_tokens=200 "
            "num_ctx=128",
        ),
        (
            variant(resident_token_ids=[1, 2]),
            snap.state,
            PlainError,
            "llamasession restore invalid snapshot: resident_token_ids=2 resident_tokens=18",
        ),
        (
            variant(),
            b"",
            PlainError,
            "llamasession restore invalid snapshot: non-empty resident token set has empty state",
        ),
    ]
    for v, state, exc, text in cases:
        with pytest.raises(exc) as ei:
            await s.restore(v, state)
        assert str(ei.value) == text
    mm = variant()
    mm.manifest.prompt_format = "other"
    with pytest.raises(werr.ManifestMismatch):
        await s.restore(mm, snap.state)
    # a corrupt state poisons the session
    with pytest.raises(werr.SessionFatal) as ei:
        await s.restore(variant(), b"garbage")
    assert (
        str(ei.value)
        == "session marked fatal; evict and reopen: llamasession restore state: invalid state data"
    )
    assert s.closed and s.explain().fatal_error
    with pytest.raises(werr.SessionFatal):
        await s.ensure_prefix(prefix("x"))


async def test_closed_session() -> None:
    s = await session(128)
    await s.close()
    with pytest.raises(werr.SessionClosed):
        await s.ensure_prefix(prefix("x"))
    with pytest.raises(werr.SessionClosed):
        await s.prefill_suffix(suffix("x"))
    with pytest.raises(werr.SessionClosed):
        await s.snapshot()
    ch = await collect(s, dcfg(1))
    assert isinstance(ch[0].error, werr.SessionClosed)
    assert s.explain().Closed


async def test_describe_embed_and_load_limits(tmp_path: Path) -> None:
    eng = FakeEngine("llama")
    d = eng.describe(str(TINY_GGUF), cfg(128))
    want = reply_messages(REC, "llama.describe")[0]
    for k, v in want.items():
        if v == "<machine>" or k == "devices":
            continue
        assert getattr(d, k) == v, k
    assert list(want) == [f.name for f, _ in d.ListFields() if f.name in want]  # same keys present
    auto = eng.describe(str(TINY_GGUF), cfg(0))
    assert auto.effective_context == 256 and auto.planner_effective_context == 256
    big = eng.describe(str(TINY_GGUF), cfg(512))
    assert big.effective_context == 256 and big.clamped and big.reason == "request_exceeds_memory_budget"
    with pytest.raises(werr.ContextOverflow) as ei:
        await eng.load(str(TINY_GGUF), cfg(512), [])
    assert str(ei.value) == (
        "exceeded the session context window: requested num_ctx=512 exceeds modeld "
        "effective context=256 (request_exceeds_memory_budget)"
    )
    m = await eng.load(str(TINY_GGUF), cfg(0), [])
    assert m.config.NumCtx == 256 and m.session().num_ctx == 256
    odd = await eng.load(str(TINY_GGUF), cfg(127), [])
    assert odd.session().num_ctx == 126
    vec = await eng.embed(str(TINY_GGUF), cfg(128), "hello")
    assert len(vec) == len(reply_messages(REC, "llama.embed")[0]["vector"]) == 64
    assert vec == await eng.embed(str(TINY_GGUF), cfg(128), "hello")
    assert vec != await eng.embed(str(TINY_GGUF), cfg(128), "hello!")
    assert abs(sum(v * v for v in vec) - 1.0) < 1e-5
    noemb = write_fake_gguf(tmp_path / "ne.gguf", supports_embedding=False)
    with pytest.raises(werr.UnsupportedFeature):
        await eng.embed(noemb, cfg(0), "x")
    thinking = write_fake_gguf(
        tmp_path / "th.gguf", chat_template_supports_thinking=True, chat_template_format="qwen3"
    )
    di = eng.describe(thinking, cfg(64))
    assert di.chat_template_format == "qwen3" and di.chat_template_reasoning_format == "auto"


async def test_openvino_flavour(tmp_path: Path) -> None:
    d = tmp_path / "ov"
    d.mkdir()
    eng = FakeEngine("openvino")
    with pytest.raises(PlainError) as ei:
        eng.inspect(str(d))
    assert str(ei.value) == f'openvino model KV profile: openvinoshim: inspect model "{d}"'
    (d / "openvino_model.xml").write_text("<xml/>")
    (d / "modeld_sim.json").write_text(json.dumps({"context_length": 64, "embedding_length": 8}))
    s = (await eng.load(str(d), cfg(0), [])).session()
    assert s.num_ctx == 64
    with pytest.raises(werr.ContextOverflow) as ei2:
        await s.ensure_prefix(prefix("x" * 65))
    assert str(ei2.value) == "exceeded the session context window"
    await s.ensure_prefix(prefix("x" * 60))
    ch = await collect(s, dcfg(10))
    assert len(ch) == 5 and str(ch[-1].error) == "exceeded the session context window"
    assert len(await eng.embed(str(d), cfg(0), "x")) == 8


# --------------------------------------------------------------------------- state machine


class SessionMachine(RuleBasedStateMachine):
    """The fake session against an independent model of (resident tokens, prefix length)."""

    NUM_CTX = 64

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sess: FakeSession = self.loop.run_until_complete(session(self.NUM_CTX))
        self.resident: list[int] = []
        self.prefix_len = 0
        self.snaps: list[tuple[Any, list[int], int]] = []
        self.prefill_calls = 0
        self.decode_calls = 0

    def teardown(self) -> None:
        self.loop.close()

    def run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    @initialize()
    def start(self) -> None:
        assert self.sess.explain().ResidentTokens == 0

    @rule(text=st.text(alphabet="ab ", max_size=80))
    def ensure(self, text: str) -> None:
        toks = list(text.encode())
        if len(toks) > self.NUM_CTX:
            with pytest.raises(werr.ContextOverflow):
                self.run(self.sess.ensure_prefix(prefix(text)))
            return
        st_ = self.run(self.sess.ensure_prefix(prefix(text)))
        reuse = 0
        while reuse < min(len(toks), len(self.resident)) and toks[reuse] == self.resident[reuse]:
            reuse += 1
        assert (st_.ReusedTokens, st_.PrefilledTokens, st_.DroppedTokens) == (
            reuse,
            len(toks) - reuse,
            len(self.resident) - reuse,
        )
        if len(toks) - reuse > 0:
            self.prefill_calls += 1
        self.resident = toks
        self.prefix_len = len(toks)

    @rule(text=st.text(alphabet="cd", max_size=40))
    def prefill(self, text: str) -> None:
        toks = list(text.encode())
        if len(self.resident) + len(toks) > self.NUM_CTX:
            with pytest.raises(werr.ContextOverflow) as ei:
                self.run(self.sess.prefill_suffix(suffix(text)))
            assert ei.value.detail_fields.resident_tokens == len(self.resident)
            return
        st_ = self.run(self.sess.prefill_suffix(suffix(text)))
        assert st_.SuffixTokens == len(toks)
        if toks:
            self.prefill_calls += 1
        self.resident = self.resident + toks
        assert st_.ResidentTokens == len(self.resident)

    @rule(n=st.integers(min_value=0, max_value=150))
    def decode(self, n: int) -> None:
        chunks = self.run(collect(self.sess, dcfg(n)))
        self.decode_calls += 1
        want = n if n > 0 else 256
        recent = self.NUM_CTX // 4
        res, pl = list(self.resident), self.prefix_len
        errors = [c for c in chunks if c.error is not None]
        if len(res) >= self.NUM_CTX and len(res) - recent <= pl:
            assert len(chunks) == 1 and isinstance(errors[0].error, werr.ContextOverflow)
            return
        if len(res) >= self.NUM_CTX:
            res = res[:pl] + res[len(res) - recent :]
        if not res:
            assert len(chunks) == 1 and errors
            return
        self.prefill_calls += 1
        produced = 0
        gen = [ord(c.text) if ord(c.text) < 0x80 else None for c in chunks]
        for _ in range(want):
            if len(res) >= self.NUM_CTX:
                if len(res) - recent <= pl:
                    break
                res = res[:pl] + res[len(res) - recent :]
            res.append(-1)  # placeholder: the token value is the engine's
            produced += 1
        assert not errors and len(chunks) == produced
        # fill placeholders with the engine's actual tail to keep comparing lengths and prefix
        assert len(self.sess.resident) == len(res)
        assert self.sess.resident[:pl] == res[:pl]
        self.resident = list(self.sess.resident)
        _ = gen

    @rule()
    def snapshot(self) -> None:
        snap = self.run(self.sess.snapshot())
        self.snaps.append((snap, list(self.resident), self.prefix_len))

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        if not self.snaps:
            return
        snap, res, pl = data.draw(st.sampled_from(self.snaps))
        self.run(self.sess.restore(snap.snapshot, snap.state))
        self.resident, self.prefix_len = list(res), pl

    @invariant()
    def explain_matches(self) -> None:
        rep = self.sess.explain()
        assert rep.ResidentTokens == len(self.resident) == len(self.sess.resident)
        assert self.sess.resident == self.resident
        assert rep.PrefixTokens == self.prefix_len
        assert rep.AvailableTokens == self.NUM_CTX - len(self.resident)
        assert rep.decode_calls == self.decode_calls
        assert rep.physical_prefill_calls == self.prefill_calls


SessionMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSessionMachine = SessionMachine.TestCase
