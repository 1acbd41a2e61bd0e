#!/usr/bin/env python3
"""Run the contract suite against our daemon with a real engine, started as a separate process.

    python tests/engines/run_suite.py --engine llama [-- extra pytest args]
    python tests/engines/run_suite.py --engine openvino

Makes a tiny model (``modeld-sim make-model``), starts ``modeld-sim serve --engine <engine>`` on a
fresh data root, and runs ``pytest --pyargs modeld_contract -p modeld --modeld-target=lease:<root>
--modeld-model=<type>:<model>``: the suite finds the daemon through its lease, as it would the real
one. The daemon is stopped afterwards; the exit code is pytest's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from _engines_support import ServeProcess  # noqa: E402

from modeld_sim.makemodel import make_llama_gguf, make_openvino_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=("llama", "openvino"), required=True)
    ap.add_argument("--report", default=None, help="--modeld-report path")
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    extra = [x for x in a.pytest_args if x != "--"]
    with tempfile.TemporaryDirectory(prefix=f"suite-{a.engine}-") as d:
        root = Path(d)
        if a.engine == "llama":
            model = make_llama_gguf(str(root / "models" / "tiny.gguf"), seed=0)
        else:
            model = make_openvino_dir(str(root / "models" / "tiny-ov"), seed=0)
        daemon = ServeProcess(root / "data", engine=a.engine, model=model)
        try:
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "--pyargs",
                "modeld_contract",
                "-p",
                "modeld",
                f"--modeld-target=lease:{root / 'data'}",
                f"--modeld-model={a.engine}:{model}",
            ]
            if a.report:
                cmd.append(f"--modeld-report={a.report}")
            return subprocess.call(cmd + extra)
        finally:
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
