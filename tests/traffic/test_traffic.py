"""Our connector sends what the real Go connector sends (issue "modeldconn sends what the real Go
connector sends"; docs/conformance/go-modeldconn.md).

The walk of ``go-connector.api.jsonl`` is made by our connector (``traffic_walk``) against the
simulator (backend llama) through a byte-exact relay (``traffic_relay``); every RPC it sends is
compared with the Go connector's RPC at the same place of ``go-connector.wire.jsonl``, call by
call: method and path, the request body after the recordings' normalisation as decoded JSON with
its key order and JSON types, the fence header, the content-type, the other headers, the framing.

Allowed differences, exactly these (each explained in docs/conformance/go-modeldconn.md):

* Restore's ``snapshot`` is whatever the target's Snapshot returned: checked to be sent back
  unchanged (byte-identical JSON value), not compared with the Go daemon's snapshot;
* ``grpc-timeout`` on ExplainContext and CloseSession (Go sends none there);
* the Health probe rides on the cached connection (Go dials a fresh connection per probe);
* ``user-agent`` names grpclib, and the regular headers come in grpclib's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from traffic_relay import GO_DIR, RPC, first_difference, go_api, go_wire, normalise, read_jsonl, typed
from traffic_walk import STEPS, Walk, go_rpcs_by_call, run_walk

import modeldconn as mc
from modeldconn.wire import codec
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.fence import CONTENT_TYPE, FENCE_HEADER

#: Go sends these two without a deadline (their signatures take no context); we send one.
NO_DEADLINE_IN_GO = frozenset({"ExplainContext", "CloseSession"})
PSEUDO = (":method", ":scheme", ":path", ":authority")
#: The headers a request carries; ``user-agent`` is compared for presence only.
REGULAR = {"content-type", "user-agent", "te", "grpc-timeout", FENCE_HEADER}


@pytest.fixture(scope="module")
def walk() -> Iterator[Walk]:
    yield run_walk()


@pytest.fixture(scope="module")
def go_by_call(walk: Walk) -> dict[str, list[dict[str, Any]]]:
    return go_rpcs_by_call(walk, go_wire())


def _method(g: dict[str, Any]) -> str:
    return str(dict(g["client_headers"])[":path"]).rsplit("/", 1)[-1]


def _headers(rpc: RPC, walk: Walk) -> list[tuple[str, str]]:
    """Our request headers with the recordings' placeholders (``grpc-timeout`` → ``<set>``)."""
    out = []
    for k, v in rpc.client_headers:
        v = normalise(v, walk.subs)
        out.append((k, "<set>" if k == "grpc-timeout" else v))
    return out


def _snapshot_rpc(walk: Walk) -> RPC:
    (snap,) = walk.outcome("Snapshot").rpcs
    return snap


# ----------------------------------------------------------------------------- the walk as a whole


def test_traffic_walk_covers_every_api_call() -> None:
    assert [s for s, _ in STEPS] == [line["call"] for line in go_api()]


def test_traffic_same_rpc_sequence(walk: Walk) -> None:
    ours = [r.method for r in walk.rpcs]
    theirs = [_method(g) for g in go_wire()]
    assert ours == theirs


def test_traffic_health_probe_rides_on_the_cached_connection(walk: Walk) -> None:
    """The documented difference: Go opens 14 connections (13 for one Health each, closed after
    it; one cached for the fenced calls), we open one, and each probe is on it."""
    go = read_jsonl(GO_DIR / "go-connector.wire.jsonl")
    assert sum(1 for d in go if "connection_opened" in d) == 14
    go_health_conns = [d["conn"] for d in go if "conn" in d and _method(d) == "Health"]
    assert len(set(go_health_conns)) == len(go_health_conns) == 13
    assert walk.connections == 1
    assert {r.conn for r in walk.rpcs} == {1}


# ----------------------------------------------------------------------------- call by call

CALLS = [line["call"] for line in go_api()]


@pytest.mark.parametrize("call", CALLS)
def test_traffic_call_sends_what_go_sends(
    call: str, walk: Walk, go_by_call: dict[str, list[dict[str, Any]]]
) -> None:
    ours = walk.outcome(call).rpcs
    theirs = go_by_call[call]
    assert [r.method for r in ours] == [_method(g) for g in theirs]
    problems: list[str] = []
    for mine, go in zip(ours, theirs, strict=True):
        problems += _compare(mine, go, walk)
    assert problems == []


def _compare(mine: RPC, go: dict[str, Any], walk: Walk) -> list[str]:
    m = mine.method
    p: list[str] = []
    hdrs = _headers(mine, walk)
    gh: list[tuple[str, str]] = [(k, v) for k, v in go["client_headers"]]
    # pseudo-headers: first, in Go's order, same values (the :authority is the relay in both)
    if [h for h in hdrs if h[0].startswith(":")] != [h for h in gh if h[0].startswith(":")]:
        p.append(f"{m}: pseudo-headers {hdrs[:4]} != {gh[:4]}")
    if [k for k, _ in hdrs[:4]] != list(PSEUDO):
        p.append(f"{m}: pseudo-headers not first: {hdrs}")
    mine_regular = {k: v for k, v in hdrs if not k.startswith(":")}
    go_regular = {k: v for k, v in gh if not k.startswith(":")}
    if len(mine_regular) != len([h for h in hdrs if not h[0].startswith(":")]):
        p.append(f"{m}: a header sent twice: {hdrs}")
    allowed_extra = {"grpc-timeout"} if m in NO_DEADLINE_IN_GO else set()
    if set(mine_regular) - set(go_regular) - allowed_extra or set(go_regular) - set(mine_regular):
        p.append(f"{m}: header names {sorted(mine_regular)} != {sorted(go_regular)}")
    if not set(mine_regular) <= REGULAR:
        p.append(f"{m}: unexpected headers {sorted(set(mine_regular) - REGULAR)}")
    for k in ("content-type", "te", FENCE_HEADER, "grpc-timeout"):
        if k in go_regular and mine_regular.get(k) != go_regular[k]:
            p.append(f"{m}: {k}: {mine_regular.get(k)!r} != {go_regular[k]!r}")
    if mine_regular.get("content-type") != CONTENT_TYPE:
        p.append(f"{m}: content-type {mine_regular.get('content-type')!r}")
    if m in NO_DEADLINE_IN_GO and "grpc-timeout" not in mine_regular:
        p.append(f"{m}: sent without a deadline (we always send one)")
    if "user-agent" not in mine_regular:
        p.append(f"{m}: no user-agent")
    # framing: one DATA frame carrying the one message, the stream ended by the client
    if (mine.client_data_frames, mine.client_ended) != (go["client_data_frames"], go["client_ended"]):
        p.append(
            f"{m}: framing {mine.client_data_frames} frames ended={mine.client_ended} != "
            f"{go['client_data_frames']} ended={go['client_ended']}"
        )
    if mine.reset:
        p.append(f"{m}: the stream was reset")
    if bytes(mine.client_body[:1]) != b"\x00":
        p.append(f"{m}: compressed-flag {bytes(mine.client_body[:1])!r} (Go sends uncompressed messages)")
    # the body, as decoded JSON with key order and types
    bodies = normalise(mine.client_messages, walk.subs)
    expected = go["client_messages"]
    if m == "Restore":
        p += _compare_restore(mine, go, walk)
    elif typed(bodies) != typed(expected):
        p.append(f"{m}: body differs at {first_difference(bodies, expected)}")
    # the same walk: the daemon answered with the same status
    go_status = dict(go.get("server_trailers") or go["server_headers"]).get("grpc-status")
    if mine.status()[0] != go_status:
        p.append(f"{m}: grpc-status {mine.status()} != {go_status}")
    return p


def _compare_restore(mine: RPC, go: dict[str, Any], walk: Walk) -> list[str]:
    """Restore by nature: the snapshot is the one our target's Snapshot answered, sent back
    unchanged (same JSON value, key order and types); everything around it as Go."""
    p: list[str] = []
    (body,) = mine.client_messages
    (gbody,) = go["client_messages"]
    if list(body) != list(gbody):
        p.append(f"Restore: keys {list(body)} != {list(gbody)}")
    if normalise(body.get("handle"), walk.subs) != gbody.get("handle"):
        p.append(f"Restore: handle {body.get('handle')!r}")
    (snapshot_answer,) = _snapshot_rpc(walk).server_messages
    if typed(body.get("snapshot")) != typed(snapshot_answer):
        p.append(
            "Restore: snapshot not sent back unchanged: "
            f"{first_difference(body.get('snapshot'), snapshot_answer)}"
        )
    return p


def test_traffic_go_restore_sends_back_its_snapshot_too() -> None:
    """The recording shows the same rule on the Go side (so the exception is by nature)."""
    go = go_wire()
    (snap,) = [g for g in go if _method(g) == "Snapshot"]
    (restore,) = [g for g in go if _method(g) == "Restore"]
    assert typed(restore["client_messages"][0]["snapshot"]) == typed(snap["server_messages"][0])


def test_traffic_restore_snapshot_is_byte_identical(walk: Walk) -> None:
    """Stronger than the JSON value: the snapshot's bytes inside Restore's body are the bytes of
    Snapshot's answer (Go re-encodes the struct it decoded; so do we, to the same bytes)."""
    (restore,) = walk.outcome("Restore").rpcs
    answer = bytes(_snapshot_rpc(walk).server_body)[5:]
    sent = bytes(restore.client_body)[5:]
    assert answer in sent


#: A snapshot with every field of ``transport.SessionSnapshot`` set (Go's JSON, Go's key order).
FULL_SNAPSHOT: dict[str, Any] = {
    "state_id": "ab" * 32,
    "resident_tokens": 17,
    "prefix_tokens": 9,
    "num_ctx": 128,
    "resident_token_ids": [256, 257, 0, 9007199254740993],
    "cold_kv_blocks": [
        {
            "start": 4,
            "end": 8,
            "tokens": [1, 2, 3, 4],
            "prefix_tokens": [1, 2],
            "token_hash": "cd" * 32,
            "kv": "AAEC/w==",
            "cache_class": "warm",
            "last_used": -3,
        },
        {"start": 9},
    ],
    "stable_text": "hello \u00e9\U0001f600 <tag> & \u2028",
    "prefix_text": "hello",
    "tools": '[{"name":"x"}]',
    "manifest": {
        "profile_id": "p",
        "backend": "llama",
        "backend_version": "v",
        "model_digest": "sha256:00",
        "prompt_format": "chatml",
        "prompt_template_digest": "t",
        "runtime_digest": "r",
        "add_bos": True,
        "stable_bytes": 5,
        "total_bytes": 11,
        "stable_byte_hash": "h",
        "stable_token_hash": "s",
        "volatile_token_hash": "v",
        "segments": [
            {
                "kind": "system",
                "stable": True,
                "cache_class": "c",
                "invalidation": "i",
                "byte_start": 0,
                "byte_end": 5,
                "byte_hash": "b",
                "token_start": 1,
                "token_end": 3,
                "token_hash": "t",
                "tool_calls_json": "[]",
                "tool_call_id": "id",
            },
            {"kind": "user", "stable": False, "byte_start": 5, "byte_end": 11, "byte_hash": ""},
        ],
    },
}


@pytest.mark.parametrize("source", ["go-daemon", "all-fields"])
def test_traffic_restore_sends_any_snapshot_back_unchanged(source: str) -> None:
    """The path Restore takes (SessionSnapshot.from_pb → to_pb → the codec) keeps a snapshot's
    JSON value: the Go daemon's recorded one, and one with every field set."""
    if source == "go-daemon":
        (snap,) = [g for g in go_wire() if _method(g) == "Snapshot"]
        answer = snap["server_messages"][0]
    else:
        answer = FULL_SNAPSHOT
    raw = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
    snapshot = mc.SessionSnapshot.from_pb(codec.decode(pb.SessionSnapshot, raw))
    body = json.loads(codec.encode(pb.RestoreReq(handle="h", snapshot=snapshot.to_pb())))
    assert list(body) == ["handle", "snapshot"]
    assert first_difference(body["snapshot"], answer) is None


# ----------------------------------------------------------------------------- results (same walk)

#: Results that do not depend on the engine's tokenizer (the fake engine is not llama.cpp).
SAME_RESULT = {
    "Available",
    "Backend",
    "ServeableBackend",
    "Status",
    "Describe",
    "OpenSession",
    "Decode",
    "Snapshot",
    "Restore",
    "Close",
    "Close.again",
    "OpenSession.switch",
    "Close.switch",
    "Embed",
    "LoadModel",
    "UnloadModel",
}


@pytest.mark.parametrize("call", sorted(SAME_RESULT))
def test_traffic_call_result_as_go_saw_it(call: str, walk: Walk) -> None:
    (line,) = [d for d in go_api() if d["call"] == call]
    o = walk.outcome(call)
    assert o.error is None
    result = normalise(o.result, walk.subs)
    if call in ("OpenSession", "OpenSession.switch"):
        result = None  # Go's program logged no value for a session
    assert typed(result) == typed(line.get("result"))
