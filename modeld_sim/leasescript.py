"""Write any lease state into a data root, for failure-injection tests and CI.

``LeaseScript(data_root).stale(by=2.0)`` and friends write ``<data_root>/modeld.lease`` exactly as
liblease would (``encode_record``), or deliberately broken bytes. Every write is atomic: a temp file
``.lease-<random>.tmp`` in the data root (the name liblease itself uses), then ``os.replace`` — a reader
sees the old file or the new one, never half of one. Writes take liblease's acquisition lock
(``<lease>.acquire.lock``, a directory) so they never interleave with a running owner's
read-check-write renew; :data:`LOCK_WAIT_S` bounds the wait (a lock older than liblease's staleness
window is reclaimed, as liblease does).

Only plain ``os`` calls: works on a real filesystem and under pyfakefs.

The states (:data:`OPS`; every one is also ``modeld-sim lease <op>`` and a scenario ``lease.<op>`` step):

=================  ============================================================================
``fresh``          a live record (``ttl``, default 30 s) of the current holder (see below)
``stale``          renewed ``by`` ago + ttl (default: expired 1 ms ago); ``by`` = how long past expiry
``expire``         ``stale`` with ``by`` = 1 ms (the holder's lease lapses now)
``future``         ``renewed_at`` ``by`` in the future (default 1 h)
``ttl``            ``ttl`` set to ``value`` nanoseconds (0 or negative allowed), renewed now
``corrupt``        ``data`` (default ``{"instance_id": nope``) in place of the JSON
``truncated``      the valid JSON cut to ``keep`` bytes (default: half)
``empty``          a zero-byte file
``missing``        no lease file
``foreign``        a fresh lease of another instance (new UUID, another pid and host)
``closed_port``    a fresh lease whose endpoint is a loopback port nobody listens on
``endpoint``       a fresh lease with meta.endpoint = ``value``
``backend``        meta.backend = ``value`` (``""`` removes the key)
``no_meta``        a fresh lease without ``meta``
``steal``          another instance takes over (new UUID, ``endpoint`` given or a closed port): the
                   running owner's next renew fails with LeaseLost and it shuts down
=================  ============================================================================

"The current holder" is the record in the file; when the file holds no readable record, the
``fallback`` record given to :class:`LeaseScript` (a cluster passes the record of the node that still
believes it owns, :meth:`modeld_sim.cluster.Cluster.lease_op`); only without one is a record made up: a
new instance id, this process's pid, a loopback port nobody listens on, ``default_ttl_ns``.

Pausing and resuming a running owner's renewals are :func:`pause_renewals` / :func:`resume_renewals`
(they need the owner object; from a shell use ``modeld-sim ctl lease pause``).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from modeldconn import gotime
from modeldconn import lease as liblease
from modeldconn.lease import LeaseRecord

__all__ = [
    "DEFAULT_TTL_NS",
    "LOCK_WAIT_S",
    "OPS",
    "LeaseScript",
    "LeaseScriptError",
    "apply",
    "check",
    "cli_main",
    "closed_port",
    "describe",
    "parse_kv",
    "pause_renewals",
    "resume_renewals",
]

DEFAULT_TTL_NS: Final = 30 * gotime.NS_PER_S
LOCK_WAIT_S: Final = 5.0
_MS: Final = 1_000_000
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_NS: Final = gotime.NS_PER_S
_DEFAULT_CORRUPT: Final = b'{"instance_id": nope'


class LeaseScriptError(ValueError):
    """A bad operation or parameter; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"lease: field {field!r}: {message}" if field else f"lease: {message}")


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port that was free a moment ago and has no listener now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _hostname() -> str:
    try:
        return os.uname().nodename
    except (AttributeError, OSError):
        return ""


class _Renewable(Protocol):
    def pause_renewals(self) -> None: ...

    def resume_renewals(self) -> None: ...


def pause_renewals(owner: _Renewable) -> None:
    """Stop a running :class:`~modeld_sim.owner.Owner` (or Simulator) renewing its lease."""
    owner.pause_renewals()


def resume_renewals(owner: _Renewable) -> None:
    owner.resume_renewals()


class LeaseScript:
    """Lease states for one data root. ``clock`` returns wall-clock ns (injectable)."""

    def __init__(
        self,
        data_root: str | os.PathLike[str],
        *,
        clock: Callable[[], int] = time.time_ns,
        lock_wait: float = LOCK_WAIT_S,
        default_ttl_ns: int = DEFAULT_TTL_NS,
        fallback: LeaseRecord | None = None,
    ) -> None:
        self.data_root = os.fspath(data_root)
        self.path = liblease.lease_path(self.data_root)
        self.clock = clock
        self.lock_wait = lock_wait
        self.default_ttl_ns = default_ttl_ns
        self.fallback = fallback
        """The holder's record to start from when the file holds no readable one."""

    def with_fallback(self, fallback: LeaseRecord | None) -> LeaseScript:
        """The same script for one operation, starting from ``fallback`` when the file is unreadable."""
        return LeaseScript(
            self.data_root,
            clock=self.clock,
            lock_wait=self.lock_wait,
            default_ttl_ns=self.default_ttl_ns,
            fallback=fallback,
        )

    # -- low level ----------------------------------------------------------------------------------

    def read(self) -> LeaseRecord | None:
        """The current record, or None when missing or unreadable."""
        return self.read_state()[0]

    def read_state(self) -> tuple[LeaseRecord | None, str | None]:
        """(record, None), or (None, why there is no readable record)."""
        try:
            return liblease.inspect(self.path), None
        except liblease.LeaseNotFound:
            return None, f"no lease file at {self.path}"
        except liblease.LeaseError as exc:
            return None, str(exc)

    def _base(self, ttl_ns: int | None = None) -> LeaseRecord:
        """The current holder's record renewed now (see the module docstring for who that is)."""
        now = gotime.now(self.clock())
        cur = self.read() or self.fallback
        if cur is None:
            return LeaseRecord(
                instance_id=str(uuid.uuid4()),
                pid=os.getpid(),
                host=_hostname(),
                acquired_at=now,
                renewed_at=now,
                ttl_ns=self.default_ttl_ns if ttl_ns is None else ttl_ns,
                meta={"backend": "llama", "endpoint": f"127.0.0.1:{closed_port()}"},
            )
        return replace(cur, renewed_at=now, ttl_ns=cur.ttl_ns if ttl_ns is None else ttl_ns)

    def _lock(self) -> str:
        lock = self.path + ".acquire.lock"
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                os.mkdir(lock, 0o700)
                return lock
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(self.data_root, 0o700, exist_ok=True)
                continue
            try:
                st = os.stat(lock)
            except FileNotFoundError:
                continue
            if time.time_ns() - st.st_mtime_ns > liblease.LOCK_STALE_AFTER_NS:
                with contextlib.suppress(OSError):
                    os.rmdir(lock)
                continue
            if time.monotonic() >= deadline:
                raise TimeoutError(f"lease: acquisition lock {lock} held for more than {self.lock_wait}s")
            time.sleep(0.001)

    @contextlib.contextmanager
    def locked(self) -> Any:
        lock = self._lock()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(lock)

    def _write_locked(self, data: bytes) -> None:
        os.makedirs(self.data_root, 0o700, exist_ok=True)
        for _ in range(1000):
            tmp = os.path.join(self.data_root, f".lease-{int.from_bytes(os.urandom(4), 'big')}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            os.close(fd)
            try:
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return
        raise FileExistsError(errno.EEXIST, "lease: too many temp name collisions", self.data_root)

    def write_bytes(self, data: bytes) -> None:
        """Atomically replace the lease file with ``data`` (under the acquisition lock)."""
        with self.locked():
            self._write_locked(bytes(data))

    def write(self, rec: LeaseRecord) -> LeaseRecord:
        """Atomically write ``rec`` as liblease would."""
        self.write_bytes(liblease.encode_record(rec))
        return rec

    def _update(self, fn: Callable[[LeaseRecord], LeaseRecord], ttl_ns: int | None = None) -> LeaseRecord:
        with self.locked():
            rec = fn(self._base(ttl_ns))
            self._write_locked(liblease.encode_record(rec))
            return rec

    # -- the states -------------------------------------------------------------------------------------

    def fresh(self, ttl_ns: int | None = None) -> LeaseRecord:
        return self._update(lambda r: r, ttl_ns)

    def stale(self, by_ns: int = _MS) -> LeaseRecord:
        """Expired ``by_ns`` ago (renewed_at = now - ttl - by)."""

        def fn(r: LeaseRecord) -> LeaseRecord:
            ttl = r.ttl_ns if r.ttl_ns > 0 else self.default_ttl_ns
            return replace(r, ttl_ns=ttl, renewed_at=r.renewed_at.add(-ttl - by_ns))

        return self._update(fn)

    def expire(self) -> LeaseRecord:
        return self.stale(_MS)

    def future(self, by_ns: int = 3600 * _NS) -> LeaseRecord:
        return self._update(lambda r: replace(r, renewed_at=r.renewed_at.add(by_ns)))

    def ttl(self, value_ns: int) -> LeaseRecord:
        return self._update(lambda r: replace(r, ttl_ns=value_ns))

    def corrupt(self, data: bytes = _DEFAULT_CORRUPT) -> None:
        self.write_bytes(data)

    def truncated(self, keep: int | None = None) -> None:
        with self.locked():
            full = liblease.encode_record(self._base())
            n = len(full) // 2 if keep is None else max(0, min(keep, len(full) - 1))
            self._write_locked(full[:n])

    def empty(self) -> None:
        self.write_bytes(b"")

    def missing(self) -> None:
        with self.locked(), contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def foreign(self, ttl_ns: int | None = None, endpoint: str | None = None) -> LeaseRecord:
        def fn(r: LeaseRecord) -> LeaseRecord:
            meta = dict(r.meta)
            if endpoint is not None:
                meta["endpoint"] = endpoint
            now = r.renewed_at
            return replace(
                r,
                instance_id=str(uuid.uuid4()),
                pid=max(2, (os.getpid() + 7919) % 4_194_304),
                host=f"{_hostname() or 'host'}-foreign",
                acquired_at=now,
                meta=meta,
            )

        return self._update(fn, ttl_ns)

    def closed_port(self) -> LeaseRecord:
        return self.endpoint(f"127.0.0.1:{closed_port()}")

    def endpoint(self, value: str) -> LeaseRecord:
        return self._update(lambda r: replace(r, meta={**r.meta, "endpoint": value}))

    def backend(self, value: str | None) -> LeaseRecord:
        def fn(r: LeaseRecord) -> LeaseRecord:
            meta = dict(r.meta)
            if value:
                meta["backend"] = value
            else:
                meta.pop("backend", None)
            return replace(r, meta=meta)

        return self._update(fn)

    def no_meta(self) -> LeaseRecord:
        return self._update(lambda r: replace(r, meta={}))

    def steal(self, endpoint: str | None = None, ttl_ns: int | None = None) -> LeaseRecord:
        """Another instance takes the lease over (a new acquisition: new UUID, acquired now)."""
        return self.foreign(ttl_ns=ttl_ns, endpoint=endpoint or f"127.0.0.1:{closed_port()}")


# --- generic dispatch (CLI, control plane, scenarios) ------------------------------------------------

#: op -> {param: kind}; kinds: "duration" (Go string or ms), "int", "str", "bytes"
OPS: Final[Mapping[str, Mapping[str, str]]] = {
    "fresh": {"ttl": "duration"},
    "stale": {"by": "duration"},
    "expire": {},
    "future": {"by": "duration"},
    "ttl": {"value": "ns"},
    "corrupt": {"data": "bytes"},
    "truncated": {"keep": "int"},
    "empty": {},
    "missing": {},
    "foreign": {"ttl": "duration", "endpoint": "str"},
    "closed_port": {},
    "endpoint": {"value": "str"},
    "backend": {"value": "str"},
    "no_meta": {},
    "steal": {"endpoint": "str", "ttl": "duration"},
}


def _int64(field: str, ns: int, given: Any) -> int:
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise LeaseScriptError(field, f"out of range: a Go duration is int64 nanoseconds, got {given!r}")
    return ns


def _duration_ns(field: str, v: Any) -> int:
    if isinstance(v, bool):
        raise LeaseScriptError(field, f'want a duration such as "2s" or a number of milliseconds, got {v!r}')
    if isinstance(v, int | float):
        if not math.isfinite(v):
            raise LeaseScriptError(field, f"want a finite number of milliseconds, got {v!r}")
        if isinstance(v, int):
            return _int64(field, v * _MS, v)
        ns = float(v) * _MS
        return _int64(field, round(ns) if math.isfinite(ns) else _INT64_MAX + 1, v)
    if isinstance(v, str):
        try:
            return gotime.parse_duration(v.strip())
        except gotime.GoTimeError as exc:
            raise LeaseScriptError(field, str(exc)) from None
    raise LeaseScriptError(field, f'want a duration such as "2s" or a number of milliseconds, got {v!r}')


def _check_params(op: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if op not in OPS:
        raise LeaseScriptError("op", f"unknown lease operation {op!r} (one of {', '.join(OPS)})")
    schema = OPS[op]
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k not in schema:
            known = ", ".join(schema) or "none"
            raise LeaseScriptError(k, f"not a parameter of lease.{op} (parameters: {known})")
        kind = schema[k]
        if kind == "duration":
            out[k] = _duration_ns(k, v)
        elif kind == "ns":
            if isinstance(v, str):
                try:
                    out[k] = gotime.parse_duration(v.strip())
                except gotime.GoTimeError as exc:
                    raise LeaseScriptError(k, str(exc)) from None
            elif isinstance(v, int) and not isinstance(v, bool):
                out[k] = _int64(k, v, v)
            else:
                raise LeaseScriptError(k, f"want nanoseconds (an integer) or a Go duration, got {v!r}")
        elif kind == "int":
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LeaseScriptError(k, f"want an integer >= 0, got {v!r}")
            out[k] = v
        elif kind == "bytes":
            if isinstance(v, str):
                out[k] = v.encode("utf-8")
            elif isinstance(v, bytes | bytearray):
                out[k] = bytes(v)
            else:
                raise LeaseScriptError(k, f"want a string, got {v!r}")
        else:
            if not isinstance(v, str):
                raise LeaseScriptError(k, f"want a string, got {v!r}")
            out[k] = v
    if op in ("ttl", "endpoint") and "value" not in out:
        raise LeaseScriptError("value", f"lease.{op} needs a value")
    return out


def check(op: str, params: Mapping[str, Any]) -> None:
    """Validate an operation and its parameters without touching the filesystem."""
    _check_params(op, params)


def apply(script: LeaseScript, op: str, params: Mapping[str, Any] | None = None) -> LeaseRecord | None:
    """Run ``op`` (a key of :data:`OPS`) with checked ``params``; returns the record written, if any.

    Parameters whose lease cannot be written (a time past year 9999, a TTL beyond int64) raise
    :class:`LeaseScriptError` naming the parameter; nothing is written then."""
    p = _check_params(op, params or {})
    try:
        return _apply(script, op, p)
    except LeaseScriptError:
        raise
    except (ValueError, OverflowError) as exc:  # encode_record / Go time formatting refused the values
        field = next(iter(p), "op")
        raise LeaseScriptError(field, f"lease.{op} cannot be written with these values: {exc}") from None


def _apply(script: LeaseScript, op: str, p: Mapping[str, Any]) -> LeaseRecord | None:
    if op == "fresh":
        return script.fresh(p.get("ttl"))
    if op == "stale":
        return script.stale(p.get("by", _MS))
    if op == "expire":
        return script.expire()
    if op == "future":
        return script.future(p.get("by", 3600 * _NS))
    if op == "ttl":
        return script.ttl(p["value"])
    if op == "corrupt":
        script.corrupt(p.get("data", _DEFAULT_CORRUPT))
        return None
    if op == "truncated":
        script.truncated(p.get("keep"))
        return None
    if op == "empty":
        script.empty()
        return None
    if op == "missing":
        script.missing()
        return None
    if op == "foreign":
        return script.foreign(p.get("ttl"), p.get("endpoint"))
    if op == "closed_port":
        return script.closed_port()
    if op == "endpoint":
        return script.endpoint(p["value"])
    if op == "backend":
        return script.backend(p.get("value"))
    if op == "no_meta":
        return script.no_meta()
    assert op == "steal"
    return script.steal(p.get("endpoint"), p.get("ttl"))


def describe(rec: LeaseRecord | None, now_ns: int | None = None) -> dict[str, Any] | None:
    """A JSON-friendly view of a record with its freshness (for CLI / control answers)."""
    if rec is None:
        return None
    now = time.time_ns() if now_ns is None else now_ns
    return {
        "instance_id": rec.instance_id,
        "pid": rec.pid,
        "host": rec.host,
        "renewed_at": gotime.format_rfc3339nano(rec.renewed_at),
        "ttl_ns": rec.ttl_ns,
        "meta": dict(rec.meta),
        "expires_at": gotime.format_rfc3339nano(rec.expires_at),
        "expired": liblease.expired_for_liblease(rec, now),
        "probe_live": liblease.live_for_probe(rec, now),
        "ttl_left_ms": (rec.expires_at.unix_ns - now) / _MS,
    }


# --- CLI: modeld-sim lease ------------------------------------------------------------------------------


def parse_kv(items: list[str]) -> dict[str, Any]:
    """``key=value`` words → dict; a value that parses as JSON is taken as JSON, else as a string."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise LeaseScriptError(item, "want key=value")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def cli_main(args: Any, out: Callable[[str, str], object]) -> int:
    """``modeld-sim lease [--data-root D] OP [key=value …]``; prints the lease afterwards as JSON."""
    import json

    script = LeaseScript(args.data_root)
    try:
        params = parse_kv(list(args.params))
        if args.op in ("pause", "resume"):
            return _remote_pause_resume(args.op, args.data_root, params, out)
        if args.op != "show":
            apply(script, args.op, params)
    except LeaseScriptError as exc:
        out("stderr", f"modeld-sim lease: {exc}")
        return 2
    except (OSError, TimeoutError) as exc:
        out("stderr", f"modeld-sim lease: {exc}")
        return 1
    try:
        doc = describe(liblease.inspect(script.path))
    except liblease.LeaseNotFound:
        doc = {"state": "missing"}
    except liblease.LeaseCorrupt as exc:
        doc = {"state": "corrupt", "error": str(exc)}
    except liblease.LeaseError as exc:
        doc = {"state": "unreadable", "error": str(exc)}
    out("stdout", json.dumps({"path": script.path, "op": args.op, "lease": doc}, indent=2))
    return 0


def _remote_pause_resume(
    op: str, data_root: str, params: dict[str, Any], out: Callable[[str, str], object]
) -> int:
    """``lease pause|resume``: only a running simulator can stop its own renewals (its control plane)."""
    import json

    from .control import ControlClient, ControlError

    try:
        client = ControlClient.from_data_root(data_root)
    except (OSError, ValueError) as exc:
        out(
            "stderr",
            f"modeld-sim lease {op}: needs a running simulator with a control plane at {data_root} "
            f"(modeld-sim serve --control, or modeld-sim cluster): {exc}",
        )
        return 1
    try:
        res = client.lease(op, **params)
    except ControlError as exc:
        out("stderr", f"modeld-sim lease {op}: {exc.message} (HTTP {exc.status})")
        return 2 if exc.status in (400, 404) else 1
    except OSError as exc:
        out("stderr", f"modeld-sim lease {op}: control plane at {data_root} does not answer: {exc}")
        return 1
    out("stdout", json.dumps(res, indent=2))
    return 0
