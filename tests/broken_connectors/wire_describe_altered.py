"""Alters a Describe fact: a zero hot context is "helpfully" filled in with the effective context."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, ModelInfo


class FillsHotContext(Connector):
    async def describe(self, *args: Any, **kw: Any) -> ModelInfo:
        info = await super().describe(*args, **kw)
        if not info.hot_context_tokens:
            info = dataclasses.replace(info, hot_context_tokens=info.effective_context)
        return info


def make() -> Connector:
    return FillsHotContext()
