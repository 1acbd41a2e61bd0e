"""Pushes a model of a type it does not recognise as llama ("the default backend") instead of letting
the node judge the type."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class DefaultsPushType(Connector):
    async def push_model(self, source: Any, name: str, type: str, **kw: Any) -> Any:
        return await super().push_model(
            source, name, type if type in ("llama", "openvino") else "llama", **kw
        )


def make() -> Connector:
    return DefaultsPushType()
