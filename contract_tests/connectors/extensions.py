"""Optional operations beyond :class:`~modeld_contract.connectors.protocol.Connector`: the targeted API
(one node reached by address: Go ``modeldconn.Endpoint`` and the ``*Target`` helpers, Python
``modeldconn.endpoint``), and a PushModel whose source fails part-way.

All of them are optional operations of the base protocol
(:data:`~modeld_contract.connectors.protocol.OPTIONAL_OPS`): ``push_model`` (with its keyword
``fail_after``) and the :data:`TARGET_OPS`, whose signatures :class:`FailingPushConnector` /
:class:`TargetedConnector` spell out. Clauses reach them only through
:func:`failing_push` / :func:`target_ops`, which answer ``None`` for a connector without them: those
clauses are then *not applicable*, never passed by a stand-in of ours.

Values keep the wire's JSON keys, as in the base protocol: a push answers
``{"already_present", "bytes_written"}``; ``endpoint`` answers the node's health
``{"instance_id", "backend", "ready"}``. A :class:`NodeTarget` names the node: its address and the
backend id the connector caches its connection under.

Both adapters carry these operations as methods and say with ``supports(op)`` which of them the
connector under test offers: the in-process adapter when its module has ``push_model`` / ``endpoint``
and ``close_endpoint`` (``modeldconn`` has), the subprocess adapter when the driver's hello lists them.
"""

from __future__ import annotations

import inspect
import io
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from modeld_contract.connectors.protocol import JSON

__all__ = [
    "PUSH_OPS",
    "TARGET_OPS",
    "FailingPushConnector",
    "FailingReader",
    "NodeTarget",
    "TargetedConnector",
    "failing_push",
    "offers_push",
    "target_ops",
]

PUSH_OPS: tuple[str, ...] = ("push_model",)
TARGET_OPS: tuple[str, ...] = (
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


@dataclass(frozen=True)
class NodeTarget:
    """One node reached by address; ``backend_id`` keys the connector's connection cache."""

    addr: str
    backend_id: str

    def to_json(self) -> JSON:
        return {"backend_id": self.backend_id, "addr": self.addr}

    @classmethod
    def from_json(cls, data: JSON) -> NodeTarget:
        return cls(str(data.get("addr", "")), str(data.get("backend_id", "")))


@runtime_checkable
class FailingPushConnector(Protocol):
    """PushModel through the lease-resolved owner (the base protocol's ``push_model``) taking
    ``fail_after``: the caller's data source fails with an I/O error after that many bytes."""

    def push_model(
        self,
        name: str,
        type: str,
        data: bytes,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
        *,
        fail_after: int | None = None,
    ) -> JSON: ...


@runtime_checkable
class TargetedConnector(Protocol):
    """Calls to one node reached by address (apart from the lease-resolved connection)."""

    def endpoint(self, target: NodeTarget, timeout: float | None = None) -> JSON: ...
    def close_endpoint(self, target: NodeTarget) -> None: ...
    def target_status(self, target: NodeTarget, timeout: float | None = None) -> JSON: ...
    def target_describe(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> JSON: ...
    def target_open_session(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> str: ...
    def target_load_model(
        self,
        target: NodeTarget,
        model: JSON,
        config: JSON,
        expected_generation: int = 0,
        timeout: float | None = None,
    ) -> JSON: ...
    def target_unload_model(
        self, target: NodeTarget, expected_generation: int = 0, timeout: float | None = None
    ) -> None: ...
    def target_embed(
        self, target: NodeTarget, model: JSON, config: JSON, text: str, timeout: float | None = None
    ) -> list[float]: ...
    def target_list_models(self, target: NodeTarget, timeout: float | None = None) -> list[JSON]: ...
    def target_remove_model(self, target: NodeTarget, name: str, timeout: float | None = None) -> None: ...
    def target_disk_stats(self, target: NodeTarget, timeout: float | None = None) -> JSON: ...
    def target_push_model(
        self,
        target: NodeTarget,
        name: str,
        type: str,
        data: bytes,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
        *,
        fail_after: int | None = None,
    ) -> JSON: ...


def _offers(conn: Any, ops: tuple[str, ...]) -> bool:
    """The connector has every method of ``ops``, and (a driver) announced every op."""
    if not all(callable(getattr(conn, op, None)) for op in ops):
        return False
    supports = getattr(conn, "supports", None)
    return not callable(supports) or all(supports(op) for op in ops)


def offers_push(conn: Any) -> bool:
    """``conn`` can push: it has the method and (an adapter with ``supports``) offers it."""
    return _offers(conn, PUSH_OPS)


def _takes_fail_after(fn: Any) -> bool:
    try:
        return "fail_after" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def failing_push(conn: Any) -> FailingPushConnector | None:
    """``conn``'s PushModel taking ``fail_after``, or None when the connector under test has none."""
    if _offers(conn, PUSH_OPS) and _takes_fail_after(conn.push_model):
        return conn  # type: ignore[no-any-return]
    return None


def target_ops(conn: Any) -> TargetedConnector | None:
    """``conn``'s targeted API, or None when the connector under test has none."""
    if _offers(conn, TARGET_OPS):
        return conn  # type: ignore[no-any-return]
    return None


class FailingReader(io.RawIOBase):
    """A binary source that yields ``data[:fail_after]`` and then fails with an I/O error."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = data[:fail_after]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf: Any) -> int:
        if self._pos >= len(self._data):
            raise OSError("modeld-contract: the caller's model source failed")
        n = min(len(buf), len(self._data) - self._pos)
        buf[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n
