"""Broken connectors that do not hold the caller's deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeld_contract.mutants.hooks import HookedConnector, SessionWrapper
from modeld_contract.mutants.library._registry import mutant

from modeldconn import Connector, Timeouts

_LEASE_RESOLVED = (
    "status",
    "describe",
    "open_session",
    "load_model",
    "unload_model",
    "embed",
    "list_models",
    "remove_model",
    "disk_stats",
)


def _with_timeout(name: str, choose: Callable[[float | None], float]) -> Any:
    base = getattr(Connector, name)

    async def call(self: Any, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        return await base(self, *args, timeout=choose(timeout), **kw)

    call.__name__ = name
    return call


@mutant("deadline_fixed", "deadlines")
class FixedDeadline(HookedConnector):
    """Every lease-resolved call ignores the caller's timeout and uses a fixed 5 s."""


for _n in _LEASE_RESOLVED:
    setattr(FixedDeadline, _n, _with_timeout(_n, lambda t: 5.0))


@mutant("deadline_halved", "deadlines")
class HalvedDeadline(HookedConnector):
    """Every lease-resolved call gives up at half the caller's timeout (a "safety margin")."""


def _half(t: float | None) -> float:
    return 30.0 if t is None else t / 2


for _n in _LEASE_RESOLVED:
    setattr(HalvedDeadline, _n, _with_timeout(_n, _half))


@mutant("deadline_probe_short", "deadlines")
class ProbeShort(HookedConnector):
    """The probe's Health check has its own fixed 0.3 s bound, shorter than the caller's deadline."""

    def __init__(self) -> None:
        super().__init__(timeouts=Timeouts(probe=0.3))


class _NoSessionDeadline(SessionWrapper):
    async def ensure_prefix(self, p: Any, *, timeout: float | None = None) -> Any:
        return await self._inner.ensure_prefix(p)

    async def prefill_suffix(self, s: Any, *, timeout: float | None = None) -> Any:
        return await self._inner.prefill_suffix(s)

    async def snapshot(self, *, timeout: float | None = None) -> Any:
        return await self._inner.snapshot()

    async def restore(self, snap: Any, *, timeout: float | None = None) -> Any:
        return await self._inner.restore(snap)


@mutant("deadline_session_ignored", "deadlines")
class SessionDeadlineIgnored(HookedConnector):
    """Session calls ignore the caller's timeout (the connector's 10-minute default applies)."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _NoSessionDeadline(await super().open_session(*args, **kw))


class _NoDecodeDeadline(SessionWrapper):
    def decode(self, cfg: Any = None, *, timeout: float | None = None) -> Any:
        return self._inner.decode(cfg)


@mutant("deadline_decode_ignored", "deadlines")
class DecodeDeadlineIgnored(HookedConnector):
    """Decode ignores the caller's timeout (the connector's 10-minute default applies)."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _NoDecodeDeadline(await super().open_session(*args, **kw))
