"""Drops the LoRA adapters of a ModelRef: base+A and base+B load as the same base model."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, ModelRef


def _base(ref: ModelRef) -> ModelRef:
    return dataclasses.replace(ref, adapters=())


class DropsAdapters(Connector):
    async def open_session(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().open_session(_base(ref), *args, **kw)

    async def describe(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().describe(_base(ref), *args, **kw)

    async def load_model(self, ref: ModelRef, *args: Any, **kw: Any) -> Any:
        return await super().load_model(_base(ref), *args, **kw)


def make() -> Connector:
    return DropsAdapters()
