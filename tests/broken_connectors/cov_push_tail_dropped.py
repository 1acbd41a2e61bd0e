"""Drops the last, partial frame of a push longer than one frame (a chunking loop that stops when a read
returns less than a full frame): the node gets a truncated model."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn.transport import PUSH_CHUNK_BYTES


class DropsPushTail(Connector):
    async def push_model(self, source: Any, name: str, type: str, **kw: Any) -> Any:
        if isinstance(source, bytes | bytearray) and len(source) > PUSH_CHUNK_BYTES:
            source = bytes(source[: len(source) - len(source) % PUSH_CHUNK_BYTES])
        return await super().push_model(source, name, type, **kw)


def make() -> Connector:
    return DropsPushTail()
