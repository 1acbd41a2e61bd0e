"""No deadline: the caller's timeout is ignored and every internal deadline is (practically) infinite."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector, Timeouts

_FOREVER = 1e6


class NoDeadline(Connector):
    def __init__(self) -> None:
        super().__init__(timeouts=Timeouts(_FOREVER, _FOREVER, _FOREVER, _FOREVER, _FOREVER, _FOREVER))

    async def status(self, *, timeout: float | None = None) -> Any:
        return await super().status(timeout=_FOREVER)

    async def describe(self, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        return await super().describe(*args, timeout=_FOREVER, **kw)

    async def open_session(self, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        return await super().open_session(*args, timeout=_FOREVER, **kw)


def make() -> Connector:
    return NoDeadline()
