"""Helpers shared by clause modules (no assertions about the code under test here)."""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from typing import Any

from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.oracles.lease import format_rfc3339

NS = 1_000_000_000
BIN_ENV = "CONTENOX_MODELD_BIN"


def lease_bytes(
    *,
    instance_id: str | None = None,
    renewed_at_ns: int | None = None,
    ttl_ns: int = 30 * NS,
    endpoint: str | None = "127.0.0.1:1",
    backend: str | None = "llama",
    acquired_at_ns: int | None = None,
    offset_minutes: int = 0,
    digits: int = 9,
) -> bytes:
    """A lease record the way Go's MarshalIndent writes it."""
    now = time.time_ns()
    renewed = now if renewed_at_ns is None else renewed_at_ns
    rec: dict[str, Any] = {
        "instance_id": instance_id if instance_id is not None else str(uuid.uuid4()),
        "pid": 4242,
        "host": "box",
        "acquired_at": format_rfc3339(
            renewed if acquired_at_ns is None else acquired_at_ns, offset_minutes, digits
        ),
        "renewed_at": format_rfc3339(renewed, offset_minutes, digits),
        "ttl": ttl_ns,
    }
    meta = {k: v for k, v in (("backend", backend), ("endpoint", endpoint)) if v}
    if meta:
        rec["meta"] = meta
    return json.dumps(rec, indent=2).encode()


def write_lease(root: str, data: bytes | None) -> None:
    path = os.path.join(root, "modeld.lease")
    if data is None:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(root, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def fake_binary(root: str) -> str:
    """A regular file to point CONTENOX_MODELD_BIN at (the probe only checks it exists)."""
    path = os.path.join(os.path.dirname(root.rstrip("/")) or "/", "bin", "modeld")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, 0o755)
    return path


def binary_env(root: str, present: bool) -> dict[str, str | None]:
    if present:
        return {BIN_ENV: fake_binary(root)}
    return {BIN_ENV: os.path.join(root, "no-such-dir", "modeld")}


def goos_goarch() -> str:
    m = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)
    return f"linux-{arch}"


def raises_kind(fn: Callable[[], Any]) -> ConnectorError:
    try:
        out = fn()
    except ConnectorError as err:
        return err
    raise AssertionError(f"expected a typed error, the call returned {out!r}")


def prefix(text: str, **manifest: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Text": text}
    if manifest:
        out["Manifest"] = manifest
    return out


def manifest(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "backend": "llama",
        "model_digest": "d1",
        "prompt_format": "f1",
        "prompt_template_digest": "t1",
        "runtime_digest": "r1",
        "stable_byte_hash": "h1",
    }
    base.update(fields)
    return base


# --- [real engines] helpers for clauses that run against any engine --------------------------------

#: Backends that emit the overflow detail (stage + counts). OpenVINO emits the bare sentinel
#: (session-semantics.md §5.6: "OpenVINO and the memory service emit the bare sentinel").
DETAILED_OVERFLOW_BACKENDS = ("llama",)


def overflow_detail(err: ConnectorError, backend: str) -> dict[str, Any] | None:
    """The overflow detail a clause may check: required (AssertionError if missing) where the backend
    emits it (llama); None where the backend emits the bare sentinel (openvino) and none came."""
    detail = err.detail if err.detail and err.detail.get("stage") else None
    if backend in DETAILED_OVERFLOW_BACKENDS:
        assert detail is not None, f"a {backend} context_overflow must carry its detail, got {err!r}"
    return detail


def foreign_type(backend: str) -> str:
    """A model type the daemon serving ``backend`` does not serve (for backend_mismatch clauses)."""
    return "llama" if backend == "openvino" else "openvino"


def empty_slot(conn: Any, *, within: float = 5.0) -> None:
    """Bring a shared daemon's slot to Empty (an external daemon carries the previous clause's model:
    an explicit one makes Embed model_busy, a resident one is reused by the next handle). The
    previous connector's handles die with its connection, which the daemon may notice a moment later:
    model_busy is retried for ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        st = conn.status()
        gen = int((st.get("active") or {}).get("generation") or 0)
        if st.get("state", "") in ("", "Empty") or gen <= 0:
            return
        try:
            conn.unload_model(gen)
            return
        except ConnectorError as err:
            if err.kind not in ("model_busy", "slot_generation_stale") or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the daemon has not yet released the previous connection's handle


def long_text(chars: int = 1536) -> str:
    """A text no tokenizer packs into few tokens (pseudo-random letters, digits and punctuation):
    far more than 64 tokens under any vocabulary, and ``chars`` tokens under the fake engine."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?-_/#@"
    x, out = 12345, []
    for _ in range(chars):
        x = (1103515245 * x + 12345) % (1 << 31)
        out.append(alphabet[(x >> 16) % len(alphabet)])
    return "".join(out)
