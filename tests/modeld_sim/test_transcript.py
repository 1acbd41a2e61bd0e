"""modeld_sim.transcript: JSON lines of calls and events, in memory and in a shared file."""

from __future__ import annotations

import json
from pathlib import Path

from modeld_sim.transcript import Transcript, load, summarize_request, token_of
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb


def test_call_lines_in_memory_and_file(tmp_path: Path) -> None:
    path = tmp_path / "ci" / "rpc.jsonl"
    with Transcript(path, clock=lambda: 1_700_000_000_123_456_789) as tr:
        tr.record_call(
            method="EnsurePrefix",
            conn=3,
            fence=["iid"],
            request=pb.EnsurePrefixReq(handle="h/1/1"),
            code=9,
            message="stale_fence: stale owner fence token",
            latency_s=0.00125,
            faults=["r1:error"],
            node="node2",
            instance="iid2",
        )
        tr.event("node.kill", node="node1")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == tr.entries()
    call, ev = lines
    assert call["t"] == "2023-11-14T22:13:20.123456789Z"
    assert (call["seq"], call["method"], call["conn"], call["fence"]) == (1, "EnsurePrefix", 3, "iid")
    assert (call["code"], call["code_name"], call["token"]) == (9, "FailedPrecondition", "stale_fence")
    assert call["request"]["handle"] == "h/1/1" and call["latency_ms"] == 1.25
    assert call["faults"] == ["r1:error"] and call["node"] == "node2"
    assert ev["event"] == "node.kill" and ev["seq"] == 2
    assert tr.entries(since=1) == [ev] and load(path) == lines


def test_fence_shapes_and_no_status() -> None:
    tr = Transcript()
    a = tr.record_call(
        method="Status",
        conn=1,
        fence=[],
        request=None,
        code=None,
        message="",
        latency_s=None,
        outcome="stream reset",
    )
    b = tr.record_call(
        method="Status", conn=1, fence=["a", "b"], request=None, code=0, message="", latency_s=0
    )
    assert a["fence"] is None and a["code_name"] is None and a["outcome"] == "stream reset"
    assert b["fence"] == ["a", "b"] and b["token"] is None


def test_two_writers_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    a, b = Transcript(path), Transcript(path)
    for i in range(50):
        a.event("x", i=i)
        b.event("y", i=i)
    a.close()
    b.close()
    assert len(load(path)) == 100


def test_helpers() -> None:
    assert token_of("session_closed: session is closed") == "session_closed"
    assert token_of("internal: boom") is None
    s = summarize_request(pb.EnsurePrefixReq(handle="h", prefix=pb.PrefixInput(Text="x" * 500)))
    assert s is not None and s["handle"] == "h" and len(s["prefix"]["Text"]) < 100
    assert summarize_request(None) is None


def test_the_transcript_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """It holds fence values (the owner's instance id), which let any reader drive the daemon."""
    import os
    import stat

    old = os.umask(0)
    try:
        path = tmp_path / "rpc.jsonl"
        path.write_text("")
        path.chmod(0o666)  # a file left world-readable by someone else is tightened too
        with Transcript(path) as tr:
            tr.event("node.kill", node="node1")
        fresh = tmp_path / "fresh.jsonl"
        with Transcript(fresh) as tr:
            tr.event("node.kill", node="node1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
