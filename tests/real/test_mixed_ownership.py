"""Mixed ownership: the real modeld and our simulator on one data root, taking the lease from each other.

- ``modeld-sim serve --standby`` waits behind a real owner and takes over when the real daemon dies
  (SIGKILL: once its lease lapsed) or stops (SIGTERM: it released the lease).
- A real daemon started while the simulator owns the lease behaves as against another real owner: the
  follower line naming the simulator's instance, exit 0, the simulator still the owner.
- Our connector (``modeldconn``, as the contract suite drives it) follows the leader across both:
  every ``status()`` names the instance the lease names, real or simulated.

Backend none (the lifecycle does not depend on an engine); TTL 1 s where a lease has to lapse. Every wait is
for a condition with a deadline (a log line, the lease, the connector's answer), never a fixed pause: the
standby takeover runs 20 times in a row with both cores kept busy (``_busy_load``) to prove it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _busy_load import busy_load
from modeld_contract.connectors.loader import make_factory
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.real.build import BuildResult
from modeld_contract.real.daemon import RealDaemon, read_lease

pytestmark = pytest.mark.real_daemon("none")


def _launcher(folder: Path, name: str, extra: str) -> Path:
    path = folder / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m modeld_sim.cli "$@" --backend none {extra}\n')
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def sim_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``modeld-sim serve`` launchers taking RealDaemon's argv (``serve --data-root D --ttl T``)."""
    folder = tmp_path_factory.mktemp("sim-bins")
    return {"owner": _launcher(folder, "sim", ""), "standby": _launcher(folder, "sim-standby", "--standby")}


@contextlib.contextmanager
def _lab(folder: Path) -> Iterator[Callable[..., RealDaemon]]:
    """``lab(binary, ttl)`` → a daemon on the shared data root ``folder/data`` (all killed at the end)."""
    made: list[RealDaemon] = []

    def daemon(binary: Path, ttl: str = "1s") -> RealDaemon:
        d = RealDaemon(binary, folder / "data", ttl=ttl, log_path=folder / f"d{len(made)}.log")
        made.append(d)
        return d

    try:
        yield daemon
    finally:
        for d in made:
            d.close()


@contextlib.contextmanager
def _connector(folder: Path, binary: Path) -> Iterator[Any]:
    """The connector under the suite's driver, on ``folder/data``, with the real binary located."""
    factory = make_factory("modeldconn")
    conn = factory()
    conn.configure(str(folder / "data"), {"CONTENOX_MODELD_BIN": str(binary)})
    try:
        yield conn
    finally:
        conn.close()
        factory.shutdown()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Callable[..., RealDaemon]]:
    with _lab(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def connector(tmp_path: Path, modeld_none: BuildResult) -> Iterator[Any]:
    with _connector(tmp_path, modeld_none.binary) as conn:
        yield conn


def _owner_seen(conn: Any, instance: str, within: float = 15.0) -> dict[str, Any]:
    """``status()`` until it names ``instance`` (errors while the lease changes hands are allowed)."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            st = conn.status(timeout=2.0)
            if st.get("owner_instance_id") == instance:
                return dict(st)
            last = st
        except ConnectorError as exc:
            last = exc
        time.sleep(0.05)  # polling a lease handover, bounded
    raise AssertionError(f"the connector never reached {instance} within {within} s; last: {last}")


def _wait_owner(d: RealDaemon, within: float = 15.0) -> dict[str, Any]:
    d.lease = d.wait_for_lease(within)
    return d.lease


def _logged(d: RealDaemon, text: str, within: float = 30.0) -> None:
    """Until ``text`` is in the daemon's log; fails at once if the daemon exits first."""
    deadline = time.monotonic() + within
    while text not in d.log():
        if not d.alive():
            raise AssertionError(
                f"{d.binary.name} exited ({d.proc and d.proc.returncode}) before logging "
                f"{text!r}:\n{d.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{d.binary.name} did not log {text!r} within {within} s:\n{d.log_tail()}")
        time.sleep(0.02)  # polling the log file the process writes, bounded by the deadline


def _standby_takeover(how: str, real_bin: Path, standby_bin: Path, lab: Any, connector: Any) -> None:
    real = lab(real_bin).start()
    standby = lab(standby_bin).spawn()
    assert _owner_seen(connector, real.instance_id)["backend"] == "none"
    # the standby found the lease held and stays to wait for it (a plain follower would exit 0 here)
    _logged(standby, "modeld follower: reason=lease_held")
    assert standby.alive(), standby.log_tail()
    real.send_signal(getattr(signal, how))
    assert real.wait() == (0 if how == "SIGTERM" else -9)
    lease = _wait_owner(standby)
    assert lease["instance_id"] != real.instance_id and lease["meta"]["backend"] == "none"
    st = _owner_seen(connector, standby.instance_id)
    assert st == {"owner_instance_id": standby.instance_id, "backend": "none", "state": "Empty"}
    assert standby.stop() == 0 and read_lease(standby.data_root) is None


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_sim_standby_takes_over_from_the_real_daemon(
    how: str, modeld_none: BuildResult, sim_bins: dict[str, Path], lab: Any, connector: Any
) -> None:
    _standby_takeover(how, modeld_none.binary, sim_bins["standby"], lab, connector)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a hang guard: 20 takeovers on a machine kept busy on purpose
def test_standby_takeover_twenty_times_in_a_row_under_load(
    modeld_none: BuildResult, sim_bins: dict[str, Path], tmp_path: Path
) -> None:
    """The takeover above, 20 runs (SIGKILL and SIGTERM in turn) while two busy loops hold both cores."""
    with busy_load(2):
        for run in range(20):
            how = ("SIGKILL", "SIGTERM")[run % 2]
            folder = tmp_path / f"run{run:02d}"
            folder.mkdir()
            with _lab(folder) as lab, _connector(folder, modeld_none.binary) as conn:
                try:
                    _standby_takeover(how, modeld_none.binary, sim_bins["standby"], lab, conn)
                except AssertionError as exc:
                    raise AssertionError(f"run {run + 1} of 20 ({how}) failed: {exc}") from exc


def test_real_daemon_is_a_follower_of_the_simulator(
    modeld_none: BuildResult, sim_bins: dict[str, Path], lab: Any, connector: Any
) -> None:
    sim = lab(sim_bins["owner"], "30s").start()
    real = lab(modeld_none.binary, "30s").spawn()
    assert real.wait(15) == 0
    line = next(ln for ln in real.log().splitlines() if ln.startswith("modeld follower:"))
    assert f"holder_instance={sim.instance_id} holder_pid={sim.pid}" in line and "reason=lease_held" in line
    assert f"endpoint={sim.endpoint} backend=none" in line
    assert (read_lease(sim.data_root) or {}).get("instance_id") == sim.instance_id and sim.alive()
    _owner_seen(connector, sim.instance_id)
    assert sim.stop() == 0


def test_connector_follows_the_leader_across_both(
    modeld_none: BuildResult, sim_bins: dict[str, Path], lab: Any, connector: Any
) -> None:
    """real → simulator → real → simulator, each stop a SIGTERM; the connector follows every change."""
    seen = []
    binaries = [modeld_none.binary, sim_bins["owner"], modeld_none.binary, sim_bins["owner"]]
    for binary in binaries:
        d = lab(binary).start()
        st = _owner_seen(connector, d.instance_id)
        seen.append(st["owner_instance_id"])
        assert d.stop() == 0
        with pytest.raises(ConnectorError) as info:
            connector.status(timeout=2.0)
        assert info.value.kind == "not-running"
    assert len(set(seen)) == 4
