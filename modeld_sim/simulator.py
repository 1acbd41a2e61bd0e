"""One simulated modeld daemon in-process: listener, lease owner, Compute server, slot and store.

``async with Simulator(data_root) as sim: …`` runs the same steps, in the same order, as the real
daemon's ``modeld serve`` (``cmd/modeld/main.go`` ``serve``, contenox/runtime v0.36.0):

1. create the data root (mode 0700, ``resolvePaths``) and log ``modeld starting: …``;
2. open the TCP listener (``127.0.0.1:0`` by default) → ``modeld listener ready: requested=… endpoint=…``
   (plus the non-loopback warning);
3. build the engine / store / slot for the backend — lazily: nothing is created under the data root
   but the lease (recorded fact ``data_root.entries_running``);
4. join the lease with meta ``{endpoint, backend}`` (:class:`~modeld_sim.owner.Owner`);
5. follower → close the listener, log ``modeld follower: reason=lease_held …`` and stop (the role is
   ``"follower"``), unless ``standby``: then poll the lease and take over once it lapses;
6. owner → log ``modeld owner started: …`` and ``modeld transport serving: …`` and serve, fenced by
   the instance id.

It stops on :meth:`stop` (graceful stop of the server, then release of the lease, then ``modeld
owner stopped: …``) or on the loss of the lease: ``modeld: lost lease, shutting down: <reason>``,
self-fence (the server's instance id is set to one no fence can match, so fenced calls fail from that
instant), graceful stop, release (which deletes the file only if it is still ours: a rival's lease is
never touched) — :meth:`wait_stopped` returns the reason.

The daemon's output lines go to ``log(stream, line)`` with ``stream`` ``"stdout"`` or ``"stderr"``
(the CLI prints them; by default they go to the :mod:`logging` logger ``modeld_sim.simulator``).
No process-global state: any number of simulators can run in one event loop, each on its own data
root (or several on one root, to elect an owner). File I/O uses plain ``os`` calls, so the data root
may live under pyfakefs; the listener is a real loopback socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from modeldconn import gotime
from modeldconn import lease as liblease
from modeldconn.lease import LeaseRecord

from .owner import BACKEND_META_KEY, ENDPOINT_META_KEY, JoinResult, Owner, Role
from .wirelog import WireLog

if TYPE_CHECKING:
    from .engines.base import Engine
    from .server import ComputeServer
    from .slot import Slot
    from .store import ModelStore

__all__ = [
    "BACKENDS",
    "ENGINES",
    "FENCED_OFF_INSTANCE",
    "LogFn",
    "Simulator",
    "SimulatorError",
    "format_follower_line",
    "go_quote",
    "is_loopback_endpoint",
    "join_host_port",
    "missing_engine",
    "round_duration",
]

log = logging.getLogger(__name__)

LogFn = Callable[[str, str], object]
"""``log(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``; ``line`` has no newline."""

BACKENDS: Final = ("llama", "openvino", "none")
ENGINES: Final = ("fake", "llama", "openvino")

FENCED_OFF_INSTANCE: Final = "\x00fenced-off"
"""The instance id a self-fenced server is switched to: no client can send it as a fence (a NUL is
not a legal header value), and it is never a UUID, so every fenced call fails as a stale fence."""

_NS: Final = 1_000_000_000
_STANDBY_POLL_NS: Final = 250_000_000


class SimulatorError(RuntimeError):
    """A start-up failure the real daemon would report as ``modeld: <message>`` (exit 1)."""


# --- formatting helpers (cmd/modeld/main.go) ------------------------------------------------------


def go_quote(s: str) -> str:
    """Go ``strconv.Quote`` / ``%q``: printable runes kept, the rest escaped Go's way."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        elif c in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[c])
        elif 0xDC80 <= c <= 0xDCFF:  # a surrogateescape'd invalid UTF-8 byte (os.fsdecode)
            out.append(f"\\x{c - 0xDC00:02x}")
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES: Final = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
}


def join_host_port(host: str, port: int | str) -> str:
    """Go ``net.JoinHostPort``: brackets around a host containing a colon (IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(endpoint: str) -> str | None:
    """The host part of ``host:port`` / ``[v6]:port`` (Go ``net.SplitHostPort``), None if malformed."""
    if endpoint.startswith("["):
        end = endpoint.find("]")
        if end < 0 or endpoint[end + 1 : end + 2] != ":" or ":" in endpoint[end + 2 :]:
            return None
        return endpoint[1:end]
    if endpoint.count(":") != 1:
        return None
    return endpoint.rsplit(":", 1)[0]


def is_loopback_endpoint(endpoint: str) -> bool:
    """main.go ``isLoopbackEndpoint``: ``localhost`` (any case) or a loopback IP; ``:8080`` is not."""
    host = _split_host_port(endpoint)
    if host is None:
        host = endpoint
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def round_duration(d_ns: int, m_ns: int) -> int:
    """Go ``Duration.Round(m)``: to the nearest multiple, halfway values away from zero."""
    if m_ns <= 0:
        return d_ns
    r = abs(d_ns) % m_ns
    if d_ns < 0:
        r = -r
        return d_ns - r - m_ns if r + r <= -m_ns else d_ns - r
    return d_ns + m_ns - r if r + r >= m_ns else d_ns - r


def format_idle_ttl(idle_ttl_ns: int) -> str:
    """observability.go ``formatIdleTTL``: ``off`` when disabled, else Go's duration string."""
    return "off" if idle_ttl_ns <= 0 else gotime.format_duration(idle_ttl_ns)


def format_follower_line(data_root: str, holder: LeaseRecord, now_ns: int) -> str:
    """The line a follower prints (main.go ``serve``) before it exits 0."""
    expires = holder.expires_at
    return (
        f"modeld follower: reason=lease_held data_root={go_quote(data_root)} "
        f"holder_instance={holder.instance_id} holder_pid={holder.pid} holder_host={holder.host} "
        f"endpoint={holder.meta.get(ENDPOINT_META_KEY, '')} backend={holder.meta.get(BACKEND_META_KEY, '')} "
        f"expires={gotime.format_rfc3339(expires)} "
        f"ttl_left={gotime.format_duration(round_duration(expires.unix_ns - now_ns, _NS))}"
    )


def _seconds_to_ns(value: float, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    return round(value * _NS)


def _default_log(stream: str, line: str) -> None:
    log.info("[%s] %s", stream, line)


# --- the simulator ------------------------------------------------------------------------------


class Simulator:
    """A simulated modeld: see the module docstring. Durations are seconds (floats)."""

    def __init__(
        self,
        data_root: str | os.PathLike[str],
        *,
        backend: str = "llama",
        engine: str = "fake",
        model: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl: float = 30.0,
        renew: float | None = None,
        idle_ttl: float = 300.0,
        accept_plain_grpc: bool = False,
        models_dir: str | None = None,
        standby: bool = False,
        log: LogFn | None = None,
        listen: str | None = None,
        clock: Callable[[], int] = time.time_ns,
        stop_grace: float = 5.0,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (want one of {', '.join(BACKENDS)})")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (want one of {', '.join(ENGINES)})")
        self._data_root = os.fspath(data_root)
        self._backend = backend
        self.engine_name = engine
        self.model = model
        self.host = host
        self.port = port
        self.ttl_ns = _seconds_to_ns(ttl, "ttl")
        if self.ttl_ns <= 0:
            raise ValueError("owner: ttl must be positive")
        self.renew_ns = None if renew is None else _seconds_to_ns(renew, "renew")
        self.idle_ttl_ns = max(0, _seconds_to_ns(idle_ttl, "idle_ttl"))
        self.accept_plain_grpc = accept_plain_grpc
        self.models_dir = models_dir
        self.standby = standby
        self.listen = listen if listen is not None else join_host_port(host, port)
        self.clock = clock
        self.stop_grace = stop_grace
        self._log: LogFn = log or _default_log
        self.hooks: Any = None
        """``ComputeServer.hooks`` to install (set before :meth:`start`; see modeld_sim.faults)."""
        self.wire = WireLog()
        """Every call this daemon answered, message for message, and scripted answers
        (:mod:`modeld_sim.wirelog`): the witness conformance clauses read."""
        self.crashed = False
        self.partitioned = False

        self._endpoint = ""
        self._role: Role | None = None
        self.owner: Owner | None = None
        self.server: ComputeServer | None = None
        self.slot: Slot | None = None
        self.store: ModelStore | None = None
        self.engine: Engine | None = None
        self.holder: LeaseRecord | None = None
        """Follower: the holder's record seen at join. Owner: None (see :attr:`owner`)."""
        self.lost_reason: str | None = None
        self.release_error: BaseException | None = None
        self._started = False
        self._stopped = asyncio.Event()
        self._stop_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None

    # -- properties -------------------------------------------------------------------------------

    @property
    def data_root(self) -> str:
        return self._data_root

    @property
    def lease_path(self) -> str:
        return liblease.lease_path(self._data_root)

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def endpoint(self) -> str:
        """``host:port`` as advertised in the lease (Go ``lis.Addr().String()``); ``""`` before start."""
        return self._endpoint

    @property
    def role(self) -> str | None:
        """``"owner"``, ``"follower"``, or None before :meth:`start` decided."""
        return None if self._role is None else str(self._role)

    @property
    def instance_id(self) -> str:
        """Our instance id as owner; the holder's as follower; ``""`` before start."""
        if self.owner is not None and self.owner.is_owner:
            return self.owner.instance_id
        return "" if self.holder is None else self.holder.instance_id

    @property
    def running(self) -> bool:
        """Owner and serving (not yet stopped or lost)."""
        return self._role is Role.OWNER and not self._stopped.is_set()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> str:
        """Start as cmd/modeld does; returns the role (``"owner"`` or ``"follower"``).

        A follower has closed its listener and logged the follower line (unless ``standby``: then
        this waits, polling the lease, until it can take over, and returns ``"owner"``). Raises
        :class:`SimulatorError` (or the lease library's error) where the daemon would exit 1.
        """
        if self._started:
            raise RuntimeError("Simulator.start() called twice")
        self._started = True
        try:
            self._make_data_root()
            self._emit(
                "stderr",
                f"modeld starting: data_root={go_quote(self._data_root)} lease={go_quote(self.lease_path)} "
                f"listen={go_quote(self.listen)} ttl={gotime.format_duration(self.ttl_ns)} "
                f"idle_ttl={format_idle_ttl(self.idle_ttl_ns)} memory={{max_resident=unset "
                "reserve_free=unset host_cold=unset min_hot_context=unset headroom=unset}",
            )
            await self._open_listener()
            result = await self._join()
            if result.role is Role.FOLLOWER:
                self.holder = result.holder
                line = format_follower_line(self._data_root, result.holder, self.clock())
                if not self.standby:
                    self._role = Role.FOLLOWER
                    await self._close_server()  # main.go: close the listener, then print, exit 0
                    self._emit("stdout", line)
                    self._stopped.set()
                    return str(self._role)
                self._emit("stdout", line)
                result = await self._standby()
        except BaseException:
            await self._close_server()
            if self.owner is not None and self.owner.is_owner:
                with contextlib.suppress(Exception):
                    await self.owner.release()
            self._stopped.set()
            raise
        self.holder = None
        self._become_owner(result)
        assert self.server is not None
        try:
            await self.server.begin_serving()
        except BaseException:
            # cancelled (a SIGTERM) after the lease was taken but before serving: stop as an owner
            # does, so the lease is released instead of left behind for the next daemon to wait out
            with contextlib.suppress(Exception):
                await self.stop()
            raise
        return str(self._role)

    def _make_data_root(self) -> None:
        # main.go resolvePaths: MkdirAll(dataRoot, 0700)
        try:
            os.makedirs(self._data_root, 0o700, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or exc
            raise SimulatorError(f"create data root {go_quote(self._data_root)}: {why}") from exc

    async def _open_listener(self) -> None:
        from .server import ComputeServer

        self._build_backend()
        self.server = ComputeServer(
            FENCED_OFF_INSTANCE,
            self._backend,
            self.slot,
            self.store,
            accept_plain_grpc=self.accept_plain_grpc,
            hooks=self.hooks,
            wire=self.wire,
        )
        host, port = _parse_listen(self.listen)
        try:
            # listen now (the endpoint goes into the lease), accept only once the lease is ours
            bound_host, bound_port = await self.server.start(host, port, serve=False)
        except OSError as exc:
            self.server = None
            raise SimulatorError(f"listen {go_quote(self.listen)}: {exc.strerror or exc}") from exc
        self._endpoint = join_host_port(bound_host, bound_port)
        self._emit(
            "stderr",
            f"modeld listener ready: requested={go_quote(self.listen)} endpoint={go_quote(self._endpoint)}",
        )
        if not is_loopback_endpoint(self._endpoint):
            self._emit(
                "stderr",
                f"modeld WARNING: listening on a non-loopback endpoint ({self._endpoint}) with no "
                "authentication or transport encryption. Anyone who can reach this address can open "
                "sessions and run inference. Only bind non-loopback on a trusted network (tailnet/VPN/VPC).",
            )

    def _build_backend(self) -> None:
        """Engine, store and slot for the backend. Nothing is created on disk here: the models
        directory and the blob directory appear on first use only."""
        from .slot import Slot
        from .store import ModelStore

        self.store = ModelStore.for_data_root(self._data_root, self.models_dir or "", backend=self._backend)
        if self._backend != "none":
            self.engine = _make_engine(self.engine_name, self._backend, self.model)
        # the owner is set once the lease is ours (Go builds the slot after Join with WithOwner)
        self.slot = Slot(
            FENCED_OFF_INSTANCE,
            self._backend,
            self.engine,
            self.store,
            self._data_root,
            self.idle_ttl_ns / _NS,
        )

    def _new_owner(self) -> Owner:
        return Owner(
            self.lease_path,
            self.ttl_ns,
            self.renew_ns,
            endpoint=self._endpoint,
            backend=self._backend,
            clock=self.clock,
        )

    async def _join(self) -> JoinResult:
        await self._note_malformed_lease()
        self.owner = self._new_owner()
        return await self.owner.join()

    async def _note_malformed_lease(self) -> None:
        """Say (stderr) when the lease we are about to take over is corrupt or lapsed.

        liblease takes such a lease over silently (liblease/lease.go AcquireContext); a CI log that
        shows why the simulator owns a data root that held something else saves a debugging session.
        """
        try:
            rec = await asyncio.to_thread(liblease.inspect, self.lease_path)
        except liblease.LeaseNotFound:
            return
        except liblease.LeaseError as exc:
            self._emit("stderr", f"modeld-sim: taking over an unusable lease: {exc}")
            return
        if liblease.expired_for_liblease(rec, self.clock()):
            self._emit(
                "stderr",
                f"modeld-sim: taking over a lapsed lease of instance {rec.instance_id} (pid {rec.pid})",
            )

    async def _standby(self) -> JoinResult:
        """Wait as a follower; join again as soon as the lease is missing, corrupt or lapsed."""
        self._emit("stderr", "modeld standby: waiting for the lease to lapse")
        while True:
            wait_ns = _STANDBY_POLL_NS
            try:
                rec = await asyncio.to_thread(liblease.inspect, self.lease_path)
            except liblease.LeaseError:
                rec = None  # missing, corrupt or unreadable: acquire would take it
            if rec is not None and not liblease.expired_for_liblease(rec, self.clock()):
                left = rec.expires_at.unix_ns - self.clock() + 1_000_000
                await asyncio.sleep(min(wait_ns, max(left, 1_000_000)) / _NS)
                continue
            result = await self._join()
            if result.role is Role.OWNER:
                return result
            await asyncio.sleep(min(wait_ns, self.ttl_ns) / _NS)

    def _become_owner(self, result: JoinResult) -> None:
        assert self.owner is not None and self.server is not None
        iid = result.instance_id
        self._set_server_instance(iid)
        self._role = Role.OWNER
        if self.slot is not None:
            self.slot.start_reaper()  # slotSvc.StartReaper(serveCtx): idle release of the resident model
        self._emit(
            "stdout",
            f"modeld owner started: instance={iid} pid={os.getpid()} data_root={self._data_root} "
            f"endpoint={self._endpoint} backend={self._backend} ttl={gotime.format_duration(self.ttl_ns)}",
        )
        self._emit(
            "stdout",
            f"modeld transport serving: instance={iid} endpoint={self._endpoint} backend={self._backend} "
            f"idle_ttl={format_idle_ttl(self.idle_ttl_ns)}",
        )
        self._watch_task = asyncio.get_running_loop().create_task(
            self._watch_lost(self.owner), name=f"modeld-sim-lost-{iid}"
        )

    def _set_server_instance(self, iid: str) -> None:
        """Fence the server (and through it the slot's body-owner check) to ``iid``."""
        assert self.server is not None
        self.server.set_instance_id(iid)
        if self.slot is not None and self.slot.owner != iid:
            self.slot.owner = iid  # the slot has no set_owner(): keep its body fence in step

    async def _watch_lost(self, owner: Owner) -> None:
        reason = await owner.wait_lost()
        self.lost_reason = reason
        self._emit("stderr", f"modeld: lost lease, shutting down: {reason}")
        # self-fence at once: from here no fenced call can succeed
        if self.server is not None:
            self._set_server_instance(FENCED_OFF_INSTANCE)
        with contextlib.suppress(Exception):
            await self._shutdown()

    async def _close_server(self, grace: float = 0.0) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace)

    async def _shutdown(self) -> None:
        async with self._stop_lock:
            if self._stopped.is_set():
                if self.release_error is not None:
                    raise self.release_error
                return
            try:
                await self._close_server(self.stop_grace)  # graceful: in-flight calls finish
                if self.slot is not None:
                    with contextlib.suppress(Exception):
                        await self.slot.close()
                if self.owner is not None:
                    try:
                        await self.owner.release()
                    except Exception as exc:
                        self.release_error = exc
                        raise
                if self._role is Role.OWNER and self.owner is not None:
                    iid = self.owner.instance_id
                    self._emit("stdout", f"modeld owner stopped: instance={iid} backend={self._backend}")
            finally:
                self._stopped.set()

    async def stop(self) -> None:
        """Graceful stop: server first, then release the lease, then ``modeld owner stopped``.

        Idempotent. Raises the release error, if any (the daemon's ``release lease: …``, exit 1).
        """
        if not self._started:
            return
        watch = self._watch_task
        if watch is not None and not watch.done() and not (self.owner and self.owner.lost.is_set()):
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        elif watch is not None:
            with contextlib.suppress(Exception):
                await watch
        await self._shutdown()

    async def wait_stopped(self) -> str | None:
        """Wait until the simulator stopped (by :meth:`stop` or a lost lease); the loss reason or None."""
        await self._stopped.wait()
        return self.lost_reason

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- fault injection ------------------------------------------------------------------------------

    def pause_renewals(self) -> None:
        """Stop renewing the lease (as if the process were SIGSTOPped, for the lease's sake)."""
        if self.owner is not None:
            self.owner.pause_renewals()

    def resume_renewals(self) -> None:
        if self.owner is not None:
            self.owner.resume_renewals()

    # process-level faults used by modeld_sim.cluster ------------------------------------------------

    async def crash(self) -> None:
        """Die as if SIGKILLed: stop renewing (no release: the lease stays until it lapses), drop every
        connection without GOAWAY, close the listener. Later :meth:`stop` calls do nothing."""
        self.crashed = True
        watch, self._watch_task = self._watch_task, None
        if watch is not None and not watch.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        if self.owner is not None:
            await self.owner.stop_renewing()
        server, self.server = self.server, None
        if server is not None:
            server.grpc.abort_all_connections()
            with contextlib.suppress(Exception):
                await server.stop(grace=0.0)
        self._stopped.set()

    async def partition(self) -> None:
        """Cut the network, keep the lease: drop every connection and stop listening (connects are
        refused) while the owner keeps renewing. :meth:`heal` listens again on the same port."""
        if self.server is None:
            return
        self.partitioned = True
        grpc = self.server.grpc
        grpc.stop_listening()
        grpc.abort_all_connections()

    async def heal(self) -> None:
        """Undo :meth:`partition`: listen again on the advertised port."""
        if self.server is None or not self.partitioned:
            return
        self.partitioned = False
        await self.server.grpc.start()

    # -- output ------------------------------------------------------------------------------------

    def _emit(self, stream: str, line: str) -> None:
        try:
            self._log(stream, line)
        except Exception:
            log.exception("simulator log callback failed")

    def __repr__(self) -> str:
        return (
            f"Simulator(data_root={self._data_root!r}, role={self.role}, endpoint={self._endpoint!r}, "
            f"instance_id={self.instance_id!r})"
        )


def _parse_listen(listen: str) -> tuple[str, int]:
    host = _split_host_port(listen)
    if host is None:
        raise SimulatorError(f"listen {go_quote(listen)}: address {listen}: missing port in address")
    port_s = listen.rsplit(":", 1)[1]
    try:
        port = int(port_s) if port_s else 0
    except ValueError:
        raise SimulatorError(f"listen {go_quote(listen)}: unknown port") from None
    return host, port


def missing_engine(engine: str, backend: str) -> str | None:
    """Why a real engine cannot run here (its library is an optional extra), or None.

    Checked before anything starts: the daemon must not take the lease only to fail every load."""
    if engine == "fake" or backend != engine:
        return None  # a fake engine needs nothing; an engine/backend mismatch is the simulator's error
    if engine == "llama":
        from modeld_sim.engines.llama import llama_unavailable_reason

        why = llama_unavailable_reason()
        if not why:
            return None
        return f"engine 'llama' needs llama-cpp-python: pip install 'modeld-contract[llama]' ({why})"
    from modeld_sim.engines.openvino import openvino_available

    if openvino_available():
        return None
    return (
        "engine 'openvino' needs the OpenVINO runtime and tokenizers: pip install 'modeld-contract[openvino]'"
    )


def _make_engine(name: str, backend: str, model: str | None) -> Engine:
    """The engine behind the slot. Real engines are imported only when asked for: their native
    libraries are optional extras (`llama`, `openvino`) and slow to import."""
    if name == "fake":
        from .engines.fake import FakeEngine

        return FakeEngine(backend)
    if name in ("llama", "openvino"):
        if backend != name:
            raise SimulatorError(f"engine {name!r} serves backend {name}, not {backend!r}")
        # the engine modules import their native library lazily: ask before building one
        missing = missing_engine(name, backend)
        if missing is not None:
            raise SimulatorError(missing)
        try:
            if name == "llama":
                from .engines.llama import LlamaEngine

                return LlamaEngine(model=model)
            from .engines.openvino import OpenVINOEngine

            return OpenVINOEngine(model=model)
        except ImportError as exc:
            extra = "llama" if name == "llama" else "openvino"
            raise SimulatorError(
                f"engine {name!r} needs the {extra!r} extra (pip install 'modeld-contract[{extra}]'): {exc}"
            ) from exc
    raise SimulatorError(f"unknown engine {name!r} (available: fake, llama, openvino)")
