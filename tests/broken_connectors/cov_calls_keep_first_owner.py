"""Status, Describe, OpenSession, LoadModel, UnloadModel and Embed keep going to the owner found on the
first of them: they never read the lease again."""

from __future__ import annotations

from modeldconn import Connector, transport
from modeldconn.client import _Deadline


class CallsKeepFirstOwner(Connector):
    def __init__(self) -> None:
        super().__init__()
        self._first: transport.Connection | None = None

    async def _resolve(self, dl: _Deadline) -> transport.Connection:
        if dl.what not in ("Status", "Describe", "OpenSession", "LoadModel", "UnloadModel", "Embed"):
            return await super()._resolve(dl)
        if self._first is None:
            found = await super()._resolve(dl)
            self._first = transport.Connection(found.endpoint)
            self._first.owner = found.owner
        return self._first


def make() -> Connector:
    return CallsKeepFirstOwner()
