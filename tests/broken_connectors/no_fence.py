"""Drops the fence: calls go out without the owner instance (metadata and body)."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class DropsTheFence(Connector):
    async def _resolve(self, dl: Any) -> Any:
        conn = await super()._resolve(dl)
        conn.owner = ""
        return conn


def make() -> Connector:
    return DropsTheFence()
