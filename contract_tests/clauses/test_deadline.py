"""C-DEADLINE: no call waits forever — a wedged daemon, a silent port, a hanging answer.

Sources: real-daemon-observations.md (wedged daemon: the Go connector fails after 20 s per call),
lease-and-discovery.md §7.3 (timeout → unreachable), wire.md §9.1 (deadline_exceeded),
session-semantics.md §4.4."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from modeld_contract.clauses._util import binary_env, lease_bytes, prefix, write_lease
from modeld_contract.connectors.protocol import HARNESS_TIMEOUT, ConnectorError
from modeld_contract.targets import SubprocessSimTarget, silent_listener

clause = pytest.mark.clause
CFG = {"NumCtx": 128}
CALLER_DEADLINE = 1.5
SLACK = 3.0


def _bounded(fn: Any) -> tuple[ConnectorError | None, float]:
    t0 = time.monotonic()
    try:
        fn()
    except ConnectorError as err:
        return err, time.monotonic() - t0
    return None, time.monotonic() - t0


@pytest.fixture
def wedged(tmp_path: Any) -> Iterator[SubprocessSimTarget]:
    t = SubprocessSimTarget(str(tmp_path / "wedged"))
    t.wedge()
    yield t
    t.unwedge()
    t.stop()


@clause("C-DEADLINE-01", source="real-daemon-observations.md (wedged daemon, SIGSTOP)")
def test_C_DEADLINE_01_wedged_daemon(modeld_connector: Any, wedged: SubprocessSimTarget) -> None:
    """A SIGSTOPped daemon: available/backend answer from the lease; status fails unreachable in time."""
    modeld_connector.configure(wedged.data_root)
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == "llama"
    err, took = _bounded(lambda: modeld_connector.status(timeout=CALLER_DEADLINE))
    assert err is not None and err.kind != HARNESS_TIMEOUT, f"no deadline: {err}"
    assert err.kind in ("unreachable", "deadline_exceeded"), err
    assert took <= CALLER_DEADLINE + SLACK, f"took {took:.1f} s for a {CALLER_DEADLINE} s deadline"


@clause("C-DEADLINE-02", source="lease-and-discovery.md §7.3 (health timeout → unreachable)")
def test_C_DEADLINE_02_silent_port(modeld_connector: Any, tmp_path: Any) -> None:
    """A port that accepts TCP but never speaks HTTP/2: the probe is unreachable within the deadline."""
    root = str(tmp_path / "data")
    with silent_listener() as ep:
        write_lease(root, lease_bytes(endpoint=ep))
        modeld_connector.configure(root, binary_env(root, True))
        err, took = _bounded(
            lambda: modeld_connector.open_session(
                {"model_name": "tiny", "type": "llama"}, CFG, timeout=CALLER_DEADLINE
            )
        )
    assert err is not None and err.kind != HARNESS_TIMEOUT, f"no deadline: {err}"
    assert err.kind in ("unreachable", "deadline_exceeded"), err
    assert took <= CALLER_DEADLINE + SLACK


@clause(
    "C-DEADLINE-03", source="wire.md §9.1 (deadline_exceeded); real-daemon-observations.md (grpc-timeout)"
)
@pytest.mark.needs_scripting
def test_C_DEADLINE_03_hanging_unary_call(modeld_scripted: Any) -> None:
    """A daemon that never answers a unary call: the caller's deadline ends it (deadline_exceeded)."""
    env = modeld_scripted
    env.conn.status()
    env.target.faults.add(method="Describe", action="hang", first=1)
    err, took = _bounded(lambda: env.conn.describe(env.model, CFG, timeout=CALLER_DEADLINE))
    assert err is not None and err.kind != HARNESS_TIMEOUT, f"no deadline: {err}"
    assert err.matches("deadline_exceeded") or err.kind == "unreachable", err
    assert took <= CALLER_DEADLINE + SLACK


@clause("C-DEADLINE-04", source="session-semantics.md §4.4; wire.md §8.1")
@pytest.mark.needs_scripting
def test_C_DEADLINE_04_hanging_decode(modeld_scripted: Any) -> None:
    """A Decode the daemon never answers ends with the caller's deadline, typed."""
    env = modeld_scripted
    sid = env.conn.open_session(env.model, CFG)
    env.conn.ensure_prefix(sid, prefix("hello"))
    env.target.faults.add(method="Decode", action="hang", first=1)
    t0 = time.monotonic()
    res = env.conn.decode(sid, {"MaxTokens": 3}, timeout=CALLER_DEADLINE)
    took = time.monotonic() - t0
    assert res.error is not None and res.error.kind != HARNESS_TIMEOUT, f"no deadline: {res.error}"
    assert res.error.matches("deadline_exceeded"), res.error
    assert took <= CALLER_DEADLINE + SLACK


@clause("C-DEADLINE-05", source="session-semantics.md §2.1 (session calls take a deadline)")
@pytest.mark.needs_scripting
def test_C_DEADLINE_05_hanging_session_call(modeld_scripted: Any) -> None:
    """A session call the daemon never answers ends with the caller's deadline."""
    env = modeld_scripted
    sid = env.conn.open_session(env.model, CFG)
    env.target.faults.add(method="EnsurePrefix", action="hang", first=1)
    err, took = _bounded(lambda: env.conn.ensure_prefix(sid, prefix("hello"), timeout=CALLER_DEADLINE))
    assert err is not None and err.kind != HARNESS_TIMEOUT, f"no deadline: {err}"
    assert err.matches("deadline_exceeded"), err
    assert took <= CALLER_DEADLINE + SLACK
