"""The Compute service on our h2 transport: decode, fence, handle lookup, dispatch, error mapping.

This is the simulator's counterpart of the real daemon's `runtime/transport/grpc/server.go` and
`wire.go` (v0.36.0): per method the order is (1) decode the request with the JSON codec (a failure
is grpc-go's Internal `grpc: error unmarshalling request: …`, or `grpc: failed to unmarshal the
received message: …` on a stream), (2) the metadata fence (every method but Health), (3) the handle
lookup for session methods (`stale_fence` for a handle of another instance, `session_closed` for an
unknown one), (4) the slot / store call, whose errors become `<token>: <text>` statuses. Handles are
`<instance>/<generation>/<seq>` and die with the HTTP/2 connection that opened them (the real server's
stats handler, `TagConn`/`HandleConn`/`closeConnSessions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from modeldconn.wire import codec
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.fence import FENCE_HEADER, SERVICE
from modeldconn.wire.methods import METHODS, Kind

from .transport import GrpcServer, GrpcStatus, ServerCall
from .wirelog import WireCall, WireLog

log = logging.getLogger("modeld_sim.server")

M = TypeVar("M", bound=Message)
T = TypeVar("T")

_INTERNAL = 13
_UNKNOWN = 2


class Hooks(Protocol):
    """Interception points used by fault injection and transcripts (see modeld_sim.faults)."""

    async def before(self, call: ServerCall, method: str, request: Message | None) -> None: ...

    def after(
        self, call: ServerCall, method: str, request: Message | None, code: int, message: str
    ) -> None: ...


def _go_name(cls: type[Message]) -> str:
    from modeldconn.wire._gen.contenox.gojson.v1 import gojson_pb2

    return str(cls.DESCRIPTOR.GetOptions().Extensions[gojson_pb2.go_name])  # type: ignore[index]


def _foreign_codec_error(cls: type[Message], *, stream: bool) -> GrpcStatus:
    # grpc-go picks the proto codec for a foreign subtype; it refuses our non-proto structs
    # (encoding/proto codec.go: "failed to unmarshal, message is %T, want proto.Message").
    text = f"failed to unmarshal, message is *{_go_name(cls)}, want proto.Message"
    return GrpcStatus(_INTERNAL, codec.grpc_unmarshal_message(text, stream=stream))


class _CallBox:
    """What one call's body found out: the decoded request and its wire log entry."""

    __slots__ = ("entry", "request")

    def __init__(self) -> None:
        self.request: Message | None = None
        self.entry: WireCall | None = None


def _status_of(exc: BaseException) -> GrpcStatus:
    code, message, details = werr.status_for(exc)
    return GrpcStatus(code, message, details)


class ComputeServer:
    """The 18 Compute methods over a :class:`GrpcServer`, fenced by ``instance_id``."""

    def __init__(
        self,
        instance_id: str,
        backend: str,
        slot: Any,
        store: Any,
        *,
        accept_plain_grpc: bool = False,
        max_message_bytes: int | None = None,
        hooks: Hooks | None = None,
        wire: WireLog | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.backend = backend
        self.slot = slot
        self.store = store
        self.hooks = hooks
        self.wire = wire if wire is not None else WireLog()
        """Every call's decoded request and sent messages (and scripted answers): see modeld_sim.wirelog."""
        self._seq = 0
        self._sessions: dict[str, Any] = {}
        self._handle_conn: dict[str, int] = {}
        self._conn_handles: dict[int, set[str]] = {}
        kwargs: dict[str, Any] = {}
        if max_message_bytes is not None:
            kwargs["max_receive_message_size"] = max_message_bytes
            kwargs["max_send_message_size"] = max_message_bytes
        self.grpc = GrpcServer(
            {SERVICE: self._table()},
            accept_plain_grpc=accept_plain_grpc,
            on_connection_closed=self._connection_closed,
            **kwargs,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0, *, serve: bool = True) -> tuple[str, int]:
        """Bind; with ``serve=False`` accept nothing until :meth:`begin_serving` (the real daemon
        listens before it joins the lease and serves only after, fenced by the instance it got)."""
        self.grpc.host = host
        self.grpc.port = port
        await self.grpc.start(serve=serve)
        return self.grpc.host, self.grpc.port

    async def begin_serving(self) -> None:
        await self.grpc.begin_serving()

    async def stop(self, grace: float = 5.0) -> None:
        await self.grpc.close(grace=grace)
        for handle in list(self._sessions):
            await self._release(handle)

    def set_instance_id(self, instance_id: str) -> None:
        """Fence the server to ``instance_id`` (a self-fenced owner switches to one nobody can send)."""
        self.instance_id = instance_id
        setter = getattr(self.slot, "set_owner", None)
        if setter is not None:
            setter(instance_id)

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    # ------------------------------------------------------------------ plumbing
    def _table(self) -> dict[str, tuple[Any, Callable[..., Awaitable[Any]]]]:
        table: dict[str, tuple[Any, Callable[..., Awaitable[Any]]]] = {}
        for m in METHODS:
            impl = getattr(self, "_m_" + m.name)
            if m.kind is Kind.UNARY:
                table[m.name] = ("unary", self._unary(m.name, m.request, impl))
            elif m.kind is Kind.SERVER_STREAM:
                table[m.name] = ("server_stream", self._server_stream(m.name, m.request, impl))
            else:
                table[m.name] = ("client_stream", self._client_stream(m.name, impl))
        return table

    def _check_fence(self, call: ServerCall) -> None:
        # fence.go checkFence: exactly one value, equal to our id (an empty id disables fencing).
        if self.instance_id == "":
            return
        values = call.metadata(FENCE_HEADER)
        if len(values) != 1 or values[0] != self.instance_id:
            raise werr.StaleFence()

    def _lookup(self, handle: str) -> Any:
        if self.instance_id != "" and not handle.startswith(self.instance_id + "/"):
            raise werr.StaleFence()
        sess = self._sessions.get(handle)
        if sess is None:
            raise werr.SessionClosed()
        return sess

    async def _hook_before(self, call: ServerCall, name: str, req: Message | None) -> None:
        if self.hooks is not None:
            await self.hooks.before(call, name, req)

    def _hook_after(self, call: ServerCall, name: str, req: Message | None, code: int, message: str) -> None:
        if self.hooks is not None:
            with contextlib.suppress(Exception):
                self.hooks.after(call, name, req, code, message)

    @staticmethod
    def _status(name: str, exc: Exception) -> GrpcStatus:
        """The status a handler failure becomes; a bug of ours never crashes the server (wire.go recover)."""
        if isinstance(exc, GrpcStatus):
            return exc
        if isinstance(exc, werr.ModeldError):
            return _status_of(exc)
        log.exception("handler %s failed", name)
        return GrpcStatus(_INTERNAL, f"internal: handler {name} panicked: {exc}")

    def _decode(self, call: ServerCall, cls: type[M], payload: bytes, *, stream: bool) -> M:
        """The request as the real server reads it: a foreign subtype fails in grpc-go's proto codec,
        a bad body with encoding/json's own text under grpc-go's unary or stream wording."""
        if not call.codec_ok:
            raise _foreign_codec_error(cls, stream=stream)
        try:
            return codec.decode(cls, payload, stream=stream)
        except codec.GoJSONError as exc:
            raise GrpcStatus(_INTERNAL, codec.grpc_unmarshal_message(str(exc), stream=stream)) from exc

    def _record(self, call: ServerCall, name: str, box: _CallBox) -> WireCall:
        """The wire log's entry of this call, made at the latest when it ends (an undecodable body
        is recorded without a request)."""
        if box.entry is None:
            box.entry = self.wire.begin(name, call.conn_id, call.metadata(FENCE_HEADER), box.request)
        return box.entry

    async def _guarded(self, call: ServerCall, name: str, body: Callable[[_CallBox], Awaitable[T]]) -> T:
        """Run one call's body; any failure becomes the status the real daemon sends, and the hooks
        (faults, transcript) and the wire log see every outcome. ``box.request`` is the decoded
        request, once there is one."""
        box = _CallBox()
        try:
            out = await body(box)
        except asyncio.CancelledError:
            self.wire.end(self._record(call, name, box), None, "")
            raise
        except Exception as exc:
            status = self._status(name, exc)
            self.wire.end(self._record(call, name, box), status.code, status.message)
            self._hook_after(call, name, box.request, status.code, status.message)
            if status is exc:
                raise
            raise status from exc
        self.wire.end(self._record(call, name, box), 0, "")
        self._hook_after(call, name, box.request, 0, "")
        return out

    def _unary(
        self, name: str, req_cls: type[Message], impl: Callable[[ServerCall, Any], Awaitable[Message]]
    ) -> Callable[[ServerCall, bytes], Awaitable[bytes]]:
        async def handler(call: ServerCall, payload: bytes) -> bytes:
            async def body(box: _CallBox) -> bytes:
                req = box.request = self._decode(call, req_cls, payload, stream=False)
                entry = self._record(call, name, box)
                await self._hook_before(call, name, req)
                resp = await impl(call, req)
                # optional hook: rewrite a unary answer (Health faults; see modeld_sim.faults)
                respond = getattr(self.hooks, "respond", None)
                if respond is not None:
                    resp = respond(call, name, req, resp)
                scripted = self.wire.take_answer(name)
                if isinstance(scripted, Message):
                    resp = scripted
                self.wire.sent(entry, resp)
                return codec.encode(resp)

            return await self._guarded(call, name, body)

        return handler

    def _server_stream(
        self,
        name: str,
        req_cls: type[Message],
        impl: Callable[[ServerCall, Any], AsyncIterator[Message]],
    ) -> Callable[[ServerCall, bytes], Awaitable[None]]:
        async def handler(call: ServerCall, payload: bytes) -> None:
            async def body(box: _CallBox) -> None:
                req = box.request = self._decode(call, req_cls, payload, stream=True)
                entry = self._record(call, name, box)
                await self._hook_before(call, name, req)
                async for msg in impl(call, req):
                    self.wire.sent(entry, msg)
                    await call.send(codec.encode(msg))

            await self._guarded(call, name, body)

        return handler

    def _client_stream(
        self, name: str, impl: Callable[[ServerCall, Message, WireCall], Awaitable[Message]]
    ) -> Callable[[ServerCall], Awaitable[bytes]]:
        async def handler(call: ServerCall) -> bytes:
            async def body(box: _CallBox) -> bytes:
                payload = await call.recv()
                if payload is None:
                    # wire.go: RecvMsg of the first frame returns io.EOF unchanged -> Unknown "EOF".
                    raise GrpcStatus(_UNKNOWN, "EOF")
                first = box.request = self._decode(call, pb.PushModelChunk, payload, stream=True)
                entry = self._record(call, name, box)
                await self._hook_before(call, name, first)
                resp = await impl(call, first, entry)
                scripted = self.wire.take_answer(name)
                if isinstance(scripted, Message):
                    resp = scripted
                self.wire.sent(entry, resp)
                return codec.encode(resp)

            return await self._guarded(call, name, body)

        return handler

    # ------------------------------------------------------------------ sessions and connections
    def _register(self, call: ServerCall, sess: Any) -> str:
        self._seq += 1
        gen = int(getattr(sess, "generation", 0) or 0)
        handle = f"{self.instance_id}/{gen}/{self._seq}" if gen > 0 else f"{self.instance_id}/{self._seq}"
        self._sessions[handle] = sess
        self._handle_conn[handle] = call.conn_id
        self._conn_handles.setdefault(call.conn_id, set()).add(handle)
        return handle

    async def _release(self, handle: str) -> None:
        sess = self._sessions.pop(handle, None)
        conn = self._handle_conn.pop(handle, None)
        if conn is not None:
            handles = self._conn_handles.get(conn)
            if handles is not None:
                handles.discard(handle)
                if not handles:
                    self._conn_handles.pop(conn, None)
        if sess is not None:
            await sess.close()

    def _connection_closed(self, conn_id: int) -> None:
        handles = self._conn_handles.pop(conn_id, set())
        for handle in handles:
            sess = self._sessions.pop(handle, None)
            self._handle_conn.pop(handle, None)
            if sess is not None:
                asyncio.get_running_loop().create_task(self._close_quietly(sess))

    @staticmethod
    async def _close_quietly(sess: Any) -> None:
        try:
            await sess.close()
        except Exception:  # closing on a dead connection: nobody to tell
            log.debug("closing a session of a closed connection failed", exc_info=True)

    # ------------------------------------------------------------------ the 18 methods
    async def _m_Health(self, call: ServerCall, req: pb.HealthReq) -> pb.HealthResp:
        return pb.HealthResp(instance_id=self.instance_id, ready=True, backend=self.backend)

    async def _m_Status(self, call: ServerCall, req: pb.StatusReq) -> pb.DaemonStatus:
        self._check_fence(call)
        st: pb.DaemonStatus = await self.slot.status()
        if not st.owner_instance_id:
            st.owner_instance_id = self.instance_id
        if not st.backend:
            st.backend = self.backend
        return st

    async def _m_LoadModel(self, call: ServerCall, req: pb.LoadModelReq) -> pb.ActiveModel:
        self._check_fence(call)
        if not req.owner_instance_id:
            req.owner_instance_id = self.instance_id
        active: pb.ActiveModel = await self.slot.load_model(req)
        return active

    async def _m_UnloadModel(self, call: ServerCall, req: pb.UnloadModelReq) -> pb.UnloadModelResp:
        self._check_fence(call)
        if not req.owner_instance_id:
            req.owner_instance_id = self.instance_id
        await self.slot.unload_model(req)
        return pb.UnloadModelResp()

    async def _m_OpenSession(self, call: ServerCall, req: pb.OpenSessionReq) -> pb.OpenSessionResp:
        self._check_fence(call)
        sess = await self.slot.open_session(req)
        return pb.OpenSessionResp(handle=self._register(call, sess))

    async def _m_Describe(self, call: ServerCall, req: pb.OpenSessionReq) -> pb.DescribeResp:
        self._check_fence(call)
        info: pb.DescribeResp = await self.slot.describe(req)
        return info

    async def _m_Embed(self, call: ServerCall, req: pb.EmbedReq) -> pb.EmbedResp:
        self._check_fence(call)
        resp: pb.EmbedResp = await self.slot.embed(req)
        return resp

    async def _m_EnsurePrefix(self, call: ServerCall, req: pb.EnsurePrefixReq) -> pb.PrefixStatus:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        st: pb.PrefixStatus = await sess.ensure_prefix(req.prefix)
        return st

    async def _m_PrefillSuffix(self, call: ServerCall, req: pb.PrefillSuffixReq) -> pb.SuffixStatus:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        st: pb.SuffixStatus = await sess.prefill_suffix(req.suffix)
        return st

    async def _m_ExplainContext(self, call: ServerCall, req: pb.ExplainReq) -> pb.ContextReport:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        rep: pb.ContextReport = await sess.explain_context()
        return rep

    async def _m_Snapshot(self, call: ServerCall, req: pb.SnapshotReq) -> pb.SessionSnapshot:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        snap: pb.SessionSnapshot = await sess.snapshot()
        return snap

    async def _m_Restore(self, call: ServerCall, req: pb.RestoreReq) -> pb.RestoreResp:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        await sess.restore(req.snapshot)
        return pb.RestoreResp()

    async def _m_CloseSession(self, call: ServerCall, req: pb.CloseReq) -> pb.CloseResp:
        # server.go closeSession: no prefix check; unknown or repeated handles succeed.
        self._check_fence(call)
        await self._release(req.handle)
        return pb.CloseResp()

    async def _m_ListModels(self, call: ServerCall, req: pb.ListModelsReq) -> pb.ListModelsResp:
        self._check_fence(call)
        models = await self.store.list_models()
        return pb.ListModelsResp(models=models)

    async def _m_RemoveModel(self, call: ServerCall, req: pb.RemoveModelReq) -> pb.RemoveModelResp:
        self._check_fence(call)
        await self.slot.remove_model(req.name)
        return pb.RemoveModelResp()

    async def _m_DiskStats(self, call: ServerCall, req: pb.DiskStatsReq) -> pb.NodeDiskStats:
        self._check_fence(call)
        st: pb.NodeDiskStats = await self.store.disk_stats()
        return st

    async def _m_Decode(self, call: ServerCall, req: pb.DecodeReq) -> AsyncIterator[pb.WireChunk]:
        self._check_fence(call)
        sess = self._lookup(req.handle)
        scripted = self.wire.take_answer("Decode")
        if isinstance(scripted, tuple):
            for chunk in scripted:  # a test chose the stream: the engine is not asked
                yield chunk  # type: ignore[misc]
            return
        # The stream holds the slot's operation lock until it ends: close it however we leave.
        stream = sess.decode(req.config)
        chunks: AsyncIterator[pb.WireChunk] = stream
        # optional hook: cut the chunk stream or end it with an in-stream error
        wrap_decode = getattr(self.hooks, "wrap_decode", None)
        if wrap_decode is not None:
            chunks = wrap_decode(call, req, stream)
        try:
            async for chunk in chunks:
                yield chunk
                if chunk.error:
                    return
        finally:
            await stream.aclose()

    async def _m_PushModel(
        self, call: ServerCall, first: pb.PushModelChunk, entry: WireCall
    ) -> pb.PushModelResp:
        self._check_fence(call)
        if not first.HasField("manifest"):
            raise werr.InternalError("modeld transport: PushModel stream missing manifest on first frame")

        async def frames() -> AsyncIterator[bytes]:
            # server.go pushModel: the first frame's data, then every later frame's; a later frame
            # that fails to decode ends the byte stream (the pipe closes), it is not an RPC error.
            if first.data:
                yield first.data
            while True:
                raw = await call.recv()
                if raw is None:
                    return
                try:
                    chunk = codec.decode(pb.PushModelChunk, raw, stream=True)
                except codec.GoJSONError:
                    return
                self.wire.frame(entry, chunk.data)
                if chunk.data:
                    yield chunk.data

        data = frames()
        try:
            resp: pb.PushModelResp = await self.store.receive_model(first.manifest, data)
        finally:
            # Drain what the client still sends so an early rejection never deadlocks it.
            async for _ in data:
                pass
        return resp
