"""modeld discovery (contract lease-and-discovery.md §1.2, §7; edge-cases.md §B).

Every filesystem test runs on the real filesystem and on pyfakefs (``lease_fs``); Health is a fake.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from modeldconn import lease, probe
from modeldconn.gotime import GoTime
from modeldconn.lease import LeaseRecord
from modeldconn.probe import HealthAnswer, ProbeState, ProbeStatus

LeaseFS = Any  # the lease_fs fixture object (tests/modeldconn/conftest.py)
S = 1_000_000_000
NOW = 1_782_064_800 * S
IID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(probe.BINARY_ENV, raising=False)
    monkeypatch.delenv(probe.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent-probe-path")


def _write_lease(
    lfs: LeaseFS,
    *,
    endpoint: str = "127.0.0.1:5000",
    renewed: int = NOW,
    ttl: int = 30 * S,
    instance: str = IID,
    backend: str = "llama",
) -> LeaseRecord:
    meta = {k: v for k, v in {"endpoint": endpoint, "backend": backend}.items() if v}
    rec = LeaseRecord(
        instance_id=instance,
        pid=1,
        host="h",
        acquired_at=GoTime(renewed, 0),
        renewed_at=GoTime(renewed, 0),
        ttl_ns=ttl,
        meta=meta,
    )
    lfs.write("modeld.lease", lease.encode_record(rec))
    return rec


def _bin(path: str) -> probe.Locator:
    return lambda root: path


def _clock(t: int) -> lease.Clock:
    return lambda: t


# --- states and errors ------------------------------------------------------------------------


def test_probe_state_strings_and_errors() -> None:
    assert [s.value for s in ProbeState] == [
        "not-installed",
        "not-running",
        "stale",
        "running",
        "unreachable",
    ]
    msgs = {
        ProbeState.NOT_INSTALLED: ("modeld is not installed", probe.NotInstalled),
        ProbeState.NOT_RUNNING: ("modeld is not running", probe.NotRunning),
        ProbeState.STALE: ("modeld owner is stale (the daemon may have crashed)", probe.Stale),
        ProbeState.UNREACHABLE: (
            "modeld holds a lease but does not answer a health probe",
            probe.Unreachable,
        ),
    }
    for state, (text, cls) in msgs.items():
        err = ProbeStatus(state).err()
        assert isinstance(err, cls) and isinstance(err, probe.ProbeError)
        assert str(err) == text and err.state is state
    assert ProbeStatus(ProbeState.RUNNING).err() is None


# --- detect (edge-cases.md §B) ----------------------------------------------------------------------


def test_probe_detect_not_installed(lease_fs: LeaseFS) -> None:
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin(""))
    assert st.state is ProbeState.NOT_INSTALLED and isinstance(st.err(), probe.NotInstalled)


def test_probe_detect_not_running(lease_fs: LeaseFS) -> None:
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin("/opt/modeld"))
    assert st == ProbeStatus(ProbeState.NOT_RUNNING, binary="/opt/modeld", reason=st.reason)
    assert isinstance(st.err(), probe.NotRunning)


def test_probe_detect_stale_from_one_hour_later(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    st = probe.detect(lease_fs.root, now=_clock(NOW + 3600 * S), locate=_bin("/opt/modeld"))
    assert st.state is ProbeState.STALE and st.instance == IID and st.binary == "/opt/modeld"
    assert st.endpoint == "" and isinstance(st.err(), probe.Stale)


def test_probe_detect_stale_with_no_binary_is_not_installed(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    st = probe.detect(lease_fs.root, now=_clock(NOW + 3600 * S), locate=_bin(""))
    assert st.state is ProbeState.NOT_INSTALLED and st.instance == ""


def test_probe_detect_running(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    st = probe.detect(lease_fs.root, now=_clock(NOW + S), locate=_bin("/opt/modeld"))
    assert (st.state, st.endpoint, st.instance, st.backend, st.binary) == (
        ProbeState.RUNNING,
        "127.0.0.1:5000",
        IID,
        "llama",
        "/opt/modeld",
    )
    assert st.err() is None


def test_probe_detect_running_precedes_binary(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin(""))
    assert st.state is ProbeState.RUNNING and st.binary == ""


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_probe_detect_boundary_is_stale_at_expiry(lease_fs: LeaseFS, delta: int) -> None:
    _write_lease(lease_fs, ttl=30 * S)
    st = probe.detect(lease_fs.root, now=_clock(NOW + 30 * S + delta), locate=_bin("/b"))
    assert st.state is (ProbeState.RUNNING if delta < 0 else ProbeState.STALE)


def test_probe_detect_passes_data_root_to_locator(lease_fs: LeaseFS) -> None:
    seen: list[str] = []
    probe.detect(lease_fs.root, now=_clock(NOW), locate=lambda r: seen.append(r) or "")
    assert seen == [lease_fs.root]


def test_probe_detect_default_data_root(lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(probe.DATA_ROOT_ENV, lease_fs.root)
    _write_lease(lease_fs)
    assert probe.detect(now=_clock(NOW), locate=_bin("")).state is ProbeState.RUNNING


def test_probe_default_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(probe.DATA_ROOT_ENV, "/x/root")
    assert probe.default_data_root() == "/x/root"
    monkeypatch.setenv(probe.DATA_ROOT_ENV, "")
    monkeypatch.setenv("HOME", "/home/u")
    assert probe.default_data_root() == "/home/u/.contenox"
    monkeypatch.delenv("HOME")
    assert probe.default_data_root() == ".contenox"


BAD = {
    "corrupt": b"{{{",
    "truncated": b'{\n  "instance_id": "abc",\n  "pid": 1',
    "empty": b"",
    "wrong_typed": b'{"instance_id": 7, "ttl": 3e10}',
    "bad_time": b'{"renewed_at": "2026-06-21 18:00:00Z", "ttl": 30000000000}',
}


def _bad(lfs: LeaseFS, kind: str) -> None:
    p = lease.lease_path(lfs.root)
    if kind in BAD:
        lfs.write("modeld.lease", BAD[kind])
    elif kind == "huge":
        lfs.write("modeld.lease", b'{"ttl": 1, "x": "' + b"y" * (lease.MAX_LEASE_BYTES + 1) + b'"}')
    elif kind == "directory":
        os.mkdir(p)
    elif kind == "unreadable":
        if not lfs.is_fake and os.geteuid() == 0:
            pytest.skip("root ignores file modes on the real fs; the pyfakefs run covers it (set_uid)")
        lfs.become_non_root()
        lfs.write("modeld.lease", b'{"ttl": 1}')
        os.chmod(p, 0)


BAD_KINDS = [*BAD, "huge", "directory", "unreadable"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_probe_detect_bad_lease_never_raises(lease_fs: LeaseFS, kind: str) -> None:
    _bad(lease_fs, kind)
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin("/opt/modeld"))
    assert st.state is ProbeState.NOT_RUNNING and st.binary == "/opt/modeld"
    assert st.reason  # the diagnosis is kept
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin(""))
    assert st.state is ProbeState.NOT_INSTALLED and st.reason


def test_probe_detect_null_lease_is_an_expired_zero_record(lease_fs: LeaseFS) -> None:
    # Go json.Unmarshal("null") into the record succeeds with a zero record: a lease, expired.
    lease_fs.write("modeld.lease", b"null")
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin("/opt/modeld"))
    assert st.state is ProbeState.STALE and st.instance == ""


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_probe_bad_lease_never_raises_from_probe(lease_fs: LeaseFS, kind: str) -> None:
    _bad(lease_fs, kind)

    async def health(endpoint: str, timeout: float) -> HealthAnswer:  # pragma: no cover
        raise AssertionError("must not dial")

    st = asyncio.run(probe.probe(lease_fs.root, health=health, now=_clock(NOW), locate=_bin("/b")))
    assert st.state is ProbeState.NOT_RUNNING


# --- binary location ---------------------------------------------------------------------------------


def _exe(path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path


def test_probe_locate_override_missing_ignores_path(
    lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = os.path.join(lease_fs.root, "bin")
    _exe(os.path.join(bindir, "modeld"))
    monkeypatch.setenv("PATH", bindir)
    monkeypatch.setenv(probe.BINARY_ENV, os.path.join(lease_fs.root, "missing"))
    assert probe.locate_binary(lease_fs.root, run_version=lambda p: ("v1.0.0", 1)) == ""
    st = probe.detect(lease_fs.root, now=_clock(NOW))
    assert st.state is ProbeState.NOT_INSTALLED


def test_probe_locate_override_directory_is_not_found(
    lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.BINARY_ENV, lease_fs.root)
    assert probe.locate_binary(lease_fs.root) == ""


def test_probe_locate_override_wins(lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = os.path.join(lease_fs.root, "bin")
    _exe(os.path.join(bindir, "modeld"))
    override = _exe(os.path.join(lease_fs.root, "ext", "modeld"))
    monkeypatch.setenv("PATH", bindir)
    monkeypatch.setenv(probe.BINARY_ENV, override)
    assert probe.locate_binary(lease_fs.root) == override


def test_probe_locate_path(lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = os.path.join(lease_fs.root, "bin")
    found = _exe(os.path.join(bindir, "modeld"))
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.join(lease_fs.root, "none"), bindir]))
    assert probe.locate_binary(lease_fs.root, run_version=lambda p: None) == found
    st = probe.detect(lease_fs.root, now=_clock(NOW))
    assert st.state is ProbeState.NOT_RUNNING and st.binary == found


def _managed(root: str, version: str) -> str:
    plat = f"{probe._goos()}-{probe._goarch()}"
    return _exe(os.path.join(root, "modeld", version, plat, "modeld"))


def test_probe_locate_managed_install_preferred_over_path(
    lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = os.path.join(lease_fs.root, "bin")
    _exe(os.path.join(bindir, "modeld"))
    monkeypatch.setenv("PATH", bindir)
    old = _managed(lease_fs.root, "v0.9.0")
    new = _managed(lease_fs.root, "v0.10.0")
    _managed(lease_fs.root, ".staging")
    incompatible = _managed(lease_fs.root, "v9.0.0")
    versions = {old: ("v0.9.0", 1), new: ("v0.10.0", 1), incompatible: ("v9.0.0", 2)}
    asked: list[str] = []

    def run_version(p: str) -> tuple[str, int] | None:
        asked.append(p)
        return versions.get(p)

    assert probe.locate_binary(lease_fs.root, run_version=run_version) == new
    assert all(".staging" not in a for a in asked)
    assert all(a.startswith(os.path.join(lease_fs.root, "modeld")) for a in asked)


def test_probe_locate_managed_current_pointer_first(lease_fs: LeaseFS) -> None:
    a = _managed(lease_fs.root, "v1.0.0")
    b = _managed(lease_fs.root, "v2.0.0")
    with open(os.path.join(lease_fs.root, "modeld", "current"), "w") as f:
        f.write(os.path.dirname(a) + "\n")
    got = probe.locate_binary(lease_fs.root, run_version=lambda p: ("v1.0.0", 1) if p == a else ("v2.0.0", 1))
    assert got == a
    # an incompatible current pointer falls back to the scan (highest version)
    got = probe.locate_binary(lease_fs.root, run_version=lambda p: None if p == a else ("v2.0.0", 1))
    assert got == b


def test_probe_locate_managed_missing_falls_back_to_path(
    lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = os.path.join(lease_fs.root, "bin")
    found = _exe(os.path.join(bindir, "modeld"))
    monkeypatch.setenv("PATH", bindir)
    _managed(lease_fs.root, "v1.0.0")
    assert probe.locate_binary(lease_fs.root, run_version=lambda p: None) == found


def test_probe_locate_relative_path_entry_is_not_used(
    lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    _exe(os.path.join(lease_fs.root, "modeld"))
    monkeypatch.chdir(lease_fs.root)
    monkeypatch.setenv("PATH", "")  # "" means "." and Go's LookPath refuses a relative result
    assert probe.locate_binary(lease_fs.root, run_version=lambda p: None) == ""


def test_probe_compare_versions() -> None:
    cv = probe.compare_versions
    assert cv("v1.10.0", "v1.9.9") == 1
    assert cv("1.0.0", "v1.0") == 0
    assert cv("v1.0.0-rc1", "v1.0.0") == -1
    assert cv("v1.0.0+build", "v1.0.0") == 0
    assert cv("dev", "v1.0.0") == -1  # not parseable: plain string comparison


def test_probe_run_version_real_subprocess(tmp_path: Any) -> None:
    script = tmp_path / "modeld"
    script.write_text('#!/bin/sh\necho \'{"version": "v0.36.0", "protocol": 1, "backends": ["none"]}\'\n')
    script.chmod(0o755)
    assert probe._run_version(str(script)) == ("v0.36.0", 1)
    script.write_text('#!/bin/sh\necho \'{"version": "v0.1.0"}\'\n')
    assert probe._run_version(str(script)) == ("v0.1.0", 1)  # absent protocol means 1
    script.write_text("#!/bin/sh\nexit 3\n")
    assert probe._run_version(str(script)) is None


# --- probe with a fake Health -----------------------------------------------------------------------


def _health(
    answer: HealthAnswer | BaseException, calls: list[tuple[str, float]] | None = None
) -> probe.HealthCheck:
    async def health(endpoint: str, timeout: float) -> HealthAnswer:
        if calls is not None:
            calls.append((endpoint, timeout))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return health


def _probe(lfs: LeaseFS, health: probe.HealthCheck, **kw: Any) -> ProbeStatus:
    return asyncio.run(probe.probe(lfs.root, health=health, now=_clock(NOW), locate=_bin("/b"), **kw))


def test_probe_healthy_owner_is_running(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    calls: list[tuple[str, float]] = []
    st = _probe(lease_fs, _health(HealthAnswer(IID, True, "llama"), calls), timeout=2.0)
    assert st.state is ProbeState.RUNNING and st.backend == "llama" and st.err() is None
    assert calls == [("127.0.0.1:5000", 2.0)]


def test_probe_dead_endpoint_is_unreachable(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs, endpoint="127.0.0.1:1")
    st = _probe(lease_fs, _health(ConnectionRefusedError("connection refused")))
    assert st.state is ProbeState.UNREACHABLE and isinstance(st.err(), probe.Unreachable)
    assert st.endpoint == "127.0.0.1:1" and st.instance == IID and "refused" in st.reason


def test_probe_instance_mismatch_is_unreachable(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    st = _probe(lease_fs, _health(HealthAnswer("someone-else", True, "llama")))
    assert st.state is ProbeState.UNREACHABLE and "mismatch" in st.reason


def test_probe_empty_lease_instance_accepts_any_server(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs, instance="")
    assert _probe(lease_fs, _health(HealthAnswer("x", True))).state is ProbeState.RUNNING


def test_probe_not_ready_is_unreachable(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    assert _probe(lease_fs, _health(HealthAnswer(IID, False))).state is ProbeState.UNREACHABLE


def test_probe_empty_endpoint_is_unreachable_without_dialing(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs, endpoint="")
    calls: list[tuple[str, float]] = []
    st = _probe(lease_fs, _health(HealthAnswer(IID, True), calls))
    assert st.state is ProbeState.UNREACHABLE and calls == []


def test_probe_wedged_health_times_out_as_unreachable(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)

    async def wedged(endpoint: str, timeout: float) -> HealthAnswer:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")  # pragma: no cover

    st = _probe(lease_fs, wedged, timeout=0.05)
    assert st.state is ProbeState.UNREACHABLE


def test_probe_only_checks_health_when_running(lease_fs: LeaseFS) -> None:
    _write_lease(lease_fs)
    calls: list[tuple[str, float]] = []
    st = asyncio.run(
        probe.probe(
            lease_fs.root,
            health=_health(HealthAnswer(IID, True), calls),
            now=_clock(NOW + 3600 * S),
            locate=_bin("/b"),
        )
    )
    assert st.state is ProbeState.STALE and calls == []


def test_probe_detect_stays_offline(lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_lease(lease_fs, endpoint="127.0.0.1:1")

    async def boom(endpoint: str, timeout: float) -> HealthAnswer:  # pragma: no cover
        raise AssertionError("detect must not dial")

    monkeypatch.setattr(probe, "default_health", boom)
    st = probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin(""))
    assert st.state is ProbeState.RUNNING


def test_probe_default_health_hook_is_late_bound(lease_fs: LeaseFS, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_lease(lease_fs)

    async def refuse(endpoint: str, timeout: float) -> HealthAnswer:
        raise ConnectionRefusedError(endpoint)

    monkeypatch.setattr(probe, "default_health", refuse)
    st = asyncio.run(probe.probe(lease_fs.root, now=_clock(NOW), locate=_bin("/b")))
    assert st.state is ProbeState.UNREACHABLE and "ConnectionRefusedError" in st.reason
    monkeypatch.setattr(probe, "default_health", _health(HealthAnswer(IID, True, "llama")))
    st = asyncio.run(probe.probe(lease_fs.root, now=_clock(NOW), locate=_bin("/b")))
    assert st.state is ProbeState.RUNNING


def test_probe_against_a_lease_acquired_by_liblease(lease_fs: LeaseFS) -> None:
    h = lease.acquire(
        lease.lease_path(lease_fs.root),
        30 * S,
        {"endpoint": "127.0.0.1:7", "backend": "none"},
        now=_clock(NOW),
    )
    st = probe.detect(lease_fs.root, now=_clock(NOW + 30 * S - 1), locate=_bin(""))
    assert (st.state, st.instance, st.endpoint, st.backend) == (
        ProbeState.RUNNING,
        h.instance_id,
        "127.0.0.1:7",
        "none",
    )
    h.release()
    assert probe.detect(lease_fs.root, now=_clock(NOW), locate=_bin("/b")).state is ProbeState.NOT_RUNNING
