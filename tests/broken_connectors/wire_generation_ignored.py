"""Ignores LoadModel's expected generation: every load is unconditional (a lost update)."""

from __future__ import annotations

from modeldconn import ActiveModel, Config, Connector, ModelRef


class IgnoresExpectedGeneration(Connector):
    async def load_model(
        self,
        ref: ModelRef,
        cfg: Config | None = None,
        expected_generation: int | None = None,
        *,
        timeout: float | None = None,
    ) -> ActiveModel:
        return await super().load_model(ref, cfg, None, timeout=timeout)


def make() -> Connector:
    return IgnoresExpectedGeneration()
