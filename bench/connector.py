"""Connector probe benchmark: Status and OpenSession latency, the Go connector's probe against ours.

    python bench/connector.py [--rounds 300] [--json]

Against the in-process simulator (backend llama, fake engine, loopback), each figure per call:

* **go**: what ``modeldconn`` v0.36.0 does before every lease-resolved call (recorded in
  ``tests/corpus/go-connector-v0.36.0/go-connector.wire.jsonl``): read the lease, dial a *fresh*
  HTTP/2 connection, send an unfenced Health, close it; then the fenced call on the cached
  connection (``modeldconn.probe.probe`` with ``probe.default_health``, then the call);
* **ours**: ``Connector.status()`` / ``Connector.open_session()``: read the lease, the unfenced
  Health on the cached connection, the fenced call on the same connection;
* **lease only** (the rejected alternative, for reference): read the lease, no Health, the call.

OpenSession is timed up to the handle (the model is resident, so no load); the session is then
closed outside the timing. Printed, never asserted; the strategy chosen is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import modeldconn as mc  # noqa: E402
from modeld_sim.gguf import write_fake_gguf  # noqa: E402
from modeld_sim.simulator import Simulator  # noqa: E402
from modeldconn import probe  # noqa: E402
from modeldconn import transport as _t  # noqa: E402
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb  # noqa: E402

STRATEGY = (
    "before every lease-resolved call: re-read the lease (offline), then an unfenced Health on the "
    "cached connection while the lease names the cached (endpoint, instance); a new connection is "
    "dialed only when that key changes (first use, takeover), and the probing connection becomes "
    "the cached one (docs/connector.md, 'The probe strategy')"
)


async def _time(rounds: int, op: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(min(20, rounds)):  # warm-up
        await op()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await op()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _row(name: str, samples: list[float]) -> dict[str, float | str]:
    return {
        "case": name,
        "median_ms": round(statistics.median(samples), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "p95_ms": round(sorted(samples)[int(0.95 * (len(samples) - 1))], 3),
    }


async def run(rounds: int) -> list[dict[str, float | str]]:
    with tempfile.TemporaryDirectory(prefix="bench-connector-") as d:
        root = str(Path(d) / "root")
        model = str(Path(d) / "tiny.gguf")
        write_fake_gguf(model, context_length=256)
        ref = mc.ModelRef("tiny", "llama", path=model)
        cfg = mc.Config(num_ctx=128)
        async with Simulator(root, backend="llama", ttl=60.0, stop_grace=0.2) as sim:
            ours = mc.Connector(root)
            go_conn = _t.Connection(sim.endpoint, owner=sim.instance_id)  # Go's cached client
            try:
                await (await ours.open_session(ref, cfg)).close()  # load the model once

                async def go_probe() -> str:
                    st = await probe.probe(root, health=probe.default_health, timeout=5.0)
                    assert st.state is probe.ProbeState.RUNNING, st
                    return st.instance

                async def lease_only() -> str:
                    st = probe.detect(root)
                    assert st.state is probe.ProbeState.RUNNING, st
                    return st.instance

                async def status_go() -> None:
                    await go_probe()
                    req = pb.StatusReq(owner_instance_id=go_conn.owner)
                    await go_conn.unary("Status", req, pb.DaemonStatus, timeout=60.0)

                async def status_lease_only() -> None:
                    await lease_only()
                    req = pb.StatusReq(owner_instance_id=go_conn.owner)
                    await go_conn.unary("Status", req, pb.DaemonStatus, timeout=60.0)

                async def status_ours() -> None:
                    await ours.status()

                open_ms: dict[str, list[float]] = {"go": [], "ours": [], "lease only": []}

                async def open_close(kind: str) -> None:
                    t0 = time.perf_counter()
                    if kind == "ours":
                        s = await ours.open_session(ref, cfg)
                        open_ms[kind].append((time.perf_counter() - t0) * 1000.0)
                        await s.close()
                        return
                    await (go_probe() if kind == "go" else lease_only())
                    out = await go_conn.unary(
                        "OpenSession", ref.open_request(go_conn.owner, cfg), pb.OpenSessionResp, timeout=600.0
                    )
                    open_ms[kind].append((time.perf_counter() - t0) * 1000.0)
                    await go_conn.unary(
                        "CloseSession", pb.CloseReq(handle=out.handle), pb.CloseResp, timeout=60.0
                    )

                rows = [
                    _row("Status: go (fresh-connection Health + call)", await _time(rounds, status_go)),
                    _row(
                        "Status: ours (Health on the cached connection + call)",
                        await _time(rounds, status_ours),
                    ),
                    _row("Status: lease only, no Health (rejected)", await _time(rounds, status_lease_only)),
                ]
                for kind, label in (
                    ("go", "OpenSession: go (fresh-connection Health + call)"),
                    ("ours", "OpenSession: ours (Health on the cached connection + call)"),
                    ("lease only", "OpenSession: lease only, no Health (rejected)"),
                ):
                    await _time(rounds, functools.partial(open_close, kind))
                    rows.append(_row(label, open_ms[kind][-rounds:]))
                return rows
            finally:
                go_conn.close()
                await ours.aclose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    rows = asyncio.run(run(args.rounds))
    if args.json:
        print(json.dumps({"rounds": args.rounds, "rows": rows, "strategy": STRATEGY}, indent=2))
        return 0
    print(f"connector probe benchmark: {args.rounds} calls each, in-process simulator, loopback\n")
    print(f"{'case':<62} {'median':>9} {'mean':>9} {'p95':>9}")
    for r in rows:
        print(f"{r['case']:<62} {r['median_ms']:>7.3f}ms {r['mean_ms']:>7.3f}ms {r['p95_ms']:>7.3f}ms")
    print(f"\nprobe strategy chosen: {STRATEGY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
