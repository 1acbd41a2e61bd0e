"""The control plane cannot be held open by a client that never finishes its request: the whole
request must arrive within a deadline however slowly it trickles, and connections are capped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modeld_sim.cluster import Cluster
from modeld_sim.control import ControlServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ControlServer]:
    c = Cluster(tmp_path, 1, ttl=0.4, stop_grace=0.1)
    await c.start()
    srv = ControlServer(c)
    srv.read_deadline_s = 1.0
    srv.max_connections = 4
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
        await c.stop()


async def _status_line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout=10.0)


async def test_a_trickled_request_is_cut_at_the_deadline(server: ControlServer) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /v1/status HTTP/1.1\r\n")
    loop = asyncio.get_running_loop()
    start = loop.time()
    answer = asyncio.ensure_future(_status_line(reader))
    # one header line every 0.3 s: each line is "on time", the request as a whole never is
    while not answer.done() and loop.time() - start < 8.0:
        writer.write(b"X-Trickle: 1\r\n")
        await writer.drain()
        await asyncio.wait({answer}, timeout=0.3)
    line = await answer
    assert line.startswith(b"HTTP/1.1 408 ")
    await asyncio.wait_for(reader.read(), timeout=10.0)  # returns only once the server has closed
    assert reader.at_eof()
    writer.close()


async def test_connections_beyond_the_cap_are_refused_at_once(server: ControlServer) -> None:
    held = [await asyncio.open_connection(server.host, server.port) for _ in range(server.max_connections)]
    # the held connections are being served (they wait for their request line)
    for _ in range(200):
        if len(server._active) >= server.max_connections:
            break
        await asyncio.sleep(0.01)  # poll interval of a wait with a deadline
    assert len(server._active) >= server.max_connections
    reader, writer = await asyncio.open_connection(server.host, server.port)
    line = await _status_line(reader)
    assert line.startswith(b"HTTP/1.1 503 ")
    writer.close()
    for _, w in held:
        w.close()


def test_a_control_file_left_by_a_dead_simulator_is_removed(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from modeld_sim.control import control_path, remove_stale_control_file

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    path = control_path(tmp_path)
    doc = {"endpoint": "127.0.0.1:9", "token": "t" * 43, "pid": int(dead.stdout)}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    live = dict(doc, pid=os.getpid())
    assert remove_stale_control_file(tmp_path) is True
    assert not os.path.exists(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(live, f)
    assert remove_stale_control_file(tmp_path) is False
    assert os.path.exists(path)
