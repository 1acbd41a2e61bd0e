"""N simulated owners on one data root: one leader, standbys waiting to take over, process faults.

``async with Cluster(root, size=3, ttl=0.3, renew=0.1) as c:`` starts ``node1`` (it wins the lease),
then ``node2``… as standbys (``Simulator(standby=True)``: they poll the lease and acquire it the
moment it lapses). Faults, by node name (default: the current leader):

=============  ==========================================  ===========================================
op             in-process node                             subprocess node (``procs=True``)
=============  ==========================================  ===========================================
``kill``       stop renewing (no release), drop every      SIGKILL
               connection, close the listener
``wedge``      renewals paused, every call held: the       SIGSTOP (the HTTP/2 handshake never ends)
               lease stays fresh until it lapses, nothing
               answers (the handshake still completes)
``resume``     undo ``wedge`` (a node whose lease was       SIGCONT
               taken meanwhile then shuts down)
``partition``  listener closed, connections dropped,       not available
               lease still renewed
``heal``       listen again on the same port               not available
``failover``   kill the leader, wait for the new one       same
=============  ==========================================  ===========================================

In-process nodes share one :class:`~modeld_sim.faults.FaultSet` (rules apply to whichever node
answers) and one :class:`~modeld_sim.transcript.Transcript`; subprocess nodes append to the transcript
file given by ``transcript_path`` (one file, one ``write`` per line). ``respawn=True`` starts a fresh
standby whenever a node is killed, so the cluster keeps its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from modeldconn import gotime
from modeldconn import lease as liblease

from .faults import FaultInjector, FaultSet
from .leasescript import LeaseScript
from .simulator import Simulator
from .transcript import Transcript

__all__ = ["NODE_OPS", "Cluster", "ClusterError", "Node", "cli_main", "lease_holder"]

NODE_OPS: Final = ("kill", "wedge", "resume", "partition", "heal")
_NS: Final = 1_000_000_000
_POLL_S: Final = 0.002

LogFn = Callable[[str, str], object]


class ClusterError(RuntimeError):
    """An operation the cluster cannot do (unknown node, no leader in time, …)."""


@dataclass
class Node:
    """One member. ``state``: starting, standby, leader, killed, wedged, partitioned, stopped, lost."""

    name: str
    sim: Simulator | None = None
    proc: asyncio.subprocess.Process | None = None
    injector: FaultInjector | None = None
    state: str = "starting"
    start_task: asyncio.Task[str] | None = None
    instance_id: str = ""
    endpoint: str = ""
    io_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return os.getpid() if self.proc is None else int(self.proc.pid)

    def is_leader(self) -> bool:
        if self.state in ("killed", "stopped", "lost"):
            return False
        if self.sim is not None:
            return self.sim.running and not self.sim.crashed
        return self.state in ("leader", "wedged") and bool(self.instance_id)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "instance_id": self.instance_id,
            "endpoint": self.endpoint,
            "mode": "process" if self.proc is not None else "in-process",
        }


class Cluster:
    """See the module docstring. Durations are seconds."""

    def __init__(
        self,
        data_root: str | os.PathLike[str],
        size: int = 3,
        *,
        ttl: float = 0.3,
        renew: float | None = None,
        backend: str = "llama",
        procs: bool = False,
        faults: FaultSet | None = None,
        transcript: Transcript | None = None,
        transcript_path: str | None = None,
        respawn: bool = False,
        log: LogFn | None = None,
        stop_grace: float = 0.5,
    ) -> None:
        if size < 1:
            raise ValueError("cluster: size must be at least 1")
        if ttl <= 0:
            raise ValueError("cluster: ttl must be positive")
        self.data_root = os.fspath(data_root)
        self.size = size
        self.ttl = ttl
        self.renew = renew
        self.backend = backend
        self.procs = procs
        self.faults = faults if faults is not None else FaultSet()
        if transcript is None and transcript_path is not None and not procs:
            transcript = Transcript(transcript_path)
        self.transcript = transcript
        self.transcript_path = (
            transcript_path
            if transcript_path is not None
            else (None if transcript is None else transcript.path)
        )
        self.respawn = respawn
        self.log: LogFn = log or (lambda _stream, _line: None)
        self.stop_grace = stop_grace
        self.nodes: list[Node] = []
        self.lease = LeaseScript(self.data_root)
        self._count = 0
        self._started = False
        self._closed = False

    # -- events ------------------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.event(kind, **fields)

    # -- lifecycle ---------------------------------------------------------------------------------------

    @classmethod
    def attach(
        cls,
        sim: Simulator,
        *,
        faults: FaultSet | None = None,
        transcript: Transcript | None = None,
        name: str = "node1",
    ) -> Cluster:
        """A one-node cluster around a Simulator the caller creates and starts (``modeld-sim serve``).

        Installs the fault hooks on ``sim``; call before ``sim.start()``."""
        c = cls(
            sim.data_root, 1, ttl=sim.ttl_ns / _NS, backend=sim.backend, faults=faults, transcript=transcript
        )
        node = Node(name=name, sim=sim)
        node.injector = c._injector(node)
        sim.hooks = node.injector
        c.nodes.append(node)
        c._count = 1
        c._started = True
        return c

    def _injector(self, node: Node) -> FaultInjector:
        def instance() -> str:
            sim = node.sim
            if sim is None or sim.server is None:
                return node.instance_id
            return str(sim.server.instance_id)

        return FaultInjector(self.faults, self.transcript, node=node.name, instance=instance)

    async def start(self, timeout: float = 30.0) -> Node:
        """Start the members; returns the first leader."""
        if self._started:
            raise RuntimeError("Cluster.start() called twice")
        self._started = True
        first = await self.add_node()
        leader = await self.wait_leader(timeout=timeout)
        assert leader is first or leader is not None
        for _ in range(self.size - 1):
            await self.add_node()
        return leader

    async def add_node(self) -> Node:
        """Start one more member (a standby unless nobody leads)."""
        self._count += 1
        node = Node(name=f"node{self._count}")
        self.nodes.append(node)
        if self.procs:
            await self._spawn(node)
        else:
            sim = Simulator(
                self.data_root,
                backend=self.backend,
                ttl=self.ttl,
                renew=self.renew,
                standby=True,
                stop_grace=self.stop_grace,
                log=self._node_log(node),
            )
            node.sim = sim
            node.injector = self._injector(node)
            sim.hooks = node.injector
            node.state = "standby"
            node.start_task = asyncio.get_running_loop().create_task(self._run_node(node), name=node.name)
        self.event("node.start", node=node.name, pid=node.pid)
        return node

    async def _run_node(self, node: Node) -> str:
        assert node.sim is not None
        role = await node.sim.start()
        if role == "owner" and node.state == "standby":
            node.state = "leader"
            node.instance_id = node.sim.instance_id
            node.endpoint = node.sim.endpoint
            self.event("leader", node=node.name, instance=node.instance_id, endpoint=node.endpoint)
            asyncio.get_running_loop().create_task(self._watch_stop(node))
        return role

    async def _watch_stop(self, node: Node) -> None:
        assert node.sim is not None
        reason = await node.sim.wait_stopped()
        if node.state in ("leader", "wedged", "partitioned"):
            node.state = "lost" if reason else "stopped"
            self.event("node.stopped", node=node.name, instance=node.instance_id, reason=reason or "")

    def _node_log(self, node: Node) -> LogFn:
        def log(stream: str, line: str) -> None:
            self.log(stream, f"[{node.name}] {line}")

        return log

    # -- subprocess members --------------------------------------------------------------------------------

    async def _spawn(self, node: Node) -> None:
        args = [
            sys.executable,
            "-m",
            "modeld_sim.cli",
            "serve",
            "--standby",
            "--data-root",
            self.data_root,
            "--backend",
            self.backend,
            "--ttl",
            gotime.format_duration(round(self.ttl * _NS)),
        ]
        if self.renew is not None:
            args += ["--renew", gotime.format_duration(round(self.renew * _NS))]
        if self.transcript_path is not None:
            args += ["--transcript", self.transcript_path, "--node-name", node.name]
        node.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        node.state = "standby"
        loop = asyncio.get_running_loop()
        for stream, name in ((node.proc.stdout, "stdout"), (node.proc.stderr, "stderr")):
            if stream is not None:
                node.io_tasks.append(loop.create_task(self._pump(node, stream, name)))

    async def _pump(self, node: Node, stream: asyncio.StreamReader, name: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log(name, f"[{node.name}] {line}")
            if line.startswith("modeld owner started: "):
                fields = dict(p.split("=", 1) for p in line.split()[3:] if "=" in p)
                node.instance_id = fields.get("instance", "")
                node.endpoint = fields.get("endpoint", "")
                if node.state == "standby":
                    node.state = "leader"
                self.event("leader", node=node.name, instance=node.instance_id, endpoint=node.endpoint)
            elif line.startswith("modeld: lost lease") and node.state in ("leader", "wedged"):
                node.state = "lost"
        if node.state in ("leader", "standby", "starting"):
            node.state = "stopped"

    # -- queries ------------------------------------------------------------------------------------------

    @property
    def leader(self) -> Node | None:
        """The member serving as owner now (None during a failover)."""
        rec = self.lease.read()
        for node in self.nodes:
            if node.is_leader() and (rec is None or node.instance_id in ("", rec.instance_id)):
                return node
        return None

    def node(self, name: str | None = None) -> Node:
        """A member by name; ``None`` = the current leader."""
        if name is None or name == "leader":
            lead = self.leader
            if lead is None:
                raise ClusterError("no leader right now")
            return lead
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    async def wait_leader(
        self, exclude: set[str] | frozenset[str] = frozenset(), timeout: float = 10.0
    ) -> Node:
        """Wait for a leader whose instance id is not in ``exclude``; ClusterError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            lead = self.leader
            if lead is not None and lead.instance_id and lead.instance_id not in exclude:
                return lead
            for node in self.nodes:
                task = node.start_task
                if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                    raise ClusterError(f"{node.name} failed to start: {task.exception()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"no new leader within {timeout}s")
            await asyncio.sleep(_POLL_S)

    def status(self) -> dict[str, Any]:
        from .leasescript import describe

        lead = self.leader
        return {
            "data_root": self.data_root,
            "ttl_ms": self.ttl * 1000.0,
            "leader": None if lead is None else lead.name,
            "instance_id": None if lead is None else lead.instance_id,
            "endpoint": None if lead is None else lead.endpoint,
            "nodes": [n.describe() for n in self.nodes],
            "lease": describe(self.lease.read()),
            "faults": self.faults.describe(),
        }

    # -- faults ---------------------------------------------------------------------------------------------

    async def kill(self, name: str | None = None) -> Node:
        node = self.node(name)
        was = node.state
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await node.proc.wait()
        elif node.sim is not None:
            task = node.start_task
            if was == "standby" and task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if node.injector is not None:
                node.injector.unwedge()
            await node.sim.crash()
        node.state = "killed"
        self.event("node.kill", node=node.name, instance=node.instance_id, was=was)
        if self.respawn:
            await self.add_node()
        return node

    async def wedge(self, name: str | None = None) -> Node:
        node = self.node(name)
        if node.proc is not None:
            node.proc.send_signal(signal.SIGSTOP)
        else:
            assert node.sim is not None and node.injector is not None
            node.sim.pause_renewals()
            node.injector.wedge()
        node.state = "wedged"
        self.event("node.wedge", node=node.name, instance=node.instance_id)
        return node

    async def resume(self, name: str | None = None) -> Node:
        node = self.node(name)
        if node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)
        else:
            assert node.sim is not None and node.injector is not None
            node.injector.unwedge()
            node.sim.resume_renewals()
        if node.state == "wedged":
            node.state = "leader" if node.instance_id else "standby"
        self.event("node.resume", node=node.name, instance=node.instance_id)
        return node

    async def partition(self, name: str | None = None) -> Node:
        node = self.node(name)
        if node.sim is None:
            raise ClusterError("partition needs an in-process node (not available with procs=True)")
        await node.sim.partition()
        node.state = "partitioned"
        self.event("node.partition", node=node.name, instance=node.instance_id)
        return node

    async def heal(self, name: str | None = None) -> Node:
        node = (
            self.node(name)
            if name is not None
            else next((n for n in self.nodes if n.state == "partitioned"), None) or self.node(None)
        )
        if node.sim is None:
            raise ClusterError("heal needs an in-process node (not available with procs=True)")
        await node.sim.heal()
        if node.state == "partitioned":
            node.state = "leader"
        self.event("node.heal", node=node.name, instance=node.instance_id)
        return node

    async def node_op(self, op: str, name: str | None = None) -> Node:
        if op not in NODE_OPS:
            raise ClusterError(f"unknown node operation {op!r} (one of {', '.join(NODE_OPS)})")
        fn = {
            "kill": self.kill,
            "wedge": self.wedge,
            "resume": self.resume,
            "partition": self.partition,
            "heal": self.heal,
        }[op]
        return await fn(name)

    async def failover(self, how: str = "kill", timeout: float | None = None) -> dict[str, Any]:
        """Fail the leader (``kill`` / ``wedge`` / ``partition``) and wait for a new one.

        Returns ``{"old": name, "old_instance": id, "new": name, "instance_id": id, "endpoint": …,
        "elapsed_ms": …}``."""
        if how not in ("kill", "wedge", "partition"):
            raise ClusterError(f"failover how={how!r}: one of kill, wedge, partition")
        old = self.node(None)
        old_iid = old.instance_id
        t0 = time.monotonic()
        await self.node_op(how, old.name)
        wait = timeout if timeout is not None else max(5.0, self.ttl * 10)
        new = await self.wait_leader(exclude={old_iid}, timeout=wait)
        elapsed = (time.monotonic() - t0) * 1000.0
        out = {
            "old": old.name,
            "old_instance": old_iid,
            "new": new.name,
            "instance_id": new.instance_id,
            "endpoint": new.endpoint,
            "elapsed_ms": round(elapsed, 3),
        }
        self.event("failover", **out)
        return out

    # -- stop ------------------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every member (graceful for live ones: their leases are released)."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes:
            if node.injector is not None:
                node.injector.unwedge()
            if node.proc is not None:
                await self._stop_proc(node)
            elif node.sim is not None:
                task = node.start_task
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                node.sim.resume_renewals()
                with contextlib.suppress(Exception):
                    await node.sim.stop()
            if node.state not in ("killed", "lost"):
                node.state = "stopped"

    async def _stop_proc(self, node: Node) -> None:
        proc = node.proc
        assert proc is not None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for t in node.io_tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, timeout=2.0)

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def lease_holder(data_root: str) -> str | None:
    """The instance id in the lease (None when missing or corrupt)."""
    try:
        return liblease.inspect(liblease.lease_path(data_root)).instance_id
    except liblease.LeaseError:
        return None


# --- CLI: modeld-sim cluster ------------------------------------------------------------------------------


def cli_main(args: Any, out: Callable[[str, str], object]) -> int:
    """``modeld-sim cluster --data-root D --size N …``: run until SIGINT / SIGTERM."""
    try:
        return asyncio.run(_cli(args, out))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        out("stderr", f"modeld-sim cluster: {exc}")
        return 1


async def _cli(args: Any, out: Callable[[str, str], object]) -> int:
    from .control import ControlServer
    from .scenario import ScenarioError
    from .scenario import load as load_scenario
    from .scenario import run as run_scenario

    scenario = None
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            out("stderr", f"modeld-sim: {exc}")
            return 2
    if args.size < 1:
        out("stderr", "modeld-sim cluster: --size must be at least 1")
        return 2
    transcript = None
    if not args.procs and (args.transcript or args.control):
        transcript = Transcript(args.transcript)
    cluster = Cluster(
        args.data_root,
        args.size,
        ttl=args.ttl / _NS,
        renew=None if args.renew is None else args.renew / _NS,
        backend=args.backend,
        procs=args.procs,
        transcript=transcript,
        transcript_path=args.transcript,
        respawn=args.respawn,
        log=out,
    )
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)
    control: ControlServer | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        await cluster.start()
        if args.control:
            control = ControlServer(cluster)
            await control.start()
            out("stdout", f"modeld-sim control: endpoint={control.endpoint} file={control.path}")
        tasks.append(loop.create_task(_announce_leaders(cluster, out)))
        if scenario is not None:
            tasks.append(loop.create_task(run_scenario(scenario, cluster, log=lambda s: out("stderr", s))))
        await signalled.wait()
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if control is not None:
            await control.stop()
        await cluster.stop()
        if transcript is not None:
            transcript.close()
    return 0


async def _announce_leaders(cluster: Cluster, out: Callable[[str, str], object]) -> None:
    seen = ""
    while True:
        lead = cluster.leader
        if lead is not None and lead.instance_id and lead.instance_id != seen:
            seen = lead.instance_id
            out(
                "stdout",
                f"modeld-sim cluster: leader={lead.name} instance={lead.instance_id} "
                f"endpoint={lead.endpoint} nodes={len(cluster.nodes)} "
                f"ttl={gotime.format_duration(round(cluster.ttl * _NS))}",
            )
        await asyncio.sleep(0.02)
