"""A session resident in the daemon: ``EnsurePrefix → PrefillSuffix → Decode`` on one handle.

Go: ``runtime/transport/grpc/client.go`` grpcSession. A session is bound to the owner epoch it
was opened in: the :class:`~modeldconn.transport.Connection` (endpoint + owner instance) whose
HTTP/2 connection the daemon tied the handle to (wire.md §6). Session calls never probe and
never follow a takeover:

* the daemon answers for itself: an old owner's handle on a new owner → ``stale_fence``, an
  unknown or closed handle → ``session_closed``, a reaped model → ``slot_generation_stale``;
* once the connector closed that connection (a takeover was noticed and it redialed, or the
  connector was closed), the daemon has already closed the session with the connection, so
  calls fail locally with :class:`~modeldconn.wire.errors.SessionClosed` without a round trip;
* a daemon that freezes while a session call waits is seen by the connection's liveness watch
  (:mod:`modeldconn.transport`): the call ends with :class:`~modeldconn.probe.Unreachable` within
  ``liveness_interval + liveness_timeout`` (5 s by default), not at its own deadline (10 minutes);
  the session itself is kept and serves again if the daemon resumes.

Differences from Go, on purpose: ``explain_context`` raises the typed error instead of
returning ``Closed: true`` (Go's has no error channel); ``explain_context`` and ``close`` carry
a deadline (Go sends none for these two); a Decode server rejection raises from the iterator
instead of arriving as an error chunk; an error chunk that also carries text yields that text
first and raises on the next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final

from modeldconn import transport as _t
from modeldconn.types import (
    Chunk,
    ContextReport,
    DecodeConfig,
    PrefixInput,
    PrefixStatus,
    SessionSnapshot,
    SuffixInput,
    SuffixStatus,
)
from modeldconn.wire import errors as _errors
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = ["DecodeStream", "Session"]

_CLOSED_TEXT: Final = (
    "the connection this session was opened on is closed (owner changed or connector closed)"
)


class Session:
    """A handle to a session resident in the daemon (async). Use ``async with`` to close it."""

    def __init__(
        self,
        conn: _t.Connection,
        handle: str,
        *,
        session_timeout: float = _t.DEFAULT_SESSION_TIMEOUT,
        call_timeout: float = _t.DEFAULT_CALL_TIMEOUT,
        decode_timeout: float = _t.DEFAULT_DECODE_TIMEOUT,
    ) -> None:
        if not handle:
            raise _errors.DecodeError("handle", "a non-empty session handle")
        self._conn = conn
        self.handle = handle
        self._session_timeout = session_timeout
        self._call_timeout = call_timeout
        self._decode_timeout = decode_timeout
        self._closed_locally = False

    # -- identity -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._conn.endpoint

    @property
    def instance_id(self) -> str:
        """The owner instance this session was opened on (its fence)."""
        return self._conn.owner

    @property
    def connection(self) -> _t.Connection:
        return self._conn

    @property
    def closed(self) -> bool:
        """True after :meth:`close`, or when its connection was closed."""
        return self._closed_locally or self._conn.closed

    def __repr__(self) -> str:
        return f"Session(handle={self.handle!r}, endpoint={self.endpoint!r}, closed={self.closed})"

    def _live_conn(self) -> _t.Connection:
        if self._conn.closed:
            raise _errors.SessionClosed(_CLOSED_TEXT)
        return self._conn

    # -- calls --------------------------------------------------------------------------------

    async def ensure_prefix(self, prefix: PrefixInput | str, *, timeout: float | None = None) -> PrefixStatus:
        """Make the resident KV equal ``prefix`` (reusing what matches). A ``str`` is a
        :class:`PrefixInput` with the zero manifest."""
        p = PrefixInput(prefix) if isinstance(prefix, str) else prefix
        req = pb.EnsurePrefixReq(handle=self.handle, prefix=p.to_pb())
        out = await self._live_conn().unary(
            "EnsurePrefix", req, pb.PrefixStatus, timeout=timeout or self._session_timeout
        )
        return PrefixStatus.from_pb(out)

    async def prefill_suffix(
        self, suffix: SuffixInput | str, *, timeout: float | None = None
    ) -> SuffixStatus:
        """Append the volatile part after the prefix."""
        s = SuffixInput(suffix) if isinstance(suffix, str) else suffix
        req = pb.PrefillSuffixReq(handle=self.handle, suffix=s.to_pb())
        out = await self._live_conn().unary(
            "PrefillSuffix", req, pb.SuffixStatus, timeout=timeout or self._session_timeout
        )
        return SuffixStatus.from_pb(out)

    def decode(self, cfg: DecodeConfig | None = None, *, timeout: float | None = None) -> DecodeStream:
        """Stream the generation: ``async for chunk in session.decode(DecodeConfig(max_tokens=8))``.

        ``timeout`` bounds the whole stream (default :data:`~modeldconn.transport.DEFAULT_DECODE_TIMEOUT`).
        An in-stream error chunk raises its typed error; a rejection by the daemon (stale fence,
        closed session, …) raises its typed error at the first step. Leaving the loop early
        cancels the stream (use ``async with session.decode(...) as stream`` to be sure it is)."""
        req = pb.DecodeReq(handle=self.handle, config=(cfg or DecodeConfig()).to_pb())
        return DecodeStream(self, req, timeout or self._decode_timeout)

    async def explain_context(self, *, timeout: float | None = None) -> ContextReport:
        out = await self._live_conn().unary(
            "ExplainContext",
            pb.ExplainReq(handle=self.handle),
            pb.ContextReport,
            timeout=timeout or self._call_timeout,
        )
        return ContextReport.from_pb(out)

    async def snapshot(self, *, timeout: float | None = None) -> SessionSnapshot:
        out = await self._live_conn().unary(
            "Snapshot",
            pb.SnapshotReq(handle=self.handle),
            pb.SessionSnapshot,
            timeout=timeout or self._session_timeout,
        )
        return SessionSnapshot.from_pb(out)

    async def restore(self, snapshot: SessionSnapshot, *, timeout: float | None = None) -> None:
        req = pb.RestoreReq(handle=self.handle, snapshot=snapshot.to_pb())
        await self._live_conn().unary(
            "Restore", req, pb.RestoreResp, timeout=timeout or self._session_timeout
        )

    async def close(self, *, timeout: float | None = None) -> None:
        """``CloseSession``. Idempotent (the daemon answers ``{}`` for any handle); a no-op once the
        connection is closed (the daemon closed the session with it)."""
        self._closed_locally = True
        if self._conn.closed:
            return
        await self._conn.unary(
            "CloseSession",
            pb.CloseReq(handle=self.handle),
            pb.CloseResp,
            timeout=timeout or self._call_timeout,
        )

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if e is None:
            await self.close()
            return
        # An error is already on its way out: close best effort, never mask it.
        try:  # noqa: SIM105 - shield + suppress reads worse
            await asyncio.shield(self.close())
        except (Exception, asyncio.CancelledError):
            pass


class DecodeStream(AsyncIterator[Chunk]):
    """The chunks of one Decode (see :meth:`Session.decode`)."""

    def __init__(self, session: Session, request: pb.DecodeReq, timeout: float) -> None:
        self._session = session
        self._request = request
        self._timeout = timeout
        self._stream: _t.ServerStream[pb.WireChunk] | None = None
        self._pending: BaseException | None = None
        self._finished = False

    def __aiter__(self) -> DecodeStream:
        return self

    async def __anext__(self) -> Chunk:
        if self._pending is not None:
            exc, self._pending = self._pending, None
            raise exc
        if self._finished:
            raise StopAsyncIteration
        if self._stream is None:
            try:
                conn = self._session._live_conn()
            except BaseException:
                self._finished = True
                raise
            self._stream = conn.server_stream("Decode", self._request, pb.WireChunk, timeout=self._timeout)
        try:
            msg = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finished = True
            raise
        except BaseException:
            self._finished = True
            raise
        if msg.error:
            # errors.go decodeWireError; Go stops receiving after the first error chunk.
            self._finished = True
            await self._stream.aclose()
            detail = msg.error_detail if msg.HasField("error_detail") else None
            err = _errors.error_from_chunk(msg.error, msg.error_token or None, detail)
            assert err is not None
            chunk = Chunk.from_pb(msg)
            if chunk.is_empty():
                raise err
            self._pending = err
            return chunk
        return Chunk.from_pb(msg)

    async def aclose(self) -> None:
        self._finished = True
        if self._stream is not None:
            await self._stream.aclose()

    async def __aenter__(self) -> DecodeStream:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def collect(self) -> list[Chunk]:
        """Read the whole stream."""
        return [c async for c in self]

    async def text(self) -> str:
        """Read the whole stream and join its text."""
        return "".join(c.text for c in await self.collect())
