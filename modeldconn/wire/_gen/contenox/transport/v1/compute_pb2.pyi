from modeldconn.wire._gen.contenox.gojson.v1 import gojson_pb2 as _gojson_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Config(_message.Message):
    __slots__ = ("NumCtx", "HotContextTokens", "PlannerEffectiveContext", "NumBatch", "NumThreads", "NumGpuLayers", "TensorSplit", "FlashAttn", "KVCacheType", "PromptFormat", "PromptTemplateDigest", "DisableBOS", "ReasoningFormat")
    NUMCTX_FIELD_NUMBER: _ClassVar[int]
    HOTCONTEXTTOKENS_FIELD_NUMBER: _ClassVar[int]
    PLANNEREFFECTIVECONTEXT_FIELD_NUMBER: _ClassVar[int]
    NUMBATCH_FIELD_NUMBER: _ClassVar[int]
    NUMTHREADS_FIELD_NUMBER: _ClassVar[int]
    NUMGPULAYERS_FIELD_NUMBER: _ClassVar[int]
    TENSORSPLIT_FIELD_NUMBER: _ClassVar[int]
    FLASHATTN_FIELD_NUMBER: _ClassVar[int]
    KVCACHETYPE_FIELD_NUMBER: _ClassVar[int]
    PROMPTFORMAT_FIELD_NUMBER: _ClassVar[int]
    PROMPTTEMPLATEDIGEST_FIELD_NUMBER: _ClassVar[int]
    DISABLEBOS_FIELD_NUMBER: _ClassVar[int]
    REASONINGFORMAT_FIELD_NUMBER: _ClassVar[int]
    NumCtx: int
    HotContextTokens: int
    PlannerEffectiveContext: int
    NumBatch: int
    NumThreads: int
    NumGpuLayers: int
    TensorSplit: _containers.RepeatedScalarFieldContainer[float]
    FlashAttn: bool
    KVCacheType: str
    PromptFormat: str
    PromptTemplateDigest: str
    DisableBOS: bool
    ReasoningFormat: str
    def __init__(self, NumCtx: _Optional[int] = ..., HotContextTokens: _Optional[int] = ..., PlannerEffectiveContext: _Optional[int] = ..., NumBatch: _Optional[int] = ..., NumThreads: _Optional[int] = ..., NumGpuLayers: _Optional[int] = ..., TensorSplit: _Optional[_Iterable[float]] = ..., FlashAttn: _Optional[bool] = ..., KVCacheType: _Optional[str] = ..., PromptFormat: _Optional[str] = ..., PromptTemplateDigest: _Optional[str] = ..., DisableBOS: _Optional[bool] = ..., ReasoningFormat: _Optional[str] = ...) -> None: ...

class AdapterSpec(_message.Message):
    __slots__ = ("name", "path", "digest", "scale")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    digest: str
    scale: float
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., digest: _Optional[str] = ..., scale: _Optional[float] = ...) -> None: ...

class ManifestSegment(_message.Message):
    __slots__ = ("kind", "stable", "cache_class", "invalidation", "byte_start", "byte_end", "byte_hash", "token_start", "token_end", "token_hash", "tool_calls_json", "tool_call_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STABLE_FIELD_NUMBER: _ClassVar[int]
    CACHE_CLASS_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_FIELD_NUMBER: _ClassVar[int]
    BYTE_START_FIELD_NUMBER: _ClassVar[int]
    BYTE_END_FIELD_NUMBER: _ClassVar[int]
    BYTE_HASH_FIELD_NUMBER: _ClassVar[int]
    TOKEN_START_FIELD_NUMBER: _ClassVar[int]
    TOKEN_END_FIELD_NUMBER: _ClassVar[int]
    TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    kind: str
    stable: bool
    cache_class: str
    invalidation: str
    byte_start: int
    byte_end: int
    byte_hash: str
    token_start: int
    token_end: int
    token_hash: str
    tool_calls_json: str
    tool_call_id: str
    def __init__(self, kind: _Optional[str] = ..., stable: _Optional[bool] = ..., cache_class: _Optional[str] = ..., invalidation: _Optional[str] = ..., byte_start: _Optional[int] = ..., byte_end: _Optional[int] = ..., byte_hash: _Optional[str] = ..., token_start: _Optional[int] = ..., token_end: _Optional[int] = ..., token_hash: _Optional[str] = ..., tool_calls_json: _Optional[str] = ..., tool_call_id: _Optional[str] = ...) -> None: ...

class ContextManifest(_message.Message):
    __slots__ = ("profile_id", "backend", "backend_version", "model_digest", "prompt_format", "prompt_template_digest", "runtime_digest", "add_bos", "stable_bytes", "total_bytes", "stable_byte_hash", "stable_token_hash", "volatile_token_hash", "segments")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ADD_BOS_FIELD_NUMBER: _ClassVar[int]
    STABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    STABLE_BYTE_HASH_FIELD_NUMBER: _ClassVar[int]
    STABLE_TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    VOLATILE_TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    backend: str
    backend_version: str
    model_digest: str
    prompt_format: str
    prompt_template_digest: str
    runtime_digest: str
    add_bos: bool
    stable_bytes: int
    total_bytes: int
    stable_byte_hash: str
    stable_token_hash: str
    volatile_token_hash: str
    segments: _containers.RepeatedCompositeFieldContainer[ManifestSegment]
    def __init__(self, profile_id: _Optional[str] = ..., backend: _Optional[str] = ..., backend_version: _Optional[str] = ..., model_digest: _Optional[str] = ..., prompt_format: _Optional[str] = ..., prompt_template_digest: _Optional[str] = ..., runtime_digest: _Optional[str] = ..., add_bos: _Optional[bool] = ..., stable_bytes: _Optional[int] = ..., total_bytes: _Optional[int] = ..., stable_byte_hash: _Optional[str] = ..., stable_token_hash: _Optional[str] = ..., volatile_token_hash: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[ManifestSegment, _Mapping]]] = ...) -> None: ...

class PrefixInput(_message.Message):
    __slots__ = ("Text", "Manifest", "Tools")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    Text: str
    Manifest: ContextManifest
    Tools: str
    def __init__(self, Text: _Optional[str] = ..., Manifest: _Optional[_Union[ContextManifest, _Mapping]] = ..., Tools: _Optional[str] = ...) -> None: ...

class SuffixInput(_message.Message):
    __slots__ = ("Text", "Manifest", "EnableThinking", "ReasoningEffort")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ENABLETHINKING_FIELD_NUMBER: _ClassVar[int]
    REASONINGEFFORT_FIELD_NUMBER: _ClassVar[int]
    Text: str
    Manifest: ContextManifest
    EnableThinking: bool
    ReasoningEffort: str
    def __init__(self, Text: _Optional[str] = ..., Manifest: _Optional[_Union[ContextManifest, _Mapping]] = ..., EnableThinking: _Optional[bool] = ..., ReasoningEffort: _Optional[str] = ...) -> None: ...

class PrefixStatus(_message.Message):
    __slots__ = ("ReusedTokens", "PrefilledTokens", "DroppedTokens", "PrefixTokens", "ResidentTokens", "AvailableTokens", "StableByteHash", "StableTokenHash", "ManifestDigest")
    REUSEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFILLEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    DROPPEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFIXTOKENS_FIELD_NUMBER: _ClassVar[int]
    RESIDENTTOKENS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLETOKENS_FIELD_NUMBER: _ClassVar[int]
    STABLEBYTEHASH_FIELD_NUMBER: _ClassVar[int]
    STABLETOKENHASH_FIELD_NUMBER: _ClassVar[int]
    MANIFESTDIGEST_FIELD_NUMBER: _ClassVar[int]
    ReusedTokens: int
    PrefilledTokens: int
    DroppedTokens: int
    PrefixTokens: int
    ResidentTokens: int
    AvailableTokens: int
    StableByteHash: str
    StableTokenHash: str
    ManifestDigest: str
    def __init__(self, ReusedTokens: _Optional[int] = ..., PrefilledTokens: _Optional[int] = ..., DroppedTokens: _Optional[int] = ..., PrefixTokens: _Optional[int] = ..., ResidentTokens: _Optional[int] = ..., AvailableTokens: _Optional[int] = ..., StableByteHash: _Optional[str] = ..., StableTokenHash: _Optional[str] = ..., ManifestDigest: _Optional[str] = ...) -> None: ...

class SuffixStatus(_message.Message):
    __slots__ = ("SuffixTokens", "PrefixTokens", "ResidentTokens", "AvailableTokens", "ManifestDigest")
    SUFFIXTOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFIXTOKENS_FIELD_NUMBER: _ClassVar[int]
    RESIDENTTOKENS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLETOKENS_FIELD_NUMBER: _ClassVar[int]
    MANIFESTDIGEST_FIELD_NUMBER: _ClassVar[int]
    SuffixTokens: int
    PrefixTokens: int
    ResidentTokens: int
    AvailableTokens: int
    ManifestDigest: str
    def __init__(self, SuffixTokens: _Optional[int] = ..., PrefixTokens: _Optional[int] = ..., ResidentTokens: _Optional[int] = ..., AvailableTokens: _Optional[int] = ..., ManifestDigest: _Optional[str] = ...) -> None: ...

class StructuredOutputConfig(_message.Message):
    __slots__ = ("Protocol", "Payload", "ToolName")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TOOLNAME_FIELD_NUMBER: _ClassVar[int]
    Protocol: str
    Payload: str
    ToolName: str
    def __init__(self, Protocol: _Optional[str] = ..., Payload: _Optional[str] = ..., ToolName: _Optional[str] = ...) -> None: ...

class DecodeConfig(_message.Message):
    __slots__ = ("MaxTokens", "Temperature", "TopP", "TopK", "Seed", "ParserProtocols", "ReasoningFormat", "StructuredOutput")
    MAXTOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOPP_FIELD_NUMBER: _ClassVar[int]
    TOPK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PARSERPROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    REASONINGFORMAT_FIELD_NUMBER: _ClassVar[int]
    STRUCTUREDOUTPUT_FIELD_NUMBER: _ClassVar[int]
    MaxTokens: int
    Temperature: float
    TopP: float
    TopK: int
    Seed: int
    ParserProtocols: _containers.RepeatedScalarFieldContainer[str]
    ReasoningFormat: str
    StructuredOutput: StructuredOutputConfig
    def __init__(self, MaxTokens: _Optional[int] = ..., Temperature: _Optional[float] = ..., TopP: _Optional[float] = ..., TopK: _Optional[int] = ..., Seed: _Optional[int] = ..., ParserProtocols: _Optional[_Iterable[str]] = ..., ReasoningFormat: _Optional[str] = ..., StructuredOutput: _Optional[_Union[StructuredOutputConfig, _Mapping]] = ...) -> None: ...

class ToolCallFunction(_message.Message):
    __slots__ = ("name", "arguments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "type", "function")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    function: ToolCallFunction
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., function: _Optional[_Union[ToolCallFunction, _Mapping]] = ...) -> None: ...

class ContextOverflowDetail(_message.Message):
    __slots__ = ("stage", "resident_tokens", "additional_tokens", "num_ctx")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_CTX_FIELD_NUMBER: _ClassVar[int]
    stage: str
    resident_tokens: int
    additional_tokens: int
    num_ctx: int
    def __init__(self, stage: _Optional[str] = ..., resident_tokens: _Optional[int] = ..., additional_tokens: _Optional[int] = ..., num_ctx: _Optional[int] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("index", "name", "description", "type", "memory_free", "memory_total", "memory_free_known", "memory_total_known")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_KNOWN_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_KNOWN_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    description: str
    type: str
    memory_free: int
    memory_total: int
    memory_free_known: bool
    memory_total_known: bool
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[str] = ..., memory_free: _Optional[int] = ..., memory_total: _Optional[int] = ..., memory_free_known: _Optional[bool] = ..., memory_total_known: _Optional[bool] = ...) -> None: ...

class ResidencyCapabilities(_message.Message):
    __slots__ = ("remove_tail", "remove_middle", "position_shift", "sparse_attention", "sliding_window_attention_tokens", "cold_store", "recompute_range")
    REMOVE_TAIL_FIELD_NUMBER: _ClassVar[int]
    REMOVE_MIDDLE_FIELD_NUMBER: _ClassVar[int]
    POSITION_SHIFT_FIELD_NUMBER: _ClassVar[int]
    SPARSE_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    SLIDING_WINDOW_ATTENTION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COLD_STORE_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTE_RANGE_FIELD_NUMBER: _ClassVar[int]
    remove_tail: bool
    remove_middle: bool
    position_shift: bool
    sparse_attention: bool
    sliding_window_attention_tokens: int
    cold_store: bool
    recompute_range: bool
    def __init__(self, remove_tail: _Optional[bool] = ..., remove_middle: _Optional[bool] = ..., position_shift: _Optional[bool] = ..., sparse_attention: _Optional[bool] = ..., sliding_window_attention_tokens: _Optional[int] = ..., cold_store: _Optional[bool] = ..., recompute_range: _Optional[bool] = ...) -> None: ...

class ResidencyReport(_message.Message):
    __slots__ = ("budget_tokens", "total_tokens", "hot_tokens", "cold_tokens", "protected_tokens", "hot_blocks", "cold_blocks", "over_budget", "capabilities", "diagnostics", "error")
    BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HOT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COLD_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HOT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    COLD_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    OVER_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    budget_tokens: int
    total_tokens: int
    hot_tokens: int
    cold_tokens: int
    protected_tokens: int
    hot_blocks: int
    cold_blocks: int
    over_budget: bool
    capabilities: ResidencyCapabilities
    diagnostics: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, budget_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., hot_tokens: _Optional[int] = ..., cold_tokens: _Optional[int] = ..., protected_tokens: _Optional[int] = ..., hot_blocks: _Optional[int] = ..., cold_blocks: _Optional[int] = ..., over_budget: _Optional[bool] = ..., capabilities: _Optional[_Union[ResidencyCapabilities, _Mapping]] = ..., diagnostics: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class ContextReport(_message.Message):
    __slots__ = ("ResidentTokens", "PrefixTokens", "NumCtx", "HotContextTokens", "PlannerEffectiveContext", "AvailableTokens", "StableByteHash", "StableTokenHash", "ManifestDigest", "Manifest", "Closed", "fatal_error", "physical_prefill_calls", "physical_prefill_tokens", "deferred_prefill_calls", "deferred_prefill_tokens", "decode_calls", "decode_prompt_tokens", "residency")
    RESIDENTTOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFIXTOKENS_FIELD_NUMBER: _ClassVar[int]
    NUMCTX_FIELD_NUMBER: _ClassVar[int]
    HOTCONTEXTTOKENS_FIELD_NUMBER: _ClassVar[int]
    PLANNEREFFECTIVECONTEXT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLETOKENS_FIELD_NUMBER: _ClassVar[int]
    STABLEBYTEHASH_FIELD_NUMBER: _ClassVar[int]
    STABLETOKENHASH_FIELD_NUMBER: _ClassVar[int]
    MANIFESTDIGEST_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    FATAL_ERROR_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_PREFILL_CALLS_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_PREFILL_CALLS_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DECODE_CALLS_FIELD_NUMBER: _ClassVar[int]
    DECODE_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESIDENCY_FIELD_NUMBER: _ClassVar[int]
    ResidentTokens: int
    PrefixTokens: int
    NumCtx: int
    HotContextTokens: int
    PlannerEffectiveContext: int
    AvailableTokens: int
    StableByteHash: str
    StableTokenHash: str
    ManifestDigest: str
    Manifest: ContextManifest
    Closed: bool
    fatal_error: str
    physical_prefill_calls: int
    physical_prefill_tokens: int
    deferred_prefill_calls: int
    deferred_prefill_tokens: int
    decode_calls: int
    decode_prompt_tokens: int
    residency: ResidencyReport
    def __init__(self, ResidentTokens: _Optional[int] = ..., PrefixTokens: _Optional[int] = ..., NumCtx: _Optional[int] = ..., HotContextTokens: _Optional[int] = ..., PlannerEffectiveContext: _Optional[int] = ..., AvailableTokens: _Optional[int] = ..., StableByteHash: _Optional[str] = ..., StableTokenHash: _Optional[str] = ..., ManifestDigest: _Optional[str] = ..., Manifest: _Optional[_Union[ContextManifest, _Mapping]] = ..., Closed: _Optional[bool] = ..., fatal_error: _Optional[str] = ..., physical_prefill_calls: _Optional[int] = ..., physical_prefill_tokens: _Optional[int] = ..., deferred_prefill_calls: _Optional[int] = ..., deferred_prefill_tokens: _Optional[int] = ..., decode_calls: _Optional[int] = ..., decode_prompt_tokens: _Optional[int] = ..., residency: _Optional[_Union[ResidencyReport, _Mapping]] = ...) -> None: ...

class ColdKVBlock(_message.Message):
    __slots__ = ("start", "end", "tokens", "prefix_tokens", "token_hash", "kv", "cache_class", "last_used")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    CACHE_CLASS_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    tokens: _containers.RepeatedScalarFieldContainer[int]
    prefix_tokens: _containers.RepeatedScalarFieldContainer[int]
    token_hash: str
    kv: bytes
    cache_class: str
    last_used: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., tokens: _Optional[_Iterable[int]] = ..., prefix_tokens: _Optional[_Iterable[int]] = ..., token_hash: _Optional[str] = ..., kv: _Optional[bytes] = ..., cache_class: _Optional[str] = ..., last_used: _Optional[int] = ...) -> None: ...

class SessionSnapshot(_message.Message):
    __slots__ = ("state_id", "resident_tokens", "prefix_tokens", "num_ctx", "resident_token_ids", "cold_kv_blocks", "stable_text", "prefix_text", "tools", "manifest")
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_CTX_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COLD_KV_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_TEXT_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    state_id: str
    resident_tokens: int
    prefix_tokens: int
    num_ctx: int
    resident_token_ids: _containers.RepeatedScalarFieldContainer[int]
    cold_kv_blocks: _containers.RepeatedCompositeFieldContainer[ColdKVBlock]
    stable_text: str
    prefix_text: str
    tools: str
    manifest: ContextManifest
    def __init__(self, state_id: _Optional[str] = ..., resident_tokens: _Optional[int] = ..., prefix_tokens: _Optional[int] = ..., num_ctx: _Optional[int] = ..., resident_token_ids: _Optional[_Iterable[int]] = ..., cold_kv_blocks: _Optional[_Iterable[_Union[ColdKVBlock, _Mapping]]] = ..., stable_text: _Optional[str] = ..., prefix_text: _Optional[str] = ..., tools: _Optional[str] = ..., manifest: _Optional[_Union[ContextManifest, _Mapping]] = ...) -> None: ...

class ActiveModel(_message.Message):
    __slots__ = ("model_name", "type", "digest", "path", "config", "adapters", "generation")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    type: str
    digest: str
    path: str
    config: Config
    adapters: _containers.RepeatedCompositeFieldContainer[AdapterSpec]
    generation: int
    def __init__(self, model_name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., path: _Optional[str] = ..., config: _Optional[_Union[Config, _Mapping]] = ..., adapters: _Optional[_Iterable[_Union[AdapterSpec, _Mapping]]] = ..., generation: _Optional[int] = ...) -> None: ...

class DaemonStatus(_message.Message):
    __slots__ = ("owner_instance_id", "backend", "state", "active", "busy_operation", "last_error")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    BUSY_OPERATION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    backend: str
    state: str
    active: ActiveModel
    busy_operation: str
    last_error: str
    def __init__(self, owner_instance_id: _Optional[str] = ..., backend: _Optional[str] = ..., state: _Optional[str] = ..., active: _Optional[_Union[ActiveModel, _Mapping]] = ..., busy_operation: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class NodeModel(_message.Message):
    __slots__ = ("name", "type", "digest", "size_bytes", "context_length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    digest: str
    size_bytes: int
    context_length: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., context_length: _Optional[int] = ...) -> None: ...

class NodeDiskStats(_message.Message):
    __slots__ = ("free_bytes", "used_bytes", "total_bytes")
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    free_bytes: int
    used_bytes: int
    total_bytes: int
    def __init__(self, free_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class PushManifest(_message.Message):
    __slots__ = ("name", "type", "digest", "total_bytes", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    digest: str
    total_bytes: int
    format: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., total_bytes: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class HealthReq(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResp(_message.Message):
    __slots__ = ("instance_id", "ready", "backend")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    ready: bool
    backend: str
    def __init__(self, instance_id: _Optional[str] = ..., ready: _Optional[bool] = ..., backend: _Optional[str] = ...) -> None: ...

class StatusReq(_message.Message):
    __slots__ = ("owner_instance_id",)
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    def __init__(self, owner_instance_id: _Optional[str] = ...) -> None: ...

class LoadModelReq(_message.Message):
    __slots__ = ("owner_instance_id", "model_name", "type", "digest", "path", "config", "adapters", "expected_generation")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    model_name: str
    type: str
    digest: str
    path: str
    config: Config
    adapters: _containers.RepeatedCompositeFieldContainer[AdapterSpec]
    expected_generation: int
    def __init__(self, owner_instance_id: _Optional[str] = ..., model_name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., path: _Optional[str] = ..., config: _Optional[_Union[Config, _Mapping]] = ..., adapters: _Optional[_Iterable[_Union[AdapterSpec, _Mapping]]] = ..., expected_generation: _Optional[int] = ...) -> None: ...

class UnloadModelReq(_message.Message):
    __slots__ = ("owner_instance_id", "expected_generation")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    expected_generation: int
    def __init__(self, owner_instance_id: _Optional[str] = ..., expected_generation: _Optional[int] = ...) -> None: ...

class UnloadModelResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OpenSessionReq(_message.Message):
    __slots__ = ("owner_instance_id", "model_name", "type", "digest", "path", "config", "adapters")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    model_name: str
    type: str
    digest: str
    path: str
    config: Config
    adapters: _containers.RepeatedCompositeFieldContainer[AdapterSpec]
    def __init__(self, owner_instance_id: _Optional[str] = ..., model_name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., path: _Optional[str] = ..., config: _Optional[_Union[Config, _Mapping]] = ..., adapters: _Optional[_Iterable[_Union[AdapterSpec, _Mapping]]] = ...) -> None: ...

class OpenSessionResp(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    def __init__(self, handle: _Optional[str] = ...) -> None: ...

class DescribeResp(_message.Message):
    __slots__ = ("model_max_context", "effective_context", "memory_context_tokens", "hot_context_tokens", "planner_effective_context", "kv_bytes_per_token", "free_bytes", "weights_bytes", "overhead_bytes", "reserved_bytes", "user_limit_bytes", "min_free_bytes", "host_cold_budget_bytes", "usable_bytes", "required_bytes", "clamped", "reason", "device_kind", "device_id", "device_total_bytes", "shared_with_display", "requested_gpu_layers", "resolved_gpu_layers", "sparse_attention", "sliding_window_attention_tokens", "chat_template_format", "chat_template_thinking_start_tag", "chat_template_reasoning_format", "chat_template_supports_tool_calls", "chat_template_supports_thinking", "chat_template_supports_reasoning_effort", "runtime_name", "runtime_digest", "runtime_system_info", "supports_gpu_offload", "devices")
    MODEL_MAX_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HOT_CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PLANNER_EFFECTIVE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KV_BYTES_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_BYTES_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    USER_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOST_COLD_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    USABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLAMPED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_DISPLAY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_GPU_LAYERS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_GPU_LAYERS_FIELD_NUMBER: _ClassVar[int]
    SPARSE_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    SLIDING_WINDOW_ATTENTION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_THINKING_START_TAG_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_REASONING_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_SUPPORTS_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_SUPPORTS_THINKING_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_SUPPORTS_REASONING_EFFORT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_NAME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_SYSTEM_INFO_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_GPU_OFFLOAD_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    model_max_context: int
    effective_context: int
    memory_context_tokens: int
    hot_context_tokens: int
    planner_effective_context: int
    kv_bytes_per_token: int
    free_bytes: int
    weights_bytes: int
    overhead_bytes: int
    reserved_bytes: int
    user_limit_bytes: int
    min_free_bytes: int
    host_cold_budget_bytes: int
    usable_bytes: int
    required_bytes: int
    clamped: bool
    reason: str
    device_kind: str
    device_id: str
    device_total_bytes: int
    shared_with_display: bool
    requested_gpu_layers: int
    resolved_gpu_layers: int
    sparse_attention: bool
    sliding_window_attention_tokens: int
    chat_template_format: str
    chat_template_thinking_start_tag: str
    chat_template_reasoning_format: str
    chat_template_supports_tool_calls: bool
    chat_template_supports_thinking: bool
    chat_template_supports_reasoning_effort: bool
    runtime_name: str
    runtime_digest: str
    runtime_system_info: str
    supports_gpu_offload: bool
    devices: _containers.RepeatedCompositeFieldContainer[DeviceInfo]
    def __init__(self, model_max_context: _Optional[int] = ..., effective_context: _Optional[int] = ..., memory_context_tokens: _Optional[int] = ..., hot_context_tokens: _Optional[int] = ..., planner_effective_context: _Optional[int] = ..., kv_bytes_per_token: _Optional[int] = ..., free_bytes: _Optional[int] = ..., weights_bytes: _Optional[int] = ..., overhead_bytes: _Optional[int] = ..., reserved_bytes: _Optional[int] = ..., user_limit_bytes: _Optional[int] = ..., min_free_bytes: _Optional[int] = ..., host_cold_budget_bytes: _Optional[int] = ..., usable_bytes: _Optional[int] = ..., required_bytes: _Optional[int] = ..., clamped: _Optional[bool] = ..., reason: _Optional[str] = ..., device_kind: _Optional[str] = ..., device_id: _Optional[str] = ..., device_total_bytes: _Optional[int] = ..., shared_with_display: _Optional[bool] = ..., requested_gpu_layers: _Optional[int] = ..., resolved_gpu_layers: _Optional[int] = ..., sparse_attention: _Optional[bool] = ..., sliding_window_attention_tokens: _Optional[int] = ..., chat_template_format: _Optional[str] = ..., chat_template_thinking_start_tag: _Optional[str] = ..., chat_template_reasoning_format: _Optional[str] = ..., chat_template_supports_tool_calls: _Optional[bool] = ..., chat_template_supports_thinking: _Optional[bool] = ..., chat_template_supports_reasoning_effort: _Optional[bool] = ..., runtime_name: _Optional[str] = ..., runtime_digest: _Optional[str] = ..., runtime_system_info: _Optional[str] = ..., supports_gpu_offload: _Optional[bool] = ..., devices: _Optional[_Iterable[_Union[DeviceInfo, _Mapping]]] = ...) -> None: ...

class EmbedReq(_message.Message):
    __slots__ = ("owner_instance_id", "model_name", "type", "digest", "path", "config", "text")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    model_name: str
    type: str
    digest: str
    path: str
    config: Config
    text: str
    def __init__(self, owner_instance_id: _Optional[str] = ..., model_name: _Optional[str] = ..., type: _Optional[str] = ..., digest: _Optional[str] = ..., path: _Optional[str] = ..., config: _Optional[_Union[Config, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class EmbedResp(_message.Message):
    __slots__ = ("vector",)
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, vector: _Optional[_Iterable[float]] = ...) -> None: ...

class EnsurePrefixReq(_message.Message):
    __slots__ = ("handle", "prefix")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    handle: str
    prefix: PrefixInput
    def __init__(self, handle: _Optional[str] = ..., prefix: _Optional[_Union[PrefixInput, _Mapping]] = ...) -> None: ...

class PrefillSuffixReq(_message.Message):
    __slots__ = ("handle", "suffix")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    handle: str
    suffix: SuffixInput
    def __init__(self, handle: _Optional[str] = ..., suffix: _Optional[_Union[SuffixInput, _Mapping]] = ...) -> None: ...

class DecodeReq(_message.Message):
    __slots__ = ("handle", "config")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    handle: str
    config: DecodeConfig
    def __init__(self, handle: _Optional[str] = ..., config: _Optional[_Union[DecodeConfig, _Mapping]] = ...) -> None: ...

class ExplainReq(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    def __init__(self, handle: _Optional[str] = ...) -> None: ...

class SnapshotReq(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    def __init__(self, handle: _Optional[str] = ...) -> None: ...

class RestoreReq(_message.Message):
    __slots__ = ("handle", "snapshot")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    handle: str
    snapshot: SessionSnapshot
    def __init__(self, handle: _Optional[str] = ..., snapshot: _Optional[_Union[SessionSnapshot, _Mapping]] = ...) -> None: ...

class RestoreResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseReq(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    def __init__(self, handle: _Optional[str] = ...) -> None: ...

class CloseResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsReq(_message.Message):
    __slots__ = ("owner_instance_id",)
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    def __init__(self, owner_instance_id: _Optional[str] = ...) -> None: ...

class ListModelsResp(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[NodeModel]
    def __init__(self, models: _Optional[_Iterable[_Union[NodeModel, _Mapping]]] = ...) -> None: ...

class RemoveModelReq(_message.Message):
    __slots__ = ("owner_instance_id", "name")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    name: str
    def __init__(self, owner_instance_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RemoveModelResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DiskStatsReq(_message.Message):
    __slots__ = ("owner_instance_id",)
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    def __init__(self, owner_instance_id: _Optional[str] = ...) -> None: ...

class PushModelChunk(_message.Message):
    __slots__ = ("owner_instance_id", "manifest", "data")
    OWNER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    owner_instance_id: str
    manifest: PushManifest
    data: bytes
    def __init__(self, owner_instance_id: _Optional[str] = ..., manifest: _Optional[_Union[PushManifest, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushModelResp(_message.Message):
    __slots__ = ("already_present", "bytes_written")
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    already_present: bool
    bytes_written: int
    def __init__(self, already_present: _Optional[bool] = ..., bytes_written: _Optional[int] = ...) -> None: ...

class WireChunk(_message.Message):
    __slots__ = ("text", "thinking", "tool_calls", "error", "error_token", "error_detail")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAIL_FIELD_NUMBER: _ClassVar[int]
    text: str
    thinking: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    error: str
    error_token: str
    error_detail: ContextOverflowDetail
    def __init__(self, text: _Optional[str] = ..., thinking: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., error: _Optional[str] = ..., error_token: _Optional[str] = ..., error_detail: _Optional[_Union[ContextOverflowDetail, _Mapping]] = ...) -> None: ...
