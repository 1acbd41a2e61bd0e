"""Ignores the caller's Seed: the daemon draws its own, so a seeded generation is not reproducible."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, DecodeConfig


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, cfg: DecodeConfig | None = None, **kw: Any) -> Any:
        return self._inner.decode(dataclasses.replace(cfg or DecodeConfig(), seed=None), **kw)


class IgnoresSeed(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return IgnoresSeed()
