"""Files named by a request never freeze the simulator (issue 20, item 4).

Before: a model path or a Restore ``state_id`` naming a FIFO was opened on the event loop, and Health
got no answer until someone wrote to the FIFO. Now every file a request names is looked at on a worker
thread and opened only when it is a regular file (a non-blocking open, then ``fstat``), so a FIFO is
refused at once; and a read that does block holds only its own request.

A ``state_id`` such as ``../../../../secret`` read any ``.bin`` file and its answer told whether the file
existed: it is now resolved inside the blob directory or refused with one answer, whatever is outside.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hostile_support import Served, SimThread, call, served_sim

import modeld_sim.store
from modeld_sim.gguf import write_fake_gguf

ANSWER_WITHIN_S = 5.0


def _open_body(iid: str, path: str, name: str = "m") -> dict[str, object]:
    return {
        "owner_instance_id": iid,
        "model_name": name,
        "type": "llama",
        "path": path,
        "config": {"NumCtx": 128},
    }


def _inspect_failed(path: str) -> str:
    return f'llama model KV profile: llamacppshim: inspect GGUF metadata "{path}"'


@pytest.fixture
def fifo_root(tmp_path: Path) -> Iterator[tuple[Path, Served]]:
    root = tmp_path / "data"
    (root / "models" / "f").mkdir(parents=True)
    os.mkfifo(root / "models" / "f" / "model.gguf")  # a model by name that is a FIFO
    os.mkfifo(tmp_path / "model.fifo")  # a model path that is a FIFO
    (root / "modeld-blobs" / "llama").mkdir(parents=True)
    os.mkfifo(root / "modeld-blobs" / "llama" / "stuck.bin")  # a snapshot blob that is a FIFO
    write_fake_gguf(str(tmp_path / "ok.gguf"), context_length=256)
    with served_sim(str(root)) as srv:
        yield tmp_path, srv


async def _health_meanwhile(srv: Served, task: asyncio.Task[object]) -> int:
    """Health calls on a connection of their own until ``task`` ends; how many were answered."""
    answered = 0
    async with srv.client() as c:
        while True:
            r = await call(c, "Health", {}, srv.instance_id, timeout=ANSWER_WITHIN_S, connection="health")
            assert r.code == 0, (r.code, r.message, r.timed_out)
            answered += 1
            if task.done():
                return answered


async def test_fifo_model_path_is_refused_while_health_answers(fifo_root: tuple[Path, Served]) -> None:
    tmp, srv = fifo_root
    fifo = str(tmp / "model.fifo")
    async with srv.client() as c:
        t0 = time.monotonic()
        load = asyncio.create_task(call(c, "LoadModel", _open_body(srv.instance_id, fifo), srv.instance_id))
        assert await _health_meanwhile(srv, load) >= 1
        r = await load
        assert time.monotonic() - t0 < ANSWER_WITHIN_S
        assert (r.code, r.message) == (
            13,
            f"model_load_failed: modeld failed to load model: {_inspect_failed(fifo)}",
        )
        for method in ("OpenSession", "Describe", "Embed"):
            body = _open_body(srv.instance_id, fifo)
            if method == "Embed":
                body = {k: v for k, v in body.items() if k != "config"} | {"text": "hi"}
            r = await call(c, method, body, srv.instance_id, timeout=ANSWER_WITHIN_S)
            assert r.code == 13 and r.message is not None and r.message.endswith(_inspect_failed(fifo)), (
                method
            )
        # a FIFO in the models directory is no model: by name it is not found, and it is not listed
        r = await call(
            c,
            "LoadModel",
            {"owner_instance_id": srv.instance_id, "model_name": "f", "type": "llama"},
            srv.instance_id,
        )
        assert (r.code, r.message) == (
            5,
            "model_not_found: model not found in modeld's local store: f (llama)",
        )
        r = await call(c, "ListModels", {}, srv.instance_id, timeout=ANSWER_WITHIN_S)
        assert r.code == 0 and b'"f"' not in r.messages[0]
        # and the daemon still loads a real model afterwards
        r = await call(c, "LoadModel", _open_body(srv.instance_id, str(tmp / "ok.gguf")), srv.instance_id)
        assert r.code == 0, r.message


async def test_restore_of_a_fifo_blob_and_of_ids_outside_the_blob_dir(fifo_root: tuple[Path, Served]) -> None:
    tmp, srv = fifo_root
    blobs = tmp / "data" / "modeld-blobs" / "llama"
    (tmp / "secret.bin").write_bytes(b"not yours")
    os.mkfifo(tmp / "trap.bin")  # if it were opened, the Restore would hang
    async with srv.client() as c:
        r = await call(
            c,
            "OpenSession",
            _open_body(srv.instance_id, str(tmp / "ok.gguf")),
            srv.instance_id,
            connection="s",
        )
        assert r.code == 0, r.message
        handle = r.messages[0].decode().split('"')[3]

        async def restore(state_id: str) -> tuple[int | None, str | None]:
            body = {"handle": handle, "snapshot": {"state_id": state_id}}
            rr = await call(c, "Restore", body, srv.instance_id, connection="s", timeout=ANSWER_WITHIN_S)
            return rr.code, rr.message

        stuck = str(blobs / "stuck.bin")
        task = asyncio.create_task(restore("stuck"))
        assert await _health_meanwhile(srv, task) >= 1  # type: ignore[arg-type]
        assert await task == (13, f"internal: snapshot blob not found: open {stuck}: not a regular file")
        # outside the blob directory: one answer whether or not the file exists, and nothing opened
        for sid in ("../../../../secret", "../../../../missing", "../../../../trap", "/etc/passwd\x00"):
            code, message = await restore(sid)
            assert code == 13 and message is not None, sid
            if "\x00" in sid:
                continue
            assert (
                message == f'internal: snapshot blob not found: state id "{sid}" names no blob of this daemon'
            )
        # a symlink inside the blob directory that leads out is refused the same way
        (blobs / "link.bin").symlink_to(tmp / "secret.bin")
        assert await restore("link") == (
            13,
            'internal: snapshot blob not found: state id "link" names no blob of this daemon',
        )
        # an unknown id inside keeps the real daemon's answer
        missing = str(blobs / "nope.bin")
        assert await restore("nope") == (
            13,
            f"internal: snapshot blob not found: open {missing}: no such file or directory",
        )
        r = await call(c, "ExplainContext", {"handle": handle}, srv.instance_id, connection="s")
        assert r.code == 0  # the session survived all of it


@pytest.fixture
def sim_thread(tmp_path: Path) -> Iterator[SimThread]:
    s = SimThread(str(tmp_path / "data"))
    try:
        yield s
    finally:
        s.close()


async def test_a_blocked_read_holds_only_its_own_request(
    sim_thread: SimThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow or stuck disk, stood in for by a digest read that waits for the test: the LoadModel that
    # needs it waits, every other request is answered meanwhile.
    srv = sim_thread.served
    path = write_fake_gguf(str(tmp_path / "data" / "models" / "m" / "model.gguf"))
    entered, release = threading.Event(), threading.Event()
    real_digest = modeld_sim.store.file_digest

    def stuck_digest(p: str) -> str:
        entered.set()
        assert release.wait(60)
        return real_digest(p)

    monkeypatch.setattr(modeld_sim.store, "file_digest", stuck_digest)
    body = {
        "owner_instance_id": srv.instance_id,
        "model_name": "m",
        "type": "llama",
        "digest": real_digest(path),
    }
    async with srv.client() as c:
        load = asyncio.create_task(
            call(c, "LoadModel", body | {"config": {"NumCtx": 128}}, srv.instance_id, timeout=60)
        )
        assert await asyncio.to_thread(entered.wait, ANSWER_WITHIN_S)
        for method in ("Health", "Status", "DiskStats"):
            r = await call(c, method, {}, srv.instance_id, timeout=ANSWER_WITHIN_S, connection="other")
            assert r.code == 0, (method, r.message, r.timed_out)
        assert not load.done()
        release.set()
        r = await asyncio.wait_for(load, ANSWER_WITHIN_S)
        assert r.code == 0, r.message
