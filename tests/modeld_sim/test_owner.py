"""modeld_sim.owner: the pure renew helpers (edge-cases.md §F owner lines) and the election/renew/
loss/release behaviour on a real temporary data root."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modeld_sim import owner as owner_mod
from modeld_sim.owner import (
    MIN_RENEW_RETRY_NS,
    JoinResult,
    Owner,
    Role,
    default_renew_interval,
    lease_meta,
    renew_gave_up,
    renew_give_up_margin,
    renew_retry_delay,
)
from modeldconn import lease as liblease

MS = 1_000_000
S = 1_000_000_000


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


# --- pure helpers -------------------------------------------------------------------------------


def test_give_up_margin_is_quarter_ttl_with_floor() -> None:
    # owner_internal_test.go TestUnit_RenewGiveUpMargin_PositiveWithFloor
    assert renew_give_up_margin(40 * S) == 10 * S
    assert renew_give_up_margin(400 * MS) == MIN_RENEW_RETRY_NS == 250 * MS
    assert renew_give_up_margin(30 * S) == 7_500 * MS  # daemon default
    assert renew_give_up_margin(1 * S) == 250 * MS  # exactly at the floor
    assert renew_give_up_margin(1 * S + 4) == 250 * MS + 1
    assert renew_give_up_margin(7) == 250 * MS


def test_gave_up_boundaries() -> None:
    # owner_internal_test.go TestUnit_RenewGaveUp_SelfFencesBeforeExpiry
    base = 1_000_000 * S
    valid_until = base + 10 * S
    margin = 2 * S
    assert not renew_gave_up(base, valid_until, margin)
    assert not renew_gave_up(base + 7 * S, valid_until, margin)  # 3 s left, margin 2 s
    assert not renew_gave_up(base + 8 * S - 1, valid_until, margin)  # 1 ns before the boundary
    assert renew_gave_up(base + 8 * S, valid_until, margin)  # exactly at now+margin == validUntil
    assert renew_gave_up(base + 11 * S, valid_until, margin)  # past validity


@pytest.mark.parametrize(
    ("remaining", "want"),
    [
        (40 * S, 10 * S),  # far out: capped at the interval
        (4 * S, 2 * S),  # half of the remaining time under the interval
        (20 * S, 10 * S),  # remaining/2 == interval
        (100 * MS, 250 * MS),  # near expiry: floored
        (500 * MS, 250 * MS),  # remaining/2 == floor
        (500 * MS + 2, 250 * MS + 1),
        (-5 * S, 250 * MS),  # negative remaining: floored
        (-1, 250 * MS),
    ],
)
def test_retry_delay_clamps_and_tightens(remaining: int, want: int) -> None:
    # owner_internal_test.go TestUnit_RenewRetryDelay_ClampsAndTightensNearExpiry
    assert renew_retry_delay(10 * S, remaining) == want


def test_default_renew_interval() -> None:
    assert default_renew_interval(30 * S) == 10 * S
    assert default_renew_interval(30 * S, 0) == 10 * S
    assert default_renew_interval(30 * S, -1) == 10 * S
    assert default_renew_interval(30 * S, 2 * S) == 2 * S
    assert default_renew_interval(600 * MS) == 200 * MS
    assert default_renew_interval(1 * S) == 333_333_333  # Go truncates
    assert default_renew_interval(2) == 1 * S  # TTL/3 == 0 → 1 s


def test_lease_meta() -> None:
    assert lease_meta(None, "", "") == {}
    assert lease_meta({"a": "1", "": "x", "b": ""}, "", "") == {"a": "1"}
    assert lease_meta({"endpoint": "old", "backend": "old", "k": "v"}, "127.0.0.1:1", "none") == {
        "endpoint": "127.0.0.1:1",
        "backend": "none",
        "k": "v",
    }
    assert lease_meta({"endpoint": "kept"}, "", "") == {"endpoint": "kept"}


def test_ttl_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="owner: ttl must be positive"):
        Owner(str(tmp_path / "modeld.lease"), 0)


# --- election -----------------------------------------------------------------------------------


async def test_single_owner_among_16_concurrent_joins(tmp_path: Path) -> None:
    # owner_test.go TestUnit_JoinSingleOwnerWithAdvertisedEndpoint
    path = str(tmp_path / "modeld.lease")
    owners = [Owner(path, 30 * S, endpoint=f"127.0.0.1:{20000 + i}", backend="none") for i in range(16)]
    results: list[JoinResult] = await asyncio.gather(*(o.join() for o in owners))
    try:
        winners = [r for r in results if r.role is Role.OWNER]
        assert len(winners) == 1
        winner = winners[0]
        idx = results.index(winner)
        assert winner.endpoint == f"127.0.0.1:{20000 + idx}"
        followers = [r for r in results if r.role is Role.FOLLOWER]
        assert len(followers) == 15
        for f in followers:
            assert f.instance_id == winner.instance_id
            assert f.endpoint == winner.endpoint
            assert f.backend == "none"
        rec = liblease.inspect(path)
        assert rec.instance_id == winner.instance_id
        assert rec.meta == {"backend": "none", "endpoint": winner.endpoint}
        assert sorted(os.listdir(tmp_path)) == ["modeld.lease"]
    finally:
        for o in owners:
            await o.release()
    assert not os.path.exists(path)


async def test_join_retries_when_holder_vanished_before_inspect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # owner_internal_test.go TestUnit_JoinRetriesWhenHeldLeaseIsReleasedBeforeInspect
    path = str(tmp_path / "modeld.lease")
    real_acquire, real_inspect = liblease.acquire, liblease.inspect
    calls = {"acquire": 0, "inspect": 0}

    def fake_acquire(*a: Any, **kw: Any) -> liblease.LeaseHandle:
        calls["acquire"] += 1
        if calls["acquire"] == 1:
            raise liblease.LeaseHeld("liblease: lease is held by another instance: synthetic holder")
        return real_acquire(*a, **kw)

    def fake_inspect(p: str) -> liblease.LeaseRecord:
        calls["inspect"] += 1
        if calls["inspect"] == 1:
            raise liblease.LeaseNotFound(p)
        return real_inspect(p)

    monkeypatch.setattr(liblease, "acquire", fake_acquire)
    monkeypatch.setattr(liblease, "inspect", fake_inspect)
    o = Owner(path, 60 * S, endpoint="127.0.0.1:12345")
    t0 = time.monotonic()
    r = await o.join()
    elapsed = time.monotonic() - t0
    try:
        assert r.role is Role.OWNER
        assert calls == {"acquire": 2, "inspect": 1}
        assert elapsed >= 0.24  # paused 250 ms before retrying
        assert real_inspect(path).meta["endpoint"] == "127.0.0.1:12345"
    finally:
        await o.release()


async def test_follower_of_foreign_fresh_lease_and_release_is_noop(tmp_path: Path) -> None:
    path = str(tmp_path / "modeld.lease")
    foreign = liblease.acquire(path, 30 * S, {"endpoint": "127.0.0.1:1", "backend": "llama"})
    before = Path(path).read_bytes()
    o = Owner(path, 30 * S, endpoint="127.0.0.1:2", backend="none")
    r = await o.join()
    assert r.role is Role.FOLLOWER and not o.is_owner
    assert r.instance_id == foreign.instance_id and r.endpoint == "127.0.0.1:1" and r.backend == "llama"
    await o.release()
    await o.release()
    assert Path(path).read_bytes() == before
    assert not o.lost.is_set()
    foreign.release()


# --- renew loop ---------------------------------------------------------------------------------


async def test_renew_loop_advances_renewed_at(tmp_path: Path) -> None:
    # owner_internal_test.go TestUnit_RenewLoopKeepsLeaseAliveAcrossIntervals (TTL 300 ms there; 600 ms
    # here so a loaded test machine (xdist, subprocess daemons) cannot stall a renew past the TTL)
    path = str(tmp_path / "modeld.lease")
    o = Owner(path, 600 * MS)
    r = await o.join()
    assert r.is_owner and o.interval_ns == 200 * MS
    first = liblease.inspect(path)
    seen = {first.renewed_at.unix_ns}
    deadline = time.monotonic() + 5
    try:
        # the file is rewritten in the renew's worker thread before the loop counts the renewal: wait
        # for both (the counter may trail the file by one loop turn)
        while len(seen) < 4 or o.renewals < 3:
            assert time.monotonic() < deadline, f"renewed_at did not advance: {seen}, renewals={o.renewals}"
            await asyncio.sleep(0.02)
            with_rec = liblease.inspect(path)
            assert with_rec.instance_id == r.instance_id
            assert with_rec.acquired_at == first.acquired_at
            seen.add(with_rec.renewed_at.unix_ns)
        assert not o.lost.is_set()
    finally:
        await o.release()
    assert not os.path.exists(path)


async def test_first_renew_after_one_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "modeld.lease")
    o = Owner(path, 3 * S, renew_interval_ns=400 * MS)
    await o.join()
    acquired = liblease.inspect(path).renewed_at.unix_ns
    try:
        await wait_for(lambda: o.renewals >= 1, 3, "first renew")
        renewed = liblease.inspect(path).renewed_at.unix_ns
        assert 0.35 * S <= renewed - acquired <= 1.5 * S
    finally:
        await o.release()


async def test_loss_on_takeover_leaves_the_rival_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "modeld.lease")
    reasons: list[str] = []
    a = Owner(path, 600 * MS, on_lost=reasons.append)
    ra = await a.join()
    a.pause_renewals()
    await wait_for(lambda: liblease.expired_for_liblease(liblease.inspect(path), time.time_ns()), 3, "lapse")
    b = Owner(path, 30 * S, endpoint="127.0.0.1:9", backend="none")
    rb = await b.join()
    assert rb.is_owner and rb.instance_id != ra.instance_id
    a.resume_renewals()
    reason = await asyncio.wait_for(a.wait_lost(), 3)
    assert reason == f"liblease: lease was taken over by another instance: now held by {rb.instance_id}"
    assert reasons == [reason]
    assert isinstance(a.lost_error, liblease.LeaseLost)
    await a.release()
    assert liblease.inspect(path).instance_id == rb.instance_id
    await b.release()
    assert not os.path.exists(path)


async def test_loss_when_own_lease_expired_then_release_removes_it(tmp_path: Path) -> None:
    path = str(tmp_path / "modeld.lease")
    a = Owner(path, 600 * MS)
    await a.join()
    a.pause_renewals()
    await wait_for(lambda: liblease.expired_for_liblease(liblease.inspect(path), time.time_ns()), 3, "lapse")
    a.resume_renewals()
    reason = await asyncio.wait_for(a.wait_lost(), 3)
    assert reason == "liblease: lease was taken over by another instance: lease expired before renewal"
    await a.release()
    assert not os.path.exists(path)


async def test_transient_errors_give_up_before_expiry(tmp_path: Path) -> None:
    # a deleted lease file makes renew fail with a read error that is NOT LeaseLost: the owner keeps
    # trying and forfeits once now + margin >= validUntil, i.e. before its lease could lapse
    path = str(tmp_path / "modeld.lease")
    ttl = 1 * S
    o = Owner(path, ttl)
    r = await o.join()
    valid_until = r.holder.expires_at.unix_ns
    os.unlink(path)
    reason = await asyncio.wait_for(o.wait_lost(), 5)
    lost_at = time.time_ns()
    assert "renew" in reason and not isinstance(o.lost_error, liblease.LeaseLost)
    assert o.renew_failures >= 2  # it retried before giving up
    assert lost_at < valid_until + 100 * MS  # self-fenced at (about) validUntil - margin, never later
    assert lost_at >= valid_until - renew_give_up_margin(ttl) - 50 * MS
    await o.release()


async def test_lock_timeout_is_not_a_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "modeld.lease")
    o = Owner(path, 1500 * MS)
    await o.join()
    handle = o.handle
    assert handle is not None
    real_renew = handle.renew
    fails = {"n": 0}

    def flaky_renew(**kw: Any) -> liblease.LeaseRecord:
        if fails["n"] < 1:
            fails["n"] += 1
            raise liblease.AcquireTimeout("liblease: timed out waiting for the acquisition lock: synthetic")
        return real_renew(**kw)

    monkeypatch.setattr(handle, "renew", flaky_renew)
    try:
        await wait_for(lambda: o.renewals >= 2, 5, "renewals after a lock timeout")
        assert fails["n"] == 1 and o.renew_failures == 1
        assert not o.lost.is_set()
    finally:
        await o.release()


async def test_release_is_idempotent_and_stops_the_loop(tmp_path: Path) -> None:
    path = str(tmp_path / "modeld.lease")
    o = Owner(path, 300 * MS)
    await o.join()
    assert o.renewing  # the loop runs before the release ...
    await o.release()
    assert not os.path.exists(path)
    # ... and has exited after it: only the loop renews, so no renewal can follow (no time window needed)
    assert not o.renewing
    n = o.renewals
    await o.release()
    assert not o.renewing
    assert o.renewals == n and not o.lost.is_set()
    assert not os.path.exists(path)


async def test_join_is_called_once(tmp_path: Path) -> None:
    o = Owner(str(tmp_path / "modeld.lease"), 30 * S)
    r1 = await o.join()
    r2 = await o.join()
    assert r1 is r2
    await o.release()


def test_module_exports() -> None:
    for name in owner_mod.__all__:
        assert hasattr(owner_mod, name)


# --- the owner inside a Simulator (in-process) ----------------------------------------------------


async def _health(endpoint: str) -> dict[str, Any]:
    import json

    from modeld_contract.h2client import RawGrpcClient

    host, port = endpoint.rsplit(":", 1)
    async with RawGrpcClient(host, int(port)) as c:
        r = await asyncio.wait_for(c.call("/contenox.transport.v1.Compute/Health", [b"{}"]), 5)
    assert r.code == 0, (r.code, r.message)
    body: dict[str, Any] = json.loads(r.messages[0])
    return body


def _lines() -> tuple[list[tuple[str, str]], Callable[[str, str], None]]:
    out: list[tuple[str, str]] = []

    def log(stream: str, line: str) -> None:
        out.append((stream, line))

    return out, log


async def test_single_owner_among_16_concurrent_simulators(tmp_path: Path) -> None:
    from modeld_sim.simulator import Simulator

    root = tmp_path / "root"
    sims = [Simulator(root, backend="none", ttl=30.0) for _ in range(16)]
    roles = await asyncio.gather(*(s.start() for s in sims))
    try:
        assert sorted(roles) == ["follower"] * 15 + ["owner"]
        owner = sims[roles.index("owner")]
        rec = liblease.inspect(str(root / "modeld.lease"))
        assert rec.instance_id == owner.instance_id
        assert rec.meta == {"backend": "none", "endpoint": owner.endpoint}
        for s in sims:
            assert s.instance_id == owner.instance_id
            if s is not owner:
                assert s.holder is not None and s.holder.meta["endpoint"] == owner.endpoint
                assert s.stopped and s.server is None  # a follower closed its listener
        body = await _health(owner.endpoint)
        assert body == {"instance_id": owner.instance_id, "ready": True, "backend": "none"}
        assert sorted(os.listdir(root)) == ["modeld.lease"]
    finally:
        for s in sims:
            await s.stop()
    assert not (root / "modeld.lease").exists()


async def test_simulator_owner_under_pyfakefs(fs: Any) -> None:
    from modeld_sim.simulator import Simulator

    lines, log = _lines()
    async with Simulator("/data/root", backend="none", ttl=3.0, log=log) as sim:
        assert sim.role == "owner" and sim.lease_path == "/data/root/modeld.lease"
        assert os.listdir("/data/root") == ["modeld.lease"]
        assert oct(os.stat("/data/root").st_mode & 0o777) == "0o700"
        assert oct(os.stat(sim.lease_path).st_mode & 0o777) == "0o600"
        rec = liblease.inspect(sim.lease_path)
        assert rec.instance_id == sim.instance_id and rec.meta["endpoint"] == sim.endpoint
        assert (await _health(sim.endpoint))["instance_id"] == sim.instance_id
        iid = sim.instance_id
    assert not os.path.exists("/data/root/modeld.lease")
    stdout = [ln for st, ln in lines if st == "stdout"]
    started = f"modeld owner started: instance={iid} pid={os.getpid()} data_root=/data/root "
    assert stdout[0].startswith(started)
    assert stdout[-1] == f"modeld owner stopped: instance={iid} backend=none"


async def test_simulator_self_fences_and_stops_on_takeover(tmp_path: Path) -> None:
    from modeld_sim.simulator import FENCED_OFF_INSTANCE, Simulator

    lines, log = _lines()
    sim = Simulator(tmp_path, backend="none", ttl=0.6, log=log)
    assert await sim.start() == "owner"
    iid = sim.instance_id
    server = sim.server
    assert server is not None
    fences: list[str] = []
    real_set = server.set_instance_id

    def spy(value: str) -> None:
        fences.append(value)
        real_set(value)

    server.set_instance_id = spy  # type: ignore[method-assign,assignment]
    sim.pause_renewals()
    await wait_for(lambda: liblease.expired_for_liblease(liblease.inspect(sim.lease_path), time.time_ns()), 3)
    rival = liblease.acquire(sim.lease_path, 30 * S, {"endpoint": "127.0.0.1:9", "backend": "llama"})
    before = Path(sim.lease_path).read_bytes()
    sim.resume_renewals()
    reason = await asyncio.wait_for(sim.wait_stopped(), 5)
    assert reason == f"liblease: lease was taken over by another instance: now held by {rival.instance_id}"
    assert fences == [FENCED_OFF_INSTANCE]
    assert server.instance_id == FENCED_OFF_INSTANCE and sim.server is None and not sim.running
    assert Path(sim.lease_path).read_bytes() == before  # the rival's lease is untouched
    assert ("stderr", f"modeld: lost lease, shutting down: {reason}") in lines
    assert lines[-1] == ("stdout", f"modeld owner stopped: instance={iid} backend=none")
    await sim.stop()  # idempotent
    rival.release()


async def test_simulator_lost_without_rival_removes_its_lease(tmp_path: Path) -> None:
    from modeld_sim.simulator import Simulator

    sim = Simulator(tmp_path, backend="none", ttl=0.6)
    await sim.start()
    sim.pause_renewals()
    await wait_for(lambda: liblease.expired_for_liblease(liblease.inspect(sim.lease_path), time.time_ns()), 3)
    sim.resume_renewals()
    reason = await asyncio.wait_for(sim.wait_stopped(), 5)
    assert reason == "liblease: lease was taken over by another instance: lease expired before renewal"
    assert not os.path.exists(sim.lease_path)


async def test_standby_simulator_takes_over_after_release(tmp_path: Path) -> None:
    from modeld_sim.simulator import Simulator

    first = Simulator(tmp_path, backend="none", ttl=1.0)
    await first.start()
    lines, log = _lines()
    standby = Simulator(tmp_path, backend="none", ttl=1.0, standby=True, log=log)
    task = asyncio.ensure_future(standby.start())
    await wait_for(lambda: any(ln.startswith("modeld follower: ") for _, ln in lines), 3, "follower line")
    assert not task.done() and standby.server is not None  # waiting, listener kept
    await first.stop()
    assert await asyncio.wait_for(task, 3) == "owner"
    rec = liblease.inspect(standby.lease_path)
    assert rec.instance_id == standby.instance_id != first.instance_id
    assert rec.meta["endpoint"] == standby.endpoint
    assert (await _health(standby.endpoint))["instance_id"] == standby.instance_id
    await standby.stop()
    assert not os.path.exists(standby.lease_path)


# --- the daemon's line formatting (cmd/modeld/main.go) ---------------------------------------------


@pytest.mark.parametrize(
    ("d", "m", "want"),
    [
        (1_499_999_999, S, 1 * S),
        (1_500_000_000, S, 2 * S),  # halfway: away from zero
        (-1_500_000_000, S, -2 * S),
        (-1_499_999_999, S, -1 * S),
        (-400 * MS, S, 0),
        (2 * S, S, 2 * S),
        (7, 0, 7),
    ],
)
def test_round_duration_like_go(d: int, m: int, want: int) -> None:
    from modeld_sim.simulator import round_duration

    assert round_duration(d, m) == want


@pytest.mark.parametrize(
    ("endpoint", "want"),
    [
        ("127.0.0.2:8080", True),
        ("[::1]:8080", True),
        ("LocalHost:8080", True),
        (":8080", False),
        ("127.0.0.1", True),
        ("10.0.0.1:1", False),
        ("[::]:9090", False),
    ],
)
def test_loopback_table(endpoint: str, want: bool) -> None:
    # cmd/modeld/main_test.go TestUnit_IsLoopbackEndpoint
    from modeld_sim.simulator import is_loopback_endpoint

    assert is_loopback_endpoint(endpoint) is want


def test_go_quote_and_join_host_port() -> None:
    from modeld_sim.simulator import go_quote, join_host_port

    assert go_quote('/a b/"c"\\d') == '"/a b/\\"c\\"\\\\d"'
    assert go_quote("tab\there\n\x01é") == '"tab\\there\\n\\x01é"'
    assert join_host_port("127.0.0.1", 0) == "127.0.0.1:0"
    assert join_host_port("::1", 80) == "[::1]:80"


def test_follower_line_format() -> None:
    from modeld_sim.simulator import format_follower_line
    from modeldconn.gotime import GoTime

    renewed = GoTime(1_782_000_000 * S + 5 * 10**8, 0)
    rec = liblease.LeaseRecord(
        instance_id="3f1c",
        pid=42,
        host="box",
        acquired_at=renewed,
        renewed_at=renewed,
        ttl_ns=30 * S,
        meta={"endpoint": "127.0.0.1:40123", "backend": "llama"},
    )
    line = format_follower_line("/tmp/root dir", rec, renewed.unix_ns + 1_500_000_000)  # 28.5 s left → 29s
    assert line == (
        'modeld follower: reason=lease_held data_root="/tmp/root dir" holder_instance=3f1c holder_pid=42 '
        "holder_host=box endpoint=127.0.0.1:40123 backend=llama expires=2026-06-21T00:00:30Z ttl_left=29s"
    )
