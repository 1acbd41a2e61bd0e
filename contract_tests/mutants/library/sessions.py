"""Broken connectors that get the session lifecycle wrong."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector, SessionWrapper
from modeld_contract.mutants.library._registry import mutant

from modeldconn.wire import errors as _errors


class _LocalClose(SessionWrapper):
    async def close(self, *, timeout: float | None = None) -> None:
        self._inner._closed_locally = True


@mutant("sess_close_local_only", "session lifecycle")
class CloseLocalOnly(HookedConnector):
    """Closing a session only forgets it locally: CloseSession is never sent (the slot stays held)."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _LocalClose(await super().open_session(*args, **kw))


class _Reopening(SessionWrapper):
    async def ensure_prefix(self, *args: Any, **kw: Any) -> Any:
        try:
            return await self._inner.ensure_prefix(*args, **kw)
        except _errors.SessionClosed:
            self._inner = await self._owner.open_session(*self._owner_args[0], **self._owner_args[1])
            return await self._inner.ensure_prefix(*args, **kw)


@mutant("sess_reopen_when_closed", "session lifecycle")
class ReopenWhenClosed(HookedConnector):
    """A closed session is silently replaced by a new one when a prefix is sent to it."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        s = _Reopening(await super().open_session(*args, **kw), owner=self)
        s._owner_args = (args, kw)  # type: ignore[attr-defined]
        return s


@mutant("sess_no_switch_retry", "session lifecycle")
class NoSwitchRetry(HookedConnector):
    """open_session returns model_switch_required / model_not_active instead of loading and retrying."""

    def error(self, method: str, exc: Exception) -> Exception:
        if method == "OpenSession" and isinstance(exc, _errors.ModelSwitchRequired | _errors.ModelNotActive):
            return _errors.ModelBusy("the slot holds another model")
        return exc
