"""Mutation check: the contract suite fails every deliberately broken connector on at least one clause.

Each broken variant (tests/broken_connectors/) runs the whole default-profile suite in a subprocess
(``--modeld-connector=<name>:make``, tests/broken_connectors on ``PYTHONPATH``) with a JSON report; the
test asserts a clause *failed* (a set-up error kills nothing) and names the clauses that caught the
defect. The reference connector itself passing is checked by the acceptance command, not here (it
would double the run time). The shipped library of broken connectors and its runner are tested in
test_mutants_runner.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).resolve().parent.parent / "broken_connectors"
MUTANTS = {
    "stale_lease": "C-LEASE",
    "no_redial": "C-FAILOVER",
    "no_fence": "C-",
    "swallow_backend_mismatch": "C-ERR",
    "no_deadline": "C-DEADLINE",
    "miscount_reused": "C-SESSION",
}
# Which clauses to run per mutant (the families that can see the defect), to keep the check fast.
SELECT = {
    "stale_lease": "LEASE or PROBE",
    "no_redial": "FAILOVER or FENCE",
    "no_fence": "OPEN or FENCE",
    "swallow_backend_mismatch": "ERR",
    "no_deadline": "DEADLINE",
    "miscount_reused": "SESSION",
}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_suite_catches_mutant(mutant: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    # the directory itself goes on the path (not tests/: its contract_tests/ would shadow the package)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BROKEN), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "modeld_contract",
        "-p",
        "modeld",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--modeld-connector={mutant}:make",
        f"--modeld-report={report}",
        "-k",
        SELECT[mutant],
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text())
    failed = [c["id"] for c in data["clauses"] if c["outcome"] == "failed"]
    assert proc.returncode != 0, f"{mutant}: the suite passed a broken connector\n{proc.stdout[-2000:]}"
    assert failed, f"{mutant}: no clause failed"
    assert any(c.startswith(MUTANTS[mutant]) for c in failed), f"{mutant}: caught only by {failed}"
    print(f"{mutant}: caught by {', '.join(failed)}")
