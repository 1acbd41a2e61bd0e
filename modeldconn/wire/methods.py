"""The method table of contenox.transport.v1.Compute (wire.md §2) — the one place it lives.

Names, request/response classes and streaming flags come from the service
descriptor of the generated code; fencing and handle checks are the server's
(``runtime/transport/grpc/server.go``): every method but Health is fenced by
metadata; the session methods that look their handle up check its instance prefix
(CloseSession does not).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from google.protobuf.message import Message

from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2
from modeldconn.wire.fence import SERVICE

__all__ = ["BY_NAME", "BY_PATH", "METHODS", "Kind", "Method", "method", "method_for_path"]


class Kind(enum.Enum):
    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    CLIENT_STREAM = "client_stream"


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    kind: Kind
    request: type[Message]
    response: type[Message]
    fenced: bool
    handle_checked: bool
    path: str

    @property
    def client_streaming(self) -> bool:
        return self.kind is Kind.CLIENT_STREAM

    @property
    def server_streaming(self) -> bool:
        return self.kind is Kind.SERVER_STREAM


_UNFENCED: Final = frozenset({"Health"})
_HANDLE_CHECKED: Final = frozenset(
    {"EnsurePrefix", "PrefillSuffix", "ExplainContext", "Snapshot", "Restore", "Decode"}
)


def _build() -> tuple[Method, ...]:
    service = compute_pb2.DESCRIPTOR.services_by_name["Compute"]
    assert service.full_name == SERVICE
    out = []
    for md in service.methods:
        if md.client_streaming and md.server_streaming:  # pragma: no cover - none on this wire
            raise AssertionError(f"bidi method {md.name} is not part of the wire")
        kind = (
            Kind.CLIENT_STREAM
            if md.client_streaming
            else Kind.SERVER_STREAM
            if md.server_streaming
            else Kind.UNARY
        )
        out.append(
            Method(
                name=md.name,
                kind=kind,
                request=getattr(compute_pb2, md.input_type.name),
                response=getattr(compute_pb2, md.output_type.name),
                fenced=md.name not in _UNFENCED,
                handle_checked=md.name in _HANDLE_CHECKED,
                path=f"/{SERVICE}/{md.name}",
            )
        )
    return tuple(out)


METHODS: Final[tuple[Method, ...]] = _build()
BY_NAME: Final = MappingProxyType({m.name: m for m in METHODS})
BY_PATH: Final = MappingProxyType({m.path: m for m in METHODS})


def method(name: str) -> Method:
    """The method called ``name`` (KeyError if the service has none)."""
    return BY_NAME[name]


def method_for_path(path: str) -> Method | None:
    """The method of an HTTP/2 ``:path``, or None (unknown service or method)."""
    return BY_PATH.get(path)
