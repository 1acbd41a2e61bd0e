"""Real-engine benchmark (printed, never asserted): for the llama.cpp and the OpenVINO engine

1. EnsurePrefix of a 200-token prefix cold (nothing resident) versus warm (the same prefix with its
   last 10 tokens changed: 190 reused, 10 evaluated) — medians and the cold/warm ratio;
2. Decode tokens/s through the daemon (``modeld-sim serve --engine …`` as a subprocess, a raw h2
   gRPC client, one chunk per token) versus the same engine called directly — and the ratio.

    python bench/engine.py [--engine llama|openvino|both] [--rounds 30] [--tokens 200]

Models come from ``modeld-sim make-model`` (tiny random weights) in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engines"))

from _engines_support import ServeProcess  # noqa: E402
from modeld_contract.h2client import RawGrpcClient  # noqa: E402

from modeld_sim.makemodel import ModelShape, make_llama_gguf, make_openvino_dir  # noqa: E402
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb  # noqa: E402

CTX = 512


def make_engine(kind: str) -> Any:
    if kind == "llama":
        from modeld_sim.engines.llama import LlamaEngine

        return LlamaEngine()
    from modeld_sim.engines.openvino import OpenVINOEngine

    return OpenVINOEngine()


def make_model(kind: str, d: Path) -> str:
    shape = ModelShape(context_length=CTX)
    if kind == "llama":
        return make_llama_gguf(str(d / "tiny.gguf"), seed=1, shape=shape)
    return make_openvino_dir(
        str(d / "tiny-ov"), seed=1, shape=ModelShape(context_length=CTX, name="tiny-random-openvino")
    )


def prefix_texts(n_tokens: int = 200, change: int = 10) -> tuple[str, str, str]:
    """A, and two variants of A differing in the last ``change`` tokens (byte-level BPE: one token per
    character for letters outside the merges)."""
    base = "".join(chr(ord("A") + (i % 26)) for i in range(n_tokens - change))
    return base + "x" * change, base + "y" * change, base + "z" * change


async def bench_prefix(kind: str, model: str, rounds: int) -> dict[str, float]:
    e = make_engine(kind)
    s = (await e.load(model, pb.Config(NumCtx=CTX), [])).session()
    man = pb.ContextManifest(backend=kind)
    a, b, c = prefix_texts()
    st = await s.ensure_prefix(pb.PrefixInput(Text=a, Manifest=man))
    assert st.PrefixTokens == 200, st.PrefixTokens
    cold, warm = [], []
    for i in range(rounds):
        await s.ensure_prefix(pb.PrefixInput(Text="", Manifest=man))  # drop everything
        t0 = time.perf_counter()
        await s.ensure_prefix(pb.PrefixInput(Text=a, Manifest=man))
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st = await s.ensure_prefix(pb.PrefixInput(Text=b if i % 2 else c, Manifest=man))
        warm.append(time.perf_counter() - t0)
        assert st.ReusedTokens == 190 and st.PrefilledTokens == 10, st
    await s.close()
    mc, mw = statistics.median(cold), statistics.median(warm)
    return {"cold_ms": mc * 1e3, "warm_ms": mw * 1e3, "ratio": mc / mw}


async def bench_decode_direct(kind: str, model: str, tokens: int, rounds: int) -> float:
    e = make_engine(kind)
    s = (await e.load(model, pb.Config(NumCtx=CTX), [])).session()
    man = pb.ContextManifest(backend=kind)
    rates = []
    for _ in range(rounds):
        await s.ensure_prefix(pb.PrefixInput(Text="hello there", Manifest=man))
        t0 = time.perf_counter()
        n = 0
        async for ch in s.decode(pb.DecodeConfig(MaxTokens=tokens, Temperature=0)):
            n += 1 if ch.error is None else 0
        rates.append(n / (time.perf_counter() - t0))
    await s.close()
    return statistics.median(rates)


async def bench_decode_daemon(kind: str, model: str, tokens: int, rounds: int, tmp: Path) -> float:
    daemon = ServeProcess(tmp / f"data-{kind}", engine=kind, model=model)
    try:
        host, _, port = daemon.endpoint.rpartition(":")
        iid = daemon.instance_id
        c = RawGrpcClient(host, int(port))
        md = [("x-contenox-owner-instance", iid)]
        base = "/contenox.transport.v1.Compute/"

        async def call(method: str, body: dict[str, Any]) -> Any:
            r = await c.call(
                base + method, [json.dumps(body).encode()], metadata=md, connection="b", timeout=120
            )
            if r.code != 0:
                raise RuntimeError(f"{method}: {r.code} {r.message}")
            return r

        r = await call(
            "OpenSession",
            {
                "owner_instance_id": iid,
                "model_name": "tiny",
                "type": kind,
                "path": model,
                "config": {"NumCtx": CTX},
            },
        )
        handle = json.loads(r.messages[0])["handle"]
        rates = []
        for _ in range(rounds):
            await call(
                "EnsurePrefix",
                {"handle": handle, "prefix": {"Text": "hello there", "Manifest": {"backend": kind}}},
            )
            t0 = time.perf_counter()
            r = await call("Decode", {"handle": handle, "config": {"MaxTokens": tokens, "Temperature": 0}})
            rates.append(len(r.messages) / (time.perf_counter() - t0))
        await c.aclose()
        return statistics.median(rates)
    finally:
        daemon.stop()


async def run(kind: str, rounds: int, tokens: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as d:
        tmp = Path(d)
        model = make_model(kind, tmp)
        p = await bench_prefix(kind, model, rounds)
        print(
            f"{kind}: EnsurePrefix 200 tokens: cold {p['cold_ms']:.2f} ms, warm (10 changed) "
            f"{p['warm_ms']:.2f} ms, warm/cold {p['warm_ms'] / p['cold_ms']:.2f} (goal <= 0.1; on a "
            "tiny model the per-call cost dominates)"
        )
        direct = await bench_decode_direct(kind, model, tokens, max(rounds // 3, 3))
        daemon = await bench_decode_daemon(kind, model, tokens, max(rounds // 3, 3), tmp)
        print(
            f"{kind}: Decode greedy: direct {direct:.0f} tok/s, through the daemon {daemon:.0f} tok/s, "
            f"daemon/direct {daemon / direct:.2f} (goal >= 0.85)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--engine", choices=("llama", "openvino", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=200)
    a = ap.parse_args()
    for kind in ("llama", "openvino") if a.engine == "both" else (a.engine,):
        try:
            asyncio.run(run(kind, a.rounds, a.tokens))
        except ImportError as exc:
            print(f"{kind}: skipped ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
