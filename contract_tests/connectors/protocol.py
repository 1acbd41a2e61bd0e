"""The interface every connector under test is driven through (sync-facing, language-neutral).

A clause never talks to a connector directly: it talks to an object of this :class:`Connector`
protocol. Two adapters exist: :mod:`modeld_contract.connectors.inprocess` (a Python module with the
``modeldconn`` API) and :mod:`modeld_contract.connectors.subprocess` (any executable speaking the driver
protocol of ``docs/driver-protocol.md``). Values cross this interface as plain JSON-able data whose keys
are the *wire* keys (Go struct / json tags, e.g. ``ReusedTokens``, ``model_name``), so a driver in any
language can produce them by marshalling its own types.

Errors are :class:`ConnectorError` with a ``kind``: a sentinel token of the wire's table
(``stale_fence``, ``session_closed``, …), a probe state (``not-installed``, ``not-running``, ``stale``,
``unreachable``), or one of ``transport`` (a gRPC status outside the table), ``internal`` (Internal
outside the table), ``error`` (anything else), ``harness_timeout`` (the call did not return within
the harness's bound: the connector has no deadline of its own) and ``unsupported_operation`` (the
connector does not offer the operation at all: :class:`OperationUnsupported`).

A connector that lacks an operation cannot keep or break the rules about it, and nothing of ours may
stand in for it: an adapter raises :class:`OperationUnsupported`, and the clauses about that operation
report themselves *not applicable*. Operations beyond the :class:`Connector` protocol are optional by
design (:data:`OPTIONAL_OPS`); a clause finds them with :func:`optional_op`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "HARNESS_TIMEOUT",
    "JSON",
    "OPTIONAL_OPS",
    "PROBE_KINDS",
    "SENTINEL_KINDS",
    "UNSUPPORTED",
    "Connector",
    "ConnectorError",
    "DecodeResult",
    "OperationUnsupported",
    "optional_op",
]

JSON = dict[str, Any]

#: The sentinel tokens a ``kind`` may carry (wire.md §9.1), restated here for drivers' sake.
SENTINEL_KINDS: tuple[str, ...] = (
    "context_canceled",
    "deadline_exceeded",
    "stale_fence",
    "not_owner",
    "session_closed",
    "context_overflow",
    "session_fatal",
    "model_busy",
    "model_not_active",
    "model_switch_required",
    "device_busy",
    "model_load_failed",
    "insufficient_memory",
    "slot_generation_stale",
    "backend_mismatch",
    "unsupported_feature",
    "manifest_mismatch",
    "model_not_found",
    "digest_mismatch",
    "unsupported_model_type",
)
#: The probe states that are errors (lease-and-discovery.md §7).
PROBE_KINDS: tuple[str, ...] = ("not-installed", "not-running", "stale", "unreachable")
#: The kind of a call the harness gave up waiting for.
HARNESS_TIMEOUT = "harness_timeout"
#: The kind of a call to an operation the connector does not offer.
UNSUPPORTED = "unsupported_operation"
#: Operations an adapter offers only when the connector has them, as methods of the same names (an
#: adapter's ``supports(op)`` says which it offers):
#:
#: * ``push_model(name, type, data, digest=None, format="file", timeout=None, *, fail_after=None)`` →
#:   ``PushResult`` (``{"already_present", "bytes_written"}``; ``data`` raw bytes, ``digest`` None = the
#:   connector computes the sha256 of ``data``; ``fail_after`` set = the caller's source fails with an
#:   I/O error after that many bytes).
#: * the targeted API, one node reached by address (``target`` a
#:   :class:`~modeld_contract.connectors.extensions.NodeTarget`, ``{"backend_id", "addr"}`` on the
#:   wire; :class:`~modeld_contract.connectors.extensions.TargetedConnector`):
#:   ``endpoint(target, timeout=None)`` → the node's health ``{"instance_id", "backend", "ready"}``;
#:   ``close_endpoint(target)``; ``target_status(target, timeout=None)``;
#:   ``target_describe(target, model, config, timeout=None)``;
#:   ``target_open_session(target, model, config, timeout=None)`` → a session of this protocol;
#:   ``target_load_model(target, model, config, expected_generation=0, timeout=None)``;
#:   ``target_unload_model(target, expected_generation=0, timeout=None)``;
#:   ``target_embed(target, model, config, text, timeout=None)``;
#:   ``target_list_models(target, timeout=None)``; ``target_remove_model(target, name, timeout=None)``;
#:   ``target_disk_stats(target, timeout=None)``;
#:   ``target_push_model(target, name, type, data, digest=None, format="file", timeout=None, *,
#:   fail_after=None)``. Each answers as its lease-resolved namesake.
OPTIONAL_OPS: tuple[str, ...] = (
    "push_model",
    "endpoint",
    "close_endpoint",
    "target_status",
    "target_describe",
    "target_open_session",
    "target_load_model",
    "target_unload_model",
    "target_embed",
    "target_list_models",
    "target_remove_model",
    "target_disk_stats",
    "target_push_model",
)


class ConnectorError(Exception):
    """A typed failure reported by the connector under test.

    ``kind``: see the module docstring. ``tokens``: every sentinel the error matches (Go ``errors.Is``),
    ``kind`` first. ``detail``: the context-overflow detail (``stage``, ``resident_tokens``,
    ``additional_tokens``, ``num_ctx``) when the connector exposes it.
    """

    def __init__(
        self,
        kind: str,
        message: str = "",
        *,
        tokens: Sequence[str] = (),
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message
        toks = [kind, *[t for t in tokens if t != kind]] if kind in SENTINEL_KINDS else list(tokens)
        self.tokens: tuple[str, ...] = tuple(toks)
        self.detail: dict[str, Any] | None = dict(detail) if detail is not None else None

    def matches(self, token: str) -> bool:
        """Go ``errors.Is(err, sentinel)`` for the token."""
        return token == self.kind or token in self.tokens

    def to_json(self) -> JSON:
        out: JSON = {"kind": self.kind, "message": self.message, "tokens": list(self.tokens)}
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectorError:
        kind = str(data.get("kind", "error"))
        if kind == UNSUPPORTED:
            return OperationUnsupported(str(data.get("message", "")))
        return cls(
            kind,
            str(data.get("message", "")),
            tokens=[str(t) for t in data.get("tokens") or ()],
            detail=data.get("detail"),
        )


class OperationUnsupported(ConnectorError):
    """The connector does not offer the operation (kind :data:`UNSUPPORTED`)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(UNSUPPORTED, message)


def optional_op(conn: object, name: str) -> Any:
    """The bound optional operation ``name`` of an adapter (:data:`OPTIONAL_OPS`), or None when the
    adapter (hence the connector) lacks it."""
    fn = getattr(conn, name, None)
    return fn if callable(fn) else None


@dataclass
class DecodeResult:
    """What one Decode produced: the chunks (``text``/``thinking``/``tool_calls`` keys of the wire
    chunk) received before the stream ended, and the error that ended it, if any."""

    chunks: list[JSON] = field(default_factory=list)
    error: ConnectorError | None = None

    @property
    def text(self) -> str:
        return "".join(str(c.get("text", "")) for c in self.chunks)

    def to_json(self) -> JSON:
        return {"chunks": self.chunks, "error": None if self.error is None else self.error.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecodeResult:
        err = data.get("error")
        return cls(list(data.get("chunks") or []), None if not err else ConnectorError.from_json(err))


@runtime_checkable
class Connector(Protocol):
    """The connector under test, as the clauses see it. Every method may raise :class:`ConnectorError`.

    ``model`` arguments are ``{"model_name", "type", "digest", "path"}`` (+ optional ``adapters``);
    ``config`` is the wire ``Config`` (``{"NumCtx": …}``; missing keys are zero). Sessions are named by
    the opaque string ``open_session`` returns. ``timeout`` (seconds), where given, is the caller's
    deadline for that call (Go's context); ``None`` = the connector's own default.
    """

    name: str

    # discovery (offline: the lease alone)
    def configure(self, data_root: str, env: Mapping[str, str | None] | None = None) -> None: ...
    def available(self) -> bool: ...
    def backend(self) -> str: ...
    def serveable_backend(self) -> str: ...
    def probe(self, timeout: float | None = None) -> JSON: ...

    # lease-resolved calls (probe first)
    def status(self, timeout: float | None = None) -> JSON: ...
    def describe(self, model: JSON, config: JSON, timeout: float | None = None) -> JSON: ...
    def open_session(self, model: JSON, config: JSON, timeout: float | None = None) -> str: ...
    def load_model(
        self, model: JSON, config: JSON, expected_generation: int = 0, timeout: float | None = None
    ) -> JSON: ...
    def unload_model(self, expected_generation: int = 0, timeout: float | None = None) -> None: ...
    def embed(self, model: JSON, config: JSON, text: str, timeout: float | None = None) -> list[float]: ...
    def list_models(self, timeout: float | None = None) -> list[JSON]: ...
    def remove_model(self, name: str, timeout: float | None = None) -> None: ...
    def disk_stats(self, timeout: float | None = None) -> JSON: ...

    # session calls (no probe)
    def ensure_prefix(self, session: str, prefix: JSON, timeout: float | None = None) -> JSON: ...
    def prefill_suffix(self, session: str, suffix: JSON, timeout: float | None = None) -> JSON: ...
    def decode(self, session: str, config: JSON, timeout: float | None = None) -> DecodeResult: ...
    def explain_context(self, session: str, timeout: float | None = None) -> JSON: ...
    def snapshot(self, session: str, timeout: float | None = None) -> JSON: ...
    def restore(self, session: str, snapshot: JSON, timeout: float | None = None) -> None: ...
    def close_session(self, session: str, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...
