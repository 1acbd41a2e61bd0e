"""The real CLI: `modeld-sim cluster` (3 nodes, 500 ms TTL) + `modeld-sim ctl`, and the connector.

The leader is killed through `modeld-sim ctl kill`; the connector (`modeldconn`) recovers on a new
leader with another instance id; the old handle, sent to the new leader, is refused, and the
transcript fetched with `modeld-sim ctl transcript` shows it (stale_fence / session_closed).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import modeldconn as mc
from modeld_sim.gguf import write_fake_gguf
from modeldconn import lease as liblease
from modeldconn import transport as t
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

TTL_S = 0.5


def _sim(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeld_sim.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    root = tmp_path / "root"
    transcript = tmp_path / "rpc.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeld_sim.cli",
            "cluster",
            "--data-root",
            str(root),
            "--size",
            "3",
            "--ttl",
            "500ms",
            "--transcript",
            str(transcript),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        seen_control = False
        while not seen_control:  # readline blocks on the pipe: the deadline guards each line
            assert time.monotonic() < deadline and proc.poll() is None, "cluster did not start"
            line = proc.stdout.readline()
            seen_control = line.startswith("modeld-sim control: ")
        yield str(root), proc, transcript
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_leader_killed_through_ctl(
    cluster: tuple[str, subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    root, proc, transcript = cluster
    model = tmp_path / "tiny.gguf"
    write_fake_gguf(str(model), context_length=256)
    ref, cfg = mc.ModelRef("tiny", "llama", path=str(model)), mc.Config(num_ctx=128)
    st = json.loads((await asyncio.to_thread(_sim, "ctl", "--data-root", root, "status")).stdout)
    assert st["leader"] == "node1" and len(st["nodes"]) == 3
    old_iid = st["instance_id"]

    connector = mc.Connector(root)
    try:
        session = await connector.open_session(ref, cfg)
        await session.ensure_prefix("hello world")
        old_handle = session.handle

        r = await asyncio.to_thread(_sim, "ctl", "--data-root", root, "kill")
        assert r.returncode == 0, r.stderr
        killed_at = time.monotonic()
        assert json.loads(r.stdout)["state"] == "killed"

        deadline = killed_at + 10
        while True:  # the connector's own retry loop, bounded
            try:
                fresh = await connector.open_session(ref, cfg, timeout=2)
                break
            except (werr.ModeldError, mc.ProbeError) as exc:
                assert time.monotonic() < deadline, f"no recovery: {exc}"
                await asyncio.sleep(0.01)
        recovered_ms = (time.monotonic() - killed_at) * 1000
        new_iid = liblease.inspect(liblease.lease_path(root)).instance_id
        assert new_iid != old_iid and fresh.handle.startswith(new_iid + "/")
        assert recovered_ms < (TTL_S + 2.0) * 1000
        with pytest.raises(werr.SessionClosed):  # the connector knows its old session is gone
            await session.ensure_prefix("again")

        # a connector that kept the old handle and sends it to the new leader is refused there
        rec = liblease.inspect(liblease.lease_path(root))
        conn = t.Connection(rec.endpoint(), new_iid)
        try:
            with pytest.raises((werr.StaleFence, werr.SessionClosed)):
                req = pb.EnsurePrefixReq(handle=old_handle, prefix=pb.PrefixInput(Text="again"))
                await conn.unary("EnsurePrefix", req, pb.PrefixStatus, timeout=5)
        finally:
            conn.close()
        await fresh.close()
    finally:
        await connector.aclose()

    r = await asyncio.to_thread(_sim, "ctl", "--data-root", root, "transcript")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    refused = [
        e
        for e in lines
        if e.get("method") == "EnsurePrefix"
        and e["request"]["handle"] == old_handle
        and e["instance"] == new_iid
    ]
    assert refused and refused[-1]["token"] in ("stale_fence", "session_closed"), refused
    assert any(e.get("event") == "node.kill" and e["instance"] == old_iid for e in lines)
    assert os.path.exists(transcript) and transcript.read_text().count("\n") >= len(lines) - 1
    assert proc.poll() is None
