"""Ends a Decode quietly when its stream cannot be opened ("nothing to read"): a dead daemon looks like
an empty answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from modeldconn import Chunk, Connector
from modeldconn.wire.errors import TransportError


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, *args: Any, **kw: Any) -> AsyncIterator[Chunk]:
        stream = self._inner.decode(*args, **kw)

        async def chunks() -> AsyncIterator[Chunk]:
            started = False
            try:
                async for c in stream:
                    started = True
                    yield c
            except TransportError:
                if started:
                    raise

        return chunks()


class SilentDecodeStartFailure(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return SilentDecodeStartFailure()
