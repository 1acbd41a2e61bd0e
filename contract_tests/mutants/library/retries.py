"""Broken connectors that retry when the contract says not to (or not as it says)."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector
from modeld_contract.mutants.library._registry import mutant

from modeldconn.wire import errors as _errors


@mutant("retry_any_open_error", "retries")
class RetryAnyOpenError(HookedConnector):
    """open_session loads the model and retries after any sentinel error, not only after
    model_switch_required / model_not_active."""

    async def open_session(self, ref: Any, cfg: Any = None, **kw: Any) -> Any:
        try:
            return await super().open_session(ref, cfg, **kw)
        except _errors.SentinelError:
            await self.load_model(ref, cfg)
            return await super().open_session(ref, cfg, **kw)


@mutant("retry_switch_twice", "retries")
class RetrySwitchTwice(HookedConnector):
    """open_session retries a second time when the retry after the load is refused again."""

    async def open_session(self, ref: Any, cfg: Any = None, **kw: Any) -> Any:
        try:
            return await super().open_session(ref, cfg, **kw)
        except (_errors.ModelSwitchRequired, _errors.ModelNotActive):
            await self.load_model(ref, cfg)
            return await super().open_session(ref, cfg, **kw)


@mutant("retry_on_unavailable", "retries")
class RetryOnUnavailable(HookedConnector):
    """A call answered Unavailable is sent once more (a transport-level retry)."""

    async def status(self, **kw: Any) -> Any:
        try:
            return await super().status(**kw)
        except _errors.TransportError:
            return await super().status(**kw)
