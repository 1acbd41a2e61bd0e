"""C-PROBE: the network probe (unfenced Health) and what lease-resolved calls do with its answer.

The connector's own ``probe`` (Go: ``LocalEndpointAddr``, which runs modeldprobe's Probe) is asked
only in the clauses about it (C-PROBE-01, -07, -11); a connector without one gets those reported not
applicable. The other clauses watch what every lease-resolved call does with the probe's answer.

Sources: edge-cases.md §B (probe_health_test.go), §C (endpoint_test.go), lease-and-discovery.md §7.3,
§8, session-semantics.md §7, real-daemon-observations.md (the Go connector's discovery)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modeld_contract.clauses._util import NS, binary_env, lease_bytes, raises_kind, supported, write_lease
from modeld_contract.oracles.lease import expect
from modeld_contract.oracles.probe import Behaviour, expect_probe
from modeld_contract.profiles import suite_settings
from modeld_contract.targets import HealthStub, closed_port

clause = pytest.mark.clause

_CALLS = {
    "status": lambda c, m: c.status(timeout=5.0),
    "describe": lambda c, m: c.describe(m, {"NumCtx": 128}, timeout=5.0),
    "open_session": lambda c, m: c.open_session(m, {"NumCtx": 128}, timeout=5.0),
    "load_model": lambda c, m: c.load_model(m, {"NumCtx": 128}, timeout=5.0),
    "unload_model": lambda c, m: c.unload_model(0, timeout=5.0),
    "embed": lambda c, m: c.embed(m, {"NumCtx": 128}, "x", timeout=5.0),
    "list_models": lambda c, m: c.list_models(timeout=5.0),
    "disk_stats": lambda c, m: c.disk_stats(timeout=5.0),
}
_MODEL = {"model_name": "tiny", "type": "llama"}


def _probe(conn: Any, timeout: float = 2.0) -> dict[str, Any]:
    return dict(supported(lambda: conn.probe(timeout=timeout), "probe"))


@pytest.fixture
def stubs() -> Iterator[dict[str, HealthStub]]:
    iid = str(uuid.uuid4())
    made = {
        "healthy": HealthStub(iid).start(),
        "not-ready": HealthStub(iid, ready=False).start(),
        "wrong-instance": HealthStub(str(uuid.uuid4())).start(),
    }
    made["healthy"].lease_instance = iid  # type: ignore[attr-defined]
    yield made
    for s in made.values():
        s.stop()


@clause("C-PROBE-01", source="edge-cases.md:36,43")
def test_C_PROBE_01_healthy_owner_is_running(modeld: Any) -> None:
    """A live owner serving the lease's instance → probe running; endpoint, instance and backend are
    the lease's (read by the harness, not by the connector)."""
    p = _probe(modeld.conn, 5.0)
    assert p["state"] == "running", p
    assert p["endpoint"] == modeld.target.endpoint, p
    assert p["instance"] == modeld.target.instance_id, p
    assert p["backend"] == modeld.backend != "", p


@clause("C-PROBE-02", source="edge-cases.md:37,46; real-daemon-observations.md (closed port)")
def test_C_PROBE_02_dead_endpoint_is_unreachable(modeld_connector: Any, tmp_path: Any) -> None:
    """A fresh lease advertising a closed port → unreachable; every lease-resolved call fails so."""
    root = str(tmp_path / "data")
    write_lease(root, lease_bytes(endpoint=closed_port()))
    modeld_connector.configure(root, binary_env(root, True))
    for name in _CALLS:
        err = raises_kind(lambda name=name: _CALLS[name](modeld_connector, _MODEL))  # type: ignore[misc]
        assert err.kind == "unreachable", f"{name}: {err}"


@clause("C-PROBE-03", source="edge-cases.md:38; lease-and-discovery.md §7.3")
def test_C_PROBE_03_instance_mismatch_is_unreachable(
    modeld_connector: Any, tmp_path: Any, stubs: dict[str, HealthStub]
) -> None:
    """The endpoint is served by another instance than the lease names → unreachable."""
    root = str(tmp_path / "data")
    write_lease(root, lease_bytes(endpoint=stubs["wrong-instance"].endpoint))
    modeld_connector.configure(root, binary_env(root, True))
    assert raises_kind(lambda: modeld_connector.status(timeout=5.0)).kind == "unreachable"


@clause("C-PROBE-04", source="edge-cases.md:39; lease-and-discovery.md §8")
def test_C_PROBE_04_available_stays_offline(modeld_connector: Any, tmp_path: Any) -> None:
    """available()/backend() never touch the network: fresh lease + dead endpoint → true / its backend."""
    root = str(tmp_path / "data")
    write_lease(root, lease_bytes(endpoint=closed_port(), backend="openvino"))
    modeld_connector.configure(root, binary_env(root, True))
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == "openvino"


@clause("C-PROBE-05", source="lease-and-discovery.md §7.3 (ready false)")
def test_C_PROBE_05_not_ready_is_unreachable(
    modeld_connector: Any, tmp_path: Any, stubs: dict[str, HealthStub]
) -> None:
    """Health answering ready=false → every lease-resolved call fails unreachable."""
    root = str(tmp_path / "data")
    iid = stubs["healthy"].lease_instance  # type: ignore[attr-defined]
    write_lease(root, lease_bytes(instance_id=iid, endpoint=stubs["not-ready"].endpoint))
    modeld_connector.configure(root, binary_env(root, True))
    assert raises_kind(lambda: modeld_connector.status(timeout=5.0)).kind == "unreachable"
    assert raises_kind(lambda: modeld_connector.list_models(timeout=5.0)).kind == "unreachable"


@clause("C-PROBE-06", source="lease-and-discovery.md §7.3 (empty endpoint)")
def test_C_PROBE_06_no_endpoint_is_unreachable(modeld_connector: Any, tmp_path: Any) -> None:
    """A live lease without meta.endpoint → unreachable without dialing."""
    root = str(tmp_path / "data")
    write_lease(root, lease_bytes(endpoint=None))
    modeld_connector.configure(root, binary_env(root, True))
    assert raises_kind(lambda: modeld_connector.status(timeout=5.0)).kind == "unreachable"


@clause("C-PROBE-07", source="lease-and-discovery.md §7.3; edge-cases.md:36-39")
@suite_settings()
@given(
    behaviour=st.sampled_from(
        [
            Behaviour.HEALTHY,
            Behaviour.NOT_READY,
            Behaviour.WRONG_INSTANCE,
            Behaviour.CLOSED_PORT,
            Behaviour.NO_ENDPOINT,
        ]
    ),
    lease_has_instance=st.booleans(),
    live=st.booleans(),
)
def test_C_PROBE_07_probe_outcomes_match_the_oracle(
    modeld_connector: Any,
    tmp_path: Any,
    stubs: dict[str, HealthStub],
    behaviour: Behaviour,
    lease_has_instance: bool,
    live: bool,
) -> None:
    """Probe outcomes over server behaviours (healthy, not ready, wrong instance, closed, none)."""
    root = str(tmp_path / "data")
    iid = stubs["healthy"].lease_instance  # type: ignore[attr-defined]
    endpoint = {
        Behaviour.HEALTHY: stubs["healthy"].endpoint,
        Behaviour.NOT_READY: stubs["not-ready"].endpoint,
        Behaviour.WRONG_INSTANCE: stubs["wrong-instance"].endpoint,
        Behaviour.CLOSED_PORT: closed_port(),
        Behaviour.NO_ENDPOINT: None,
    }[behaviour]
    renewed = time.time_ns() - (0 if live else 3600 * NS)
    write_lease(
        root,
        lease_bytes(instance_id=iid if lease_has_instance else "", endpoint=endpoint, renewed_at_ns=renewed),
    )
    modeld_connector.configure(root, binary_env(root, True))
    offline = "running" if live else "stale"
    want = expect_probe(offline, behaviour, iid if lease_has_instance else "")
    assert _probe(modeld_connector)["state"] == want


@clause("C-PROBE-08", source="session-semantics.md §7; lease-and-discovery.md §8")
@pytest.mark.parametrize("name", sorted(_CALLS))
def test_C_PROBE_08_no_owner_gives_the_probe_error(modeld_connector: Any, tmp_path: Any, name: str) -> None:
    """With no lease every lease-resolved call fails with the probe's typed error (not-running)."""
    root = str(tmp_path / "data")
    root_dir = tmp_path / "data"
    root_dir.mkdir()
    modeld_connector.configure(root, binary_env(root, True))
    assert raises_kind(lambda: _CALLS[name](modeld_connector, _MODEL)).kind == "not-running"


@clause("C-PROBE-09", source="edge-cases.md:28; real-daemon-observations.md (lapsed lease)")
def test_C_PROBE_09_stale_lease_gives_stale(modeld_connector: Any, tmp_path: Any) -> None:
    """A lapsed lease: status() fails with stale (the daemon may have crashed)."""
    root = str(tmp_path / "data")
    write_lease(root, lease_bytes(renewed_at_ns=time.time_ns() - 3600 * NS))
    modeld_connector.configure(root, binary_env(root, True))
    assert raises_kind(lambda: modeld_connector.status(timeout=5.0)).kind == "stale"


@clause("C-PROBE-10", source="session-semantics.md §7; lease-and-discovery.md §8 (every call probes)")
@pytest.mark.needs_scripting  # rewrites the target's lease and pauses its owner's renewals
def test_C_PROBE_10_every_call_probes_first(modeld: Any, tmp_path: Any) -> None:
    """A call after the lease lapsed fails stale, though a cached connection to a serving daemon exists."""
    modeld.conn.status(timeout=5.0)
    rec = lease_bytes(
        instance_id=modeld.target.instance_id,
        endpoint=modeld.target.endpoint,
        renewed_at_ns=time.time_ns() - 3600 * NS,
    )
    if not hasattr(modeld.target, "pause_renewals"):
        pytest.skip("needs a target whose renewals can be paused (the in-process simulator)")
    modeld.target.pause_renewals()
    write_lease(modeld.target.data_root, rec)
    modeld.conn.configure(modeld.target.data_root, binary_env(str(tmp_path / "b"), True))
    assert raises_kind(lambda: modeld.conn.status(timeout=5.0)).kind == "stale"


@clause("C-PROBE-11", source="edge-cases.md:26-28; lease-and-discovery.md §7.1 (Detect)")
@pytest.mark.parametrize("case", ["no-binary-no-lease", "binary-no-lease", "binary-lapsed-lease"])
def test_C_PROBE_11_probe_reports_the_offline_state(modeld_connector: Any, tmp_path: Any, case: str) -> None:
    """Without a live lease the probe reports the offline state the oracle derives from the lease and the
    binary (not-installed, not-running, stale), never running."""
    root = str(tmp_path / "data")
    os.makedirs(root)
    data = None
    if case == "binary-lapsed-lease":
        data = lease_bytes(renewed_at_ns=time.time_ns() - 3600 * NS)
        write_lease(root, data)
    binary = case != "no-binary-no-lease"
    modeld_connector.configure(root, binary_env(root, binary))
    want = expect(data, time.time_ns(), binary).state
    assert _probe(modeld_connector)["state"] == want
