"""The Engine protocol of the simulator: what the slot needs from an inference backend.

Engines know nothing of gRPC, leases or handles. They speak the generated protobuf messages of
``compute.proto`` as their data vocabulary and raise the typed errors of
:mod:`modeldconn.wire.errors` (the Go sentinels the real backends wrap) or :class:`PlainError` for an
error that wraps no sentinel (Go's ``fmt.Errorf`` without ``%w`` of a sentinel).

Layering mirrors the real daemon (``modeld/llama/service.go``, ``modeld/llama/llamasession/llama.go``):

* :class:`Engine` — the backend service: ``inspect`` (header-only facts), ``describe`` (capacity answer),
  ``load`` (= the backend's OpenSession: model + context), ``embed`` (one-shot).
* :class:`LoadedModel` — one loaded model + its native context; ``session()`` is the KV state on it.
* :class:`EngineSession` — ensure_prefix / prefill_suffix / decode / explain / snapshot / restore / close.

Also here: the manifest rules of ``runtime/contextasm/manifest.go`` the engines apply (zero, runtime
compatibility) and the hash helpers, which defer to ``modeldconn.wire.codec`` when it provides them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.codec import hash_string, manifest_digest, token_hash

__all__ = [
    "NO_BACKEND_TEXT",
    "Chunk",
    "Engine",
    "EngineSession",
    "LoadedModel",
    "ModelFacts",
    "PlainError",
    "SnapshotResult",
    "check_model_path",
    "compatible_runtime",
    "go_quote",
    "hash_string",
    "inspect_failure",
    "manifest_digest",
    "manifest_is_zero",
    "token_hash",
]

#: The ``none`` backend's answer to every model call (cmd/modeld/backend.go errNoBackend).
NO_BACKEND_TEXT = (
    "modeld: no local inference backend compiled in this build "
    "(build with -tags 'openvino openvino_genai' or -tags llamanode)"
)


class PlainError(werr.InternalError):
    """An error wrapping no sentinel: the server reports it as ``internal: <text>``; wrapped in a load
    failure it becomes ``model_load_failed: modeld failed to load model: <text>``."""


def go_quote(s: str) -> str:
    """Go's ``%q`` / ``strconv.Quote`` for the strings we quote (paths, types, names)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:  # surrogate escape of undecodable bytes
            out.append("\\ufffd" if o < 0xDC80 else f"\\x{o - 0xDC00:02x}")
        elif not ch.isprintable() and o > 0x7F:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ----------------------------------------------------------------------------------- model paths


def inspect_failure(backend: str, path: str) -> PlainError:
    """A backend's answer to a model path it cannot read as a model (header inspection failed):
    llama ``llama model KV profile: llamacppshim: inspect GGUF metadata "<path>"`` (recorded); openvino
    ``openvino model KV profile: openvinoshim: inspect model "<path>"`` (modeld/openvino/service.go's
    wrapping; the native text is ours)."""
    if backend == "openvino":
        return PlainError(f"openvino model KV profile: openvinoshim: inspect model {go_quote(path)}")
    return PlainError(f"llama model KV profile: llamacppshim: inspect GGUF metadata {go_quote(path)}")


def check_model_path(backend: str, path: str) -> None:
    """Refuse, with :func:`inspect_failure`, a model path whose reading could block: a llama model
    that is not a regular file (a FIFO, a device), a path with a NUL byte, an openvino directory whose
    ``modeld_sim.json`` is not a regular file. A missing path passes: the engine answers it without
    blocking. Blocking itself (``stat``): call it on a worker thread, before an engine opens ``path``."""
    if "\0" in path:
        raise inspect_failure(backend, path)
    try:
        st = os.stat(path)
        if backend == "openvino":
            if not stat.S_ISDIR(st.st_mode):
                return
            st = os.stat(os.path.join(path, "modeld_sim.json"))
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise inspect_failure(backend, path)


# ----------------------------------------------------------------------------------- hashing
# The hash helpers are the codec's (one place for each fact): contextasm HashString, HashTokenIDs,
# Digest (session-semantics §5.3, §5.4).

_ZERO_FIELDS = (
    "backend",
    "profile_id",
    "model_digest",
    "prompt_format",
    "prompt_template_digest",
    "runtime_digest",
    "stable_byte_hash",
)


def manifest_is_zero(m: pb.ContextManifest) -> bool:
    """contextasm ContextManifest.IsZero (session-semantics §5.1)."""
    return all(getattr(m, f) == "" for f in _ZERO_FIELDS)


_COMPAT_FIELDS = (
    "profile_id",
    "backend",
    "backend_version",
    "model_digest",
    "prompt_format",
    "prompt_template_digest",
    "runtime_digest",
)


def compatible_runtime(a: pb.ContextManifest, b: pb.ContextManifest) -> tuple[bool, str]:
    """contextasm CompatibleRuntime (session-semantics §5.2): ``(ok, reason)``."""
    if manifest_is_zero(a) or manifest_is_zero(b):
        return True, ""
    for f in _COMPAT_FIELDS:
        if getattr(a, f) != getattr(b, f):
            return False, f"{f} changed"
    if a.add_bos != b.add_bos:
        return False, "bos policy changed"
    return True, ""


# ----------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class ModelFacts:
    """What a header-only inspection of a model tells (llama: GGUF metadata; openvino: config)."""

    path: str
    backend: str
    architecture: str = ""
    name: str = ""
    context_length: int = 0
    embedding_length: int = 0
    block_count: int = 0
    head_count: int = 0
    head_count_kv: int = 0
    key_length: int = 0
    sliding_window: int = 0
    weights_bytes: int = 0
    has_tokenizer: bool = True
    add_bos: bool = False
    supports_vision: bool = False
    vision_tokens_per_image: int = 0
    chat_template_format: str = ""
    chat_template_thinking_start_tag: str = ""
    chat_template_supports_tool_calls: bool = False
    chat_template_supports_thinking: bool = False
    chat_template_supports_reasoning_effort: bool = False
    supports_embedding: bool = True
    decode_text: str = ""

    @property
    def head_dim(self) -> int:
        if self.key_length > 0:
            return self.key_length
        if self.head_count > 0 and self.embedding_length > 0:
            return self.embedding_length // self.head_count
        return 0

    @property
    def kv_heads(self) -> int:
        return self.head_count_kv if self.head_count_kv > 0 else self.head_count


@dataclass
class Chunk:
    """One element of a Decode stream: a text/thinking delta, tool calls, or a terminal error."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[pb.ToolCall] = field(default_factory=list)
    error: werr.ModeldError | None = None

    def to_wire(self) -> pb.WireChunk:
        """The wire chunk (wire.md §8.1.3): error text without token, the first row's token, and the
        overflow detail when there is one."""
        out = pb.WireChunk(text=self.text, thinking=self.thinking)
        out.tool_calls.extend(self.tool_calls)
        if self.error is not None:
            text, token, detail = werr.chunk_error_fields(self.error)
            out.error = text
            if token:
                out.error_token = token
            if detail is not None:
                out.error_detail.CopyFrom(
                    pb.ContextOverflowDetail(
                        stage=detail.stage,
                        resident_tokens=detail.resident_tokens,
                        additional_tokens=detail.additional_tokens,
                        num_ctx=detail.num_ctx,
                    )
                )
        return out


@dataclass
class SnapshotResult:
    """A session snapshot: the wire part plus the opaque state bytes (never on the wire)."""

    snapshot: pb.SessionSnapshot
    state: bytes


# ----------------------------------------------------------------------------------- protocols


@runtime_checkable
class EngineSession(Protocol):
    """The backend session on a loaded model (its KV state). Every method raises the typed errors of
    :mod:`modeldconn.wire.errors` / :class:`PlainError`; ``session_fatal`` poisons the session."""

    @property
    def closed(self) -> bool: ...

    async def ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus: ...

    async def prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus: ...

    def decode(self, cfg: pb.DecodeConfig, *, deadline: float | None = None) -> AsyncIterator[Chunk]:
        """An async iterator of chunks (one token each); errors arrive as a final chunk. Honours the
        deadline (``asyncio`` loop time) with a ``DeadlineExceeded`` chunk; never blocks the loop."""
        ...

    def explain(self) -> pb.ContextReport: ...

    async def snapshot(self) -> SnapshotResult: ...

    async def restore(self, snapshot: pb.SessionSnapshot, state: bytes) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class LoadedModel(Protocol):
    facts: ModelFacts
    config: pb.Config

    def session(self) -> EngineSession:
        """The model's session (one per loaded model, like the real backend)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """One compiled-in backend (``llama`` or ``openvino``)."""

    backend: str

    def inspect(self, path: str) -> ModelFacts:
        """Header-only facts; raises :class:`PlainError` with the backend's exact text. Reads the model
        file: the slot calls it (and :meth:`describe`) on a worker thread, after
        :func:`check_model_path`, so it must not touch event-loop state."""
        ...

    def describe(self, path: str, config: pb.Config, reclaimable_bytes: int = 0) -> pb.DescribeResp: ...

    async def load(self, path: str, config: pb.Config, adapters: Sequence[pb.AdapterSpec]) -> LoadedModel: ...

    async def embed(self, path: str, config: pb.Config, text: str) -> list[float]: ...
