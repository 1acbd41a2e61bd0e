"""The real llama.cpp engine, in-process (skipped without llama-cpp-python; with MODELD_REQUIRE_LLAMA=1
under strict mode — CI, MODELD_STRICT — a failure instead)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _engines_support import require_or_skip
from modeld_contract.corpus import MODELD_CORPUS, TINY_GGUF_NAME

from modeld_sim.engines.base import Chunk, PlainError
from modeld_sim.engines.llama import LlamaEngine, LlamaSession, go_json_text, llama_available
from modeld_sim.makemodel import make_llama_gguf
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb


@pytest.fixture(scope="module", autouse=True)
def _need_llama() -> None:
    require_or_skip(llama_available(), "llama-cpp-python is not installed")


@pytest.fixture(scope="module")
def corpus_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("llama-model")
    path = d / TINY_GGUF_NAME
    shutil.copyfile(MODELD_CORPUS / TINY_GGUF_NAME, path)
    return str(path)


@pytest.fixture(scope="module")
def made_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_llama_gguf(str(tmp_path_factory.mktemp("made") / "tiny.gguf"), seed=11)


@pytest.fixture
async def engine() -> AsyncIterator[LlamaEngine]:
    e = LlamaEngine()
    yield e
    await e.aclose()


def man() -> pb.ContextManifest:
    return pb.ContextManifest(backend="llama")


async def open_session(engine: LlamaEngine, path: str, num_ctx: int = 128) -> LlamaSession:
    m = await engine.load(path, pb.Config(NumCtx=num_ctx), [])
    return m.session()


async def decode(s: LlamaSession, **cfg: object) -> list[Chunk]:
    return [c async for c in s.decode(pb.DecodeConfig(**cfg))]  # type: ignore[arg-type]


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def test_go_json_text_replaces_each_invalid_byte() -> None:
    assert go_json_text(b"ab") == "ab"
    assert go_json_text(b"\xff") == "\ufffd"
    assert go_json_text(b"\xe2\x82") == "\ufffd\ufffd"  # Go: one U+FFFD per byte
    assert go_json_text("é".encode()) == "é"


def test_describe_from_the_models_metadata(engine: LlamaEngine, corpus_model: str) -> None:
    info = engine.describe(corpus_model, pb.Config(NumCtx=128))
    assert info.model_max_context == 256
    assert info.effective_context == 128  # min(request, model ceiling, memory rule)
    assert info.kv_bytes_per_token == 512
    assert info.required_bytes == 470976 + 128 * 512
    assert info.runtime_name == "llama.cpp" and info.runtime_system_info
    assert engine.describe(corpus_model, pb.Config()).effective_context == 256


async def test_real_tokenization_and_prefix_arithmetic(engine: LlamaEngine, corpus_model: str) -> None:
    s = await open_session(engine, corpus_model)
    first = await s.ensure_prefix(pb.PrefixInput(Text="hello world", Manifest=man()))
    assert (first.PrefixTokens, first.PrefilledTokens) == (9, 9)  # byte-level BPE, not 11 bytes
    ext = await s.ensure_prefix(pb.PrefixInput(Text="hello world and more", Manifest=man()))
    assert (ext.ReusedTokens, ext.PrefilledTokens, ext.DroppedTokens) == (9, 7, 0)
    div = await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    assert (div.ReusedTokens, div.PrefilledTokens, div.DroppedTokens, div.PrefixTokens) == (3, 3, 13, 6)
    assert s.resident == [256, 257, 78, 259, 256, 263]
    rep = s.explain()
    assert (rep.physical_prefill_calls, rep.physical_prefill_tokens) == (3, 19)  # only the tails ran


async def test_warm_prefix_gives_the_cold_logits(engine: LlamaEngine, made_model: str) -> None:
    words = " ".join(f"w{i % 10}" for i in range(60))
    warm = await open_session(engine, made_model, 256)
    await warm.ensure_prefix(pb.PrefixInput(Text=words + " alpha beta", Manifest=man()))
    st = await warm.ensure_prefix(pb.PrefixInput(Text=words + " gamma delta", Manifest=man()))
    assert st.ReusedTokens > 0 and st.PrefilledTokens < st.PrefixTokens
    await warm.prefill_suffix(pb.SuffixInput(Text=" go", Manifest=man()))
    e2 = LlamaEngine()
    try:
        cold = await open_session(e2, made_model, 256)
        await cold.ensure_prefix(pb.PrefixInput(Text=words + " gamma delta", Manifest=man()))
        await cold.prefill_suffix(pb.SuffixInput(Text=" go", Manifest=man()))

        def logits(s: LlamaSession) -> list[float]:
            model, ctx, _ = s._native()
            row = model.L.llama_get_logits_ith(ctx, -1)
            return [float(row[i]) for i in range(266)]

        a = await engine.run(logits, warm)
        b = await e2.run(logits, cold)
        # Not bit for bit: llama.cpp's matmul kernels depend on the batch shape (the reused rows were
        # computed in a larger batch than a cold run's), exactly as in the real daemon, which makes the
        # same calls. Close, and the same greedy continuation.
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 2e-2  # f16 KV; measured 2.4e-3
        assert texts(await decode(warm, MaxTokens=12, Temperature=0)) == texts(
            await decode(cold, MaxTokens=12, Temperature=0)
        )
    finally:
        await e2.aclose()


async def test_seeded_sampling_is_reproducible(engine: LlamaEngine, made_model: str) -> None:
    async def run(seed: int) -> list[str]:
        s = await open_session(engine, made_model)
        await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
        out = texts(await decode(s, MaxTokens=24, Temperature=1.5, Seed=seed))
        await s.close()
        return out

    a, b = await run(5), await run(5)
    assert a == b
    others = [await run(seed) for seed in (6, 7, 8)]
    assert any(o != a for o in others)


async def test_the_three_recorded_window_outcomes(engine: LlamaEngine, corpus_model: str) -> None:
    s = await open_session(engine, corpus_model, 128)
    await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    await s.prefill_suffix(pb.SuffixInput(Text=" again", Manifest=man()))
    await decode(s, MaxTokens=8, Temperature=0, Seed=7)
    out = await decode(s, MaxTokens=500, Temperature=0, Seed=7)
    assert len(out) == 500 and all(c.error is None for c in out)
    assert s.explain().ResidentTokens == 68  # sink prefix 6 + recent 32, slid while decoding
    await s.close()

    s = await open_session(engine, corpus_model, 256)
    await s.ensure_prefix(pb.PrefixInput(Text="word " * 45, Manifest=man()))
    assert len(s.resident) == 225
    out = await decode(s, MaxTokens=100, Temperature=0, Seed=7)
    assert len(out) == 31 and s.explain().ResidentTokens == 256  # window end, nothing to evict: stop
    full = await decode(s, MaxTokens=5, Temperature=0, Seed=7)
    assert len(full) == 1 and isinstance(full[0].error, werr.ContextOverflow)
    assert str(full[0].error) == (
        "exceeded the session context window during decode: resident_tokens=256 additional_tokens=1 "
        "num_ctx=256"
    )
    await s.ensure_prefix(pb.PrefixInput(Text="word " * 4, Manifest=man()))
    out = await decode(s, MaxTokens=0, Temperature=0, Seed=7)
    assert len(out) == 256  # MaxTokens 0 -> 256
    assert s.explain().ResidentTokens == 104


async def test_context_overflow_details(engine: LlamaEngine, corpus_model: str) -> None:
    s = await open_session(engine, corpus_model, 128)
    with pytest.raises(werr.ContextOverflow) as ei:
        await s.ensure_prefix(pb.PrefixInput(Text="word " * 400, Manifest=man()))
    assert ei.value.detail_fields == werr.OverflowDetail("prefix", 0, 2000, 128)
    await s.ensure_prefix(pb.PrefixInput(Text="hi", Manifest=man()))
    with pytest.raises(werr.ContextOverflow) as ei:
        await s.prefill_suffix(pb.SuffixInput(Text="word " * 400, Manifest=man()))
    assert ei.value.detail_fields == werr.OverflowDetail("suffix", 2, 2000, 128)
    with pytest.raises(werr.ContextOverflow):
        await engine.load(corpus_model, pb.Config(NumCtx=512), [])


async def test_snapshot_restore_continues_identically(engine: LlamaEngine, made_model: str) -> None:
    s = await open_session(engine, made_model)
    await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    await s.prefill_suffix(pb.SuffixInput(Text=" again", Manifest=man()))
    snap = await s.snapshot()
    assert snap.state and snap.snapshot.resident_tokens == len(s.resident)
    first = texts(await decode(s, MaxTokens=10, Temperature=0))
    await s.ensure_prefix(pb.PrefixInput(Text="something else entirely", Manifest=man()))
    await s.restore(snap.snapshot, snap.state)
    assert s.resident == list(snap.snapshot.resident_token_ids)
    assert texts(await decode(s, MaxTokens=10, Temperature=0)) == first
    with pytest.raises(werr.SessionFatal):
        await s.restore(snap.snapshot, b"garbage state")
    assert s.closed


async def test_bad_model_files_give_the_recorded_answers(
    engine: LlamaEngine, tmp_path: Path, corpus_model: str
) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes([3, 0, 0, 0]) + b"garbage")
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(Path(corpus_model).read_bytes()[:4096])
    text = tmp_path / "x.txt"
    text.write_text("not a model")
    for path in (str(corrupt), str(trunc), str(tmp_path), str(text), str(tmp_path / "missing.gguf")):
        want = f'llama model KV profile: llamacppshim: inspect GGUF metadata "{path}"'
        with pytest.raises(PlainError) as ei:
            await engine.load(path, pb.Config(NumCtx=128), [])
        assert str(ei.value) == want
        with pytest.raises(PlainError):
            engine.describe(path, pb.Config(NumCtx=128))


async def test_embed(engine: LlamaEngine, corpus_model: str, tmp_path: Path) -> None:
    vec = await engine.embed(corpus_model, pb.Config(NumCtx=128), "hello")
    assert len(vec) == 64 and math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-6)
    assert abs(vec[0] - 0.038246866) < 1e-6  # the real daemon's value
    no = make_llama_gguf(
        str(tmp_path / "noembed.gguf"), seed=1, extra={"modeld_sim.supports_embedding": False}
    )
    with pytest.raises(werr.UnsupportedFeature):
        await engine.embed(no, pb.Config(), "hello")
    with pytest.raises(PlainError, match="input is 9 tokens but the limit is 2"):
        await engine.embed(corpus_model, pb.Config(NumCtx=2), "hello world")


async def test_decode_refusals(engine: LlamaEngine, corpus_model: str) -> None:
    s = await open_session(engine, corpus_model)
    empty = await decode(s, MaxTokens=3, Temperature=0)
    assert len(empty) == 1 and isinstance(empty[0].error, werr.ContextOverflow)
    await s.ensure_prefix(pb.PrefixInput(Text="hi", Manifest=man()))
    cfg = pb.DecodeConfig(MaxTokens=3)
    cfg.StructuredOutput.Protocol = "xml"
    bad = [c async for c in s.decode(cfg)]
    assert len(bad) == 1 and isinstance(bad[0].error, werr.UnsupportedFeature)
    await s.close()
    closed = await decode(s, MaxTokens=3)
    assert isinstance(closed[0].error, werr.SessionClosed)


async def test_decode_never_blocks_the_event_loop(engine: LlamaEngine, corpus_model: str) -> None:
    s = await open_session(engine, corpus_model, 256)
    await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    t = asyncio.create_task(ticker())
    n = 0
    for _ in range(3):
        n += len(await decode(s, MaxTokens=200, Temperature=0))
        await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    done.set()
    await t
    assert n == 600 and len(gaps) > 10
    assert max(gaps) < 0.25, f"the loop stalled {max(gaps):.3f} s"


def test_make_model_is_deterministic_and_loadable(tmp_path: Path) -> None:
    a = make_llama_gguf(str(tmp_path / "a.gguf"), seed=4)
    b = make_llama_gguf(str(tmp_path / "b.gguf"), seed=4)
    c = make_llama_gguf(str(tmp_path / "c.gguf"), seed=5)

    def h(p: str) -> str:
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    assert h(a) == h(b) != h(c)

    async def run() -> list[str]:
        e = LlamaEngine()
        try:
            s = await open_session(e, a)
            st = await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
            assert st.PrefixTokens == 6  # the same byte-level BPE as the corpus model
            return texts(await decode(s, MaxTokens=5, Temperature=0))
        finally:
            await e.aclose()

    assert len(asyncio.run(run())) == 5


def test_make_model_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeld_sim.cli import main

    out = tmp_path / "cli.gguf"
    assert main(["make-model", "--type", "llama", "--out", str(out), "--seed", "2"]) == 0
    assert out.is_file() and "wrote llama model" in capsys.readouterr().out
    assert main(["make-model", "--type", "nope", "--out", str(out)]) == 2
