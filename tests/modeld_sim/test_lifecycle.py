"""The recorded lifecycle of the real daemon (tests/corpus/modeld-v0.36.0/lifecycle-none.jsonl), asserted
against ``modeld-sim serve`` run as a subprocess, one test per recorded fact.

The cases are read from the corpus file, so a fact this module does not handle fails. Every wait polls the
data root or the process with a deadline; TTLs are short (1-3 s) so the file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldconn import lease as liblease

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "modeld-v0.36.0" / "lifecycle-none.jsonl"
FACTS: dict[str, dict[str, Any]] = {}
for _line in CORPUS.read_text().splitlines():
    if _line.strip():
        _fact = json.loads(_line)
        FACTS[_fact["case"]] = _fact

RFC3339NANO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?(Z|[+-]\d{2}:\d{2})$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
S = 1_000_000_000
RECORDED_TTL_NS: int = FACTS["lease.values"]["ttl"]
LOST_PREFIX = "modeld: lost lease, shutting down: liblease: lease was taken over by another instance: "


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def read_lease(path: Path) -> liblease.LeaseRecord | None:
    try:
        return liblease.inspect(str(path))
    except liblease.LeaseError:
        return None


def lease_lapsed(path: Path) -> bool:
    rec = read_lease(path)
    return rec is not None and liblease.expired_for_liblease(rec, time.time_ns())


class Daemon:
    """One ``modeld-sim serve`` subprocess with its stdout/stderr in files."""

    def __init__(self, root: Path, logs: Path, name: str, ttl: str, *extra: str) -> None:
        self.root = root
        self.lease = root / "modeld.lease"
        self.out = logs / f"{name}.stdout"
        self.err = logs / f"{name}.stderr"
        env = dict(os.environ, TZ="UTC", PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root), "--backend", "none"]
        cmd += ["--ttl", ttl, *extra]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def owner_line(self) -> dict[str, str] | None:
        for line in self.stdout().splitlines():
            if line.startswith("modeld owner started: "):
                return dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split())
        return None

    def wait_owner(self, timeout: float = 10.0) -> liblease.LeaseRecord:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            rec = read_lease(self.lease)
            return rec is not None and rec.pid == self.pid and self.owner_line() is not None

        wait_until(ready, timeout, "the daemon to own the lease")
        rec = read_lease(self.lease)
        assert rec is not None
        return rec

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon did not exit in {timeout}s; stderr: {self.stderr()}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with_cont = True
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                with_cont = False
            if with_cont:
                self.proc.kill()
        self.proc.wait(10)


class Lab:
    """The data root under test and the daemons started on it (all killed at teardown)."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.started: list[Daemon] = []

    def start(self, ttl: str = "1s", *extra: str) -> Daemon:
        d = Daemon(self.root, self.logs, f"d{len(self.started)}", ttl, *extra)
        self.started.append(d)
        return d


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    for d in lab.started:
        d.kill()


def health(endpoint: str) -> tuple[int | None, dict[str, Any]]:
    from modeld_contract.h2client import RawGrpcClient

    host, port = endpoint.rsplit(":", 1)

    async def call() -> tuple[int | None, dict[str, Any]]:
        async with RawGrpcClient(host, int(port)) as c:
            r = await asyncio.wait_for(c.call("/contenox.transport.v1.Compute/Health", [b"{}"]), 5)
            msgs = [json.loads(m) for m in r.messages]
            return r.code, (msgs[0] if msgs else {})

    return asyncio.run(call())


def follower_fields(d: Daemon) -> dict[str, str]:
    lines = [ln for ln in d.stdout().splitlines() if ln.startswith("modeld follower: ")]
    assert len(lines) == 1, d.stdout()
    line = lines[0]
    assert line.startswith("modeld follower: reason=lease_held data_root=")
    return dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split())


# --- the cases --------------------------------------------------------------------------------------


def case_start_lease_appears(fact: dict[str, Any], lab: Lab) -> None:
    t0 = time.monotonic()
    d = lab.start("3s")
    wait_until(lambda: read_lease(d.lease) is not None, 5, "the lease to appear")
    appeared = time.monotonic() - t0
    rec = d.wait_owner()
    assert fact["ok"] is True and fact["within_s"] is True
    assert appeared < 3.0, f"lease appeared after {appeared:.2f}s"
    code, body = health(rec.meta["endpoint"])
    assert code == 0 and body == {"instance_id": rec.instance_id, "ready": True, "backend": "none"}
    assert 'modeld listener ready: requested="127.0.0.1:0" endpoint="' + rec.meta["endpoint"] in d.stderr()
    ep = rec.meta["endpoint"]
    serving = f"modeld transport serving: instance={rec.instance_id} endpoint={ep} backend=none idle_ttl=5m0s"
    assert serving in d.stdout().splitlines()


def case_lease_shape(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start("3s")
    d.wait_owner()
    doc = json.loads(d.lease.read_bytes(), object_pairs_hook=lambda kv: kv)
    assert [k for k, _ in doc] == fact["key_order"]
    obj = dict(doc)
    assert [k for k, _ in obj["meta"]] == fact["meta_keys"]
    names = {str: "str", int: "int"}
    shape = {k: ({mk: names[type(mv)] for mk, mv in v} if k == "meta" else names[type(v)]) for k, v in doc}
    assert shape == fact["shape"]


def case_lease_values(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start(_go_duration(fact["ttl"]))
    d.wait_owner()
    raw = json.loads(d.lease.read_bytes())
    assert raw["meta"]["endpoint"].rsplit(":", 1)[0] == fact["endpoint_host"]
    assert bool(raw["host"]) is fact["host"] and raw["host"] == socket.gethostname()
    assert raw["instance_id"].count("-") == fact["iid_dashes"] and len(raw["instance_id"]) == fact["iid_len"]
    assert UUID.match(raw["instance_id"])
    assert (raw["pid"] == d.pid) is fact["pid_is_daemon"]
    for key in ("acquired_at", "renewed_at"):
        assert bool(RFC3339NANO.match(raw[key])) is fact["times_rfc3339nano"], raw[key]
        assert raw[key].endswith("Z") is fact["zone_z_on_utc_machine"]
    assert raw["ttl"] == fact["ttl"]
    line = d.owner_line()
    assert line is not None and line["instance"] == raw["instance_id"] and line["pid"] == str(d.pid)
    assert line["ttl"] == "3s" and line["backend"] == "none" and line["endpoint"] == raw["meta"]["endpoint"]


def case_lease_file(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start("3s")
    d.wait_owner()
    raw = d.lease.read_bytes()
    assert raw.endswith(b"\n") is fact["ends_newline"]
    assert raw.decode().startswith(fact["raw_starts"])
    inner = raw.decode().splitlines()[1:-1]
    assert all(ln.startswith("  ") and not ln.startswith("   ") for ln in inner if not ln.startswith("    "))
    assert fact["indent"] is True and inner[0].startswith('  "instance_id": ')
    assert raw == liblease.encode_record(liblease.inspect(str(d.lease)))  # MarshalIndent byte for byte
    assert oct(d.lease.stat().st_mode & 0o777) == fact["mode"]
    assert oct(d.root.stat().st_mode & 0o777) == "0o700"


_TRANSIENT = re.compile(r"^(modeld\.lease\.acquire\.lock|\.lease-\d+\.tmp)$")


def case_data_root_entries_running(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start("600ms")
    first = d.wait_owner()
    wait_until(lambda: (read_lease(d.lease) or first).renewed_at != first.renewed_at, 5, "a renewal")
    exact = 0
    for _ in range(20):
        entries = sorted(os.listdir(d.root))
        # a renewal's lock directory and temp file exist for a millisecond; the real daemon has them too
        assert [e for e in entries if not _TRANSIENT.match(e)] == fact["entries"], entries
        exact += entries == fact["entries"]
        time.sleep(0.01)
    assert exact > 0
    assert d.alive()


def case_lease_renew_interval_s(fact: dict[str, Any], lab: Lab) -> None:
    ttl_ns = 3 * S // 2  # 1.5 s → renew every 0.5 s (recorded: 3 s → 1 s)
    d = lab.start("1.5s")
    first = d.wait_owner()
    seen = [first.renewed_at.unix_ns]

    def renewed_thrice() -> bool:
        rec = read_lease(d.lease)
        if rec is not None and rec.renewed_at.unix_ns != seen[-1]:
            assert rec.acquired_at == first.acquired_at and rec.instance_id == first.instance_id
            seen.append(rec.renewed_at.unix_ns)
        return len(seen) >= 4

    wait_until(renewed_thrice, 6, "three renewals")
    gaps = [(b - a) / S for a, b in itertools.pairwise(seen)]
    scale = ttl_ns / RECORDED_TTL_NS
    for recorded in fact["gaps"]:
        want = recorded * scale
        for g in gaps:
            assert abs(g - want) <= 0.1, f"renew gaps {gaps}, want about {want}s each"


def case_second_owner_same_root(fact: dict[str, Any], lab: Lab) -> None:
    a = lab.start("3s")
    rec = a.wait_owner()
    b = lab.start("3s")
    assert b.wait_exit(10) == fact["exit"]
    f = follower_fields(b)
    assert f["data_root"] == json.dumps(str(a.root))
    assert f["holder_instance"] == rec.instance_id and f["holder_pid"] == str(a.pid)
    assert f["holder_host"] == rec.host and f["endpoint"] == rec.meta["endpoint"] and f["backend"] == "none"
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", f["expires"])
    assert re.match(r"^-?\d+s$", f["ttl_left"]) and 0 <= int(f["ttl_left"][:-1]) <= 3
    assert "modeld owner started" not in b.stdout()
    # the first daemon is unaffected
    now = read_lease(a.lease)
    assert (a.alive() and now is not None and now.instance_id == rec.instance_id) is fact["first_still_owner"]
    code, body = health(rec.meta["endpoint"])
    assert code == 0 and body["instance_id"] == rec.instance_id


def case_sigterm(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start("3s")
    rec = d.wait_owner()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == fact["exit"]
    assert d.lease.exists() is fact["lease_left"]
    assert sorted(os.listdir(d.root)) == fact["entries"]
    assert f"modeld owner stopped: instance={rec.instance_id} backend=none" in d.stdout()


def case_sigkill(fact: dict[str, Any], lab: Lab) -> None:
    d = lab.start("3s")
    rec = d.wait_owner()
    d.signal(signal.SIGKILL)
    d.wait_exit()
    left = read_lease(d.lease)
    assert (left is not None and left.instance_id == rec.instance_id) is fact["lease_left"]


def case_start_while_dead_owner_lease_fresh(fact: dict[str, Any], lab: Lab) -> None:
    a = lab.start("3s")
    rec = a.wait_owner()
    a.signal(signal.SIGKILL)
    a.wait_exit()
    b = lab.start("3s")
    assert b.wait_exit() == fact["exit"]
    assert follower_fields(b)["holder_pid"] == str(a.pid)
    after = read_lease(a.lease)
    assert after is not None and after.instance_id == rec.instance_id


def case_start_after_lapse(fact: dict[str, Any], lab: Lab) -> None:
    a = lab.start("1s")
    rec = a.wait_owner()
    a.signal(signal.SIGKILL)
    a.wait_exit()
    wait_until(lambda: lease_lapsed(a.lease), 5, "the dead owner's lease to lapse")
    b = lab.start("1s")
    new = b.wait_owner()
    assert (new.pid == b.pid != a.pid) is fact["pid_is_new"]
    assert (new.instance_id != rec.instance_id) is fact["took_over"]
    assert b.alive()


def _stopped_owner_and_rival(lab: Lab) -> tuple[Daemon, liblease.LeaseRecord, Daemon]:
    a = lab.start("1s")
    a.wait_owner()
    a.signal(signal.SIGSTOP)
    wait_until(lambda: lease_lapsed(a.lease), 5, "the stopped owner's lease to lapse")
    b = lab.start("1s")
    return a, b.wait_owner(), b


def case_takeover_while_owner_stopped(fact: dict[str, Any], lab: Lab) -> None:
    a, new, b = _stopped_owner_and_rival(lab)
    assert (new.pid == b.pid and new.pid != a.pid) is fact["took_over"]
    a.signal(signal.SIGCONT)


def case_old_owner_after_sigcont(fact: dict[str, Any], lab: Lab) -> None:
    a, new, b = _stopped_owner_and_rival(lab)
    a.signal(signal.SIGCONT)
    assert a.wait_exit() == fact["exit"]
    want = f"{LOST_PREFIX}now held by {new.instance_id}"
    assert want in a.stderr().splitlines()
    kept = read_lease(b.lease)
    kept_by_new = kept is not None and kept.instance_id == new.instance_id and b.alive()
    assert kept_by_new is fact["lease_kept_by_new"]


def case_owner_resumed_after_lapse_no_rival(fact: dict[str, Any], lab: Lab) -> None:
    a = lab.start("1s")
    a.wait_owner()
    a.signal(signal.SIGSTOP)
    wait_until(lambda: lease_lapsed(a.lease), 5, "the stopped owner's lease to lapse")
    a.signal(signal.SIGCONT)
    assert a.wait_exit() == fact["exit"]
    want = f"{LOST_PREFIX}lease expired before renewal"
    assert want in a.stderr().splitlines()
    assert a.lease.exists() is fact["lease_left"]


def _start_over(content: bytes, fact: dict[str, Any], lab: Lab) -> None:
    lab.root.mkdir(mode=0o700)
    (lab.root / "modeld.lease").write_bytes(content)
    d = lab.start("3s")
    rec = d.wait_owner()
    assert fact["exit"] == "still running" and fact["lease_owner"] == "daemon"
    assert rec.pid == d.pid
    code, body = health(rec.meta["endpoint"])
    assert code == 0 and body["instance_id"] == rec.instance_id
    assert d.alive()


def case_start_over_corrupt_lease(fact: dict[str, Any], lab: Lab) -> None:
    _start_over(b'{"instance_id": "x", "ttl": "30s"', fact, lab)


def case_start_over_empty_lease(fact: dict[str, Any], lab: Lab) -> None:
    _start_over(b"", fact, lab)


def case_start_over_foreign_fresh_lease(fact: dict[str, Any], lab: Lab) -> None:
    root = lab.root
    root.mkdir(mode=0o700)
    meta = {"endpoint": "127.0.0.1:9", "backend": "llama"}
    foreign = liblease.acquire(str(root / "modeld.lease"), 60 * S, meta)
    before = (root / "modeld.lease").read_bytes()
    d = lab.start("3s")
    assert d.wait_exit() == fact["exit"]
    assert fact["lease_owner"] == "unchanged"
    assert (root / "modeld.lease").read_bytes() == before
    f = follower_fields(d)
    assert f["holder_instance"] == foreign.instance_id
    assert f["backend"] == "llama" and f["endpoint"] == "127.0.0.1:9"
    foreign.release()


def _go_duration(ns: int) -> str:
    from modeldconn.gotime import format_duration

    return format_duration(ns)


CASES: dict[str, Callable[[dict[str, Any], Lab], None]] = {
    "start.lease_appears": case_start_lease_appears,
    "lease.shape": case_lease_shape,
    "lease.values": case_lease_values,
    "lease.file": case_lease_file,
    "data_root.entries_running": case_data_root_entries_running,
    "lease.renew_interval_s": case_lease_renew_interval_s,
    "second_owner.same_root": case_second_owner_same_root,
    "sigterm": case_sigterm,
    "sigkill": case_sigkill,
    "start_while_dead_owner_lease_fresh": case_start_while_dead_owner_lease_fresh,
    "start_after_lapse": case_start_after_lapse,
    "takeover_while_owner_stopped": case_takeover_while_owner_stopped,
    "old_owner_after_sigcont": case_old_owner_after_sigcont,
    "owner_resumed_after_lapse_no_rival": case_owner_resumed_after_lapse_no_rival,
    "start_over_corrupt_lease": case_start_over_corrupt_lease,
    "start_over_empty_lease": case_start_over_empty_lease,
    "start_over_foreign_fresh_lease": case_start_over_foreign_fresh_lease,
}


@pytest.mark.parametrize("case", list(FACTS))
def test_lifecycle_fact(case: str, lab: Lab) -> None:
    handler = CASES.get(case)
    if handler is None:
        pytest.fail(f"unhandled lifecycle fact {case!r}: {FACTS[case]}")
    handler(FACTS[case], lab)


def test_every_handler_has_a_recorded_fact() -> None:
    assert set(CASES) <= set(FACTS), sorted(set(CASES) - set(FACTS))


# --- the command line itself (in-process) ------------------------------------------------------------


def test_lifecycle_cli_engine_for_another_backend_fails_before_the_lease(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modeld_sim.cli import main

    argv = ["serve", "--data-root", str(tmp_path / "r"), "--engine", "llama", "--backend", "openvino"]
    assert main(argv) == 1
    assert "modeld: engine 'llama' serves backend llama, not 'openvino'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "modeld.lease").exists()


def test_lifecycle_cli_bad_duration_exits_2(tmp_path: Path) -> None:
    from modeld_sim.cli import main

    assert main(["serve", "--data-root", str(tmp_path), "--ttl", "30"]) == 2


def test_lifecycle_idle_ttl_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modeld_sim.cli import resolve_idle_ttl

    monkeypatch.delenv("CONTENOX_MODELD_IDLE_TTL", raising=False)
    assert resolve_idle_ttl(str(tmp_path), None) == 300 * S
    (tmp_path / "modeld.json").write_text('{"idle":{"ttl":"2m"}}')
    assert resolve_idle_ttl(str(tmp_path), None) == 120 * S
    monkeypatch.setenv("CONTENOX_MODELD_IDLE_TTL", "90s")
    assert resolve_idle_ttl(str(tmp_path), None) == 90 * S
    assert resolve_idle_ttl(str(tmp_path), "1m") == 60 * S
    for off in ("0", "off", "NONE"):
        assert resolve_idle_ttl(str(tmp_path), off) == 0
    with pytest.raises(ValueError, match="must not be negative"):
        resolve_idle_ttl(str(tmp_path), "-1s")
    monkeypatch.delenv("CONTENOX_MODELD_IDLE_TTL")
    (tmp_path / "modeld.json").write_text("{not json")
    assert resolve_idle_ttl(str(tmp_path), None) == 300 * S


def test_lifecycle_standby_cli_takes_over_after_sigterm_of_owner(lab: Lab) -> None:
    a = lab.start("1s")
    first = a.wait_owner()
    b = lab.start("1s", "--standby")
    wait_until(lambda: "modeld follower: " in b.stdout(), 10, "the standby's follower line")
    assert b.alive()
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    new = b.wait_owner()
    assert new.pid == b.pid and new.instance_id != first.instance_id
    b.signal(signal.SIGTERM)
    assert b.wait_exit() == 0
    assert not b.lease.exists()
