"""Answers a digest_mismatch by pushing again without a digest ("the node's check is too strict"):
bytes that do not match the caller's digest get installed."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn.wire.errors import DigestMismatch


class RetriesUnverified(Connector):
    async def push_model(self, source: Any, name: str, type: str, **kw: Any) -> Any:
        try:
            return await super().push_model(source, name, type, **kw)
        except DigestMismatch:
            kw["digest"] = ""
            return await super().push_model(source, name, type, **kw)


def make() -> Connector:
    return RetriesUnverified()
