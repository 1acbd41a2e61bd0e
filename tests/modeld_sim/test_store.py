"""modeld_sim.store: Resolve, ListModels, RemoveModel, DiskStats, PushModel — with the recorded texts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _sim_recorded import recorded, reply_message, reply_messages

from modeld_sim.gguf import write_fake_gguf
from modeld_sim.store import ModelStore, iter_bytes, models_dir
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

REC = "real-llama.jsonl"


def _status(exc: BaseException) -> tuple[int, str]:
    code, msg, _ = werr.status_for(exc)
    return code, msg


def _rec_status(case: str) -> tuple[int, str]:
    r = recorded(REC)[case]["reply"]
    return r["code"], r["message"]


def _push_payload(case: str) -> tuple[pb.PushManifest, list[bytes]]:
    payloads = recorded(REC)[case]["request"]["payloads"]
    first = payloads[0]["json"]
    m = first["manifest"]
    man = pb.PushManifest(
        name=m["name"],
        type=m["type"],
        digest=m.get("digest", ""),
        total_bytes=m.get("total_bytes", 0),
        format=m["format"],
    )
    datas = [base64.b64decode(p["json"]["data"]) for p in payloads if "data" in p["json"]]
    return man, datas


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.for_data_root(str(tmp_path))


def test_models_dir_default_and_override(tmp_path: Path) -> None:
    assert models_dir(str(tmp_path)) == str(tmp_path / "models")
    assert models_dir(str(tmp_path), "/x") == "/x"


def test_resolve_texts(store: ModelStore) -> None:
    with pytest.raises(werr.ModelNotFound) as ei:
        store.resolve("", "llama")
    assert _status(ei.value) == _rec_status("load.empty")
    with pytest.raises(werr.ModelNotFound) as ei:
        store.resolve("nosuch", "llama")
    assert _status(ei.value) == _rec_status("load.name_only")
    with pytest.raises(werr.UnsupportedModelType) as ei2:
        store.resolve("m", "onnx")
    assert _status(ei2.value) == _rec_status("load.unknown_type")
    with pytest.raises(werr.UnsupportedModelType) as ei3:
        store.resolve("m", "")
    assert str(ei3.value) == 'unsupported model backend type: ""'
    with pytest.raises(werr.ModelNotFound) as ei:
        store.resolve("ov", "openvino")
    assert str(ei.value) == "model not found in modeld's local store: ov (openvino)"


def test_resolve_llama_digest_and_openvino(store: ModelStore) -> None:
    p = write_fake_gguf(Path(store.dir) / "a" / "model.gguf")
    digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    assert store.resolve("a", "llama") == p
    assert store.resolve("a", "llama", digest) == p
    with pytest.raises(werr.DigestMismatch) as ei:
        store.resolve("a", "llama", "00")
    assert str(ei.value) == f"model content digest mismatch: model a want=00 got={digest}"
    ov = Path(store.dir) / "ov"
    ov.mkdir()
    (ov / "openvino_language_model.xml").write_text("<xml/>")
    assert store.resolve("ov", "openvino", "ignored-digest") == str(ov)
    assert store.resolve_path("/explicit", "", "", "") == "/explicit"


async def test_list_remove_disk(store: ModelStore) -> None:
    assert await store.list_models() == []  # missing dir: empty list
    write_fake_gguf(Path(store.dir) / "b" / "model.gguf", context_length=333)
    write_fake_gguf(Path(store.dir) / "a" / "model.gguf", context_length=111)
    (Path(store.dir) / "a-notgguf").mkdir()
    (Path(store.dir) / "a-notgguf" / "model.gguf").write_bytes(b"junk")
    (Path(store.dir) / ".staging-x-1").mkdir()
    ov = Path(store.dir) / "ov"
    ov.mkdir()
    (ov / "openvino_model.xml").write_text("<xml/>")
    (ov / "modeld_sim.json").write_text('{"context_length": 8192}')
    (Path(store.dir) / "loose-file").write_text("x")
    models = await store.list_models()
    assert [m.name for m in models] == ["a", "a-notgguf", "b", "ov"]
    a = models[0]
    assert a.type == "llama" and a.context_length == 111 and a.size_bytes > 0 and len(a.digest) == 64
    assert models[1].context_length == 0 and models[1].size_bytes == 4
    assert models[3].type == "openvino" and models[3].digest == "" and models[3].context_length == 8192
    st = await store.disk_stats()
    assert st.total_bytes > 0 and st.free_bytes >= 0 and st.used_bytes >= 0
    await store.remove_model("a")
    assert not (Path(store.dir) / "a").exists()
    for name, case in (
        ("a", "remove.pushed_again"),
        ("nosuch", "remove.unknown"),
        ("../../etc", "remove.path_traversal"),
        ("", "remove.empty_name"),
    ):
        with pytest.raises(werr.ModeldError) as ei:
            await store.remove_model(name)
        assert _status(ei.value) == _rec_status(case)


async def test_recorded_push_sequence(store: ModelStore) -> None:
    # the store half of observed/real-llama.jsonl push.* / list.* / remove.* in file order
    for case in ("push.bad_type", "push.bad_format", "push.digest_mismatch", "push.path_traversal_name"):
        man, datas = _push_payload(case)
        with pytest.raises(werr.ModeldError) as ei:
            await store.receive_model(man, iter_bytes(*datas))
        assert _status(ei.value) == _rec_status(case), case
    for case in ("push.total_bytes_wrong", "push.ok_two_frames", "push.again_same"):
        man, datas = _push_payload(case)
        resp = await store.receive_model(man, iter_bytes(*datas))
        want = reply_messages(REC, case)[0]
        assert resp.bytes_written == want["bytes_written"], case
        assert resp.already_present == want.get("already_present", False), case
    models = await store.list_models()
    want_list = reply_messages(REC, "list.after_push")[0]["models"]
    assert [(m.name, m.type, m.digest, m.size_bytes) for m in models] == [
        (w["name"], w["type"], w["digest"], w["size_bytes"]) for w in want_list
    ]
    await store.remove_model("tiny")
    want_list = reply_messages(REC, "list.after_remove")[0]["models"]
    assert [m.name for m in await store.list_models()] == [w["name"] for w in want_list]
    # no staging dirs left behind
    assert not [p for p in Path(store.dir).iterdir() if p.name.startswith(".staging-")]


async def test_early_rejection_does_not_consume_the_stream(store: ModelStore) -> None:
    consumed = []

    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            consumed.append(i)
            yield b"x" * 10

    with pytest.raises(werr.UnsupportedModelType):
        await store.receive_model(pb.PushManifest(name="m", type="ollama", format="file"), frames())
    assert consumed == []
    with pytest.raises(werr.ModeldError) as ei:
        await store.receive_model(pb.PushManifest(name="", type="llama", format="file"), frames())
    assert str(ei.value) == "modelstore: push manifest missing model name"


async def test_concurrent_push_of_same_name(store: ModelStore) -> None:
    gate = asyncio.Event()
    streaming = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"GGUF"
        streaming.set()  # the store took the first frame and asks for the next one
        await gate.wait()
        yield b"rest"

    assert not store.push_in_progress("m")
    first = asyncio.create_task(
        store.receive_model(pb.PushManifest(name="m", type="llama", format="file"), slow())
    )
    await asyncio.wait_for(streaming.wait(), 5)
    assert store.push_in_progress("m") and not store.push_in_progress("other")
    with pytest.raises(werr.ModeldError) as ei:
        await store.receive_model(pb.PushManifest(name="m", type="llama", format="file"), iter_bytes(b"a"))
    assert werr.status_for(ei.value)[:2] == (13, 'internal: modelstore: push already in progress for "m"')
    gate.set()
    resp = await first
    assert resp.bytes_written == 8 and not store.push_in_progress("m")
    assert (Path(store.dir) / "m" / "model.gguf").read_bytes() == b"GGUFrest"
    # another name is not blocked; the same name works again afterwards
    resp = await store.receive_model(
        pb.PushManifest(name="m", type="llama", format="file"), iter_bytes(b"new")
    )
    assert resp.bytes_written == 3 and not resp.already_present


async def test_push_replaces_different_content_and_large_streams(store: ModelStore) -> None:
    data = bytes(range(256)) * (16 * 4096)  # 16 MiB in 4 MiB frames
    frames = [data[i : i + (4 << 20)] for i in range(0, len(data), 4 << 20)]
    digest = hashlib.sha256(data).hexdigest()
    man = pb.PushManifest(name="big", type="llama", format="file", digest=digest)
    resp = await store.receive_model(man, iter_bytes(*frames))
    assert resp.bytes_written == len(data) and not resp.already_present
    assert (Path(store.dir) / "big" / "model.gguf").read_bytes() == data
    resp = await store.receive_model(man, iter_bytes(*frames))
    assert resp.already_present


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


async def test_push_tar_openvino(store: ModelStore) -> None:
    raw = _tar({"openvino_model.xml": b"<xml/>", "sub/w.bin": b"\0\1\2"})
    # Python's tarfile pads the archive to a 10 KiB record; Go's reader stops after the two zero blocks
    # that end it, and the real daemon digests and counts only what it read (docs/conformance).
    end = _archive_end(raw)
    assert end < len(raw) and not raw[end:].strip(b"\0")
    read = raw[:end]
    man = pb.PushManifest(name="ov", type="openvino", format="tar", digest=hashlib.sha256(read).hexdigest())
    resp = await store.receive_model(man, iter_bytes(raw[:100], raw[100:]))
    assert resp.bytes_written == end
    assert (Path(store.dir) / "ov" / "sub" / "w.bin").read_bytes() == b"\0\1\2"
    assert store.resolve("ov", "openvino") == str(Path(store.dir) / "ov")
    resp = await store.receive_model(man, iter_bytes(raw))
    assert resp.already_present  # openvino digests are not verified on disk: any resolvable dir is "present"
    whole = pb.PushManifest(name="ov2", type="openvino", format="tar", digest=hashlib.sha256(raw).hexdigest())
    with pytest.raises(werr.DigestMismatch) as dm:
        await store.receive_model(whole, iter_bytes(raw))
    assert str(dm.value).endswith(f"want={whole.digest} got={man.digest}")
    evil = _tar({"../evil.txt": b"x"})
    with pytest.raises(werr.ModeldError) as ei:
        await store.receive_model(pb.PushManifest(name="ev", type="openvino", format="tar"), iter_bytes(evil))
    assert str(ei.value) == 'modelstore: write staged content: archiveutil: unsafe archive path "../evil.txt"'
    assert not (Path(store.dir).parent / "evil.txt").exists()


def _archive_end(raw: bytes) -> int:
    """Where the second of the two zero blocks that end a tar archive ends."""
    pos = 0
    while raw[pos : pos + 512] != bytes(512):
        size = int(raw[pos + 124 : pos + 136].strip(b"\0 ") or b"0", 8)
        pos += 512 + -(-size // 512) * 512
    return pos + 1024


def test_recorded_texts_are_the_ones_we_expect() -> None:
    # guard: the recordings this file relies on say what we think they say
    assert reply_message(REC, "push.path_traversal_name").endswith("pattern contains path separator")


async def test_a_daemon_without_an_engine_reports_no_context_length(tmp_path: Path) -> None:
    """Recorded against the real backend-none daemon (tests/real differential): it has no header
    parser, so a pushed GGUF is listed without its context length; an engine build reports it."""
    from modeld_sim.gguf import write_fake_gguf

    for backend, expected in (("none", 0), ("llama", 256)):
        root = tmp_path / backend
        write_fake_gguf(str(root / "models" / "tiny" / "model.gguf"), context_length=256)
        store = ModelStore.for_data_root(str(root), backend=backend)
        [model] = await store.list_models()
        assert (model.name, model.context_length) == ("tiny", expected)
