"""Ignores the ``error_token`` of an in-stream error chunk: once the stream has started, every error
reaches the caller as a plain error with the daemon's text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from modeldconn import Chunk, Connector
from modeldconn.wire.errors import ModeldError


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
            except ModeldError as exc:
                if not started:
                    raise
                raise RuntimeError(str(exc)) from None

        return chunks()


class UntypedStreamErrors(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return UntypedStreamErrors()
