"""Drops the ModelRef digest (name + type + path only): the daemon cannot tell two builds apart."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, ModelRef


def _plain(ref: ModelRef) -> ModelRef:
    return dataclasses.replace(ref, digest="")


class DropsDigest(Connector):
    async def open_session(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().open_session(_plain(ref), *args, **kw)

    async def describe(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().describe(_plain(ref), *args, **kw)

    async def load_model(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().load_model(_plain(ref), *args, **kw)

    async def embed(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().embed(_plain(ref), *args, **kw)


def make() -> Connector:
    return DropsDigest()
