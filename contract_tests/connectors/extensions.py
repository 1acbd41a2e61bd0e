"""Optional operations beyond :class:`~modeld_contract.connectors.protocol.Connector`: the targeted API
(one node reached by address: Go ``modeldconn.Endpoint`` and the ``*Target`` helpers, Python
``modeldconn.endpoint``), and a PushModel whose source fails part-way.

``push_model`` itself is an optional operation of the base protocol
(:data:`~modeld_contract.connectors.protocol.OPTIONAL_OPS`: ``push_model(name, type, data, digest=None,
format="file", timeout=None)``). A connector offers the rest by having the methods of
:class:`FailingPushConnector` / :class:`TargetedConnector`. Clauses reach them only through
:func:`failing_push` / :func:`target_ops`, which answer ``None`` for a connector without them: those
clauses are then *not applicable*, never passed by a stand-in of ours.

Values keep the wire's JSON keys, as in the base protocol: a push answers
``{"already_present", "bytes_written"}``; ``endpoint`` answers the node's health
``{"instance_id", "backend", "ready"}``. A :class:`NodeTarget` names the node: its address and the
backend id the connector caches its connection under.

The in-process adapter does not carry these operations itself; :class:`InProcessExtension` adds them to
an :class:`~modeld_contract.connectors.inprocess.InProcessConnector` whose module has ``push_model`` /
``endpoint`` / ``close_endpoint`` (``modeldconn`` has).
"""

from __future__ import annotations

import inspect
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from modeld_contract.connectors.protocol import JSON, OperationUnsupported

__all__ = [
    "PUSH_OPS",
    "TARGET_OPS",
    "FailingPushConnector",
    "FailingReader",
    "InProcessExtension",
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
    """``conn`` can push: an in-process adapter when its module has ``push_model``, any other
    connector when it has the method (and, a driver, announced it)."""
    ext = InProcessExtension.of(conn)
    if ext is not None:
        return ext.has_push
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
    ext = InProcessExtension.of(conn)
    return ext if ext is not None and ext.has_push else None


def target_ops(conn: Any) -> TargetedConnector | None:
    """``conn``'s targeted API, or None when the connector under test has none."""
    if _offers(conn, TARGET_OPS):
        return conn  # type: ignore[no-any-return]
    ext = InProcessExtension.of(conn)
    return ext if ext is not None and ext.has_targets else None


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


class InProcessExtension:
    """PushModel and the targeted API for an in-process connector, through its module's
    ``push_model(source, name, type, digest=, format=)``, ``endpoint(addr, backend_id)`` (an object with
    ``status``/``describe``/``open_session``/``load_model``/``unload_model``/``embed``/``list_models``/
    ``remove_model``/``disk_stats``/``push_model``, and ``instance_id``/``backend``/``ready``) and
    ``close_endpoint(backend_id)``. Sessions it opens join the adapter's own, so the session ops of the
    base protocol drive them."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        module = conn.module
        self.has_push = callable(getattr(module, "push_model", None))
        self.has_targets = callable(getattr(module, "endpoint", None)) and callable(
            getattr(module, "close_endpoint", None)
        )

    @classmethod
    def of(cls, conn: Any) -> InProcessExtension | None:
        from modeld_contract.connectors.inprocess import InProcessConnector

        return cls(conn) if isinstance(conn, InProcessConnector) else None

    # ---------------------------------------------------------------- plumbing
    def _fn(self, obj: Any, name: str) -> Callable[..., Any]:
        fn = getattr(obj, name, None)
        if not callable(fn):
            raise OperationUnsupported(f"connector {self.conn.name} has no {name}()")
        return fn  # type: ignore[no-any-return]

    def _call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        return self.conn._call(fn, *args, timeout=timeout, **kw)

    def _json(self, value: Any) -> Any:
        return self.conn._to_json(value)

    def _push(
        self,
        push: Callable[..., Any],
        name: str,
        type: str,
        data: bytes,
        digest: str | None,
        format: str,
        timeout: float | None,
        fail: int | None,
    ) -> JSON:
        source: Any = bytes(data) if fail is None else FailingReader(data, fail)
        out = self._call(push, source, name, type, digest=digest, format=format, timeout=timeout)
        j = self._json(out)
        return {
            "already_present": bool((j or {}).get("already_present", False)),
            "bytes_written": int((j or {}).get("bytes_written", 0)),
        }

    def _node(self, target: NodeTarget, timeout: float | None = None) -> tuple[Any, float | None]:
        """The module's client for the node, and what is left of the caller's deadline: one deadline
        covers the node's health check and the call (Go passes one context to both)."""
        end = None if timeout is None else time.monotonic() + timeout
        fn = self._fn(self.conn.module, "endpoint")
        node = self._call(fn, target.addr, target.backend_id, timeout=timeout)
        return node, None if end is None else max(0.001, end - time.monotonic())

    # ---------------------------------------------------------------- FailingPushConnector
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
    ) -> JSON:
        fn = self._fn(self.conn.module, "push_model")
        return self._push(fn, name, type, data, digest, format, timeout, fail_after)

    # ---------------------------------------------------------------- TargetedConnector
    def endpoint(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, _ = self._node(target, timeout)
        return {
            "instance_id": str(getattr(node, "instance_id", "")),
            "backend": str(getattr(node, "backend", "")),
            "ready": bool(getattr(node, "ready", False)),
        }

    def close_endpoint(self, target: NodeTarget) -> None:
        self._call(self._fn(self.conn.module, "close_endpoint"), target.backend_id)

    def target_status(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, timeout = self._node(target, timeout)
        return dict(self._json(self._call(self._fn(node, "status"), timeout=timeout)) or {})

    def target_describe(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> JSON:
        node, timeout = self._node(target, timeout)
        fn = self._fn(node, "describe")
        out = self._call(fn, self.conn._ref(model), self.conn._cfg(config), timeout=timeout)
        return dict(self._json(out) or {})

    def target_open_session(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> str:
        node, timeout = self._node(target, timeout)
        fn = self._fn(node, "open_session")
        sess = self._call(fn, self.conn._ref(model), self.conn._cfg(config), timeout=timeout)
        self.conn._seq += 1
        sid = f"t{self.conn._seq}"
        self.conn._sessions[sid] = sess
        return sid

    def target_load_model(
        self,
        target: NodeTarget,
        model: JSON,
        config: JSON,
        expected_generation: int = 0,
        timeout: float | None = None,
    ) -> JSON:
        node, timeout = self._node(target, timeout)
        args: list[Any] = [self.conn._ref(model), self.conn._cfg(config)]
        if expected_generation:
            args.append(expected_generation)
        out = self._call(self._fn(node, "load_model"), *args, timeout=timeout)
        return dict(self._json(out) or {})

    def target_unload_model(
        self, target: NodeTarget, expected_generation: int = 0, timeout: float | None = None
    ) -> None:
        node, timeout = self._node(target, timeout)
        self._call(self._fn(node, "unload_model"), expected_generation, timeout=timeout)

    def target_embed(
        self, target: NodeTarget, model: JSON, config: JSON, text: str, timeout: float | None = None
    ) -> list[float]:
        node, timeout = self._node(target, timeout)
        fn = self._fn(node, "embed")
        out = self._call(fn, self.conn._ref(model), self.conn._cfg(config), text, timeout=timeout)
        return [float(x) for x in getattr(out, "vector", out)]

    def target_list_models(self, target: NodeTarget, timeout: float | None = None) -> list[JSON]:
        node, timeout = self._node(target, timeout)
        out = self._json(self._call(self._fn(node, "list_models"), timeout=timeout))
        if isinstance(out, dict):
            out = out.get("models") or []
        return list(out or [])

    def target_remove_model(self, target: NodeTarget, name: str, timeout: float | None = None) -> None:
        node, timeout = self._node(target, timeout)
        self._call(self._fn(node, "remove_model"), name, timeout=timeout)

    def target_disk_stats(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, timeout = self._node(target, timeout)
        return dict(self._json(self._call(self._fn(node, "disk_stats"), timeout=timeout)) or {})

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
    ) -> JSON:
        node, timeout = self._node(target, timeout)
        return self._push(self._fn(node, "push_model"), name, type, data, digest, format, timeout, fail_after)
