"""Trusts a cached node connection forever: no Health check, so a node that restarted with a new
instance id is still fenced to the old one (stale_fence on every call)."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn.client import EndpointClient


class TrustsEndpointCache(Connector):
    def __init__(self) -> None:
        super().__init__()
        self._known: dict[str, EndpointClient] = {}

    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        bid = backend_id or addr
        known = self._known.get(bid)
        if known is not None and not known.connection.closed:
            return known
        self._known[bid] = await super().endpoint(addr, backend_id, **kw)
        return self._known[bid]

    async def close_endpoint(self, backend_id: str) -> None:
        self._known.pop(backend_id, None)
        await super().close_endpoint(backend_id)


def make() -> Connector:
    return TrustsEndpointCache()
