"""The modeld lease owner: join (owner or follower), renew in the background, self-fence, release.

Facts follow the real daemon's ``modeld/owner/owner.go`` (contenox/runtime v0.36.0; ``Join``,
``leaseMeta``, ``renewLoop``, ``renewGiveUpMargin``, ``renewGaveUp``, ``renewRetryDelay``,
``Release``) and the contract ``lease-and-discovery.md`` §5:

* Join: acquire; on :class:`~modeldconn.lease.LeaseHeld` inspect the holder → follower carrying the
  holder's record; when the file vanished between the failed acquire and the inspect, wait
  250 ms and retry; any other error is raised.
* Renew loop: the first renew after one interval (default ``TTL/3``, else 1 s). A successful renew
  moves the validity horizon to ``attempt start + TTL``. :class:`~modeldconn.lease.LeaseLost` → lost
  at once. Any other error (a missing or corrupt file, I/O, a lock timeout — a lock timeout is never a
  loss by itself) → keep trying until ``now + margin >= validUntil`` with ``margin = max(TTL/4, 250 ms)``;
  the retry delay is ``max(min(remaining/2, interval), 250 ms)``.
* Release stops the loop and deletes the lease only if it is still ours; idempotent; no-op for a
  follower.

All lease I/O goes through :mod:`modeldconn.lease` (the one implementation). Its calls block (a
lock wait can take up to 30 s), so they run in a worker thread (:func:`asyncio.to_thread`): the
event loop is never held. Nothing here is process-global, so many owners can live in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from modeldconn import lease as liblease
from modeldconn.lease import LeaseRecord

__all__ = [
    "BACKEND_META_KEY",
    "ENDPOINT_META_KEY",
    "MIN_RENEW_RETRY_NS",
    "JoinResult",
    "Owner",
    "Role",
    "default_renew_interval",
    "lease_meta",
    "renew_gave_up",
    "renew_give_up_margin",
    "renew_retry_delay",
]

log = logging.getLogger(__name__)

ENDPOINT_META_KEY: Final = "endpoint"
"""Lease meta key advertising the owner's transport endpoint (owner.go ``EndpointMetaKey``)."""
BACKEND_META_KEY: Final = "backend"
"""Lease meta key advertising the served backend (owner.go ``BackendMetaKey``)."""

MIN_RENEW_RETRY_NS: Final = 250_000_000
"""owner.go ``minRenewRetryInterval``: floor of the retry cadence and of the give-up margin; also
the pause before Join retries after the holder vanished."""

_NS: Final = 1_000_000_000

Clock = Callable[[], int]
"""Wall-clock nanoseconds since the Unix epoch (``time.time_ns``)."""


# --- pure helpers (owner.go) --------------------------------------------------------------------


def _go_div(a: int, b: int) -> int:
    """Go integer division of durations: truncates toward zero (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def default_renew_interval(ttl_ns: int, renew_interval_ns: int | None = None) -> int:
    """owner.go Join: the given interval if positive, else ``TTL/3``, else 1 s."""
    if renew_interval_ns is not None and renew_interval_ns > 0:
        return renew_interval_ns
    interval = _go_div(ttl_ns, 3)
    return interval if interval > 0 else _NS


def renew_give_up_margin(ttl_ns: int) -> int:
    """owner.go ``renewGiveUpMargin``: ``max(TTL/4, 250 ms)`` (40 s → 10 s, 400 ms → 250 ms)."""
    return max(_go_div(ttl_ns, 4), MIN_RENEW_RETRY_NS)


def renew_gave_up(now_ns: int, valid_until_ns: int, margin_ns: int) -> bool:
    """owner.go ``renewGaveUp``: give up once ``now + margin >= validUntil`` (at equality too)."""
    return not now_ns + margin_ns < valid_until_ns


def renew_retry_delay(interval_ns: int, remaining_ns: int) -> int:
    """owner.go ``renewRetryDelay``: ``max(min(remaining/2, interval), 250 ms)``."""
    return max(min(_go_div(remaining_ns, 2), interval_ns), MIN_RENEW_RETRY_NS)


def lease_meta(meta: Mapping[str, str] | None, endpoint: str, backend: str) -> dict[str, str]:
    """owner.go ``leaseMeta``: non-empty entries of ``meta``, then endpoint/backend when non-empty."""
    out = {k: v for k, v in (meta or {}).items() if k and v}
    if endpoint:
        out[ENDPOINT_META_KEY] = endpoint
    if backend:
        out[BACKEND_META_KEY] = backend
    return out


# --- the owner ---------------------------------------------------------------------------------


class Role(enum.StrEnum):
    """Whether this instance holds the lease (owner.go ``Role``)."""

    OWNER = "owner"
    FOLLOWER = "follower"


@dataclass(frozen=True)
class JoinResult:
    """What :meth:`Owner.join` decided. ``holder`` is our record (owner) or the holder's (follower)."""

    role: Role
    holder: LeaseRecord

    @property
    def is_owner(self) -> bool:
        return self.role is Role.OWNER

    @property
    def instance_id(self) -> str:
        """Our instance id (owner) or the current owner's (follower)."""
        return self.holder.instance_id

    @property
    def endpoint(self) -> str:
        return self.holder.meta.get(ENDPOINT_META_KEY, "")

    @property
    def backend(self) -> str:
        return self.holder.meta.get(BACKEND_META_KEY, "")


class Owner:
    """One participant in the election for ``lease_path``.

    ``await join()`` once; as owner the renew loop runs as an asyncio task of the running loop.
    :attr:`lost` is set (and ``on_lost(reason)`` called, once) when ownership is lost; the caller
    must then stop touching owned state. :meth:`release` relinquishes the lease.
    """

    def __init__(
        self,
        lease_path: str,
        ttl_ns: int,
        renew_interval_ns: int | None = None,
        *,
        endpoint: str = "",
        backend: str = "",
        meta: Mapping[str, str] | None = None,
        clock: Clock = time.time_ns,
        on_lost: Callable[[str], object] | None = None,
    ) -> None:
        if isinstance(ttl_ns, bool) or not isinstance(ttl_ns, int) or ttl_ns <= 0:
            raise ValueError("owner: ttl must be positive")
        self.lease_path = lease_path
        self.ttl_ns = ttl_ns
        self.interval_ns = default_renew_interval(ttl_ns, renew_interval_ns)
        self.meta = lease_meta(meta, endpoint, backend)
        self.clock = clock
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self.lost_error: BaseException | None = None
        self.renewals = 0
        """Successful renews so far (observability for tests and the control plane)."""
        self.renew_failures = 0
        self._result: JoinResult | None = None
        self._handle: liblease.LeaseHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._held = False
        self._released = False
        self._release_error: BaseException | None = None
        self._release_lock = asyncio.Lock()

    # -- join -----------------------------------------------------------------------------------

    async def join(self) -> JoinResult:
        """Acquire the lease or learn who holds it (owner.go ``Join``). Call once."""
        if self._result is not None:
            return self._result
        while True:
            try:
                handle = await asyncio.to_thread(
                    liblease.acquire, self.lease_path, self.ttl_ns, self.meta or None, now=self.clock
                )
            except liblease.LeaseHeld:
                try:
                    rec = await asyncio.to_thread(liblease.inspect, self.lease_path)
                except FileNotFoundError:
                    # The holder released between the failed acquire and the inspect: pause so a
                    # pathological held-then-gone race cannot spin, then retry.
                    await asyncio.sleep(MIN_RENEW_RETRY_NS / _NS)
                    continue
                self._result = JoinResult(Role.FOLLOWER, rec)
                return self._result
            break
        self._handle = handle
        self._result = JoinResult(Role.OWNER, handle.record)
        self._task = asyncio.get_running_loop().create_task(
            self._renew_loop(), name=f"modeld-owner-renew-{handle.instance_id}"
        )
        return self._result

    # -- state ----------------------------------------------------------------------------------

    @property
    def result(self) -> JoinResult | None:
        return self._result

    @property
    def role(self) -> Role | None:
        return None if self._result is None else self._result.role

    @property
    def is_owner(self) -> bool:
        return self._result is not None and self._result.is_owner

    @property
    def instance_id(self) -> str:
        """Ours as owner, the holder's as follower, ``""`` before join."""
        return "" if self._result is None else self._result.instance_id

    @property
    def holder(self) -> LeaseRecord | None:
        """The current owner's record: ours (as last renewed) or the holder's seen at join."""
        if self._handle is not None:
            return self._handle.record
        return None if self._result is None else self._result.holder

    @property
    def handle(self) -> liblease.LeaseHandle | None:
        return self._handle

    async def wait_lost(self) -> str:
        """Wait until ownership is lost; returns the reason text (never returns for a follower)."""
        await self.lost.wait()
        return self.lost_reason or ""

    # -- fault injection ------------------------------------------------------------------------

    def pause_renewals(self) -> None:
        """Stop renewing (as if the process were stopped): due renews wait for :meth:`resume_renewals`."""
        self._resumed.clear()

    def resume_renewals(self) -> None:
        """Resume renewing; an overdue renew runs at once (like a SIGCONT'd process's timer)."""
        self._resumed.set()

    @property
    def renewals_paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def renew_held(self) -> bool:
        """A renew came due while paused and is parked until :meth:`resume_renewals`.

        While this is true the renew loop is suspended at the pause gate: no renew can run, so
        :attr:`renewals` cannot advance (a renew already in flight when the pause began has finished).
        """
        return self._held

    @property
    def renewing(self) -> bool:
        """The renew loop is running (owner only; false before join, after loss, stop or release)."""
        return self._task is not None and not self._task.done()

    # -- renew loop -----------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        handle = self._handle
        assert handle is not None
        ttl, interval = self.ttl_ns, self.interval_ns
        margin = renew_give_up_margin(ttl)
        valid_until = handle.record.expires_at.unix_ns
        delay = interval
        while True:
            await asyncio.sleep(delay / _NS)
            if not self._resumed.is_set():
                self._held = True
                try:
                    await self._resumed.wait()
                finally:
                    self._held = False
            attempt_start = self.clock()
            try:
                await asyncio.to_thread(handle.renew)
            except liblease.LeaseLost as exc:
                self._mark_lost(exc)  # definitive: taken over or our own lease already expired
                return
            except Exception as exc:  # transient: keep the lease while we can still prove it
                self.renew_failures += 1
                now = self.clock()
                if renew_gave_up(now, valid_until, margin):
                    self._mark_lost(exc)
                    return
                delay = renew_retry_delay(interval, valid_until - now)
                log.warning(
                    "modeld lease renew failed; retrying before forfeiting instance=%s err=%s "
                    "retry_in=%.3fs valid_until_ns=%d",
                    handle.instance_id,
                    exc,
                    delay / _NS,
                    valid_until,
                )
                continue
            self.renewals += 1
            valid_until = attempt_start + ttl
            delay = interval

    def _mark_lost(self, exc: BaseException) -> None:
        if self.lost.is_set():
            return
        self.lost_error = exc
        self.lost_reason = str(exc)
        self.lost.set()
        if self.on_lost is not None:
            try:
                r = self.on_lost(self.lost_reason)
                if asyncio.iscoroutine(r):
                    asyncio.get_running_loop().create_task(r)
            except Exception:
                log.exception("owner on_lost callback failed")

    # -- release --------------------------------------------------------------------------------

    async def stop_renewing(self) -> None:
        """Cancel the renew loop (a graceful stop, not a loss). An in-flight renew finishes first
        inside the lease handle's own lock, so a later release never races it."""
        task = self._task  # kept (not cleared) so :attr:`renewing` reports the finished loop
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (owner.go ``Release``).

        Idempotent (a second call re-raises the first call's error, if any); no-op for a follower.
        """
        async with self._release_lock:
            if not self._released:
                self._released = True
                await self.stop_renewing()
                if self._handle is not None:
                    try:
                        await asyncio.to_thread(self._handle.release)
                    except Exception as exc:
                        self._release_error = exc
            if self._release_error is not None:
                raise self._release_error

    def __repr__(self) -> str:
        return f"Owner(lease_path={self.lease_path!r}, role={self.role}, instance_id={self.instance_id!r})"
