"""Retries open_session once on any error ("maybe it was transient"): a failed implicit load is
hidden behind a second OpenSession."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector
from modeldconn.wire.errors import ModeldError


class RetriesAnyOpenError(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        try:
            return await super().open_session(*args, **kw)
        except ModeldError:
            return await super().open_session(*args, **kw)


def make() -> Connector:
    return RetriesAnyOpenError()
