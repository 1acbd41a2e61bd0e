"""close_endpoint forgets nothing and closes nothing (a stub)."""

from __future__ import annotations

from modeldconn import Connector


class CloseEndpointNoop(Connector):
    async def close_endpoint(self, backend_id: str) -> None:
        return None


def make() -> Connector:
    return CloseEndpointNoop()
