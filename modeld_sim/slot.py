"""The single active model slot (``modeld/slot/service.go``; session-semantics.md §2-§4, §6).

The gRPC layer calls this API and turns results / exceptions into wire replies
(``modeldconn.wire.errors.status_for`` / ``Chunk.to_wire``). Every method that may wait accepts
``deadline`` (``asyncio`` loop time, like the call's ``grpc-timeout``): an expired deadline answers
``DeadlineExceeded``; cancellation of the calling task is the Go context's cancel and propagates as
``asyncio.CancelledError`` (the server reports ``context_canceled``).

Facts reproduced (Go source paths in comments): one operation lock of capacity 1 (Decode holds it for
the whole stream), states and ``busy_operation``, ``last_error`` rules, generation counting, identity
(name, type, digest, resolved path, deep-equal config and adapters), body-owner fence, per-backend type
check (``none`` / ``llama`` / ``openvino``), handles bound to a generation, release on close, the idle
reaper, snapshot blobs under ``<data_root>/modeld-blobs/<backend>/<sha256>.bin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from modeld_sim.blobs import read_blob, write_blob
from modeld_sim.engines.base import (
    NO_BACKEND_TEXT,
    Chunk,
    Engine,
    EngineSession,
    LoadedModel,
    PlainError,
    check_model_path,
    go_quote,
)
from modeld_sim.store import ModelStore
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "DEFAULT_IDLE_TTL",
    "BusyOp",
    "DecodeStream",
    "Slot",
    "SlotSession",
    "SlotState",
]

DEFAULT_IDLE_TTL: Final = 300.0  # cmd/modeld: 5 minutes

T = TypeVar("T")


class SlotState:
    """transport.SlotState values (runtime/transport/session.go)."""

    EMPTY: Final = "Empty"
    LOADING: Final = "Loading"
    READY: Final = "Ready"
    BUSY: Final = "Busy"
    SWITCHING: Final = "Switching"
    UNLOADING: Final = "Unloading"
    FAILED: Final = "Failed"
    IDLE: Final = "Idle"


class BusyOp:
    LOAD: Final = "load"
    SWITCH: Final = "switch"
    UNLOAD: Final = "unload"
    EMBED: Final = "embed"
    IDLE_REAP: Final = "idle_reap"
    ENSURE_PREFIX: Final = "ensure_prefix"
    PREFILL_SUFFIX: Final = "prefill_suffix"
    DECODE: Final = "decode"
    EXPLAIN_CONTEXT: Final = "explain_context"
    SNAPSHOT: Final = "snapshot"
    RESTORE: Final = "restore"


class _RemoveBusy(werr.ModelBusy):
    """``cannot remove model "<name>": modeld active model slot is busy`` (slot.RemoveModel)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._text = f"cannot remove model {go_quote(name)}: {self.sentinel.text}"
        self.args = (self._text,)


def _has(err: BaseException | None, token: str) -> bool:
    return isinstance(err, werr.ModeldError) and token in set(err.wrapped_tokens())


def _is_ctx_err(err: BaseException | None) -> bool:
    return isinstance(err, (werr.Canceled, werr.DeadlineExceeded))


def _as_modeld(exc: BaseException) -> werr.ModeldError:
    if isinstance(exc, werr.ModeldError):
        return exc
    return PlainError(str(exc))


@dataclass(frozen=True)
class _Identity:
    """What OpenSession/LoadModel name (after path resolution). slot.sameIdentity."""

    model_name: str
    type: str
    digest: str
    path: str
    config: pb.Config
    adapters: tuple[pb.AdapterSpec, ...]

    def same(self, other: _Identity) -> bool:
        return (
            self.model_name == other.model_name
            and self.type == other.type
            and self.digest == other.digest
            and self.path == other.path
            and self.config == other.config
            and len(self.adapters) == len(other.adapters)
            and all(a == b for a, b in zip(self.adapters, other.adapters, strict=True))
        )

    def active_model(self, generation: int) -> pb.ActiveModel:
        am = pb.ActiveModel(
            model_name=self.model_name,
            type=self.type,
            digest=self.digest,
            path=self.path,
            generation=generation,
        )
        am.config.CopyFrom(self.config)
        am.adapters.extend(self.adapters)
        return am


@dataclass
class _Active:
    ident: _Identity
    model: LoadedModel
    sess: EngineSession
    generation: int
    refs: int = 0
    explicit: bool = False
    open_info: pb.DescribeResp | None = None


def _copy_config(c: pb.Config) -> pb.Config:
    out = pb.Config()
    out.CopyFrom(c)
    return out


class Slot:
    """One active model slot.

    ``backend``: ``"llama"``, ``"openvino"`` or ``"none"`` (``engine`` is then ignored: every load/open
    fails with the no-backend text, Describe/Embed as plain internal errors).
    """

    def __init__(
        self,
        owner_instance_id: str,
        backend: str,
        engine: Engine | None,
        store: ModelStore,
        data_root: str,
        idle_ttl: float = DEFAULT_IDLE_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if backend not in ("llama", "openvino", "none"):
            raise ValueError(f"unknown backend {backend!r}")
        self.owner = owner_instance_id
        self.backend = backend
        self.engine = engine if backend != "none" else None
        self.store = store
        self.data_root = data_root
        self.idle_ttl = idle_ttl
        self._clock = clock
        self._op = asyncio.Lock()
        self._lock_waiters = 0
        self._active: _Active | None = None
        self.generation = 0
        self.state = SlotState.EMPTY
        self.busy_op = ""
        self.last_error = ""
        self._last_activity = clock()
        self._reaper: asyncio.Task[None] | None = None
        self.reaper_ticks = 0
        """Completed idle-reaper ticks (see :meth:`wait_reaper_tick`)."""
        self._reaper_ticked = asyncio.Event()
        self._bg: set[asyncio.Task[werr.ModeldError | None]] = set()
        store.resident_guard = self._refuse_resident

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _ctx_err(deadline: float | None) -> None:
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            raise werr.DeadlineExceeded()

    def _check_fence(self, owner: str) -> None:
        # slot.checkFence: body owner must equal the slot owner (empty included) when one is set.
        if self.owner and owner != self.owner:
            raise werr.StaleFence()

    @property
    def lock_waiters(self) -> int:
        """Operations currently queued for the operation lock (not counting its holder)."""
        return self._lock_waiters

    async def _lock(self, deadline: float | None) -> None:
        # slot.lockOperation: wait for the lock or the context's end. A free lock is taken without
        # yielding, so only a real wait is ever visible in :attr:`lock_waiters`.
        self._lock_waiters += 1
        try:
            if deadline is None:
                await self._op.acquire()
                return
            try:
                async with asyncio.timeout_at(deadline):
                    await self._op.acquire()
            except TimeoutError:
                raise werr.DeadlineExceeded() from None
        finally:
            self._lock_waiters -= 1

    def _unlock(self) -> None:
        self._op.release()

    def _touch(self) -> None:
        self._last_activity = self._clock()

    async def _with_deadline(self, aw: Awaitable[T], deadline: float | None) -> T:
        if deadline is None:
            return await aw
        try:
            async with asyncio.timeout_at(deadline):
                return await aw
        except TimeoutError:
            raise werr.DeadlineExceeded() from None

    async def _identity(self, req: pb.LoadModelReq | pb.OpenSessionReq | pb.EmbedReq) -> _Identity:
        """Body-owner fence, then model resolution (both before the lock, as slot/service.go does);
        Embed carries no adapters, so its identity has none. Resolving a name reads the models
        directory (and the whole model for a digest): that happens on a worker thread; a verbatim path
        needs no file access here."""
        self._check_fence(req.owner_instance_id)
        if req.path:
            resolved = req.path
        else:
            resolved = await asyncio.to_thread(
                self.store.resolve_path, req.path, req.model_name, req.type, req.digest
            )
        adapters = tuple(req.adapters) if not isinstance(req, pb.EmbedReq) else ()
        return _Identity(req.model_name, req.type, req.digest, resolved, _copy_config(req.config), adapters)

    def _check_type(self, typ: str) -> None:
        # modeld/llama/service.go, modeld/openvino/service.go: foreign types are a backend mismatch.
        if typ not in ("", self.backend):
            raise werr.BackendMismatch(f"requested {go_quote(typ)}, this daemon serves {self.backend}")

    async def _backend_open(self, ident: _Identity) -> LoadedModel:
        if self.engine is None:
            raise PlainError(NO_BACKEND_TEXT)
        self._check_type(ident.type)
        # A FIFO or device would block the engine's read of it: refused first, off the loop.
        await asyncio.to_thread(check_model_path, self.backend, ident.path)
        return await self.engine.load(ident.path, ident.config, ident.adapters)

    def _backend_describe(self, ident: _Identity, reclaimable: int) -> pb.DescribeResp:
        """The engine's capacity answer. Reads the model: run it on a worker thread."""
        if self.engine is None:
            raise PlainError(NO_BACKEND_TEXT)
        self._check_type(ident.type)
        check_model_path(self.backend, ident.path)
        return self.engine.describe(ident.path, ident.config, reclaimable)

    def _describe_for_open(self, ident: _Identity) -> pb.DescribeResp | None:
        # slot.describeForOpen: best effort, failure disables the same-identity shortcut.
        try:
            return self._backend_describe(ident, 0)
        except Exception:
            return None

    def _finish_load_error(self, err: werr.ModeldError) -> werr.ModeldError:
        self.busy_op = ""
        self.last_error = str(err)
        self.state = SlotState.EMPTY if _is_ctx_err(err) else SlotState.FAILED
        return err

    def _finish_close_error(self, err: werr.ModeldError) -> werr.ModeldError:
        self.state = SlotState.FAILED
        self.busy_op = ""
        self.last_error = str(err)
        return err

    @staticmethod
    def _load_error(exc: BaseException) -> werr.ModeldError:
        # slot.loadError: context errors pass through, anything else is wrapped in model_load_failed.
        err = _as_modeld(exc)
        if _is_ctx_err(err):
            return err
        return werr.ModelLoadFailed.wrapping(err)

    async def _open_model(
        self, ident: _Identity, deadline: float | None
    ) -> tuple[LoadedModel, pb.DescribeResp | None]:
        open_info = await asyncio.to_thread(self._describe_for_open, ident)
        try:
            model = await self._with_deadline(self._backend_open(ident), deadline)
        except asyncio.CancelledError:
            self._finish_load_error(werr.Canceled())
            raise
        except Exception as e:
            raise self._finish_load_error(self._load_error(e)) from None
        return model, open_info

    async def _close_model(self, model: LoadedModel) -> werr.ModeldError | None:
        try:
            await model.close()
        except Exception as e:
            return _as_modeld(e)
        return None

    # ------------------------------------------------------------------ status

    async def status(self) -> pb.DaemonStatus:
        """slot.Status: never blocks, no fence."""
        return self.status_now()

    def status_now(self) -> pb.DaemonStatus:
        """:meth:`status`, synchronously."""
        st = pb.DaemonStatus(
            owner_instance_id=self.owner,
            backend=self.backend,
            state=self.state or SlotState.EMPTY,
            busy_operation=self.busy_op,
            last_error=self.last_error,
        )
        if self._active is not None:
            st.active.CopyFrom(self._active.ident.active_model(self._active.generation))
        return st

    def set_owner(self, owner_instance_id: str) -> None:
        """Re-fence the body-owner check (the server's ``set_instance_id``)."""
        self.owner = owner_instance_id

    @property
    def active_generation(self) -> int | None:
        return self._active.generation if self._active is not None else None

    # ------------------------------------------------------------------ LoadModel / UnloadModel

    async def load_model(self, req: pb.LoadModelReq, *, deadline: float | None = None) -> pb.ActiveModel:
        """slot.LoadModel. The gRPC layer substitutes an empty body owner before calling."""
        self._ctx_err(deadline)
        ident = await self._identity(req)
        await self._lock(deadline)
        try:
            self._ctx_err(deadline)
            if req.expected_generation != 0 and req.expected_generation != self.generation:
                raise werr.SlotGenerationStale()
            act = self._active
            if act is not None and act.ident.same(ident):
                act.explicit = True
                self.state, self.busy_op, self.last_error = SlotState.READY, "", ""
                self._touch()
                return act.ident.active_model(act.generation)
            if act is not None and act.refs > 0:
                raise werr.ModelBusy()
            if act is not None:
                self._active = None
                self.generation += 1
                self.state, self.busy_op = SlotState.SWITCHING, BusyOp.SWITCH
            else:
                self.state, self.busy_op = SlotState.LOADING, BusyOp.LOAD
            self.last_error = ""
            if act is not None:
                cerr = await self._close_model(act.model)
                if cerr is not None:
                    raise self._finish_close_error(cerr)
            model, open_info = await self._open_model(ident, deadline)
            self.generation += 1
            gen = self.generation
            self._active = _Active(
                ident, model, model.session(), gen, refs=0, explicit=True, open_info=open_info
            )
            self.state, self.busy_op, self.last_error = SlotState.READY, "", ""
            self._touch()
            return ident.active_model(gen)
        finally:
            self._unlock()

    async def unload_model(self, req: pb.UnloadModelReq, *, deadline: float | None = None) -> None:
        """slot.UnloadModel (generation check even on an empty slot)."""
        self._ctx_err(deadline)
        self._check_fence(req.owner_instance_id)
        await self._lock(deadline)
        try:
            self._ctx_err(deadline)
            if req.expected_generation != 0 and req.expected_generation != self.generation:
                raise werr.SlotGenerationStale()
            act = self._active
            if act is None:
                self.state, self.busy_op, self.last_error = SlotState.EMPTY, "", ""
                return
            if act.refs > 0:
                raise werr.ModelBusy()
            self._active = None
            self.generation += 1
            self.state, self.busy_op, self.last_error = SlotState.UNLOADING, BusyOp.UNLOAD, ""
            cerr = await self._close_model(act.model)
            if cerr is not None:
                self.state, self.busy_op, self.last_error = SlotState.FAILED, "", str(cerr)
                raise cerr
            self.state, self.busy_op, self.last_error = SlotState.EMPTY, "", ""
        finally:
            self._unlock()

    # ------------------------------------------------------------------ OpenSession / Describe / Embed

    async def open_session(self, req: pb.OpenSessionReq, *, deadline: float | None = None) -> SlotSession:
        """slot.OpenSession: the returned session is bound to ``.generation``; the server mints
        ``<instanceID>/<generation>/<seq>`` from it."""
        self._ctx_err(deadline)
        ident = await self._identity(req)
        await self._lock(deadline)
        try:
            self._ctx_err(deadline)
            act = self._active
            if act is not None:
                if act.ident.same(ident):
                    if act.refs > 0:
                        raise werr.ModelBusy()
                    act.refs = 1
                    self.state, self.busy_op, self.last_error = SlotState.READY, "", ""
                    self._touch()
                    return SlotSession(self, act.generation)
                if act.refs > 0:
                    raise werr.ModelBusy()
                raise werr.ModelSwitchRequired()
            self.state, self.busy_op, self.last_error = SlotState.LOADING, BusyOp.LOAD, ""
            model, open_info = await self._open_model(ident, deadline)
            self.generation += 1
            gen = self.generation
            self._active = _Active(
                ident, model, model.session(), gen, refs=1, explicit=False, open_info=open_info
            )
            self.state, self.busy_op, self.last_error = SlotState.READY, "", ""
            self._touch()
            return SlotSession(self, gen)
        finally:
            self._unlock()

    async def describe(self, req: pb.OpenSessionReq, *, deadline: float | None = None) -> pb.DescribeResp:
        """slot.Describe: no lock, side-effect free; the engine is asked on a worker thread."""
        self._ctx_err(deadline)
        ident = await self._identity(req)
        reclaimable = 0
        act = self._active
        if act is not None:
            if act.ident.same(ident):
                if act.open_info is not None and act.open_info.effective_context > 0:
                    out = pb.DescribeResp()
                    out.CopyFrom(act.open_info)
                    return out
            elif act.open_info is not None:
                reclaimable = int(act.open_info.required_bytes)
        return await asyncio.to_thread(self._backend_describe, ident, reclaimable)

    async def embed(self, req: pb.EmbedReq, *, deadline: float | None = None) -> pb.EmbedResp:
        """slot.Embed: takes the lock; evicts an idle implicit model first."""
        self._ctx_err(deadline)
        ident = await self._identity(req)
        await self._lock(deadline)
        try:
            self._ctx_err(deadline)
            act = self._active
            if act is not None:
                if act.refs > 0 or act.explicit:
                    raise werr.ModelBusy()
                self._active = None
                self.generation += 1
                self.state, self.busy_op, self.last_error = SlotState.UNLOADING, BusyOp.EMBED, ""
                cerr = await self._close_model(act.model)
                if cerr is not None:
                    raise self._finish_close_error(cerr)
            self.state, self.busy_op = SlotState.BUSY, BusyOp.EMBED
            err: werr.ModeldError | None = None
            try:
                if self.engine is None:
                    raise PlainError(NO_BACKEND_TEXT)
                self._check_type(ident.type)
                await asyncio.to_thread(check_model_path, self.backend, ident.path)
                vec = await self._with_deadline(
                    self.engine.embed(ident.path, ident.config, req.text), deadline
                )
            except asyncio.CancelledError:
                self._mark_ready_or_error(werr.Canceled())
                raise
            except Exception as e:
                err = _as_modeld(e)
            self._mark_ready_or_error(err)
            if err is not None:
                raise err
            out = pb.EmbedResp()
            out.vector.extend(vec)
            return out
        finally:
            self._unlock()

    # ------------------------------------------------------------------ node admin pass-through

    def _refuse_resident(self, name: str) -> None:
        # slot.RemoveModel: the resident model's files are never removed underneath it.
        if self._active is not None and self._active.ident.model_name == name:
            raise _RemoveBusy(name)

    async def remove_model(self, name: str) -> None:
        """slot.RemoveModel (the store's ``remove_model`` applies the same guard)."""
        await self.store.remove_model(name)

    # ------------------------------------------------------------------ session plumbing

    def _mark_ready_or_error(self, err: werr.ModeldError | None) -> None:
        # slot.markReadyOrError
        self.busy_op = ""
        self._touch()
        if err is not None and not isinstance(err, werr.Canceled):
            self.last_error = str(err)
            if _has(err, "session_fatal"):
                act = self._active
                if act is not None:
                    self._active = None
                    self.generation += 1
                    self.state = SlotState.FAILED
                    self._spawn_close(act.model)
                else:
                    self.state = SlotState.FAILED
                return
            if _has(err, "session_closed") or _has(err, "slot_generation_stale"):
                self.state = SlotState.FAILED
                return
        self.state = SlotState.EMPTY if self._active is None else SlotState.READY

    def _spawn_close(self, model: LoadedModel) -> None:
        task = asyncio.get_running_loop().create_task(self._close_model(model))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _begin_operation(self, gen: int, op: str) -> EngineSession:
        # slot.beginOperation: refusals change nothing (last_error stays as it was).
        act = self._active
        if act is None:
            if gen != 0 and gen != self.generation:
                raise werr.SlotGenerationStale()
            raise werr.ModelNotActive()
        if act.generation != gen:
            raise werr.SlotGenerationStale()
        self.state, self.busy_op, self.last_error = SlotState.BUSY, op, ""
        self._touch()
        return act.sess

    async def _with_session(
        self,
        gen: int,
        op: str,
        fn: Callable[[EngineSession], Awaitable[T]],
        deadline: float | None,
    ) -> T:
        await self._lock(deadline)
        try:
            self._ctx_err(deadline)
            sess = self._begin_operation(gen, op)
            try:
                result = await self._with_deadline(fn(sess), deadline)
            except asyncio.CancelledError:
                self._mark_ready_or_error(werr.Canceled())
                raise
            except Exception as e:
                err = _as_modeld(e)
                self._mark_ready_or_error(err)
                raise err from None
            self._mark_ready_or_error(None)
            return result
        finally:
            self._unlock()

    async def _release(self, gen: int) -> None:
        # slot.release
        await self._lock(None)
        try:
            act = self._active
            if act is None or act.generation != gen:
                return
            if act.refs > 0:
                act.refs -= 1
            if act.refs > 0 or act.explicit or self.idle_ttl > 0:
                self.state, self.busy_op = SlotState.READY, ""
                self._touch()
                return
            self._active = None
            self.generation += 1
            self.state, self.busy_op, self.last_error = SlotState.UNLOADING, BusyOp.UNLOAD, ""
            cerr = await self._close_model(act.model)
            if cerr is not None:
                self.state, self.busy_op, self.last_error = SlotState.FAILED, "", str(cerr)
                return
            self.state, self.busy_op, self.last_error = SlotState.EMPTY, "", ""
        finally:
            self._unlock()

    # ------------------------------------------------------------------ idle reaper

    async def reap_idle(self) -> bool:
        """slot.reapIdle: one reaper tick. Returns whether a model was reaped."""
        if self.idle_ttl <= 0 or self._op.locked():
            return False
        await self._op.acquire()  # free: returns without yielding
        try:
            act = self._active
            if act is None or self.state != SlotState.READY:
                return False
            if self._clock() - self._last_activity < self.idle_ttl:
                return False
            self._active = None
            self.generation += 1
            self.state, self.busy_op, self.last_error = SlotState.IDLE, BusyOp.IDLE_REAP, ""
            cerr = await self._close_model(act.model)
            self.busy_op = ""
            if cerr is not None:
                self.state, self.last_error = SlotState.FAILED, str(cerr)
                return True
            self.state = SlotState.IDLE
            return True
        finally:
            self._unlock()

    def start_reaper(self) -> None:
        """slot.StartReaper: a task ticking every ``max(idle_ttl/3, 1 s)``; no-op when TTL ≤ 0."""
        if self.idle_ttl <= 0 or self._reaper is not None:
            return
        interval = max(self.idle_ttl / 3, 1.0)

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.reap_idle()
                self.reaper_ticks += 1
                ticked, self._reaper_ticked = self._reaper_ticked, asyncio.Event()
                ticked.set()

        self._reaper = asyncio.get_running_loop().create_task(loop(), name="modeld-sim-reaper")

    async def wait_reaper_tick(self) -> int:
        """Wait until the running reaper completes its next tick; returns :attr:`reaper_ticks`."""
        await self._reaper_ticked.wait()
        return self.reaper_ticks

    async def stop_reaper(self) -> None:
        task, self._reaper = self._reaper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop the reaper and close the resident model (simulator shutdown)."""
        await self.stop_reaper()
        act, self._active = self._active, None
        if act is not None:
            await self._close_model(act.model)
        if self._bg:
            await asyncio.gather(*list(self._bg), return_exceptions=True)

    # ------------------------------------------------------------------ blobs

    def blob_dir(self) -> str:
        return os.path.join(self.data_root, "modeld-blobs", self.backend) if self.data_root else ""


class SlotSession:
    """A handle's view of the slot (slot.slotSession), bound to one generation."""

    def __init__(self, slot: Slot, generation: int) -> None:
        self._slot = slot
        self.generation = generation
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise werr.SessionClosed()

    async def ensure_prefix(
        self, prefix: pb.PrefixInput, *, deadline: float | None = None
    ) -> pb.PrefixStatus:
        self._check_open()
        return await self._slot._with_session(
            self.generation, BusyOp.ENSURE_PREFIX, lambda s: s.ensure_prefix(prefix), deadline
        )

    async def prefill_suffix(
        self, suffix: pb.SuffixInput, *, deadline: float | None = None
    ) -> pb.SuffixStatus:
        self._check_open()
        return await self._slot._with_session(
            self.generation, BusyOp.PREFILL_SUFFIX, lambda s: s.prefill_suffix(suffix), deadline
        )

    def decode(self, cfg: pb.DecodeConfig, *, deadline: float | None = None) -> DecodeStream:
        """slotSession.Decode as an async iterator of wire chunks. The setup (closed handle, lock wait,
        generation check) runs on the first ``__anext__`` and *raises* (a status reply, no message);
        afterwards every chunk, errors included, is a :class:`pb.WireChunk` and an error chunk is the
        last one. The stream holds the operation lock until it ends, yields its error chunk, or is
        ``aclose()``d — a caller that stops early (client gone, task cancelled) must ``aclose()`` it
        (``async with sess.decode(cfg) as stream: ...`` does)."""
        return DecodeStream(self, cfg, deadline)

    async def explain_context(self) -> pb.ContextReport:
        """slotSession.ExplainContext: never fails; a closed handle or a refused generation gives a
        report with only ``Closed: true``. Waits behind an in-flight Decode (no deadline, like Go)."""
        if self._closed:
            return pb.ContextReport(Closed=True)

        async def run(s: EngineSession) -> pb.ContextReport:
            return s.explain()

        try:
            return await self._slot._with_session(self.generation, BusyOp.EXPLAIN_CONTEXT, run, None)
        except werr.ModeldError:
            return pb.ContextReport(Closed=True)

    async def snapshot(self, *, deadline: float | None = None) -> pb.SessionSnapshot:
        """slotSession.Snapshot: the state bytes go to ``<data_root>/modeld-blobs/<backend>/<sha>.bin``
        and ``state_id`` names them (lost when no data root is configured)."""
        self._check_open()
        res = await self._slot._with_session(
            self.generation, BusyOp.SNAPSHOT, lambda s: s.snapshot(), deadline
        )
        out = res.snapshot
        d = self._slot.blob_dir()
        if res.state and d:
            state_id = hashlib.sha256(res.state).hexdigest()
            # Go logs a failed write and returns the snapshot without state_id
            if await asyncio.to_thread(write_blob, d, state_id, res.state):
                out.state_id = state_id
        return out

    async def restore(self, snapshot: pb.SessionSnapshot, *, deadline: float | None = None) -> None:
        """slotSession.Restore: a ``state_id`` loads its blob first (before the lock, on a worker thread);
        a missing blob is ``snapshot blob not found: open <path>: no such file or directory``
        (internal), a ``state_id`` leading outside the blob directory is refused
        (:mod:`modeld_sim.blobs`)."""
        self._check_open()
        state = b""
        d = self._slot.blob_dir()
        if snapshot.state_id and d:
            state = await asyncio.to_thread(read_blob, d, snapshot.state_id)
        await self._slot._with_session(
            self.generation, BusyOp.RESTORE, lambda s: s.restore(snapshot, state), deadline
        )

    async def close(self) -> None:
        """slotSession.Close: idempotent; releases the slot reference."""
        if self._closed:
            return
        self._closed = True
        await self._slot._release(self.generation)


class DecodeStream:
    """Async iterator of :class:`pb.WireChunk` holding the slot's operation lock for its whole life."""

    def __init__(self, owner: SlotSession, cfg: pb.DecodeConfig, deadline: float | None) -> None:
        self._owner = owner
        self._slot = owner._slot
        self._cfg = cfg
        self._deadline = deadline
        self._src: AsyncIterator[Chunk] | None = None
        self._started = False
        self._done = False

    def __aiter__(self) -> DecodeStream:
        return self

    async def _start(self) -> None:
        self._started = True
        self._owner._check_open()
        slot = self._slot
        await slot._lock(self._deadline)
        try:
            slot._ctx_err(self._deadline)
            sess = slot._begin_operation(self._owner.generation, BusyOp.DECODE)
        except BaseException:
            self._done = True
            slot._unlock()
            raise
        self._src = sess.decode(self._cfg, deadline=self._deadline)

    async def __anext__(self) -> pb.WireChunk:
        if not self._started:
            await self._start()
        if self._done or self._src is None:
            raise StopAsyncIteration
        try:
            chunk = await self._src.__anext__()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except asyncio.CancelledError:
            await self._abort()
            raise
        except Exception as e:
            err = _as_modeld(e)
            self._finish(err)
            return Chunk(error=err).to_wire()
        if chunk.error is not None:
            # An error chunk is terminal: release now, the consumer may stop reading here.
            await self._close_src()
            self._finish(chunk.error)
        return chunk.to_wire()

    def _finish(self, err: werr.ModeldError | None) -> None:
        if self._done:
            return
        self._done = True
        self._slot._mark_ready_or_error(err)
        self._slot._unlock()

    async def _close_src(self) -> None:
        aclose = getattr(self._src, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()

    async def _abort(self) -> None:
        if self._done or not self._started:
            self._done = True
            return
        await self._close_src()
        self._finish(werr.Canceled())

    async def aclose(self) -> None:
        """End the stream early (client gone / cancelled): not recorded as an error, slot Ready."""
        await self._abort()

    def __del__(self) -> None:
        # Safety net for a consumer that dropped the stream without aclose(): never keep the slot's
        # operation lock forever (treated as a cancellation, like Go's ctx.Done in slotSession.Decode).
        if self._started and not self._done:
            with contextlib.suppress(Exception):
                self._finish(werr.Canceled())

    async def __aenter__(self) -> DecodeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
