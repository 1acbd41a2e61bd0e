"""The network probe decision (lease-and-discovery.md §7.3, modeldprobe.go Probe/grpcHealthCheck):
after an offline ``running``, an empty endpoint, any Health failure (closed port, no answer within
the deadline), ``ready: false``, or a Health instance different from a non-empty lease instance
→ ``unreachable``; otherwise ``running``."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Behaviour", "expect_probe"]


class Behaviour(StrEnum):
    HEALTHY = "healthy"  # ready, the lease's instance
    NOT_READY = "not-ready"
    WRONG_INSTANCE = "wrong-instance"
    CLOSED_PORT = "closed-port"
    HANGING = "hanging"  # TCP accepted, nothing answers
    NO_ENDPOINT = "no-endpoint"


def expect_probe(offline_state: str, behaviour: Behaviour, lease_instance: str) -> str:
    if offline_state != "running":
        return offline_state
    if behaviour is Behaviour.HEALTHY:
        return "running"
    if behaviour is Behaviour.WRONG_INSTANCE and not lease_instance:
        return "running"  # an empty lease instance is not compared
    return "unreachable"
