"""Returns embedding values rounded to 4 decimals (a connector that formats them as text on the way)."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class RoundsEmbeddings(Connector):
    async def embed(self, *args: Any, **kw: Any) -> list[float]:
        return [round(x, 4) for x in await super().embed(*args, **kw)]


def make() -> Connector:
    return RoundsEmbeddings()
