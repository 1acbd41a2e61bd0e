"""`modeld-sim serve` as a user starts it: the lease appears fresh, Health answers, a plain
`application/grpc` client gets the real daemon's answer, SIGTERM releases the lease and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modeld_contract.h2client import RawGrpcClient

HEALTH = "/contenox.transport.v1.Compute/Health"


def test_serve_cli_lease_health_plain_grpc_and_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "D"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root), "--backend", "llama"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, TZ="UTC"),
    )
    try:
        started = time.monotonic()
        lease: dict[str, object] = {}
        while time.monotonic() - started < 2.0 and not lease:
            try:
                lease = json.loads((root / "modeld.lease").read_text())
            except (OSError, ValueError):
                time.sleep(0.01)  # polling for the file the subprocess writes
        assert lease, "no lease within 2 s"
        meta = lease["meta"]
        assert isinstance(meta, dict) and meta["backend"] == "llama"
        host, _, port = str(meta["endpoint"]).rpartition(":")
        assert host == "127.0.0.1"

        async def calls() -> tuple[object, object]:
            async with RawGrpcClient(host, int(port)) as client:
                ok = await client.call(HEALTH, [b"{}"])
                plain = await client.call(HEALTH, [b"{}"], content_type="application/grpc")
            return ok, plain

        ok, plain = asyncio.run(calls())
        assert ok.code == 0  # type: ignore[attr-defined]
        body = json.loads(ok.messages[0])  # type: ignore[attr-defined]
        assert body == {"instance_id": lease["instance_id"], "ready": True, "backend": "llama"}
        assert plain.code == 13  # type: ignore[attr-defined]
        assert plain.message == (  # type: ignore[attr-defined]
            "grpc: error unmarshalling request: failed to unmarshal, message is *grpc.healthReq, "
            "want proto.Message"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not (root / "modeld.lease").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_cli_takes_over_a_corrupt_lease_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "D"
    root.mkdir()
    (root / "modeld.lease").write_bytes(b'{"instance_id": "x", "ttl": "30s"}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root), "--backend", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        owner = ""
        while time.monotonic() < deadline and not owner:
            with contextlib.suppress(OSError, ValueError):
                owner = json.loads((root / "modeld.lease").read_text()).get("meta", {}).get("endpoint", "")
            time.sleep(0.01)  # polling for the file the subprocess rewrites
        assert owner, "the corrupt lease was not taken over"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "taking over an unusable lease: liblease: corrupt lease" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
