"""Checks a node's Health with the connector's default probe deadline, not the caller's."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class EndpointDefaultDeadline(Connector):
    async def endpoint(self, addr: str, backend_id: str | None = None, **kw: Any) -> Any:
        kw.pop("timeout", None)
        return await super().endpoint(addr, backend_id)


def make() -> Connector:
    return EndpointDefaultDeadline()
