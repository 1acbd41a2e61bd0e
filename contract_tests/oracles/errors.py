"""The sentinel table (wire.md §9.1), restated: token → gRPC code, in the server's order."""

from __future__ import annotations

__all__ = ["SENTINEL_TABLE", "TOKENS"]

SENTINEL_TABLE: tuple[tuple[str, int], ...] = (
    ("context_canceled", 1),
    ("deadline_exceeded", 4),
    ("stale_fence", 9),
    ("not_owner", 9),
    ("session_closed", 9),
    ("context_overflow", 8),
    ("session_fatal", 10),
    ("model_busy", 9),
    ("model_not_active", 9),
    ("model_switch_required", 9),
    ("device_busy", 8),
    ("model_load_failed", 13),
    ("insufficient_memory", 8),
    ("slot_generation_stale", 9),
    ("backend_mismatch", 9),
    ("unsupported_feature", 12),
    ("manifest_mismatch", 9),
    ("model_not_found", 5),
    ("digest_mismatch", 9),
    ("unsupported_model_type", 3),
)
TOKENS: tuple[str, ...] = tuple(t for t, _ in SENTINEL_TABLE)
