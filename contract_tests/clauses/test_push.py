"""C-PUSH: PushModel — the runtime streams a model's bytes into the node's store.

The connector opens one client stream to the owner, fenced to it; the first frame carries the owner
and the manifest (name, type, digest, size, format) — and the first bytes, if any —, later frames the
rest in order, in frames of at most 4 MiB. The node verifies the bytes against the manifest's digest
and installs the model atomically under its name, or answers ``already_present`` when that name
already holds those bytes. A push the node rejects (wrong digest, a type it does not know) surfaces
the node's error and installs nothing; so does a push whose source fails part-way (an error of the
caller's side: no daemon verdict). Checked against the node's own store on disk.

Every clause against a connector without ``push_model`` is not applicable.

Sources: wire.md (PushModel: client stream, manifest on the first frame); transport/grpc client.go
PushModel, transport/nodeadmin.go PushManifest (v0.36.0); session-semantics.md §3.1 (the store)."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import pytest
from modeld_contract.applicability import not_applicable
from modeld_contract.clauses._util import binary_env, optional, raises_kind
from modeld_contract.connectors.extensions import failing_push
from modeld_contract.connectors.protocol import HARNESS_TIMEOUT, SENTINEL_KINDS

clause = pytest.mark.clause
T = 30.0
FRAME = 4 << 20
_SRC = "wire.md (PushModel); transport/grpc client.go PushModel"


def _body(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored(env: Any, name: str) -> bytes | None:
    """What the node's store holds under ``name`` (a pushed llama model is ``<name>/model.gguf``)."""
    try:
        with open(os.path.join(env.target.data_root, "models", name, "model.gguf"), "rb") as f:
            return f.read()
    except OSError:
        return None


def _absent(env: Any, name: str) -> None:
    assert not os.path.exists(os.path.join(env.target.data_root, "models", name)), (
        f"nothing may be installed under {name!r}"
    )
    names = [m.get("name") for m in env.conn.list_models(timeout=T)]
    assert name not in names, f"{name!r} must not be listed, got {names}"


@clause("C-PUSH-01", source=_SRC)
@pytest.mark.needs_scripting
def test_C_PUSH_01_push_installs_the_bytes(modeld_scripted: Any) -> None:
    """The node's store holds exactly the pushed bytes under the name; the answer counts them; the
    node lists the model with their digest and size."""
    env = modeld_scripted
    data = _body(70_001, 1)
    out = optional(env.conn, "push_model")("pushed-one", "llama", data, _sha(data), timeout=T)
    assert _stored(env, "pushed-one") == data, "the store must hold exactly the pushed bytes"
    assert int(out.get("bytes_written", 0)) == len(data) and not out.get("already_present"), out
    listed = {m.get("name"): m for m in env.conn.list_models(timeout=T)}
    m = listed.get("pushed-one")
    assert m is not None, f"the pushed model is not listed: {sorted(listed)}"
    assert (m.get("digest"), int(m.get("size_bytes", 0))) == (_sha(data), len(data)), m


@clause("C-PUSH-02", source=_SRC + "; transport/nodeadmin.go PushResult.AlreadyPresent")
@pytest.mark.needs_scripting
def test_C_PUSH_02_same_bytes_again_are_already_present(modeld_scripted: Any) -> None:
    """The same name and bytes pushed again: already_present, and the store keeps the model."""
    env = modeld_scripted
    push = optional(env.conn, "push_model")
    data = _body(5_000, 2)
    first = push("pushed-twice", "llama", data, _sha(data), timeout=T)
    again = push("pushed-twice", "llama", data, _sha(data), timeout=T)
    assert not first.get("already_present") and again.get("already_present") is True, (first, again)
    assert int(again.get("bytes_written", 0)) == len(data), again
    assert _stored(env, "pushed-twice") == data


@clause("C-PUSH-03", source=_SRC + "; wire.md §9.1 (digest_mismatch)")
@pytest.mark.needs_scripting
def test_C_PUSH_03_wrong_digest(modeld_scripted: Any) -> None:
    """Bytes that do not match the manifest's digest: digest_mismatch, and nothing is installed."""
    env = modeld_scripted
    data = _body(9_000, 3)
    push = optional(env.conn, "push_model")
    err = raises_kind(lambda: push("pushed-bad", "llama", data, _sha(b"other bytes"), timeout=T))
    assert err.kind == "digest_mismatch", err
    _absent(env, "pushed-bad")


@clause("C-PUSH-04", source=_SRC + " (pushChunkBytes: 4 MiB frames)")
@pytest.mark.needs_scripting
def test_C_PUSH_04_content_over_several_frames(modeld_scripted: Any) -> None:
    """Content longer than one frame arrives whole and in order."""
    env = modeld_scripted
    data = _body(FRAME + 12_345, 4)
    out = optional(env.conn, "push_model")("pushed-big", "llama", data, _sha(data), timeout=T)
    assert int(out.get("bytes_written", 0)) == len(data), out
    assert _stored(env, "pushed-big") == data, "the frames must be reassembled exactly, in order"


@clause("C-PUSH-05", source=_SRC + " (the first frame carries the manifest even without data)")
@pytest.mark.needs_scripting
def test_C_PUSH_05_empty_content_still_sends_the_manifest(modeld_scripted: Any) -> None:
    """A push of no bytes still carries its manifest: the node installs an empty model."""
    env = modeld_scripted
    out = optional(env.conn, "push_model")("pushed-empty", "llama", b"", _sha(b""), timeout=T)
    assert int(out.get("bytes_written", 0)) == 0 and not out.get("already_present"), out
    assert _stored(env, "pushed-empty") == b""


@clause("C-PUSH-06", source=_SRC + "; wire.md §9.1 (unsupported_model_type)")
@pytest.mark.needs_scripting
def test_C_PUSH_06_rejected_push_over_several_frames(modeld_scripted: Any) -> None:
    """The node rejects the manifest (a type it does not know) while the content still spans several
    frames: the caller gets the node's error, and nothing is installed."""
    env = modeld_scripted
    data = _body(2 * FRAME + 1, 6)
    push = optional(env.conn, "push_model")
    err = raises_kind(lambda: push("pushed-weird", "safetensors", data, _sha(data), timeout=T))
    assert err.kind == "unsupported_model_type", err
    _absent(env, "pushed-weird")


@clause("C-PUSH-07", source=_SRC + " (read model content: the caller's source fails)")
@pytest.mark.needs_scripting
def test_C_PUSH_07_source_fails_part_way(modeld_scripted: Any) -> None:
    """The caller's source fails after some bytes: the push fails (no daemon verdict), nothing is
    installed, and the next push works."""
    env = modeld_scripted
    ext = failing_push(env.conn)
    if ext is None:
        not_applicable("the connector's push takes no source that can fail (fail_after)")
    data = _body(20_000, 7)
    err = raises_kind(
        lambda: ext.push_model("pushed-broken", "llama", data, _sha(data), timeout=T, fail_after=5_000)
    )
    assert err.kind != HARNESS_TIMEOUT, f"the push did not end: {err}"
    assert not any(err.matches(t) for t in SENTINEL_KINDS), f"no daemon judged this push: {err}"
    _absent(env, "pushed-broken")
    out = optional(env.conn, "push_model")("pushed-after", "llama", data, _sha(data), timeout=T)
    assert int(out.get("bytes_written", 0)) == len(data) and _stored(env, "pushed-after") == data


@clause("C-PUSH-08", source=_SRC + "; lease-and-discovery.md §7 (the probe's typed errors)")
def test_C_PUSH_08_no_daemon(modeld_connector: Any, modeld_data_root: str) -> None:
    """A push with no daemon running fails with the probe's typed error: not-installed without a
    binary, not-running with one and no lease."""
    push = optional(modeld_connector, "push_model")
    data = b"nobody will take these bytes"
    for present, want in ((False, "not-installed"), (True, "not-running")):
        modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, present))
        err = raises_kind(lambda: push("pushed-nowhere", "llama", data, _sha(data), timeout=T))
        assert err.kind == want, (
            f"binary {'present' if present else 'absent'}, no lease: want {want}, got {err}"
        )
