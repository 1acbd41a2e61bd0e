"""Drops the cold KV blocks of a snapshot it returns (its snapshot type predates them): a restore of
that snapshot no longer sends them back."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, SessionSnapshot


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def snapshot(self, **kw: Any) -> SessionSnapshot:
        snap: SessionSnapshot = await self._inner.snapshot(**kw)
        return dataclasses.replace(snap, cold_kv_blocks=())


class DropsColdBlocks(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return DropsColdBlocks()
