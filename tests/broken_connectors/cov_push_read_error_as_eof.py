"""Treats a read error of the caller's model source as the end of the content: the push goes on with
what was read so far (the node then judges a truncated model)."""

from __future__ import annotations

import io
from typing import Any

from modeldconn import Connector


class _EofOnError(io.RawIOBase):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        try:
            data = self._inner.read(len(buf))
        except OSError:
            return 0
        buf[: len(data)] = data
        return len(data)


class ReadErrorIsEof(Connector):
    async def push_model(self, source: Any, name: str, type: str, **kw: Any) -> Any:
        if hasattr(source, "read"):
            source = _EofOnError(source)
        return await super().push_model(source, name, type, **kw)


def make() -> Connector:
    return ReadErrorIsEof()
