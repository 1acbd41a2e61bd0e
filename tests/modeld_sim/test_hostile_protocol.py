"""Hostile input at the simulator's HTTP/2 layer: one request never freezes the server nor kills the
connection it came on.

* An oversized field echoed into ``grpc-message`` (``:path``, content-type, grpc-encoding, grpc-timeout,
  a model name) is answered at once: over the header-list size the client advertised, with
  RST_STREAM(INTERNAL_ERROR) as grpc-go does; without one, with the whole echo (the real daemon's
  answers: ``tests/real/test_real_hostile_protocol.py``). Before, hpack's quadratic Huffman encoder ran
  on the event loop: a 512 KB ``:path`` took 54 s, Health went unanswered and the lease could lapse.
* A SETTINGS ACK and a 40 KB DATA frame in one segment (the server advertised 16 MiB frames).
* PINGs are policed as grpc-go's default keepalive enforcement does (GOAWAY ENHANCE_YOUR_CALM
  ``too_many_pings``), so a connector that pings too often fails here as it fails on the real daemon.
* A header block too large to decode is refused before any decoding work.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import h2.errors
import pytest
from modeld_contract.h2client import RawGrpcClient
from modeld_contract.real.daemon import read_lease
from modeld_contract.targets import SubprocessSimTarget

from modeld_sim import transport
from modeld_sim.simulator import Simulator
from modeldconn.wire.fence import FENCE_HEADER, SERVICE

HEALTH = f"/{SERVICE}/Health"
BIG = 512 * 1024
#: The issue's acceptance: a 512 KB :path answered within 1 s (it took 54 s); measured about 0.2 s.
ANSWER_WITHIN_S = 1.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    """``modeld-sim serve`` in a process of its own: (host, port, instance id). A freeze of the server
    cannot then hide behind a freeze of the test's own loop."""
    t = SubprocessSimTarget(str(tmp_path / "data"))
    try:
        rec = read_lease(Path(t.data_root))
        assert rec is not None
        host, _, port = str(rec["meta"]["endpoint"]).rpartition(":")
        yield host, int(port), str(rec["instance_id"])
    finally:
        t.stop()


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    s = Simulator(str(tmp_path / "data"))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def _addr(sim: Simulator) -> tuple[str, int]:
    host, _, port = sim.endpoint.rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("header_list_size", [65536, None], ids=["client-limit-64KiB", "no-client-limit"])
async def test_a_512_kb_path_is_answered_within_a_second_while_health_answers(
    served: tuple[str, int, str], header_list_size: int | None
) -> None:
    host, port, _ = served
    loop = asyncio.get_running_loop()
    attacker = RawGrpcClient(host, port, validate_headers=False, header_list_size=header_list_size)
    watcher = RawGrpcClient(host, port)
    path = "/" + "a" * BIG
    try:
        assert (await watcher.call(HEALTH, [b"{}"], connection="w")).code == 0
        # a settled connection (both SETTINGS acknowledged), as in the attack that froze the server
        assert (await attacker.call(HEALTH, [b"{}"], connection="a")).code == 0
        for _ in range(3):
            t0 = loop.time()
            attack = asyncio.create_task(attacker.call(path, [b"{}"], connection="a", timeout=120))
            # Health on its own connection, sent while the server is busy with the attack
            health = await watcher.call(HEALTH, [b"{}"], connection="w", timeout=120)
            health_took = loop.time() - t0
            answer = await attack
            attack_took = loop.time() - t0
            assert health.code == 0, health
            assert health_took < ANSWER_WITHIN_S, f"Health waited {health_took:.2f} s behind the attack"
            assert attack_took < ANSWER_WITHIN_S, f"the 512 KB :path took {attack_took:.2f} s"
            if header_list_size is None:
                # the real daemon's answer to a client that set no limit: the whole echo
                assert (answer.code, answer.message) == (12, f'malformed method name: "{path}"')
            else:
                # over what the client accepts: RST_STREAM(INTERNAL_ERROR), as grpc-go
                assert answer.code is None and answer.reset_code == h2.errors.ErrorCodes.INTERNAL_ERROR
            assert attacker.goaway("a") is None
    finally:
        await attacker.aclose()
        await watcher.aclose()


async def test_a_bad_header_leaves_the_other_calls_on_the_connection_running(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port, validate_headers=False)
    try:
        # a call in flight on the connection (an upload waiting for its next frame)
        upload = await c.open_stream(
            f"/{SERVICE}/PushModel", connection="c", metadata=[(FENCE_HEADER, sim.instance_id)]
        )
        first = {
            "owner_instance_id": sim.instance_id,
            "manifest": {"name": "kept", "type": "llama", "format": "file"},
        }
        await upload.send(json.dumps(first).encode())
        bad = await c.call(HEALTH, [b"{}"], metadata=[(FENCE_HEADER, "x\0y")], connection="c")
        assert bad.reset_code == h2.errors.ErrorCodes.PROTOCOL_ERROR and not bad.connection_lost
        empty = await c.call("", [b"{}"], connection="c")
        assert (empty.code, empty.message) == (12, 'malformed method name: ""')
        # the upload in flight is untouched: it ends normally
        await upload.send(json.dumps({"data": "R0dVRg=="}).encode(), end=True)
        done = await upload.reply()
        assert done.code == 0 and json.loads(done.messages[0]) == {"bytes_written": 4}
        assert c.goaway("c") is None
    finally:
        await c.aclose()


async def test_a_long_model_name_echoed_by_a_handler_is_bounded_too(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port)
    body = json.dumps({"owner_instance_id": sim.instance_id, "name": "n" * BIG}).encode()
    try:
        r = await c.call(
            f"/{SERVICE}/RemoveModel", [body], metadata=[(FENCE_HEADER, sim.instance_id)], connection="c"
        )
        assert r.code is None and r.reset_code == h2.errors.ErrorCodes.INTERNAL_ERROR
        # the stream alone: the connection carries on
        assert (await c.call(HEALTH, [b"{}"], connection="c")).code == 0
    finally:
        await c.aclose()


async def test_a_settings_ack_and_a_40_kb_data_frame_in_one_segment(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port)
    try:
        conn = await c.connection("c", hold_settings_ack=True)
        body = b"{}" + b" " * 40_000  # trailing white space is valid JSON
        # the precondition: the client may send the body as one 40 KB frame (the server said 16 MiB)
        assert conn.h2.max_outbound_frame_size > len(body) + 5
        r = await c.call(HEALTH, [body], connection="c")
        assert c.goaway("c") is None
        assert r.code == 0 and json.loads(r.messages[0])["instance_id"] == sim.instance_id
    finally:
        await c.aclose()


async def test_pinging_more_often_than_grpc_go_allows_gets_too_many_pings(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port)
    try:
        # grpc-go: the first ping is free, the next two are strikes, the third strike is too many
        assert [await c.ping("idle") for _ in range(3)] == [True, True, True]
        assert c.goaway("idle") is None
        conn = await c.connection("idle")
        await c.ping("idle")
        await asyncio.wait_for(conn.closed, 10.0)  # the server closed it
        g = c.goaway("idle")
        assert g is not None
        assert (g.error_code, g.debug_data) == (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings")
    finally:
        await c.aclose()


async def test_pings_with_answers_in_between_are_never_too_many(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port)
    try:
        for _ in range(10):
            assert await c.ping("busy")
            # the server writes HEADERS and DATA: grpc-go forgives the strikes at the next ping
            assert (await c.call(HEALTH, [b"{}"], connection="busy")).code == 0
        assert c.goaway("busy") is None
    finally:
        await c.aclose()


async def test_pings_are_policed_while_a_stream_waits_too(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port)
    try:
        stream = await c.open_stream(
            f"/{SERVICE}/PushModel", connection="s", metadata=[(FENCE_HEADER, sim.instance_id)]
        )
        first = {"owner_instance_id": sim.instance_id, "manifest": {"name": "m", "type": "llama"}}
        await stream.send(json.dumps(first).encode())
        assert [await c.ping("s") for _ in range(3)] == [True, True, True]
        conn = await c.connection("s")
        await c.ping("s")
        await asyncio.wait_for(conn.closed, 10.0)  # the server closed it
        g = c.goaway("s")
        assert g is not None and g.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert (await stream.reply(5.0)).connection_lost
    finally:
        await c.aclose()


async def test_a_header_block_too_large_to_decode_ends_only_that_connection(sim: Simulator) -> None:
    host, port = _addr(sim)
    c = RawGrpcClient(host, port, validate_headers=False)
    other = RawGrpcClient(host, port)
    try:
        big = "v" * (transport.MAX_HEADER_BLOCK_BYTES + 1)
        r = await c.call(HEALTH, [b"{}"], metadata=[("x-big", big)], connection="c", timeout=30)
        assert r.connection_lost
        g = c.goaway("c")
        assert g is not None and g.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert (await other.call(HEALTH, [b"{}"])).code == 0
    finally:
        await c.aclose()
        await other.aclose()


# -- Go's texts, recorded from Go 1.26 (strconv.Quote; grpc-go decodeBinHeader's base64 errors) --------

GO_QUOTE = [
    ("", '""'),
    ("abc", '"abc"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("é\u200b", '"é\\u200b"'),
    ("\x00\x01\t\n\r\x7f", '"\\x00\\x01\\t\\n\\r\\x7f"'),
    (b"\xff\xfe".decode("utf-8", "surrogateescape"), '"\\xff\\xfe"'),
    (b"\xed\xa0\x80".decode("utf-8", "surrogateescape"), '"\\xed\\xa0\\x80"'),
    ("日本", '"日本"'),
    ("\U0001f600", '"\U0001f600"'),
    ("\u00ad", '"\\u00ad"'),
    ("\u2028", '"\\u2028"'),
    (" x ", '" x "'),
]

GO_BIN_HEADER_ERROR: list[tuple[bytes, int | None]] = [
    (b"", None),
    (b"!!!", 0),
    (b"QQ", None),
    (b"QQ=", 2),
    (b"QQ==", None),
    (b"Q", 0),
    (b"QUJD", None),
    (b"QUJ", None),
    (b"QUJD=", 4),
    (b"QQ=a", 2),
    (b"QQ==QQ==", 4),
    (b"QUJDRA", None),
    (b"QUJDRA==", None),
    (b"QUJDRA=", 6),
    (b"QU=D", 2),
    (b"Q===", 1),
    (b"QQ\r\n==", 4),
    (b"QUJD\n", None),
    (b"a b", 1),
    (b"QUJDR", 4),
]


@pytest.mark.parametrize(("value", "quoted"), GO_QUOTE)
def test_go_quote_matches_strconv_quote(value: str, quoted: str) -> None:
    assert transport.go_quote(value) == quoted


@pytest.mark.parametrize(("value", "offset"), GO_BIN_HEADER_ERROR)
def test_binary_metadata_errors_match_go_base64(value: bytes, offset: int | None) -> None:
    assert transport._bin_header_error(value) == offset


def test_our_huffman_coding_gives_hpacks_code() -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    reference = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    ours = transport._LinearHuffman()
    for data in (b"", b"a", bytes(range(256)), os.urandom(3000), b"/contenox.transport.v1.Compute/Health"):
        assert ours.encode(data) == reference.encode(data)
