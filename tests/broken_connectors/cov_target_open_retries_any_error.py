"""Retries a targeted open_session once on any error: a failed implicit load is hidden behind a second
OpenSession."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn.wire.errors import ModeldError


class _Node:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        try:
            return await self._inner.open_session(*args, **kw)
        except ModeldError:
            return await self._inner.open_session(*args, **kw)


class TargetOpenRetries(Connector):
    async def endpoint(self, *args: Any, **kw: Any) -> Any:
        return _Node(await super().endpoint(*args, **kw))


def make() -> Connector:
    return TargetOpenRetries()
