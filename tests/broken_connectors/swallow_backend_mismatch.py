"""Swallows backend_mismatch: Describe / Embed answer an empty result instead of the typed error."""

from __future__ import annotations

from typing import Any

from modeldconn import BackendMismatch, Connector, ModelInfo


class SwallowsBackendMismatch(Connector):
    async def describe(self, *args: Any, **kw: Any) -> ModelInfo:
        try:
            return await super().describe(*args, **kw)
        except BackendMismatch:
            return ModelInfo()

    async def embed(self, *args: Any, **kw: Any) -> list[float]:
        try:
            return await super().embed(*args, **kw)
        except BackendMismatch:
            return []


def make() -> Connector:
    return SwallowsBackendMismatch()
