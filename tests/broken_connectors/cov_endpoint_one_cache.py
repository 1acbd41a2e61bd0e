"""Keeps one connection for everything: reaching a node by address drops the lease-resolved
connection (and with it every session opened through the lease)."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class OneCache(Connector):
    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        state = self._state()
        if state.conn is not None:
            state.conn.close()
            state.conn = None
        return await super().endpoint(addr, backend_id, **kw)


def make() -> Connector:
    return OneCache()
