"""The connector: find the modeld owner through its lease, check it answers, call it fenced.

Python version of the Go package ``runtime/modelrepo/modeldconn`` (v0.36.0: ``modeldconn.go``,
``endpoint.go``), async-first. Module-level functions use one default :class:`Connector`, as the
Go package uses package state; create a :class:`Connector` of your own for another data root.

Behaviour kept from Go (session-semantics.md §7, lease-and-discovery.md §8, recorded in
``observed/go-connector*.jsonl``):

* :func:`available` / :func:`backend` read the lease only (no network); :func:`serveable_backend`
  smooths lease gaps for 60 s (inclusive); :func:`set_data_root` resets that memory.
* every lease-resolved call (``describe``, ``open_session``, ``status``, ``load_model``,
  ``unload_model``, ``embed``, the node-admin calls) probes first and fails with the probe's typed
  error (:class:`~modeldconn.probe.NotInstalled`, ``NotRunning``, ``Stale``, ``Unreachable``) when
  no healthy owner answers; then it calls the owner over **one cached connection** keyed by
  endpoint + instance id, fenced to that instance (metadata and, where Go does, the body). A
  different key (a takeover) dials a new connection and closes the old one - which ends every
  session opened on it.
* ``open_session`` on ``model_switch_required`` / ``model_not_active``: ``LoadModel`` with the same
  identity (expected generation 0), then ``OpenSession`` once more; a LoadModel error is returned
  as is; every other error unchanged.
* ``endpoint(addr)``: a node by address, cached per backend id (separate from the local cache),
  reused only while its Health answers ready with the remembered instance.

The probe, and what differs from Go (measured in docs/connector.md): Go's probe opens a fresh
HTTP/2 connection for one unfenced Health before *every* call, then sends the call on the cached
connection. We re-read the lease before every call (offline, cheap) and send the unfenced Health
**on the cached connection** when the lease still names the cached (endpoint, instance): same
answers to the same questions (a takeover is seen in the lease before any fenced call goes out;
a wedged or dead owner fails the Health within the probe deadline → ``Unreachable``), without the
extra TCP + HTTP/2 handshake. A fresh connection is only dialed when the key changes, and then
the probing connection becomes the cached one.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from modeldconn import probe as _probe
from modeldconn import transport as _t
from modeldconn.session import Session
from modeldconn.types import (
    ActiveModel,
    Config,
    DiskStats,
    Health,
    ModelInfo,
    ModelRef,
    NodeModel,
    PushManifest,
    PushResult,
    Status,
)
from modeldconn.wire import errors as _errors
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "SERVEABLE_GRACE_SECONDS",
    "Connector",
    "EndpointClient",
    "EndpointError",
    "NodeNotReady",
    "PushSource",
    "Timeouts",
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

#: Go ``serveableGraceWindow`` (modeldconn.go): 60 s, inclusive.
SERVEABLE_GRACE_SECONDS: Final = 60.0

#: What :func:`push_model` reads: bytes, a file path, or a binary file object.
PushSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class Timeouts:
    """Default deadlines (seconds); every call also takes ``timeout=`` to override its own.

    ``probe`` bounds the Health check before each lease-resolved call (and the connect), so an
    unreachable or wedged owner is reported within it. A lease-resolved call's ``timeout`` covers
    the whole call, probe included (``open_session``: probe + OpenSession + LoadModel + retry).

    ``liveness_interval`` / ``liveness_timeout`` watch a daemon that freezes *during* a call (a
    session call included): after that much silence on the connection a Health goes out, and no
    answer within ``liveness_timeout`` ends every waiting call with ``Unreachable``
    (:mod:`modeldconn.transport`); ``liveness_interval=0`` leaves such calls to their deadlines.
    """

    probe: float = _t.DEFAULT_PROBE_TIMEOUT
    call: float = _t.DEFAULT_CALL_TIMEOUT
    load: float = _t.DEFAULT_LOAD_TIMEOUT
    session: float = _t.DEFAULT_SESSION_TIMEOUT
    decode: float = _t.DEFAULT_DECODE_TIMEOUT
    push: float = _t.DEFAULT_PUSH_TIMEOUT
    liveness_interval: float = _t.DEFAULT_LIVENESS_INTERVAL
    liveness_timeout: float = _t.DEFAULT_LIVENESS_TIMEOUT


class EndpointError(_errors.ModeldError):
    """``endpoint(addr)`` could not reach the node (Go ``modeldconn: health probe <addr>: …``).

    Go wraps the Health error with ``%w``, so a probe that ran out of the caller's deadline still
    ``errors.Is`` ``DeadlineExceeded``. ``cause`` plays that part here: its sentinel becomes this
    error's ``token`` and its tokens are among :meth:`wrapped_tokens`. Without a sentinel cause (a
    refused connection, an address that changed) the error carries no token."""

    def __init__(self, text: str, *, cause: _errors.ModeldError | None = None) -> None:
        super().__init__(text)
        self.cause = cause
        if cause is not None and cause.token is not None:
            self.token = cause.token
            self.code = cause.code

    def wrapped_tokens(self) -> Iterator[str]:
        if self.cause is not None:
            yield from self.cause.wrapped_tokens()


class NodeNotReady(EndpointError):
    """The node answered Health but not ready, or without an instance id."""


# --------------------------------------------------------------------------------- data root

_global_lock = threading.Lock()
_global_root = ""
_followers: weakref.WeakSet[Connector] = weakref.WeakSet()


def set_data_root(root: str | os.PathLike[str] | None) -> None:
    """Data root of the module-level API (and of every :class:`Connector` made without one);
    ``""``/None → the probe default (``$CONTENOX_DATA_ROOT``, else ``~/.contenox``). Also forgets
    the serveable backend remembered for the grace window (Go ``SetDataRoot``)."""
    global _global_root
    with _global_lock:
        _global_root = os.fspath(root) if root else ""
        followers = list(_followers)
    for c in followers:
        c._reset_serveable()


def data_root() -> str:
    """The effective data root of the module-level API."""
    with _global_lock:
        root = _global_root
    return root or _probe.default_data_root()


# --------------------------------------------------------------------------------- deadlines


class _Deadline:
    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        rest = self.at - time.monotonic()
        if rest <= 0:
            raise _errors.DeadlineExceeded(f"{self.what}: no answer within {self.seconds:g} s")
        return rest


# --------------------------------------------------------------------------------- per-loop state


class _EndpointEntry:
    def __init__(self, address: str, conn: _t.Connection) -> None:
        self.address = address
        self.conn = conn


class _LoopState:
    """Connections live in one event loop; a Connector keeps one set per loop."""

    def __init__(self) -> None:
        self.conn: _t.Connection | None = None
        self.endpoints: dict[str, _EndpointEntry] = {}

    def close_all(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        for e in self.endpoints.values():
            e.conn.close()
        self.endpoints.clear()


# --------------------------------------------------------------------------------- Connector


class Connector:
    """The connector state: data root, serveable-backend memory, cached connections.

    ``data_root=None`` follows :func:`set_data_root`. Connections are per event loop (a
    connector used from two loops holds one cached connection in each).
    """

    def __init__(
        self, data_root: str | os.PathLike[str] | None = None, *, timeouts: Timeouts | None = None
    ) -> None:
        self._root: str | None = os.fspath(data_root) if data_root else None
        self.timeouts = timeouts or Timeouts()
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._serveable = ""
        self._serveable_seen = 0.0
        if self._root is None:
            with _global_lock:
                _followers.add(self)

    # -- data root and offline checks ----------------------------------------------------------

    @property
    def data_root(self) -> str:
        if self._root is not None:
            return self._root
        with _global_lock:
            root = _global_root
        return root or _probe.default_data_root()

    def set_data_root(self, root: str | os.PathLike[str] | None) -> None:
        """Pin this connector to ``root`` (None: follow :func:`set_data_root` again); resets the
        serveable-backend memory."""
        self._root = os.fspath(root) if root else None
        with _global_lock:
            if self._root is None:
                _followers.add(self)
            else:
                _followers.discard(self)
        self._reset_serveable()

    def _reset_serveable(self) -> None:
        with self._lock:
            self._serveable, self._serveable_seen = "", 0.0

    def detect(self) -> _probe.ProbeStatus:
        """The offline probe state (lease + binary)."""
        return _probe.detect(self.data_root)

    def available(self) -> bool:
        """A live lease is held (offline; Go ``Available``)."""
        return self.detect().state is _probe.ProbeState.RUNNING

    def backend(self) -> str:
        """The live lease's backend, ``""`` without a live lease (offline; Go ``Backend``)."""
        st = self.detect()
        return st.backend if st.state is _probe.ProbeState.RUNNING else ""

    def serveable_backend(self, *, now: float | None = None) -> str:
        """:meth:`backend`, but a backend seen live is still returned for 60 s (inclusive) after the
        lease stops reading live (Go ``ServeableBackend``). ``now``: ``time.monotonic()`` seconds."""
        return self._serveable_from(self.backend(), time.monotonic() if now is None else now)

    def _serveable_from(self, live: str, now: float) -> str:
        with self._lock:
            if live:
                self._serveable, self._serveable_seen = live, now
                return live
            if self._serveable and now - self._serveable_seen <= SERVEABLE_GRACE_SECONDS:
                return self._serveable
            self._serveable = ""
            return ""

    # -- connection cache ----------------------------------------------------------------------

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            st = self._states.get(loop)
            if st is None:
                st = self._states[loop] = _LoopState()
            return st

    def _dial(self, endpoint: str) -> _t.Connection:
        conn = _t.Connection(endpoint)
        conn.liveness_interval = self.timeouts.liveness_interval
        conn.liveness_timeout = self.timeouts.liveness_timeout
        return conn

    @property
    def cached_connection(self) -> _t.Connection | None:
        """The cached owner connection of the running loop (for diagnostics and tests)."""
        return self._state().conn

    async def _resolve(self, dl: _Deadline) -> _t.Connection:
        """Probe, then the connection fenced to the live owner (see the module docstring)."""
        state = self._state()
        fresh: list[_t.Connection] = []

        async def health(endpoint: str, timeout: float) -> _probe.HealthAnswer:
            conn = state.conn
            if conn is None or conn.closed or conn.endpoint != endpoint:
                conn = self._dial(endpoint)
                fresh.append(conn)
            r = await conn.health(timeout)
            return _probe.HealthAnswer(r.instance_id, r.ready, r.backend)

        try:
            st = await _probe.probe(
                self.data_root, health=health, timeout=min(self.timeouts.probe, dl.left())
            )
        except BaseException:
            for c in fresh:
                c.close()
            raise
        if st.state is not _probe.ProbeState.RUNNING:
            for c in fresh:
                c.close()
            err = st.err()
            assert err is not None
            if st.reason:
                err.add_note(st.reason)
            raise err
        cached = state.conn
        if (
            cached is not None
            and not cached.closed
            and (cached.endpoint, cached.owner) == (st.endpoint, st.instance)
        ):
            for c in fresh:
                c.close()
            return cached
        # A new owner (or none cached yet): the probing connection becomes the cached one.
        conn: _t.Connection | None = None
        for c in fresh:
            if conn is None and c.endpoint == st.endpoint:
                conn = c
            else:
                c.close()
        if conn is None:
            conn = self._dial(st.endpoint)
        conn.owner = st.instance
        state.conn = conn
        if cached is not None:
            cached.close()  # Go dial(): a different key closes the old client
        return conn

    # -- lease-resolved calls --------------------------------------------------------------------

    async def status(self, *, timeout: float | None = None) -> Status:
        """The live slot status (Go ``Status``)."""
        dl = _Deadline(timeout or self.timeouts.call, "Status")
        conn = await self._resolve(dl)
        return await _status(conn, dl)

    async def describe(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> ModelInfo:
        """The daemon's facts about a model (Go ``Describe``)."""
        dl = _Deadline(timeout or self.timeouts.call, "Describe")
        conn = await self._resolve(dl)
        return await _describe(conn, ref, cfg or Config(), dl)

    async def open_session(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> Session:
        """Open a session (Go ``OpenSession``), loading the model when the slot must switch."""
        dl = _Deadline(timeout or self.timeouts.load, "OpenSession")
        conn = await self._resolve(dl)
        return await _open_session(conn, ref, cfg or Config(), dl, self.timeouts)

    async def load_model(
        self,
        ref: ModelRef,
        cfg: Config | None = None,
        expected_generation: int | None = None,
        *,
        timeout: float | None = None,
    ) -> ActiveModel:
        """Activate the slot explicitly (Go ``LoadModel``); ``expected_generation`` makes it
        conditional (``slot_generation_stale`` otherwise)."""
        dl = _Deadline(timeout or self.timeouts.load, "LoadModel")
        conn = await self._resolve(dl)
        return await _load_model(conn, ref, cfg or Config(), expected_generation or 0, dl)

    async def unload_model(self, expected_generation: int = 0, *, timeout: float | None = None) -> None:
        """Release the slot (Go ``UnloadModel``); 0 = unconditional."""
        dl = _Deadline(timeout or self.timeouts.call, "UnloadModel")
        conn = await self._resolve(dl)
        await _unload_model(conn, expected_generation, dl)

    async def embed(
        self, ref: ModelRef, cfg: Config | None, text: str, *, timeout: float | None = None
    ) -> list[float]:
        """A one-shot embedding (Go ``Embed``)."""
        dl = _Deadline(timeout or self.timeouts.load, "Embed")
        conn = await self._resolve(dl)
        return await _embed(conn, ref, cfg or Config(), text, dl)

    async def local_endpoint_addr(self, *, timeout: float | None = None) -> str:
        """The local owner's endpoint after a successful probe (Go ``LocalEndpointAddr``)."""
        dl = _Deadline(timeout or self.timeouts.probe, "probe")
        return (await self._resolve(dl)).endpoint

    # Node admin of the local owner (Go ListModelsTarget/PushModelTarget with an empty endpoint).
    # These use the same cached connection as the calls above.

    async def list_models(self, *, timeout: float | None = None) -> list[NodeModel]:
        dl = _Deadline(timeout or self.timeouts.call, "ListModels")
        return await _list_models(await self._resolve(dl), dl)

    async def remove_model(self, name: str, *, timeout: float | None = None) -> None:
        dl = _Deadline(timeout or self.timeouts.call, "RemoveModel")
        await _remove_model(await self._resolve(dl), name, dl)

    async def disk_stats(self, *, timeout: float | None = None) -> DiskStats:
        dl = _Deadline(timeout or self.timeouts.call, "DiskStats")
        return await _disk_stats(await self._resolve(dl), dl)

    async def push_model(
        self,
        source: PushSource,
        name: str,
        type: str,
        *,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
    ) -> PushResult:
        """Upload a model to the node's store (4 MiB frames, manifest on the first). ``digest``
        None → the sha256 of the content is computed first (when the source can be read twice)."""
        dl = _Deadline(timeout or self.timeouts.push, "PushModel")
        return await _push_model(await self._resolve(dl), source, name, type, digest, format, dl)

    # -- targeted (remote) nodes -----------------------------------------------------------------

    async def endpoint(
        self, addr: str, backend_id: str | None = None, *, timeout: float | None = None
    ) -> EndpointClient:
        """A client fenced to the node at ``addr`` (Go ``Endpoint``), cached per ``backend_id``
        (default: the address) apart from the local cache. A cached entry is reused only if its
        Health answers ready with the remembered instance; otherwise it is closed and redialed."""
        bid = backend_id or addr
        probe_timeout = timeout or self.timeouts.probe
        state = self._state()
        entry = state.endpoints.get(bid)
        if entry is not None:
            try:
                if entry.address != addr or entry.conn.closed:
                    raise EndpointError("address changed")
                h = await entry.conn.health(probe_timeout)
                if h.ready and h.instance_id == entry.conn.owner:
                    return EndpointClient(bid, addr, entry.conn, Health.from_pb(h), self.timeouts)
            except _errors.ModeldError:
                pass
            if state.endpoints.get(bid) is entry:
                del state.endpoints[bid]
            entry.conn.close()
        conn = self._dial(addr)
        try:
            h = await conn.health(probe_timeout)
        except _errors.ModeldError as exc:
            conn.close()
            raise EndpointError(f"modeldconn: health probe {addr}: {exc}", cause=exc) from exc
        if not h.ready or not h.instance_id:
            conn.close()
            raise NodeNotReady(f"modeldconn: node {addr} reported not ready")
        # Go closes the probe client and dials a fenced one; fencing is per call, so we keep it.
        conn.owner = h.instance_id
        old = state.endpoints.get(bid)
        state.endpoints[bid] = _EndpointEntry(addr, conn)
        if old is not None:
            old.conn.close()
        return EndpointClient(bid, addr, conn, Health.from_pb(h), self.timeouts)

    async def close_endpoint(self, backend_id: str) -> None:
        """Drop and close a cached node connection (idempotent)."""
        entry = self._state().endpoints.pop(backend_id, None)
        if entry is not None:
            entry.conn.close()

    async def aclose(self) -> None:
        """Close every cached connection (sessions on them end); the connector stays usable."""
        with self._lock:
            states = list(self._states.values())
        for st in states:
            st.close_all()


# --------------------------------------------------------------------------------- targeted client


class EndpointClient:
    """A fenced connection to one node reached by address (Go ``EndpointClient``)."""

    def __init__(
        self, backend_id: str, address: str, conn: _t.Connection, health: Health, timeouts: Timeouts
    ) -> None:
        self.backend_id = backend_id
        self.address = address
        self.connection = conn
        self.health = health
        self.timeouts = timeouts

    @property
    def instance_id(self) -> str:
        return self.health.instance_id

    @property
    def backend(self) -> str:
        return self.health.backend

    @property
    def ready(self) -> bool:
        return self.health.ready

    def __repr__(self) -> str:
        return f"EndpointClient({self.backend_id!r}, {self.address!r}, instance={self.instance_id!r})"

    def _dl(self, t: float | None, default: float, what: str) -> _Deadline:
        return _Deadline(t or default, what)

    async def status(self, *, timeout: float | None = None) -> Status:
        return await _status(self.connection, self._dl(timeout, self.timeouts.call, "Status"))

    async def describe(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> ModelInfo:
        return await _describe(
            self.connection, ref, cfg or Config(), self._dl(timeout, self.timeouts.call, "Describe")
        )

    async def open_session(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> Session:
        """Go ``OpenSessionTarget``: the same switch / not-active retry as the local path."""
        dl = self._dl(timeout, self.timeouts.load, "OpenSession")
        return await _open_session(self.connection, ref, cfg or Config(), dl, self.timeouts)

    async def load_model(
        self,
        ref: ModelRef,
        cfg: Config | None = None,
        expected_generation: int | None = None,
        *,
        timeout: float | None = None,
    ) -> ActiveModel:
        dl = self._dl(timeout, self.timeouts.load, "LoadModel")
        return await _load_model(self.connection, ref, cfg or Config(), expected_generation or 0, dl)

    async def unload_model(self, expected_generation: int = 0, *, timeout: float | None = None) -> None:
        await _unload_model(
            self.connection, expected_generation, self._dl(timeout, self.timeouts.call, "UnloadModel")
        )

    async def embed(
        self, ref: ModelRef, cfg: Config | None, text: str, *, timeout: float | None = None
    ) -> list[float]:
        dl = self._dl(timeout, self.timeouts.load, "Embed")
        return await _embed(self.connection, ref, cfg or Config(), text, dl)

    async def list_models(self, *, timeout: float | None = None) -> list[NodeModel]:
        return await _list_models(self.connection, self._dl(timeout, self.timeouts.call, "ListModels"))

    async def remove_model(self, name: str, *, timeout: float | None = None) -> None:
        await _remove_model(self.connection, name, self._dl(timeout, self.timeouts.call, "RemoveModel"))

    async def disk_stats(self, *, timeout: float | None = None) -> DiskStats:
        return await _disk_stats(self.connection, self._dl(timeout, self.timeouts.call, "DiskStats"))

    async def push_model(
        self,
        source: PushSource,
        name: str,
        type: str,
        *,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
    ) -> PushResult:
        dl = self._dl(timeout, self.timeouts.push, "PushModel")
        return await _push_model(self.connection, source, name, type, digest, format, dl)


# --------------------------------------------------------------------------------- the calls


async def _status(conn: _t.Connection, dl: _Deadline) -> Status:
    # client.go Status: the body carries the owner too ({"owner_instance_id": …}, recorded).
    out = await conn.unary(
        "Status", pb.StatusReq(owner_instance_id=conn.owner), pb.DaemonStatus, timeout=dl.left()
    )
    return Status.from_pb(out)


async def _describe(conn: _t.Connection, ref: ModelRef, cfg: Config, dl: _Deadline) -> ModelInfo:
    out = await conn.unary("Describe", ref.open_request(conn.owner, cfg), pb.DescribeResp, timeout=dl.left())
    return ModelInfo.from_pb(out)


async def _open_once(conn: _t.Connection, req: pb.OpenSessionReq, dl: _Deadline, tm: Timeouts) -> Session:
    out = await conn.unary("OpenSession", req, pb.OpenSessionResp, timeout=dl.left())
    if not out.handle:
        raise _errors.DecodeError(
            "handle", "a non-empty session handle", message="OpenSession: the daemon sent no handle"
        )
    return Session(
        conn, out.handle, session_timeout=tm.session, call_timeout=tm.call, decode_timeout=tm.decode
    )


async def _open_session(
    conn: _t.Connection, ref: ModelRef, cfg: Config, dl: _Deadline, tm: Timeouts
) -> Session:
    # modeldconn.go OpenSession: switch-required / not-active → LoadModel (same identity, generation
    # 0) → retry once; a LoadModel error is returned as is; everything else unchanged.
    req = ref.open_request(conn.owner, cfg)
    try:
        return await _open_once(conn, req, dl, tm)
    except (_errors.ModelSwitchRequired, _errors.ModelNotActive):
        pass
    await _load_model(conn, ref, cfg, 0, dl)
    return await _open_once(conn, req, dl, tm)


async def _load_model(
    conn: _t.Connection, ref: ModelRef, cfg: Config, gen: int, dl: _Deadline
) -> ActiveModel:
    out = await conn.unary(
        "LoadModel", ref.load_request(conn.owner, cfg, gen), pb.ActiveModel, timeout=dl.left()
    )
    return ActiveModel.from_pb(out)


async def _unload_model(conn: _t.Connection, gen: int, dl: _Deadline) -> None:
    req = pb.UnloadModelReq(owner_instance_id=conn.owner, expected_generation=gen)
    await conn.unary("UnloadModel", req, pb.UnloadModelResp, timeout=dl.left())


async def _embed(conn: _t.Connection, ref: ModelRef, cfg: Config, text: str, dl: _Deadline) -> list[float]:
    out = await conn.unary("Embed", ref.embed_request(conn.owner, cfg, text), pb.EmbedResp, timeout=dl.left())
    return list(out.vector)


async def _list_models(conn: _t.Connection, dl: _Deadline) -> list[NodeModel]:
    out = await conn.unary(
        "ListModels", pb.ListModelsReq(owner_instance_id=conn.owner), pb.ListModelsResp, timeout=dl.left()
    )
    return [NodeModel.from_pb(m) for m in out.models]


async def _remove_model(conn: _t.Connection, name: str, dl: _Deadline) -> None:
    req = pb.RemoveModelReq(owner_instance_id=conn.owner, name=name)
    await conn.unary("RemoveModel", req, pb.RemoveModelResp, timeout=dl.left())


async def _disk_stats(conn: _t.Connection, dl: _Deadline) -> DiskStats:
    out = await conn.unary(
        "DiskStats", pb.DiskStatsReq(owner_instance_id=conn.owner), pb.NodeDiskStats, timeout=dl.left()
    )
    return DiskStats.from_pb(out)


# --------------------------------------------------------------------------------- PushModel


def _hash_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_t.PUSH_CHUNK_BYTES):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _hash_stream(f: BinaryIO) -> tuple[str, int]:
    start = f.tell()
    h = hashlib.sha256()
    n = 0
    while chunk := f.read(_t.PUSH_CHUNK_BYTES):
        h.update(chunk)
        n += len(chunk)
    f.seek(start)
    return h.hexdigest(), n


async def _push_model(
    conn: _t.Connection,
    source: PushSource,
    name: str,
    type: str,
    digest: str | None,
    format: str,
    dl: _Deadline,
) -> PushResult:
    owned: BinaryIO | None = None
    total = 0
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        total = len(data)
        if digest is None:
            digest = hashlib.sha256(data).hexdigest()
        reader: BinaryIO = io.BytesIO(data)
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if digest is None:
            digest, total = await asyncio.to_thread(_hash_file, path)
        else:
            total = os.path.getsize(path)
        owned = reader = open(path, "rb")  # noqa: SIM115 - closed below
    else:
        reader = source
        if digest is None:
            seekable = getattr(reader, "seekable", None)
            if callable(seekable) and seekable():
                digest, total = await asyncio.to_thread(_hash_stream, reader)
            else:
                digest = ""  # cannot read twice: the daemon then does not verify
    manifest = PushManifest(name=name, type=type, digest=digest or "", total_bytes=total, format=format)

    async def frames() -> AsyncIterator[pb.PushModelChunk]:
        # client.go PushModel: the first frame always carries owner + manifest (+ data if any).
        first = True
        while True:
            data = await asyncio.to_thread(reader.read, _t.PUSH_CHUNK_BYTES)
            if not data and not first:
                return
            chunk = pb.PushModelChunk()
            if first:
                chunk.owner_instance_id = conn.owner
                chunk.manifest.CopyFrom(manifest.to_pb())
                first = False
            if data:
                chunk.data = bytes(data)
            yield chunk
            if not data:
                return

    try:
        out = await conn.client_stream(
            "PushModel", pb.PushModelChunk, frames, pb.PushModelResp, timeout=dl.left()
        )
    finally:
        if owned is not None:
            owned.close()
    return PushResult.from_pb(out)


# --------------------------------------------------------------------------------- module API

_default = Connector()


def default_connector() -> Connector:
    """The connector behind the module-level functions."""
    return _default


def available() -> bool:
    return _default.available()


def backend() -> str:
    return _default.backend()


def serveable_backend(*, now: float | None = None) -> str:
    return _default.serveable_backend(now=now)


async def status(*, timeout: float | None = None) -> Status:
    return await _default.status(timeout=timeout)


async def describe(ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None) -> ModelInfo:
    return await _default.describe(ref, cfg, timeout=timeout)


async def open_session(ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None) -> Session:
    return await _default.open_session(ref, cfg, timeout=timeout)


async def load_model(
    ref: ModelRef,
    cfg: Config | None = None,
    expected_generation: int | None = None,
    *,
    timeout: float | None = None,
) -> ActiveModel:
    return await _default.load_model(ref, cfg, expected_generation, timeout=timeout)


async def unload_model(expected_generation: int = 0, *, timeout: float | None = None) -> None:
    await _default.unload_model(expected_generation, timeout=timeout)


async def embed(ref: ModelRef, cfg: Config | None, text: str, *, timeout: float | None = None) -> list[float]:
    return await _default.embed(ref, cfg, text, timeout=timeout)


async def list_models(*, timeout: float | None = None) -> list[NodeModel]:
    return await _default.list_models(timeout=timeout)


async def remove_model(name: str, *, timeout: float | None = None) -> None:
    await _default.remove_model(name, timeout=timeout)


async def disk_stats(*, timeout: float | None = None) -> DiskStats:
    return await _default.disk_stats(timeout=timeout)


async def push_model(
    source: PushSource,
    name: str,
    type: str,
    *,
    digest: str | None = None,
    format: str = "file",
    timeout: float | None = None,
) -> PushResult:
    return await _default.push_model(source, name, type, digest=digest, format=format, timeout=timeout)


async def local_endpoint_addr(*, timeout: float | None = None) -> str:
    return await _default.local_endpoint_addr(timeout=timeout)


async def endpoint(
    addr: str, backend_id: str | None = None, *, timeout: float | None = None
) -> EndpointClient:
    return await _default.endpoint(addr, backend_id, timeout=timeout)


async def close_endpoint(backend_id: str) -> None:
    await _default.close_endpoint(backend_id)


async def aclose() -> None:
    """Close the default connector's connections."""
    await _default.aclose()
