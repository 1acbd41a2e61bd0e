"""Hostile headers: one bad request is answered on its own stream, as the real daemon answers it.

Each case is a request the real modeld v0.36.0 (grpc-go v1.80.0 over x/net/http2) was asked with the raw
client; ``want`` is its answer (recorded with ``MODELD_REAL=none``, and checked again by the marked test
below whenever the real daemon is enabled). The simulator must give the same answer, and in every case
the connection must live on: a Health on it afterwards is answered. Before, the simulator answered most
of these with GOAWAY, killing every call and session on the connection.

Answers: ``("status", http_status, grpc_code, grpc_message)`` or ``("reset", h2_error_code)``
(RST_STREAM: 1 PROTOCOL_ERROR for what x/net's framer refuses, 2 INTERNAL_ERROR for an answer larger
than the header list the client said it accepts).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from modeld_contract.h2client import DEFAULT_CONTENT_TYPE, RawGrpcClient, RawReply
from modeld_contract.real.build import BuildResult
from modeld_contract.real.daemon import RealDaemon

from modeld_sim.simulator import Simulator
from modeldconn.wire.fence import FENCE_HEADER, SERVICE

HEALTH = f"/{SERVICE}/Health"
STATUS = f"/{SERVICE}/Status"
#: a fence-value placeholder replaced by the target's instance id
INSTANCE = "{instance}"
UNMARSHAL_HEALTH = (
    "grpc: error unmarshalling request: failed to unmarshal, message is *grpc.healthReq, want proto.Message"
)


@dataclass(frozen=True)
class Case:
    name: str
    want: tuple[object, ...]
    path: str = HEALTH
    #: extra headers after the usual ones (``(name, value)``; ``INSTANCE`` is filled in)
    extra: tuple[tuple[str, str], ...] = ()
    #: usual headers left out
    drop: tuple[str, ...] = ()
    content_type: str = DEFAULT_CONTENT_TYPE
    #: the whole header list instead (for pseudo-header order)
    raw: tuple[tuple[str, str], ...] | None = None
    #: a Status body naming the owner (the fence is then the only thing wrong)
    status_body: bool = False
    #: what the client advertises as SETTINGS_MAX_HEADER_LIST_SIZE (None: nothing, as grpc-go clients)
    header_list_size: int | None = 65536


OK = ("status", 200, 0, "")
STALE = ("status", 200, 9, "stale_fence: stale owner fence token")
PROTOCOL = ("reset", 1)
TOO_BIG = ("reset", 2)
BIG = 512 * 1024

CASES = [
    Case("empty :path", ("status", 200, 12, 'malformed method name: ""'), path=""),
    Case("no :path", ("status", 200, 12, 'malformed method name: ""'), drop=(":path",)),
    Case("NUL in the fence", PROTOCOL, STATUS, ((FENCE_HEADER, INSTANCE + "\0"),), status_body=True),
    Case("spaces around the fence", STALE, STATUS, ((FENCE_HEADER, f" {INSTANCE} "),), status_body=True),
    Case("a tab before the fence", STALE, STATUS, ((FENCE_HEADER, f"\t{INSTANCE}"),), status_body=True),
    Case("the right fence", ("status", 200, 0, ""), STATUS, ((FENCE_HEADER, INSTANCE),), status_body=True),
    Case("a connection header", PROTOCOL, extra=(("connection", "keep-alive"),)),
    Case("an upper-case name", PROTOCOL, extra=(("X-Foo", "1"),)),
    Case("a space in a name", PROTOCOL, extra=((" x", "1"),)),
    Case("CR in a value", PROTOCOL, extra=(("x-a", "a\rb"),)),
    Case("NUL in a value", PROTOCOL, extra=(("x-a", "a\0b"),)),
    Case("DEL in a value", PROTOCOL, extra=(("x-a", "a\x7fb"),)),
    Case("non-ASCII in a value", OK, extra=(("x-a", "aéb"),)),
    Case("a pseudo-header after a regular one", PROTOCOL, extra=((":foo", "1"),)),
    Case(
        "an unknown pseudo-header",
        PROTOCOL,
        raw=((":method", "POST"), (":scheme", "http"), (":path", HEALTH), (":foo", "1")),
    ),
    Case(
        ":status in a request",
        PROTOCOL,
        raw=((":status", "200"), (":method", "POST"), (":scheme", "http"), (":path", HEALTH)),
    ),
    Case(
        ":authority twice",
        PROTOCOL,
        raw=(
            (":method", "POST"),
            (":scheme", "http"),
            (":path", HEALTH),
            (":authority", "a"),
            (":authority", "b"),
        ),
    ),
    Case(
        "host twice",
        (
            "status",
            400,
            13,
            "num values of :authority: 0, num values of host: 2, "
            "both must only have 1 value as per HTTP/2 spec",
        ),
        drop=(":authority",),
        extra=(("host", "a"), ("host", "b")),
    ),
    Case("host and :authority", OK, extra=(("host", "z"),)),
    Case("te: gzip", OK, drop=("te",), extra=(("te", "gzip"),)),
    Case("content-length not a number", OK, extra=(("content-length", "abc"),)),
    Case("content-length not the body's", OK, extra=(("content-length", "3"),)),
    Case(
        "no :method",
        ("status", 405, 13, 'Received a HEADERS frame with :method "" which should be POST'),
        drop=(":method",),
    ),
    Case(
        "a grpc-timeout unit Go does not know",
        ("status", 400, 13, 'malformed grpc-timeout: transport: timeout unit is not recognized: "1x"'),
        extra=(("grpc-timeout", "1x"),),
    ),
    Case(
        "binary metadata that is not base64",
        (
            "status",
            400,
            13,
            'malformed binary metadata "!!!" in header "x-a-bin": illegal base64 data at input byte 0',
        ),
        extra=(("x-a-bin", "!!!"),),
    ),
    Case("binary metadata without padding", OK, extra=(("x-a-bin", "QUJD"),)),
    Case(
        "a content-type with a trailing space",
        ("status", 200, 13, UNMARSHAL_HEALTH),
        content_type=DEFAULT_CONTENT_TYPE + " ",
    ),
    Case("a non-ASCII service", ("status", 200, 12, "unknown service é\u200b"), path="/é\u200b/x"),
    Case(
        "quotes in a malformed path",
        ("status", 200, 12, 'malformed method name: "/a\\"b\\\\c"'),
        path='/a"b\\c',
    ),
    Case(f"a {BIG // 1024} KB :path", TOO_BIG, path="/" + "a" * BIG),
    Case(f"a {BIG // 1024} KB service", TOO_BIG, path=f"/{SERVICE}/" + "M" * BIG),
    Case(f"a {BIG // 1024} KB content-type", TOO_BIG, content_type="text/" + "x" * BIG),
    Case(f"a {BIG // 1024} KB grpc-encoding", TOO_BIG, extra=(("grpc-encoding", "z" * BIG),)),
    Case(f"a {BIG // 1024} KB grpc-timeout", TOO_BIG, extra=(("grpc-timeout", "9" * BIG + "S"),)),
    Case(
        f"a {BIG // 1024} KB :path to a client without a header list limit",
        ("status", 200, 12, 'malformed method name: "/' + "a" * BIG + '"'),
        path="/" + "a" * BIG,
        header_list_size=None,
    ),
    Case("an answer over a 100-byte header list limit", TOO_BIG, path="/" + "a" * 200, header_list_size=100),
]


def _headers(case: Case, host: str, port: int, instance: str) -> list[tuple[str, str]]:
    if case.raw is not None:
        return [(k, v.replace(INSTANCE, instance)) for k, v in case.raw]
    usual = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", case.path),
        (":authority", f"{host}:{port}"),
        ("content-type", case.content_type),
        ("te", "trailers"),
    ]
    hdrs = [(k, v) for k, v in usual if k not in case.drop]
    return hdrs + [(k, v.replace(INSTANCE, instance)) for k, v in case.extra]


def _answer(r: RawReply) -> tuple[object, ...]:
    if r.code is not None:
        return ("status", r.http_status, r.code, r.message)
    if r.reset_code is not None:
        return ("reset", r.reset_code)
    return ("nothing", r.timed_out, r.connection_lost)


async def ask(host: str, port: int, instance: str, cases: Sequence[Case]) -> dict[str, tuple[object, ...]]:
    """Each case on a connection of its own, then a Health on that connection: the answer, and
    ``("after", …)`` when that Health was not answered."""
    out: dict[str, tuple[object, ...]] = {}
    for case in cases:
        c = RawGrpcClient(host, port, validate_headers=False, header_list_size=case.header_list_size)
        try:
            body = json.dumps({"owner_instance_id": instance}).encode() if case.status_body else b"{}"
            r = await c.call("", [body], headers=_headers(case, host, port, instance), connection="c")
            out[case.name] = _answer(r)
            if case.header_list_size is not None and case.header_list_size < 1024:
                continue  # the Health answer itself would be over that limit
            after = await c.call(HEALTH, [b"{}"], connection="c")
            if after.code != 0:
                out[case.name] = ("after", out[case.name], _answer(after), c.goaway("c"))
        finally:
            await c.aclose()
    return out


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    s = Simulator(str(tmp_path / "data"))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def _mismatches(got: dict[str, tuple[object, ...]]) -> list[str]:
    def short(v: object) -> str:
        text = repr(v)
        return text if len(text) < 300 else text[:300] + f"… ({len(text)} chars)"

    return [
        f"{c.name}: want {short(c.want)}, got {short(got[c.name])}" for c in CASES if got[c.name] != c.want
    ]


async def test_the_simulator_answers_each_hostile_header_on_its_stream_as_the_daemon_does(
    sim: Simulator,
) -> None:
    host, _, port = sim.endpoint.rpartition(":")
    got = await ask(host, int(port), sim.instance_id, CASES)
    assert not _mismatches(got), "\n".join(_mismatches(got))


@pytest.mark.real_daemon("none")
def test_the_real_daemon_still_answers_them_so(modeld_none: BuildResult, tmp_path: Path) -> None:
    with RealDaemon(modeld_none.binary, tmp_path / "data", ttl="30s") as d:
        got = asyncio.run(ask(d.host, d.port, d.instance_id, CASES))
    assert not _mismatches(got), "\n".join(_mismatches(got))
