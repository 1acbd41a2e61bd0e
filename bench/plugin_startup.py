"""What the installed plugin costs a pytest run that does not use the suite.

    python bench/plugin_startup.py [--runs 15]

The package's ``pytest11`` entry point loads ``modeld_contract.plugin`` into every pytest run of the
environment. This prints, side by side in one run:

* the plugin's import time (``python -X importtime``: what importing the plugin module adds once
  pytest is imported, best of 5), against the anchor of importing ``pytest`` itself;
* the wall time of an empty, unrelated project's run (one trivial test) with the plugin loaded and
  with ``-p no:modeld``, median of ``--runs`` alternating runs, and their ratio; and, for the whole
  install, against a run without Hypothesis's plugin either (a hard dependency of the suite).

Goal: the ratio is 1.00 within noise (<= 1.02), and the plugin's import under 5 % of pytest's.
Never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.02
GOAL_IMPORT_SHARE = 0.05


def _import_us(module: str, after: str = "") -> int:
    """Cumulative import time of ``module`` in a fresh interpreter, microseconds (``after``: a module
    imported first, whose cost is then not counted)."""
    code = (f"import {after}; " if after else "") + f"import {module}"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no import time line for {module}")


# the pytest plugins an install of the package brings: ours, and Hypothesis's (a hard dependency)
OURS = ("-p", "no:modeld")
WITH_DEPENDENCIES = (*OURS, "-p", "no:hypothesispytest")


# plugins of this development environment that an install of the package does not bring (the dev
# extra's pyfakefs and pytest-asyncio): left out of every run, so the figures are a provider's
NOT_INSTALLED_BY_US = ("-p", "no:pyfakefs", "-p", "no:asyncio")


def _run_once(project: Path, disable: tuple[str, ...]) -> float:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NOT_INSTALLED_BY_US, *disable]
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MODELD_STRICT", "PYTEST_ADDOPTS")}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=project, env=env, capture_output=True, check=True)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args(argv)

    # the plugin is imported by pytest, so only what it adds to pytest counts
    plugin_us = min(_import_us("modeld_contract.plugin", after="pytest") for _ in range(5))
    pytest_us = min(_import_us("pytest") for _ in range(5))
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_unrelated.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        with_plugin: list[float] = []
        without: list[float] = []
        bare: list[float] = []
        _run_once(project, ())  # warm the file cache for all
        for _ in range(a.runs):
            with_plugin.append(_run_once(project, ()))
            without.append(_run_once(project, OURS))
            bare.append(_run_once(project, WITH_DEPENDENCIES))
    w, wo, b = (statistics.median(x) for x in (with_plugin, without, bare))
    share = plugin_us / pytest_us
    print(f"{'measure':<44} {'value':>10}  {'anchor':>10}  {'ratio':>6}  goal")
    print(
        f"{'import modeld_contract.plugin (after pytest)':<44} {plugin_us / 1000:>8.1f}ms  "
        f"{pytest_us / 1000:>8.1f}ms  {share:>6.3f}  <= {GOAL_IMPORT_SHARE:.2f} (anchor: import pytest)"
    )
    print(
        f"{'empty unrelated run, plugin loaded':<44} {w * 1000:>8.1f}ms  {wo * 1000:>8.1f}ms  "
        f"{w / wo:>6.3f}  <= {GOAL_RATIO:.2f} (anchor: -p no:modeld; median of {a.runs})"
    )
    print(
        f"{'empty unrelated run, all the install brings':<44} {w * 1000:>8.1f}ms  {b * 1000:>8.1f}ms  "
        f"{w / b:>6.3f}  (anchor: without ours and Hypothesis's plugin; informative: Hypothesis's "
        "plugin is its own)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
