"""Drops SuffixInput.EnableThinking when it is false (``x or None``): "no thinking" becomes "default"."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, SuffixInput


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def prefill_suffix(self, suffix: SuffixInput | str, **kw: Any) -> Any:
        if isinstance(suffix, SuffixInput):
            suffix = dataclasses.replace(suffix, enable_thinking=suffix.enable_thinking or None)
        return await self._inner.prefill_suffix(suffix, **kw)


class DropsFalseThinking(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return DropsFalseThinking()
