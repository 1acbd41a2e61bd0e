"""The recorder: the corpus's requests sent to a real modeld, its answers written in the corpus's form.

``record()`` starts the daemon on a fresh data root, sends each case of the corpus file (its requests, in file
order, on the same named connections) with :mod:`modeld_contract.corpus` (one place for the request filling
and the reply normalisation), and writes a JSON-lines file in the same format: each line is the corpus line
with its ``reply`` replaced by what the daemon answered. ``<machine>`` is written only in Describe and
DiskStats replies, for the values listed in :data:`MACHINE_VALUES`; nothing else is masked.

``record_lifecycle()`` runs the 17 lifecycle scenarios of ``lifecycle-none.jsonl`` against the real daemon and
writes the same facts (same case names, same fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from modeld_contract.corpus import (
    MACHINE_METHODS,
    MODELD_CORPUS,
    SERVICE_PATH,
    Case,
    Placeholders,
    load_cases,
    prepare_model,
    replay_case,
    reply_record,
)
from modeld_contract.h2client import RawGrpcClient, RawReply
from modeld_contract.real.build import build
from modeld_contract.real.daemon import LEASE_NAME, DaemonError, RealDaemon, read_lease
from modeld_contract.targets import lease_expiry_ns, rfc3339_ns

__all__ = [
    "CLOSE_SETTLE_S",
    "INFO_TIMEOUT_S",
    "LIFECYCLE_CASES",
    "MACHINE_VALUES",
    "mask_machine_values",
    "record",
    "record_cases",
    "record_lifecycle",
]

#: The reply values that are facts of the recording machine (free memory and disk, devices), per method.
#: A key listed here whose value is a list of objects has every value of every element masked.
MACHINE_VALUES: Final[dict[str, frozenset[str]]] = {
    "DiskStats": frozenset({"free_bytes", "used_bytes", "total_bytes"}),
    "Describe": frozenset(
        {
            "memory_context_tokens",
            "free_bytes",
            "user_limit_bytes",
            "host_cold_budget_bytes",
            "usable_bytes",
            "device_total_bytes",
            "runtime_system_info",
            "devices",
        }
    ),
}
assert set(MACHINE_VALUES) == MACHINE_METHODS
MACHINE: Final = "<machine>"
#: The `info.` case is a HEADERS frame that ends the stream: the real daemon never answers (a client hang).
INFO_TIMEOUT_S: Final = 2.0
#: After a named connection closes, the daemon ends its sessions once grpc-go has seen the connection end
#: (about half a second later; recorded fact `llama.ensure_after_conn_closed`). Before the next case the
#: recorder waits, at most this long, until every session opened on that connection answers session_closed.
CLOSE_SETTLE_S: Final = 15.0
#: The connection the recorder's settle probes go on (never one a case names).
SETTLE_CONNECTION: Final = "recorder.settle"
SETTLE_POLL_S: Final = 0.02
_SESSION_CLOSED_CODE: Final = 9  # FailedPrecondition, as `session_closed` is sent


def mask_machine_values(method: str, messages: list[Any]) -> list[Any]:
    """``<machine>`` for the machine values of a Describe / DiskStats reply body (key order kept)."""
    keys = MACHINE_VALUES.get(method)
    if not keys:
        return messages
    out: list[Any] = []
    for msg in messages:
        if not isinstance(msg, dict):
            out.append(msg)
            continue
        masked: dict[str, Any] = {}
        for k, v in msg.items():
            if k not in keys:
                masked[k] = v
            elif isinstance(v, list):
                masked[k] = [{ek: MACHINE for ek in e} if isinstance(e, dict) else MACHINE for e in v]
            else:
                masked[k] = MACHINE
        out.append(masked)
    return out


def _line(case: Case, reply: dict[str, Any] | None) -> dict[str, Any]:
    """The corpus line with its reply replaced (key order of the line kept)."""
    if reply is None:
        return dict(case.raw)
    line = {k: (reply if k == "reply" else v) for k, v in case.raw.items()}
    line.setdefault("reply", reply)
    return line


async def record_cases(
    cases: list[Case],
    host: str,
    port: int,
    ph: Placeholders,
    *,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Send every case in order to ``host:port`` and return the recorded lines."""
    lines: list[dict[str, Any]] = []
    opened: dict[str | None, list[str]] = {}  # connection name -> handles opened on it
    async with RawGrpcClient(host, port) as client:
        for case in cases:
            if case.is_close:
                await replay_case(client, case, ph)
                name = case.name.removeprefix("connection.close.")
                await _sessions_ended(client, opened.pop(name, []), ph)
                lines.append(_line(case, None))
                continue
            raw = await replay_case(client, case, ph, timeout=INFO_TIMEOUT_S if case.is_info else timeout)
            handle = _opened_handle(case, raw)
            if handle:
                opened.setdefault(case.request.get("connection"), []).append(handle)
            rec = reply_record(case, raw, ph)
            if case.method in MACHINE_METHODS and isinstance(rec.get("messages"), list):
                rec["messages"] = mask_machine_values(case.method, rec["messages"])
            lines.append(_line(case, rec))
            if progress is not None:
                progress(f"{case.name}: {rec.get('code')}")
    return lines


def _opened_handle(case: Case, raw: RawReply) -> str:
    """The handle an OpenSession case was given ("" for any other case or an error)."""
    if case.method != "OpenSession" or raw.code != 0 or not raw.messages:
        return ""
    try:
        body = json.loads(raw.messages[0])
    except ValueError:
        return ""
    return str(body.get("handle") or "") if isinstance(body, dict) else ""


async def _sessions_ended(client: RawGrpcClient, handles: list[str], ph: Placeholders) -> None:
    """Wait until the daemon answers session_closed for each handle (it ends a closed connection's sessions
    on its own, a moment after the close). ExplainContext only reads a session, so asking changes nothing
    the next cases record; the asks go on a connection of their own."""
    deadline = time.monotonic() + CLOSE_SETTLE_S
    fence = [("x-contenox-owner-instance", ph.instance_id)]
    for handle in handles:
        body = json.dumps({"handle": handle}, separators=(",", ":")).encode()
        while True:
            reply = await client.call(
                SERVICE_PATH + "ExplainContext",
                [body],
                metadata=fence,
                connection=SETTLE_CONNECTION,
                timeout=CLOSE_SETTLE_S,
            )
            if reply.code == _SESSION_CLOSED_CODE and "session_closed" in (reply.message or ""):
                break
            if time.monotonic() > deadline:
                raise DaemonError(
                    f"session {handle} still answered code {reply.code} ({reply.message!r}) "
                    f"{CLOSE_SETTLE_S:.0f} s after its connection closed"
                )
            await asyncio.sleep(SETTLE_POLL_S)  # polling the daemon's own clean-up, bounded by the deadline


def _write_lines(out: Path, lines: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
    os.replace(tmp, out)


def _binary(backend: str, modeld_bin: Path | None) -> Path:
    if modeld_bin is not None:
        if not (modeld_bin.is_file() and os.access(modeld_bin, os.X_OK)):
            raise FileNotFoundError(f"--modeld-bin {modeld_bin}: not an executable file")
        return modeld_bin.resolve()
    return build(backend).binary


def record(
    backend: str,
    out_dir: Path,
    *,
    modeld_bin: Path | None = None,
    model: Path | None = None,
    corpus: Path | None = None,
    ttl: str = "3s",
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Record ``real-<backend>.jsonl`` into ``out_dir`` against a real daemon; returns the file written."""
    cases = load_cases(corpus or MODELD_CORPUS / f"real-{backend}.jsonl")
    binary = _binary(backend, modeld_bin)
    # The temporary folder is resolved: the daemon reports real paths, and <TMP> must match them.
    tmp = Path(tempfile.mkdtemp(prefix="modeld-record-")).resolve()
    try:
        if model is None:
            model_path, model_dir = prepare_model(tmp)
        else:
            model_path, model_dir = str(model.resolve()), str(model.resolve().parent)
        with RealDaemon(binary, tmp / "data", ttl=ttl, log_path=tmp.parent / f"{tmp.name}.modeld.log") as d:
            ph = Placeholders(
                instance_id=d.instance_id,
                endpoint=d.endpoint,
                model=model_path,
                model_dir=model_dir,
                tmp_dir=str(tmp),
            )
            if progress is not None:
                progress(f"modeld pid {d.pid} serving at {d.endpoint}; {len(cases)} cases")
            lines = asyncio.run(record_cases(cases, d.host, d.port, ph, timeout=timeout, progress=progress))
        with contextlib.suppress(OSError):
            (tmp.parent / f"{tmp.name}.modeld.log").unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = out_dir / f"real-{backend}.jsonl"
    _write_lines(out, lines)
    return out


# == the lifecycle ======================================================================================

S: Final = 1_000_000_000
_RFC3339NANO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?(Z|[+-]\d{2}:\d{2})$")
#: ``start.lease_appears``'s ``within_s``: the lease is there within this many seconds of the start.
LEASE_APPEARS_WITHIN_S: Final = 2.0
#: A fast TTL for the scenarios that wait for a lease to lapse (their facts do not depend on the TTL).
FAST_TTL: Final = "1s"


def _lapsed(data_root: Path) -> bool:
    lease = read_lease(data_root)
    expiry = None if lease is None else lease_expiry_ns(lease)
    return expiry is not None and time.time_ns() > expiry


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise DaemonError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)  # polling files and processes with a deadline


def _go_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros of the fraction trimmed)."""
    base = datetime.fromtimestamp(ns // S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % S:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def _exit_or_running(d: RealDaemon, wait_s: float) -> int | str:
    """The exit status within ``wait_s``, or ``"still running"``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not d.alive():
            return d.wait(1)
        time.sleep(0.02)
    return "still running"


class _Lab:
    """A data root and the daemons started on it (all killed at the end)."""

    def __init__(self, binary: Path, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        self.root = tmp / "root"
        self.started: list[RealDaemon] = []

    def daemon(self, ttl: str = "3s") -> RealDaemon:
        d = RealDaemon(self.binary, self.root, ttl=ttl, log_path=self.tmp / f"d{len(self.started)}.log")
        self.started.append(d)
        return d

    def owner(self, ttl: str = "3s") -> RealDaemon:
        return self.daemon(ttl).start()

    def close(self) -> None:
        for d in self.started:
            d.kill()


@contextlib.contextmanager
def _lab(binary: Path) -> Iterator[_Lab]:
    tmp = Path(tempfile.mkdtemp(prefix="modeld-lifecycle-")).resolve()
    lab = _Lab(binary, tmp)
    try:
        yield lab
    finally:
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _lease_doc_pairs(path: Path) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = json.loads(path.read_bytes(), object_pairs_hook=lambda kv: kv)
    return pairs


def lc_start_lease_appears(lab: _Lab) -> dict[str, Any]:
    t0 = time.monotonic()
    d = lab.daemon().spawn()
    try:
        d.lease = d.wait_for_lease(30)
    except DaemonError:
        return {"ok": False, "within_s": False}
    return {"ok": True, "within_s": time.monotonic() - t0 <= LEASE_APPEARS_WITHIN_S}


def lc_lease_shape(lab: _Lab) -> dict[str, Any]:
    d = lab.owner()
    pairs = _lease_doc_pairs(d.lease_path)
    names = {str: "str", int: "int", float: "float", bool: "bool", type(None): "null", list: "list"}

    def shape(v: Any) -> Any:
        if isinstance(v, list) and all(isinstance(p, tuple) for p in v):
            return {k: shape(x) for k, x in sorted(v)}
        return names.get(type(v), type(v).__name__)

    meta = dict(pairs).get("meta", [])
    return {
        "key_order": [k for k, _ in pairs],
        "meta_keys": [k for k, _ in meta] if isinstance(meta, list) else [],
        "shape": {k: shape(v) for k, v in sorted(pairs)},
    }


def lc_lease_values(lab: _Lab) -> dict[str, Any]:
    d = lab.owner("3s")
    raw = json.loads(d.lease_path.read_bytes())
    times = [str(raw.get("acquired_at", "")), str(raw.get("renewed_at", ""))]
    return {
        "endpoint_host": str(raw["meta"]["endpoint"]).rpartition(":")[0],
        "host": raw.get("host") == socket.gethostname(),
        "iid_dashes": str(raw["instance_id"]).count("-"),
        "iid_len": len(str(raw["instance_id"])),
        "pid_is_daemon": raw.get("pid") == d.pid,
        "times_rfc3339nano": all(_RFC3339NANO.match(t) for t in times),
        "ttl": raw.get("ttl"),
        "zone_z_on_utc_machine": all(t.endswith("Z") for t in times),
    }


def lc_lease_file(lab: _Lab) -> dict[str, Any]:
    d = lab.owner()
    raw = d.lease_path.read_bytes()
    lines = raw.decode().splitlines()
    return {
        "ends_newline": raw.endswith(b"\n"),
        "indent": len(lines) > 2 and lines[1].startswith('  "') and not lines[1].startswith("   "),
        "mode": oct(d.lease_path.stat().st_mode & 0o777),
        "raw_starts": raw[:2].decode(),
    }


def lc_data_root_entries_running(lab: _Lab) -> dict[str, Any]:
    d = lab.owner("600ms")
    first = d.lease.get("renewed_at")
    _wait(lambda: (read_lease(lab.root) or {}).get("renewed_at", first) != first, 5, "a renewal")
    seen: Counter[tuple[str, ...]] = Counter()
    for _ in range(50):
        seen[tuple(sorted(os.listdir(lab.root)))] += 1
        time.sleep(0.01)
    # a renewal's lock and temporary file live for a millisecond: the listing seen most often
    return {"entries": list(seen.most_common(1)[0][0])}


def lc_lease_renew_interval_s(lab: _Lab) -> dict[str, Any]:
    d = lab.owner("3s")
    stamps = [rfc3339_ns(str(d.lease["renewed_at"]))]

    def renewed_thrice() -> bool:
        lease = read_lease(lab.root)
        if lease is not None and rfc3339_ns(str(lease["renewed_at"])) != stamps[-1]:
            stamps.append(rfc3339_ns(str(lease["renewed_at"])))
        return len(stamps) >= 4

    _wait(renewed_thrice, 10, "three renewals")
    gaps = sorted({round((b - a) / S, 1) for a, b in itertools.pairwise(stamps)})
    return {"gaps": gaps}


def lc_second_owner_same_root(lab: _Lab) -> dict[str, Any]:
    a = lab.owner()
    b = lab.daemon().spawn()
    code = b.wait(15)
    now = read_lease(lab.root) or {}
    return {"exit": code, "first_still_owner": a.alive() and now.get("instance_id") == a.instance_id}


def lc_sigterm(lab: _Lab) -> dict[str, Any]:
    d = lab.owner()
    d.send_signal(signal.SIGTERM)
    code = d.wait()
    return {"entries": sorted(os.listdir(lab.root)), "exit": code, "lease_left": d.lease_path.exists()}


def lc_sigkill(lab: _Lab) -> dict[str, Any]:
    d = lab.owner()
    d.send_signal(signal.SIGKILL)
    d.wait()
    left = read_lease(lab.root)
    return {"lease_left": left is not None and left.get("instance_id") == d.instance_id}


def lc_start_while_dead_owner_lease_fresh(lab: _Lab) -> dict[str, Any]:
    a = lab.owner()
    a.send_signal(signal.SIGKILL)
    a.wait()
    b = lab.daemon().spawn()
    return {"exit": b.wait(15)}


def lc_start_after_lapse(lab: _Lab) -> dict[str, Any]:
    a = lab.owner(FAST_TTL)
    a.send_signal(signal.SIGKILL)
    a.wait()
    _wait(lambda: _lapsed(lab.root), 10, "the dead owner's lease to lapse")
    b = lab.owner(FAST_TTL)
    return {"pid_is_new": b.lease.get("pid") == b.pid != a.pid, "took_over": b.instance_id != a.instance_id}


def _stopped_owner_and_rival(lab: _Lab) -> tuple[RealDaemon, RealDaemon]:
    a = lab.owner(FAST_TTL)
    a.send_signal(signal.SIGSTOP)
    _wait(lambda: _lapsed(lab.root), 10, "the stopped owner's lease to lapse")
    return a, lab.owner(FAST_TTL)


def lc_takeover_while_owner_stopped(lab: _Lab) -> dict[str, Any]:
    a, b = _stopped_owner_and_rival(lab)
    took = b.lease.get("pid") == b.pid and b.pid != a.pid
    a.send_signal(signal.SIGCONT)
    return {"took_over": took}


def lc_old_owner_after_sigcont(lab: _Lab) -> dict[str, Any]:
    a, b = _stopped_owner_and_rival(lab)
    a.send_signal(signal.SIGCONT)
    code = a.wait(15)
    kept = read_lease(lab.root) or {}
    return {"exit": code, "lease_kept_by_new": kept.get("instance_id") == b.instance_id and b.alive()}


def lc_owner_resumed_after_lapse_no_rival(lab: _Lab) -> dict[str, Any]:
    a = lab.owner(FAST_TTL)
    a.send_signal(signal.SIGSTOP)
    _wait(lambda: _lapsed(lab.root), 10, "the stopped owner's lease to lapse")
    a.send_signal(signal.SIGCONT)
    code = a.wait(15)
    return {"exit": code, "lease_left": a.lease_path.exists()}


def _start_over(lab: _Lab, content: bytes) -> dict[str, Any]:
    lab.root.mkdir(mode=0o700)
    (lab.root / LEASE_NAME).write_bytes(content)
    (lab.root / LEASE_NAME).chmod(0o600)
    d = lab.daemon().spawn()
    _wait(
        lambda: not d.alive() or (read_lease(lab.root) or {}).get("pid") == d.pid,
        15,
        "the daemon to take the lease or exit",
    )
    state = _exit_or_running(d, 1.0)
    after = (lab.root / LEASE_NAME).read_bytes() if (lab.root / LEASE_NAME).exists() else None
    lease = read_lease(lab.root) or {}
    owner = "daemon" if lease.get("pid") == d.pid else "unchanged" if after == content else "other"
    return {"exit": state, "lease_owner": owner}


def lc_start_over_corrupt_lease(lab: _Lab) -> dict[str, Any]:
    return _start_over(lab, b'{"instance_id": "x", "ttl": "30s"')


def lc_start_over_empty_lease(lab: _Lab) -> dict[str, Any]:
    return _start_over(lab, b"")


def lc_start_over_foreign_fresh_lease(lab: _Lab) -> dict[str, Any]:
    """A fresh lease of another live process (ours), written in liblease's form."""
    now = _go_time(time.time_ns())
    doc = {
        "instance_id": str(uuid.uuid4()),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "acquired_at": now,
        "renewed_at": now,
        "ttl": 60 * S,
        "meta": {"backend": "llama", "endpoint": "127.0.0.1:9"},
    }
    content = json.dumps(doc, indent=2).encode()
    lab.root.mkdir(mode=0o700)
    (lab.root / LEASE_NAME).write_bytes(content)
    (lab.root / LEASE_NAME).chmod(0o600)
    d = lab.daemon().spawn()
    state = _exit_or_running(d, 15.0)
    after = (lab.root / LEASE_NAME).read_bytes() if (lab.root / LEASE_NAME).exists() else None
    lease = read_lease(lab.root) or {}
    owner = "unchanged" if after == content else "daemon" if lease.get("pid") == d.pid else "other"
    return {"exit": state, "lease_owner": owner}


LIFECYCLE_CASES: Final[dict[str, Callable[[_Lab], dict[str, Any]]]] = {
    "start.lease_appears": lc_start_lease_appears,
    "lease.shape": lc_lease_shape,
    "lease.values": lc_lease_values,
    "lease.file": lc_lease_file,
    "data_root.entries_running": lc_data_root_entries_running,
    "lease.renew_interval_s": lc_lease_renew_interval_s,
    "second_owner.same_root": lc_second_owner_same_root,
    "sigterm": lc_sigterm,
    "sigkill": lc_sigkill,
    "start_while_dead_owner_lease_fresh": lc_start_while_dead_owner_lease_fresh,
    "start_after_lapse": lc_start_after_lapse,
    "takeover_while_owner_stopped": lc_takeover_while_owner_stopped,
    "old_owner_after_sigcont": lc_old_owner_after_sigcont,
    "owner_resumed_after_lapse_no_rival": lc_owner_resumed_after_lapse_no_rival,
    "start_over_corrupt_lease": lc_start_over_corrupt_lease,
    "start_over_empty_lease": lc_start_over_empty_lease,
    "start_over_foreign_fresh_lease": lc_start_over_foreign_fresh_lease,
}


def record_lifecycle(
    out: Path, *, modeld_bin: Path | None = None, progress: Callable[[str], None] | None = None
) -> Path:
    """Record the lifecycle facts against the real backend-none daemon into ``out``; returns ``out``."""
    binary = _binary("none", modeld_bin)
    lines: list[dict[str, Any]] = []
    for name, scenario in LIFECYCLE_CASES.items():
        with _lab(binary) as lab:
            fact = scenario(lab)
        lines.append({"case": name, **fact})
        if progress is not None:
            progress(f"{name}: {fact}")
    _write_lines(out, lines)
    return out
