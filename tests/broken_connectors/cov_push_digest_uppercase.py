"""Sends the push digest in upper-case hex (a formatting slip): the node compares it with its own
lower-case sha256 and refuses every verified push."""

from __future__ import annotations

from typing import Any

from modeldconn import Connector


class UppercaseDigest(Connector):
    async def push_model(
        self, source: Any, name: str, type: str, *, digest: str | None = None, **kw: Any
    ) -> Any:
        return await super().push_model(source, name, type, digest=digest.upper() if digest else digest, **kw)


def make() -> Connector:
    return UppercaseDigest()
