"""modeld_sim.cluster: a leader and standbys on one data root; kill, wedge, partition, failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from modeld_sim.cluster import Cluster, ClusterError
from modeldconn import lease as liblease
from modeldconn import transport as t
from modeldconn.wire import errors as werr

TTL = 0.3
RENEW = 0.1


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, 3, ttl=TTL, renew=RENEW, stop_grace=0.1)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def _lease(c: Cluster) -> liblease.LeaseRecord:
    return liblease.inspect(liblease.lease_path(c.data_root))


async def test_one_leader_standbys_and_kill(cluster: Cluster) -> None:
    lead = cluster.node(None)
    assert lead.name == "node1" and _lease(cluster).instance_id == lead.instance_id
    assert [n.state for n in cluster.nodes] == ["leader", "standby", "standby"]
    out = await cluster.failover("kill")
    assert out["old"] == "node1" and out["new"] in ("node2", "node3")
    assert out["instance_id"] != lead.instance_id and _lease(cluster).instance_id == out["instance_id"]
    assert out["elapsed_ms"] <= (TTL + 0.25) * 1000
    assert cluster.node("node1").state == "killed"
    conn = t.Connection(out["endpoint"], out["instance_id"])
    try:
        assert (await conn.health(5)).instance_id == out["instance_id"]
    finally:
        conn.close()
    # the killed leader's port is closed
    dead = t.Connection(lead.endpoint, lead.instance_id)
    try:
        with pytest.raises(werr.ModeldError):
            await dead.health(1)
    finally:
        dead.close()


async def test_wedge_keeps_lease_until_it_lapses_then_resume_loses(cluster: Cluster) -> None:
    lead = cluster.node(None)
    await cluster.wedge()
    rec = _lease(cluster)
    assert rec.instance_id == lead.instance_id and liblease.live_for_probe(rec, time.time_ns())
    conn = t.Connection(lead.endpoint)
    try:
        with pytest.raises(werr.ModeldError):  # nothing answers
            await conn.health(0.2)
    finally:
        conn.close()
    new = await cluster.wait_leader(exclude={lead.instance_id}, timeout=5)
    assert new.name != lead.name
    await cluster.resume(lead.name)
    await wait_for(lambda: cluster.node(lead.name).state == "lost", what="the wedged owner to notice")
    assert _lease(cluster).instance_id == new.instance_id  # the rival's lease was not touched


async def test_partition_renews_but_refuses_connections(cluster: Cluster) -> None:
    lead = cluster.node(None)
    assert lead.sim is not None and lead.sim.owner is not None
    await cluster.partition()
    conn = t.Connection(lead.endpoint)
    try:
        with pytest.raises(werr.ModeldError):
            await conn.health(1)
        n = lead.sim.owner.renewals
        await wait_for(
            lambda: lead.sim is not None and lead.sim.owner is not None and lead.sim.owner.renewals > n + 1,
            what="renewals during the partition",
        )
        assert _lease(cluster).instance_id == lead.instance_id
        await cluster.heal()
        assert (await conn.health(5)).instance_id == lead.instance_id
    finally:
        conn.close()


async def test_unknown_node(cluster: Cluster) -> None:
    with pytest.raises(ClusterError):
        await cluster.kill("node9")
    with pytest.raises(ClusterError):
        await cluster.node_op("melt")


async def test_respawn_keeps_the_size(tmp_path: Path) -> None:
    async with Cluster(tmp_path, 2, ttl=TTL, renew=RENEW, respawn=True, stop_grace=0.1) as c:
        await c.failover()
        assert len(c.nodes) == 3 and sum(n.state != "killed" for n in c.nodes) == 2
        await c.failover()
        assert sum(n.state != "killed" for n in c.nodes) == 2


@pytest.mark.slow
async def test_processes_sigkill_and_sigstop(tmp_path: Path) -> None:
    async with Cluster(tmp_path, 2, ttl=0.5, procs=True) as c:
        first = c.node(None)
        assert first.proc is not None and _lease(c).pid == first.pid
        await c.wedge()  # SIGSTOP: the lease stays until it lapses
        second = await c.wait_leader(exclude={first.instance_id}, timeout=10)
        assert _lease(c).pid == second.pid
        await c.resume(first.name)  # SIGCONT: it finds the lease taken and exits
        await wait_for(
            lambda: first.proc is not None and first.proc.returncode is not None,
            timeout=10,
            what="the resumed owner to exit",
        )
        await c.add_node()
        # (if the stopped node held liblease's lock when SIGSTOPped, the second one could not renew in
        # time and gave the lease up: then the new standby leads. Either way, wait for a leader.)
        lead = await c.wait_leader(exclude={first.instance_id}, timeout=10)
        if not any(n.state == "standby" for n in c.nodes):  # the new standby leads: one more to take over
            await c.add_node()
        out = await c.failover("kill")  # SIGKILL
        assert out["old"] == lead.name and out["new"] != lead.name
