"""Golden vectors (tests/vectors/*.jsonl, produced by Go 1.26 encoding/json): both ways."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from modeldconn.wire import codec
from modeldconn.wire._gen.contenox.gojson.v1 import gojson_pb2
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    with open(VECTORS / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _input(rec: dict[str, Any]) -> bytes:
    if "input_b64" in rec:
        return base64.b64decode(rec["input_b64"])
    if "input_repeat" in rec:
        unit, count = rec["input_repeat"]
        return str(unit).encode() * int(count)
    return str(rec["input"]).encode("utf-8")


# Known limit (protobuf has no nil-vs-empty slice): Go writes a non-nil empty slice
# of a field without omitempty as [], we write every empty one as null (the nil
# form, which is what Go's own zero values carry).
_EMPTY_NON_OMIT = re.compile(r'"(TensorSplit|ParserProtocols)":\[\]')


def _expected(go_json: str) -> bytes:
    return _EMPTY_NON_OMIT.sub(lambda m: f'"{m.group(1)}":null', go_json).encode("utf-8")


def _cls(name: str) -> type[Message]:
    cls: type[Message] = getattr(pb, name)
    return cls


MESSAGES = _load("messages.jsonl")
DECODES = _load("decode.jsonl")
ERRORS = _load("errors.jsonl")
HASHES = _load("hashes.jsonl")


def _oracle_message(cls: type[Message], value: Any) -> Message:
    """An independent builder: Go's canonical JSON (parsed by Python's json) -> message."""
    msg = cls()
    if value is None:
        return msg
    for fd in msg.DESCRIPTOR.fields:
        if fd.json_name not in value:
            continue
        v = value[fd.json_name]
        if v is None:
            continue
        if fd.is_repeated:
            if fd.message_type is not None:
                for item in v:
                    elem = getattr(msg, fd.name).add()
                    if item is not None:
                        elem.MergeFrom(_oracle_message(type(elem), item))
            elif fd.type == fd.TYPE_BYTES:  # pragma: no cover
                getattr(msg, fd.name).extend(base64.b64decode(x) for x in v)
            else:
                getattr(msg, fd.name).extend(v)
        elif fd.message_type is not None:
            sub = getattr(msg, fd.name)
            built = _oracle_message(type(sub), v)
            if fd.GetOptions().Extensions[gojson_pb2.pointer]:
                sub.SetInParent()  # a non-nil Go pointer
            if built.ListFields():
                sub.MergeFrom(built)
        elif fd.type == fd.TYPE_BYTES:
            setattr(msg, fd.name, base64.b64decode(v))
        else:
            setattr(msg, fd.name, v)
    return msg


@pytest.mark.parametrize("rec", MESSAGES, ids=[f"{r['message']}.{r['case']}" for r in MESSAGES])
def test_vectors_message_both_ways(rec: dict[str, Any]) -> None:
    cls = _cls(rec["message"])
    data = rec["json"].encode("utf-8")
    msg = codec.decode(cls, data)
    assert msg == _oracle_message(cls, json.loads(data))
    assert codec.encode(msg) == _expected(rec["json"])


@pytest.mark.parametrize("rec", DECODES, ids=[f"{r['message']}.{r['case']}" for r in DECODES])
def test_vectors_decode_noncanonical(rec: dict[str, Any]) -> None:
    cls = _cls(rec["message"])
    msg = codec.decode(cls, _input(rec))
    assert codec.encode(msg) == _expected(rec["json"])


@pytest.mark.parametrize("rec", ERRORS, ids=[f"{r['message']}.{r['case']}" for r in ERRORS])
def test_vectors_decode_error(rec: dict[str, Any]) -> None:
    cls = _cls(rec["message"])
    with pytest.raises(codec.GoJSONError) as info:
        codec.decode(cls, _input(rec))
    assert str(info.value) == rec["error"]
    if info.value.kind == "type" and " struct field " in rec["error"]:
        assert info.value.field is not None
        assert rec["error"].endswith(f".{info.value.field} of type {info.value.go_type}")


@pytest.mark.parametrize("rec", HASHES, ids=[f"{r['kind']}{i}" for i, r in enumerate(HASHES)])
def test_vectors_hashes(rec: dict[str, Any]) -> None:
    if rec["kind"] == "manifest_digest":
        m = codec.decode(pb.ContextManifest, rec["manifest"].encode("utf-8"))
        assert codec.manifest_digest(m) == rec["digest"]
    else:
        assert codec.token_hash(rec["tokens"]) == rec["hash"]


def test_vectors_doc_digests_present() -> None:
    digests = {r.get("digest") for r in HASHES}
    assert "abe264bc8c2168c7509dda32a15adb36a0b7462317b1db5837dba184129de1ba" in digests
    assert "50439d8d043817a48f0bac9623ced782b733aa5ea958c755f47047f72ff24952" in digests
    hashes = {r.get("hash") for r in HASHES}
    assert "e2e2033ae7e19d680599d4eb0a1359a2b48ec5baac75066c317fbf85159c54ef" in hashes
    assert "12a3ae445661ce5dee78d0650d33362dec29c4f82af05e7e57fb595bbbacf0ca" in hashes


def test_vectors_cover_every_message() -> None:
    covered = {r["message"] for r in MESSAGES}
    expected = {n for n in pb.DESCRIPTOR.message_types_by_name if n != "ToolCallFunction"}
    assert expected <= covered
