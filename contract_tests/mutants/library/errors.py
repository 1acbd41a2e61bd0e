"""Broken connectors that type errors wrongly."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector
from modeld_contract.mutants.library._registry import mutant

from modeldconn import probe as _probe
from modeldconn.wire import errors as _errors


@mutant("err_backend_mismatch_swallowed", "error typing")
class BackendMismatchSwallowed(HookedConnector):
    """backend_mismatch from Describe / Embed is swallowed: an empty answer is returned."""

    async def describe(self, *args: Any, **kw: Any) -> Any:
        from modeldconn import ModelInfo

        try:
            return await super().describe(*args, **kw)
        except _errors.BackendMismatch:
            return ModelInfo()

    async def embed(self, *args: Any, **kw: Any) -> list[float]:
        try:
            return await super().embed(*args, **kw)
        except _errors.BackendMismatch:
            return []


@mutant("err_foreign_status_as_load_failed", "error typing")
class ForeignStatusAsLoadFailed(HookedConnector):
    """A status outside the sentinel table is reported as model_load_failed."""

    def error(self, method: str, exc: Exception) -> Exception:
        if isinstance(exc, _errors.TransportError):
            return _errors.ModelLoadFailed(str(exc))
        return exc


@mutant("err_not_found_as_load_failed", "error typing")
class NotFoundAsLoadFailed(HookedConnector):
    """model_not_found is reported as model_load_failed."""

    def error(self, method: str, exc: Exception) -> Exception:
        if isinstance(exc, _errors.ModelNotFound):
            return _errors.ModelLoadFailed(str(exc))
        return exc


@mutant("err_canceled_as_deadline", "error typing")
class CanceledAsDeadline(HookedConnector):
    """A cancelled call (Canceled) is reported as deadline_exceeded."""

    def error(self, method: str, exc: Exception) -> Exception:
        if isinstance(exc, _errors.Canceled):
            return _errors.DeadlineExceeded(str(exc))
        return exc


@mutant("err_probe_errors_untyped", "error typing")
class ProbeErrorsUntyped(HookedConnector):
    """The probe's typed errors (not-installed, not-running, stale, unreachable) become a plain error."""

    async def _resolve(self, dl: Any) -> Any:
        try:
            return await super()._resolve(dl)
        except _probe.ProbeError as exc:
            raise RuntimeError(f"modeld is not available: {exc}") from exc
