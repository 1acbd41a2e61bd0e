"""modeld_sim.slot: the single active model slot (session-semantics §2-§4, §6; edge-cases F "Slot:"),
with the recorded answers of observed/real-none.jsonl and real-llama.jsonl."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _sim_recorded import TINY_GGUF, recorded, reply_messages

from modeld_sim.engines.base import Chunk, PlainError
from modeld_sim.engines.fake import FakeEngine, FakeModel, FakeSession
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.slot import DEFAULT_IDLE_TTL, Slot, SlotSession, SlotState
from modeld_sim.store import ModelStore
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

IID = "iid-1"
LLAMA = "real-llama.jsonl"
NONE = "real-none.jsonl"
MODEL = str(TINY_GGUF)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class CountingEngine(FakeEngine):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.describes = 0
        self.reclaimable: list[int] = []
        self.closed_models = 0
        self.fail_load: Exception | None = None
        self.load_gate: asyncio.Event | None = None

    def describe(self, path: str, config: pb.Config, reclaimable_bytes: int = 0) -> pb.DescribeResp:
        self.describes += 1
        self.reclaimable.append(reclaimable_bytes)
        return super().describe(path, config, reclaimable_bytes)

    async def load(self, path: str, config: pb.Config, adapters: Sequence[pb.AdapterSpec]) -> FakeModel:
        if self.load_gate is not None:
            await self.load_gate.wait()
        if self.fail_load is not None:
            raise self.fail_load
        m = await super().load(path, config, adapters)
        orig = m.close

        async def close() -> None:
            self.closed_models += 1
            await orig()

        m.close = close  # type: ignore[method-assign]
        return m


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``cond`` until it holds (a condition with a deadline, not a fixed delay)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.001)


def mk_slot(
    tmp_path: Path,
    backend: str = "llama",
    idle_ttl: float = DEFAULT_IDLE_TTL,
    engine: FakeEngine | None = None,
    clock: Clock | None = None,
    data_root: str | None = None,
) -> Slot:
    root = str(tmp_path) if data_root is None else data_root
    eng = engine if engine is not None else CountingEngine("llama" if backend == "none" else backend)
    return Slot(
        IID, backend, eng, ModelStore.for_data_root(str(tmp_path)), root, idle_ttl, clock=clock or Clock()
    )


def open_req(
    num_ctx: int = 128,
    *,
    owner: str = IID,
    typ: str = "llama",
    path: str = MODEL,
    name: str = "tiny",
    digest: str = "",
    adapters: Sequence[pb.AdapterSpec] = (),
) -> pb.OpenSessionReq:
    r = pb.OpenSessionReq(owner_instance_id=owner, model_name=name, type=typ, path=path, digest=digest)
    r.config.NumCtx = num_ctx
    r.adapters.extend(adapters)
    return r


def load_req(num_ctx: int = 128, *, gen: int = 0, **kw: Any) -> pb.LoadModelReq:
    o = open_req(num_ctx, **kw)
    r = pb.LoadModelReq(
        owner_instance_id=o.owner_instance_id,
        model_name=o.model_name,
        type=o.type,
        path=o.path,
        digest=o.digest,
        expected_generation=gen,
    )
    r.config.CopyFrom(o.config)
    r.adapters.extend(o.adapters)
    return r


def embed_req(num_ctx: int = 128, text: str = "hello", **kw: Any) -> pb.EmbedReq:
    o = open_req(num_ctx, **kw)
    r = pb.EmbedReq(
        owner_instance_id=o.owner_instance_id, model_name=o.model_name, type=o.type, path=o.path, text=text
    )
    r.config.CopyFrom(o.config)
    return r


def prefix(text: str) -> pb.PrefixInput:
    p = pb.PrefixInput(Text=text)
    p.Manifest.backend = "llama"
    return p


def suffix(text: str, stable_byte_hash: str = "") -> pb.SuffixInput:
    s = pb.SuffixInput(Text=text)
    s.Manifest.backend = "llama"
    s.Manifest.stable_byte_hash = stable_byte_hash
    return s


def dcfg(n: int) -> pb.DecodeConfig:
    return pb.DecodeConfig(MaxTokens=n, Temperature=0, Seed=7)


def status_msg(exc: BaseException) -> tuple[int, str]:
    code, msg, _ = werr.status_for(exc)
    return code, msg


def rec(file: str, case: str, sub: dict[str, str] | None = None) -> tuple[int, str]:
    r = recorded(file)[case]["reply"]
    msg: str = r["message"]
    for k, v in (sub or {}).items():
        msg = msg.replace(k, v)
    return r["code"], msg


async def expect(aw: Any, file: str, case: str, sub: dict[str, str] | None = None) -> werr.ModeldError:
    with pytest.raises(werr.ModeldError) as ei:
        await aw
    assert status_msg(ei.value) == rec(file, case, sub), case
    return ei.value


def recorded_request(file: str, case: str, cls: type[Any], **subs: str) -> Any:
    """The recorded request body as our message (placeholders substituted)."""
    import json

    from modeldconn.wire import codec

    raw = json.dumps(recorded(file)[case]["request"]["payloads"][0]["json"])
    for k, v in subs.items():
        raw = raw.replace(k, v)
    return codec.decode(cls, raw.encode())


async def decode_all(sess: SlotSession, n: int) -> list[pb.WireChunk]:
    return [c async for c in sess.decode(dcfg(n))]


# --------------------------------------------------------------------------- recorded: backend none


async def test_none_backend_recorded(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path, "none")
    subs = {"<IID>": IID}
    cls: Any
    fn: Any
    for case, cls, fn in (
        ("load.empty", pb.LoadModelReq, slot.load_model),
        ("load.missing_path", pb.LoadModelReq, slot.load_model),
        ("load.type_openvino", pb.LoadModelReq, slot.load_model),
        ("load.unknown_type", pb.LoadModelReq, slot.load_model),
        ("load.name_only", pb.LoadModelReq, slot.load_model),
        ("load.stale_generation", pb.LoadModelReq, slot.load_model),
        ("open.body_owner_missing", pb.OpenSessionReq, slot.open_session),
        ("open.missing_path", pb.OpenSessionReq, slot.open_session),
        ("open.type_openvino", pb.OpenSessionReq, slot.open_session),
        ("open.type_empty", pb.OpenSessionReq, slot.open_session),
        ("describe.body_owner_missing", pb.OpenSessionReq, slot.describe),
        ("describe.missing_path", pb.OpenSessionReq, slot.describe),
        ("describe.type_openvino", pb.OpenSessionReq, slot.describe),
        ("embed.missing_path", pb.EmbedReq, slot.embed),
        ("embed.type_openvino", pb.EmbedReq, slot.embed),
    ):
        req = recorded_request(NONE, case, cls, **subs)
        if cls is pb.LoadModelReq and not req.owner_instance_id:
            req.owner_instance_id = IID  # the gRPC layer fills LoadModel's empty body owner
        await expect(fn(req), NONE, case, subs)
    st = await slot.status()
    # the last call was a failed Embed: markReadyOrError records it, no model -> Empty
    assert st.state == SlotState.EMPTY and st.last_error.startswith("modeld: no local inference backend")
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID))
    await expect(
        slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID, expected_generation=9)),
        NONE,
        "unload.stale_generation",
    )
    st = await slot.status()
    want = reply_messages(NONE, "status.after_failed_loads")[0]
    assert (st.owner_instance_id, st.backend, st.state, st.last_error) == (
        IID,
        want["backend"],
        want["state"],
        "",
    )


# --------------------------------------------------------------------------- recorded: backend llama


async def test_llama_recorded_walk(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    subs = {"<IID>": IID, "<MODEL>": MODEL}
    cls: Any
    fn: Any
    for case, cls, fn in (
        ("load.empty", pb.LoadModelReq, slot.load_model),
        ("load.missing_path", pb.LoadModelReq, slot.load_model),
        ("load.type_openvino", pb.LoadModelReq, slot.load_model),
        ("load.unknown_type", pb.LoadModelReq, slot.load_model),
        ("load.name_only", pb.LoadModelReq, slot.load_model),
        ("load.stale_generation", pb.LoadModelReq, slot.load_model),
        ("load.body_owner_wrong", pb.LoadModelReq, slot.load_model),
    ):
        req = recorded_request(LLAMA, case, cls, **subs)
        if not req.owner_instance_id:
            req.owner_instance_id = IID
        await expect(fn(req), LLAMA, case, subs)
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID))
    await expect(
        slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID, expected_generation=9)),
        LLAMA,
        "unload.stale_generation",
    )
    st = await slot.status()
    assert (st.state, st.last_error) == ("Empty", "")
    for case, cls, fn in (
        ("open.body_owner_missing", pb.OpenSessionReq, slot.open_session),
        ("open.missing_path", pb.OpenSessionReq, slot.open_session),
        ("open.type_openvino", pb.OpenSessionReq, slot.open_session),
        ("open.type_empty", pb.OpenSessionReq, slot.open_session),
        ("describe.body_owner_missing", pb.OpenSessionReq, slot.describe),
        ("describe.missing_path", pb.OpenSessionReq, slot.describe),
        ("describe.type_openvino", pb.OpenSessionReq, slot.describe),
        ("embed.missing_path", pb.EmbedReq, slot.embed),
        ("embed.type_openvino", pb.EmbedReq, slot.embed),
        ("llama.describe_type_openvino", pb.OpenSessionReq, slot.describe),
        ("llama.open_type_openvino", pb.OpenSessionReq, slot.open_session),
    ):
        await expect(fn(recorded_request(LLAMA, case, cls, **subs)), LLAMA, case, subs)
    d = await slot.describe(recorded_request(LLAMA, "llama.describe", pb.OpenSessionReq, **subs))
    assert (d.model_max_context, d.effective_context, d.required_bytes) == (256, 128, 536512)
    e = await slot.embed(recorded_request(LLAMA, "llama.embed", pb.EmbedReq, **subs))
    assert len(e.vector) == 64
    # open, status, busy
    h = await slot.open_session(recorded_request(LLAMA, "llama.open", pb.OpenSessionReq, **subs))
    assert h.generation == 1  # the first handle is <IID>/1/1
    st = await slot.status()
    want = reply_messages(LLAMA, "llama.status_with_session")[0]
    assert st.state == want["state"] and st.active.generation == want["active"]["generation"] == 1
    assert st.active.path == MODEL and st.active.config.NumCtx == 128 and st.busy_operation == ""
    await expect(
        slot.open_session(recorded_request(LLAMA, "llama.open_second_same_model", pb.OpenSessionReq, **subs)),
        LLAMA,
        "llama.open_second_same_model",
    )
    await expect(
        slot.open_session(recorded_request(LLAMA, "llama.open_second_other_ctx", pb.OpenSessionReq, **subs)),
        LLAMA,
        "llama.open_second_other_ctx",
    )
    # manifest mismatch then close: Ready, generation 1, last_error kept (llama.status_after_close)
    await h.ensure_prefix(
        recorded_request(LLAMA, "llama.ensure_manifest_a", pb.EnsurePrefixReq, **subs).prefix
    )
    await expect(
        h.prefill_suffix(
            recorded_request(LLAMA, "llama.prefill_manifest_b", pb.PrefillSuffixReq, **subs).suffix
        ),
        LLAMA,
        "llama.prefill_manifest_b",
    )
    await h.close()
    await expect(h.ensure_prefix(prefix("hi")), LLAMA, "llama.ensure_after_close")
    await h.close()  # idempotent
    st = await slot.status()
    want = reply_messages(LLAMA, "llama.status_after_close")[0]
    assert (st.state, st.active.generation, st.last_error) == (want["state"], 1, want["last_error"])
    h2 = await slot.open_session(recorded_request(LLAMA, "llama.open_on_s1_again", pb.OpenSessionReq, **subs))
    assert h2.generation == 1
    await h2.close()
    await expect(
        slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID, expected_generation=99)),
        LLAMA,
        "llama.unload_stale_generation",
    )
    await expect(
        slot.load_model(recorded_request(LLAMA, "llama.load_stale_generation", pb.LoadModelReq, **subs)),
        LLAMA,
        "llama.load_stale_generation",
    )
    am = await slot.load_model(recorded_request(LLAMA, "llama.load", pb.LoadModelReq, **subs))
    assert am.generation == 1  # same identity: unchanged generation, now explicit
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID))
    # corrupt / truncated / directory paths: model_load_failed, then Status Failed with last_error
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(TINY_GGUF.read_bytes()[:4096])
    for case, path in (
        ("llama.open_corrupt_gguf", corrupt),
        ("llama.open_truncated_gguf", trunc),
        ("llama.open_directory", TINY_GGUF.parent),
    ):
        placeholder = recorded(LLAMA)[case]["request"]["payloads"][0]["json"]["path"]
        await expect(slot.open_session(open_req(path=str(path))), LLAMA, case, {placeholder: str(path)})
    st = await slot.status()
    want = reply_messages(LLAMA, "llama.status_end")[0]
    assert st.state == want["state"] == "Failed" and not st.HasField("active")
    assert st.last_error == want["last_error"].replace("<MODEL_DIR>", str(TINY_GGUF.parent))
    # open_ctx256 on a failed slot: generation 3 in the recording (1 open, +1 unload, +1 open)
    h3 = await slot.open_session(open_req(256))
    assert h3.generation == 3
    await h3.close()
    await expect(slot.open_session(open_req(64)), LLAMA, "llama.open_other_ctx_switch_required")
    await expect(
        slot.open_session(open_req(128, typ="openvino")), LLAMA, "llama.open_foreign_type_while_resident"
    )
    # the Go connector's follow-up LoadModel fails with model_load_failed
    await expect(slot.load_model(load_req(128, typ="openvino")), LLAMA, "llama.open_type_openvino")


async def test_generation_stale_refusal_leaves_last_error_unset(tmp_path: Path) -> None:
    clock = Clock()
    slot = mk_slot(tmp_path, idle_ttl=10, clock=clock)
    h = await slot.open_session(open_req())
    clock.t += 11
    assert await slot.reap_idle()
    with pytest.raises(werr.SlotGenerationStale):
        await h.ensure_prefix(prefix("x"))
    st = await slot.status()
    assert st.state == SlotState.IDLE and st.last_error == "" and not st.HasField("active")


# --------------------------------------------------------------------------- slot rules (edge-cases F)


async def test_implicit_open_close_releases_without_reaper(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, idle_ttl=0, engine=eng)
    h = await slot.open_session(open_req())
    assert (await slot.status()).state == "Ready"
    await expect_busy(slot.open_session(open_req(64)))
    await h.close()
    st = await slot.status()
    assert st.state == "Empty" and not st.HasField("active") and eng.closed_models == 1
    assert slot.generation == 2
    with pytest.raises(werr.SessionClosed):
        await h.ensure_prefix(prefix("x"))


async def expect_busy(aw: Any) -> None:
    with pytest.raises(werr.ModelBusy):
        await aw


async def test_implicit_session_stays_resident_with_reaper_and_reuses_kv(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("hello world"))
    await h.close()
    h2 = await slot.open_session(open_req())
    assert h2.generation == h.generation == 1 and eng.loads == 1
    st = await h2.ensure_prefix(prefix("hello world"))
    assert st.ReusedTokens == 11  # the KV survived


async def test_explicit_switch_requires_release_and_bumps_generation(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, engine=eng)
    am = await slot.load_model(load_req(128))
    assert am.generation == 1
    h = await slot.open_session(open_req(128))
    await expect_busy(slot.load_model(load_req(64)))
    again = await slot.load_model(load_req(128))  # same identity while the handle is open
    assert again.generation == 1
    await h.close()
    assert (await slot.status()).state == "Ready"  # explicit: stays
    am2 = await slot.load_model(load_req(64))
    assert am2.generation == 3 and eng.closed_models == 1
    with pytest.raises(werr.SessionClosed):
        await h.ensure_prefix(prefix("x"))
    # Embed is busy with an explicit model
    await expect_busy(slot.embed(embed_req(64)))
    with pytest.raises(werr.SlotGenerationStale):
        await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID, expected_generation=4))
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID, expected_generation=3))
    st = await slot.status()
    assert st.state == "Empty" and slot.generation == 4


async def test_unload_with_open_handle_is_busy(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req())
    await expect_busy(slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID)))
    await h.close()
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID))
    assert (await slot.status()).state == "Empty"


async def test_adapter_change_is_a_model_switch(tmp_path: Path) -> None:
    adapter = tmp_path / "style.gguf"
    adapter.write_bytes(b"lora")
    spec = pb.AdapterSpec(name="style", path=str(adapter), digest="adapter-1", scale=1.5)
    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req())
    await h.close()
    with pytest.raises(werr.ModelSwitchRequired):
        await slot.open_session(open_req(adapters=[spec]))
    am = await slot.load_model(load_req(adapters=[spec]))
    assert list(am.adapters) == [spec] and am.generation == 3
    assert list((await slot.status()).active.adapters) == [spec]
    # config deep equality: any field counts
    r = open_req(adapters=[spec])
    r.config.FlashAttn = True
    with pytest.raises(werr.ModelSwitchRequired):
        await slot.open_session(r)


async def test_load_failure_leaves_failed_and_cause_is_visible(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    eng.fail_load = werr.InsufficientMemory("needs 9 GiB")
    slot = mk_slot(tmp_path, engine=eng)
    with pytest.raises(werr.ModelLoadFailed) as ei:
        await slot.load_model(load_req())
    assert "insufficient_memory" in set(ei.value.wrapped_tokens())
    assert status_msg(ei.value) == (
        13,
        "model_load_failed: modeld failed to load model: insufficient memory "
        "for requested model: needs 9 GiB",
    )
    st = await slot.status()
    assert st.state == "Failed" and not st.HasField("active") and st.last_error == str(ei.value)
    # a load failing with a context overflow is reported under the earlier row
    eng.fail_load = None
    with pytest.raises(werr.ModeldError) as ei2:
        await slot.open_session(open_req(512))
    assert status_msg(ei2.value)[1].startswith(
        "context_overflow: modeld failed to load model: exceeded the "
        "session context window: requested num_ctx=512"
    )


async def test_body_owner_fence(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    for owner in ("", "other"):
        with pytest.raises(werr.StaleFence):
            await slot.open_session(open_req(owner=owner))
        with pytest.raises(werr.StaleFence):
            await slot.describe(open_req(owner=owner))
        with pytest.raises(werr.StaleFence):
            await slot.embed(embed_req(owner=owner))
        with pytest.raises(werr.StaleFence):
            await slot.load_model(load_req(owner=owner))
        with pytest.raises(werr.StaleFence):
            await slot.unload_model(pb.UnloadModelReq(owner_instance_id=owner))
    slot.set_owner("new")
    with pytest.raises(werr.StaleFence):
        await slot.open_session(open_req())
    assert (await slot.open_session(open_req(owner="new"))).generation == 1


async def test_path_resolution_from_models_dir(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, engine=eng)
    p = write_fake_gguf(tmp_path / "models" / "m" / "model.gguf", context_length=64)
    with pytest.raises(werr.ModelNotFound):
        await slot.open_session(open_req(64, name="x", path=""))
    assert eng.describes == 0  # the backend was never asked
    h = await slot.open_session(open_req(64, name="m", path=""))
    assert (await slot.status()).active.path == p
    d = await slot.describe(open_req(64, name="m", path=""))
    assert d.effective_context == 64
    await h.close()
    digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    with pytest.raises(werr.DigestMismatch):
        await slot.load_model(load_req(64, name="m", path="", digest="00"))
    am = await slot.load_model(load_req(64, name="m", path="", digest=digest))
    assert am.path == p and am.digest == digest


async def test_describe_same_identity_and_credit(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, engine=eng)
    d0 = await slot.describe(open_req(128))
    assert eng.reclaimable == [0]  # empty slot: no credit
    h = await slot.open_session(open_req(128))
    n = eng.describes
    d1 = await slot.describe(open_req(128))
    assert eng.describes == n  # the recorded open-time answer, no backend call
    assert d1.required_bytes == d0.required_bytes
    await slot.describe(open_req(64))
    assert eng.reclaimable[-1] == d0.required_bytes  # a switch would reclaim the resident footprint
    await h.close()


async def test_embed_evicts_idle_implicit_and_is_busy_while_held(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req())
    await expect_busy(slot.embed(embed_req()))
    await h.close()
    vec = await slot.embed(embed_req())
    assert len(vec.vector) == 64
    st = await slot.status()
    assert st.state == "Empty" and not st.HasField("active") and slot.generation == 2


async def test_remove_resident_model_is_busy(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    write_fake_gguf(tmp_path / "models" / "m" / "model.gguf", context_length=64)
    h = await slot.open_session(open_req(64, name="m", path=""))
    with pytest.raises(werr.ModelBusy) as ei:
        await slot.remove_model("m")
    assert status_msg(ei.value) == (
        9,
        'model_busy: cannot remove model "m": modeld active model slot is busy',
    )
    with pytest.raises(werr.ModelBusy):
        await slot.store.remove_model("m")  # the guard sits in the store too
    await h.close()
    await slot.unload_model(pb.UnloadModelReq(owner_instance_id=IID))
    await slot.remove_model("m")


# --------------------------------------------------------------------------- lock, decode, cancellation


async def test_decode_holds_the_lock_and_reports_busy(tmp_path: Path) -> None:
    eng = CountingEngine("llama", token_latency=0.005)
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))
    stream = h.decode(dcfg(20))
    first = await stream.__anext__()
    assert first.text
    st = await slot.status()
    assert (st.state, st.busy_operation) == ("Busy", "decode")
    waiter = asyncio.create_task(h.ensure_prefix(prefix("p")))
    explain = asyncio.create_task(h.explain_context())
    await wait_until(lambda: slot.lock_waiters == 2, "both operations queued behind the decode")
    assert not waiter.done() and not explain.done()
    loop = asyncio.get_running_loop()
    with pytest.raises(werr.DeadlineExceeded):
        await slot.load_model(load_req(), deadline=loop.time() + 0.01)
    rest = [c async for c in stream]
    assert len(rest) == 19
    ens = await waiter  # ran after the whole stream: the 20 generated tokens were resident, then dropped
    assert (ens.ReusedTokens, ens.DroppedTokens) == (1, 20)
    rep = await explain
    assert rep.ResidentTokens == 1 and not rep.Closed
    assert (await slot.status()).state == "Ready"


async def test_cancelled_load_while_busy_changes_nothing(tmp_path: Path) -> None:
    eng = CountingEngine("llama", token_latency=0.005)
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))
    async with h.decode(dcfg(50)) as stream:
        await stream.__anext__()
        t = asyncio.create_task(slot.load_model(load_req(64)))
        await wait_until(lambda: slot.lock_waiters == 1, "the load waiting for the lock")
        assert not t.done()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert slot.lock_waiters == 0
    st = await slot.status()
    assert st.active.generation == 1 and st.active.config.NumCtx == 128 and eng.loads == 1
    assert st.state == "Ready" and st.last_error == ""


async def test_decode_cancellation_releases_busy(tmp_path: Path) -> None:
    eng = CountingEngine("llama", token_latency=0.01)
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))

    streaming = asyncio.Event()

    async def consume() -> None:
        async with h.decode(dcfg(1000)) as s:
            async for _ in s:
                streaming.set()

    t = asyncio.create_task(consume())
    await asyncio.wait_for(streaming.wait(), 5)  # mid-stream: a token arrived, the lock is held
    st = await slot.status()
    assert (st.state, st.busy_operation) == ("Busy", "decode") and not t.done()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    st = await slot.status()
    assert st.state == "Ready" and st.busy_operation == "" and st.last_error == ""
    # not drained at all: aclose releases too
    s2 = h.decode(dcfg(1000))
    await s2.__anext__()
    await s2.aclose()
    assert (await slot.status()).state == "Ready"
    assert (await h.ensure_prefix(prefix("p"))).PrefixTokens == 1


async def test_decode_setup_errors_and_error_chunk_release(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req(256))
    await h.ensure_prefix(prefix("w" * 225))
    chunks = await decode_all(h, 100)
    assert len(chunks) == 31
    chunks = await decode_all(h, 5)
    want = reply_messages(LLAMA, "llama.decode_when_full")[0]
    assert (
        len(chunks) == 1 and chunks[0].error == want["error"] and chunks[0].error_token == "context_overflow"
    )
    st = await slot.status()
    assert st.state == "Ready" and st.last_error == want["error"]
    # a consumer stopping at the error chunk does not keep the lock
    s = h.decode(dcfg(5))
    c = await s.__anext__()
    assert c.error
    assert not slot._op.locked()
    await h.close()
    with pytest.raises(werr.SessionClosed):
        await h.decode(dcfg(1)).__anext__()


async def test_lock_wait_honours_deadline(tmp_path: Path) -> None:
    eng = CountingEngine("llama", token_latency=0.01)
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))
    loop = asyncio.get_running_loop()
    async with h.decode(dcfg(100)) as s:
        await s.__anext__()
        with pytest.raises(werr.DeadlineExceeded):
            await h.snapshot(deadline=loop.time() + 0.02)
        with pytest.raises(werr.DeadlineExceeded):
            await slot.embed(embed_req(), deadline=loop.time() - 1)
    assert (await slot.status()).last_error == ""


# --------------------------------------------------------------------------- reaper, fatal, blobs


async def test_idle_reaper(tmp_path: Path) -> None:
    clock = Clock()
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, idle_ttl=60, engine=eng, clock=clock)
    h = await slot.open_session(open_req())
    await h.close()
    clock.t += 59
    assert not await slot.reap_idle()
    clock.t += 1
    assert await slot.reap_idle()
    st = await slot.status()
    assert (
        st.state == "Idle" and not st.HasField("active") and slot.generation == 2 and eng.closed_models == 1
    )
    h2 = await slot.open_session(open_req())
    assert h2.generation == 3 and eng.loads == 2
    # held but idle: reaped; the holder gets slot_generation_stale and must reopen
    clock.t += 61
    assert await slot.reap_idle()
    with pytest.raises(werr.SlotGenerationStale):
        await h2.prefill_suffix(suffix("x"))
    rep = await h2.explain_context()
    assert rep.Closed and rep.ResidentTokens == 0
    await h2.close()  # release of an old generation is a no-op
    assert (await slot.status()).state == "Idle"


async def test_reaper_never_reaps_busy_and_ttl_zero(tmp_path: Path) -> None:
    clock = Clock()
    eng = CountingEngine("llama", token_latency=0.005)
    slot = mk_slot(tmp_path, idle_ttl=1, engine=eng, clock=clock)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))
    async with h.decode(dcfg(10)) as s:
        await s.__anext__()
        clock.t += 100
        assert not await slot.reap_idle()
    off = mk_slot(tmp_path / "b", idle_ttl=0, clock=clock)
    await (await off.open_session(open_req())).ensure_prefix(prefix("p"))
    clock.t += 1e6
    assert not await off.reap_idle()
    off.start_reaper()
    assert off._reaper is None


async def test_reaper_task_runs_and_stops(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path, idle_ttl=0.003, clock=Clock())
    h = await slot.open_session(open_req())
    await h.close()
    slot._clock.t += 10  # type: ignore[attr-defined]
    assert (await slot.status()).state == "Ready"
    slot.start_reaper()  # ticks every max(ttl/3, 1 s)
    assert await asyncio.wait_for(slot.wait_reaper_tick(), 5) == 1
    assert (await slot.status()).state == "Idle"
    await slot.stop_reaper()
    assert slot._reaper is None
    await slot.close()


async def test_session_fatal_evicts_and_reopens(tmp_path: Path) -> None:
    eng = CountingEngine("llama")
    slot = mk_slot(tmp_path, engine=eng)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))
    fake = slot._active.sess  # type: ignore[union-attr]
    assert isinstance(fake, FakeSession)
    fake.mark_fatal("llama decode failed: boom")
    with pytest.raises(werr.SessionFatal) as ei:
        await h.ensure_prefix(prefix("p"))
    assert status_msg(ei.value) == (
        10,
        "session_fatal: session marked fatal; evict and reopen: llama decode failed: boom",
    )
    st = await slot.status()
    assert st.state == "Failed" and not st.HasField("active") and slot.generation == 2
    assert st.last_error == str(ei.value)
    with pytest.raises(werr.SlotGenerationStale):
        await h.ensure_prefix(prefix("p"))
    await h.close()
    h2 = await slot.open_session(open_req())
    assert h2.generation == 3 and eng.loads == 2
    assert (await h2.ensure_prefix(prefix("p"))).ReusedTokens == 0  # a fresh backend session


async def test_snapshot_blobs_and_restore(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("hello "))
    await decode_all(h, 12)
    snap = await h.snapshot()
    assert len(snap.state_id) == 64 and snap.resident_tokens == 18 and snap.prefix_tokens == 6
    blob = tmp_path / "modeld-blobs" / "llama" / f"{snap.state_id}.bin"
    assert blob.exists() and hashlib.sha256(blob.read_bytes()).hexdigest() == snap.state_id
    assert oct(blob.stat().st_mode & 0o777) == "0o600"
    await h.ensure_prefix(prefix("other"))
    wire = pb.SessionSnapshot()
    wire.CopyFrom(snap)
    await h.restore(wire)
    assert (await h.explain_context()).ResidentTokens == 18
    bogus = recorded_request(LLAMA, "llama.restore_bogus", pb.RestoreReq, **{"<IID>": IID})
    path = os.path.join(str(tmp_path), "modeld-blobs", "llama", "nope.bin")
    await expect(h.restore(bogus.snapshot), LLAMA, "llama.restore_bogus", {"<TMP>": path})
    assert (await slot.status()).last_error == ""  # the blob read happens before the operation
    # without a data root the state is lost (no state_id)
    slot2 = mk_slot(tmp_path / "x", data_root="")
    h2 = await slot2.open_session(open_req())
    await h2.ensure_prefix(prefix("abc"))
    assert (await h2.snapshot()).state_id == ""


async def test_model_not_active_and_busy_ops(tmp_path: Path) -> None:
    slot = mk_slot(tmp_path)
    orphan = SlotSession(slot, 0)
    with pytest.raises(werr.ModelNotActive):
        await orphan.ensure_prefix(prefix("x"))
    stale = SlotSession(slot, 5)
    with pytest.raises(werr.SlotGenerationStale):
        await stale.snapshot()
    assert (await stale.explain_context()).Closed
    assert (await slot.status()).last_error == ""


async def test_chunk_to_wire_plain_error() -> None:
    w = Chunk(error=PlainError("boom")).to_wire()
    assert w.error == "boom" and not w.error_token and not w.HasField("error_detail")


async def test_dropped_stream_releases_the_lock(tmp_path: Path) -> None:
    # the server's handler generator may be dropped without closing our stream (client gone)
    import gc

    slot = mk_slot(tmp_path)
    h = await slot.open_session(open_req())
    await h.ensure_prefix(prefix("p"))

    async def handler() -> Any:
        async for chunk in h.decode(dcfg(100)):
            yield chunk

    gen = handler()
    await gen.__anext__()
    assert slot._op.locked()
    await gen.aclose()
    del gen
    gc.collect()
    assert not slot._op.locked()
    st = await slot.status()
    assert st.state == "Ready" and st.last_error == ""
