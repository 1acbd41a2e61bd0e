"""Lifecycle, differentially: the same scenarios against the real modeld and ``modeld-sim serve``.

The 17 scenarios of the lifecycle recorder (``modeld_contract.real.record.LIFECYCLE_CASES``: start, the
lease's shape and values, renewals, SIGTERM, SIGKILL, a second daemon on the same data root, SIGSTOP past
the TTL with and without a rival, corrupt / empty / foreign leases) run once with the real daemon's binary
and once with a launcher of ``modeld-sim serve --backend none`` in its place — the same scenario code, the
same ``RealDaemon`` process handling — and their facts must be equal. The follower's line (a second daemon
on a fresh lease) is compared too, with instance id, pid, times, port and paths normalised.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from modeld_contract.real.build import BuildResult
from modeld_contract.real.daemon import RealDaemon
from modeld_contract.real.record import LIFECYCLE_CASES, _lab


@pytest.fixture(scope="module")
def sim_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An executable that is ``modeld-sim serve … --backend none`` (argv as RealDaemon gives the daemon)."""
    path = tmp_path_factory.mktemp("sim-bin") / "modeld-sim-none"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m modeld_sim.cli "$@" --backend none\n')
    path.chmod(0o755)
    return path


@pytest.mark.real_daemon("none")
@pytest.mark.parametrize("scenario", list(LIFECYCLE_CASES))
def test_lifecycle_scenario_alike(scenario: str, modeld_none: BuildResult, sim_binary: Path) -> None:
    facts = {}
    for name, binary in (("real", modeld_none.binary), ("sim", sim_binary)):
        with _lab(binary) as lab:
            facts[name] = LIFECYCLE_CASES[scenario](lab)
    assert facts["sim"] == facts["real"], f"{scenario}: real {facts['real']} / sim {facts['sim']}"


_NORMALISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<IID>"),
    (re.compile(r"holder_pid=\d+"), "holder_pid=<PID>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<PORT>"),
    (re.compile(r"expires=\S+"), "expires=<TIME>"),
    (re.compile(r"ttl_left=\S+"), "ttl_left=<LEFT>"),
]


def _follower_line(owner_bin: Path, follower_bin: Path, root: Path) -> tuple[int, str]:
    root.mkdir(parents=True, exist_ok=True)
    owner = RealDaemon(owner_bin, root / "data", ttl="30s", log_path=root / "owner.log").start()
    try:
        f = RealDaemon(follower_bin, root / "data", ttl="30s", log_path=root / "follower.log").spawn()
        code = f.wait(15)
        lines = [ln for ln in f.log().splitlines() if ln.startswith("modeld follower:")]
        text = lines[-1] if lines else f.log()
        for rx, rep in _NORMALISE:
            text = rx.sub(rep, text)
        return code, text.replace(str(root), "<ROOT>")
    finally:
        owner.stop()
        owner.close()


@pytest.mark.real_daemon("none")
def test_follower_line_alike(modeld_none: BuildResult, sim_binary: Path, tmp_path: Path) -> None:
    """A second daemon on a live data root: exit 0 and the same follower line, whoever owns the lease."""
    real = _follower_line(modeld_none.binary, modeld_none.binary, tmp_path / "rr")
    sim = _follower_line(sim_binary, sim_binary, tmp_path / "ss")
    assert real[0] == 0 and real[1].startswith("modeld follower: reason=lease_held"), real
    assert sim == real
