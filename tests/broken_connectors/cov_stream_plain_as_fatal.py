"""Treats an in-stream error it cannot type (no token, or a token it does not know) as session_fatal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from modeldconn import Chunk, Connector
from modeldconn.wire.errors import ModeldError, SessionFatal


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, *args: Any, **kw: Any) -> AsyncIterator[Chunk]:
        stream = self._inner.decode(*args, **kw)

        async def chunks() -> AsyncIterator[Chunk]:
            try:
                async for c in stream:
                    yield c
            except ModeldError as exc:
                if getattr(exc, "token", None):
                    raise
                raise SessionFatal(str(exc)) from None

        return chunks()


class PlainStreamErrorIsFatal(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return PlainStreamErrorIsFatal()
