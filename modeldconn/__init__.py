"""modeldconn: the Python connector to the modeld daemon (async-first; ``modeldconn.sync`` blocks).

    import modeldconn
    from modeldconn import ModelRef, Config, DecodeConfig

    modeldconn.set_data_root("/path/to/data-root")          # optional
    async with await modeldconn.open_session(ModelRef("tiny", "llama", path=gguf), Config(num_ctx=128)) as s:
        await s.ensure_prefix("hello world")
        await s.prefill_suffix(" again")
        async for chunk in s.decode(DecodeConfig(max_tokens=8)):
            print(chunk.text, end="")

See ``docs/connector.md``. Errors: the probe's (:class:`NotInstalled`, :class:`NotRunning`,
:class:`Stale`, :class:`Unreachable`, all :class:`ProbeError`) when no healthy owner answers;
the daemon's typed errors (:class:`ModeldError` and its sentinel classes) otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeldconn.client import (
        SERVEABLE_GRACE_SECONDS,
        Connector,
        EndpointClient,
        EndpointError,
        NodeNotReady,
        Timeouts,
        aclose,
        available,
        backend,
        close_endpoint,
        data_root,
        default_connector,
        describe,
        disk_stats,
        embed,
        endpoint,
        list_models,
        load_model,
        local_endpoint_addr,
        open_session,
        push_model,
        remove_model,
        serveable_backend,
        set_data_root,
        status,
        unload_model,
    )
    from modeldconn.probe import NotInstalled, NotRunning, ProbeError, ProbeState, Stale, Unreachable
    from modeldconn.session import DecodeStream, Session
    from modeldconn.types import (
        ActiveModel,
        AdapterSpec,
        Chunk,
        ColdKVBlock,
        Config,
        ContextManifest,
        ContextReport,
        DecodeConfig,
        DeviceInfo,
        DiskStats,
        Health,
        ManifestSegment,
        ModelInfo,
        ModelRef,
        NodeModel,
        PrefixInput,
        PrefixStatus,
        PushManifest,
        PushResult,
        ResidencyCapabilities,
        ResidencyReport,
        SessionSnapshot,
        Status,
        StructuredOutputConfig,
        SuffixInput,
        SuffixStatus,
        ToolCall,
        ToolCallFunction,
    )
    from modeldconn.wire.errors import (
        BackendMismatch,
        BackendMismatchLoadFailed,
        Canceled,
        ContextOverflow,
        DeadlineExceeded,
        DecodeError,
        DeviceBusy,
        DigestMismatch,
        InsufficientMemory,
        InternalError,
        ManifestMismatch,
        ModelBusy,
        ModeldError,
        ModelLoadFailed,
        ModelNotActive,
        ModelNotFound,
        ModelSwitchRequired,
        NotOwner,
        SentinelError,
        SessionClosed,
        SessionFatal,
        SlotGenerationStale,
        StaleFence,
        StreamError,
        TransportError,
        UnsupportedFeature,
        UnsupportedModelType,
    )

# The public names are loaded on first use (PEP 562): `import modeldconn.lease` or `.gotime` (the
# simulator shares them) must not pay for the gRPC client, grpclib and the generated messages.
_SOURCES = (
    "modeldconn.client",
    "modeldconn.probe",
    "modeldconn.session",
    "modeldconn.types",
    "modeldconn.wire.errors",
)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    # `from modeldconn import lease` asks here before importing the submodule: answer with it.
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    for source in _SOURCES:
        module = importlib.import_module(source)
        if name in getattr(module, "__all__", ()) or (name in vars(module) and not name.startswith("_")):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SERVEABLE_GRACE_SECONDS",
    "ActiveModel",
    "AdapterSpec",
    "BackendMismatch",
    "BackendMismatchLoadFailed",
    "Canceled",
    "Chunk",
    "ColdKVBlock",
    "Config",
    "Connector",
    "ContextManifest",
    "ContextOverflow",
    "ContextReport",
    "DeadlineExceeded",
    "DecodeConfig",
    "DecodeError",
    "DecodeStream",
    "DeviceBusy",
    "DeviceInfo",
    "DigestMismatch",
    "DiskStats",
    "EndpointClient",
    "EndpointError",
    "Health",
    "InsufficientMemory",
    "InternalError",
    "ManifestMismatch",
    "ManifestSegment",
    "ModelBusy",
    "ModelInfo",
    "ModelLoadFailed",
    "ModelNotActive",
    "ModelNotFound",
    "ModelRef",
    "ModelSwitchRequired",
    "ModeldError",
    "NodeModel",
    "NodeNotReady",
    "NotInstalled",
    "NotOwner",
    "NotRunning",
    "PrefixInput",
    "PrefixStatus",
    "ProbeError",
    "ProbeState",
    "PushManifest",
    "PushResult",
    "ResidencyCapabilities",
    "ResidencyReport",
    "SentinelError",
    "Session",
    "SessionClosed",
    "SessionFatal",
    "SessionSnapshot",
    "SlotGenerationStale",
    "Stale",
    "StaleFence",
    "Status",
    "StreamError",
    "StructuredOutputConfig",
    "SuffixInput",
    "SuffixStatus",
    "Timeouts",
    "ToolCall",
    "ToolCallFunction",
    "TransportError",
    "Unreachable",
    "UnsupportedFeature",
    "UnsupportedModelType",
    "aclose",
    "available",
    "backend",
    "close_endpoint",
    "data_root",
    "default_connector",
    "describe",
    "disk_stats",
    "embed",
    "endpoint",
    "list_models",
    "load_model",
    "local_endpoint_addr",
    "open_session",
    "push_model",
    "remove_model",
    "serveable_backend",
    "set_data_root",
    "status",
    "unload_model",
]
