"""modeld_sim.control: token file, auth, every route, and `modeld-sim ctl` against it."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modeld_sim import cli
from modeld_sim.cluster import Cluster
from modeld_sim.control import (
    CONTROL_FILE_NAME,
    ControlClient,
    ControlError,
    ControlServer,
    read_control_file,
)
from modeld_sim.transcript import Transcript
from modeldconn import lease as liblease
from modeldconn import transport as t


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[Cluster, ControlServer, ControlClient]]:
    c = Cluster(tmp_path, 2, ttl=0.4, transcript=Transcript(), stop_grace=0.1)
    await c.start()
    srv = ControlServer(c)
    await srv.start()
    try:
        yield c, srv, ControlClient.from_data_root(tmp_path)
    finally:
        await srv.stop()
        await c.stop()


def _raw(srv: ControlServer, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    try:
        conn.request("GET", "/v1/status", headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


async def test_token_file_and_auth(
    plane: tuple[Cluster, ControlServer, ControlClient], tmp_path: Path
) -> None:
    _, srv, _ = plane
    path = tmp_path / CONTROL_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = read_control_file(tmp_path)
    assert doc["endpoint"] == srv.endpoint and len(doc["token"]) >= 32
    # liblease's acquisition mutex (`modeld.lease.acquire.lock`, a directory) and its temp file
    # (`.lease-<n>.tmp`) exist only while some node renews or acquires: they may be caught mid-renew.
    entries = sorted(
        e
        for e in os.listdir(tmp_path)
        if e != "modeld.lease.acquire.lock" and not (e.startswith(".lease-") and e.endswith(".tmp"))
    )
    assert entries == [CONTROL_FILE_NAME, "modeld.lease"]
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": doc["token"]}):
        status, body = await asyncio.to_thread(_raw, srv, headers)
        assert status == 401 and json.loads(body) == {"error": "unauthorized"}
    status, _ = await asyncio.to_thread(_raw, srv, {"Authorization": f"Bearer {doc['token']}"})
    assert status == 200
    with pytest.raises(ControlError) as ei:
        await asyncio.to_thread(ControlClient(srv.endpoint, "wrong").status)
    assert ei.value.status == 401


async def test_control_file_removed_on_stop(tmp_path: Path) -> None:
    async with Cluster(tmp_path, 1, ttl=1.0, stop_grace=0.1) as c:
        async with ControlServer(c):
            assert (tmp_path / CONTROL_FILE_NAME).exists()
        assert not (tmp_path / CONTROL_FILE_NAME).exists()


async def test_faults_lease_nodes_transcript(plane: tuple[Cluster, ControlServer, ControlClient]) -> None:
    c, _, client = plane
    rule = await asyncio.to_thread(client.fault_add, {"method": "Health", "action": "health", "ready": False})
    assert rule["id"] == "r1" and c.faults.get("r1") is not None
    with pytest.raises(ControlError) as ei:
        await asyncio.to_thread(client.fault_add, {"action": "error", "token": "stale"})
    assert ei.value.status == 400 and ei.value.body["field"] == "token"
    lead = c.node(None)
    conn = t.Connection(lead.endpoint)
    try:
        assert not (await conn.health(5)).ready
    finally:
        conn.close()
    assert [r["id"] for r in await asyncio.to_thread(client.fault_list)] == ["r1"]
    await asyncio.to_thread(client.fault_remove, "r1")
    with pytest.raises(ControlError):
        await asyncio.to_thread(client.fault_remove, "r1")
    assert await asyncio.to_thread(client.fault_clear) == 0
    res = await asyncio.to_thread(client.lease, "stale", by="3s", pause=True)
    assert res["lease"]["expired"]
    new = await c.wait_leader(exclude={lead.instance_id}, timeout=5)
    st = await asyncio.to_thread(client.status)
    assert st["leader"] == new.name and st["instance_id"] == new.instance_id
    await asyncio.to_thread(client.mark, "checkpoint")
    lines = await asyncio.to_thread(client.transcript)
    assert any(e.get("method") == "Health" and e["faults"] == ["r1:health"] for e in lines)
    assert any(e.get("event") == "mark" and e["text"] == "checkpoint" for e in lines)
    with pytest.raises(ControlError) as ei:
        await asyncio.to_thread(client.node, "explode")
    assert ei.value.status == 404


async def test_ctl_cli(
    plane: tuple[Cluster, ControlServer, ControlClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, _, _ = plane
    root = str(tmp_path)

    def ctl(*words: str) -> int:
        return cli.main(["ctl", "--data-root", root, *words])

    assert (
        await asyncio.to_thread(
            ctl, "fault", "add", "method=OpenSession", "action=error", "token=model_busy", "nth=2"
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["nth"] == 2
    assert await asyncio.to_thread(ctl, "fault", "add", "action=error", "token=stale") == 2
    assert "'token'" in capsys.readouterr().err
    assert await asyncio.to_thread(ctl, "fault", "list") == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    old = c.node(None)
    assert await asyncio.to_thread(ctl, "failover") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["old_instance"] == old.instance_id != out["instance_id"]
    assert liblease.inspect(liblease.lease_path(root)).instance_id == out["instance_id"]
    target = tmp_path.parent / "rpc.jsonl"
    assert await asyncio.to_thread(ctl, "transcript", "--out", str(target)) == 0
    assert any(json.loads(x).get("event") == "failover" for x in target.read_text().splitlines())
    assert await asyncio.to_thread(ctl, "bogus") == 2
