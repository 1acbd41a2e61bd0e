"""Loses Status's last_error on the way back (its status type has no such field)."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldconn import Connector, Status


class LosesLastError(Connector):
    async def status(self, *args: Any, **kw: Any) -> Status:
        return dataclasses.replace(await super().status(*args, **kw), last_error="")


def make() -> Connector:
    return LosesLastError()
