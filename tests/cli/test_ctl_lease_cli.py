"""`modeld-sim ctl lease …` against `modeld-sim serve --control`: the lease file, the node and `ctl status`
agree after each command (docs/control-plane.md, "Who leads").

The sequence of the bug report: `lease corrupt --pause` then `lease fresh` used to write an invented lease
(new instance, closed port) while the node still believed it led, `status` said `"leader": null` while the
node said `leader`, and `lease resume` answered 409.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldconn import lease as liblease


def _ctl(root: Path, *words: str) -> tuple[int, Any, str]:
    r = subprocess.run(
        [sys.executable, "-m", "modeld_sim.cli", "ctl", "--data-root", str(root), *words],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr


def _holder(root: Path) -> str | None:
    try:
        return liblease.inspect(liblease.lease_path(root)).instance_id
    except liblease.LeaseError:
        return None


@contextlib.contextmanager
def _running(root: Path, *argv: str) -> Iterator[subprocess.Popen[str]]:
    # a TTL longer than any pause here: a node paused past its own record's expiry stops at its next
    # renew (liblease: "lease expired before renewal"), whatever the file says by then
    tail = ["--backend", "none", "--ttl", "20s", "--renew", "200ms"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeld_sim.cli", *argv, "--data-root", str(root), *tail],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while _ctl(root, "status")[0] != 0 or _holder(root) is None:
            assert time.monotonic() < deadline and proc.poll() is None, f"{argv[0]} did not start"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    root = tmp_path / "D"
    with _running(root, "serve", "--control") as proc:
        yield root, proc


def test_fresh_after_corrupt_pause_gives_the_lease_back_and_resume_works(
    served: tuple[Path, subprocess.Popen[str]],
) -> None:
    root, proc = served
    code, st, _ = _ctl(root, "status")
    iid = st["instance_id"]
    assert code == 0 and st["leader"] == "node1" and _holder(root) == iid

    code, res, err = _ctl(root, "lease", "corrupt", "--pause")
    assert code == 0, err
    assert res["leader"] is None and _holder(root) is None
    code, st, _ = _ctl(root, "status")
    assert st["leader"] is None and st["lease"] is None and "corrupt lease" in st["lease_error"]
    assert [(n["state"], n["renewals"]) for n in st["nodes"]] == [("deposed", "paused")]

    code, res, err = _ctl(root, "lease", "fresh")
    assert code == 0, err
    assert res["lease"]["instance_id"] == iid == _holder(root)  # the node's own record, not an invented one
    assert res["leader"] == "node1"
    code, st, _ = _ctl(root, "status")
    assert st["leader"] == "node1" and st["instance_id"] == iid and st["nodes"][0]["state"] == "leader"

    renewed = liblease.inspect(liblease.lease_path(root)).renewed_at.unix_ns
    code, res, err = _ctl(root, "lease", "resume")
    assert code == 0, err
    assert res["nodes"] == ["node1"] and res["leader"] == "node1"
    deadline = time.monotonic() + 10
    while liblease.inspect(liblease.lease_path(root)).renewed_at.unix_ns == renewed:  # it renews again
        assert time.monotonic() < deadline, "no renewal after lease resume"
    code, st, _ = _ctl(root, "status")
    assert st["leader"] == "node1" and st["nodes"][0]["renewals"] == "running"
    code, res, _ = _ctl(root, "lease", "resume")  # nothing paused: a no-op, not a conflict
    assert code == 0 and res["nodes"] == []
    assert proc.poll() is None


def test_steal_while_paused_deposes_the_node_and_resume_makes_it_stop(
    served: tuple[Path, subprocess.Popen[str]],
) -> None:
    root, proc = served
    code, res, err = _ctl(root, "lease", "steal", "--pause")
    assert code == 0, err
    thief = res["lease"]["instance_id"]
    assert res["leader"] is None and _holder(root) == thief
    code, st, _ = _ctl(root, "status")
    assert st["leader"] is None and st["nodes"][0]["state"] == "deposed"
    code, _, err = _ctl(root, "kill")  # the default target is the leader, and nobody leads
    assert code == 1 and "no node leads now" in err and "which no node serves" in err
    code, res, err = _ctl(root, "lease", "resume")
    assert code == 0, err
    assert res["nodes"] == ["node1"] and res["leader"] is None
    assert proc.wait(timeout=15) == 0  # the node found the lease taken over and shut down
    assert _holder(root) == thief  # the rival's record is left alone


def test_pause_with_nobody_owning_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "D"
    with _running(root, "cluster", "--size", "1"):
        assert _ctl(root, "lease", "steal")[0] == 0
        deadline = time.monotonic() + 10
        while _ctl(root, "status")[1]["nodes"][0]["state"] != "lost":  # its next renew tells it
            assert time.monotonic() < deadline, "the owner did not notice the theft"
        before = Path(liblease.lease_path(root)).read_bytes()
        code, _, err = _ctl(root, "lease", "expire", "--pause")
        assert code == 1 and "no node owns the lease" in err
        assert Path(liblease.lease_path(root)).read_bytes() == before
        code, res, _ = _ctl(root, "lease", "expire")  # without --pause the file is scripted all the same
        assert code == 0 and res["lease"]["expired"] and res["leader"] is None
