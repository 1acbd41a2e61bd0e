"""Dials a node lazily: endpoint(addr) answers at once, before any Health (instance unknown), so a node
that cannot be reached looks reachable until the first call."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector, client, transport
from modeldconn.types import Health


class LazyEndpoint(Connector):
    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        try:
            return await super().endpoint(addr, backend_id, **kw)
        except client.EndpointError:
            return client.EndpointClient(
                backend_id or addr, addr, transport.Connection(addr), Health("", True, ""), self.timeouts
            )


def make() -> Connector:
    return LazyEndpoint()
