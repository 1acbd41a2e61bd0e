"""Broken connectors that fence calls wrongly or do not follow an owner change."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector
from modeld_contract.mutants.library._registry import mutant


@mutant("fence_dropped", "fencing and redial")
class FenceDropped(HookedConnector):
    """Calls go out without the owner instance (neither metadata nor body)."""

    async def _resolve(self, dl: Any) -> Any:
        conn = await super()._resolve(dl)
        conn._conn.owner = ""
        return conn


@mutant("fence_first_owner_forever", "fencing and redial")
class FirstOwnerForever(HookedConnector):
    """Calls are fenced with the first owner instance ever seen, even after the owner changed."""

    async def _resolve(self, dl: Any) -> Any:
        conn = await super()._resolve(dl)
        first = self.__dict__.setdefault("_first_owner", conn._conn.owner)
        conn._conn.owner = first
        return conn


@mutant("redial_never", "fencing and redial")
class RedialNever(HookedConnector):
    """Once a connection is cached it is used whatever the lease says (no probe, no redial)."""

    async def _resolve(self, dl: Any) -> Any:
        cached = self.__dict__.get("_pinned")
        if cached is not None and not cached.closed:
            return cached
        conn = await super()._resolve(dl)
        self.__dict__["_pinned"] = conn
        return conn


@mutant("probe_skipped_when_cached", "fencing and redial")
class ProbeSkippedWhenCached(HookedConnector):
    """The probe is skipped while a cached connection to the same endpoint is open (the lease is not
    re-read before each call)."""

    async def _resolve(self, dl: Any) -> Any:
        cached = self.__dict__.get("_last")
        if cached is not None and not cached.closed and cached.endpoint == self.detect().endpoint:
            return cached
        conn = await super()._resolve(dl)
        self.__dict__["_last"] = conn
        return conn
