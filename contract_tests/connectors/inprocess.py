"""Adapter: a Python connector with the ``modeldconn`` API, driven in-process.

The module (or any object with the same attributes) is expected to offer, async or sync:
``set_data_root(root)``, ``available()``, ``backend()``, ``serveable_backend()``, ``status()``,
``describe(ref, cfg)``, ``open_session(ref, cfg)`` → a session with ``ensure_prefix``,
``prefill_suffix``, ``decode`` (an async iterator of chunks; errors raised), ``explain_context``,
``snapshot``, ``restore``, ``close``; ``load_model(ref, cfg, expected_generation)``,
``unload_model(expected_generation)``, ``embed(ref, cfg, text)``, ``list_models()``,
``remove_model(name)``, ``disk_stats()``; optionally ``probe`` (a function, or a module holding one;
without it, ``local_endpoint_addr`` — Go's ``LocalEndpointAddr``, which runs the connector's own
probe — answers the probe op, as the Go driver does), ``push_model(source, name, type, digest=,
format=)``, ``endpoint(addr, backend_id)`` with ``close_endpoint(backend_id)`` (the targeted API, see
below) and ``close``/``aclose``/``reset`` (drop cached connections). An operation the object lacks
raises :class:`~modeld_contract.connectors.protocol.OperationUnsupported`: nothing of ours stands in
for the connector under test. A ``timeout=`` keyword is passed only to callables that declare it.
Types (``ModelRef``, ``Config``, ``PrefixInput``, …) are taken from the module when it has them,
else from :mod:`modeldconn.types`.

The targeted operations (``endpoint``, ``target_*`` of
:class:`~modeld_contract.connectors.extensions.TargetedConnector`) go through the module's
``endpoint(addr, backend_id, timeout=)``: an object with ``instance_id``/``backend``/``ready`` and the
node's ``status``/``describe``/``open_session``/``load_model``/``unload_model``/``embed``/
``list_models``/``remove_model``/``disk_stats``/``push_model``. :meth:`InProcessConnector.supports`
says which optional operations (:data:`~modeld_contract.connectors.protocol.OPTIONAL_OPS`) the module
has.

Errors are read by duck typing, never by class identity: ``exc.token`` / ``exc.wrapped_tokens()``
(a sentinel), ``exc.state`` (a probe state), ``exc.code`` (a raw gRPC status).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import threading
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from modeld_contract._loop import LoopThread, LoopTimeout
from modeld_contract.connectors.extensions import PUSH_OPS, TARGET_OPS, FailingReader, NodeTarget
from modeld_contract.connectors.protocol import (
    HARNESS_TIMEOUT,
    JSON,
    PROBE_KINDS,
    SENTINEL_KINDS,
    ConnectorError,
    DecodeResult,
    OperationUnsupported,
)

__all__ = ["DEFAULT_BOUND", "InProcessConnector", "error_to_connector_error", "shared_loop"]

#: The harness bound for a call without a caller deadline (seconds).
DEFAULT_BOUND = 30.0
_SLACK = 10.0
_INTERNAL = 13
#: What the module must have for each optional operation to be offered.
_NEEDS: dict[str, tuple[str, ...]] = {
    **{op: ("push_model",) for op in PUSH_OPS},
    **{op: ("endpoint", "close_endpoint") for op in TARGET_OPS},
}

#: ``_fn``'s default owner: the module itself (a node client may be any object, None included).
_MODULE: Any = object()

_loop_lock = threading.Lock()
_loop: LoopThread | None = None


def shared_loop() -> LoopThread:
    """One loop for every in-process connector of this process: a connector's cached connections
    are bound to the loop they were made on, and module-level caches outlive one test."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = LoopThread("modeld-contract-connector")
        return _loop


def error_to_connector_error(exc: BaseException) -> ConnectorError:
    """Map any exception a connector raised to the contract's typed error (duck typing)."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, LoopTimeout):
        return ConnectorError(HARNESS_TIMEOUT, str(exc))
    state = getattr(exc, "state", None)
    state_value = getattr(state, "value", state)
    if isinstance(state_value, str) and state_value in PROBE_KINDS:
        return ConnectorError(state_value, str(exc))
    token = getattr(exc, "token", None)
    if isinstance(token, str) and token in SENTINEL_KINDS:
        wrapped = getattr(exc, "wrapped_tokens", None)
        tokens = [str(t) for t in wrapped()] if callable(wrapped) else [token]
        detail: dict[str, Any] | None = None
        od = getattr(exc, "overflow_detail", None)
        d = od() if callable(od) else None
        if d is None:
            d = getattr(exc, "detail_fields", None)
        if d is not None and not isinstance(d, str):
            detail = {
                k: getattr(d, k)
                for k in ("stage", "resident_tokens", "additional_tokens", "num_ctx")
                if hasattr(d, k)
            }
        return ConnectorError(token, str(exc), tokens=tokens, detail=detail)
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool) and hasattr(exc, "message"):
        return ConnectorError("internal" if code == _INTERNAL else "transport", str(exc))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConnectorError("deadline_exceeded", str(exc) or "timed out", tokens=["deadline_exceeded"])
    return ConnectorError("error", f"{type(exc).__name__}: {exc}")


def _accepts_timeout(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "timeout" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _source(data: bytes, fail_after: int | None) -> Any:
    """What a push hands the module: the bytes, or a reader of them that fails after ``fail_after``."""
    return bytes(data) if fail_after is None else FailingReader(data, fail_after)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class InProcessConnector:
    """:class:`~modeld_contract.connectors.protocol.Connector` over a Python module/object."""

    def __init__(self, module: Any, name: str | None = None) -> None:
        self.module = module
        self.name: str = name or str(getattr(module, "__name__", type(module).__name__))
        self._loop = shared_loop()
        self._sessions: dict[str, Any] = {}
        self._seq = 0
        self._data_root = ""
        self._saved_env: dict[str, str | None] = {}
        t = importlib.import_module("modeldconn.types")
        self._types = {
            n: getattr(module, n, None) or getattr(t, n)
            for n in (
                "ModelRef",
                "Config",
                "AdapterSpec",
                "PrefixInput",
                "SuffixInput",
                "DecodeConfig",
                "SessionSnapshot",
            )
        }
        self._codec = importlib.import_module("modeldconn.wire.codec")
        self._pb = importlib.import_module("modeldconn.wire._gen.contenox.transport.v1.compute_pb2")

    # ---------------------------------------------------------------- plumbing
    def _fn(self, name: str, obj: Any = _MODULE) -> Callable[..., Any]:
        """``name`` of the module (or of ``obj``, a node client), or :class:`OperationUnsupported`."""
        fn = getattr(self.module if obj is _MODULE else obj, name, None)
        if fn is None or not callable(fn) or isinstance(fn, types.ModuleType):
            raise OperationUnsupported(f"connector {self.name} has no {name}()")
        return fn  # type: ignore[no-any-return]

    def _has(self, name: str) -> bool:
        fn = getattr(self.module, name, None)
        return callable(fn) and not isinstance(fn, types.ModuleType)

    def supports(self, op: str) -> bool:
        """The module offers ``op``: an optional operation when the module has the functions it is
        made of, any other operation of this adapter always (a missing function is then reported by
        the call itself)."""
        needs = _NEEDS.get(op)
        if needs is not None:
            return all(self._has(n) for n in needs)
        return callable(getattr(self, op, None))

    def _call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        if timeout is not None and _accepts_timeout(fn):
            kw["timeout"] = timeout
        bound = (timeout if timeout is not None else DEFAULT_BOUND) + _SLACK

        async def go() -> Any:
            return await _maybe_await(fn(*args, **kw))

        try:
            return self._loop.run(go(), bound)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise error_to_connector_error(exc) from exc

    def _run(self, coro_fn: Callable[[], Awaitable[Any]], timeout: float | None) -> Any:
        bound = (timeout if timeout is not None else DEFAULT_BOUND) + _SLACK

        async def go() -> Any:
            return await coro_fn()

        try:
            return self._loop.run(go(), bound)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise error_to_connector_error(exc) from exc

    def _to_json(self, value: Any) -> Any:
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, list | tuple):
            return [self._to_json(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): self._to_json(v) for k, v in value.items()}
        to_pb = getattr(value, "to_pb", None)
        msg = to_pb() if callable(to_pb) else value
        if hasattr(msg, "DESCRIPTOR"):
            return json.loads(self._codec.encode(msg))
        if hasattr(value, "__dataclass_fields__"):
            import dataclasses

            return self._to_json(dataclasses.asdict(value))
        return value

    def _from_json(self, type_name: str, pb_name: str, data: Mapping[str, Any]) -> Any:
        msg = self._codec.decode(getattr(self._pb, pb_name), json.dumps(dict(data)).encode())
        return self._types[type_name].from_pb(msg)

    def _ref(self, model: Mapping[str, Any]) -> Any:
        adapters = tuple(
            self._from_json("AdapterSpec", "AdapterSpec", a) for a in model.get("adapters") or ()
        )
        return self._types["ModelRef"](
            name=str(model.get("model_name", "")),
            type=str(model.get("type", "")),
            digest=str(model.get("digest", "")),
            path=str(model.get("path", "")),
            adapters=adapters,
        )

    def _cfg(self, config: Mapping[str, Any]) -> Any:
        return self._from_json("Config", "Config", config)

    def _session(self, sid: str) -> Any:
        s = self._sessions.get(sid)
        if s is None:
            raise ConnectorError("error", f"unknown session {sid!r} (harness)")
        return s

    # ---------------------------------------------------------------- discovery
    def configure(self, data_root: str, env: Mapping[str, str | None] | None = None) -> None:
        for k, v in (env or {}).items():
            if k not in self._saved_env:
                self._saved_env[k] = os.environ.get(k)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._data_root = data_root
        self._call(self._fn("set_data_root"), data_root)

    def available(self) -> bool:
        return bool(self._call(self._fn("available")))

    def backend(self) -> str:
        return str(self._call(self._fn("backend")))

    def serveable_backend(self) -> str:
        return str(self._call(self._fn("serveable_backend")))

    def probe(self, timeout: float | None = None) -> JSON:
        p = getattr(self.module, "probe", None)
        if isinstance(p, types.ModuleType):
            p = getattr(p, "probe", None)
        if callable(p):
            st = self._call(p, self._data_root or None, timeout=timeout)
            state = getattr(st, "state", "")
            return {
                "state": str(getattr(state, "value", state)),
                "endpoint": str(getattr(st, "endpoint", "")),
                "instance": str(getattr(st, "instance", "")),
                "backend": str(getattr(st, "backend", "")),
            }
        if callable(getattr(self.module, "local_endpoint_addr", None)):
            return self._probe_by_endpoint(timeout)
        raise OperationUnsupported(f"connector {self.name} has no probe() nor local_endpoint_addr()")

    def _probe_by_endpoint(self, timeout: float | None) -> JSON:
        """The probe as Go's modeldconn exposes it: ``LocalEndpointAddr`` runs the connector's probe
        and returns the endpoint or the probe's typed error; the instance comes from the connector's
        own offline lease reading (``detect``), the backend from its ``backend()``."""
        out: JSON = {"state": "running", "endpoint": "", "instance": "", "backend": ""}
        try:
            out["endpoint"] = str(self._call(self._fn("local_endpoint_addr"), timeout=timeout))
        except ConnectorError as err:
            if err.kind not in PROBE_KINDS:
                raise
            out["state"] = err.kind
            return out
        detect = getattr(self.module, "detect", None)
        if callable(detect):
            out["instance"] = str(getattr(self._call(detect), "instance", ""))
        out["backend"] = self.backend()
        return out

    # ---------------------------------------------------------------- lease-resolved calls
    def status(self, timeout: float | None = None) -> JSON:
        out = self._to_json(self._call(self._fn("status"), timeout=timeout))
        return dict(out) if isinstance(out, dict) else {}

    def describe(self, model: JSON, config: JSON, timeout: float | None = None) -> JSON:
        out = self._to_json(
            self._call(self._fn("describe"), self._ref(model), self._cfg(config), timeout=timeout)
        )
        return dict(out) if isinstance(out, dict) else {}

    def open_session(self, model: JSON, config: JSON, timeout: float | None = None) -> str:
        sess = self._call(self._fn("open_session"), self._ref(model), self._cfg(config), timeout=timeout)
        self._seq += 1
        sid = f"s{self._seq}"
        self._sessions[sid] = sess
        return sid

    def load_model(
        self, model: JSON, config: JSON, expected_generation: int = 0, timeout: float | None = None
    ) -> JSON:
        fn = self._fn("load_model")
        args: list[Any] = [self._ref(model), self._cfg(config)]
        if expected_generation:
            args.append(expected_generation)
        out = self._to_json(self._call(fn, *args, timeout=timeout))
        return dict(out) if isinstance(out, dict) else {}

    def unload_model(self, expected_generation: int = 0, timeout: float | None = None) -> None:
        self._call(self._fn("unload_model"), expected_generation, timeout=timeout)

    def embed(self, model: JSON, config: JSON, text: str, timeout: float | None = None) -> list[float]:
        out = self._call(self._fn("embed"), self._ref(model), self._cfg(config), text, timeout=timeout)
        vec = getattr(out, "vector", out)
        return [float(x) for x in vec]

    def list_models(self, timeout: float | None = None) -> list[JSON]:
        out = self._to_json(self._call(self._fn("list_models"), timeout=timeout))
        if isinstance(out, dict):
            out = out.get("models") or []
        return list(out or [])

    def remove_model(self, name: str, timeout: float | None = None) -> None:
        self._call(self._fn("remove_model"), name, timeout=timeout)

    def disk_stats(self, timeout: float | None = None) -> JSON:
        out = self._to_json(self._call(self._fn("disk_stats"), timeout=timeout))
        return dict(out) if isinstance(out, dict) else {}

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
        """``fail_after``: the source handed to the module fails with an I/O error after that many
        bytes (a caller's file that breaks mid-upload)."""
        fn = self._fn("push_model")
        out = self._to_json(
            self._call(
                fn, _source(data, fail_after), name, type, digest=digest, format=format, timeout=timeout
            )
        )
        return dict(out) if isinstance(out, dict) else {}

    # ---------------------------------------------------------------- targeted calls (one node by address)
    def _node(self, target: NodeTarget, timeout: float | None) -> tuple[Any, float | None]:
        """The module's client for the node, and what is left of the caller's deadline: one deadline
        covers the node's health check and the call (Go passes one context to both)."""
        self._require_targets()
        end = None if timeout is None else time.monotonic() + timeout
        node = self._call(self._fn("endpoint"), target.addr, target.backend_id, timeout=timeout)
        return node, None if end is None else max(0.001, end - time.monotonic())

    def endpoint(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, _ = self._node(target, timeout)
        return {
            "instance_id": str(getattr(node, "instance_id", "")),
            "backend": str(getattr(node, "backend", "")),
            "ready": bool(getattr(node, "ready", False)),
        }

    def _require_targets(self) -> None:
        """The targeted API comes whole: a module with ``endpoint`` but no ``close_endpoint`` does
        not offer it (as :meth:`supports` says)."""
        if not self.supports("endpoint"):
            raise OperationUnsupported(f"connector {self.name} has no endpoint() and close_endpoint()")

    def close_endpoint(self, target: NodeTarget) -> None:
        self._require_targets()
        self._call(self._fn("close_endpoint"), target.backend_id)

    def target_status(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, left = self._node(target, timeout)
        return dict(self._to_json(self._call(self._fn("status", node), timeout=left)) or {})

    def target_describe(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> JSON:
        node, left = self._node(target, timeout)
        out = self._call(self._fn("describe", node), self._ref(model), self._cfg(config), timeout=left)
        return dict(self._to_json(out) or {})

    def target_open_session(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> str:
        """The session joins this adapter's own, so the session operations drive it."""
        node, left = self._node(target, timeout)
        sess = self._call(self._fn("open_session", node), self._ref(model), self._cfg(config), timeout=left)
        self._seq += 1
        sid = f"t{self._seq}"
        self._sessions[sid] = sess
        return sid

    def target_load_model(
        self,
        target: NodeTarget,
        model: JSON,
        config: JSON,
        expected_generation: int = 0,
        timeout: float | None = None,
    ) -> JSON:
        node, left = self._node(target, timeout)
        args: list[Any] = [self._ref(model), self._cfg(config)]
        if expected_generation:
            args.append(expected_generation)
        out = self._call(self._fn("load_model", node), *args, timeout=left)
        return dict(self._to_json(out) or {})

    def target_unload_model(
        self, target: NodeTarget, expected_generation: int = 0, timeout: float | None = None
    ) -> None:
        node, left = self._node(target, timeout)
        self._call(self._fn("unload_model", node), expected_generation, timeout=left)

    def target_embed(
        self, target: NodeTarget, model: JSON, config: JSON, text: str, timeout: float | None = None
    ) -> list[float]:
        node, left = self._node(target, timeout)
        out = self._call(self._fn("embed", node), self._ref(model), self._cfg(config), text, timeout=left)
        return [float(x) for x in getattr(out, "vector", out)]

    def target_list_models(self, target: NodeTarget, timeout: float | None = None) -> list[JSON]:
        node, left = self._node(target, timeout)
        out = self._to_json(self._call(self._fn("list_models", node), timeout=left))
        if isinstance(out, dict):
            out = out.get("models") or []
        return list(out or [])

    def target_remove_model(self, target: NodeTarget, name: str, timeout: float | None = None) -> None:
        node, left = self._node(target, timeout)
        self._call(self._fn("remove_model", node), name, timeout=left)

    def target_disk_stats(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        node, left = self._node(target, timeout)
        return dict(self._to_json(self._call(self._fn("disk_stats", node), timeout=left)) or {})

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
        node, left = self._node(target, timeout)
        fn = self._fn("push_model", node)
        out = self._to_json(
            self._call(fn, _source(data, fail_after), name, type, digest=digest, format=format, timeout=left)
        )
        j = out if isinstance(out, dict) else {}
        return {
            "already_present": bool(j.get("already_present", False)),
            "bytes_written": int(j.get("bytes_written", 0)),
        }

    # ---------------------------------------------------------------- session calls
    def _scall(self, sid: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        s = self._session(sid)
        return self._call(getattr(s, method), *args, timeout=timeout)

    def ensure_prefix(self, session: str, prefix: JSON, timeout: float | None = None) -> JSON:
        inp = self._from_json("PrefixInput", "PrefixInput", prefix)
        return dict(self._to_json(self._scall(session, "ensure_prefix", inp, timeout=timeout)))

    def prefill_suffix(self, session: str, suffix: JSON, timeout: float | None = None) -> JSON:
        inp = self._from_json("SuffixInput", "SuffixInput", suffix)
        return dict(self._to_json(self._scall(session, "prefill_suffix", inp, timeout=timeout)))

    def decode(self, session: str, config: JSON, timeout: float | None = None) -> DecodeResult:
        s = self._session(session)
        cfg = self._from_json("DecodeConfig", "DecodeConfig", config)
        fn = s.decode
        kw: dict[str, Any] = {}
        if timeout is not None and _accepts_timeout(fn):
            kw["timeout"] = timeout
        result = DecodeResult()

        async def go() -> None:
            stream = await _maybe_await(fn(cfg, **kw))
            try:
                async for chunk in stream:
                    j = self._to_json(chunk)
                    if isinstance(j, dict):
                        j = {k: v for k, v in j.items() if v not in ("", [], None)}
                    result.chunks.append(j if isinstance(j, dict) else {"text": str(j)})
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                result.error = error_to_connector_error(exc)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()

        try:
            self._run(go, timeout)
        except ConnectorError as err:
            result.error = err
        return result

    def explain_context(self, session: str, timeout: float | None = None) -> JSON:
        return dict(self._to_json(self._scall(session, "explain_context", timeout=timeout)))

    def snapshot(self, session: str, timeout: float | None = None) -> JSON:
        return dict(self._to_json(self._scall(session, "snapshot", timeout=timeout)))

    def restore(self, session: str, snapshot: JSON, timeout: float | None = None) -> None:
        snap = self._from_json("SessionSnapshot", "SessionSnapshot", snapshot)
        self._scall(session, "restore", snap, timeout=timeout)

    def close_session(self, session: str, timeout: float | None = None) -> None:
        self._scall(session, "close", timeout=timeout)

    def close(self) -> None:
        for sess in list(self._sessions.values()):
            with contextlib.suppress(ConnectorError):
                self._call(sess.close, timeout=2.0)
        self._sessions.clear()
        for name in ("aclose", "close", "reset"):
            fn = getattr(self.module, name, None)
            if callable(fn) and not isinstance(fn, types.ModuleType):
                with contextlib.suppress(ConnectorError):
                    self._call(fn, timeout=5.0)
                break
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
