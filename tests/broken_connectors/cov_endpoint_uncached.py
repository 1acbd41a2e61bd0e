"""Dials a node anew on every endpoint(addr) and closes the previous connection of that backend id
("always fresh"): every session opened through the old one dies."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class NeverReusesEndpoint(Connector):
    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        await self.close_endpoint(backend_id or addr)
        return await super().endpoint(addr, backend_id, **kw)


def make() -> Connector:
    return NeverReusesEndpoint()
