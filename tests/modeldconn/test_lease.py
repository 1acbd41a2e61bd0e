"""liblease compatibility (contract lease-and-discovery.md §2-§4, edge-cases.md §A).

Every filesystem test runs twice through the ``lease_fs`` fixture: real tmp dir and pyfakefs.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldconn import gotime, lease
from modeldconn.gotime import GoTime
from modeldconn.lease import (
    AcquireTimeout,
    LeaseCorrupt,
    LeaseHeld,
    LeaseIOError,
    LeaseLost,
    LeaseNotFound,
    LeaseRecord,
)

LeaseFS = Any  # the lease_fs fixture object (tests/modeldconn/conftest.py)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "lease"
REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000
MS = 1_000_000


class FakeClock:
    def __init__(self, start: int = 1_782_064_800 * S) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _path(lfs: LeaseFS) -> str:
    return lease.lease_path(lfs.root)


def _record(**kw: Any) -> LeaseRecord:
    base: dict[str, Any] = {
        "instance_id": "3f1c",
        "pid": 4242,
        "host": "box",
        "acquired_at": GoTime(1_782_064_800 * S, 0),
        "renewed_at": GoTime(1_782_064_800 * S, 0),
        "ttl_ns": 30 * S,
        "meta": {"endpoint": "127.0.0.1:5000", "backend": "llama"},
    }
    base.update(kw)
    return LeaseRecord(**base)


# --- Go vectors --------------------------------------------------------------------------------


def _expect_record(e: dict[str, Any]) -> LeaseRecord:
    def t(ns: str, off: int) -> GoTime:
        s, n = (int(x) for x in ns.split(":"))
        return GoTime(s * S + n, off)

    return LeaseRecord(
        instance_id=e["instance_id"],
        pid=e["pid"],
        host=e["host"],
        acquired_at=t(e["acquired_unix_ns"], e["acquired_offset_s"]),
        renewed_at=t(e["renewed_unix_ns"], e["renewed_offset_s"]),
        ttl_ns=e["ttl"],
        meta=e["meta"] or {},
    )


GO_RECORDS = sorted(p.name[: -len(".json")] for p in VECTORS.glob("go_*.json") if ".expect" not in p.name)
GO_RECORDS = [n for n in GO_RECORDS if n != "go_decode_cases"]


@pytest.mark.parametrize("name", GO_RECORDS)
def test_lease_go_written_vector_decodes_and_reencodes_byte_exact(name: str) -> None:
    raw = (VECTORS / f"{name}.json").read_bytes()
    expect = json.loads((VECTORS / f"{name}.expect.json").read_text())
    rec = lease.decode_record(raw, "x")
    assert rec == _expect_record(expect)
    assert lease.encode_record(rec) == raw  # our bytes for the same record equal Go's


def test_lease_go_acquire_vector_shape() -> None:
    raw = (VECTORS / "go_acquire.json").read_bytes()
    assert raw.startswith(b'{\n  "instance_id": ') and not raw.endswith(b"\n")
    assert b"\\u003c\\u0026\\u003e" in raw and b"\\u2028" in raw and b"\\u2029" in raw
    rec = lease.decode_record(raw, "x")
    assert rec.meta["x<&>"].startswith('a\u2028b\u2029c<d>&e"f\\g\n\x01\x7f é 😀'[:12])


_GO_CASES = json.loads((VECTORS / "go_decode_cases.json").read_text())


@pytest.mark.parametrize("case", _GO_CASES, ids=[f"lease_decode_{i}" for i in range(len(_GO_CASES))])
def test_lease_decode_matches_go_unmarshal(case: dict[str, Any]) -> None:
    data = base64.b64decode(case["input_b64"])
    e = case["expect"]
    if e["ok"]:
        assert lease.decode_record(data, "/p") == _expect_record(e)
    else:
        with pytest.raises(LeaseCorrupt) as ei:
            lease.decode_record(data, "/p")
        assert str(ei.value).startswith('liblease: corrupt lease "/p": ')
        go_reason = re.sub(r'^liblease: corrupt lease "[^"]*": ', "", e["err"])
        assert ei.value.reason == go_reason


def test_lease_decode_huge_is_corrupt() -> None:
    data = b'{"instance_id":"' + b"a" * lease.MAX_LEASE_BYTES + b'"}'
    with pytest.raises(LeaseCorrupt, match="larger than"):
        lease.decode_record(data, "/p")


def test_lease_decode_deep_nesting_unknown_key_is_fine() -> None:
    data = b'{"x":' + b"[" * 9999 + b"]" * 9999 + b', "ttl": 7}'
    assert lease.decode_record(data).ttl_ns == 7


# --- hypothesis properties -----------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_times = st.builds(
    GoTime,
    st.integers((-62_135_596_800 + 86_400) * S, (253_402_300_799 - 86_400) * S),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: m * 60),
)
_records = st.builds(
    LeaseRecord,
    instance_id=_text,
    pid=st.integers(-(2**63), 2**63 - 1),
    host=_text,
    acquired_at=_times,
    renewed_at=_times,
    ttl_ns=st.integers(-(2**63), 2**63 - 1),
    meta=st.dictionaries(_text, _text, max_size=5),
)


@given(_records)
def test_lease_encode_decode_round_trip(rec: LeaseRecord) -> None:
    raw = lease.encode_record(rec)
    assert lease.decode_record(raw, "p") == rec
    doc = json.loads(raw)  # an independent JSON reader agrees on content and key order
    keys = ["instance_id", "pid", "host", "acquired_at", "renewed_at", "ttl"] + (["meta"] if rec.meta else [])
    assert list(doc) == keys
    assert doc["instance_id"] == rec.instance_id and doc["pid"] == rec.pid and doc["ttl"] == rec.ttl_ns
    assert doc.get("meta", {}) == dict(rec.meta)
    assert list(doc.get("meta", {})) == sorted(rec.meta, key=lambda k: k.encode())
    assert not raw.endswith(b"\n")
    for bad in (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode()):
        assert bad not in raw


@given(
    sec=st.integers(0, 4_000_000_000),
    frac=st.integers(0, 999_999_999),
    off_min=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    ttl=st.integers(1, 10**15),
    delta=st.one_of(st.integers(-3, 3), st.integers(-(10**12), 10**12)),
)
def test_lease_freshness_boundaries_exact(sec: int, frac: int, off_min: int, ttl: int, delta: int) -> None:
    # written as text (so the record crosses the RFC3339Nano form) and read back
    renewed_unix = sec * S + frac
    text = gotime.format_rfc3339nano(GoTime(renewed_unix, off_min * 60))
    raw = json.dumps({"instance_id": "i", "renewed_at": text, "ttl": ttl}).encode()
    rec = lease.decode_record(raw, "p")
    expiry = renewed_unix + ttl  # the oracle: integer sum of what was written
    now = expiry + delta
    assert lease.expired_for_liblease(rec, now) is (now > expiry)  # held at equality
    assert lease.live_for_probe(rec, now) is (now < expiry)  # stale at equality
    if delta == 0:
        assert not lease.expired_for_liblease(rec, now) and not lease.live_for_probe(rec, now)


# --- acquire / renew / release / inspect (edge-cases.md §A) --------------------------------------


def test_lease_acquire_free_then_held(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S, {"endpoint": "127.0.0.1:1", "backend": "none"}, now=clock)
    assert h.instance_id and re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", h.instance_id
    )
    with pytest.raises(LeaseHeld) as ei:
        lease.acquire(p, 30 * S, now=clock)
    assert str(ei.value).startswith(
        f"liblease: lease is held by another instance: instance {h.instance_id} (pid {os.getpid()}) until "
    )
    assert str(ei.value).endswith(gotime.format_rfc3339(h.record.expires_at))
    # the file: Go form, mode 0600, no temp files or lock left behind
    raw = Path(p).read_bytes()
    assert raw == lease.encode_record(h.record)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert sorted(os.listdir(lease_fs.root)) == ["modeld.lease"]
    assert lease.inspect(p) == h.record
    assert h.record.acquired_at == h.record.renewed_at
    assert h.record.renewed_at.unix_ns == clock.t


def test_lease_held_at_exact_expiry_and_taken_one_ns_later(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    first = lease.acquire(p, 40 * MS, now=clock)
    clock.advance(40 * MS)  # now == expiry: liblease still holds it
    with pytest.raises(LeaseHeld):
        lease.acquire(p, 40 * MS, now=clock)
    clock.advance(1)
    second = lease.acquire(p, 40 * MS, now=clock)
    assert second.instance_id != first.instance_id


def test_lease_takeover_after_expiry_and_old_renew_is_lost(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    old = lease.acquire(p, 40 * MS, now=clock)
    clock.advance(70 * MS)
    new = lease.acquire(p, 40 * MS, now=clock)
    assert new.instance_id != old.instance_id
    with pytest.raises(LeaseLost, match=f"now held by {new.instance_id}"):
        old.renew()
    assert lease.inspect(p).instance_id == new.instance_id


def test_lease_takeover_after_real_expiry(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    old = lease.acquire(p, 40 * MS)
    # wait for the real clock to pass the expiry (edge-cases A: 40 ms TTL), polling liblease's own view
    deadline = time.monotonic() + 5
    while not lease.expired_for_liblease(lease.inspect(p), time.time_ns()):
        assert time.monotonic() < deadline
        time.sleep(0.002)
    new = lease.acquire(p, 40 * MS)
    assert new.instance_id != old.instance_id
    with pytest.raises(LeaseLost):
        old.renew()


def test_lease_renew_after_local_expiry_is_lost(lease_fs: LeaseFS, clock: FakeClock) -> None:
    h = lease.acquire(_path(lease_fs), 1, now=clock)
    clock.advance(2)
    with pytest.raises(LeaseLost, match="lease expired before renewal"):
        h.renew()


def test_lease_renew_keeps_ownership(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 60 * MS, {"endpoint": "e"}, now=clock)
    acquired = h.record.acquired_at
    for _ in range(6):  # several original TTLs
        clock.advance(30 * MS)
        rec = h.renew()
        assert not h.expired()
        assert rec.renewed_at.unix_ns == clock.t and rec.acquired_at == acquired
        assert Path(p).read_bytes() == lease.encode_record(rec)
        with pytest.raises(LeaseHeld):
            lease.acquire(p, 60 * MS, now=clock)
    assert lease.inspect(p).meta == {"endpoint": "e"}


def test_lease_renew_read_errors_are_not_lost(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S, now=clock)
    os.unlink(p)
    with pytest.raises(LeaseNotFound) as ei:
        h.renew()
    assert not isinstance(ei.value, LeaseLost) and isinstance(ei.value, FileNotFoundError)
    Path(p).write_bytes(b"{")
    with pytest.raises(LeaseCorrupt):
        h.renew()


def test_lease_release_frees_it(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S, now=clock)
    h.release()
    with pytest.raises(LeaseNotFound):
        lease.inspect(p)
    with pytest.raises(FileNotFoundError):
        lease.inspect(p)
    h.release()  # idempotent
    h2 = lease.acquire(p, 30 * S, now=clock)
    assert h2.instance_id != h.instance_id


def test_lease_release_after_takeover_is_noop(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    old = lease.acquire(p, 40 * MS, now=clock)
    clock.advance(70 * MS)
    new = lease.acquire(p, 40 * MS, now=clock)
    before = Path(p).read_bytes()
    old.release()
    assert Path(p).read_bytes() == before
    assert lease.inspect(p).instance_id == new.instance_id


def test_lease_release_of_corrupt_file_errors(lease_fs: LeaseFS, clock: FakeClock) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S, now=clock)
    Path(p).write_bytes(b"")
    with pytest.raises(LeaseCorrupt):
        h.release()


def _hold_lock(p: str) -> str:
    lock = p + ".acquire.lock"
    os.mkdir(lock, 0o700)
    return lock


def test_lease_acquire_honours_deadline(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    _hold_lock(p)
    t0 = time.monotonic()
    with pytest.raises(AcquireTimeout) as ei:
        lease.acquire(p, 30 * S, timeout=0.05)
    assert time.monotonic() - t0 < 2
    assert isinstance(ei.value, TimeoutError)
    assert "liblease: timed out waiting for the acquisition lock" in str(ei.value)


def test_lease_acquire_rejects_cancelled_context(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    with pytest.raises(AcquireTimeout):
        lease.acquire(p, 30 * S, timeout=0)
    assert os.listdir(lease_fs.root) == []  # no lease, no lock, no temp file


def test_lease_renew_timeout_is_not_lost(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S)
    _hold_lock(p)
    with pytest.raises(AcquireTimeout) as ei:
        h.renew(timeout=0.05)
    assert not isinstance(ei.value, LeaseLost)


def test_lease_release_honours_deadline(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    h = lease.acquire(p, 30 * S)
    _hold_lock(p)
    with pytest.raises(AcquireTimeout):
        h.release(timeout=0.05)
    assert os.path.exists(p)


def test_lease_acquire_reclaims_stale_acquisition_lock(lease_fs: LeaseFS) -> None:
    p = _path(lease_fs)
    _hold_lock(p)
    assert lease.stale_after_ns(150 * MS) == 150 * MS
    t0 = time.monotonic()
    h = lease.acquire(p, 150 * MS, timeout=5)
    assert 0.1 < time.monotonic() - t0 < 5
    assert not os.path.exists(p + ".acquire.lock")
    assert h.instance_id


def test_lease_stale_after_window() -> None:
    assert lease.stale_after_ns(30 * S) == 5 * S
    assert lease.stale_after_ns(1) == 100 * MS
    assert lease.stale_after_ns(150 * MS) == 150 * MS


def test_lease_ttl_must_be_positive(lease_fs: LeaseFS) -> None:
    for ttl in (0, -1):
        with pytest.raises(ValueError, match="liblease: ttl must be positive"):
            lease.acquire(_path(lease_fs), ttl)
    assert os.listdir(lease_fs.root) == []


def test_lease_handle_is_safe_for_concurrent_use(tmp_path: Path) -> None:
    # threads on the real filesystem only (pyfakefs makes no thread-safety promise)
    p = lease.lease_path(tmp_path)
    h = lease.acquire(p, 5000 * MS)  # long enough that a slow machine never loses it mid-test
    stop = threading.Event()
    errors: list[BaseException] = []

    renewed = threading.Semaphore(0)

    def renewer() -> None:
        while not stop.is_set():
            try:
                h.renew()
                renewed.release()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            time.sleep(0.002)

    def reader() -> None:
        while not stop.is_set():
            _ = (h.expired(), h.record, h.instance_id)
            time.sleep(0)  # yield the GIL: the point is interleaving, not starving the renewer

    threads = [
        threading.Thread(target=renewer),
        threading.Thread(target=reader),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(5):  # let the renewer and the readers race through a few renewals
            assert renewed.acquire(timeout=10), errors
        h.release()
    finally:
        stop.set()  # never leave spinning threads behind, whatever failed
        for t in threads:
            t.join()
    assert not os.path.exists(p)
    assert all(isinstance(e, LeaseNotFound) for e in errors)  # renew after release: read error


# --- bad lease files ------------------------------------------------------------------------------

BAD_FILES: dict[str, bytes] = {
    "corrupt": b"not json at all",
    "truncated": lease.encode_record(_record())[:57],
    "empty": b"",
    "wrong_typed": b'{"instance_id": "x", "ttl": "30s"}',
    "array": b"[]",
    "trailing": lease.encode_record(_record()) + b"}",
}


def _make_bad(lfs: LeaseFS, kind: str) -> str:
    p = _path(lfs)
    if kind in BAD_FILES:
        lfs.write("modeld.lease", BAD_FILES[kind])
    elif kind == "huge":
        lfs.write("modeld.lease", b'{"instance_id": "' + b"x" * (lease.MAX_LEASE_BYTES + 10) + b'"}')
    elif kind == "directory":
        os.mkdir(p)
    elif kind == "unreadable":
        lfs.write("modeld.lease", lease.encode_record(_record()))
    return p


ALL_BAD = [*BAD_FILES, "huge", "directory"]


@pytest.mark.parametrize("kind", ALL_BAD)
def test_lease_inspect_bad_file_raises_typed(lease_fs: LeaseFS, kind: str) -> None:
    p = _make_bad(lease_fs, kind)
    with pytest.raises((LeaseCorrupt, LeaseIOError)) as ei:
        lease.inspect(p)
    if kind == "directory":
        assert isinstance(ei.value, LeaseIOError)
    else:
        assert isinstance(ei.value, LeaseCorrupt)
        assert str(ei.value).startswith(f'liblease: corrupt lease "{p}": ')


@pytest.mark.parametrize("kind", [k for k in ALL_BAD if k != "directory"])
def test_lease_acquire_takes_over_bad_file(lease_fs: LeaseFS, kind: str, clock: FakeClock) -> None:
    p = _make_bad(lease_fs, kind)
    h = lease.acquire(p, 30 * S, now=clock)
    assert lease.inspect(p) == h.record
    assert sorted(os.listdir(lease_fs.root)) == ["modeld.lease"]


def test_lease_acquire_over_directory_errors_cleanly(lease_fs: LeaseFS) -> None:
    p = _make_bad(lease_fs, "directory")
    with pytest.raises(LeaseIOError):
        lease.acquire(p, 30 * S)
    assert sorted(os.listdir(lease_fs.root)) == ["modeld.lease"]  # no temp file, no lock left
    assert os.path.isdir(p)


@pytest.fixture
def unreadable_lease(lease_fs: LeaseFS) -> Iterator[tuple[LeaseFS, str]]:
    if not lease_fs.is_fake and os.geteuid() == 0:
        pytest.skip("root ignores file modes on the real fs; pyfakefs models it (set_uid) in the fake run")
    lease_fs.become_non_root()
    p = _make_bad(lease_fs, "unreadable")
    os.chmod(p, 0)
    yield lease_fs, p


def test_lease_unreadable_file(unreadable_lease: tuple[LeaseFS, str], clock: FakeClock) -> None:
    lfs, p = unreadable_lease
    with pytest.raises(LeaseIOError) as ei:
        lease.inspect(p)
    assert isinstance(ei.value.os_error, PermissionError)
    if lfs.is_fake:
        # pyfakefs refuses to rename over a file the user cannot write (real POSIX only needs the
        # directory writable), so the takeover is checked by the simulated test below instead.
        return
    h = lease.acquire(p, 30 * S, now=clock)
    assert h.instance_id


def test_lease_acquire_takes_over_unreadable_file_simulated(
    lease_fs: LeaseFS, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs as root here, where chmod 000 does not stop reads: the read error is injected instead.
    p = lease_fs.write("modeld.lease", lease.encode_record(_record(renewed_at=GoTime(clock.t, 0))))
    real_read = lease._read_bounded
    calls = {"n": 0}

    def deny_first(path: str) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1:
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    monkeypatch.setattr(lease, "_read_bounded", deny_first)
    h = lease.acquire(p, 30 * S, now=clock)  # unreadable → treated as stale → takeover
    monkeypatch.setattr(lease, "_read_bounded", real_read)
    assert lease.inspect(p).instance_id == h.instance_id


# --- single winner across processes ---------------------------------------------------------------

WORKERS = 8
ROUNDS = 100


def _contender(paths: list[str], barrier: Any, results: Any) -> None:
    for i, p in enumerate(paths):
        barrier.wait(timeout=30)
        try:
            lease.acquire(p, 30 * S)
            out = "won"
        except LeaseHeld:
            out = "held"
        except BaseException as exc:
            out = f"other:{type(exc).__name__}:{exc}"
        results.put((i, out))


@pytest.mark.parametrize("scenario", ["free", "expired"])
def test_lease_single_winner_across_processes(tmp_path: Path, scenario: str) -> None:
    ctx = multiprocessing.get_context("fork")
    paths = []
    expired = lease.encode_record(_record(renewed_at=GoTime(0, 0), ttl_ns=1))
    for r in range(ROUNDS):
        d = tmp_path / f"r{r}"
        d.mkdir()
        p = lease.lease_path(d)
        if scenario == "expired":
            Path(p).write_bytes(expired)
        paths.append(p)
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(paths, barrier, results)) for _ in range(WORKERS)]
    for pr in procs:
        pr.start()
    outcomes: dict[int, list[str]] = {r: [] for r in range(ROUNDS)}
    try:
        for _ in range(ROUNDS * WORKERS):
            r, out = results.get(timeout=60)
            outcomes[r].append(out)
    finally:
        for pr in procs:
            pr.join(timeout=30)
    for r, outs in outcomes.items():
        assert sorted(outs) == ["held"] * (WORKERS - 1) + ["won"], (r, outs)
        assert sorted(os.listdir(os.path.dirname(paths[r]))) == ["modeld.lease"]


# --- CLI --------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "modeldconn.lease", *args], capture_output=True, text=True, env=env, cwd=REPO
    )


def test_lease_cli_inspect_live(tmp_path: Path) -> None:
    h = lease.acquire(lease.lease_path(tmp_path), 30 * S, {"endpoint": "127.0.0.1:5000", "backend": "llama"})
    r = _cli("inspect", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert h.instance_id in r.stdout and "liblease:     held" in r.stdout and "probe:        live" in r.stdout
    assert "meta.endpoint" in r.stdout and "ttl:          30s" in r.stdout
    r = _cli("inspect", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["instance_id"] == h.instance_id and doc["ttl"] == 30 * S
    assert doc["expired"] is False and doc["probe_live"] is True
    assert doc["expires_at"] == gotime.format_rfc3339nano(h.record.expires_at)


def test_lease_cli_inspect_expired(tmp_path: Path) -> None:
    Path(lease.lease_path(tmp_path)).write_bytes(lease.encode_record(_record(renewed_at=GoTime(0, 0))))
    r = _cli("inspect", str(tmp_path), "--json")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["expired"] is True and doc["probe_live"] is False


def test_lease_cli_inspect_missing(tmp_path: Path) -> None:
    r = _cli("inspect", str(tmp_path))
    assert r.returncode == 1
    assert "no lease" in r.stderr


def test_lease_cli_inspect_corrupt(tmp_path: Path) -> None:
    Path(lease.lease_path(tmp_path)).write_bytes(b'{"ttl":3e10}')
    r = _cli("inspect", str(tmp_path))
    assert r.returncode == 1
    assert "liblease: corrupt lease" in r.stderr and "3e10" in r.stderr


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(rec=_records)
def test_lease_written_record_is_read_back_on_both_filesystems(lease_fs: LeaseFS, rec: LeaseRecord) -> None:
    p = lease_fs.write("modeld.lease", lease.encode_record(rec))
    assert lease.inspect(p) == rec
