"""Loses the reasoning text of Decode chunks: only ``text`` and tool calls reach the caller."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from modeldconn import Chunk, Connector


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, *args: Any, **kw: Any) -> AsyncIterator[Chunk]:
        stream = self._inner.decode(*args, **kw)

        async def chunks() -> AsyncIterator[Chunk]:
            async for c in stream:
                yield dataclasses.replace(c, thinking="")

        return chunks()


class LosesThinking(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return LosesThinking()
