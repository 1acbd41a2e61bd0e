"""Helpers shared by clause modules (no assertions about the code under test here, except the
deadline bounds of :func:`assert_deadline_held`, which state a rule of the contract)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from modeld_contract.applicability import not_applicable
from modeld_contract.connectors.protocol import HARNESS_TIMEOUT, ConnectorError, OperationUnsupported
from modeld_contract.oracles.lease import format_rfc3339

T = TypeVar("T")

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


# --- operations a connector may lack ----------------------------------------------------------------


def supported(call: Callable[[], T], what: str) -> T:
    """``call()``; when the connector does not offer the operation (``what``), the clause is not
    applicable: nothing of ours may answer in its place."""
    try:
        return call()
    except OperationUnsupported as err:
        not_applicable(f"the connector has no {what} ({err.message or err.kind})")


def optional(conn: Any, name: str) -> Callable[..., Any]:
    """The connector's optional operation ``name`` (e.g. ``push_model``); not applicable without it."""
    fn = getattr(conn, name, None)
    if not callable(fn):
        not_applicable(f"the connector has no {name}")
    return fn  # type: ignore[no-any-return]


# --- deadlines ---------------------------------------------------------------------------------------

#: The caller's deadline the deadline clauses give (seconds).
DEADLINE_S = 1.0


def deadline_bounds(t: float) -> tuple[float, float]:
    """A call given ``timeout=t`` against a daemon that never answers ends within [t, t + 20 % + 50 ms]:
    not before the caller's deadline (the connector may not give up early) and not much after."""
    return t, t * 1.2 + 0.05


def timed(call: Callable[[], Any]) -> tuple[ConnectorError | None, Any, float]:
    """(the typed error or None, the result or None, seconds the call took). An operation the
    connector does not offer makes the clause not applicable."""
    t0 = time.monotonic()
    try:
        out = call()
    except OperationUnsupported as err:
        not_applicable(f"the connector does not offer the operation ({err.message or err.kind})")
    except ConnectorError as err:
        return err, None, time.monotonic() - t0
    return None, out, time.monotonic() - t0


def assert_deadline_held(
    what: str, err: ConnectorError | None, took: float, t: float, kinds: tuple[str, ...]
) -> None:
    """The call ended by the caller's deadline ``t``: a typed error of one of ``kinds`` (matched as
    Go ``errors.Is``), within :func:`deadline_bounds`."""
    lo, hi = deadline_bounds(t)
    assert err is not None, f"{what}: returned after {took:.3f} s although the daemon never answered"
    assert err.kind != HARNESS_TIMEOUT, f"{what}: no deadline at all ({err}); caller's deadline {t} s"
    assert any(err.matches(k) for k in kinds), f"{what}: want one of {kinds}, got {err}"
    assert took >= lo, f"{what}: gave up after {took:.3f} s, before the caller's deadline of {t} s ({err})"
    assert took <= hi, f"{what}: took {took:.3f} s for a {t} s deadline (bound {hi:.3f} s)"


#: How often a call that ended late is measured again before the clause fails.
LATE_TRIES = 3


def hold_deadline(what: str, call: Callable[[], Any], t: float, kinds: tuple[str, ...]) -> None:
    """Make ``call`` (given the deadline ``t``; it may raise the typed error or return a Decode result
    carrying it) against a daemon that never answers, and :func:`assert_deadline_held`.

    Only lateness is measured again (at most :data:`LATE_TRIES` tries, one in time suffices): a loaded
    machine can delay the harness's own clock reading, never make a call end early, so a connector
    that gives up before the caller's deadline, answers, or has no deadline fails at once, and one that
    is late every time fails too."""
    hi = deadline_bounds(t)[1]
    late: list[float] = []
    for _ in range(LATE_TRIES):
        err, out, took = timed(call)
        if err is None:
            err = getattr(out, "error", None)
        if (
            err is not None
            and err.kind != HARNESS_TIMEOUT
            and took > hi
            and any(err.matches(k) for k in kinds)
        ):
            late.append(took)
            continue
        assert_deadline_held(what, err, took, t, kinds)
        return
    tries = ", ".join(f"{x:.3f} s" for x in late)
    raise AssertionError(f"{what}: late on every try ({tries}) for a {t} s deadline (bound {hi:.3f} s)")


# --- a listener that accepts and never answers --------------------------------------------------------


class CountingListener:
    """A loopback port that accepts TCP connections, counts them and never reads or answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.endpoint = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="modeld-counting-listener", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._held.append(conn)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._held)

    def wait_accepted(self, n: int, within: float) -> int:
        """The count once it reached ``n`` or ``within`` seconds passed (the accept thread may lag)."""
        deadline = time.monotonic() + within
        while self.accepted < n and time.monotonic() < deadline:
            self._stop.wait(0.01)
        return self.accepted

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        with self._lock:
            held, self._held = self._held, []
        for c in held:
            with contextlib.suppress(OSError):
                c.close()
        self._sock.close()


@contextlib.contextmanager
def counting_listener() -> Iterator[CountingListener]:
    lst = CountingListener()
    try:
        yield lst
    finally:
        lst.close()


# --- the daemon seen through a channel of our own -----------------------------------------------------

#: The fence metadata key and the codec's content-type (wire.md §5), restated: the observer shares
#: nothing with the connector under test.
_FENCE_HEADER = "x-contenox-owner-instance"
_SERVICE = "/contenox.transport.v1.Compute/"


class ObserverError(AssertionError):
    """The daemon refused the observer's own call: the clause cannot compare (the target is broken)."""


class Observer:
    """Asks the target's daemon directly, over a raw HTTP/2 connection of the harness fenced to the
    lease's instance: an independent witness of what the daemon holds and answers, to compare a
    connector's answer with (never the connector's own other answers)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def call(self, method: str, body: Mapping[str, Any], *, fenced: bool = True) -> dict[str, Any]:
        from modeld_contract.h2client import RawGrpcClient

        endpoint = str(self.target.endpoint)
        instance = str(self.target.instance_id)
        host, _, port = endpoint.rpartition(":")
        payload = dict(body)
        metadata: list[tuple[str, str]] = []
        if fenced:
            payload.setdefault("owner_instance_id", instance)
            metadata.append((_FENCE_HEADER, instance))

        async def go() -> Any:
            async with RawGrpcClient(host, int(port)) as c:
                return await c.call(
                    _SERVICE + method, [json.dumps(payload).encode()], metadata=metadata, timeout=20.0
                )

        reply = asyncio.run(go())
        if reply.code != 0 or not reply.messages:
            raise ObserverError(f"the daemon refused the observer's {method}: {reply.code} {reply.message}")
        out = json.loads(reply.messages[0])
        return dict(out) if isinstance(out, dict) else {}

    def status(self) -> dict[str, Any]:
        return self.call("Status", {})

    def disk_stats(self) -> dict[str, Any]:
        return self.call("DiskStats", {})

    def list_models(self) -> list[dict[str, Any]]:
        return list(self.call("ListModels", {}).get("models") or [])

    def describe(self, model: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("Describe", {**_model_fields(model), "config": dict(config)})

    def embed(self, model: Mapping[str, Any], config: Mapping[str, Any], text: str) -> list[float]:
        out = self.call("Embed", {**_model_fields(model), "config": dict(config), "text": text})
        return [float(x) for x in out.get("vector") or []]


def _model_fields(model: Mapping[str, Any]) -> dict[str, Any]:
    return {k: model[k] for k in ("model_name", "type", "digest", "path", "adapters") if model.get(k)}


def float32(x: float) -> float:
    """``x`` as the nearest float32 (the wire's embedding element type, Go ``[]float32``)."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])
