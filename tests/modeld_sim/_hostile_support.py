"""Helpers of the hostile-input tests: a simulator in a process of its own, JSON calls over the raw
HTTP/2 client, and a listing of everything under a directory."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modeld_contract.h2client import RawGrpcClient, RawReply

from modeld_sim.simulator import Simulator
from modeldconn import lease
from modeldconn.wire.fence import FENCE_HEADER, SERVICE

START_TIMEOUT_S = 30.0


@dataclass
class Served:
    host: str
    port: int
    instance_id: str
    data_root: str

    def client(self) -> RawGrpcClient:
        return RawGrpcClient(self.host, self.port)


@contextmanager
def served_sim(data_root: str, *extra: str) -> Iterator[Served]:
    """``modeld-sim serve`` (llama backend, fake engine) in a child process: a freeze of the server
    cannot hide behind a freeze of the test's own event loop."""
    os.makedirs(data_root, exist_ok=True)
    argv = [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", data_root, "--ttl", "30s", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                rec = lease.inspect(lease.lease_path(data_root))
            except lease.LeaseError:
                rec = None
            if rec is not None and rec.pid == proc.pid and rec.endpoint():
                break
            assert proc.poll() is None, f"modeld-sim serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, "modeld-sim serve did not publish its lease"
            time.sleep(0.02)  # polling a file the child writes, under a deadline
        host, _, port = rec.endpoint().rpartition(":")
        yield Served(host, int(port), rec.instance_id, data_root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def call(
    client: RawGrpcClient,
    method: str,
    body: Any,
    iid: str,
    *,
    timeout: float = 10.0,
    connection: str | None = None,
) -> RawReply:
    """One call with a JSON body (a list of bodies: a client stream) and the fence header."""
    bodies = body if isinstance(body, list) else [body]
    payloads = [json.dumps(b).encode() for b in bodies]
    return await client.call(
        f"/{SERVICE}/{method}",
        payloads,
        metadata=[(FENCE_HEADER, iid)],
        timeout=timeout,
        connection=connection,
    )


def tree(root: str) -> dict[str, str]:
    """Every path under ``root`` (relative) with its kind and permission bits; file contents hashed
    by size only (enough to see that nothing was removed, added or replaced)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        # the owner's renewals come and go at any moment: liblease's acquisition lock directory and
        # its temporary lease file are not the store's, and the lease's size follows its timestamps
        dirnames[:] = [d for d in dirnames if not d.startswith("modeld.lease.acquire.lock")]
        for name in dirnames + filenames:
            if (name.startswith(".lease-") and name.endswith(".tmp")) or name.startswith(
                "modeld.lease.acquire.lock"
            ):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            size = "" if rel == "modeld.lease" else f" {st.st_size}"
            out[rel] = f"{stat.filemode(st.st_mode)}{size}"
    return out


def umask() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class SimThread:
    """An in-process simulator on an event loop of its own thread: the test's client keeps running if
    the simulator's loop is stuck, and the test can patch the simulator's functions."""

    def __init__(self, data_root: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = Simulator(data_root, backend="llama")
        self.run(self.sim.start())
        host, _, port = self.sim.endpoint.rpartition(":")
        self.served = Served(host, int(port), self.sim.instance_id, data_root)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def close(self) -> None:
        try:
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
