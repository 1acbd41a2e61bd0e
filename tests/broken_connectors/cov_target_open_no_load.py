"""A targeted open_session makes one OpenSession and no implicit load: "switch required" reaches the
caller (the lease-resolved path still loads)."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector, client


class _Node:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open_session(self, ref: Any, cfg: Any = None, *, timeout: float | None = None) -> Any:
        inner = self._inner
        dl = client._Deadline(timeout or inner.timeouts.load, "OpenSession")
        req = ref.open_request(inner.connection.owner, cfg or client.Config())
        return await client._open_once(inner.connection, req, dl, inner.timeouts)


class TargetOpenNoLoad(Connector):
    async def endpoint(self, *args: Any, **kw: Any) -> Any:
        return _Node(await super().endpoint(*args, **kw))


def make() -> Connector:
    return TargetOpenNoLoad()
