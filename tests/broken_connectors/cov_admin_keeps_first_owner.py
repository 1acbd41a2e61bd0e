"""Node-admin calls (ListModels, RemoveModel, DiskStats, PushModel) keep going to the owner found on
the first of them: they never read the lease again."""

from __future__ import annotations

from modeldconn import Connector, transport
from modeldconn.client import _Deadline


class AdminKeepsFirstOwner(Connector):
    def __init__(self) -> None:
        super().__init__()
        self._first: transport.Connection | None = None

    async def _resolve(self, dl: _Deadline) -> transport.Connection:
        if dl.what not in ("ListModels", "RemoveModel", "DiskStats", "PushModel"):
            return await super()._resolve(dl)
        if self._first is None:
            found = await super()._resolve(dl)
            self._first = transport.Connection(found.endpoint)
            self._first.owner = found.owner
        return self._first


def make() -> Connector:
    return AdminKeepsFirstOwner()
