"""modeld_sim.leasescript: every lease state, atomic writes, the CLI, and pausing a live owner."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from modeld_sim import cli
from modeld_sim.leasescript import OPS, LeaseScript, LeaseScriptError, apply, check, closed_port, describe
from modeld_sim.owner import Owner
from modeldconn import lease as liblease

ROOT = "/data"
MS = 1_000_000
S = 1_000_000_000


@pytest.fixture
def ls(fs: Any) -> LeaseScript:
    fs.create_dir(ROOT)
    return LeaseScript(ROOT)


def _only_lease(root: str = ROOT) -> None:
    assert sorted(os.listdir(root)) in ([], ["modeld.lease"])


def test_fresh_stale_future_ttl(ls: LeaseScript) -> None:
    now = time.time_ns()
    rec = ls.fresh(ttl_ns=2 * S)
    assert liblease.live_for_probe(liblease.inspect(ls.path), now)
    st = ls.stale(by_ns=5 * S)
    cur = liblease.inspect(ls.path)
    assert cur.instance_id == rec.instance_id == st.instance_id  # the holder is kept
    assert liblease.expired_for_liblease(cur, time.time_ns()) and cur.expires_at.unix_ns < now - 4 * S
    ls.future(by_ns=3600 * S)
    assert liblease.inspect(ls.path).renewed_at.unix_ns > now + 3000 * S
    for v in (0, -5):
        ls.ttl(v)
        assert liblease.inspect(ls.path).ttl_ns == v
        assert liblease.expired_for_liblease(liblease.inspect(ls.path), time.time_ns() + 1)
    assert ls.expire().ttl_ns > 0
    _only_lease()


def test_broken_files(ls: LeaseScript) -> None:
    ls.corrupt()
    with pytest.raises(liblease.LeaseCorrupt):
        liblease.inspect(ls.path)
    ls.truncated()
    with pytest.raises(liblease.LeaseCorrupt):
        liblease.inspect(ls.path)
    ls.empty()
    assert Path(ls.path).read_bytes() == b""
    ls.missing()
    assert not os.path.exists(ls.path)
    ls.missing()  # idempotent
    _only_lease()


def test_meta_states(ls: LeaseScript) -> None:
    base = ls.fresh()
    foreign = ls.foreign()
    assert foreign.instance_id != base.instance_id and foreign.host != base.host
    ep = ls.closed_port().endpoint()
    assert ep.startswith("127.0.0.1:")
    assert ls.backend("openvino").backend() == "openvino"
    assert "backend" not in ls.backend(None).meta
    assert liblease.inspect(ls.path).meta == {"endpoint": ep}
    assert ls.no_meta().meta == {}
    assert b'"meta"' not in Path(ls.path).read_bytes()
    stolen = ls.steal(endpoint="127.0.0.1:1")
    assert stolen.instance_id != foreign.instance_id and stolen.endpoint() == "127.0.0.1:1"


def test_atomic_failure_leaves_old_file(ls: LeaseScript, monkeypatch: pytest.MonkeyPatch) -> None:
    ls.fresh()
    before = Path(ls.path).read_bytes()

    def boom(*_a: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        ls.corrupt(b"xx")
    assert Path(ls.path).read_bytes() == before
    _only_lease()  # no temp file, no lock directory left behind


def test_generic_apply_checks_params(ls: LeaseScript) -> None:
    for op in OPS:
        params: dict[str, Any] = {"value": "127.0.0.1:9"} if op == "endpoint" else {}
        if op == "ttl":
            params = {"value": 0}
        apply(ls, op, params)
    assert describe(apply(ls, "stale", {"by": "2s"})) is not None
    assert apply(ls, "stale", {"by": 1500}) is not None
    with pytest.raises(LeaseScriptError) as ei:
        check("stale", {"bye": "2s"})
    assert ei.value.field == "bye"
    with pytest.raises(LeaseScriptError) as ei:
        check("stale", {"by": "2 parsecs"})
    assert ei.value.field == "by"
    with pytest.raises(LeaseScriptError) as ei:
        check("melt", {})
    assert ei.value.field == "op"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path)
    assert cli.main(["lease", "--data-root", root, "fresh", "ttl=5s"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lease"]["ttl_ns"] == 5 * S and not doc["lease"]["expired"]
    assert cli.main(["lease", "--data-root", root, "stale", "by=2s"]) == 0
    assert json.loads(capsys.readouterr().out)["lease"]["expired"]
    assert cli.main(["lease", "--data-root", root, "corrupt"]) == 0
    assert json.loads(capsys.readouterr().out)["lease"]["state"] == "corrupt"
    assert cli.main(["lease", "--data-root", root, "stale", "bye=2s"]) == 2
    assert "'bye'" in capsys.readouterr().err
    assert closed_port() > 0


async def test_pause_resume_and_steal_a_running_owner(tmp_path: Path) -> None:
    path = liblease.lease_path(tmp_path)
    owner = Owner(path, 600 * MS, 100 * MS)
    await owner.join()
    try:
        deadline = time.monotonic() + 5
        while owner.renewals < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        owner.pause_renewals()
        n = owner.renewals
        # A renew comes due one interval later and must park at the pause gate instead of running.
        # Parked, the loop cannot renew: that structural fact replaces watching a wall-clock window.
        while not owner.renew_held:
            assert time.monotonic() < deadline, "the due renew was not held by the pause"
            await asyncio.sleep(0.005)
        held_at = owner.renewals
        assert held_at - n <= 1  # at most a renew already in flight when the pause began
        holder = owner.holder
        assert holder is not None and liblease.inspect(path).renewed_at == holder.renewed_at
        n = held_at
        owner.resume_renewals()
        while owner.renewals == n:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        ls = LeaseScript(tmp_path)
        await asyncio.to_thread(ls.steal)
        reason = await asyncio.wait_for(owner.wait_lost(), 5)
        assert "taken over" in reason
    finally:
        await owner.release()
