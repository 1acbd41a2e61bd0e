"""Who leads, seen three ways, over any sequence of ctl verbs: the lease file on disk, each node's own
state, and ``ctl status`` through the HTTP control plane on 127.0.0.1 must agree.

The cluster (in-process nodes, respawning) runs on its own event loop thread; the state machine drives it
only through :class:`~modeld_sim.control.ControlClient`, reads the lease with :mod:`modeldconn.lease` and
each node's own view (does it believe it owns? which instance does its server fence to?) on the cluster's
loop. Background transitions (a standby taking a lapsed lease, an owner learning it lost) go on while the
three are read, so a reading counts only when the file and the nodes were the same before and after the
status call; the agreement is then asserted strictly.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from modeld_sim.cluster import Cluster
from modeld_sim.control import ControlClient, ControlError, ControlServer
from modeld_sim.leasescript import OPS
from modeldconn import lease as liblease

T = TypeVar("T")

TTL = 0.5
SETTLE_S = 15.0
NAMES = [None, "node1", "node2", "node3", "node4", "node5"]
#: the operations that keep the holder: on a file without a readable record they must start from the
#: record of a node that still believes it owns, never invent one while such a node exists
KEEP_HOLDER = ("fresh", "stale", "expire", "future", "ttl", "endpoint", "backend", "no_meta", "closed_port")
NEW_HOLDER = ("foreign", "steal")
PARAMS: dict[str, dict[str, Any]] = {"ttl": {"value": "2s"}, "endpoint": {"value": "127.0.0.1:1"}}


class _LoopThread:
    """An event loop on a thread of its own, for the cluster and its control plane."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cluster-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:  # a killed node leaves its idle reaper behind
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _file_holder(root: str) -> str | None:
    try:
        return liblease.inspect(liblease.lease_path(root)).instance_id
    except liblease.LeaseError:
        return None


NodeView = tuple[str, bool, bool, str, str]  # name, killed, believes it owns, instance id, server fence


class LeadershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="modeld-leadership-")
        self.rt = _LoopThread()
        self.cluster = Cluster(self.root, 3, ttl=TTL, respawn=True, stop_grace=0.05)
        self.server = ControlServer(self.cluster)

        async def start() -> None:
            await self.cluster.start()
            await self.server.start()

        self.rt.call(start())
        self.client = ControlClient.from_data_root(self.root, timeout=30.0)

    def teardown(self) -> None:
        async def stop() -> None:
            await self.server.stop()
            await self.cluster.stop()

        try:
            self.rt.call(stop())
        finally:
            self.rt.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- reading the system ---------------------------------------------------------------------------

    def _nodes(self) -> list[NodeView]:
        async def read() -> list[NodeView]:
            out = []
            for n in self.cluster.nodes:
                sim = n.sim
                assert sim is not None
                fence = "" if sim.server is None else str(sim.server.instance_id)
                out.append((n.name, n.killed, n.believes_owner(), n.instance_id, fence))
            return out

        return self.rt.call(read())

    def _paused(self) -> dict[str, tuple[bool, bool]]:
        """name → (renewals paused, believes it owns), read together."""

        async def read() -> dict[str, tuple[bool, bool]]:
            return {n.name: (n.renewals == "paused", n.believes_owner()) for n in self.cluster.nodes}

        return self.rt.call(read())

    def snapshot(self) -> tuple[str | None, list[NodeView], dict[str, Any]]:
        """(lease holder, nodes, status), read while neither the file's holder nor any node changed."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            f1, n1 = _file_holder(self.root), self._nodes()
            status = self.client.status()
            f2, n2 = _file_holder(self.root), self._nodes()
            seen = None if status["lease"] is None else status["lease"]["instance_id"]
            if f1 == f2 == seen and n1 == n2 and len(status["nodes"]) == len(n1):
                return f1, n1, status
            assert time.monotonic() < deadline, "the cluster never held still long enough to be read"

    @invariant()
    def all_agree_on_who_leads(self) -> None:
        holder, nodes, status = self.snapshot()
        leaders = [v for v in nodes if v[2] and holder is not None and v[3] == holder]
        assert len(leaders) <= 1, leaders
        lead = leaders[0] if leaders else None
        assert status["leader"] == (None if lead is None else lead[0]), (holder, nodes, status)
        assert status["instance_id"] == (None if lead is None else holder), status
        states = {d["name"]: d["state"] for d in status["nodes"]}
        for name, killed, believes, iid, fence in nodes:
            if killed:
                assert states[name] == "killed"
            elif believes:
                assert states[name] == ("leader" if iid == holder else "deposed"), (name, holder, status)
                assert fence == iid  # a node that thinks it owns serves as itself
            else:
                assert states[name] in ("standby", "starting", "lost", "stopped"), (name, states)
        assert sum(s == "leader" for s in states.values()) == len(leaders)
        if lead is not None:
            assert lead[4] == holder  # the leader's server is fenced to the instance the lease names

    # -- the ctl verbs --------------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, **kw: Any) -> tuple[int, Any]:
        try:
            return 200, fn(*args, **kw)
        except ControlError as exc:
            assert exc.status == 409, f"{fn.__name__}{args}{kw}: {exc.status} {exc.message}"
            return exc.status, exc.message

    @rule(op=st.sampled_from(sorted(OPS)), pause=st.booleans())
    def lease(self, op: str, pause: bool) -> None:
        before, nodes_before, _ = self.snapshot()
        params = dict(PARAMS.get(op, {}))
        if pause:
            params["pause"] = True
        code, res = self._call(self.client.lease, op, **params)
        if not pause:
            assert code == 200, res  # scripting the file needs no leader
        if code != 200:
            return
        nodes_after = self._nodes()
        written = None if res["lease"] is None else res["lease"]["instance_id"]
        ours = {v[3] for v in nodes_after if v[3]}
        if op in KEEP_HOLDER:
            still = {v[0] for v in nodes_before if v[2]} & {v[0] for v in nodes_after if v[2]}
            if still:  # some node believed it owned all along: the holder is a node or the file's own
                assert written in ours | {before}, (op, written, before, nodes_before, nodes_after)
        elif op in NEW_HOLDER:
            assert written is not None and written not in ours and written != before

    @rule(node=st.sampled_from(NAMES))
    def lease_pause(self, node: str | None) -> None:
        code, res = self._call(self.client.lease, "pause", **({} if node is None else {"node": node}))
        if code == 200:
            (name,) = res["nodes"]
            paused, believes = self._paused()[name]
            assert paused or not believes  # (a renew in flight when the pause came may still lose)

    @rule(node=st.sampled_from(NAMES))
    def lease_resume(self, node: str | None) -> None:
        code, res = self._call(self.client.lease, "resume", **({} if node is None else {"node": node}))
        if node is None:
            assert code == 200, res  # resuming whatever is paused never needs a leader
        if code == 200:
            paused = self._paused()
            assert not any(paused[n][0] for n in res["nodes"]), (res, paused)

    @rule(op=st.sampled_from(["kill", "wedge", "resume", "partition", "heal"]), node=st.sampled_from(NAMES))
    def node_op(self, op: str, node: str | None) -> None:
        code, res = self._call(self.client.node, op, node)
        if code == 200 and op == "kill":
            assert res["state"] == "killed"

    @precondition(lambda self: len(self.cluster.nodes) < 10)
    @rule(how=st.sampled_from(["kill", "wedge"]))
    def failover(self, how: str) -> None:
        code, res = self._call(self.client.failover, how, TTL * 4)
        if code == 200:
            assert res["instance_id"] != res["old_instance"]
            owned = {v[0]: v[3] for v in self._nodes()}  # (it may have lost the lease again since)
            assert owned[res["new"]] == res["instance_id"]


LeadershipMachine.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLeadershipMachine = LeadershipMachine.TestCase
