"""Sends Temperature as a float32 (a connector that stores it in a 32-bit float): 0.7 arrives as
0.699999988079071."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from modeldconn import Connector, DecodeConfig


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


class _Session:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode(self, cfg: DecodeConfig | None = None, **kw: Any) -> Any:
        cfg = cfg or DecodeConfig()
        if cfg.temperature is not None:
            cfg = dataclasses.replace(cfg, temperature=_f32(cfg.temperature))
        return self._inner.decode(cfg, **kw)


class Float32Temperature(Connector):
    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Session(await super().open_session(*args, **kw))


def make() -> Connector:
    return Float32Temperature()
