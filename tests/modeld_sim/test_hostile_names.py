"""Hostile model names never destroy data (issue 20, item 1).

The real modeld v0.36.0 joins a pushed or removed name to its models directory and removes what that
names: ``RemoveModel("..")`` answers OK and the whole data root is gone, lease included; ``"."`` removes
every model; a push of either does the same before failing (docs/conformance/real-modeld.md, "Model
names"). The simulator refuses ``.`` and ``..`` with ``internal: modelstore: invalid model name …``;
every other kind of name keeps the real daemon's answer, which touches nothing outside the models
directory: a separator is ``model_not_found`` on remove (recorded: ``../../etc``) and the ``mkdirtemp``
pattern error on push (recorded: ``../evil``), a NUL byte the real daemon's ``invalid argument``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _hostile_support import call, served_sim, tree

from modeld_sim.gguf import write_fake_gguf
from modeld_sim.store import ModelStore, iter_bytes
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

BAD_NAME = "internal: modelstore: invalid model name {q}: a model name is one plain path element"


def _populate(root: Path) -> None:
    """A data root worth keeping: two models, a snapshot blob, a file of the user's."""
    write_fake_gguf(str(root / "models" / "keep" / "model.gguf"))
    (root / "models" / "ov").mkdir(parents=True)
    (root / "models" / "ov" / "openvino_model.xml").write_text("<xml/>")
    (root / "modeld-blobs" / "llama").mkdir(parents=True)
    (root / "modeld-blobs" / "llama" / "abc.bin").write_bytes(b"state")
    (root / "notes.txt").write_text("mine")
    write_fake_gguf(str(root / "model.gguf"))  # what a name of ".." would resolve to


def _push_body(name: str, data: bytes = b"GGUF" + bytes(60)) -> dict[str, object]:
    manifest = {"name": name, "type": "llama", "format": "file"}
    return {"manifest": manifest, "data": base64.b64encode(data).decode()}


async def test_remove_and_push_of_dot_names_leave_the_data_root_alone(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _populate(root)
    with served_sim(str(root)) as srv:
        before = tree(str(root))
        async with srv.client() as c:
            for name in ("..", "."):
                q = f'"{name}"'
                r = await call(c, "RemoveModel", {"name": name}, srv.instance_id)
                assert (r.code, r.message) == (13, BAD_NAME.format(q=q)), name
                r = await call(c, "PushModel", _push_body(name), srv.instance_id)
                assert (r.code, r.message) == (13, BAD_NAME.format(q=q)), name
                assert tree(str(root)) == before, name  # nothing removed, no staging dir left
            # the daemon still serves, with its lease, its models and the user's file
            assert (await call(c, "Health", {}, srv.instance_id)).code == 0
            listed = await call(c, "ListModels", {}, srv.instance_id)
            assert listed.code == 0 and b'"keep"' in listed.messages[0] and b'"ov"' in listed.messages[0]
    assert (root / "notes.txt").read_text() == "mine"


async def test_separator_and_nul_names_get_the_real_daemons_answers(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _populate(root)
    models = str(root / "models")
    with served_sim(str(root)) as srv:
        before = tree(str(root))
        async with srv.client() as c:
            # remove: a name with a separator names no model (recorded: "../../etc")
            for name in ("../modeld-blobs", "keep/model.gguf", "../notes.txt", "/abs", "keep/"):
                r = await call(c, "RemoveModel", {"name": name}, srv.instance_id)
                assert (r.code, r.message) == (
                    5,
                    "model_not_found: model not found in modeld's local store",
                ), name
            # the real daemon's stat error for a NUL byte (observed on v0.36.0)
            p = f"{models}/a\x00b"
            r = await call(c, "RemoveModel", {"name": "a\x00b"}, srv.instance_id)
            assert (r.code, r.message) == (13, f"internal: modelstore: stat {p}: stat {p}: invalid argument")
            # push: the mkdirtemp pattern error (recorded: "../evil"), and Mkdir's EINVAL for a NUL byte
            for name in ("../evil", "keep/x", "/abs"):
                r = await call(c, "PushModel", _push_body(name), srv.instance_id)
                want = (
                    "internal: modelstore: create staging dir: "
                    f"mkdirtemp .staging-{name}-*: pattern contains path separator"
                )
                assert (r.code, r.message) == (13, want), name
            r = await call(c, "PushModel", _push_body("a\x00b"), srv.instance_id)
            assert r.code == 13 and r.message is not None
            staged = re.escape(f"{models}/.staging-a\x00b-")
            assert re.fullmatch(
                f"internal: modelstore: create staging dir: mkdir {staged}[0-9]+: invalid argument", r.message
            )
            # load by name: nothing outside the models directory is ever resolved ("<root>/model.gguf" exists)
            for name in ("..", "a\x00b", "../models/keep"):
                body = {"owner_instance_id": srv.instance_id, "model_name": name, "type": "llama"}
                r = await call(c, "LoadModel", body, srv.instance_id)
                assert (r.code, r.message) == (
                    5,
                    f"model_not_found: model not found in modeld's local store: {name} (llama)",
                )
        assert tree(str(root)) == before


@pytest.mark.parametrize("name", ["..", "."])
async def test_store_refuses_dot_names_before_touching_anything(tmp_path: Path, name: str) -> None:
    store = ModelStore.for_data_root(str(tmp_path))
    write_fake_gguf(str(tmp_path / "models" / "keep" / "model.gguf"))
    before = tree(str(tmp_path))
    consumed: list[bytes] = []

    async def frames() -> AsyncIterator[bytes]:
        for chunk in (b"GGUF", b"rest"):
            consumed.append(chunk)
            yield chunk

    with pytest.raises(werr.ModeldError) as ei:
        await store.remove_model(name)
    assert werr.status_for(ei.value)[:2] == (13, BAD_NAME.format(q=f'"{name}"'))
    with pytest.raises(werr.ModeldError) as ei:
        await store.receive_model(pb.PushManifest(name=name, type="llama", format="file"), frames())
    assert werr.status_for(ei.value)[:2] == (13, BAD_NAME.format(q=f'"{name}"'))
    assert consumed == [] and tree(str(tmp_path)) == before
    # a plain name still works both ways
    resp = await store.receive_model(
        pb.PushManifest(name="ok", type="llama", format="file"), iter_bytes(b"x")
    )
    assert resp.bytes_written == 1 and os.path.isfile(tmp_path / "models" / "ok" / "model.gguf")
    await store.remove_model("ok")
    assert not os.path.exists(tmp_path / "models" / "ok")


def test_resolve_never_leaves_the_models_directory(tmp_path: Path) -> None:
    store = ModelStore.for_data_root(str(tmp_path))
    write_fake_gguf(str(tmp_path / "model.gguf"))  # <models>/../model.gguf
    (tmp_path / "openvino_model.xml").write_text("<xml/>")
    write_fake_gguf(str(tmp_path / "models" / "keep" / "model.gguf"))
    for name in ("..", ".", "keep/..", "../models/keep", "a\x00b"):
        with pytest.raises(werr.ModelNotFound) as ei:
            store.resolve(name, "llama")
        assert str(ei.value) == f"model not found in modeld's local store: {name} (llama)"
        with pytest.raises(werr.ModelNotFound):
            store.resolve(name, "openvino")
    assert store.resolve("keep", "llama") == str(tmp_path / "models" / "keep" / "model.gguf")
