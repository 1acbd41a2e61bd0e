"""A decoded error says its sentinel's text once: ``session marked fatal; evict and reopen``, never
``session marked fatal; evict and reopen: session marked fatal; evict and reopen``.

The daemon sends ``<token>: <sentinel text>[: <detail>]`` (in a status) or ``<sentinel text>[: <detail>]``
(in a Decode chunk); the Go connector wraps the sentinel around that whole text and repeats it. Ours keeps
Go's text on ``.go_text`` and the message as received on ``.server_message``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import modeldconn as mc
from modeld_sim.cluster import Cluster
from modeld_sim.gguf import write_fake_gguf
from modeld_sim.simulator import Simulator
from modeldconn.wire import errors as E

FATAL = "session marked fatal; evict and reopen"


@pytest.mark.parametrize("row", E.SENTINELS, ids=lambda r: r.token)
@pytest.mark.parametrize("detail", [None, "boom: it broke"])
def test_every_decoded_sentinel_says_its_text_once(row: E.Sentinel, detail: str | None) -> None:
    text = row.text if detail is None else f"{row.text}: {detail}"
    message = f"{row.token}: {text}"
    got = E.error_from_status(row.code, message)
    assert got.token == row.token and got.server_message == message
    assert str(got) == text and str(got).count(row.text) == 1
    if row.token != "manifest_mismatch":  # contextasm trims the repeat in Go too
        assert got.go_text == f"{row.text}: {text}"
    assert E.status_for(got)[1] == message  # re-encoded, the daemon's message comes back unchanged
    chunk = E.error_from_chunk(text, row.token, None)
    assert chunk is not None and str(chunk) == text


def test_canceled_and_deadline_without_a_token_say_it_once() -> None:
    c = E.error_from_status(1, "context canceled")
    assert isinstance(c, E.Canceled) and str(c) == "context canceled"
    assert c.go_text == "context canceled: context canceled"
    d = E.error_from_status(4, "context deadline exceeded: while waiting")
    assert isinstance(d, E.DeadlineExceeded) and str(d) == "context deadline exceeded: while waiting"


def test_a_text_that_only_looks_alike_is_kept_whole() -> None:
    e = E.error_from_status(10, f"session_fatal: {FATAL}ish: cause")
    assert str(e) == f"{FATAL}: {FATAL}ish: cause"  # not a repeat of the sentinel text: nothing trimmed


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
        assert str(in_stream.value) == FATAL  # once, in-stream
        with pytest.raises(E.SessionFatal) as in_status:
            await session.ensure_prefix("hello world")
        assert str(in_status.value) == FATAL  # once, from a status
        assert in_status.value.server_message == f"session_fatal: {FATAL}"
        assert in_status.value.go_text == f"{FATAL}: {FATAL}"
    finally:
        await conn.aclose()
