"""The connector's liveness watch against the real daemon (backend none): safe with grpc-go's keepalive
enforcement, and a SIGSTOPped daemon is Unreachable within the watch's bound.

Why the watch asks Health instead of sending HTTP/2 PINGs: the daemon runs grpc-go with the default
enforcement policy (MinTime 5 min, PermitWithoutStream false); the control test below shows its
answer to a fourth PING without server writes in between, a GOAWAY ENHANCE_YOUR_CALM
``too_many_pings`` that ends the connection and every session on it.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import threading
import time
from pathlib import Path
from typing import BinaryIO, cast

import h2.errors
import pytest
from modeld_contract.h2client import RawGrpcClient
from modeld_contract.real.build import BuildResult
from modeld_contract.real.daemon import RealDaemon

import modeldconn as mc
from modeldconn.wire.fence import FENCE_HEADER, SERVICE

FAST = mc.Timeouts(liveness_interval=0.2, liveness_timeout=1.0)


class SlowSource(io.RawIOBase):
    """A model produced slowly (a pause before each chunk, in the connector's reader thread): the
    daemon has nothing to say for longer than the liveness interval, many times over."""

    def __init__(self, chunks: int, pause: float) -> None:
        super().__init__()
        self._left = chunks
        self._pause = pause
        self._tick = threading.Event()  # never set: its wait is the pause
        self.sent = 0
        self.started = threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if self.sent:
            self.started.set()
        self._tick.wait(self._pause)
        self._left -= 1
        data = (b"GGUF" if self.sent == 0 else b"") + bytes(60)
        self.sent += len(data)
        return data


@pytest.mark.real_daemon("none")
def test_a_long_watched_call_gets_no_goaway(modeld_none: BuildResult, tmp_path: Path) -> None:
    with RealDaemon(modeld_none.binary, tmp_path / "data", ttl="30s") as d:

        async def go() -> None:
            c = mc.Connector(d.data_root, timeouts=FAST)
            try:
                node = await c.endpoint(d.endpoint)
                source = SlowSource(chunks=20, pause=0.4)  # about 8 s of daemon silence
                res = await node.push_model(cast(BinaryIO, source), "slow", "llama")
                assert res.bytes_written == source.sent
                # a Health every 0.2 s of silence, dozens of them: never too many for grpc-go
                assert node.connection.liveness_checks >= 15
                # the same connection still serves (a GOAWAY would have closed it)
                assert node.connection.connected
                assert [m.name for m in await node.list_models()] == ["slow"]
            finally:
                await c.aclose()

        asyncio.run(go())


@pytest.mark.real_daemon("none")
def test_pings_would_be_too_many_for_the_daemon(modeld_none: BuildResult, tmp_path: Path) -> None:
    with RealDaemon(modeld_none.binary, tmp_path / "data", ttl="30s") as d:

        async def go() -> None:
            c = RawGrpcClient(d.host, d.port)
            try:
                s = await c.open_stream(
                    f"/{SERVICE}/PushModel", connection="p", metadata=[(FENCE_HEADER, d.instance_id)]
                )
                first = {"owner_instance_id": d.instance_id, "manifest": {"name": "m", "type": "llama"}}
                await s.send(json.dumps(first).encode())
                # a call waits, the server writes nothing: the first PING is free, two are strikes
                assert [await c.ping("p") for _ in range(3)] == [True, True, True]
                assert c.goaway("p") is None
                conn = await c.connection("p")
                await c.ping("p")
                await asyncio.wait_for(conn.closed, 10.0)  # the server closed it
                g = c.goaway("p")
                assert g is not None
                assert (g.error_code, g.debug_data) == (
                    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                    b"too_many_pings",
                )
                assert (await s.reply(5.0)).connection_lost
            finally:
                await c.aclose()

        asyncio.run(go())


@pytest.mark.real_daemon("none")
def test_a_sigstopped_daemon_under_a_waiting_call_is_unreachable(
    modeld_none: BuildResult, tmp_path: Path
) -> None:
    with RealDaemon(modeld_none.binary, tmp_path / "data", ttl="60s") as d:

        async def go() -> None:
            c = mc.Connector(d.data_root)  # the documented defaults: 2 s + 3 s
            node = await c.endpoint(d.endpoint)
            source = SlowSource(chunks=1000, pause=0.05)
            push = asyncio.ensure_future(node.push_model(cast(BinaryIO, source), "frozen", "llama"))
            try:
                await asyncio.to_thread(source.started.wait, 10.0)
                assert source.started.is_set()
                d.send_signal(signal.SIGSTOP)
                t0 = time.monotonic()
                with pytest.raises(mc.Unreachable) as info:
                    await push
                took = time.monotonic() - t0
                bound = (mc.Timeouts().liveness_interval + mc.Timeouts().liveness_timeout) * 1.2
                assert took <= bound, took
                assert str(info.value).startswith("PushModel: modeld at ")
                # and the lease-resolved calls say the same through their probe
                t0 = time.monotonic()
                with pytest.raises(mc.Unreachable):
                    await c.status()
                assert time.monotonic() - t0 <= mc.Timeouts().probe * 1.2
            finally:
                d.send_signal(signal.SIGCONT)
                push.cancel()
                await c.aclose()

        asyncio.run(go())
