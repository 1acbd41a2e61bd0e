"""C-WIRE: every value that crosses the wire is witnessed.

Requests: what a caller asks the connector to send is what the daemon receives — every field of
``Config``, ``DecodeConfig``, the model reference (digest and adapters included), the inputs of the
session calls, LoadModel's and UnloadModel's expected generation, a name, a snapshot, a push manifest —
with zero values, empty lists and absent pointers as values of their own. Answers: what the daemon sends
is what the connector returns to its caller, value for value (float32 and float64 exactly, hashes,
counts, strings, pointers present or nil).

The witness is the simulator's own record of every call (``modeld_sim.wirelog``): the request as the
daemon decoded it, every message it sent. Where a clause needs answers an engine would rarely give,
it scripts them (``WireLog.answer_next``). Both sides are compared as Go values
(``contract_tests/oracles/wire.py``: a missing key, ``null`` and the zero value are one value, except
for pointers; a nil and an empty list are one; float32 fields compared at float32). Values are drawn by
Hypothesis over the Go types' whole range, never from the system's answers. The clauses need the
scriptable in-process simulator (``needs_scripting``).

Sources: wire.md (the message tables, Go JSON rules), session-semantics.md §2, §3, §4, §7."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from modeld_contract.applicability import not_applicable
from modeld_contract.clauses._util import empty_slot, prefix
from modeld_contract.clauses._wire_values import (
    F32,
    I64,
    TEXT,
    U64,
    each_field,
    full_json,
    json_of,
    to_message,
    with_examples,
    zero_json,
)
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.oracles.wire import differences, float32, from_json, from_message
from modeld_contract.profiles import suite_settings

from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
_SENT = ("asked", "daemon received")
_BACK = ("daemon sent", "connector returned")

# ---------------------------------------------------------------------------------------------------
# the witness


def _wire(env: Any) -> Any:
    """The simulator's wire log (``modeld_sim.wirelog.WireLog``) behind the scriptable target."""
    wire = getattr(getattr(env.target, "sim", None), "wire", None)
    assert wire is not None, "the target has no wire log (needs the in-process simulator, modeld_sim.wirelog)"
    return wire


def _requests(wire: Any, method: str, since: int) -> list[Any]:
    """The decoded requests of ``method`` since the mark; an undecodable one fails the clause."""
    calls = wire.calls(method, since=since)
    for c in calls:
        assert c.request is not None, f"the daemon could not decode the connector's {method}: {c.message}"
    return [c.request for c in calls]


def _check_sent(what: str, want: Mapping[str, Any], got: Any, ignore: tuple[str, ...] = ()) -> None:
    desc = got.DESCRIPTOR
    bad = differences(from_json(desc, want), from_message(got), ignore=ignore, labels=_SENT)
    head = f"{what}: the daemon did not receive what the connector was asked to send:\n"
    assert not bad, head + "\n".join(bad)


def _check_returned(what: str, sent: Any, got: Any, ignore: tuple[str, ...] = ()) -> None:
    bad = differences(from_message(sent), from_json(sent.DESCRIPTOR, got), ignore=ignore, labels=_BACK)
    assert not bad, f"{what}: the connector did not return what the daemon sent:\n" + "\n".join(bad)


def _last_answer(wire: Any, method: str, since: int) -> Any:
    ok = [c for c in wire.calls(method, since=since) if c.ok and c.responses]
    assert ok, f"no successful {method} reached the daemon"
    return ok[-1].responses[-1]


def _attempt(fn: Callable[[], Any]) -> Any:
    """Call; a typed error of the daemon is an outcome like any other here (the request is witnessed
    either way): the value, or the error."""
    try:
        return fn()
    except ConnectorError as err:
        return err


def _one(wire: Any, method: str, since: int, outcome: Any) -> Any:
    """The one request of ``method`` the call made (``outcome``: what the connector answered)."""
    sent = _requests(wire, method, since)
    answered = f"; the connector answered {outcome!r}" if isinstance(outcome, ConnectorError) else ""
    assert len(sent) == 1, f"the call sent {len(sent)} {method} requests, want 1{answered}"
    return sent[0]


def _open(env: Any, wire: Any) -> tuple[str, str]:
    """A session on the target's model and the handle the daemon answered for it."""
    mark = wire.mark()
    sid = str(env.conn.open_session(env.model, CFG))
    return sid, str(_last_answer(wire, "OpenSession", mark).handle)


# ---------------------------------------------------------------------------------------------------
# request values

#: Text that can name a file (no NUL: no path can hold one).
_PATHLIKE = st.text(max_size=16).filter(lambda s: "\x00" not in s)
_DIGEST = st.one_of(st.just(""), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), TEXT)
#: Any Config; NumCtx often one the model serves, so the call gets as far as the slot.
_CONFIG = json_of(pb.Config.DESCRIPTOR, {"NumCtx": st.one_of(st.sampled_from([0, 64, 128]), I64)})


def _adapters() -> st.SearchStrategy[Any]:
    spec = json_of(pb.AdapterSpec.DESCRIPTOR, {"path": _PATHLIKE, "scale": F32})
    return st.one_of(st.none(), st.lists(spec, max_size=3))


def _model(env: Any, *, adapters: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Model references: mostly the target's own model (so calls get past model resolution), any
    name, type, digest and path too."""
    required = {
        "model_name": st.one_of(st.just(str(env.model["model_name"])), _PATHLIKE),
        "type": st.one_of(st.just("llama"), st.sampled_from(["openvino", "onnx", ""]), TEXT),
        "digest": _DIGEST,
        "path": st.one_of(st.just(str(env.model["path"])), st.just(""), _PATHLIKE),
    }
    return st.fixed_dictionaries(required, optional={"adapters": _adapters()} if adapters else {})


def _full_model(env: Any, *, adapters: bool = True) -> dict[str, Any]:
    """The target's model with a digest and (when the request has them) two adapters, every field set."""
    spec = full_json(pb.AdapterSpec.DESCRIPTOR)
    out = {**env.model, "digest": "d" * 64}
    if adapters:
        out["adapters"] = [spec, {**spec, "name": "second-é✓", "scale": float32(-2.5)}]
    return out


#: A reference with every field present and empty.
_ZERO_MODEL: dict[str, Any] = {"model_name": "", "type": "", "digest": "", "path": "", "adapters": []}
_FULL_CONFIG = full_json(pb.Config.DESCRIPTOR)
_ZERO_CONFIG = zero_json(pb.Config.DESCRIPTOR)

_REF_FIELDS = ("model_name", "type", "digest", "path", "adapters", "config")


def _ref_request(model: Mapping[str, Any], config: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    return {**{k: v for k, v in model.items() if k in _REF_FIELDS}, "config": config, **more}


# ---------------------------------------------------------------------------------------------------
# requests: what the connector was asked to send is what the daemon received


@clause("C-WIRE-01", source="wire.md (openSessionReq, Config, AdapterSpec); session-semantics.md §2, §7")
@pytest.mark.needs_scripting
def test_C_WIRE_01_open_session_carries_model_and_config(modeld_scripted: Any) -> None:
    """open_session sends the model reference (name, type, digest, path, adapters in order) and every
    Config field as given — in the OpenSession and in a LoadModel + retry it makes on a switch."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(model=_model(env), config=_CONFIG)
    @example(model=_full_model(env), config=_FULL_CONFIG)
    @example(model=_ZERO_MODEL, config=_ZERO_CONFIG)
    @with_examples("config", each_field(pb.Config.DESCRIPTOR), model=_full_model(env))
    def check(model: dict[str, Any], config: dict[str, Any]) -> None:
        mark = wire.mark()
        sid = _attempt(lambda: env.conn.open_session(model, config))
        if not isinstance(sid, ConnectorError):
            env.conn.close_session(sid)
        opens = _requests(wire, "OpenSession", mark)
        assert opens, f"open_session sent no OpenSession; the connector answered {sid!r}"
        want = _ref_request(model, config)
        for req in opens:
            _check_sent("OpenSession", want, req, ignore=("owner_instance_id",))
        for req in _requests(wire, "LoadModel", mark):
            _check_sent(
                "LoadModel of open_session", want, req, ignore=("owner_instance_id", "expected_generation")
            )

    check()


@clause("C-WIRE-02", source="wire.md (Describe: openSessionReq, describeResp)")
@pytest.mark.needs_scripting
def test_C_WIRE_02_describe_carries_model_and_config(modeld_scripted: Any) -> None:
    """describe sends the model reference (digest and adapters included) and every Config field."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(model=_model(env), config=_CONFIG)
    @example(model=_full_model(env), config=_FULL_CONFIG)
    @example(model=_ZERO_MODEL, config=_ZERO_CONFIG)
    @with_examples("config", each_field(pb.Config.DESCRIPTOR), model=_full_model(env))
    def check(model: dict[str, Any], config: dict[str, Any]) -> None:
        mark = wire.mark()
        req = _one(wire, "Describe", mark, _attempt(lambda: env.conn.describe(model, config)))
        _check_sent("Describe", _ref_request(model, config), req, ignore=("owner_instance_id",))

    check()


@clause("C-WIRE-03", source="wire.md (loadModelReq); session-semantics.md §7 (expected generation)")
@pytest.mark.needs_scripting
def test_C_WIRE_03_load_model_carries_expected_generation(modeld_scripted: Any) -> None:
    """load_model sends the model reference, every Config field and the expected generation (0 =
    unconditional, any uint64 otherwise)."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(model=_model(env), config=_CONFIG, gen=U64)
    @example(model=_full_model(env), config=_FULL_CONFIG, gen=2**64 - 1)
    @example(model=_ZERO_MODEL, config=_ZERO_CONFIG, gen=0)
    @with_examples("config", each_field(pb.Config.DESCRIPTOR), model=_full_model(env), gen=1)
    def check(model: dict[str, Any], config: dict[str, Any], gen: int) -> None:
        mark = wire.mark()
        req = _one(wire, "LoadModel", mark, _attempt(lambda: env.conn.load_model(model, config, gen)))
        want = _ref_request(model, config, expected_generation=gen)
        _check_sent("LoadModel", want, req, ignore=("owner_instance_id",))

    check()


@clause("C-WIRE-04", source="wire.md (embedReq: no adapters)")
@pytest.mark.needs_scripting
def test_C_WIRE_04_embed_carries_model_config_and_text(modeld_scripted: Any) -> None:
    """embed sends the model reference, every Config field and the text, whatever its characters."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(model=_model(env, adapters=False), config=_CONFIG, text=st.text(max_size=40))
    @example(model=_full_model(env, adapters=False), config=_FULL_CONFIG, text="é✓ \x00 text")
    @example(model=_ZERO_MODEL, config=_ZERO_CONFIG, text="")
    @with_examples(
        "config", each_field(pb.Config.DESCRIPTOR), model=_full_model(env, adapters=False), text="t"
    )
    def check(model: dict[str, Any], config: dict[str, Any], text: str) -> None:
        mark = wire.mark()
        req = _one(wire, "Embed", mark, _attempt(lambda: env.conn.embed(model, config, text)))
        _check_sent("Embed", _ref_request(model, config, text=text), req, ignore=("owner_instance_id",))

    check()


@clause("C-WIRE-05", source="wire.md (unloadModelReq); edge-cases.md:113")
@pytest.mark.needs_scripting
def test_C_WIRE_05_unload_carries_expected_generation(modeld_scripted: Any) -> None:
    """unload_model sends the expected generation as given (0 included)."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(gen=U64)
    @example(gen=0)
    @example(gen=2**64 - 1)
    def check(gen: int) -> None:
        mark = wire.mark()
        req = _one(wire, "UnloadModel", mark, _attempt(lambda: env.conn.unload_model(gen)))
        _check_sent("UnloadModel", {"expected_generation": gen}, req, ignore=("owner_instance_id",))

    check()


@clause("C-WIRE-06", source="wire.md (removeModelReq); edge-cases.md:91")
@pytest.mark.needs_scripting
def test_C_WIRE_06_remove_model_carries_the_name(modeld_scripted: Any) -> None:
    """remove_model sends the name as given, whatever its characters."""
    env = modeld_scripted
    wire = _wire(env)
    keep = str(env.model["model_name"])

    @suite_settings()
    # any name but ones that resolve to the target's own model directory (the store joins it verbatim)
    @given(name=_PATHLIKE.filter(lambda n: n.strip("./") and os.path.normpath(n) != keep))
    @example(name="é✓/no-such-model")
    def check(name: str) -> None:
        mark = wire.mark()
        req = _one(wire, "RemoveModel", mark, _attempt(lambda: env.conn.remove_model(name)))
        _check_sent("RemoveModel", {"name": name}, req, ignore=("owner_instance_id",))

    check()


_PREFIX = json_of(pb.PrefixInput.DESCRIPTOR, {"Text": st.text(max_size=24)})
_SUFFIX = json_of(pb.SuffixInput.DESCRIPTOR, {"Text": st.text(max_size=16)})


@clause(
    "C-WIRE-07", source="wire.md (ensurePrefixReq, PrefixInput, ContextManifest); session-semantics.md §4.2"
)
@pytest.mark.needs_scripting
def test_C_WIRE_07_ensure_prefix_carries_text_manifest_tools(modeld_scripted: Any) -> None:
    """ensure_prefix sends its session's handle, the text, every manifest field (segments in order)
    and the tools as given."""
    env = modeld_scripted
    wire = _wire(env)
    sid, handle = _open(env, wire)

    @suite_settings()
    @given(inp=_PREFIX)
    @example(inp=full_json(pb.PrefixInput.DESCRIPTOR))
    @example(inp=zero_json(pb.PrefixInput.DESCRIPTOR))
    @with_examples("inp", each_field(pb.PrefixInput.DESCRIPTOR))
    def check(inp: dict[str, Any]) -> None:
        mark = wire.mark()
        req = _one(wire, "EnsurePrefix", mark, _attempt(lambda: env.conn.ensure_prefix(sid, inp)))
        _check_sent("EnsurePrefix", {"handle": handle, "prefix": inp}, req)

    check()
    env.conn.close_session(sid)


@clause(
    "C-WIRE-08",
    source="wire.md (prefillSuffixReq, SuffixInput: *bool EnableThinking); session-semantics.md §4.3",
)
@pytest.mark.needs_scripting
def test_C_WIRE_08_prefill_suffix_carries_text_manifest_thinking(modeld_scripted: Any) -> None:
    """prefill_suffix sends the handle, the text, every manifest field, EnableThinking as given (absent,
    false and true are three values) and the reasoning effort."""
    env = modeld_scripted
    wire = _wire(env)
    sid, handle = _open(env, wire)

    @suite_settings()
    @given(inp=_SUFFIX)
    @example(inp=full_json(pb.SuffixInput.DESCRIPTOR))
    @example(inp=zero_json(pb.SuffixInput.DESCRIPTOR))
    @with_examples("inp", each_field(pb.SuffixInput.DESCRIPTOR))
    def check(inp: dict[str, Any]) -> None:
        _attempt(lambda: env.conn.ensure_prefix(sid, prefix("p")))
        mark = wire.mark()
        req = _one(wire, "PrefillSuffix", mark, _attempt(lambda: env.conn.prefill_suffix(sid, inp)))
        _check_sent("PrefillSuffix", {"handle": handle, "suffix": inp}, req)

    check()
    env.conn.close_session(sid)


@clause("C-WIRE-09", source="wire.md (decodeReq, DecodeConfig: *float64 Temperature/TopP, *int Seed)")
@pytest.mark.needs_scripting
def test_C_WIRE_09_decode_carries_every_decode_config_field(modeld_scripted: Any) -> None:
    """decode sends the handle and every DecodeConfig field as given: MaxTokens, Temperature and TopP
    (float64, exactly; absent ≠ 0), TopK, Seed (absent ≠ 0), ParserProtocols in order, ReasoningFormat,
    StructuredOutput."""
    env = modeld_scripted
    wire = _wire(env)
    sid, handle = _open(env, wire)
    env.conn.ensure_prefix(sid, prefix("hello"))

    @suite_settings()
    @given(cfg=json_of(pb.DecodeConfig.DESCRIPTOR))
    @example(cfg=full_json(pb.DecodeConfig.DESCRIPTOR))
    @example(cfg=zero_json(pb.DecodeConfig.DESCRIPTOR))
    @with_examples("cfg", each_field(pb.DecodeConfig.DESCRIPTOR))
    def check(cfg: dict[str, Any]) -> None:
        wire.clear_answers()
        wire.answer_next("Decode", [pb.WireChunk(text="x")])  # the engine never runs on odd values
        mark = wire.mark()
        res = env.conn.decode(sid, cfg)
        req = _one(wire, "Decode", mark, res.error)
        _check_sent("Decode", {"handle": handle, "config": cfg}, req)

    check()
    wire.clear_answers()
    env.conn.close_session(sid)


_SNAPSHOT = json_of(
    pb.SessionSnapshot.DESCRIPTOR,
    {"state_id": st.one_of(st.just(""), st.text(alphabet="0123456789abcdef", max_size=64))},
)


@clause("C-WIRE-10", source="wire.md (restoreReq, SessionSnapshot); session-semantics.md §4.6")
@pytest.mark.needs_scripting
def test_C_WIRE_10_restore_carries_the_snapshot(modeld_scripted: Any) -> None:
    """restore sends the handle and the snapshot as given: state id, counts, token ids, cold blocks (kv
    bytes included), texts, tools and manifest."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(snap=_SNAPSHOT)
    @example(snap=full_json(pb.SessionSnapshot.DESCRIPTOR, {"state_id": "ab" * 32}))
    @example(snap=zero_json(pb.SessionSnapshot.DESCRIPTOR))
    @with_examples("snap", each_field(pb.SessionSnapshot.DESCRIPTOR, {"state_id": "ab" * 32}))
    def check(snap: dict[str, Any]) -> None:
        sid, handle = _open(env, wire)  # a Restore may poison its session: one per example
        mark = wire.mark()
        outcome = _attempt(lambda: env.conn.restore(sid, snap))
        _attempt(lambda: env.conn.close_session(sid))
        req = _one(wire, "Restore", mark, outcome)
        _check_sent("Restore", {"handle": handle, "snapshot": snap}, req)

    check()


@clause("C-WIRE-11", source="wire.md §6 (the handle is opaque); session-semantics.md §4")
@pytest.mark.needs_scripting
def test_C_WIRE_11_session_calls_carry_their_handle(modeld_scripted: Any) -> None:
    """Every call of a session (EnsurePrefix, PrefillSuffix, Decode, ExplainContext, Snapshot, Restore,
    CloseSession) sends exactly the handle the daemon answered to its OpenSession — for a second
    session, the second handle."""
    env = modeld_scripted
    wire = _wire(env)
    for _ in range(2):
        sid, handle = _open(env, wire)
        mark = wire.mark()
        env.conn.ensure_prefix(sid, prefix("hello"))
        env.conn.prefill_suffix(sid, prefix(" world"))
        assert env.conn.decode(sid, {"MaxTokens": 2, "Temperature": 0}).error is None
        env.conn.explain_context(sid)
        snap = env.conn.snapshot(sid)
        env.conn.restore(sid, snap)
        env.conn.close_session(sid)
        methods = (
            "EnsurePrefix",
            "PrefillSuffix",
            "Decode",
            "ExplainContext",
            "Snapshot",
            "Restore",
            "CloseSession",
        )
        for method in methods:
            sent = _requests(wire, method, mark)
            assert sent, f"no {method} reached the daemon"
            assert [r.handle for r in sent] == [handle] * len(sent), (
                method,
                handle,
                [r.handle for r in sent],
            )


@clause("C-WIRE-12", source="wire.md (pushModelChunk, PushManifest); docs/driver-protocol.md (push_model)")
@pytest.mark.needs_scripting
def test_C_WIRE_12_push_model_carries_manifest_and_bytes(modeld_scripted: Any) -> None:
    """push_model sends a first frame with the manifest (name, type, the data's sha256 digest, format)
    and then every byte of the data in order; it returns the daemon's answer value for value."""
    env = modeld_scripted
    wire = _wire(env)
    push = getattr(env.conn, "push_model", None)
    if not callable(push):
        not_applicable(f"connector {env.conn.name} has no push_model")

    @suite_settings(max_examples=max(5, suite_settings().max_examples // 6))
    @given(
        name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12),
        data=st.binary(max_size=2048),
        fmt=st.sampled_from(["file", "tar"]),
        answer=json_of(pb.PushModelResp.DESCRIPTOR),
    )
    @example(name="m", data=b"\x00\xffmodel", fmt="file", answer=full_json(pb.PushModelResp.DESCRIPTOR))
    @example(name="empty", data=b"", fmt="file", answer=zero_json(pb.PushModelResp.DESCRIPTOR))
    def check(name: str, data: bytes, fmt: str, answer: dict[str, Any]) -> None:
        wire.clear_answers()
        wire.answer_next("PushModel", to_message(pb.PushModelResp, answer))
        mark = wire.mark()
        try:
            got = push(f"wire-{name}", "llama", data, format=fmt)
        except ConnectorError as err:
            if err.kind == "unsupported_operation":
                not_applicable(f"connector {env.conn.name} has no push_model")
            got = None
        calls = wire.calls("PushModel", since=mark)
        assert len(calls) == 1 and calls[0].request is not None, (
            f"push_model sent {len(calls)} PushModel calls"
        )
        manifest = calls[0].request.manifest
        want = {
            "name": f"wire-{name}",
            "type": "llama",
            "digest": hashlib.sha256(data).hexdigest(),
            "format": fmt,
        }
        _check_sent("PushModel manifest", want, manifest, ignore=("total_bytes",))
        assert (sum(calls[0].data_bytes), calls[0].data_sha256) == (len(data), want["digest"]), (
            f"push_model: the daemon received {sum(calls[0].data_bytes)} bytes "
            f"(sha256 {calls[0].data_sha256}), asked to send {len(data)} (sha256 {want['digest']})"
        )
        if fmt == "file":  # any bytes are a file: the daemon takes them
            assert calls[0].ok, f"push_model failed: {calls[0].message}"
        if calls[0].ok:
            assert got is not None
            _check_returned("push_model", calls[0].responses[-1], got)

    check()
    wire.clear_answers()


# ---------------------------------------------------------------------------------------------------
# answers: what the daemon sent is what the connector returns


def _answers(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return json_of(cls.DESCRIPTOR)


def _scripted(wire: Any, method: str, cls: type[Any], answer: Mapping[str, Any]) -> int:
    """Script the next answer of ``method``; returns the mark to read the call from."""
    wire.clear_answers()
    wire.answer_next(method, to_message(cls, answer))
    return int(wire.mark())


def _every_answer_returned(env: Any, method: str, cls: Any, label: str, call: Callable[[], Any]) -> None:
    """``call`` returns every field of the daemon's ``method`` answer as sent: generated answers, plus
    every field set, every field zero and one field at a time (a moved or dropped value fails on every
    run). The answer is scripted into the simulator, whose wire log is the witness of what was sent."""
    wire = _wire(env)

    @suite_settings()
    @given(answer=_answers(cls))
    @example(answer=full_json(cls.DESCRIPTOR))
    @example(answer=zero_json(cls.DESCRIPTOR))
    @with_examples("answer", each_field(cls.DESCRIPTOR))
    def check(answer: dict[str, Any]) -> None:
        mark = _scripted(wire, method, cls, answer)
        got = call()
        _check_returned(label, _last_answer(wire, method, mark), got)

    check()
    wire.clear_answers()


@clause("C-WIRE-13", source="wire.md (DaemonStatus, ActiveModel); edge-cases.md:43")
@pytest.mark.needs_scripting
def test_C_WIRE_13_status_returns_every_field(modeld_scripted: Any) -> None:
    """status returns the daemon's DaemonStatus value for value: owner, backend, state, the active model
    (nil or set; name, type, digest, path, every Config field, adapters, generation up to 2^64−1),
    busy operation, last error."""
    env = modeld_scripted
    _every_answer_returned(env, "Status", pb.DaemonStatus, "status", lambda: env.conn.status())


@clause("C-WIRE-14", source="wire.md (describeResp → transport.ModelInfo, DeviceInfo)")
@pytest.mark.needs_scripting
def test_C_WIRE_14_describe_returns_every_fact(modeld_scripted: Any) -> None:
    """describe returns every fact of the daemon's answer as sent: contexts, byte budgets, flags, reason,
    device, GPU layers, chat-template capabilities, runtime, devices in order."""
    env = modeld_scripted
    _every_answer_returned(
        env, "Describe", pb.DescribeResp, "describe", lambda: env.conn.describe(env.model, CFG)
    )


@clause("C-WIRE-15", source="wire.md (ActiveModel); session-semantics.md §7")
@pytest.mark.needs_scripting
def test_C_WIRE_15_load_model_returns_the_active_model(modeld_scripted: Any) -> None:
    """load_model returns the daemon's ActiveModel value for value (Config, adapters, generation)."""
    env = modeld_scripted
    _every_answer_returned(
        env, "LoadModel", pb.ActiveModel, "load_model", lambda: env.conn.load_model(env.model, CFG)
    )


@clause("C-WIRE-16", source="wire.md (embedResp: []float32)")
@pytest.mark.needs_scripting
def test_C_WIRE_16_embed_returns_the_exact_vector(modeld_scripted: Any) -> None:
    """embed returns the daemon's vector, every float32 exactly, in order (empty included)."""
    env = modeld_scripted
    wire = _wire(env)
    empty_slot(env.conn)

    @suite_settings()
    @given(vector=st.lists(F32, max_size=16))
    @example(vector=[float32(0.1), -0.0, float32(3.4e38), float32(1e-45), float32(-123.456)])
    def check(vector: list[float]) -> None:
        mark = _scripted(wire, "Embed", pb.EmbedResp, {"vector": vector})
        got = env.conn.embed(env.model, CFG, "x")
        _check_returned("embed", _last_answer(wire, "Embed", mark), {"vector": got})

    check()
    wire.clear_answers()


@clause("C-WIRE-17", source="wire.md (listModelsResp, NodeModel); edge-cases.md:89")
@pytest.mark.needs_scripting
def test_C_WIRE_17_list_models_returns_every_model(modeld_scripted: Any) -> None:
    """list_models returns the daemon's models in order, every field (name, type, digest, size,
    context length) as sent."""
    env = modeld_scripted
    _every_answer_returned(
        env, "ListModels", pb.ListModelsResp, "list_models", lambda: {"models": env.conn.list_models()}
    )


@clause("C-WIRE-18", source="wire.md (NodeDiskStats); edge-cases.md:92")
@pytest.mark.needs_scripting
def test_C_WIRE_18_disk_stats_returns_every_count(modeld_scripted: Any) -> None:
    """disk_stats returns free, used and total bytes as sent (any int64)."""
    env = modeld_scripted
    _every_answer_returned(env, "DiskStats", pb.NodeDiskStats, "disk_stats", lambda: env.conn.disk_stats())


@clause("C-WIRE-19", source="wire.md (PrefixStatus, SuffixStatus); session-semantics.md §4.2, §4.3")
@pytest.mark.needs_scripting
def test_C_WIRE_19_prefix_and_suffix_status_return_every_count(modeld_scripted: Any) -> None:
    """ensure_prefix and prefill_suffix return the daemon's statuses value for value: every count and
    hash, the manifest digest."""
    env = modeld_scripted
    wire = _wire(env)
    sid, _ = _open(env, wire)

    @suite_settings()
    @given(pre=_answers(pb.PrefixStatus), suf=_answers(pb.SuffixStatus))
    @example(pre=full_json(pb.PrefixStatus.DESCRIPTOR), suf=full_json(pb.SuffixStatus.DESCRIPTOR))
    @example(pre=zero_json(pb.PrefixStatus.DESCRIPTOR), suf=zero_json(pb.SuffixStatus.DESCRIPTOR))
    @with_examples("pre", each_field(pb.PrefixStatus.DESCRIPTOR), suf=zero_json(pb.SuffixStatus.DESCRIPTOR))
    @with_examples("suf", each_field(pb.SuffixStatus.DESCRIPTOR), pre=zero_json(pb.PrefixStatus.DESCRIPTOR))
    def check(pre: dict[str, Any], suf: dict[str, Any]) -> None:
        mark = _scripted(wire, "EnsurePrefix", pb.PrefixStatus, pre)
        wire.answer_next("PrefillSuffix", to_message(pb.SuffixStatus, suf))
        got_pre = env.conn.ensure_prefix(sid, prefix("hello"))
        got_suf = env.conn.prefill_suffix(sid, prefix(" world"))
        _check_returned("ensure_prefix", _last_answer(wire, "EnsurePrefix", mark), got_pre)
        _check_returned("prefill_suffix", _last_answer(wire, "PrefillSuffix", mark), got_suf)

    check()
    wire.clear_answers()
    env.conn.close_session(sid)


@clause("C-WIRE-20", source="wire.md (ContextReport, ResidencyReport); session-semantics.md §4.5")
@pytest.mark.needs_scripting
def test_C_WIRE_20_explain_context_returns_the_report(modeld_scripted: Any) -> None:
    """explain_context returns the daemon's ContextReport value for value: counts, hashes, the manifest,
    Closed, the fatal error, the counters and the residency report (nil or set)."""
    env = modeld_scripted
    wire = _wire(env)
    sid, _ = _open(env, wire)

    _every_answer_returned(
        env, "ExplainContext", pb.ContextReport, "explain_context", lambda: env.conn.explain_context(sid)
    )
    env.conn.close_session(sid)


@clause("C-WIRE-21", source="wire.md (SessionSnapshot, restoreReq); session-semantics.md §4.6")
@pytest.mark.needs_scripting
def test_C_WIRE_21_snapshot_round_trips(modeld_scripted: Any) -> None:
    """snapshot returns the daemon's SessionSnapshot value for value, and restore of that snapshot sends
    it back unchanged (state id, counts, token ids, cold blocks, texts, tools, manifest)."""
    env = modeld_scripted
    wire = _wire(env)

    @suite_settings()
    @given(answer=_SNAPSHOT)
    @example(answer=full_json(pb.SessionSnapshot.DESCRIPTOR, {"state_id": "ab" * 32}))
    @example(answer=zero_json(pb.SessionSnapshot.DESCRIPTOR))
    @with_examples("answer", each_field(pb.SessionSnapshot.DESCRIPTOR, {"state_id": "ab" * 32}))
    def check(answer: dict[str, Any]) -> None:
        sid, _ = _open(env, wire)  # a Restore may poison its session: one per example
        mark = _scripted(wire, "Snapshot", pb.SessionSnapshot, answer)
        got = env.conn.snapshot(sid)
        sent = _last_answer(wire, "Snapshot", mark)
        _check_returned("snapshot", sent, got)
        mark = wire.mark()
        outcome = _attempt(lambda: env.conn.restore(sid, got))
        _attempt(lambda: env.conn.close_session(sid))
        back = _one(wire, "Restore", mark, outcome)
        bad = differences(
            from_message(sent), from_message(back.snapshot), labels=("snapshot sent", "restored")
        )
        assert not bad, "restore did not send back the snapshot the daemon gave:\n" + "\n".join(bad)

    check()
    wire.clear_answers()


def _chunk_values(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [from_json(pb.WireChunk.DESCRIPTOR, c) for c in chunks]


@clause("C-WIRE-22", source="wire.md §8 (wireChunk: text, thinking, tool_calls)")
@pytest.mark.needs_scripting
def test_C_WIRE_22_decode_returns_every_chunk(modeld_scripted: Any) -> None:
    """decode returns the daemon's chunks in order, each with its text, thinking and tool calls (id,
    type, function name and arguments) as sent."""
    env = modeld_scripted
    wire = _wire(env)
    sid, _ = _open(env, wire)
    env.conn.ensure_prefix(sid, prefix("hello"))
    no_error = {"error": "", "error_token": "", "error_detail": None}
    chunk = json_of(pb.WireChunk.DESCRIPTOR, {k: st.just(v) for k, v in no_error.items()}).filter(
        lambda c: bool(c.get("text") or c.get("thinking") or c.get("tool_calls"))
    )

    @suite_settings()
    @given(chunks=st.lists(chunk, max_size=6))
    @example(chunks=[full_json(pb.WireChunk.DESCRIPTOR, no_error), {"thinking": "t"}, {"text": "a"}])
    def check(chunks: list[dict[str, Any]]) -> None:
        wire.clear_answers()
        wire.answer_next("Decode", [to_message(pb.WireChunk, c) for c in chunks])
        mark = wire.mark()
        res = env.conn.decode(sid, {"MaxTokens": 4})
        assert res.error is None, res.error
        (call,) = wire.calls("Decode", since=mark)
        sent = [from_message(m) for m in call.responses]
        bad = differences(sent, _chunk_values(res.chunks), path="chunks", labels=_BACK)
        assert not bad, "decode did not return the chunks the daemon sent:\n" + "\n".join(bad)

    check()
    wire.clear_answers()
    env.conn.close_session(sid)
