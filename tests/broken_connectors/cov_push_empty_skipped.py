"""Skips the upload of an empty model ("nothing to send"): no stream, no manifest, and it reports
success although the node installed nothing."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector, PushResult


class SkipsEmptyPush(Connector):
    async def push_model(self, source: Any, name: str, type: str, **kw: Any) -> Any:
        if isinstance(source, bytes | bytearray) and not source:
            return PushResult()
        return await super().push_model(source, name, type, **kw)


def make() -> Connector:
    return SkipsEmptyPush()
