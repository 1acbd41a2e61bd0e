"""The RPC transcript: one JSON line per call the simulator answered, kept as a CI artifact.

Each call line::

    {"seq": 7, "t": "2026-06-21T18:00:00.123456789Z", "node": "node1", "instance": "<iid>",
     "conn": 3, "method": "EnsurePrefix", "fence": "<iid presented>", "request": {...summary...},
     "code": 9, "code_name": "FailedPrecondition", "message": "stale_fence: stale owner fence token",
     "token": "stale_fence", "latency_ms": 0.41, "faults": ["r1:error"], "chunks": 0}

``code`` is ``null`` when no status was sent (the stream was reset, the connection closed, the
deadline passed: grpc-go resets the stream then) and ``outcome`` says which. ``fence`` is the single
``x-contenox-owner-instance`` value, ``null`` when absent, a list when several were sent. The request
summary keeps scalar fields (strings cut at 80 characters) and the length of lists and messages.

Event lines (lease operations, kills, failovers, scenario steps, marks) have ``"event"`` instead of
``"method"``. Lines go to an optional file (appended with one ``os.write`` each, so several
processes may share one file) and to an in-memory ring read by the control plane.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from modeldconn import gotime
from modeldconn.wire.errors import GRPC_CODE_NAMES, SENTINEL_BY_TOKEN

__all__ = ["DEFAULT_KEEP", "Transcript", "load", "summarize_request", "token_of"]

DEFAULT_KEEP: Final = 100_000
_MAX_STR: Final = 80


def token_of(message: str) -> str | None:
    """The sentinel token a status message starts with (``"stale_fence: …"`` → ``stale_fence``)."""
    head = message.split(": ", 1)[0]
    return head if head in SENTINEL_BY_TOKEN else None


def _short(v: Any, depth: int) -> Any:
    if isinstance(v, str):
        return v if len(v) <= _MAX_STR else v[:_MAX_STR] + f"…(+{len(v) - _MAX_STR})"
    if isinstance(v, bool | int | float) or v is None:
        return v
    if isinstance(v, list):
        return f"[{len(v)} items]"
    if isinstance(v, dict):
        if depth <= 0:
            return f"{{{len(v)} keys}}"
        return {k: _short(x, depth - 1) for k, x in v.items()}
    return str(v)


def summarize_request(request: Any) -> dict[str, Any] | None:
    """A small JSON summary of a protobuf request (scalars kept, long strings cut)."""
    if request is None:
        return None
    try:
        from modeldconn.wire import codec

        doc = json.loads(codec.encode(request))
    except Exception:
        return {"repr": _short(repr(request), 0)}
    if not isinstance(doc, dict):
        return {"value": _short(doc, 1)}
    out = _short(doc, 2)
    return out if isinstance(out, dict) else None


def _fence_value(values: list[str]) -> str | list[str] | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return list(values)


class Transcript:
    """JSON-lines transcript of calls and events. Thread-safe; usable from any number of nodes."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        keep: int = DEFAULT_KEEP,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.clock = clock
        self._ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(1, keep))
        self._seq = 0
        self._mu = threading.Lock()
        self._fd: int | None = None
        if self.path is not None:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            # private: the entries carry the fence (the owner's instance id), which is what lets a
            # client drive the daemon (docs/security.md)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(self._fd, 0o600)

    # -- writing ------------------------------------------------------------------------------------

    def _now(self) -> str:
        return gotime.format_rfc3339nano(gotime.GoTime(self.clock(), 0))

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._mu:
            self._seq += 1
            doc = {"seq": self._seq, "t": self._now(), **entry}
            self._ring.append(doc)
            if self._fd is not None:
                line = (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                with contextlib.suppress(OSError):  # a full disk must not take the simulator down
                    os.write(self._fd, line)
            return doc

    def record_call(
        self,
        *,
        method: str,
        conn: int | None,
        fence: list[str],
        request: Any,
        code: int | None,
        message: str,
        latency_s: float | None,
        faults: Iterable[str] = (),
        node: str = "",
        instance: str = "",
        outcome: str | None = None,
        chunks: int | None = None,
    ) -> dict[str, Any]:
        """Record one RPC; returns the line written."""
        entry: dict[str, Any] = {
            "node": node,
            "instance": instance,
            "conn": conn,
            "method": method,
            "fence": _fence_value(fence),
            "request": summarize_request(request),
            "code": code,
            "code_name": None if code is None else GRPC_CODE_NAMES.get(code, f"Code({code})"),
            "message": message,
            "token": token_of(message) if code else None,
            "latency_ms": None if latency_s is None else round(latency_s * 1000.0, 3),
            "faults": list(faults),
        }
        if outcome is not None:
            entry["outcome"] = outcome
        if chunks is not None:
            entry["chunks"] = chunks
        return self._append(entry)

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record a non-RPC event (``lease.stale``, ``node.kill``, ``failover``, ``mark``, …)."""
        return self._append({"event": kind, **fields})

    # -- reading ------------------------------------------------------------------------------------

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Lines kept in memory with ``seq > since`` (oldest first)."""
        with self._mu:
            return [dict(e) for e in self._ring if e["seq"] > since]

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries() if "method" in e and (method is None or e["method"] == method)]

    def dump_jsonl(self, since: int = 0) -> str:
        return "".join(
            json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in self.entries(since)
        )

    @property
    def last_seq(self) -> int:
        return self._seq

    def close(self) -> None:
        with self._mu:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a transcript file (skips a torn last line)."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, Mapping):
                out.append(dict(doc))
    return out
