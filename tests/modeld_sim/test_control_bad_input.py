"""Bad input never becomes a traceback: random bodies on every control-plane route, random `modeld-sim ctl`
words, random bytes as the lease for `python -m modeldconn.lease` and `modeld-sim lease show`.

Every answer is one of the documented ones (200, or 400 / 404 / 405 / 409 with a JSON ``error``), every
CLI exit status is 0, 1 or 2 with one line on stderr when it is not 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeld_sim import cli
from modeld_sim.cluster import Cluster
from modeld_sim.control import ControlClient, ControlServer
from modeld_sim.leasescript import OPS, LeaseScript, LeaseScriptError, apply
from modeldconn import lease as liblease

ROUTES = [
    ("GET", "/v1/status"),
    ("GET", "/v1/faults"),
    ("POST", "/v1/faults"),
    ("DELETE", "/v1/faults"),
    ("DELETE", "/v1/faults/r1"),
    ("GET", "/v1/transcript?since=x"),
    ("GET", "/v1/transcript?since=-3"),
    ("POST", "/v1/mark"),
    ("POST", "/v1/failover"),
    ("GET", "/v1/lease"),
    ("POST", "/v1/lease/pause"),
    ("POST", "/v1/lease/resume"),
    ("POST", "/v1/lease/melt"),
    ("PUT", "/v1/status"),
    ("POST", "/v1/nodes/explode"),
    *[("POST", f"/v1/nodes/{op}") for op in ("kill", "wedge", "resume", "partition", "heal")],
    *[("POST", f"/v1/lease/{op}") for op in OPS],
]
KEYS = ["node", "pause", "how", "timeout", "text", "ttl", "by", "value", "data", "keep", "endpoint"]
KEYS += ["method", "action", "token", "nth", "every", "id", "delay", "ready", "after_chunks", "then"]
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "2s", "-1s", "node1", "node9", "leader", "kill", "Health", "error", "stale"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
WORDS = [
    "status",
    "fault",
    "add",
    "list",
    "rm",
    "clear",
    "lease",
    "show",
    "pause",
    "resume",
    "failover",
    "kill",
    "wedge",
    "partition",
    "heal",
    "transcript",
    "--since",
    "--out",
    "mark",
    "--json",
    "--pause",
    "dump",
    "x",
    "node1",
    "node9",
    "r1",
    "how=melt",
    "nth=2",
    "method=Health",
    "action=health",
    "ready=false",
    "by=2s",
    "ttl=x",
    "value=0",
    "{",
    "[1]",
    "{}",
    "=x",
    "node=node2",
    "wedge",
]
TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2020-01-01T00:00:00Z"]


class _Plane:
    """A 2-node respawning cluster and its control plane on an event loop thread of their own."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="modeld-ctl-fuzz-")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cluster = Cluster(self.root, 2, ttl=0.3, respawn=True, stop_grace=0.05)
        self.server = ControlServer(self.cluster)

        async def start() -> None:
            await self.cluster.start()
            await self.server.start()

        self.run(start())
        self.client = ControlClient.from_data_root(self.root)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        async def stop() -> None:
            await self.server.stop()
            await self.cluster.stop()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def plane() -> Iterator[_Plane]:
    p = _Plane()
    try:
        yield p
    finally:
        p.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=st.dictionaries(st.sampled_from(KEYS), ODD, max_size=3))
def test_any_body_on_any_route_is_answered_as_documented(
    plane: _Plane, route: tuple[str, str], body: dict[str, Any]
) -> None:
    method, path = route
    if path == "/v1/failover":  # a failover waits for its timeout at most: keep the wait short
        body["timeout"] = body.get("timeout") if not isinstance(body.get("timeout"), int | float) else 1
    conn = http.client.HTTPConnection(plane.client.host, plane.client.port, timeout=60)
    try:
        payload = json.dumps(body, allow_nan=True)
        conn.request(method, path, body=payload, headers={"Authorization": f"Bearer {plane.client.token}"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status in (200, 400, 404, 405, 409), (route, body, resp.status, data)
    if resp.status != 200:
        doc = json.loads(data)
        assert isinstance(doc["error"], str) and doc["error"], doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
def test_any_ctl_words_give_an_exit_status_and_at_most_one_line(
    plane: _Plane, words: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.getbasetemp())  # `transcript --out WORD` writes WORD here
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["ctl", "--data-root", plane.root, *words])
    finally:
        os.chdir(cwd)
    assert code in (0, 1, 2), (words, code)
    text = err.getvalue()
    assert "Traceback" not in text
    if code != 0:
        lines = text.splitlines()
        argparse_error = len(lines) == 2 and lines[0].startswith("usage: ") and ": error: " in lines[1]
        assert argparse_error or (
            len(lines) == 1 and lines[0].startswith(("modeld-sim ctl: ", "usage: modeld-sim ctl"))
        ), text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda d: json.dumps(d).encode(),
            st.dictionaries(
                st.sampled_from(["instance_id", "pid", "host", "acquired_at", "renewed_at", "ttl", "meta"]),
                ODD | st.sampled_from(TIMES),
            ),
        ),
    )
)
def test_any_lease_bytes_are_inspected_without_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(tmp_path_factory.mktemp("lease"))
    (root / liblease.LEASE_FILE_NAME).write_bytes(data)
    for argv in (["inspect", str(root)], ["inspect", str(root), "--json"]):
        code = liblease.main(argv)
        cap = capsys.readouterr()
        assert code in (0, 1)
        if code == 1:
            assert cap.out == "" and cap.err.count("\n") == 1
        elif "--json" in argv:
            assert json.loads(cap.out)["path"] == liblease.lease_path(root)
    assert cli.main(["lease", "--data-root", str(root), "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["op"] == "show" and shown["lease"] is not None


EXTREME = st.sampled_from(
    [2**63, -(2**63) - 1, 2**62, 10**30, 1e300, 1.7e303, -1e300, float("nan"), float("inf")]
)


def _op_and_params() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    def params(op: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        names = list(OPS[op]) or ["by"]
        return st.tuples(st.just(op), st.dictionaries(st.sampled_from(names), EXTREME | ODD, max_size=2))

    return st.sampled_from(sorted(OPS)).flatmap(params)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_op_and_params())
def test_any_lease_parameters_are_written_or_refused_by_name(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, dict[str, Any]]
) -> None:
    op, params = case
    script = LeaseScript(tmp_path_factory.mktemp("lease"))
    script.fresh()
    before = Path(script.path).read_bytes()
    try:
        apply(script, op, params)
    except LeaseScriptError as exc:
        assert exc.field in (*params, "value"), (op, params, exc)  # the parameter at fault is named
        assert Path(script.path).read_bytes() == before  # and nothing was written
