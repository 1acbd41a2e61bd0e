"""The real OpenVINO engine on a tiny stateful IR made by ``make-model`` (skipped without openvino /
tokenizers; with MODELD_REQUIRE_OPENVINO=1 under strict mode — CI, MODELD_STRICT — a failure instead)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _engines_support import REQUIRE_OV_ENV, ServeProcess, require_or_skip
from modeld_contract.h2client import RawGrpcClient

from modeld_sim.engines.base import Chunk, PlainError
from modeld_sim.engines.openvino import OpenVINOEngine, OpenVINOSession, openvino_available
from modeld_sim.makemodel import ModelShape, make_openvino_dir
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb


@pytest.fixture(scope="module", autouse=True)
def _need_openvino() -> None:
    require_or_skip(openvino_available(), "openvino / tokenizers are not installed", REQUIRE_OV_ENV)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_openvino_dir(str(tmp_path_factory.mktemp("ov") / "tiny"), seed=3)


@pytest.fixture
async def engine() -> AsyncIterator[OpenVINOEngine]:
    yield OpenVINOEngine()


def man() -> pb.ContextManifest:
    return pb.ContextManifest(backend="openvino")


async def open_session(engine: OpenVINOEngine, path: str, num_ctx: int = 128) -> OpenVINOSession:
    return (await engine.load(path, pb.Config(NumCtx=num_ctx), [])).session()


async def decode(s: OpenVINOSession, **cfg: object) -> list[Chunk]:
    return [c async for c in s.decode(pb.DecodeConfig(**cfg))]  # type: ignore[arg-type]


def test_make_model_is_deterministic(tmp_path: Path) -> None:
    a = make_openvino_dir(str(tmp_path / "a"), seed=9, shape=ModelShape(context_length=64))
    b = make_openvino_dir(str(tmp_path / "b"), seed=9, shape=ModelShape(context_length=64))

    def h(d: str) -> str:
        return hashlib.sha256((Path(d) / "openvino_model.bin").read_bytes()).hexdigest()

    assert h(a) == h(b)
    assert json.loads((Path(a) / "modeld_sim.json").read_text())["context_length"] == 64


def test_describe_from_the_models_facts(engine: OpenVINOEngine, model_dir: str) -> None:
    info = engine.describe(model_dir, pb.Config(NumCtx=128))
    assert (info.model_max_context, info.effective_context) == (256, 128)
    assert info.runtime_name == "openvino"
    assert engine.describe(model_dir, pb.Config()).effective_context == 256


async def test_tokenization_reuse_and_exact_warm_logits(engine: OpenVINOEngine, model_dir: str) -> None:
    s = await open_session(engine, model_dir)
    for text, want in (
        ("hello world", (0, 9, 0, 9)),
        ("hello world and more", (9, 7, 0, 16)),
        ("hello there", (3, 3, 13, 6)),
    ):
        st = await s.ensure_prefix(pb.PrefixInput(Text=text, Manifest=man()))
        assert (st.ReusedTokens, st.PrefilledTokens, st.DroppedTokens, st.PrefixTokens) == want
    assert s.resident == [256, 257, 78, 259, 256, 263]  # the same BPE as the llama tiny model
    cold = await open_session(engine, model_dir)
    await cold.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    assert s._logits is not None and cold._logits is not None
    assert (s._logits == cold._logits).all()  # trimming the f32 KV state is exact


async def test_overflow_is_the_bare_sentinel_and_decode_caps(engine: OpenVINOEngine, model_dir: str) -> None:
    s = await open_session(engine, model_dir, 64)
    with pytest.raises(werr.ContextOverflow) as ei:
        await s.ensure_prefix(pb.PrefixInput(Text="word " * 100, Manifest=man()))
    assert str(ei.value) == "exceeded the session context window" and ei.value.overflow_detail() is None
    await s.ensure_prefix(pb.PrefixInput(Text="word " * 10, Manifest=man()))
    out = await decode(s, MaxTokens=500, Temperature=0)
    assert all(c.error is None for c in out) and len(s.resident) == 64  # capped at the room left
    full = await decode(s, MaxTokens=5)
    assert len(full) == 1 and isinstance(full[0].error, werr.ContextOverflow)


async def test_seeded_sampling_and_snapshot_restore(engine: OpenVINOEngine, model_dir: str) -> None:
    s = await open_session(engine, model_dir)
    await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man()))
    snap = await s.snapshot()
    a = [c.text for c in await decode(s, MaxTokens=20, Temperature=1.0, Seed=4)]
    await s.restore(snap.snapshot, snap.state)
    b = [c.text for c in await decode(s, MaxTokens=20, Temperature=1.0, Seed=4)]
    assert a == b


async def test_embed_and_bad_paths(engine: OpenVINOEngine, model_dir: str, tmp_path: Path) -> None:
    vec = await engine.embed(model_dir, pb.Config(), "hello")
    assert len(vec) == 64 and math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5)
    for bad in (str(tmp_path / "missing"), str(tmp_path)):
        with pytest.raises(PlainError, match="openvino model KV profile: openvinoshim: inspect model"):
            await engine.load(bad, pb.Config(), [])


async def test_decode_never_blocks_the_event_loop(engine: OpenVINOEngine, model_dir: str) -> None:
    s = await open_session(engine, model_dir, 256)
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
    out = await decode(s, MaxTokens=200, Temperature=0)
    done.set()
    await t
    assert len(out) <= 200 and len(gaps) > 5
    assert max(gaps) < 0.25, f"the loop stalled {max(gaps):.3f} s"


def test_through_the_daemon(model_dir: str, tmp_path: Path) -> None:
    """``modeld-sim serve --engine openvino``: OpenSession → EnsurePrefix → Decode over the wire."""
    daemon = ServeProcess(tmp_path / "data", engine="openvino", model=model_dir)
    try:
        host, _, port = daemon.endpoint.rpartition(":")
        iid = daemon.instance_id

        async def run() -> tuple[int | None, list[bytes]]:
            c = RawGrpcClient(host, int(port))
            try:
                md = [("x-contenox-owner-instance", iid)]
                base = "/contenox.transport.v1.Compute/"

                def body(d: dict[str, object]) -> list[bytes]:
                    return [json.dumps(d).encode()]

                r = await c.call(
                    base + "OpenSession",
                    body(
                        {
                            "owner_instance_id": iid,
                            "model_name": "tiny",
                            "type": "openvino",
                            "path": model_dir,
                            "config": {"NumCtx": 128},
                        }
                    ),
                    metadata=md,
                    connection="a",
                    timeout=60,
                )
                assert r.code == 0, r.message
                handle = json.loads(r.messages[0])["handle"]
                prefix = {"Text": "hello there", "Manifest": {"backend": "openvino"}}
                r = await c.call(
                    base + "EnsurePrefix",
                    body({"handle": handle, "prefix": prefix}),
                    metadata=md,
                    connection="a",
                    timeout=60,
                )
                assert r.code == 0, r.message
                assert json.loads(r.messages[0])["PrefixTokens"] == 6
                r = await c.call(
                    base + "Decode",
                    body({"handle": handle, "config": {"MaxTokens": 7, "Temperature": 0}}),
                    metadata=md,
                    connection="a",
                    timeout=60,
                )
                return r.code, list(r.messages)
            finally:
                await c.aclose()

        code, msgs = asyncio.run(run())
        assert code == 0 and 1 <= len(msgs) <= 7
    finally:
        daemon.stop()
