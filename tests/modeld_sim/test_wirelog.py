"""modeld_sim.wirelog: the simulator's record of every call (request as decoded, every message sent,
the status) and the answers a test scripts for the next calls."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from modeld_contract.h2client import RawGrpcClient

import modeldconn
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeld_sim.wirelog import WireLog
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.fence import FENCE_HEADER, SERVICE


async def _connected(tmp_path: Path) -> tuple[Simulator, modeldconn.Connector, modeldconn.ModelRef]:
    sim = Simulator(str(tmp_path / "data"))
    await sim.start()
    conn = modeldconn.Connector()
    conn.set_data_root(str(tmp_path / "data"))
    ref = modeldconn.ModelRef("m", "llama", path=write_fake_gguf(tmp_path / "m.gguf"))
    return sim, conn, ref


async def test_requests_are_recorded_as_decoded_and_answers_as_sent(tmp_path: Path) -> None:
    sim, conn, ref = await _connected(tmp_path)
    try:
        mark = sim.wire.mark()
        sess = await conn.open_session(ref, modeldconn.Config(num_ctx=64, flash_attn=True))
        await sess.ensure_prefix("hello")
        cfg = modeldconn.DecodeConfig(max_tokens=3, temperature=0.0, seed=0)
        chunks = await sess.decode(cfg).collect()
        await sess.close()

        opened = sim.wire.calls("OpenSession", since=mark)
        assert len(opened) == 1 and opened[0].ok and opened[0].fence == (sim.instance_id,)
        req = opened[0].request
        assert isinstance(req, pb.OpenSessionReq)
        assert (req.model_name, req.path, req.config.NumCtx, req.config.FlashAttn) == (
            "m",
            ref.path,
            64,
            True,
        )
        handle = opened[0].responses[0].handle  # type: ignore[attr-defined]
        (dec,) = sim.wire.calls("Decode", since=mark)
        d = dec.request
        assert isinstance(d, pb.DecodeReq) and d.handle == handle
        # zero values that are present stay distinguishable from absent pointers
        assert (
            d.config.HasField("Temperature") and d.config.HasField("Seed") and not d.config.HasField("TopP")
        )
        assert [m.text for m in dec.responses] == [c.text for c in chunks] and len(chunks) == 3  # type: ignore[attr-defined]
        assert dec.code == 0 and dec.done
        assert [c.method for c in sim.wire.calls(since=mark)] == [
            "Health",  # the connector's probe
            "OpenSession",
            "EnsurePrefix",
            "Decode",
            "CloseSession",
        ]
    finally:
        await conn.aclose()
        await sim.stop()


async def test_a_request_is_recorded_before_the_handler_changes_it(tmp_path: Path) -> None:
    sim, conn, ref = await _connected(tmp_path)
    host, _, port = sim.endpoint.rpartition(":")
    client = RawGrpcClient(host, int(port))
    try:
        mark = sim.wire.mark()
        body = {"model_name": "m", "type": "llama", "path": ref.path, "config": {"NumCtx": 64}}
        reply = await client.call(
            f"/{SERVICE}/LoadModel",
            [json.dumps(body).encode()],
            metadata=[(FENCE_HEADER, sim.instance_id)],
        )
        assert reply.code == 0
        (load,) = sim.wire.calls("LoadModel", since=mark)
        # the server fills an empty body owner with its own instance; the record keeps what came
        assert isinstance(load.request, pb.LoadModelReq) and load.request.owner_instance_id == ""
        assert load.responses[0].generation > 0  # type: ignore[attr-defined]
        bad = await client.call(f"/{SERVICE}/Status", [b"{"], metadata=[(FENCE_HEADER, sim.instance_id)])
        assert bad.code == 13
        (status,) = sim.wire.calls("Status", since=mark)
        assert status.request is None and status.code == 13 and status.responses == []
    finally:
        await client.aclose()
        await conn.aclose()
        await sim.stop()


async def test_scripted_answers_replace_the_engines(tmp_path: Path) -> None:
    sim, conn, ref = await _connected(tmp_path)
    try:
        answer = pb.DaemonStatus(state="Weird", busy_operation="op", last_error="e\u2028")
        answer.active.generation = 2**64 - 1
        answer.active.config.TensorSplit.extend([0.5, -0.0])
        sim.wire.answer_next("Status", answer)
        assert sim.wire.pending_answers("Status") == 1
        got = await conn.status()
        assert (got.state, got.busy_operation, got.last_error) == ("Weird", "op", "e\u2028")
        assert got.active is not None and got.active.generation == 2**64 - 1
        assert sim.wire.pending_answers("Status") == 0
        assert (await conn.status()).state == "Empty"  # used once

        sess = await conn.open_session(ref, modeldconn.Config(num_ctx=64))
        await sess.ensure_prefix("x")
        chunk = pb.WireChunk(thinking="hm")
        chunk.tool_calls.add(id="1", type="function").function.name = "f"
        sim.wire.answer_next("Decode", [pb.WireChunk(text="a"), chunk])
        out = await sess.decode(modeldconn.DecodeConfig(max_tokens=50)).collect()
        assert [(c.text, c.thinking, len(c.tool_calls)) for c in out] == [("a", "", 0), ("", "hm", 1)]
        rep = await sess.explain_context()
        assert (rep.resident_tokens, rep.decode_calls) == (1, 0)  # the engine was not asked

        # a failed call leaves the answer queued; clear_answers drops it
        sim.wire.answer_next("Snapshot", pb.SessionSnapshot(state_id="x"))
        await sess.close()
        assert sim.wire.pending_answers("Snapshot") == 1
        sim.wire.clear_answers()
        assert sim.wire.pending_answers("Snapshot") == 0
    finally:
        await conn.aclose()
        await sim.stop()


async def test_push_frames_are_counted_without_keeping_the_data(tmp_path: Path) -> None:
    sim, conn, _ = await _connected(tmp_path)
    try:
        mark = sim.wire.mark()
        data = write_fake_gguf(tmp_path / "push.gguf")
        res = await conn.push_model(data, "pushed", "llama")
        assert res.bytes_written == Path(data).stat().st_size
        (push,) = sim.wire.calls("PushModel", since=mark)
        first = push.request
        assert isinstance(first, pb.PushModelChunk) and first.data == b""
        assert (first.manifest.name, first.manifest.type) == ("pushed", "llama")
        assert sum(push.data_bytes) == res.bytes_written and push.ok
        assert push.data_sha256 == hashlib.sha256(Path(data).read_bytes()).hexdigest()
    finally:
        await conn.aclose()
        await sim.stop()


def test_the_log_keeps_the_newest_calls() -> None:
    log = WireLog(keep=3)
    for i in range(5):
        log.end(log.begin("Status", i, (), pb.StatusReq(owner_instance_id=str(i))), 0, "")
    kept = log.calls()
    assert [c.seq for c in kept] == [3, 4, 5] and log.mark() == 5
    assert [c.request.owner_instance_id for c in kept] == ["2", "3", "4"]  # type: ignore[union-attr]
    assert log.calls(since=4) == [kept[-1]] and log.calls("Health") == []
