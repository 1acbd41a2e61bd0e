"""C-FAILOVER: owner changes seen through the lease — takeover, clean stop, crash, grace.

Sources: edge-cases.md:10,45,47,51,103; lease-and-discovery.md §3, §5, §6; session-semantics.md §6, §7;
real-daemon-observations.md (lifecycle)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from modeld_contract.clauses._util import binary_env, prefix, raises_kind

clause = pytest.mark.clause
CFG = {"NumCtx": 128}


@pytest.fixture
def cluster_env(modeld_connector: Any, modeld_cluster: Any, tmp_path: Any) -> Any:
    modeld_connector.configure(modeld_cluster.data_root, binary_env(str(tmp_path / "b"), True))
    return modeld_connector


@clause("C-FAILOVER-01", source="edge-cases.md:10,45; session-semantics.md §6 (takeover)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_01_takeover_is_followed(cluster_env: Any, modeld_cluster: Any) -> None:
    """The lease lapses and a new owner takes over while the old one still serves: calls reach the new one."""
    c = cluster_env
    old = modeld_cluster.owner.instance_id
    assert c.status()["owner_instance_id"] == old
    new = modeld_cluster.takeover()
    assert new != old
    assert c.status()["owner_instance_id"] == new


@clause("C-FAILOVER-02", source="session-semantics.md §6; wire.md §6")
@pytest.mark.needs_scripting
def test_C_FAILOVER_02_old_session_dies_with_the_takeover(cluster_env: Any, modeld_cluster: Any) -> None:
    """A session of the old owner, after the takeover was noticed: stale_fence, session_closed or canceled."""
    c = cluster_env
    sid = c.open_session(modeld_cluster.model, CFG)
    c.ensure_prefix(sid, prefix("hello"))
    modeld_cluster.takeover()
    c.status()
    err = raises_kind(lambda: c.ensure_prefix(sid, prefix("hello")))
    # The real Go connector closed the old connection when it noticed the takeover (modeldconn.go dial):
    # the old session's call fails in grpc-go's closed ClientConn (Canceled "grpc: the client connection
    # is closing"), which transport/grpc/errors.go decodeError maps to context.Canceled.
    assert err.kind in ("stale_fence", "session_closed", "context_canceled"), err


@clause("C-FAILOVER-03", source="session-semantics.md §6 (new daemon: empty slot, new handles)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_03_open_after_takeover(cluster_env: Any, modeld_cluster: Any) -> None:
    """After a takeover a new session opens on the new owner and works."""
    c = cluster_env
    s = c.open_session(modeld_cluster.model, CFG)
    c.ensure_prefix(s, prefix("one"))
    modeld_cluster.takeover()
    s2 = c.open_session(modeld_cluster.model, CFG)
    r = c.ensure_prefix(s2, prefix("two"))
    assert r["PrefixTokens"] == 3
    assert c.status()["owner_instance_id"] == modeld_cluster.owner.instance_id


@clause("C-FAILOVER-04", source="lease-and-discovery.md §6 (stop releases the lease)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_04_clean_stop_is_not_running(cluster_env: Any, modeld_cluster: Any) -> None:
    """The owner stops and releases its lease: available false, calls fail not-running."""
    c = cluster_env
    c.status()
    modeld_cluster.owner.stop()
    assert c.available() is False
    assert raises_kind(lambda: c.status(timeout=5.0)).kind == "not-running"


@clause("C-FAILOVER-05", source="real-daemon-observations.md (SIGKILL leaves the lease); edge-cases.md:37")
@pytest.mark.needs_scripting
def test_C_FAILOVER_05_crash_then_lapse(cluster_env: Any, modeld_cluster: Any) -> None:
    """A crashed owner leaves its lease: unreachable while it is fresh, stale once it lapsed."""
    c = cluster_env
    c.status()
    modeld_cluster.owner.kill()
    assert raises_kind(lambda: c.status(timeout=5.0)).kind == "unreachable"
    modeld_cluster.wait_lapsed()
    assert raises_kind(lambda: c.status(timeout=5.0)).kind == "stale"


@clause("C-FAILOVER-06", source="edge-cases.md:51,52 (serveable grace across a restart)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_06_serveable_backend_bridges_a_restart(cluster_env: Any, modeld_cluster: Any) -> None:
    """During a restart gap backend() is "" but serveable_backend() still names the backend."""
    c = cluster_env
    assert c.serveable_backend() == "llama"
    modeld_cluster.owner.stop()
    assert c.backend() == ""
    assert c.serveable_backend() == "llama"
    modeld_cluster.owner.start()
    assert c.backend() == "llama"


@clause("C-FAILOVER-07", source="edge-cases.md:103 (followers see the advertised endpoint)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_07_endpoint_follows_the_lease(cluster_env: Any, modeld_cluster: Any) -> None:
    """After a takeover on a new port, probe reports the new endpoint and instance."""
    c = cluster_env
    modeld_cluster.takeover()
    p = c.probe(timeout=5.0)
    assert p["state"] == "running"
    assert p["endpoint"] == modeld_cluster.owner.endpoint
    assert p["instance"] == modeld_cluster.owner.instance_id


@clause("C-FAILOVER-08", source="lease-and-discovery.md §4.6 (lease deleted under a live daemon)")
@pytest.mark.needs_scripting
def test_C_FAILOVER_08_lease_removed_under_a_live_daemon(cluster_env: Any, modeld_cluster: Any) -> None:
    """The lease file disappears while the daemon still serves: the connector reports not-running."""
    c = cluster_env
    c.status()
    modeld_cluster.owner.pause_renewals()
    os.remove(os.path.join(modeld_cluster.data_root, "modeld.lease"))
    assert c.available() is False
    assert raises_kind(lambda: c.status(timeout=5.0)).kind == "not-running"
