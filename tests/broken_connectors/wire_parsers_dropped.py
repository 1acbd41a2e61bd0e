"""Drops ParserProtocols: no reasoning or tool-call parsing happens, whatever the caller asked."""

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
        return self._inner.decode(dataclasses.replace(cfg or DecodeConfig(), parser_protocols=()), **kw)


class DropsParserProtocols(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return DropsParserProtocols()
