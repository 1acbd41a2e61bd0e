"""Differential testing: the simulator and the real modeld v0.36.0 driven in lockstep, compared exactly.

A Hypothesis ``RuleBasedStateMachine`` draws operations — Health, Status, LoadModel / UnloadModel with
generations, Describe / OpenSession / Embed (also with a foreign type, a missing path, a corrupt,
truncated or directory model), ListModels / DiskStats / RemoveModel / PushModel, a wrong, missing,
empty, doubled or upper-cased fence in the metadata and a wrong or missing owner in the body, foreign
content-types (plain ``application/grpc`` …), malformed and wrongly-typed JSON, a message above grpc-go's
default 4 MiB limit, a second OpenSession while one is open, connections closed under their sessions and,
on llama, the session calls (EnsurePrefix / PrefillSuffix / Decode / ExplainContext / Snapshot / Restore
/ CloseSession) — and sends each to both daemons (``_differential.Pair``: the same raw client, the same
bytes but for each daemon's own instance id and paths). Each example starts both daemons afresh.

Any difference of status code, message, details, HTTP status, content-type or reply body (key order
included) fails with both replies side by side. Only Snapshot's ``state_id`` is exempt (each side gets
its own back in Restore); Describe / DiskStats machine values are masked as the corpus masks them.

Runs when ``MODELD_REAL`` enables the backend (``tests/real/conftest.py``). Examples: the Hypothesis
profile's ``max_examples`` for backend none (200 under ``HYPOTHESIS_PROFILE=ci``), a quarter of it for
llama (50 under ``ci``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest
from _differential import Pair
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from modeld_contract.corpus import MODELD_CORPUS, TINY_GGUF_NAME, Case
from modeld_contract.real.build import BuildResult
from modeld_contract.strict import unavailable

from modeld_sim.engines.llama import llama_available, llama_unavailable_reason

FENCE: Final = "x-contenox-owner-instance"
_UNSET: Final = object()

FENCES: Final[dict[str, list[list[str]]]] = {
    "ok": [[FENCE, "<IID>"]],
    "missing": [],
    "wrong": [[FENCE, "someone-else"]],
    "empty": [[FENCE, ""]],
    "double": [[FENCE, "<IID>"], [FENCE, "<IID>"]],
    "mixed": [[FENCE, "<IID>"], [FENCE, "x"]],
    "upper": [[FENCE, "<IID_UPPER>"]],
}
fences = st.sampled_from(["ok"] * 12 + [k for k in FENCES if k != "ok"])
#: the body's owner_instance_id (Status, Describe, OpenSession, Embed, LoadModel)
owners = st.sampled_from(["<IID>"] * 8 + [None, "other", ""])
connections = st.sampled_from(["c1", "c1", "c2", None])

MODELS: Final[dict[str, dict[str, Any]]] = {
    "good": {"model_name": "tiny", "type": "llama", "path": "<MODEL>"},
    "by_name": {"model_name": "tiny", "type": "llama"},
    "unknown_name": {"model_name": "nosuch", "type": "llama"},
    "empty": {},
    "missing_path": {"model_name": "m", "type": "llama", "path": "/nonexistent/m.gguf"},
    "foreign_type": {"model_name": "tiny", "type": "openvino", "path": "<MODEL>"},
    "empty_type": {"model_name": "tiny", "type": "", "path": "<MODEL>"},
    "unknown_type": {"model_name": "m", "type": "onnx"},
    "corrupt": {
        "model_name": "tiny",
        "type": "llama",
        "path": "<CORRUPT_GGUF: the 15 bytes GGUF 03 00 00 00 'garbage'>",
    },
    "truncated": {
        "model_name": "tiny",
        "type": "llama",
        "path": "<TRUNCATED_GGUF: the first 4096 bytes of MODEL>",
    },
    "directory": {"model_name": "tiny", "type": "llama", "path": "<MODEL_DIR>"},
}
models = st.sampled_from(["good"] * 10 + [k for k in MODELS if k != "good"])
num_ctxs = st.sampled_from([128, 128, 64, 256, 0, 512])
texts = st.text(alphabet="abcdefgh hello world\n", max_size=40) | st.sampled_from(
    ["", "hello world", "héllo wörld ✓", "word " * 30, "stable"]
)
manifests = st.fixed_dictionaries(
    {
        "backend": st.sampled_from(["llama", "llama", ""]),
        "prompt_format": st.just(""),
        "prompt_template_digest": st.sampled_from(["", "", "d1"]),
        "runtime_digest": st.just(""),
        "add_bos": st.sampled_from([False, False, True]),
        "stable_bytes": st.sampled_from([0, 0, 6]),
        "total_bytes": st.sampled_from([0, 0, 6, 7]),
        "stable_byte_hash": st.sampled_from(["", "", "aaa", "bbb"]),
    }
)
decode_configs = st.fixed_dictionaries(
    {
        "MaxTokens": st.sampled_from([1, 3, 5, 8, 0]),
        "Temperature": st.sampled_from([0, 0, None, 0.8]),
        "TopP": st.sampled_from([None, None, 0.9]),
        "TopK": st.sampled_from([0, 0, 5]),
        "Seed": st.just(7),  # a fixed seed: sampling is reproducible on both (no seed = a random one)
        "ParserProtocols": st.just(None),
        "ReasoningFormat": st.just(""),
        "StructuredOutput": st.sampled_from(
            [{"Protocol": "", "Payload": "", "ToolName": ""}] * 6
            + [{"Protocol": "json_schema", "Payload": "{}", "ToolName": ""}]
        ),
    }
)
#: values of the wrong JSON type for any field (Go's decoder names each one exactly)
wrong_values = st.sampled_from([1, -1, 1.5, 1e40, "x", "1", True, None, [], [1], {}, {"a": 1}])
malformed = st.sampled_from(
    [
        "",
        "{",
        "}",
        "[",
        "{} x",
        '{"a"',
        '{"a":}',
        "nul",
        "tru",
        '"x"',
        "1",
        "[]",
        '{"a":1,}',
        "{'a':1}",
        '{"a":"\\x"}',
        "\ufeff{}",
        "{}{}",
        " ",
        '{"a":01}',
        '{"a":-}',
        '{"a":1e}',
        '{"a":"\x01"}',
    ]
) | st.text(alphabet='{}[]":,0123456789.-+eEtrufalsn x\\', max_size=10)
content_types = st.sampled_from(
    [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        None,
        "text/plain",
        "application/grpc+contenoxtransportjson; charset=utf-8",
        "application/GRPC+contenoxtransportjson",
        "application/grpc+CONTENOXTRANSPORTJSON",
    ]
)

# A message above grpc-go's default receive limit (4 MiB): the real daemon raises it (to 512 MiB), so a
# simulator that kept a 4 MiB limit would answer ResourceExhausted. Just above 4 MiB keeps each call fast.
BIG_PAD: Final = 4 * 1024 * 1024 + 1024

# PushModel contents: the corpus's tiny GGUF (loadable by name once pushed as "tiny") and a 1028-byte blob.
_GGUF = (MODELD_CORPUS / TINY_GGUF_NAME).read_bytes()
_BLOB = b"GGUF" + bytes(range(256)) * 4
PUSH_CONTENTS: Final = {"gguf": _GGUF, "blob": _BLOB}


def _config(num_ctx: int) -> dict[str, Any]:
    return {
        "NumCtx": num_ctx,
        "HotContextTokens": 0,
        "PlannerEffectiveContext": 0,
        "NumBatch": 0,
        "NumThreads": 0,
        "NumGpuLayers": 0,
        "TensorSplit": None,
        "FlashAttn": False,
        "KVCacheType": "",
        "PromptFormat": "",
        "PromptTemplateDigest": "",
        "DisableBOS": False,
        "ReasoningFormat": "",
    }


def make_case(
    name: str,
    method: str,
    payloads: list[dict[str, Any]],
    *,
    fence: str = "ok",
    connection: str | None = None,
    content_type: Any = _UNSET,
    path: str | None = None,
) -> Case:
    req: dict[str, Any] = {"payloads": payloads}
    if FENCES[fence]:
        req["metadata"] = FENCES[fence]
    if content_type is not _UNSET:
        req["content_type"] = content_type
    if connection:
        req["connection"] = connection
    if path:
        req["path"] = path
    return Case(0, name, {"case": name, "method": method, "request": req})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a JSON value (to put a wrongly-typed value there)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    value = json.loads(json.dumps(value))
    cur = value
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = new
    return value


class DifferentialMachine(RuleBasedStateMachine):
    backend: ClassVar[str] = "none"
    binary: ClassVar[Path]
    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair(self.backend, self.binary)
        self.stats["examples"] += 1
        # what both daemons agreed on so far (normalised replies)
        self.handles: list[tuple[str, str]] = []  # (handle, connection) of open sessions
        self.closed_handles: list[str] = []
        self.generation = 0
        self.snapshot: dict[str, Any] | None = None

    def teardown(self) -> None:
        self.pair.close()

    # -- helpers ---------------------------------------------------------------------------------------

    def send(self, case: Case, timeout: float = 60.0) -> dict[str, Any]:
        self.stats[case.name.split(".")[0]] += 1
        return self.pair.both(case, timeout)

    @staticmethod
    def _body(rec: dict[str, Any]) -> dict[str, Any]:
        msgs = rec.get("messages") or []
        return msgs[0] if rec.get("code") == 0 and msgs and isinstance(msgs[0], dict) else {}

    def _track_generation(self, rec: dict[str, Any]) -> None:
        body = self._body(rec)
        gen = body.get("generation", (body.get("active") or {}).get("generation"))
        if isinstance(gen, int):
            self.generation = gen

    def _model_body(self, model: str, num_ctx: int, owner: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if owner is not None:
            body["owner_instance_id"] = owner
        body.update(MODELS[model])
        if MODELS[model]:
            body["config"] = _config(num_ctx)
        return body

    def _handle(self, choice: str) -> tuple[str, str | None]:
        if choice == "open" and self.handles:
            return self.handles[-1]
        if choice == "closed" and self.closed_handles:
            return self.closed_handles[-1], None
        return {"unknown": "<IID>/1/999", "foreign": "someone-else/1/1", "empty": ""}.get(
            choice, "<IID>/1/999"
        ), None

    # -- plain calls -------------------------------------------------------------------------------------

    @rule(variant=st.sampled_from(["ok", "null", "two", "fence", "unknown_keys"]))
    def health(self, variant: str) -> None:
        payloads: list[dict[str, Any]] = {
            "ok": [{"json": {}}],
            "null": [{"json": None}],
            "two": [{"json": {}}, {"json": {}}],
            "fence": [{"json": {}}],
            "unknown_keys": [{"json": {"zzz": [1, {"a": None}], "READY": 1}}],
        }[variant]
        self.send(
            make_case(
                f"Health.{variant}", "Health", payloads, fence="wrong" if variant == "fence" else "missing"
            )
        )

    @rule(fence=fences, owner=owners, conn=connections)
    def status(self, fence: str, owner: str | None, conn: str | None) -> None:
        body = {} if owner is None else {"owner_instance_id": owner}
        self._track_generation(
            self.send(make_case("Status", "Status", [{"json": body}], fence=fence, connection=conn))
        )

    @rule(
        model=models,
        num_ctx=num_ctxs,
        gen=st.sampled_from(["none", "current", "next", "zero", "big"]),
        fence=fences,
        owner=owners,
    )
    def load_model(self, model: str, num_ctx: int, gen: str, fence: str, owner: str | None) -> None:
        body = self._model_body(model, num_ctx, owner)
        g = {"current": self.generation, "next": self.generation + 1, "zero": 0, "big": 99}.get(gen)
        if g is not None:
            body["expected_generation"] = g
        self._track_generation(
            self.send(make_case(f"LoadModel.{model}.{gen}", "LoadModel", [{"json": body}], fence=fence))
        )

    @rule(gen=st.sampled_from(["none", "current", "next", "zero", "big"]), fence=fences)
    def unload_model(self, gen: str, fence: str) -> None:
        g = {"current": self.generation, "next": self.generation + 1, "zero": 0, "big": 99}.get(gen)
        body = {} if g is None else {"expected_generation": g}
        self.send(make_case(f"UnloadModel.{gen}", "UnloadModel", [{"json": body}], fence=fence))

    @rule(model=models, num_ctx=num_ctxs, fence=fences, owner=owners)
    def describe(self, model: str, num_ctx: int, fence: str, owner: str | None) -> None:
        self.send(
            make_case(
                f"Describe.{model}",
                "Describe",
                [{"json": self._model_body(model, num_ctx, owner)}],
                fence=fence,
            )
        )

    @rule(model=models, num_ctx=num_ctxs, fence=fences, owner=owners, text=texts)
    def embed(self, model: str, num_ctx: int, fence: str, owner: str | None, text: str) -> None:
        body = self._model_body(model, num_ctx, owner)
        body["text"] = text
        self.send(make_case(f"Embed.{model}", "Embed", [{"json": body}], fence=fence))

    @rule(model=models, num_ctx=num_ctxs, fence=fences, owner=owners, conn=st.sampled_from(["c1", "c2"]))
    def open_session(self, model: str, num_ctx: int, fence: str, owner: str | None, conn: str) -> None:
        rec = self.send(
            make_case(
                f"OpenSession.{model}",
                "OpenSession",
                [{"json": self._model_body(model, num_ctx, owner)}],
                fence=fence,
                connection=conn,
            )
        )
        handle = self._body(rec).get("handle")
        if isinstance(handle, str):
            self.handles.append((handle, conn))
            self.stats["sessions opened"] += 1

    @initialize(open_first=st.booleans(), num_ctx=st.sampled_from([64, 128, 256]))
    def maybe_open(self, open_first: bool, num_ctx: int) -> None:
        """Half the examples start with a session open (the session calls then meet a live handle)."""
        if open_first:
            self.open_good(num_ctx, "c1")

    @precondition(lambda self: not self.handles)
    @rule(num_ctx=st.sampled_from([64, 128, 256]), conn=st.sampled_from(["c1", "c2"]))
    def open_good(self, num_ctx: int, conn: str) -> None:
        """OpenSession of the good model, well fenced (the other variants come from open_session)."""
        self.open_session("good", num_ctx, "ok", "<IID>", conn)

    @rule(fence=fences, method=st.sampled_from(["ListModels", "DiskStats"]))
    def node_admin(self, fence: str, method: str) -> None:
        self.send(make_case(method, method, [{"json": {}}], fence=fence))

    @rule(
        name=st.sampled_from(["tiny", "t2", "nosuch", "", "../../etc"]),
        fence=fences,
        key=st.sampled_from(["name", "name", "NAME"]),
    )
    def remove_model(self, name: str, fence: str, key: str) -> None:
        self.send(make_case("RemoveModel", "RemoveModel", [{"json": {key: name}}], fence=fence))

    @rule(
        name=st.sampled_from(["tiny", "tiny", "t2", "../evil", ""]),
        content=st.sampled_from(["blob", "gguf"]),
        digest=st.sampled_from(["right", "right", "wrong"]),
        split=st.booleans(),
        fence=fences,
        typ=st.sampled_from(["llama", "llama", "onnx", "openvino"]),
        fmt=st.sampled_from(["file", "file", "zip"]),
    )
    def push_model(
        self, name: str, content: str, digest: str, split: bool, fence: str, typ: str, fmt: str
    ) -> None:
        data = PUSH_CONTENTS[content]
        manifest = {
            "name": name,
            "type": typ,
            "digest": hashlib.sha256(data).hexdigest() if digest == "right" else "0" * 64,
            "total_bytes": len(data),
            "format": fmt,
        }
        b64 = base64.b64encode(data).decode()
        if split:
            half = (len(data) // 2) // 3 * 3
            payloads = [
                {"json": {"manifest": manifest}},
                {"json": {"data": base64.b64encode(data[:half]).decode()}},
                {"json": {"data": base64.b64encode(data[half:]).decode()}},
            ]
        else:
            payloads = [{"json": {"manifest": manifest, "data": b64}}]
        self.send(make_case(f"PushModel.{content}.{digest}", "PushModel", payloads, fence=fence))

    # -- sessions ------------------------------------------------------------------------------------------

    handles_choice = st.sampled_from(["open"] * 12 + ["closed", "unknown", "foreign", "empty"])

    @rule(which=handles_choice, text=texts, manifest=manifests, fence=fences, conn=connections)
    def ensure_prefix(
        self, which: str, text: str, manifest: dict[str, Any], fence: str, conn: str | None
    ) -> None:
        handle, _ = self._handle(which)
        self.send(
            make_case(
                "EnsurePrefix",
                "EnsurePrefix",
                [{"json": {"handle": handle, "prefix": {"Text": text, "Manifest": manifest}}}],
                fence=fence,
                connection=conn,
            )
        )

    @rule(which=handles_choice, text=texts, manifest=manifests, fence=fences, conn=connections)
    def prefill_suffix(
        self, which: str, text: str, manifest: dict[str, Any], fence: str, conn: str | None
    ) -> None:
        handle, _ = self._handle(which)
        self.send(
            make_case(
                "PrefillSuffix",
                "PrefillSuffix",
                [{"json": {"handle": handle, "suffix": {"Text": text, "Manifest": manifest}}}],
                fence=fence,
                connection=conn,
            )
        )

    @rule(which=handles_choice, cfg=decode_configs, fence=fences, conn=connections)
    def decode(self, which: str, cfg: dict[str, Any], fence: str, conn: str | None) -> None:
        handle, _ = self._handle(which)
        self.send(
            make_case(
                "Decode",
                "Decode",
                [{"json": {"handle": handle, "config": cfg}}],
                fence=fence,
                connection=conn,
            ),
            timeout=120,
        )

    @rule(
        which=handles_choice,
        fence=fences,
        conn=connections,
        method=st.sampled_from(["ExplainContext", "Snapshot"]),
    )
    def explain_or_snapshot(self, which: str, fence: str, conn: str | None, method: str) -> None:
        handle, _ = self._handle(which)
        rec = self.send(
            make_case(method, method, [{"json": {"handle": handle}}], fence=fence, connection=conn)
        )
        if method == "Snapshot" and self._body(rec):
            self.snapshot = self._body(rec)

    @rule(which=handles_choice, fence=fences, conn=connections, bogus=st.booleans())
    def restore(self, which: str, fence: str, conn: str | None, bogus: bool) -> None:
        handle, _ = self._handle(which)
        snap = dict(self.snapshot or {"state_id": "nope", "manifest": {}})
        if bogus or self.snapshot is None:
            snap["state_id"] = "0" * 64 if bogus else "nope"
        self.send(
            make_case(
                "Restore",
                "Restore",
                [{"json": {"handle": handle, "snapshot": snap}}],
                fence=fence,
                connection=conn,
            )
        )

    @rule(which=handles_choice, fence=fences, conn=connections)
    def close_session(self, which: str, fence: str, conn: str | None) -> None:
        handle, _ = self._handle(which)
        rec = self.send(
            make_case(
                "CloseSession", "CloseSession", [{"json": {"handle": handle}}], fence=fence, connection=conn
            )
        )
        if rec.get("code") == 0:
            for h in [h for h in self.handles if h[0] == handle]:
                self.handles.remove(h)
                self.closed_handles.append(h[0])

    @precondition(lambda self: bool(self.handles))
    @rule(conn=st.sampled_from(["c1", "c2"]))
    def close_connection(self, conn: str) -> None:
        """The daemon ends the sessions of a closed connection (asynchronously: both are waited for)."""
        self.pair.close_connection(conn)
        gone = [h for h in self.handles if h[1] == conn]
        probes = [make_case("settle", "ExplainContext", [{"json": {"handle": h}}]) for h, _ in gone]
        self.pair.settle(probes, until_code=9)
        for h in gone:
            self.handles.remove(h)
            self.closed_handles.append(h[0])
        self.stats["connections closed"] += 1

    # -- malformed requests -------------------------------------------------------------------------------

    _METHODS = (
        "Health",
        "Status",
        "LoadModel",
        "UnloadModel",
        "Describe",
        "OpenSession",
        "Embed",
        "ListModels",
        "DiskStats",
        "RemoveModel",
        "PushModel",
        "EnsurePrefix",
        "PrefillSuffix",
        "Decode",
        "ExplainContext",
        "Snapshot",
        "Restore",
        "CloseSession",
    )

    def _valid_body(self, method: str) -> dict[str, Any]:
        handle = self.handles[-1][0] if self.handles else "<IID>/1/999"
        man = {
            "backend": "llama",
            "prompt_format": "",
            "prompt_template_digest": "",
            "runtime_digest": "",
            "add_bos": False,
            "stable_bytes": 0,
            "total_bytes": 0,
            "stable_byte_hash": "",
        }
        bodies: dict[str, dict[str, Any]] = {
            "Health": {},
            "Status": {"owner_instance_id": "<IID>"},
            "LoadModel": {**self._model_body("good", 128, "<IID>"), "expected_generation": 0},
            "UnloadModel": {"expected_generation": 0},
            "Describe": self._model_body("good", 128, "<IID>"),
            "OpenSession": self._model_body("good", 128, "<IID>"),
            "Embed": {**self._model_body("good", 128, "<IID>"), "text": "hi"},
            "ListModels": {},
            "DiskStats": {},
            "RemoveModel": {"name": "nosuch"},
            "PushModel": {
                "manifest": {
                    "name": "t9",
                    "type": "llama",
                    "digest": "0" * 64,
                    "total_bytes": 1,
                    "format": "file",
                },
                "data": "AA==",
            },
            "EnsurePrefix": {"handle": handle, "prefix": {"Text": "hi", "Manifest": man}},
            "PrefillSuffix": {"handle": handle, "suffix": {"Text": "hi", "Manifest": man}},
            "Decode": {
                "handle": handle,
                "config": {
                    "MaxTokens": 1,
                    "Temperature": 0,
                    "TopP": None,
                    "TopK": 0,
                    "Seed": 7,
                    "ParserProtocols": None,
                    "ReasoningFormat": "",
                    "StructuredOutput": {"Protocol": "", "Payload": "", "ToolName": ""},
                },
            },
            "ExplainContext": {"handle": handle},
            "Snapshot": {"handle": handle},
            "Restore": {
                "handle": handle,
                "snapshot": {
                    "state_id": "nope",
                    "resident_tokens": 0,
                    "resident_token_ids": [1, 2],
                    "manifest": man,
                },
            },
            "CloseSession": {"handle": "<IID>/1/999"},
        }
        return bodies[method]

    @rule(method=st.sampled_from(_METHODS), data=st.data(), fence=st.sampled_from(["ok", "ok", "missing"]))
    def wrong_type(self, method: str, data: st.DataObject, fence: str) -> None:
        body = self._valid_body(method)
        paths = _paths(body)
        if not paths:
            payload: Any = data.draw(wrong_values)
        else:
            path = data.draw(st.sampled_from(paths))
            payload = _set(body, path, data.draw(wrong_values))
        self.send(make_case(f"{method}.wrong_type", method, [{"json": payload}], fence=fence))

    @rule(method=st.sampled_from(_METHODS), text=malformed, fence=st.sampled_from(["ok", "missing"]))
    def malformed_json(self, method: str, text: str, fence: str) -> None:
        self.send(make_case(f"{method}.malformed", method, [{"text": text}], fence=fence))

    @rule(method=st.sampled_from(_METHODS), ct=content_types)
    def foreign_content_type(self, method: str, ct: str | None) -> None:
        self.send(
            make_case(f"{method}.content_type", method, [{"json": self._valid_body(method)}], content_type=ct)
        )

    @rule(method=st.sampled_from(["Health", "Status", "CloseSession", "ListModels"]))
    def oversized(self, method: str) -> None:
        body = {**self._valid_body(method), "pad": "x" * BIG_PAD}
        self.send(make_case(f"{method}.oversized", method, [{"json": body}]))

    @rule(
        frames=st.sampled_from(["none", "empty"]),
        method=st.sampled_from(["Health", "Status", "Decode", "PushModel", "CloseSession"]),
    )
    def framing(self, frames: str, method: str) -> None:
        payloads: list[dict[str, Any]] = [] if frames == "none" else [{"text": ""}]
        self.send(make_case(f"{method}.frames_{frames}", method, payloads))

    @rule(
        path=st.sampled_from(
            [
                "/contenox.transport.v1.Compute/Nope",
                "/contenox.transport.v2.Compute/Health",
                "/contenox.transport.v1.Compute/health",
                "/grpc.health.v1.Health/Check",
            ]
        )
    )
    def unknown_path(self, path: str) -> None:
        self.send(make_case("unknown", "", [{"json": {}}], path=path))


_STEPS: Final = {"none": 30, "llama": 30}


def _run(backend: str, binary: Path, max_examples: int) -> None:
    machine: type[DifferentialMachine] = type(
        f"Differential_{backend}",
        (DifferentialMachine,),
        {"backend": backend, "binary": binary, "stats": Counter()},
    )
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                settings.default,
                max_examples=max_examples,
                stateful_step_count=_STEPS[backend],
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        print(f"\ndifferential {backend}: {dict(machine.stats)}")


# A hang guard, not a speed target: 200 examples against a daemon pair take minutes on a busy 2-core
# machine, past the project's 300 s default.
DIFFERENTIAL_TIMEOUT_S: Final = 3600


@pytest.mark.real_daemon("none")
@pytest.mark.timeout(DIFFERENTIAL_TIMEOUT_S)
def test_differential_none(modeld_none: BuildResult) -> None:
    """Backend none: the simulator (fake engine, backend none) and the real modeld answer alike."""
    _run("none", modeld_none.binary, settings.default.max_examples)


@pytest.mark.real_daemon("llama")
@pytest.mark.timeout(DIFFERENTIAL_TIMEOUT_S)
def test_differential_llama(modeld_llama: BuildResult) -> None:
    """Backend llama: the simulator with the llama.cpp engine and the real llama modeld answer alike."""
    if not llama_available():
        unavailable(
            f"the simulator's llama engine needs llama-cpp-python 0.3.33 ({llama_unavailable_reason()}); "
            "build and install it: python tools/build_llama_wheel.py --install"
        )
    _run("llama", modeld_llama.binary, max(1, settings.default.max_examples // 4))
