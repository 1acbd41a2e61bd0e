"""The sentinel table and status <-> exception, both ways (wire.md §9)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given
from hypothesis import strategies as hs
from modeld_contract.corpus import observed

from modeldconn.wire import errors as E

# Independent oracle, typed in from wire.md §9.1 (token -> (code, sentinel text)), in order.
ORACLE: list[tuple[str, int, str]] = [
    ("context_canceled", 1, "context canceled"),
    ("deadline_exceeded", 4, "context deadline exceeded"),
    ("stale_fence", 9, "stale owner fence token"),
    ("not_owner", 9, "instance is not the local runtime owner"),
    ("session_closed", 9, "session is closed"),
    ("context_overflow", 8, "exceeded the session context window"),
    ("session_fatal", 10, "session marked fatal; evict and reopen"),
    ("model_busy", 9, "modeld active model slot is busy"),
    ("model_not_active", 9, "requested model is not active in modeld"),
    ("model_switch_required", 9, "modeld active model slot must be switched"),
    ("device_busy", 8, "modeld accelerator device is busy"),
    ("model_load_failed", 13, "modeld failed to load model"),
    ("insufficient_memory", 8, "insufficient memory for requested model"),
    ("slot_generation_stale", 9, "stale modeld slot generation"),
    ("backend_mismatch", 9, "model type not served by this modeld backend"),
    ("unsupported_feature", 12, "unsupported transport feature"),
    ("manifest_mismatch", 9, "contextasm: context manifest mismatch"),
    ("model_not_found", 5, "model not found in modeld's local store"),
    ("digest_mismatch", 9, "model content digest mismatch"),
    ("unsupported_model_type", 3, "unsupported model backend type"),
]
ORACLE_BY_TOKEN = {t: (c, s) for t, c, s in ORACLE}

CLASSES: dict[str, type[E.SentinelError]] = {
    "context_canceled": E.Canceled,
    "deadline_exceeded": E.DeadlineExceeded,
    "stale_fence": E.StaleFence,
    "not_owner": E.NotOwner,
    "session_closed": E.SessionClosed,
    "context_overflow": E.ContextOverflow,
    "session_fatal": E.SessionFatal,
    "model_busy": E.ModelBusy,
    "model_not_active": E.ModelNotActive,
    "model_switch_required": E.ModelSwitchRequired,
    "device_busy": E.DeviceBusy,
    "model_load_failed": E.ModelLoadFailed,
    "insufficient_memory": E.InsufficientMemory,
    "slot_generation_stale": E.SlotGenerationStale,
    "backend_mismatch": E.BackendMismatch,
    "unsupported_feature": E.UnsupportedFeature,
    "manifest_mismatch": E.ManifestMismatch,
    "model_not_found": E.ModelNotFound,
    "digest_mismatch": E.DigestMismatch,
    "unsupported_model_type": E.UnsupportedModelType,
}


def test_table_matches_wire_md() -> None:
    assert [(s.token, s.code, s.text) for s in E.SENTINELS] == ORACLE


@pytest.mark.parametrize("token", [t for t, _, _ in ORACLE])
def test_every_sentinel_round_trips(token: str) -> None:
    cls = CLASSES[token]
    exc = cls() if token != "manifest_mismatch" else E.ManifestMismatch("stable prefix changed")
    code, msg, details = E.status_for(exc)
    assert code == ORACLE_BY_TOKEN[token][0]
    assert msg == f"{token}: {exc}"
    assert details is None
    back = E.error_from_status(code, msg, details)
    assert type(back) is cls
    assert (back.token, back.code, back.server_message) == (token, code, msg)
    if isinstance(back, E.ManifestMismatch):
        assert isinstance(exc, E.ManifestMismatch)
        assert back.reason == exc.reason == "stable prefix changed"
        assert str(back) == str(exc)
    else:
        assert back.detail == str(exc)
        assert str(back) == f"{ORACLE_BY_TOKEN[token][1]}: {exc}"
    # in-stream too
    text, tok, det = E.chunk_error_fields(exc)
    assert (text, tok, det) == (str(exc), token, None)
    chunk = E.error_from_chunk(text, tok, det)
    assert type(chunk) is cls


def test_overflow_round_trip_with_error_info() -> None:
    exc = E.ContextOverflow(stage="prefix", resident_tokens=0, additional_tokens=300, num_ctx=128)
    assert str(exc) == (
        "exceeded the session context window during prefix: resident_tokens=0 "
        "additional_tokens=300 num_ctx=128"
    )
    code, msg, details = E.status_for(exc)
    assert (code, msg) == (8, f"context_overflow: {exc}")
    assert details is not None
    st = status_pb2.Status.FromString(details)
    assert (st.code, st.message, len(st.details)) == (8, msg, 1)
    assert st.details[0].type_url == "type.googleapis.com/google.rpc.ErrorInfo"
    info = error_details_pb2.ErrorInfo.FromString(st.details[0].value)
    assert (info.reason, info.domain) == ("context_overflow", "contenox.transport")
    assert dict(info.metadata) == {
        "stage": "prefix",
        "resident_tokens": "0",
        "additional_tokens": "300",
        "num_ctx": "128",
    }
    back = E.error_from_status(code, msg, details)
    assert isinstance(back, E.ContextOverflow)
    assert (back.stage, back.resident_tokens, back.additional_tokens, back.num_ctx) == ("prefix", 0, 300, 128)
    assert str(back) == str(exc)
    # in-stream
    text, tok, det = E.chunk_error_fields(exc)
    assert (text, tok, det) == (str(exc), "context_overflow", E.OverflowDetail("prefix", 0, 300, 128))
    again = E.error_from_chunk(text, tok, {"stage": "prefix", "additional_tokens": 300, "num_ctx": 128})
    assert isinstance(again, E.ContextOverflow) and again.detail_fields == det


def test_overflow_lenient_error_info() -> None:
    def details(md: dict[str, str], reason: str = "context_overflow") -> bytes:
        info = error_details_pb2.ErrorInfo(reason=reason, domain="other", metadata=md)
        st = status_pb2.Status(code=8, message="x")
        st.details.add().Pack(info)
        return st.SerializeToString()

    msg = "context_overflow: whatever"
    b = E.error_from_status(8, msg, details({"stage": "decode", "num_ctx": "x1"}))
    assert isinstance(b, E.ContextOverflow) and b.typed and (b.stage, b.num_ctx) == ("decode", 0)
    b = E.error_from_status(8, msg, details({"num_ctx": "abc"}))
    assert isinstance(b, E.ContextOverflow) and not b.typed
    assert str(b) == "exceeded the session context window: whatever"
    b = E.error_from_status(8, msg, details({"stage": "s"}, reason="other"))
    assert isinstance(b, E.ContextOverflow) and not b.typed
    b = E.error_from_status(8, msg, b"\xff\xff garbage")
    assert isinstance(b, E.ContextOverflow) and not b.typed


def test_manifest_mismatch_prefix_trimming() -> None:
    msg = (
        "manifest_mismatch: contextasm: context manifest mismatch: contextasm: context manifest mismatch: "
        "stable prefix changed between EnsurePrefix and PrefillSuffix"
    )
    b = E.error_from_status(9, msg, None)
    assert isinstance(b, E.ManifestMismatch)
    assert b.reason == "stable prefix changed between EnsurePrefix and PrefillSuffix"
    assert str(b) == "contextasm: context manifest mismatch: " + b.reason
    assert E.ManifestMismatch("contextasm: context manifest mismatch").reason == ""
    assert str(E.ManifestMismatch("")) == "contextasm: context manifest mismatch"


def test_wrapping_first_row_wins() -> None:
    of = E.ContextOverflow(stage="load", resident_tokens=1, additional_tokens=2, num_ctx=3)
    lf = E.ModelLoadFailed.wrapping(of)
    code, msg, details = E.status_for(lf)
    assert code == 8 and msg == f"context_overflow: modeld failed to load model: {of}" and details is not None
    bm = E.ModelLoadFailed.wrapping(E.BackendMismatch('requested "openvino", this daemon serves llama'))
    assert isinstance(bm, E.BackendMismatchLoadFailed)
    code, msg, _ = E.status_for(bm)
    assert code == 13
    assert msg == (
        "model_load_failed: modeld failed to load model: model type not served by this "
        'modeld backend: requested "openvino", this daemon serves llama'
    )
    im = E.ModelLoadFailed.wrapping(E.InsufficientMemory("need 9 GiB"))
    assert E.status_for(im)[1].startswith("model_load_failed: ")


def test_backend_mismatch_load_failed_decoding() -> None:
    msg = (
        "model_load_failed: modeld failed to load model: model type not served by this modeld backend: "
        'requested "openvino", this daemon serves llama'
    )
    b = E.error_from_status(13, msg)
    assert isinstance(b, E.ModelLoadFailed) and isinstance(b, E.BackendMismatch)
    none_msg = (
        "model_load_failed: modeld failed to load model: modeld: no local inference backend compiled "
        "in this build (build with -tags 'openvino openvino_genai' or -tags llamanode)"
    )
    n = E.error_from_status(13, none_msg)
    assert type(n) is E.ModelLoadFailed and not isinstance(n, E.BackendMismatch)


def test_unknown_errors_are_internal_with_message_kept() -> None:
    assert E.status_for(RuntimeError("modelstore: empty model name")) == (
        13,
        "internal: modelstore: empty model name",
        None,
    )
    b = E.error_from_status(13, "internal: modelstore: empty model name")
    assert isinstance(b, E.InternalError) and b.text == "modelstore: empty model name"
    assert b.server_message == "internal: modelstore: empty model name"
    assert str(b) == "rpc error: code = Internal desc = internal: modelstore: empty model name"
    g = E.error_from_status(13, "grpc: error unmarshalling request: unexpected end of JSON input")
    assert isinstance(g, E.InternalError) and g.message == g.server_message
    t = E.error_from_status(12, "unknown method Nope for service contenox.transport.v1.Compute")
    assert type(t) is E.TransportError and t.code == 12
    assert str(t) == (
        "rpc error: code = Unimplemented desc = unknown method Nope for service contenox.transport.v1.Compute"
    )
    assert E.status_for(t) == (12, t.message, None)
    local = E.InternalError("handler Health panicked: boom")
    assert E.status_for(local) == (13, "internal: handler Health panicked: boom", None)
    assert E.error_from_status(*E.status_for(local)).text == local.text  # type: ignore[attr-defined]


def test_unknown_token_canceled_and_deadline_codes() -> None:
    c = E.error_from_status(1, "context canceled")
    assert isinstance(c, E.Canceled) and str(c) == "context canceled: context canceled"
    d = E.error_from_status(4, "context deadline exceeded")
    assert isinstance(d, E.DeadlineExceeded)


def test_chunk_errors() -> None:
    assert E.error_from_chunk("", "session_closed", None) is None
    s = E.error_from_chunk("boom", None, None)
    assert isinstance(s, E.StreamError) and str(s) == "boom"
    s2 = E.error_from_chunk("boom", "nope", None)
    assert isinstance(s2, E.StreamError)
    assert E.chunk_error_fields(ValueError("x")) == ("x", None, None)


def test_decode_error() -> None:
    e = E.DecodeError("config.NumCtx", "int", "string")
    assert (e.field, e.expected) == ("config.NumCtx", "int")
    assert "config.NumCtx" in str(e) and "int" in str(e)


# --- the real Go connector's recorded errors -------------------------------------------------------


def _wire_errors() -> list[tuple[int, str, bytes | None]]:
    out = []
    for line in observed("go-connector.wire.jsonl").read_text().splitlines():
        d = json.loads(line)
        hdrs = (d.get("server_headers") or []) + (d.get("server_trailers") or [])
        h = {k: v for k, v in hdrs}
        if h.get("grpc-status", "0") == "0":
            continue
        det = h.get("grpc-status-details-bin")
        out.append((int(h["grpc-status"]), h["grpc-message"], _details_from_json(det) if det else None))
    return out


def _details_from_json(d: dict[str, Any]) -> bytes:
    st = status_pb2.Status(code=d["code"], message=d["message"])
    for x in d["details"]:
        info = error_details_pb2.ErrorInfo(reason=x["reason"], domain=x["domain"], metadata=x["metadata"])
        st.details.add().Pack(info)
    return st.SerializeToString()


def test_go_connector_recorded_errors_reproduced() -> None:
    api = [json.loads(x) for x in observed("go-connector.api.jsonl").read_text().splitlines()]
    want = [(a["error"], a["is"]) for a in api if "error" in a]
    statuses = _wire_errors()
    got = []
    for code, msg, det in statuses:
        if msg.startswith("model_switch_required"):
            continue  # the connector retries internally (LoadModel + OpenSession), it does not surface
        e = E.error_from_status(code, msg, det)
        assert e.server_message == msg
        go_is = [t for t in e.wrapped_tokens()]
        got.append((str(e), go_is[:1]))
    assert got == want


# --- property ----------------------------------------------------------------------------------------

tokens = hs.sampled_from([t for t, _, _ in ORACLE] + ["internal", "nope", "", "grpc"])
texts = hs.text(hs.characters(blacklist_categories=("Cs",)), max_size=40)


@given(token=tokens, rest=texts, code=hs.integers(0, 16), sep=hs.booleans())
def test_property_status_decoding(token: str, rest: str, code: int, sep: bool) -> None:
    msg = f"{token}: {rest}" if sep else token
    e = E.error_from_status(code, msg, None)
    assert e.server_message == msg
    if sep and token in ORACLE_BY_TOKEN:
        assert e.token == token
        assert e.code == ORACLE_BY_TOKEN[token][0]
        sentinel = ORACLE_BY_TOKEN[token][1]
        if token != "manifest_mismatch":
            assert str(e) == f"{sentinel}: {rest}"
        else:
            assert str(e).startswith(sentinel)
        # re-encoding reports the same token first
        assert E.status_for(e)[1].startswith(token + ": ")
    elif not sep and token in ORACLE_BY_TOKEN:
        assert e.token == token
    elif code == 1:
        assert isinstance(e, E.Canceled)
    elif code == 4:
        assert isinstance(e, E.DeadlineExceeded)
    elif code == 13:
        assert isinstance(e, E.InternalError) and e.message == msg
    else:
        assert type(e) is E.TransportError and (e.code, e.message) == (code, msg)


@given(stage=texts, r=hs.integers(0, 2**31), a=hs.integers(0, 2**31), n=hs.integers(0, 2**31))
def test_property_overflow_round_trip(stage: str, r: int, a: int, n: int) -> None:
    exc = E.ContextOverflow(stage=stage, resident_tokens=r, additional_tokens=a, num_ctx=n)
    code, msg, det = E.status_for(exc)
    has = bool(stage or r or a or n)
    assert (det is not None) == has
    back = E.error_from_status(code, msg, det)
    assert isinstance(back, E.ContextOverflow)
    if has:
        assert back.detail_fields == exc.detail_fields and str(back) == str(exc)


def test_details_bin_is_what_grpc_go_sends() -> None:
    # base64 of the Status the recorded daemon sent decodes to the same fields we build
    exc = E.ContextOverflow(stage="prefix", resident_tokens=0, additional_tokens=300, num_ctx=128)
    _, msg, det = E.status_for(exc)
    assert det is not None
    unpadded = base64.b64encode(det).decode().rstrip("=")
    raw = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4))
    assert status_pb2.Status.FromString(raw).message == msg
