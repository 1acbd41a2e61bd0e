"""Never redials after a takeover: once a connection is cached it is used whatever the lease says."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class NeverRedials(Connector):
    async def _resolve(self, dl: Any) -> Any:
        cached = self._state().conn
        if cached is not None and not cached.closed:
            return cached
        return await super()._resolve(dl)


def make() -> Connector:
    return NeverRedials()
