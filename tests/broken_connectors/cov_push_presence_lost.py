"""Loses ``already_present`` of the push answer (a result type without that field)."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector


class LosesAlreadyPresent(Connector):
    async def push_model(self, *args: Any, **kw: Any) -> Any:
        return dataclasses.replace(await super().push_model(*args, **kw), already_present=False)


def make() -> Connector:
    return LosesAlreadyPresent()
