"""Loses the backend of a node's Health answer (a health type without that field)."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector


class LosesNodeBackend(Connector):
    async def endpoint(self, *args: Any, **kw: Any) -> Any:
        node = await super().endpoint(*args, **kw)
        node.health = dataclasses.replace(node.health, backend="")
        return node


def make() -> Connector:
    return LosesNodeBackend()
