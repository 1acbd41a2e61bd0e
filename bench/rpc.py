"""Simulator RPC benchmark: four figures, measured side by side in one run (printed, never asserted).

    python bench/rpc.py [--seconds 10] [--sims 100] [--rounds 2000]

1. Health and EnsurePrefix round trip through a grpclib client: the simulator versus a bare grpclib
   server answering the same payloads with the same codec (ratio; goal <= 1.3).
2. 64 concurrent clients on one simulator for N seconds: Health, Status, and the one open
   session's ensure / prefill / decode loop (the real slot holds one session at a time) (RPC/s).
3. 100 simulators in one process, each owning its own data root with one open session (RSS growth;
   goal <= 150 MB).
4. Start-to-healthy time of `modeld-sim serve` as a subprocess (median of 5; goal <= 0.5 s).
5. A Decode stream's first chunk, last chunk and end as the client sees them (goal: the end within
   2 ms of the last chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modeld_sim.gguf import write_fake_gguf  # noqa: E402
from modeld_sim.simulator import Simulator  # noqa: E402
from modeldconn.transport import JSONCodec  # noqa: E402
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb  # noqa: E402
from modeldconn.wire.fence import FENCE_HEADER  # noqa: E402

SVC = "/contenox.transport.v1.Compute/"
PREFIX_TEXT = "The quick brown fox jumps over the lazy dog. " * 4


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _open_req(model: str, iid: str) -> pb.OpenSessionReq:
    return pb.OpenSessionReq(
        owner_instance_id=iid, model_name="bench", type="llama", path=model, config=pb.Config(NumCtx=512)
    )


class _Unary:
    """grpclib unary call helper with the fence header."""

    def __init__(self, channel: Channel, iid: str) -> None:
        self.ch = channel
        self.md = {FENCE_HEADER: iid} if iid else None

    async def __call__(self, method: str, req: Any, resp_cls: Any) -> Any:
        async with self.ch.request(
            SVC + method, Cardinality.UNARY_UNARY, type(req), resp_cls, metadata=self.md
        ) as stream:
            await stream.send_message(req, end=True)
            out = await stream.recv_message()
            await stream.recv_trailing_metadata()
            return out

    async def decode(self, req: pb.DecodeReq) -> int:
        n = 0
        async with self.ch.request(
            SVC + "Decode", Cardinality.UNARY_STREAM, pb.DecodeReq, pb.WireChunk, metadata=self.md
        ) as stream:
            await stream.send_message(req, end=True)
            async for _ in stream:
                n += 1
        return n


class _BareCompute:
    """A bare grpclib server answering Health and EnsurePrefix with fixed replies (the baseline)."""

    def __init__(self, health: pb.HealthResp, prefix: pb.PrefixStatus) -> None:
        self.health = health
        self.prefix = prefix

    async def _health(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self.health)

    async def _ensure(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self.prefix)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            SVC + "Health": Handler(self._health, Cardinality.UNARY_UNARY, pb.HealthReq, pb.HealthResp),
            SVC + "EnsurePrefix": Handler(
                self._ensure, Cardinality.UNARY_UNARY, pb.EnsurePrefixReq, pb.PrefixStatus
            ),
        }


async def _time_calls(call: Any, rounds: int) -> float:
    for _ in range(min(200, rounds)):  # warm-up
        await call()
    t0 = time.perf_counter()
    for _ in range(rounds):
        await call()
    return (time.perf_counter() - t0) / rounds


async def round_trips(tmp: Path, rounds: int) -> None:
    model = str(tmp / "m.gguf")
    write_fake_gguf(model, context_length=512)
    async with Simulator(str(tmp / "rt"), backend="llama") as sim:
        host, _, port = sim.endpoint.rpartition(":")
        ch = Channel(host, int(port), codec=JSONCodec())
        call = _Unary(ch, sim.instance_id)
        handle = (await call("OpenSession", _open_req(model, sim.instance_id), pb.OpenSessionResp)).handle
        ens = pb.EnsurePrefixReq(handle=handle, prefix=pb.PrefixInput(Text=PREFIX_TEXT))
        health_resp = await call("Health", pb.HealthReq(), pb.HealthResp)
        prefix_resp = await call("EnsurePrefix", ens, pb.PrefixStatus)
        sim_health = await _time_calls(lambda: call("Health", pb.HealthReq(), pb.HealthResp), rounds)
        sim_ensure = await _time_calls(lambda: call("EnsurePrefix", ens, pb.PrefixStatus), rounds)
        ch.close()

    bare = Server([_BareCompute(health_resp, prefix_resp)], codec=JSONCodec())
    await bare.start("127.0.0.1", 0)
    port = bare._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # grpclib keeps it private
    ch = Channel("127.0.0.1", port, codec=JSONCodec())
    call = _Unary(ch, "")
    bare_health = await _time_calls(lambda: call("Health", pb.HealthReq(), pb.HealthResp), rounds)
    bare_ensure = await _time_calls(lambda: call("EnsurePrefix", ens, pb.PrefixStatus), rounds)
    ch.close()
    bare.close()
    await bare.wait_closed()
    print("1. round trip (grpclib client, same payloads, sequential)")
    print(
        f"   Health        simulator {sim_health * 1e6:8.1f} us   bare grpclib {bare_health * 1e6:8.1f} us"
        f"   ratio {sim_health / bare_health:.2f}  (goal <= 1.3)"
    )
    print(
        f"   EnsurePrefix  simulator {sim_ensure * 1e6:8.1f} us   bare grpclib {bare_ensure * 1e6:8.1f} us"
        f"   ratio {sim_ensure / bare_ensure:.2f}  (goal <= 1.3)"
    )


async def stream_timing(tmp: Path, rounds: int = 200) -> None:
    """When a Decode's chunks and its end reach the client: the end must follow the last chunk at
    once (a late end is Nagle's algorithm holding the trailers for the client's delayed ACK)."""
    model = str(tmp / "m.gguf")
    async with Simulator(str(tmp / "st"), backend="llama") as sim:
        host, _, port = sim.endpoint.rpartition(":")
        ch = Channel(host, int(port), codec=JSONCodec())
        call = _Unary(ch, sim.instance_id)
        handle = (await call("OpenSession", _open_req(model, sim.instance_id), pb.OpenSessionResp)).handle
        first: list[float] = []
        last: list[float] = []
        end: list[float] = []
        for _ in range(rounds):
            await call(
                "EnsurePrefix",
                pb.EnsurePrefixReq(handle=handle, prefix=pb.PrefixInput(Text=PREFIX_TEXT)),
                pb.PrefixStatus,
            )
            md = call.md
            t0 = time.perf_counter()
            seen: list[float] = []
            async with ch.request(
                SVC + "Decode", Cardinality.UNARY_STREAM, pb.DecodeReq, pb.WireChunk, metadata=md
            ) as stream:
                await stream.send_message(
                    pb.DecodeReq(handle=handle, config=pb.DecodeConfig(MaxTokens=8)), end=True
                )
                async for _ in stream:
                    seen.append(time.perf_counter() - t0)
                await stream.recv_trailing_metadata()
            end.append(time.perf_counter() - t0)
            first.append(seen[0])
            last.append(seen[-1])
        ch.close()
    med = statistics.median
    gap = med(e - lc for e, lc in zip(end, last, strict=True))
    print(f"5. Decode stream timing (8 tokens, median of {rounds}, from the request)")
    print(
        f"   first chunk {med(first) * 1e3:.2f} ms, last chunk {med(last) * 1e3:.2f} ms, stream end "
        f"{med(end) * 1e3:.2f} ms; end after last chunk {gap * 1e3:.2f} ms  (goal <= 2 ms; "
        "anchor before TCP_NODELAY: 42 ms)"
    )


async def concurrency(tmp: Path, seconds: float, clients: int = 64) -> None:
    model = str(tmp / "m.gguf")
    async with Simulator(str(tmp / "cc"), backend="llama") as sim:
        host, _, port = sim.endpoint.rpartition(":")
        stop = time.monotonic() + seconds
        counts = [0] * clients

        async def admin_client(i: int) -> None:
            ch = Channel(host, int(port), codec=JSONCodec())
            call = _Unary(ch, sim.instance_id)
            while time.monotonic() < stop:
                if i % 2:
                    await call("Health", pb.HealthReq(), pb.HealthResp)
                else:
                    await call("Status", pb.StatusReq(), pb.DaemonStatus)
                counts[i] += 1
            ch.close()

        async def session_client(i: int) -> None:
            ch = Channel(host, int(port), codec=JSONCodec())
            call = _Unary(ch, sim.instance_id)
            handle = (await call("OpenSession", _open_req(model, sim.instance_id), pb.OpenSessionResp)).handle
            while time.monotonic() < stop:
                await call(
                    "EnsurePrefix",
                    pb.EnsurePrefixReq(handle=handle, prefix=pb.PrefixInput(Text=PREFIX_TEXT)),
                    pb.PrefixStatus,
                )
                await call(
                    "PrefillSuffix",
                    pb.PrefillSuffixReq(handle=handle, suffix=pb.SuffixInput(Text=" and again")),
                    pb.SuffixStatus,
                )
                await call.decode(pb.DecodeReq(handle=handle, config=pb.DecodeConfig(MaxTokens=8)))
                counts[i] += 3
            ch.close()

        t0 = time.monotonic()
        await asyncio.gather(session_client(0), *(admin_client(i) for i in range(1, clients)))
        elapsed = time.monotonic() - t0
    total = sum(counts)
    print(f"2. {clients} concurrent clients for {elapsed:.1f} s (63 Health/Status loops + 1 session loop)")
    print(f"   {total / elapsed:,.0f} RPC/s overall; session loop {counts[0] / elapsed:,.0f} RPC/s")


async def many_simulators(tmp: Path, n: int) -> None:
    model = str(tmp / "m.gguf")
    from modeldconn import transport as _transport  # noqa: F401  (the client's own imports, not the sims')

    base = _rss_mb()
    sims = []
    channels = []
    try:
        for i in range(n):
            sim = Simulator(str(tmp / f"many{i}"), backend="llama")
            await sim.start()
            sims.append(sim)
            host, _, port = sim.endpoint.rpartition(":")
            ch = Channel(host, int(port), codec=JSONCodec())
            channels.append(ch)
            await _Unary(ch, sim.instance_id)(
                "OpenSession", _open_req(model, sim.instance_id), pb.OpenSessionResp
            )
        grown = _rss_mb() - base
    finally:
        for ch in channels:
            ch.close()
        for sim in sims:
            await sim.stop()
    print(f"3. {n} simulators in one process, each with its own data root and one open session")
    print(f"   RSS growth {grown:.1f} MB ({grown / n * 1024:.0f} KB each)  (goal <= 150 MB)")


def start_to_healthy(tmp: Path, runs: int = 5) -> None:
    times = []
    for r in range(runs):
        root = tmp / f"start{r}"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root), "--backend", "llama"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        try:
            endpoint = ""
            while not endpoint:
                try:
                    endpoint = json.loads((root / "modeld.lease").read_text())["meta"]["endpoint"]
                except (OSError, ValueError, KeyError):
                    time.sleep(0.002)
            host, _, port = endpoint.rpartition(":")

            async def health(host: str = host, port: str = port) -> None:
                ch = Channel(host, int(port), codec=JSONCodec())
                try:
                    await _Unary(ch, "")("Health", pb.HealthReq(), pb.HealthResp)
                finally:
                    ch.close()

            asyncio.run(health())
            times.append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"4. start-to-healthy of `modeld-sim serve` (subprocess, lease seen, Health answered), {runs} runs")
    med, low = statistics.median(times) * 1000, min(times) * 1000
    print(f"   median {med:.0f} ms, min {low:.0f} ms  (goal <= 500 ms)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sims", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--many-child", type=int, default=0, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.many_child:
        # Figure 3 runs in a fresh interpreter: RSS growth measured after the other figures would
        # reuse memory they freed and read near zero.
        tmp = Path(tempfile.mkdtemp(prefix="modeld-bench-many-"))
        try:
            write_fake_gguf(str(tmp / "m.gguf"), context_length=512)
            asyncio.run(many_simulators(tmp, ns.many_child))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="modeld-bench-"))
    try:
        write_fake_gguf(str(tmp / "m.gguf"), context_length=512)
        os.environ.setdefault("TZ", "UTC")
        asyncio.run(round_trips(tmp, ns.rounds))
        asyncio.run(stream_timing(tmp))
        asyncio.run(concurrency(tmp, ns.seconds))
        subprocess.run([sys.executable, __file__, "--many-child", str(ns.sims)], check=True)
        start_to_healthy(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
