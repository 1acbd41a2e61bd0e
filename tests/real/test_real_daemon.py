"""modeld_contract.real.daemon.RealDaemon: start, lease, stop with SIGTERM and the release check."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from modeld_contract.h2client import RawGrpcClient
from modeld_contract.real.build import BuildResult
from modeld_contract.real.daemon import DaemonError, RealDaemon, read_lease


def _health(host: str, port: int) -> tuple[int | None, dict[str, object]]:
    async def call() -> tuple[int | None, dict[str, object]]:
        async with RawGrpcClient(host, port) as c:
            r = await c.call("/contenox.transport.v1.Compute/Health", [b"{}"], timeout=10)
            return r.code, (json.loads(r.messages[0]) if r.messages else {})

    return asyncio.run(call())


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-modeld"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_a_daemon_that_exits_fails_with_its_status_and_log_tail(tmp_path: Path) -> None:
    fake = _script(tmp_path, 'echo "modeld: bad flag $1" >&2; exit 3')
    d = RealDaemon(fake, tmp_path / "data")
    with pytest.raises(DaemonError) as info:
        d.start()
    assert "exited with status 3" in str(info.value) and "modeld: bad flag serve" in info.value.log_tail
    d.close()


def test_a_daemon_that_never_publishes_a_lease_times_out_with_the_log_tail(tmp_path: Path) -> None:
    fake = _script(tmp_path, "echo starting up; exec sleep 60")
    d = RealDaemon(fake, tmp_path / "data", start_timeout=1.0)
    with pytest.raises(DaemonError) as info:
        d.start()
    assert "did not publish its lease" in str(info.value) and "starting up" in info.value.log_tail
    assert not d.alive()
    d.close()


@pytest.mark.real_daemon("none")
def test_context_manager_starts_serves_and_releases(modeld_none: BuildResult, tmp_path: Path) -> None:
    root = tmp_path / "data"
    with RealDaemon(modeld_none.binary, root, ttl="3s") as d:
        lease = read_lease(root)
        assert lease is not None and lease["pid"] == d.pid and lease["instance_id"] == d.instance_id
        assert d.endpoint == lease["meta"]["endpoint"] and d.backend == "none" and d.host == "127.0.0.1"
        assert lease["ttl"] == 3_000_000_000
        code, body = _health(d.host, d.port)
        assert code == 0 and body == {"instance_id": d.instance_id, "ready": True, "backend": "none"}
    assert d.exit_code == 0 and not (root / "modeld.lease").exists()


@pytest.mark.real_daemon("none")
def test_stop_reports_a_lease_left_behind(modeld_none: BuildResult, tmp_path: Path) -> None:
    d = RealDaemon(modeld_none.binary, tmp_path / "data").start()
    d.send_signal(signal.SIGKILL)
    d.wait()
    with pytest.raises(DaemonError, match="exited with status -9"):
        d.stop()
    assert d.stop(check=False) == -9
    d.close()


@pytest.mark.real_daemon("none")
def test_a_second_daemon_on_the_same_root_is_a_follower_and_fails_to_start(
    modeld_none: BuildResult, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    with RealDaemon(modeld_none.binary, root) as first:
        second = RealDaemon(modeld_none.binary, root)
        with pytest.raises(DaemonError) as info:
            second.start()
        assert "exited with status 0" in str(info.value)
        assert "modeld follower: reason=lease_held" in info.value.log_tail
        assert first.alive()
        second.close()
