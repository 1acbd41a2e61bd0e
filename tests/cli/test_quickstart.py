"""`examples/quickstart.py` run as the README says: against `modeld-sim serve` with no argument (the model
is made on the spot), and with no daemon (one line naming the probe state and the fix, exit 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldconn import lease as liblease

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def _quickstart(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONTENOX_DATA_ROOT=str(root), PATH=os.path.dirname(sys.executable))
    env.pop("MODELD_MODEL", None)
    env.pop("CONTENOX_MODELD_BIN", None)
    return subprocess.run(
        [sys.executable, str(QUICKSTART), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "D"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                liblease.inspect(liblease.lease_path(root))
                break
            except liblease.LeaseError:
                assert time.monotonic() < deadline and proc.poll() is None, "modeld-sim serve did not start"
        yield root
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_quickstart_without_argument_decodes_against_the_simulator(daemon: Path) -> None:
    r = _quickstart(daemon)
    assert r.returncode == 0, r.stderr
    chunks = r.stdout.splitlines()
    assert len(chunks) == 8 and all(c[0] in "'\"" for c in chunks)  # eight repr()'d chunk texts
    assert r.stderr == ""


def test_quickstart_with_a_model_that_does_not_exist_says_so_in_one_line(
    daemon: Path, tmp_path: Path
) -> None:
    r = _quickstart(daemon, str(tmp_path / "missing.gguf"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"quickstart: the daemon at {daemon} refused: ") and "missing.gguf" in r.stderr


@pytest.mark.parametrize(
    "lease", [None, b'{"instance_id": "gone", "renewed_at": "2020-01-01T00:00:00Z", "ttl": 1}']
)
def test_quickstart_without_a_daemon_names_the_probe_state_and_the_fix(
    tmp_path: Path, lease: bytes | None
) -> None:
    root = tmp_path / "empty"
    if lease is not None:
        root.mkdir()
        (root / "modeld.lease").write_bytes(lease)
    r = _quickstart(root)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"quickstart: no modeld serves {root} (probe: not-installed: ")
    assert r.stderr.rstrip().endswith(f"start one with: modeld-sim serve --data-root {root}")
