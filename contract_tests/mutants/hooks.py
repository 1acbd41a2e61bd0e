"""The reference connector with hooks on what crosses its owner connection: the building block of the
broken connectors in :mod:`modeld_contract.mutants.library`.

A broken connector is a thin subclass of :class:`modeldconn.Connector` that overrides one hook (or one
public method): the request message before it is encoded, the reply after it was decoded, the error a
call raised, each Decode chunk, the deadline a call is given. Sessions opened by it may be wrapped with
:class:`SessionWrapper`. Nothing outside the connector instance changes: the simulator and the harness
in the same process keep the unmodified ``modeldconn`` modules.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import Message

from modeldconn import Connector
from modeldconn import lease as _lease
from modeldconn import probe as _probe

__all__ = ["HookedConnector", "OfflineDecision", "SessionWrapper", "copy_message"]


def copy_message(msg: Message) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


class HookedConnector(Connector):
    """:class:`modeldconn.Connector` whose owner connection passes every call through the hooks below
    (all identities here)."""

    def request(self, method: str, msg: Any) -> Any:
        """The request of ``method`` (a copy: change it freely) before it is sent."""
        return msg

    def reply(self, method: str, msg: Any) -> Any:
        """The decoded reply of a unary or client-stream ``method``."""
        return msg

    def error(self, method: str, exc: Exception) -> Exception:
        """The error ``method`` raised (return another one to replace it)."""
        return exc

    def chunk(self, method: str, msg: Any) -> Any:
        """One message of a server stream; ``None`` drops it."""
        return msg

    def call_timeout(self, method: str, timeout: float) -> float:
        """The deadline (seconds) ``method`` is sent with."""
        return timeout

    async def _resolve(self, dl: Any) -> Any:
        conn = await super()._resolve(dl)
        proxies: weakref.WeakKeyDictionary[Any, _Proxy] = self.__dict__.setdefault(
            "_mutant_proxies", weakref.WeakKeyDictionary()
        )
        proxy = proxies.get(conn)
        if proxy is None:
            proxy = proxies[conn] = _Proxy(self, conn)
        return proxy


class _Proxy:
    """A connection seen through a :class:`HookedConnector`'s hooks (everything else delegated)."""

    def __init__(self, hooks: HookedConnector, conn: Any) -> None:
        self._hooks = hooks
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def unary(self, method: str, request: Message, reply_cls: Any, *, timeout: float, **kw: Any) -> Any:
        h = self._hooks
        req = h.request(method, copy_message(request))
        try:
            out = await self._conn.unary(
                method, req, reply_cls, timeout=h.call_timeout(method, timeout), **kw
            )
        except Exception as exc:
            new = h.error(method, exc)
            if new is exc:
                raise
            raise new from exc
        return h.reply(method, out)

    def server_stream(
        self, method: str, request: Message, reply_cls: Any, *, timeout: float, **kw: Any
    ) -> Any:
        h = self._hooks
        req = h.request(method, copy_message(request))
        inner = self._conn.server_stream(
            method, req, reply_cls, timeout=h.call_timeout(method, timeout), **kw
        )
        return _Stream(h, method, inner)

    async def client_stream(
        self,
        method: str,
        req_cls: Any,
        requests: Callable[[], AsyncIterator[Message]],
        reply_cls: Any,
        *,
        timeout: float,
        **kw: Any,
    ) -> Any:
        h = self._hooks

        async def frames() -> AsyncIterator[Message]:
            async for m in requests():
                yield h.request(method, copy_message(m))

        try:
            out = await self._conn.client_stream(
                method, req_cls, frames, reply_cls, timeout=h.call_timeout(method, timeout), **kw
            )
        except Exception as exc:
            new = h.error(method, exc)
            if new is exc:
                raise
            raise new from exc
        return h.reply(method, out)


class _Stream:
    def __init__(self, hooks: HookedConnector, method: str, inner: Any) -> None:
        self._hooks = hooks
        self._method = method
        self._inner = inner

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                msg = await self._inner.__anext__()
            except StopAsyncIteration:
                raise
            except Exception as exc:
                new = self._hooks.error(self._method, exc)
                if new is exc:
                    raise
                raise new from exc
            out = self._hooks.chunk(self._method, msg)
            if out is not None:
                return out

    async def aclose(self) -> None:
        await self._inner.aclose()


class SessionWrapper:
    """A session of the reference connector; a subclass overrides the calls it breaks."""

    def __init__(self, inner: Any, owner: Any = None) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class OfflineDecision(HookedConnector):
    """The offline discovery decision (lease + binary) made by the connector's own rule, used both by
    ``available``/``backend`` and before every lease-resolved call (which then fails with that state's
    typed error). Subclasses change :meth:`live`, :meth:`locate` or the data root."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        return _lease.live_for_probe(rec, now_ns)

    def locate(self, data_root: str) -> str:
        return _probe.locate_binary(data_root)

    def detect(self) -> _probe.ProbeStatus:
        root = self.data_root
        try:
            rec: _lease.LeaseRecord | None = _lease.inspect(_lease.lease_path(root))
        except Exception:
            rec = None
        try:
            binary = self.locate(root)
        except Exception:
            binary = ""
        if rec is not None and self.live(rec, time.time_ns()):
            return _probe.ProbeStatus(
                _probe.ProbeState.RUNNING,
                binary=binary,
                endpoint=rec.meta.get("endpoint", ""),
                instance=rec.instance_id,
                backend=rec.meta.get("backend", ""),
            )
        if not binary:
            return _probe.ProbeStatus(_probe.ProbeState.NOT_INSTALLED)
        if rec is not None:
            return _probe.ProbeStatus(_probe.ProbeState.STALE, binary=binary, instance=rec.instance_id)
        return _probe.ProbeStatus(_probe.ProbeState.NOT_RUNNING, binary=binary)

    async def _resolve(self, dl: Any) -> Any:
        st = self.detect()
        if st.state is not _probe.ProbeState.RUNNING:
            err = st.err()
            assert err is not None
            raise err
        return await super()._resolve(dl)
