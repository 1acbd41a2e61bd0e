"""Accepts a node that answers Health not ready (or without an instance id) as long as it answers."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector, client
from modeldconn.types import Health


class AcceptsNotReady(Connector):
    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        try:
            return await super().endpoint(addr, backend_id, **kw)
        except client.NodeNotReady:
            from modeldconn import transport

            conn = transport.Connection(addr)
            return client.EndpointClient(
                backend_id or addr, addr, conn, Health("", True, "llama"), self.timeouts
            )


def make() -> Connector:
    return AcceptsNotReady()
