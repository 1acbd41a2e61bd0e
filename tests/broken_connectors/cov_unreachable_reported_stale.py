"""Reports an owner whose endpoint does not answer as stale ("the lease is there but nobody is home"),
on the probe and on every lease-resolved call."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn import probe as probe_mod


class UnreachableIsStale(Connector):
    async def _resolve(self, dl: Any) -> Any:
        try:
            return await super()._resolve(dl)
        except probe_mod.Unreachable as exc:
            raise probe_mod.Stale(str(exc)) from None

    async def local_endpoint_addr(self, **kw: Any) -> str:
        try:
            return await super().local_endpoint_addr(**kw)
        except probe_mod.Unreachable as exc:
            raise probe_mod.Stale(str(exc)) from None


def make() -> Connector:
    return UnreachableIsStale()
