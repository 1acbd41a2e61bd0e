"""What a person reads says the sentinel's text once: ``session marked fatal; evict and reopen``, never
``session marked fatal; evict and reopen: session marked fatal; evict and reopen``.

The daemon sends ``<token>: <sentinel text>[: <detail>]`` (in a status) or ``<sentinel text>[: <detail>]``
(in a Decode chunk). The Go connector wraps the sentinel around that whole text and repeats it; ``str()``
keeps Go's text (the traffic tests compare it with the recordings), ``.plain_text`` drops the repeat, and
the doctor and the quickstart print ``.plain_text``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import modeldconn as mc
from modeld_sim.cluster import Cluster
from modeld_sim.control import ControlClient
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn import __main__ as doctor
from modeldconn.wire import errors as E

FATAL = "session marked fatal; evict and reopen"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("row", E.SENTINELS, ids=lambda r: r.token)
@pytest.mark.parametrize("detail", [None, "boom: it broke"])
def test_every_decoded_sentinel_reads_once(row: E.Sentinel, detail: str | None) -> None:
    text = row.text if detail is None else f"{row.text}: {detail}"
    message = f"{row.token}: {text}"
    got = E.error_from_status(row.code, message)
    assert got.token == row.token and got.server_message == message
    assert got.plain_text == text and got.plain_text.count(row.text) == 1
    if row.token != "manifest_mismatch":  # contextasm trims the repeat in Go too
        assert str(got) == f"{row.text}: {text}"  # the Go connector's own text, unchanged
    chunk = E.error_from_chunk(text, row.token, None)
    assert chunk is not None and chunk.plain_text == text


def test_plain_text_of_other_errors() -> None:
    c = E.error_from_status(1, "context canceled")
    assert isinstance(c, E.Canceled) and c.plain_text == "context canceled"
    looks_alike = E.error_from_status(10, f"session_fatal: {FATAL}ish: cause")
    assert looks_alike.plain_text == str(looks_alike) == f"{FATAL}: {FATAL}ish: cause"  # no repeat to drop
    local = E.SessionFatal("native context lost")  # made here, not decoded: nothing to drop
    assert local.plain_text == str(local) == f"{FATAL}: native context lost"
    other = E.error_from_status(3, "something else")
    assert other.plain_text == str(other)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[tuple[Simulator, Cluster]]:
    s = Simulator(tmp_path / "root", backend="llama", stop_grace=0.1)
    cluster = Cluster.attach(s)
    async with s:
        yield s, cluster


async def test_session_fatal_from_the_simulator_reads_once(
    sim: tuple[Simulator, Cluster], tmp_path: Path
) -> None:
    s, cluster = sim
    model = write_fake_gguf(tmp_path / "tiny.gguf", context_length=256)
    cluster.faults.add(
        {"method": "Decode", "action": "decode", "after_chunks": 1, "then": "error", "token": "session_fatal"}
    )
    cluster.faults.add({"method": "EnsurePrefix", "action": "error", "token": "session_fatal", "nth": 2})
    conn = mc.Connector(s.data_root)
    try:
        session = await conn.open_session(mc.ModelRef("tiny", "llama", path=model), mc.Config(num_ctx=128))
        await session.ensure_prefix("hello world")
        with pytest.raises(E.SessionFatal) as in_stream:
            async for _ in session.decode(mc.DecodeConfig(max_tokens=8)):
                pass
        assert in_stream.value.plain_text == FATAL  # once, in-stream
        with pytest.raises(E.SessionFatal) as in_status:
            await session.ensure_prefix("hello world")
        assert in_status.value.plain_text == FATAL  # once, from a status
        assert in_status.value.server_message == f"session_fatal: {FATAL}"
    finally:
        await conn.aclose()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, ControlClient]]:
    root = tmp_path / "D"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeld_sim.cli", "serve", "--data-root", str(root), "--control"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = ControlClient.from_data_root(root)
                client.status()
                break
            except (OSError, ValueError):
                assert time.monotonic() < deadline and proc.poll() is None, "serve --control did not start"
        yield root, client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_quickstart_prints_it_once(served: tuple[Path, ControlClient]) -> None:
    root, client = served
    client.fault_add(
        {"method": "Decode", "action": "decode", "after_chunks": 2, "then": "error", "token": "session_fatal"}
    )
    env = dict(os.environ, CONTENOX_DATA_ROOT=str(root))
    env.pop("MODELD_MODEL", None)
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 2  # two chunks, then the error
    assert r.stderr == f"quickstart: the daemon at {root} refused: {FATAL}\n"


def test_the_doctor_prints_it_once(
    served: tuple[Path, ControlClient], capsys: pytest.CaptureFixture[str]
) -> None:
    root, client = served
    client.fault_add({"method": "Status", "action": "error", "token": "model_busy"})
    assert doctor.main(["status", "--data-root", str(root)]) == doctor.EXIT_STATUS_FAILED
    out = capsys.readouterr().out
    busy = "modeld active model slot is busy"
    assert f"failed: ModelBusy: {busy}\n" in out + "\n" and out.count(busy) == 1
