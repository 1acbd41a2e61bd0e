"""Wall time of the contract suite in the default (dev) profile against the reference connector.

    python bench/suite.py [extra pytest args]
    python bench/suite.py --modeld-connector='exec:python -m modeld_contract.drivers.modeldconn'

Prints the wall time and the clause counts; the goal is <= 60 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

GOAL_S = 60.0


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
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
            "--modeld-hypothesis-profile=dev",
            f"--modeld-report={report}",
            *argv,
        ]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.monotonic() - t0
        counts = {}
        if os.path.exists(report):
            with open(report) as f:
                counts = json.load(f)["counts"]
    verdict = "OK" if wall <= GOAL_S else "OVER GOAL"
    print(
        f"contract suite wall time: {wall:.1f} s (goal <= {GOAL_S:.0f} s: {verdict}); clauses: {counts}; "
        f"pytest exit {proc.returncode}"
    )
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
