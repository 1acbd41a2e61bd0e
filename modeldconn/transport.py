"""The connector's wire client: a grpclib ``Channel`` speaking the daemon's JSON codec.

What the real Go client does (``runtime/transport/grpc/client.go`` DialLeader, invoke, Decode,
PushModel; ``codec.go``; ``fence.go`` withOwner; ``limits.go``) and what we do:

* one HTTP/2 connection per :class:`Connection` (Go: one ``grpc.ClientConn``), plain text;
* content-type ``application/grpc+contenoxtransportjson``: :class:`JSONCodec` declares the
  subtype and uses :mod:`modeldconn.wire.codec` (Go ``encoding/json``) for the bytes;
* the fence header ``x-contenox-owner-instance`` on every call when the connection is fenced to
  an owner (Health is sent unfenced: the server ignores the header there, and a probe has no
  owner to name);
* 512 MiB max message in both directions (``limits.go``); checked on encode and on decode;
* a deadline on every call. grpclib sends it as ``grpc-timeout`` and enforces it locally over
  connect, send and receive; an ``asyncio.timeout`` around the whole call is a second guard, so
  a peer that accepts TCP but never speaks HTTP/2 (a SIGSTOPped daemon) fails within it.

Liveness (ours; Go has none, so its session calls on a frozen daemon wait out their 10-minute
deadlines): while a call waits and nothing at all has come from the daemon on the connection for
``liveness_interval`` seconds, an unfenced ``Health`` goes out on the same connection; no answer
within ``liveness_timeout`` ends every waiting call on it with
:class:`~modeldconn.probe.Unreachable` (defaults 2 s + 3 s: a wedged daemon is reported within
5 s). Any answer, even an error status, proves the daemon alive; every frame of a streaming Decode
does too, so a long healthy call is never cut. The connection is kept: a daemon that resumes
(SIGCONT) serves the sessions on it again. Not HTTP/2 PING on purpose: the real daemon is grpc-go
with the default keepalive enforcement (MinTime 5 min, PermitWithoutStream false), which answers a
fourth ping within 5 minutes of server silence with GOAWAY ENHANCE_YOUR_CALM ``too_many_pings`` and
closes the connection, sessions included; a Health makes the server write, which grpc-go counts as
activity, and costs one small stream.

Errors: a non-OK status becomes :func:`modeldconn.wire.errors.error_from_status` (the Go client's
``decodeError``); a deadline → :class:`~modeldconn.wire.errors.DeadlineExceeded`; a body that does
not decode, a missing response message, a second unary response → :class:`DecodeError`; a
connection that cannot be made or breaks → :class:`TransportError` with code Unavailable (Go:
``rpc error: code = Unavailable desc = connection error: …``); any other protocol failure of the
peer (bad content-type, missing grpc-status, a stream reset, a truncated frame) →
:class:`TransportError`. Nothing is retried here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TypeVar, cast

import h2.exceptions
from google.protobuf.message import Message
from grpclib.client import Channel, Handler, Stream
from grpclib.const import Cardinality
from grpclib.encoding.base import CodecBase, StatusDetailsCodecBase
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.protocol import H2Protocol

from modeldconn import probe as _probe
from modeldconn.wire import codec as _codec
from modeldconn.wire import errors as _errors
from modeldconn.wire import methods as _methods
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.fence import CONTENT_SUBTYPE, FENCE_HEADER, MAX_MESSAGE_BYTES, PUSH_CHUNK_BYTES, SERVICE

__all__ = [
    "CONTENT_SUBTYPE",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_DECODE_TIMEOUT",
    "DEFAULT_LIVENESS_INTERVAL",
    "DEFAULT_LIVENESS_TIMEOUT",
    "DEFAULT_LOAD_TIMEOUT",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_PUSH_TIMEOUT",
    "DEFAULT_SESSION_TIMEOUT",
    "FENCE_HEADER",
    "MAX_MESSAGE_BYTES",
    "PUSH_CHUNK_BYTES",
    "SERVICE",
    "Connection",
    "JSONCodec",
    "ServerStream",
    "health_check",
    "split_endpoint",
]

M = TypeVar("M", bound=Message)

# SERVICE, CONTENT_SUBTYPE (codec.go codecName), FENCE_HEADER (fence.go ownerMetadataKey),
# MAX_MESSAGE_BYTES (limits.go, send and receive) and PUSH_CHUNK_BYTES (client.go pushChunkBytes)
# live in modeldconn.wire.fence; the method table (paths, fencing) in modeldconn.wire.methods.

#: Health probe / connect deadline (seconds). A wedged daemon fails within it.
DEFAULT_PROBE_TIMEOUT: Final = 5.0
#: Status, Describe, Embed, UnloadModel, node admin (but PushModel), CloseSession, ExplainContext.
DEFAULT_CALL_TIMEOUT: Final = 60.0
#: OpenSession and LoadModel (may load a model).
DEFAULT_LOAD_TIMEOUT: Final = 600.0
#: EnsurePrefix, PrefillSuffix, Snapshot, Restore (may prefill many tokens).
DEFAULT_SESSION_TIMEOUT: Final = 600.0
#: The whole of one Decode stream.
DEFAULT_DECODE_TIMEOUT: Final = 600.0
#: The whole of one PushModel upload.
DEFAULT_PUSH_TIMEOUT: Final = 3600.0
#: Silence from the daemon (no frame at all) while a call waits before a liveness Health; 0 = none.
DEFAULT_LIVENESS_INTERVAL: Final = 2.0
#: How long that Health may take before every waiting call on the connection is Unreachable.
DEFAULT_LIVENESS_TIMEOUT: Final = 3.0

_UNAVAILABLE: Final = _errors.GrpcCode.UNAVAILABLE
_INTERNAL: Final = _errors.GrpcCode.INTERNAL


class MessageTooLarge(_errors.TransportError):
    """A message over :data:`MAX_MESSAGE_BYTES` (grpc-go: ResourceExhausted)."""

    def __init__(self, direction: str, size: int) -> None:
        super().__init__(
            _errors.GrpcCode.RESOURCE_EXHAUSTED,
            f"grpc: {direction} message larger than max ({size} vs. {MAX_MESSAGE_BYTES})",
        )


class JSONCodec(CodecBase):
    """grpclib codec for ``application/grpc+contenoxtransportjson`` (Go ``encoding/json``)."""

    __content_subtype__ = CONTENT_SUBTYPE

    def encode(self, message: Any, message_type: Any) -> bytes:
        data = _codec.encode(message)
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge("trying to send", len(data))
        return data

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge("received", len(data))
        try:
            return _codec.decode(message_type, bytes(data))
        except _codec.GoJSONError as exc:
            raise _decode_error(exc, message_type) from None


class _RawDetails(StatusDetailsCodecBase):
    """Keep ``grpc-status-details-bin`` as bytes; :func:`error_from_status` parses what it needs."""

    def encode(self, status: Any, message: str | None, details: Any) -> bytes:  # pragma: no cover
        raise NotImplementedError("client only")

    def decode(self, status: Any, message: str | None, data: bytes) -> Any:
        return bytes(data)


def _decode_error(exc: _codec.GoJSONError, message_type: Any) -> _errors.DecodeError:
    name = getattr(message_type, "__name__", "message")
    err = _errors.DecodeError(
        exc.field or "",
        exc.go_type or "valid JSON",
        exc.value,
        message=f"modeldconn: cannot decode {name} from the daemon: {exc}",
    )
    err.__cause__ = exc
    return err


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host, port). Go dials the lease endpoint as given
    (``passthrough:///<endpoint>``); an empty host means the local machine."""
    host, sep, port_s = endpoint.rpartition(":")
    if not sep:
        raise _errors.TransportError(
            _UNAVAILABLE, f"connection error: address {endpoint}: missing port in address"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise _errors.TransportError(
            _UNAVAILABLE, f"connection error: address {endpoint}: invalid port"
        ) from None
    if not 0 < port < 65536:
        raise _errors.TransportError(_UNAVAILABLE, f"connection error: address {endpoint}: invalid port")
    return host or "127.0.0.1", port


def _path(method: str) -> str:
    return _methods.method(method).path


# A stream reset that arrives this close to (or after) the call's deadline is the server's answer to
# that deadline: grpc-go resets the stream (RST_STREAM CANCEL) when it expires, instead of a status
# (internal/transport/http2_server.go), and grpc-go's client then reports DeadlineExceeded.
_DEADLINE_RESET_SLACK: Final = 0.05


def _map_exception(
    exc: BaseException, method: str, timeout: float, deadline: float | None = None
) -> BaseException:
    """One place turning what grpclib/asyncio/h2 raise into the connector's typed errors."""
    if isinstance(exc, _errors.ModeldError):
        return exc
    if (
        isinstance(exc, StreamTerminatedError)
        and deadline is not None
        and time.monotonic() >= deadline - _DEADLINE_RESET_SLACK
    ):
        return _errors.DeadlineExceeded(
            f"{method}: no answer within {timeout:g} s (stream reset at the deadline)"
        )
    if isinstance(exc, GRPCError):
        details = exc.details if isinstance(exc.details, bytes | bytearray) else None
        code = int(exc.status.value)
        return _errors.error_from_status(code, exc.message or "", bytes(details) if details else None)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError on 3.11
        return _errors.DeadlineExceeded(f"{method}: no answer within {timeout:g} s")
    if isinstance(exc, ConnectionError | OSError):
        return _errors.TransportError(_UNAVAILABLE, f"connection error: {method}: {exc!r}")
    if isinstance(exc, StreamTerminatedError):
        return _errors.TransportError(_UNAVAILABLE, f"{method}: stream terminated by the daemon: {exc}")
    if isinstance(exc, AssertionError):  # grpclib Buffer.read: "Received less data than expected"
        return _errors.DecodeError(
            "", "a complete gRPC message", message=f"{method}: truncated message: {exc}"
        )
    if isinstance(exc, NotImplementedError):  # compressed flag set
        return _errors.TransportError(_INTERNAL, f"{method}: {exc} (compressed message from the daemon)")
    if isinstance(exc, ProtocolError | h2.exceptions.H2Error | KeyError | ValueError | TypeError):
        return _errors.TransportError(_INTERNAL, f"{method}: protocol error from the daemon: {exc!r}")
    return exc


class _Protocol(H2Protocol):
    """grpclib's HTTP/2 protocol, telling the connection whenever anything arrives from the daemon."""

    def __init__(self, on_receive: Callable[[], None], *args: Any) -> None:
        super().__init__(*args)
        self._on_receive = on_receive

    def data_received(self, data: bytes) -> None:
        self._on_receive()
        super().data_received(data)


class _Channel(Channel):
    def __init__(self, host: str, port: int, on_receive: Callable[[], None], **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self._on_receive = on_receive

    def _protocol_factory(self) -> H2Protocol:
        return _Protocol(self._on_receive, Handler(), self._config, self._h2_config)


class _Watch:
    """One waiting call under the connection's liveness watch (see the module docstring): the
    watchdog cancels its task when the daemon stopped answering, and the exit turns that cancellation
    into :class:`~modeldconn.probe.Unreachable` (as ``asyncio.timeout`` turns its own into
    TimeoutError; a cancellation from elsewhere passes through)."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._conn = conn
        self.method = method
        self.verdict = ""
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> _Watch:
        task = asyncio.current_task()
        if task is not None and self._conn._liveness_on():
            self._task = task
            self._cancelling = task.cancelling()
            self._conn._watch_started(self)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._conn._watch_ended(self)
        if self.verdict and task.uncancel() <= self._cancelling and t is asyncio.CancelledError:
            raise _probe.Unreachable(self.verdict) from e

    def fire(self, verdict: str) -> None:
        if self._task is not None and not self.verdict:
            self.verdict = verdict
            self._task.cancel()


class Connection:
    """One HTTP/2 connection to a daemon endpoint, optionally fenced to an owner instance.

    Create and use it inside one event loop; :meth:`close` ends the connection (and with it every
    session the daemon bound to it). The channel connects lazily and, like grpc-go, reconnects on
    the next call after the connection broke.
    """

    def __init__(
        self,
        endpoint: str,
        owner: str = "",
        *,
        liveness_interval: float = DEFAULT_LIVENESS_INTERVAL,
        liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.owner = owner
        self.host, self.port = split_endpoint(endpoint)
        self.loop = asyncio.get_running_loop()
        self._channel: Channel | None = None
        self.closed = False
        #: see the module docstring; ``liveness_interval <= 0`` turns the watch off
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        #: monotonic time anything last arrived from the daemon on this connection
        self.last_received = 0.0
        #: liveness Health calls this connection sent (for diagnostics and tests)
        self.liveness_checks = 0
        self._watches: set[_Watch] = set()
        self._quiet_since = 0.0
        self._watchdog: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Connection({self.endpoint!r}, owner={self.owner!r}, {state})"

    def _chan(self) -> Channel:
        if self.closed:
            raise _errors.TransportError(_errors.GrpcCode.CANCELLED, "grpc: the client connection is closing")
        if self._channel is None:
            self._channel = _Channel(
                self.host,
                self.port,
                self._received,
                codec=JSONCodec(),
                status_details_codec=_RawDetails(),
            )
        return self._channel

    # -- liveness ------------------------------------------------------------------------------

    def _received(self) -> None:
        self.last_received = time.monotonic()

    def _liveness_on(self) -> bool:
        return self.liveness_interval > 0 and not self.closed

    def _watch_started(self, w: _Watch) -> None:
        if not self._watches:
            self._quiet_since = time.monotonic()
        self._watches.add(w)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self.loop.create_task(self._watch_daemon())

    def _watch_ended(self, w: _Watch) -> None:
        self._watches.discard(w)

    async def _watch_daemon(self) -> None:
        """While calls wait: after ``liveness_interval`` of silence, one Health; none back in time →
        every waiting call ends Unreachable."""
        while self._watches and not self.closed:
            quiet_from = max(self.last_received, self._quiet_since)
            due = quiet_from + self.liveness_interval - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            silent = time.monotonic() - quiet_from
            if await self._answers_health():
                # its answer refreshed last_received; a daemon that answers Health but not the
                # call itself is left to the call's own deadline
                self._quiet_since = time.monotonic()
                continue
            verdict = (
                f"modeld at {self.endpoint} stopped answering: nothing came for {silent:.1f} s and "
                f"Health got no answer within {self.liveness_timeout:g} s"
            )
            for w in list(self._watches):
                w.fire(f"{w.method}: {verdict}")
            return

    async def _answers_health(self) -> bool:
        self.liveness_checks += 1
        try:
            await self.unary(
                "Health", pb.HealthReq(), pb.HealthResp, timeout=self.liveness_timeout, fenced=False
            )
        except _errors.DeadlineExceeded:
            return False
        except _errors.TransportError as exc:
            # an answer with a status is an answer; a connection that broke is the waiting calls' own
            # error to report
            return exc.code != _UNAVAILABLE
        except _errors.ModeldError:
            return True
        return True

    def _watch(self, method: str) -> _Watch:
        return _Watch(self, method)

    @property
    def connected(self) -> bool:
        ch = self._channel
        proto = getattr(ch, "_protocol", None) if ch is not None else None
        return bool(proto is not None and not proto.handler.connection_lost)

    def close(self) -> None:
        """Close the connection; idempotent. Calls made afterwards fail at once (Go: Canceled
        ``grpc: the client connection is closing``)."""
        self.closed = True
        dog, self._watchdog = self._watchdog, None
        if dog is not None and not dog.done() and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(dog.cancel)
        ch, self._channel = self._channel, None
        if ch is None:
            return
        if self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            ch.close()
        else:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(ch.close)

    def _metadata(self, fenced: bool) -> list[tuple[str, str]] | None:
        if fenced and self.owner:
            return [(FENCE_HEADER, self.owner)]
        return None

    def _open(
        self,
        method: str,
        cardinality: Cardinality,
        req_cls: type[Message],
        reply_cls: type[Message],
        timeout: float,
        fenced: bool,
    ) -> Stream[Any, Any]:
        return self._chan().request(
            _path(method),
            cardinality,
            req_cls,
            reply_cls,
            timeout=timeout,
            metadata=self._metadata(fenced and _methods.method(method).fenced),
        )

    async def unary(
        self, method: str, request: Message, reply_cls: type[M], *, timeout: float, fenced: bool = True
    ) -> M:
        """One unary call: exactly one response message, or a typed error."""
        if method == "Health":  # bounded by its own short deadline; the liveness check itself
            return await self._unary(method, request, reply_cls, timeout=timeout, fenced=fenced)
        async with self._watch(method):
            return await self._unary(method, request, reply_cls, timeout=timeout, fenced=fenced)

    async def _unary(
        self, method: str, request: Message, reply_cls: type[M], *, timeout: float, fenced: bool
    ) -> M:
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout + 0.5):
                stream = self._open(
                    method, Cardinality.UNARY_UNARY, type(request), reply_cls, timeout, fenced
                )
                async with stream:
                    await stream.send_message(request, end=True)
                    reply = await stream.recv_message()
                    if reply is None:
                        raise _errors.DecodeError(
                            "",
                            "one response message",
                            message=f"{method}: the daemon sent no response message",
                        )
                    extra = await stream.recv_message()
                    _check_trailers(stream, method)
                    if extra is not None:
                        raise _errors.DecodeError(
                            "",
                            "one response message",
                            message=f"{method}: the daemon sent more than one response message",
                        )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            mapped = _map_exception(exc, method, timeout, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        return cast(M, reply)

    def server_stream(
        self, method: str, request: Message, reply_cls: type[M], *, timeout: float, fenced: bool = True
    ) -> ServerStream[M]:
        """A server-streaming call (Decode); iterate the returned stream."""
        return ServerStream(self, method, request, reply_cls, timeout, fenced)

    async def client_stream(
        self,
        method: str,
        req_cls: type[Message],
        requests: Callable[[], AsyncIterator[Message]],
        reply_cls: type[M],
        *,
        timeout: float,
        fenced: bool = True,
    ) -> M:
        """A client-streaming call (PushModel). When the daemon rejects the stream early, its
        status is reported (Go may only see a bare ``EOF`` there)."""
        async with self._watch(method):
            return await self._client_stream(method, req_cls, requests, reply_cls, timeout, fenced)

    async def _client_stream(
        self,
        method: str,
        req_cls: type[Message],
        requests: Callable[[], AsyncIterator[Message]],
        reply_cls: type[M],
        timeout: float,
        fenced: bool,
    ) -> M:
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout + 0.5):
                stream = self._open(method, Cardinality.STREAM_UNARY, req_cls, reply_cls, timeout, fenced)
                async with stream:
                    await stream.send_request()
                    try:
                        async for msg in requests():
                            await stream.send_message(msg)
                        await stream.end()
                    except (
                        StreamTerminatedError,
                        ProtocolError,
                        h2.exceptions.H2Error,
                        ConnectionError,
                    ) as exc:
                        await _status_after_send_failure(stream, exc)
                        raise
                    reply = await stream.recv_message()
                    if reply is None:
                        raise _errors.DecodeError(
                            "",
                            "one response message",
                            message=f"{method}: the daemon sent no response message",
                        )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            mapped = _map_exception(exc, method, timeout, deadline)
            if mapped is exc:
                raise
            raise mapped from exc
        return cast(M, reply)

    async def health(self, timeout: float = DEFAULT_PROBE_TIMEOUT) -> pb.HealthResp:
        """Unfenced ``Health`` on this connection."""
        return await self.unary("Health", pb.HealthReq(), pb.HealthResp, timeout=timeout, fenced=False)


def _check_trailers(stream: Stream[Any, Any], method: str) -> None:
    """After the end of the response data: a stream the daemon ended without trailers (and
    without a Trailers-Only status) is an error at once (grpc-go: Internal ``server closed the
    stream without sending trailers``); grpclib would wait for them until the deadline."""
    inner = getattr(stream, "_stream", None)
    if inner is None or stream._trailers_only:
        return
    if getattr(inner, "trailers", None) is None and inner.buffer._eof:
        raise _errors.TransportError(
            _INTERNAL, f"{method}: server closed the stream without sending trailers"
        )


async def _status_after_send_failure(stream: Stream[Any, Any], exc: BaseException) -> None:
    """After a send failed, read the daemon's status if it sent one (an early rejection): a
    :class:`GRPCError` escapes (and is typed by the caller), anything else leaves ``exc`` to be
    reported."""
    try:
        async with asyncio.timeout(1.0):
            if not stream._recv_initial_metadata_done:
                await stream.recv_initial_metadata()
            await stream.recv_message()
            await stream.recv_trailing_metadata()
    except GRPCError:
        raise
    except BaseException:
        return


class ServerStream(AsyncIterator[M]):
    """A pull-based server stream: each ``__anext__`` receives one message under the call's
    deadline. The request is sent on the first ``__anext__``. :meth:`aclose` cancels a stream
    that was not read to its end. Errors are typed as for :meth:`Connection.unary`."""

    def __init__(
        self,
        conn: Connection,
        method: str,
        request: Message,
        reply_cls: type[M],
        timeout: float,
        fenced: bool,
    ) -> None:
        self._conn = conn
        self._method = method
        self._request = request
        self._reply_cls = reply_cls
        self._timeout = timeout
        self._fenced = fenced
        self._deadline: float | None = None
        self._stream: Stream[Any, Any] | None = None
        self._done = False

    def __aiter__(self) -> ServerStream[M]:
        return self

    async def _guard(self, op: Callable[[], Awaitable[Any]]) -> Any:
        assert self._deadline is not None
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with self._conn._watch(self._method), asyncio.timeout(remaining + 0.5):
                return await op()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        except _probe.Unreachable:
            await self.aclose()
            raise
        except BaseException as exc:
            await self._abort(exc)
            mapped = _map_exception(exc, self._method, self._timeout, self._deadline)
            if mapped is exc:
                raise
            raise mapped from exc

    async def _start(self) -> None:
        self._deadline = time.monotonic() + self._timeout
        stream = self._conn._open(
            self._method,
            Cardinality.UNARY_STREAM,
            type(self._request),
            self._reply_cls,
            self._timeout,
            self._fenced,
        )
        self._stream = stream

        async def go() -> None:
            await stream.__aenter__()
            await stream.send_message(self._request, end=True)

        await self._guard(go)

    async def __anext__(self) -> M:
        if self._done:
            raise StopAsyncIteration
        if self._stream is None:
            await self._start()
        stream = self._stream
        assert stream is not None
        msg = await self._guard(stream.recv_message)
        if msg is None:
            # end of stream: the trailers carry the status (an error status raises here)
            await self._guard(self._end)
            raise StopAsyncIteration
        return msg  # type: ignore[no-any-return]

    async def _end(self) -> None:
        assert self._stream is not None
        _check_trailers(self._stream, self._method)
        await self._finish()

    async def _finish(self) -> None:
        stream = self._stream
        self._done = True
        if stream is None:
            return
        try:
            await stream.__aexit__(None, None, None)
        finally:
            self._stream = None

    async def _abort(self, exc: BaseException) -> None:
        stream, self._stream = self._stream, None
        self._done = True
        if stream is None:
            return
        with contextlib.suppress(BaseException):
            if stream._send_request_done:
                await stream.__aexit__(type(exc), exc, exc.__traceback__)

    async def aclose(self) -> None:
        """Stop reading: a stream still open is reset (RST_STREAM CANCEL), as Go does when the
        caller's context ends."""
        stream, self._stream = self._stream, None
        self._done = True
        if stream is None:
            return
        exc = asyncio.CancelledError()
        with contextlib.suppress(BaseException):
            if stream._send_request_done:
                await stream.__aexit__(type(exc), exc, None)

    async def __aenter__(self) -> ServerStream[M]:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def health_check(endpoint: str, timeout: float = DEFAULT_PROBE_TIMEOUT) -> pb.HealthResp:
    """An unfenced ``Health`` on a fresh connection that is closed afterwards (Go
    ``modeldprobe.grpcHealthCheck``)."""
    conn = Connection(endpoint)
    try:
        return await conn.health(timeout)
    finally:
        conn.close()
