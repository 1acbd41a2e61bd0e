"""The connector's value types: frozen dataclasses mirroring the Go ``transport`` structs.

Field names are the Go names in snake_case (``NumCtx`` → ``num_ctx``); each class converts to and
from its generated protobuf message (:meth:`to_pb` / :meth:`from_pb`), which the codec writes as
Go JSON. Go facts: ``runtime/transport/session.go`` (Config, ModelInfo, DeviceInfo, AdapterSpec,
ActiveModel, DaemonStatus, SessionSnapshot, ColdKVBlock, PrefixInput, SuffixInput, PrefixStatus,
SuffixStatus, DecodeConfig, StructuredOutputConfig, ToolCall, StreamChunk, ContextReport,
ResidencyReport), ``runtime/transport/nodeadmin.go`` (NodeModel, NodeDiskStats, PushManifest,
PushResult), ``runtime/contextasm/manifest.go`` (ContextManifest, ManifestSegment) and
``runtime/modelrepo/modeldconn/modeldconn.go`` (ModelRef).

Go pointers are ``None``-able here (``DecodeConfig.temperature``, ``SuffixInput.enable_thinking``,
``Status.active``, ``ContextReport.residency``). A ``PrefixInput``/``SuffixInput`` without a
manifest is sent with the zero manifest, as the Go connector does (its Manifest is a value).
Slices are tuples; a nil and an empty Go slice are the same here (decisions.md D3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from google.protobuf.message import Message

from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "ActiveModel",
    "AdapterSpec",
    "Chunk",
    "ColdKVBlock",
    "Config",
    "ContextManifest",
    "ContextReport",
    "DecodeConfig",
    "DeviceInfo",
    "DiskStats",
    "Health",
    "ManifestSegment",
    "ModelInfo",
    "ModelRef",
    "NodeModel",
    "PrefixInput",
    "PrefixStatus",
    "PushManifest",
    "PushResult",
    "ResidencyCapabilities",
    "ResidencyReport",
    "SessionSnapshot",
    "Status",
    "StructuredOutputConfig",
    "SuffixInput",
    "SuffixStatus",
    "ToolCall",
    "ToolCallFunction",
]

T = TypeVar("T", bound="_Wire")

# Field kinds: how a dataclass field maps onto its protobuf field.
_SCALAR = "scalar"  # str / int / float / bool / bytes
_LIST = "list"  # repeated scalar -> tuple
_OPT = "opt"  # proto3 optional scalar (Go pointer) -> value or None
_MSG = "msg"  # value struct -> nested dataclass
_PTR = "ptr"  # pointer struct -> nested dataclass or None
_MSGS = "msgs"  # repeated struct -> tuple of dataclasses
_ZMSG = "zmsg"  # value struct the caller may leave out (None -> the zero message)


def _f(pb_name: str, default: Any = dataclasses.MISSING, *, kind: str = _SCALAR, of: Any = None) -> Any:
    meta = {"pb": pb_name, "kind": kind, "of": of}
    if kind in (_LIST, _MSGS):
        return field(default=(), metadata=meta)
    if kind == _MSG and default is dataclasses.MISSING:
        return field(default_factory=lambda: of(), metadata=meta)
    if kind in (_OPT, _PTR, _ZMSG) and default is dataclasses.MISSING:
        return field(default=None, metadata=meta)
    return field(default=default, metadata=meta)


class _Wire:
    """Mixin: conversion driven by the field metadata."""

    _pb: ClassVar[type[Message]]

    @classmethod
    def from_pb(cls: type[T], msg: Message) -> T:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            name, kind, of = f.metadata["pb"], f.metadata["kind"], f.metadata["of"]
            value = getattr(msg, name)
            if kind == _SCALAR:
                kwargs[f.name] = value
            elif kind == _LIST:
                kwargs[f.name] = tuple(value)
            elif kind == _OPT:
                kwargs[f.name] = value if msg.HasField(name) else None
            elif kind in (_MSG, _ZMSG):
                kwargs[f.name] = of.from_pb(value)
            elif kind == _PTR:
                kwargs[f.name] = of.from_pb(value) if msg.HasField(name) else None
            else:  # _MSGS
                kwargs[f.name] = tuple(of.from_pb(v) for v in value)
        return cls(**kwargs)

    def to_pb(self) -> Any:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            name, kind, of = f.metadata["pb"], f.metadata["kind"], f.metadata["of"]
            value = getattr(self, f.name)
            if kind == _SCALAR:
                kwargs[name] = value
            elif kind == _LIST:
                kwargs[name] = list(value)
            elif kind in (_OPT, _PTR):
                if value is not None:
                    kwargs[name] = value if kind == _OPT else value.to_pb()
            elif kind == _MSG:
                kwargs[name] = value.to_pb()
            elif kind == _ZMSG:
                kwargs[name] = (value if value is not None else of()).to_pb()
            else:  # _MSGS
                kwargs[name] = [v.to_pb() for v in value]
        return self._pb(**kwargs)


# ------------------------------------------------------------------------------ model identity


@dataclass(frozen=True)
class AdapterSpec(_Wire):
    """A LoRA adapter (``transport.AdapterSpec``); part of the model identity, in order."""

    _pb = pb.AdapterSpec
    name: str = _f("name", "")
    path: str = _f("path", "")
    digest: str = _f("digest", "")
    scale: float = _f("scale", 0.0)


@dataclass(frozen=True)
class Config(_Wire):
    """``transport.Config``: the runtime knobs that are part of the model identity."""

    _pb = pb.Config
    num_ctx: int = _f("NumCtx", 0)
    hot_context_tokens: int = _f("HotContextTokens", 0)
    planner_effective_context: int = _f("PlannerEffectiveContext", 0)
    num_batch: int = _f("NumBatch", 0)
    num_threads: int = _f("NumThreads", 0)
    num_gpu_layers: int = _f("NumGpuLayers", 0)
    tensor_split: tuple[float, ...] = _f("TensorSplit", kind=_LIST)
    flash_attn: bool = _f("FlashAttn", False)
    kv_cache_type: str = _f("KVCacheType", "")
    prompt_format: str = _f("PromptFormat", "")
    prompt_template_digest: str = _f("PromptTemplateDigest", "")
    disable_bos: bool = _f("DisableBOS", False)
    reasoning_format: str = _f("ReasoningFormat", "")


@dataclass(frozen=True)
class ModelRef:
    """The typed model handle (Go ``modeldconn.ModelRef``): name + type + digest are the cache
    identity, ``path`` the on-disk location the daemon loads (empty: resolved in its models dir)."""

    name: str
    type: str
    digest: str = ""
    path: str = ""
    adapters: tuple[AdapterSpec, ...] = ()

    def open_request(self, owner: str, cfg: Config) -> pb.OpenSessionReq:
        """``openSessionReq`` (also Describe's request), owner in the body."""
        return pb.OpenSessionReq(
            owner_instance_id=owner,
            model_name=self.name,
            type=self.type,
            digest=self.digest,
            path=self.path,
            config=cfg.to_pb(),
            adapters=[a.to_pb() for a in self.adapters],
        )

    def load_request(self, owner: str, cfg: Config, expected_generation: int = 0) -> pb.LoadModelReq:
        return pb.LoadModelReq(
            owner_instance_id=owner,
            model_name=self.name,
            type=self.type,
            digest=self.digest,
            path=self.path,
            config=cfg.to_pb(),
            adapters=[a.to_pb() for a in self.adapters],
            expected_generation=expected_generation,
        )

    def embed_request(self, owner: str, cfg: Config, text: str) -> pb.EmbedReq:
        """``embedReq``: Go's Embed carries no adapters."""
        return pb.EmbedReq(
            owner_instance_id=owner,
            model_name=self.name,
            type=self.type,
            digest=self.digest,
            path=self.path,
            config=cfg.to_pb(),
            text=text,
        )


# ------------------------------------------------------------------------------ manifests


@dataclass(frozen=True)
class ManifestSegment(_Wire):
    _pb = pb.ManifestSegment
    kind: str = _f("kind", "")
    stable: bool = _f("stable", False)
    cache_class: str = _f("cache_class", "")
    invalidation: str = _f("invalidation", "")
    byte_start: int = _f("byte_start", 0)
    byte_end: int = _f("byte_end", 0)
    byte_hash: str = _f("byte_hash", "")
    token_start: int = _f("token_start", 0)
    token_end: int = _f("token_end", 0)
    token_hash: str = _f("token_hash", "")
    tool_calls_json: str = _f("tool_calls_json", "")
    tool_call_id: str = _f("tool_call_id", "")


@dataclass(frozen=True)
class ContextManifest(_Wire):
    """``contextasm.ContextManifest``; the all-default value is the zero manifest."""

    _pb = pb.ContextManifest
    profile_id: str = _f("profile_id", "")
    backend: str = _f("backend", "")
    backend_version: str = _f("backend_version", "")
    model_digest: str = _f("model_digest", "")
    prompt_format: str = _f("prompt_format", "")
    prompt_template_digest: str = _f("prompt_template_digest", "")
    runtime_digest: str = _f("runtime_digest", "")
    add_bos: bool = _f("add_bos", False)
    stable_bytes: int = _f("stable_bytes", 0)
    total_bytes: int = _f("total_bytes", 0)
    stable_byte_hash: str = _f("stable_byte_hash", "")
    stable_token_hash: str = _f("stable_token_hash", "")
    volatile_token_hash: str = _f("volatile_token_hash", "")
    segments: tuple[ManifestSegment, ...] = _f("segments", kind=_MSGS, of=ManifestSegment)


# ------------------------------------------------------------------------------ session inputs


@dataclass(frozen=True)
class PrefixInput(_Wire):
    """The stable prefix (``transport.PrefixInput``); ``tools`` is JSON-array text."""

    _pb = pb.PrefixInput
    text: str = _f("Text", "")
    manifest: ContextManifest | None = _f("Manifest", kind=_ZMSG, of=ContextManifest)  # noqa: RUF009
    tools: str = _f("Tools", "")


@dataclass(frozen=True)
class SuffixInput(_Wire):
    """The volatile suffix (``transport.SuffixInput``); ``enable_thinking`` None = backend default."""

    _pb = pb.SuffixInput
    text: str = _f("Text", "")
    manifest: ContextManifest | None = _f("Manifest", kind=_ZMSG, of=ContextManifest)  # noqa: RUF009
    enable_thinking: bool | None = _f("EnableThinking", kind=_OPT)
    reasoning_effort: str = _f("ReasoningEffort", "")


@dataclass(frozen=True)
class StructuredOutputConfig(_Wire):
    _pb = pb.StructuredOutputConfig
    protocol: str = _f("Protocol", "")
    payload: str = _f("Payload", "")
    tool_name: str = _f("ToolName", "")


@dataclass(frozen=True)
class DecodeConfig(_Wire):
    """``transport.DecodeConfig``; None = the daemon's default (Go nil pointer)."""

    _pb = pb.DecodeConfig
    max_tokens: int = _f("MaxTokens", 0)
    temperature: float | None = _f("Temperature", kind=_OPT)
    top_p: float | None = _f("TopP", kind=_OPT)
    top_k: int = _f("TopK", 0)
    seed: int | None = _f("Seed", kind=_OPT)
    parser_protocols: tuple[str, ...] = _f("ParserProtocols", kind=_LIST)
    reasoning_format: str = _f("ReasoningFormat", "")
    structured_output: StructuredOutputConfig = _f("StructuredOutput", kind=_MSG, of=StructuredOutputConfig)  # noqa: RUF009


# ------------------------------------------------------------------------------ session outputs


@dataclass(frozen=True)
class PrefixStatus(_Wire):
    _pb = pb.PrefixStatus
    reused_tokens: int = _f("ReusedTokens", 0)
    prefilled_tokens: int = _f("PrefilledTokens", 0)
    dropped_tokens: int = _f("DroppedTokens", 0)
    prefix_tokens: int = _f("PrefixTokens", 0)
    resident_tokens: int = _f("ResidentTokens", 0)
    available_tokens: int = _f("AvailableTokens", 0)
    stable_byte_hash: str = _f("StableByteHash", "")
    stable_token_hash: str = _f("StableTokenHash", "")
    manifest_digest: str = _f("ManifestDigest", "")


@dataclass(frozen=True)
class SuffixStatus(_Wire):
    _pb = pb.SuffixStatus
    suffix_tokens: int = _f("SuffixTokens", 0)
    prefix_tokens: int = _f("PrefixTokens", 0)
    resident_tokens: int = _f("ResidentTokens", 0)
    available_tokens: int = _f("AvailableTokens", 0)
    manifest_digest: str = _f("ManifestDigest", "")


@dataclass(frozen=True)
class ToolCallFunction(_Wire):
    _pb = pb.ToolCallFunction
    name: str = _f("name", "")
    arguments: str = _f("arguments", "")


@dataclass(frozen=True)
class ToolCall(_Wire):
    """``transport.ToolCall``; ``function.arguments`` is JSON text."""

    _pb = pb.ToolCall
    id: str = _f("id", "")
    type: str = _f("type", "")
    function: ToolCallFunction = _f("function", kind=_MSG, of=ToolCallFunction)  # noqa: RUF009


@dataclass(frozen=True)
class Chunk:
    """One Decode delta (``transport.StreamChunk`` without its error: an error is raised)."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @classmethod
    def from_pb(cls, msg: pb.WireChunk) -> Chunk:
        return cls(msg.text, msg.thinking, tuple(ToolCall.from_pb(t) for t in msg.tool_calls))

    def is_empty(self) -> bool:
        return not (self.text or self.thinking or self.tool_calls)


@dataclass(frozen=True)
class ResidencyCapabilities(_Wire):
    _pb = pb.ResidencyCapabilities
    remove_tail: bool = _f("remove_tail", False)
    remove_middle: bool = _f("remove_middle", False)
    position_shift: bool = _f("position_shift", False)
    sparse_attention: bool = _f("sparse_attention", False)
    sliding_window_attention_tokens: int = _f("sliding_window_attention_tokens", 0)
    cold_store: bool = _f("cold_store", False)
    recompute_range: bool = _f("recompute_range", False)


@dataclass(frozen=True)
class ResidencyReport(_Wire):
    _pb = pb.ResidencyReport
    budget_tokens: int = _f("budget_tokens", 0)
    total_tokens: int = _f("total_tokens", 0)
    hot_tokens: int = _f("hot_tokens", 0)
    cold_tokens: int = _f("cold_tokens", 0)
    protected_tokens: int = _f("protected_tokens", 0)
    hot_blocks: int = _f("hot_blocks", 0)
    cold_blocks: int = _f("cold_blocks", 0)
    over_budget: bool = _f("over_budget", False)
    capabilities: ResidencyCapabilities = _f("capabilities", kind=_MSG, of=ResidencyCapabilities)  # noqa: RUF009
    diagnostics: tuple[str, ...] = _f("diagnostics", kind=_LIST)
    error: str = _f("error", "")


@dataclass(frozen=True)
class ContextReport(_Wire):
    _pb = pb.ContextReport
    resident_tokens: int = _f("ResidentTokens", 0)
    prefix_tokens: int = _f("PrefixTokens", 0)
    num_ctx: int = _f("NumCtx", 0)
    hot_context_tokens: int = _f("HotContextTokens", 0)
    planner_effective_context: int = _f("PlannerEffectiveContext", 0)
    available_tokens: int = _f("AvailableTokens", 0)
    stable_byte_hash: str = _f("StableByteHash", "")
    stable_token_hash: str = _f("StableTokenHash", "")
    manifest_digest: str = _f("ManifestDigest", "")
    manifest: ContextManifest = _f("Manifest", kind=_MSG, of=ContextManifest)  # noqa: RUF009
    closed: bool = _f("Closed", False)
    fatal_error: str = _f("fatal_error", "")
    physical_prefill_calls: int = _f("physical_prefill_calls", 0)
    physical_prefill_tokens: int = _f("physical_prefill_tokens", 0)
    deferred_prefill_calls: int = _f("deferred_prefill_calls", 0)
    deferred_prefill_tokens: int = _f("deferred_prefill_tokens", 0)
    decode_calls: int = _f("decode_calls", 0)
    decode_prompt_tokens: int = _f("decode_prompt_tokens", 0)
    residency: ResidencyReport | None = _f("residency", kind=_PTR, of=ResidencyReport)  # noqa: RUF009


@dataclass(frozen=True)
class ColdKVBlock(_Wire):
    _pb = pb.ColdKVBlock
    start: int = _f("start", 0)
    end: int = _f("end", 0)
    tokens: tuple[int, ...] = _f("tokens", kind=_LIST)
    prefix_tokens: tuple[int, ...] = _f("prefix_tokens", kind=_LIST)
    token_hash: str = _f("token_hash", "")
    kv: bytes = _f("kv", b"")
    cache_class: str = _f("cache_class", "")
    last_used: int = _f("last_used", 0)


@dataclass(frozen=True)
class SessionSnapshot(_Wire):
    """``transport.SessionSnapshot`` as it travels: the raw state never does (``state_id``)."""

    _pb = pb.SessionSnapshot
    state_id: str = _f("state_id", "")
    resident_tokens: int = _f("resident_tokens", 0)
    prefix_tokens: int = _f("prefix_tokens", 0)
    num_ctx: int = _f("num_ctx", 0)
    resident_token_ids: tuple[int, ...] = _f("resident_token_ids", kind=_LIST)
    cold_kv_blocks: tuple[ColdKVBlock, ...] = _f("cold_kv_blocks", kind=_MSGS, of=ColdKVBlock)
    stable_text: str = _f("stable_text", "")
    prefix_text: str = _f("prefix_text", "")
    tools: str = _f("tools", "")
    manifest: ContextManifest = _f("manifest", kind=_MSG, of=ContextManifest)  # noqa: RUF009


# ------------------------------------------------------------------------------ daemon answers


@dataclass(frozen=True)
class DeviceInfo(_Wire):
    _pb = pb.DeviceInfo
    index: int = _f("index", 0)
    name: str = _f("name", "")
    description: str = _f("description", "")
    type: str = _f("type", "")
    memory_free: int = _f("memory_free", 0)
    memory_total: int = _f("memory_total", 0)
    memory_free_known: bool = _f("memory_free_known", False)
    memory_total_known: bool = _f("memory_total_known", False)


@dataclass(frozen=True)
class ModelInfo(_Wire):
    """Describe's answer (``transport.ModelInfo``)."""

    _pb = pb.DescribeResp
    model_max_context: int = _f("model_max_context", 0)
    effective_context: int = _f("effective_context", 0)
    memory_context_tokens: int = _f("memory_context_tokens", 0)
    hot_context_tokens: int = _f("hot_context_tokens", 0)
    planner_effective_context: int = _f("planner_effective_context", 0)
    kv_bytes_per_token: int = _f("kv_bytes_per_token", 0)
    free_bytes: int = _f("free_bytes", 0)
    weights_bytes: int = _f("weights_bytes", 0)
    overhead_bytes: int = _f("overhead_bytes", 0)
    reserved_bytes: int = _f("reserved_bytes", 0)
    user_limit_bytes: int = _f("user_limit_bytes", 0)
    min_free_bytes: int = _f("min_free_bytes", 0)
    host_cold_budget_bytes: int = _f("host_cold_budget_bytes", 0)
    usable_bytes: int = _f("usable_bytes", 0)
    required_bytes: int = _f("required_bytes", 0)
    clamped: bool = _f("clamped", False)
    reason: str = _f("reason", "")
    device_kind: str = _f("device_kind", "")
    device_id: str = _f("device_id", "")
    device_total_bytes: int = _f("device_total_bytes", 0)
    shared_with_display: bool = _f("shared_with_display", False)
    requested_gpu_layers: int = _f("requested_gpu_layers", 0)
    resolved_gpu_layers: int = _f("resolved_gpu_layers", 0)
    sparse_attention: bool = _f("sparse_attention", False)
    sliding_window_attention_tokens: int = _f("sliding_window_attention_tokens", 0)
    chat_template_format: str = _f("chat_template_format", "")
    chat_template_thinking_start_tag: str = _f("chat_template_thinking_start_tag", "")
    chat_template_reasoning_format: str = _f("chat_template_reasoning_format", "")
    chat_template_supports_tool_calls: bool = _f("chat_template_supports_tool_calls", False)
    chat_template_supports_thinking: bool = _f("chat_template_supports_thinking", False)
    chat_template_supports_reasoning_effort: bool = _f("chat_template_supports_reasoning_effort", False)
    runtime_name: str = _f("runtime_name", "")
    runtime_digest: str = _f("runtime_digest", "")
    runtime_system_info: str = _f("runtime_system_info", "")
    supports_gpu_offload: bool = _f("supports_gpu_offload", False)
    devices: tuple[DeviceInfo, ...] = _f("devices", kind=_MSGS, of=DeviceInfo)


@dataclass(frozen=True)
class ActiveModel(_Wire):
    """The model in the slot (``transport.ActiveModel``) and its generation."""

    _pb = pb.ActiveModel
    model_name: str = _f("model_name", "")
    type: str = _f("type", "")
    digest: str = _f("digest", "")
    path: str = _f("path", "")
    config: Config = _f("config", kind=_MSG, of=Config)  # noqa: RUF009
    adapters: tuple[AdapterSpec, ...] = _f("adapters", kind=_MSGS, of=AdapterSpec)
    generation: int = _f("generation", 0)


@dataclass(frozen=True)
class Status(_Wire):
    """``transport.DaemonStatus``: owner, backend, slot state, active model."""

    _pb = pb.DaemonStatus
    owner_instance_id: str = _f("owner_instance_id", "")
    backend: str = _f("backend", "")
    state: str = _f("state", "")
    active: ActiveModel | None = _f("active", kind=_PTR, of=ActiveModel)  # noqa: RUF009
    busy_operation: str = _f("busy_operation", "")
    last_error: str = _f("last_error", "")


@dataclass(frozen=True)
class Health(_Wire):
    """What the unfenced Health RPC answered (Go ``HealthStatus``)."""

    _pb = pb.HealthResp
    instance_id: str = _f("instance_id", "")
    ready: bool = _f("ready", False)
    backend: str = _f("backend", "")


@dataclass(frozen=True)
class NodeModel(_Wire):
    _pb = pb.NodeModel
    name: str = _f("name", "")
    type: str = _f("type", "")
    digest: str = _f("digest", "")
    size_bytes: int = _f("size_bytes", 0)
    context_length: int = _f("context_length", 0)


@dataclass(frozen=True)
class DiskStats(_Wire):
    _pb = pb.NodeDiskStats
    free_bytes: int = _f("free_bytes", 0)
    used_bytes: int = _f("used_bytes", 0)
    total_bytes: int = _f("total_bytes", 0)


@dataclass(frozen=True)
class PushManifest(_Wire):
    """``transport.PushManifest``; ``digest`` = sha256 hex of the bytes as sent, ``format`` file|tar."""

    _pb = pb.PushManifest
    name: str = _f("name", "")
    type: str = _f("type", "")
    digest: str = _f("digest", "")
    total_bytes: int = _f("total_bytes", 0)
    format: str = _f("format", "file")


@dataclass(frozen=True)
class PushResult(_Wire):
    _pb = pb.PushModelResp
    already_present: bool = _f("already_present", False)
    bytes_written: int = _f("bytes_written", 0)
