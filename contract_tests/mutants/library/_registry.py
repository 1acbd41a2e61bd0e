"""The registry the family modules fill: one entry per broken connector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["FAMILIES", "REGISTRY", "Mutant", "mutant"]

#: The families of defects the library covers (docs/decisions.md D-mutation).
FAMILIES: tuple[str, ...] = (
    "encoding",
    "decoding",
    "session lifecycle",
    "streams",
    "deadlines",
    "discovery",
    "lease freshness",
    "fencing and redial",
    "error typing",
    "retries",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    family: str
    what: str
    spec: str
    """The ``--modeld-connector`` spec that builds it (``module:Class``)."""


REGISTRY: dict[str, Mutant] = {}
C = TypeVar("C", bound=Callable[..., Any])


def mutant(name: str, family: str) -> Callable[[C], C]:
    """Register the decorated connector class (its docstring's first line says what is broken)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def register(cls: C) -> C:
        if name in REGISTRY:
            raise ValueError(f"two broken connectors named {name!r}")
        doc = (cls.__doc__ or name).strip().splitlines()[0]
        REGISTRY[name] = Mutant(name, family, doc, f"{cls.__module__}:{cls.__qualname__}")
        return cls

    return register
