"""Drops a DecodeConfig pointer field when its value is the zero value (a truthiness test: ``x or None``),
so Temperature 0 (greedy), TopP 0 and Seed 0 reach the daemon as "unset"."""

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
        cfg = cfg or DecodeConfig()
        cfg = dataclasses.replace(
            cfg, temperature=cfg.temperature or None, top_p=cfg.top_p or None, seed=cfg.seed or None
        )
        return self._inner.decode(cfg, **kw)


class DropsZeroDecodeFields(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return DropsZeroDecodeFields()
