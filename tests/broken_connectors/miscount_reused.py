"""Miscounts reused tokens: EnsurePrefix reports a warm hit as fully prefilled (Reused always 0)."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, PrefixStatus


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def ensure_prefix(self, *args: Any, **kw: Any) -> PrefixStatus:
        st: PrefixStatus = await self._inner.ensure_prefix(*args, **kw)
        return dataclasses.replace(st, reused_tokens=0, prefilled_tokens=st.prefix_tokens)


class MiscountsReused(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return MiscountsReused()
