"""Discovery as the Go connector saw it (``go-connector-discovery.jsonl``): the same 7 data-root
states, our connector's Available / Backend / ServeableBackend results and Status / OpenSession
errors (the same typed error, the same message), scenario by scenario.

A wedged daemon is a real ``modeld-sim serve`` subprocess stopped with SIGSTOP (readiness and the
stop are polled, never slept on): Go gives up after 20 s per call (grpc-go's minimum connect
timeout) whatever the caller allows; ours within the probe deadline (5 s by default,
``Timeouts(probe=…)``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from traffic_relay import MODEL, go_discovery, normalise

import modeldconn as mc
from modeld_sim.simulator import Simulator
from modeldconn import gotime, probe, transport
from modeldconn import lease as liblease
from modeldconn.wire import errors

REF = mc.ModelRef("tiny", "llama", path=MODEL)
CFG = mc.Config(num_ctx=128)

LINES = go_discovery()
SCENARIOS = list(dict.fromkeys(d["scenario"] for d in LINES))

#: Go's error text → our typed error.
ERROR_TYPES: dict[str, type[BaseException]] = {
    "modeld is not installed": mc.NotInstalled,
    "modeld is not running": mc.NotRunning,
    "modeld owner is stale (the daemon may have crashed)": mc.Stale,
    "modeld holds a lease but does not answer a health probe": mc.Unreachable,
}
#: Go took 20 s per call on a wedged daemon; ours within the probe deadline plus this margin.
MARGIN_S = 1.5


def lines_of(scenario: str) -> list[dict[str, Any]]:
    return [d for d in LINES if d["scenario"] == scenario]


def write_lease(
    root: str, *, endpoint: str, renewed_ago: float = 0.0, ttl: float = 60.0, backend: str = "llama"
) -> None:
    t = gotime.GoTime(time.time_ns() - int(renewed_ago * 1e9), 0)
    rec = liblease.LeaseRecord(
        instance_id="5d3c3f3e-0000-4000-8000-000000000001",
        pid=os.getpid(),
        host="localhost",
        acquired_at=t,
        renewed_at=t,
        ttl_ns=int(ttl * 1e9),
        meta={"backend": backend, "endpoint": endpoint},
    )
    with open(liblease.lease_path(root), "wb") as f:
        f.write(liblease.encode_record(rec))


@pytest.fixture
def root(tmp_path: Path) -> str:
    r = tmp_path / "data-root"
    r.mkdir(mode=0o700)
    return str(r)


@pytest.fixture
def path_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty PATH directory and no ``CONTENOX_MODELD_BIN`` (no modeld anywhere)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv(probe.BINARY_ENV, raising=False)
    monkeypatch.delenv(probe.DATA_ROOT_ENV, raising=False)
    yield bindir


def install_modeld(bindir: Path) -> None:
    """``modeld on PATH`` (an executable the probe finds; discovery never runs it)."""
    exe = bindir / "modeld"
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)


async def check_scenario(
    scenario: str, c: mc.Connector, subs: dict[str, str] | None = None, *, budget: float | None = None
) -> list[str]:
    """Run the scenario's calls in its order; the differences from Go's, as text."""
    problems: list[str] = []
    for line in lines_of(scenario):
        call = line["call"]
        got: Any = None
        err: BaseException | None = None
        t0 = time.monotonic()
        try:
            if call == "Available":
                got = c.available()
            elif call == "Backend":
                got = c.backend()
            elif call == "ServeableBackend":
                got = c.serveable_backend()
            elif call == "Status":
                s = await c.status()
                got = {"backend": s.backend, "owner_instance_id": s.owner_instance_id, "state": s.state}
            elif call == "OpenSession":
                sess = await c.open_session(REF, CFG)
                await sess.close()
            else:  # pragma: no cover - the recording's calls are the five above
                problems.append(f"unknown call {call}")
        except (mc.ProbeError, mc.ModeldError) as exc:
            err = exc
        took = time.monotonic() - t0
        if "error" in line:
            want = ERROR_TYPES.get(line["error"], errors.ModelLoadFailed)
            if err is None:
                problems.append(f"{call}: no error, Go: {line['error']!r}")
            elif type(err) is not want or str(err) != line["error"]:
                problems.append(f"{call}: {type(err).__name__}({str(err)!r}), Go: {line['error']!r}")
        elif err is not None:
            problems.append(f"{call}: {type(err).__name__}({err}), Go: {line.get('result')!r}")
        elif normalise(got, subs or {}) != line["result"]:
            problems.append(f"{call}: {got!r}, Go: {line['result']!r}")
        if budget is not None and took > budget:
            problems.append(f"{call}: took {took:.2f} s > {budget:.2f} s")
    return problems


# ----------------------------------------------------------------------------- offline states


def test_discovery_scenarios_are_all_covered() -> None:
    assert SCENARIOS == [
        "no_binary",
        "no_binary_live_daemon",
        "empty_root",
        "corrupt_lease",
        "stale_lease",
        "fresh_lease_closed_port",
        "wedged_daemon",
    ]
    calls = ["Available", "Backend", "ServeableBackend", "Status", "OpenSession"]
    assert all([d["call"] for d in lines_of(s)] == calls for s in SCENARIOS)


async def test_discovery_no_binary(root: str, path_env: Path) -> None:
    """No modeld on PATH, CONTENOX_MODELD_BIN unset, empty data root → not installed."""
    c = mc.Connector(root)
    assert await check_scenario("no_binary", c) == []
    await c.aclose()


async def test_discovery_no_binary_live_daemon(root: str, path_env: Path) -> None:
    """No binary, but a live daemon (backend none) owns the root: the calls work; OpenSession fails
    as the none backend's plain model_load_failed."""
    async with Simulator(root, backend="none", ttl=60.0, stop_grace=0.2) as sim:
        c = mc.Connector(root)
        try:
            assert await check_scenario("no_binary_live_daemon", c, {sim.instance_id: "<IID>"}) == []
        finally:
            await c.aclose()


async def test_discovery_empty_root(root: str, path_env: Path) -> None:
    install_modeld(path_env)
    c = mc.Connector(root)
    assert await check_scenario("empty_root", c) == []


async def test_discovery_corrupt_lease(root: str, path_env: Path) -> None:
    install_modeld(path_env)
    with open(liblease.lease_path(root), "wb") as f:
        f.write(b"{nope\n")
    c = mc.Connector(root)
    assert await check_scenario("corrupt_lease", c) == []


async def test_discovery_stale_lease(root: str, path_env: Path) -> None:
    """A lease renewed 10 s ago with ttl 3 s."""
    install_modeld(path_env)
    write_lease(root, endpoint="127.0.0.1:1", renewed_ago=10.0, ttl=3.0)
    c = mc.Connector(root)
    assert await check_scenario("stale_lease", c) == []


async def test_discovery_fresh_lease_closed_port(root: str, path_env: Path) -> None:
    """A fresh lease (ttl 60 s) on 127.0.0.1:1 (closed): unreachable at once, no deadline waited."""
    install_modeld(path_env)
    write_lease(root, endpoint="127.0.0.1:1", ttl=60.0, backend="llama")
    c = mc.Connector(root)
    try:
        assert await check_scenario("fresh_lease_closed_port", c, budget=1.0) == []
    finally:
        await c.aclose()


# ----------------------------------------------------------------------------- a wedged daemon


class Served:
    """``modeld-sim serve`` as a subprocess (the real daemon of the recording was a process too)."""

    def __init__(self, root: str, *args: str) -> None:
        self.root = root
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", root, *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def wait_healthy(self, limit: float = 20.0) -> probe.ProbeStatus:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"modeld-sim serve exited: {self.log.read()[-2000:]!r}")
            st = await probe.probe(self.root, timeout=1.0)
            if st.state is probe.ProbeState.RUNNING:
                return st
            await asyncio.sleep(0.02)  # poll interval, not synchronisation
        raise TimeoutError("modeld-sim serve did not become healthy")

    def sigstop(self) -> None:
        """Stop the process and wait until the kernel reports it stopped (state T)."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("T", "t"):
                return
            time.sleep(0.005)  # poll interval, not synchronisation
        raise TimeoutError("the daemon did not stop")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@asynccontextmanager
async def wedged(root: str) -> AsyncIterator[Served]:
    """A real daemon (backend none, ttl 60 s) stopped with SIGSTOP after its lease appeared."""
    served = Served(root, "--backend", "none", "--ttl", "60s")
    try:
        await served.wait_healthy()
        served.sigstop()
        yield served
    finally:
        served.stop()


@pytest.mark.slow
async def test_discovery_wedged_daemon_within_the_default_probe_deadline(root: str, path_env: Path) -> None:
    """Go: 20 s per call; ours: Unreachable within the documented 5 s probe deadline."""
    install_modeld(path_env)
    async with wedged(root):
        c = mc.Connector(root)  # documented defaults
        assert c.timeouts.probe == transport.DEFAULT_PROBE_TIMEOUT == 5.0
        try:
            problems = await check_scenario("wedged_daemon", c, budget=c.timeouts.probe + MARGIN_S)
        finally:
            await c.aclose()
    assert problems == []
    assert all(d.get("took_s") == 20 for d in lines_of("wedged_daemon") if "error" in d)


async def test_discovery_wedged_daemon_deadline_is_configurable(root: str, path_env: Path) -> None:
    install_modeld(path_env)
    async with wedged(root):
        c = mc.Connector(root, timeouts=mc.Timeouts(probe=1.0))
        try:
            problems = await check_scenario("wedged_daemon", c, budget=1.0 + MARGIN_S)
            # a per-call timeout bounds the whole call, probe included
            t0 = time.monotonic()
            with pytest.raises(mc.Unreachable):
                await mc.Connector(root).status(timeout=0.5)
            assert time.monotonic() - t0 <= 0.5 + MARGIN_S
        finally:
            await c.aclose()
    assert problems == []
