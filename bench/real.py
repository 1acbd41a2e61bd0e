"""The simulator versus the real modeld v0.36.0: round trips and start-up, same client, same run.

    python bench/real.py [--rounds 2000] [--starts 7] [--backend llama|none]

Figures printed side by side, never asserted (goal: the simulator within 1.5x of the real daemon on each):

1. Health round trip (unfenced, on one kept HTTP/2 connection), median and p90.
2. EnsurePrefix round trip on an open session (llama): the same prefix again (warm: all reused), and
   alternating between two prefixes that share their first half (half reused, half prefilled).
3. Start-to-healthy: process spawn → the lease names the process → Health answers OK (median).

Both daemons are subprocesses on their own fresh data roots: ``modeld serve`` (built and cached by
``modeld_contract.real.build``) and ``modeld-sim serve`` with the same backend (``--engine llama`` for llama:
the real llama.cpp engine on the same GGUF, the corpus's ``tiny-llama-ctx256.gguf``). One raw h2 client
(``modeld_contract.h2client.RawGrpcClient``) sends byte-identical requests to both; rounds alternate between
the two daemons in blocks of 100 so that drift of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modeld_contract.corpus import prepare_model  # noqa: E402
from modeld_contract.h2client import RawGrpcClient  # noqa: E402
from modeld_contract.real import RealDaemon, build  # noqa: E402

SVC = "/contenox.transport.v1.Compute/"
FENCE = "x-contenox-owner-instance"
BLOCK = 100


def _sim_launcher(folder: Path, backend: str) -> Path:
    """``modeld-sim serve`` taking the real daemon's argv (so ``RealDaemon`` runs both alike)."""
    engine = "llama" if backend == "llama" else "fake"
    path = folder / f"modeld-sim-{backend}"
    path.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m modeld_sim.cli "$@" --backend {backend} --engine {engine}\n'
    )
    path.chmod(0o755)
    return path


class Daemon:
    def __init__(self, name: str, binary: Path, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self.model, _ = prepare_model(tmp)
        self.d = RealDaemon(binary, tmp / "data", ttl="30s", log_path=tmp / "daemon.log").start()
        self.client = RawGrpcClient(self.d.host, self.d.port)
        self.meta = [(FENCE, self.d.instance_id)]
        self.handle = ""

    async def call(self, method: str, body: dict[str, Any], fenced: bool = True) -> Any:
        r = await self.client.call(
            SVC + method,
            [json.dumps(body, separators=(",", ":")).encode()],
            metadata=self.meta if fenced else (),
            connection="bench",
            timeout=60,
        )
        if r.code != 0:
            raise RuntimeError(f"{self.name} {method}: {r.code} {r.message}")
        return json.loads(r.messages[0]) if r.messages else None

    async def open(self) -> None:
        cfg = {"NumCtx": 256}
        rep = await self.call(
            "OpenSession",
            {
                "owner_instance_id": self.d.instance_id,
                "model_name": "tiny",
                "type": "llama",
                "path": self.model,
                "config": cfg,
            },
        )
        self.handle = str(rep["handle"])

    async def close(self) -> None:
        await self.client.aclose()
        self.d.stop()
        self.d.close()


MANIFEST = {
    "backend": "llama",
    "prompt_format": "",
    "prompt_template_digest": "",
    "runtime_digest": "",
    "add_bos": False,
    "stable_bytes": 0,
    "total_bytes": 0,
    "stable_byte_hash": "",
}
SHARED = "the quick brown fox jumps over the lazy dog " * 2


def _ensure(text: str) -> Callable[[Daemon], Any]:
    def go(d: Daemon) -> Any:
        return d.call("EnsurePrefix", {"handle": d.handle, "prefix": {"Text": text, "Manifest": MANIFEST}})

    return go


async def _interleaved(
    daemons: list[Daemon], rounds: int, op: Callable[[Daemon, int], Any]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {d.name: [] for d in daemons}
    for d in daemons:  # warm-up
        for i in range(20):
            await op(d, i)
    done = 0
    while done < rounds:
        for d in daemons:
            for i in range(BLOCK):
                t0 = time.perf_counter()
                await op(d, done + i)
                times[d.name].append(time.perf_counter() - t0)
        done += BLOCK
    return times


def _fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1e3:7.3f} ms  p90 {xs[int(len(xs) * 0.9)] * 1e3:7.3f} ms"


def _row(title: str, times: dict[str, list[float]]) -> None:
    real, sim = statistics.median(times["real"]), statistics.median(times["sim"])
    print(f"{title}")
    print(f"  real modeld   {_fmt(times['real'])}")
    print(f"  simulator     {_fmt(times['sim'])}")
    verdict = "within goal" if sim / real <= 1.5 else "ABOVE the 1.5x goal"
    print(f"  ratio sim/real (median) {sim / real:5.2f}x  ({verdict})")


def _start_to_healthy(binary: Path, starts: int) -> list[float]:
    async def health(d: RealDaemon) -> None:
        async with RawGrpcClient(d.host, d.port) as c:
            r = await c.call(SVC + "Health", [b"{}"], timeout=10)
            if r.code != 0:
                raise RuntimeError(f"Health: {r.code} {r.message}")

    out = []
    for _ in range(starts):
        tmp = Path(tempfile.mkdtemp(prefix="bench-start-")).resolve()
        try:
            t0 = time.perf_counter()
            d = RealDaemon(binary, tmp / "data", ttl="30s", log_path=tmp / "log").start()
            asyncio.run(health(d))
            out.append(time.perf_counter() - t0)
            d.stop()
            d.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--starts", type=int, default=7)
    ap.add_argument("--backend", choices=("llama", "none"), default="llama")
    a = ap.parse_args()
    os.environ.setdefault("TZ", "UTC")
    real_bin = build(a.backend).binary
    work = Path(tempfile.mkdtemp(prefix="bench-real-")).resolve()
    sim_bin = _sim_launcher(work, a.backend)
    print(f"bench/real.py: backend {a.backend}, {a.rounds} rounds per figure, {os.cpu_count()} CPUs")
    print(f"real modeld: {real_bin}")
    print(f"simulator:   modeld-sim serve --backend {a.backend} (python {sys.version.split()[0]})\n")
    try:

        async def rpc() -> None:
            (work / "r").mkdir()
            (work / "s").mkdir()
            daemons = [Daemon("real", real_bin, work / "r"), Daemon("sim", sim_bin, work / "s")]
            try:
                _row(
                    "Health round trip",
                    await _interleaved(daemons, a.rounds, lambda d, i: d.call("Health", {}, fenced=False)),
                )
                if a.backend == "llama":
                    for d in daemons:
                        await d.open()
                    warm = _ensure(SHARED)
                    _row(
                        "EnsurePrefix round trip, warm (same prefix, all reused)",
                        await _interleaved(daemons, a.rounds, lambda d, i: warm(d)),
                    )
                    texts = [SHARED + "and then some", SHARED + "but not that"]
                    _row(
                        "EnsurePrefix round trip, alternating (shared half reused, the rest prefilled)",
                        await _interleaved(daemons, a.rounds // 4, lambda d, i: _ensure(texts[i % 2])(d)),
                    )
            finally:
                for d in daemons:
                    await d.close()

        asyncio.run(rpc())
        starts = {"real": _start_to_healthy(real_bin, a.starts), "sim": _start_to_healthy(sim_bin, a.starts)}
        _row(f"Start-to-healthy (spawn → lease → Health OK), {a.starts} starts", starts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
