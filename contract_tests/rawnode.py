"""A bare scripted node: the Compute service's JSON codec on a raw gRPC server, answering exactly what a
clause tells it, for answers no well-behaved daemon sends (a context-overflow status whose ErrorInfo is
malformed, an in-stream error token outside the table).

It answers ``Health`` (ready, with its instance id and backend) and ``OpenSession`` (a fixed handle)
on its own, every other method from :attr:`RawNode.unary` / :attr:`RawNode.streams`, and records the
methods called in :attr:`RawNode.calls`. :meth:`RawNode.lease` writes a fresh lease naming it, so a
connector finds it through a data root like any daemon. It runs on the simulator's loop thread, as
:class:`~modeld_contract.targets.HealthStub` does; it judges nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeld_sim.transport import Kind

__all__ = ["RAW_HANDLE", "RawNode", "overflow_status_details"]

SERVICE = "contenox.transport.v1.Compute"
RAW_HANDLE = "raw-session-1"
_ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo"


def overflow_status_details(code: int, message: str, infos: Sequence[tuple[str, Mapping[str, str]]]) -> bytes:
    """Serialized ``google.rpc.Status{code, message, details}`` with one ``ErrorInfo(reason, metadata)``
    per entry of ``infos`` (the ``grpc-status-details-bin`` trailer)."""
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    details = []
    for reason, metadata in infos:
        info = error_details_pb2.ErrorInfo(
            reason=reason, domain="contenox.transport", metadata=dict(metadata)
        )
        details.append(any_pb2.Any(type_url=_ERROR_INFO_TYPE_URL, value=info.SerializeToString()))
    data: bytes = status_pb2.Status(code=code, message=message, details=details).SerializeToString()
    return data


class RawNode:
    """See the module docstring. ``unary[method]``: a JSON object to answer, or a
    ``(code, message, details)`` status; ``streams[method]``: the chunk objects a server stream sends
    (then status OK)."""

    def __init__(self, *, instance_id: str | None = None, backend: str = "llama") -> None:
        from modeld_contract.targets import sim_loop

        self.instance_id = instance_id or str(uuid.uuid4())
        self.backend = backend
        self.loop = sim_loop()
        self.unary: dict[str, Any] = {}
        self.streams: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[str] = []
        self.server: Any = None
        self.endpoint = ""

    # ---------------------------------------------------------------- handlers
    def _answer(self, method: str, payload: bytes) -> bytes:
        from modeld_sim.transport import GrpcStatus

        self.calls.append(method)
        if method == "Health":
            body: Any = {"instance_id": self.instance_id, "ready": True, "backend": self.backend}
        elif method == "OpenSession" and method not in self.unary:
            body = {"handle": RAW_HANDLE}
        else:
            body = self.unary.get(method)
            if body is None:
                raise GrpcStatus(12, f"raw node: {method} is not scripted")
            if isinstance(body, tuple):
                code, message, details = body
                raise GrpcStatus(int(code), str(message), details)
        return json.dumps(body, separators=(",", ":")).encode()

    def _services(self) -> dict[str, dict[str, tuple[Kind, Any]]]:
        methods: dict[str, tuple[Kind, Any]] = {}
        for name in (
            "Health",
            "Status",
            "OpenSession",
            "LoadModel",
            "UnloadModel",
            "Describe",
            "Embed",
            "EnsurePrefix",
            "PrefillSuffix",
            "ExplainContext",
            "Snapshot",
            "Restore",
            "CloseSession",
            "ListModels",
            "RemoveModel",
            "DiskStats",
        ):

            async def unary(call: Any, payload: bytes, _name: str = name) -> bytes:
                return self._answer(_name, payload)

            methods[name] = ("unary", unary)

        async def decode(call: Any, payload: bytes) -> None:
            from modeld_sim.transport import GrpcStatus

            self.calls.append("Decode")
            chunks = self.streams.get("Decode")
            if chunks is None:
                raise GrpcStatus(12, "raw node: Decode is not scripted")
            for chunk in chunks:
                await call.send(json.dumps(chunk, separators=(",", ":")).encode())

        methods["Decode"] = ("server_stream", decode)
        return {SERVICE: methods}

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> RawNode:
        from modeld_sim.transport import GrpcServer

        async def go() -> None:
            self.server = GrpcServer(self._services())
            await self.server.start()
            self.endpoint = str(self.server.address)

        self.loop.run(go(), 10.0)
        return self

    def lease(self, data_root: str) -> None:
        """A fresh lease naming this node, the way the daemon's lease library writes it."""
        from modeld_contract.clauses._util import lease_bytes, write_lease

        os.makedirs(data_root, exist_ok=True)
        write_lease(
            data_root,
            lease_bytes(instance_id=self.instance_id, endpoint=self.endpoint, backend=self.backend),
        )

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.loop.run(self.server.close(grace=0.0), 10.0)
            self.server = None
