"""Shared helpers of the real-engine tests, and a launcher for ``modeld-sim serve`` with a real engine.

Run as a script it is ``modeld-sim`` itself (``modeld_sim.cli.main``), with one addition: when the
simulator's engine factory does not know the real engines yet, it is taught them first
(``modeld_sim.engines.llama.LlamaEngine`` / ``modeld_sim.engines.openvino.OpenVINOEngine``). Once
``modeld_sim.simulator._make_engine`` builds them itself this is a no-op.

    python tests/engines/_engines_support.py serve --engine llama --model M.gguf --data-root D
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.strict import unavailable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REQUIRE_ENV = "MODELD_REQUIRE_LLAMA"
REQUIRE_OV_ENV = "MODELD_REQUIRE_OPENVINO"
_TOX_ENV = {REQUIRE_ENV: "sim-llama", REQUIRE_OV_ENV: "sim-openvino"}


def _wheel_failure() -> str:
    """The message of the last failed llama-cpp-python wheel build on this machine ("" if none)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_llama_wheel", REPO / "tools" / "build_llama_wheel.py"
    )
    if spec is None or spec.loader is None:
        return ""
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.last_failure())


def require_or_skip(available: bool, reason: str, env: str = REQUIRE_ENV) -> None:
    """Nothing when the engine is here. Without it: when ``env=1`` says this run is for the engine (its tox
    env), the engine is unavailable — a failure under strict mode (CI, ``MODELD_STRICT``), a skip otherwise,
    with the wheel build's failure if there was one; any other run skips (the engine is not part of it)."""
    if available:
        return
    if os.environ.get(env, "") == "1":
        failed = _wheel_failure() if env == REQUIRE_ENV else ""
        why = f"{reason}; {env}=1 asks for it"
        unavailable(f"{why}\n{failed}" if failed else why)
    pytest.skip(f"{reason} (the engine's tests run in `tox -e {_TOX_ENV.get(env, '?')}`, which sets {env}=1)")


def _teach_engines() -> None:
    from modeld_sim import cli, simulator

    try:
        simulator._make_engine("llama", "llama", None)
        return  # the simulator builds real engines itself
    except Exception:
        pass
    original = simulator._make_engine

    def make_engine(name: str, backend: str, model: str | None) -> Any:
        if name == "llama":
            if backend != "llama":
                raise simulator.SimulatorError(f"engine 'llama' serves backend llama, not {backend!r}")
            from modeld_sim.engines.llama import LlamaEngine

            return LlamaEngine(model=model)
        if name == "openvino":
            if backend != "openvino":
                raise simulator.SimulatorError(f"engine 'openvino' serves backend openvino, not {backend!r}")
            from modeld_sim.engines.openvino import OpenVINOEngine

            return OpenVINOEngine(model=model)
        return original(name, backend, model)

    setattr(simulator, "_make_engine", make_engine)  # noqa: B010
    setattr(cli, "_IMPLEMENTED_ENGINES", ("fake", "llama", "openvino"))  # noqa: B010


class ServeProcess:
    """``modeld-sim serve`` with a real engine as a subprocess, found through its lease."""

    def __init__(self, data_root: Path, *, engine: str, model: str, ttl: str = "30s") -> None:
        self.data_root = data_root
        backend = "llama" if engine == "llama" else "openvino"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_engines_support.py"),
                "serve",
                "--data-root",
                str(data_root),
                "--backend",
                backend,
                "--engine",
                engine,
                "--model",
                model,
                "--ttl",
                ttl,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, TZ="UTC"),
            cwd=str(REPO),
        )
        self.lease = self._wait_for_lease()

    def _wait_for_lease(self) -> dict[str, Any]:
        path = self.data_root / "modeld.lease"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"modeld-sim exited {self.proc.returncode}: {out!r} {err!r}")
            try:
                lease: dict[str, Any] = json.loads(path.read_text())
                if lease.get("meta", {}).get("endpoint"):
                    return lease
            except (OSError, ValueError):
                pass
            time.sleep(0.02)  # polling a file the subprocess writes
        raise RuntimeError("modeld-sim did not publish its lease within 30 s")

    @property
    def endpoint(self) -> str:
        return str(self.lease["meta"]["endpoint"])

    @property
    def instance_id(self) -> str:
        return str(self.lease["instance_id"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            if s is not None:
                s.close()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _teach_engines()
    from modeld_sim.cli import main

    sys.exit(main())
