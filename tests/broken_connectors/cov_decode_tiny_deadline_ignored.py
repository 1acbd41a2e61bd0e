"""Rounds a Decode deadline to whole milliseconds and reads 0 as "no deadline": a deadline that has
(almost) passed lets the Decode run under the default one."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        if timeout is not None and round(timeout * 1000) == 0:
            timeout = None
        return self._inner.decode(*args, timeout=timeout, **kw)


class TinyDeadlineIgnored(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return TinyDeadlineIgnored()
