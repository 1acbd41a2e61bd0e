"""``python -m modeldconn status``: against a running ``modeld-sim serve`` and every probe state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from connector_testlib import ServeProcess, closed_port

from modeldconn import __main__ as doctor
from modeldconn import gotime
from modeldconn import lease as liblease

VENV_BIN = os.path.dirname(sys.executable)


def run_doctor(root: str, *args: str, binary: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONTENOX_MODELD_BIN", "CONTENOX_DATA_ROOT")}
    env["PATH"] = f"{VENV_BIN}:/usr/bin:/bin"
    if binary:
        env["CONTENOX_MODELD_BIN"] = binary
    return subprocess.run(
        [sys.executable, "-m", "modeldconn", "status", "--data-root", root, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def binary(tmp_path: Path) -> str:
    p = tmp_path / "bin" / "modeld"
    p.parent.mkdir()
    p.write_text("#!/bin/sh\nexit 1\n")
    p.chmod(0o755)
    return str(p)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    p = ServeProcess(str(tmp_path / "root"), "--ttl", "60s")
    try:
        await p.wait_ready()
        yield p
    finally:
        p.stop()


def write_lease(root: str, endpoint: str, renewed_ago: float = 0.0, ttl: float = 60.0) -> None:
    os.makedirs(root, exist_ok=True)
    t = gotime.GoTime(time.time_ns() - int(renewed_ago * 1e9), 0)
    rec = liblease.LeaseRecord(
        instance_id="iid-x",
        pid=1,
        host="h",
        acquired_at=t,
        renewed_at=t,
        ttl_ns=int(ttl * 1e9),
        meta={"endpoint": endpoint, "backend": "llama"},
    )
    with open(liblease.lease_path(root), "wb") as f:
        f.write(liblease.encode_record(rec))


async def test_doctor_against_a_running_daemon(served: ServeProcess) -> None:
    st = await served.wait_ready()
    r = run_doctor(served.root, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["state"] == "running" and doc["healthy"] is True and doc["error"] is None
    assert doc["endpoint"] == st.endpoint and doc["instance_id"] == st.instance and doc["backend"] == "llama"
    assert doc["health"] == {"instance_id": st.instance, "ready": True, "backend": "llama"}
    assert doc["status"]["owner_instance_id"] == st.instance and doc["status"]["state"] == "Empty"
    text = run_doctor(served.root)
    assert text.returncode == 0
    assert text.stdout.startswith("modeld: running\n")
    for want in (st.endpoint, st.instance, "slot:      Empty", "health:    ready"):
        assert want in text.stdout


async def test_doctor_reports_a_wedged_daemon_within_its_timeout(served: ServeProcess) -> None:
    served.sigstop()
    try:
        t0 = time.monotonic()
        r = run_doctor(served.root, "--json", "--timeout", "1")
        took = time.monotonic() - t0
    finally:
        served.sigcont()
    assert r.returncode == 6
    doc = json.loads(r.stdout)
    assert (
        doc["state"] == "unreachable"
        and doc["error"] == "modeld holds a lease but does not answer a health probe"
    )
    assert took < 1 + 5  # interpreter start-up included


@pytest.mark.parametrize(
    ("setup", "code", "state", "error"),
    [
        ("empty", 4, "not-running", "modeld is not running"),
        ("corrupt", 4, "not-running", "modeld is not running"),
        ("stale", 5, "stale", "modeld owner is stale (the daemon may have crashed)"),
        ("closed_port", 6, "unreachable", "modeld holds a lease but does not answer a health probe"),
        ("no_binary", 3, "not-installed", "modeld is not installed"),
    ],
)
def test_doctor_probe_states(
    tmp_path: Path, binary: str, setup: str, code: int, state: str, error: str
) -> None:
    root = str(tmp_path / "root")
    os.makedirs(root)
    if setup == "corrupt":
        with open(liblease.lease_path(root), "wb") as f:
            f.write(b"{nope\n")
    elif setup == "stale":
        write_lease(root, "127.0.0.1:1", renewed_ago=10, ttl=3)
    elif setup == "closed_port":
        write_lease(root, closed_port())
    r = run_doctor(root, "--json", binary=None if setup == "no_binary" else binary)
    assert r.returncode == code, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert (doc["state"], doc["error"], doc["healthy"]) == (state, error, False)
    text = run_doctor(root, binary=None if setup == "no_binary" else binary)
    assert text.returncode == code
    assert text.stdout.startswith(f"modeld: {state} - {error}\n")


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as ei:
        doctor.main(["nope"])
    assert ei.value.code == 2


def test_in_process_main_on_an_empty_root(
    tmp_path: Path, binary: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTENOX_MODELD_BIN", binary)
    assert doctor.main(["status", "--data-root", str(tmp_path)]) == 4
    assert capsys.readouterr().out.startswith("modeld: not-running - modeld is not running")
