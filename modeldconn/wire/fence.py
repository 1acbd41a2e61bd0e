"""Fencing and transport constants of the Compute wire (wire.md §3, §5, §7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = [
    "CONTENT_SUBTYPE",
    "CONTENT_TYPE",
    "FENCE_HEADER",
    "MAX_MESSAGE_BYTES",
    "PUSH_CHUNK_BYTES",
    "SERVICE",
    "fence_ok",
    "handle_instance_ok",
]

SERVICE: Final = "contenox.transport.v1.Compute"
FENCE_HEADER: Final = "x-contenox-owner-instance"
CONTENT_SUBTYPE: Final = "contenoxtransportjson"
CONTENT_TYPE: Final = "application/grpc+" + CONTENT_SUBTYPE
MAX_MESSAGE_BYTES: Final = 512 << 20
PUSH_CHUNK_BYTES: Final = 4 << 20


def fence_ok(values: Sequence[str], instance_id: str) -> bool:
    """The metadata fence (fence.go checkFence): with an empty server instance id
    fencing is disabled; otherwise exactly one ``x-contenox-owner-instance`` value,
    equal to the server's id."""
    if instance_id == "":
        return True
    return len(values) == 1 and values[0] == instance_id


def handle_instance_ok(handle: str, instance_id: str) -> bool:
    """The handle check of server.go lookup: with a server instance id the handle must
    start with ``"<instanceID>/"`` (else ``stale_fence``); an empty id accepts any."""
    if instance_id == "":
        return True
    return handle.startswith(instance_id + "/")
