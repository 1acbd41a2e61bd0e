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

Who leads
---------
The lease file is the one truth. A node *believes it owns* from the moment its join succeeded until it
learns otherwise (a renew finds the lease taken over or gives up, it is killed, it stops). From the lease
file and that belief every node's ``state`` follows:

=============  ===========================================================================================
``leader``     believes it owns, and the lease file names its instance (lapsed or not)
``deposed``    believes it owns, but the file names another instance or holds no readable record; it still
               serves until its next renew tells it (taken over: ``lost``; unreadable: it retries until its
               give-up margin, then ``lost``). With its renewals paused it stays deposed until resumed.
``standby``    waits for the lease to lapse (``starting`` before it began)
``killed``     killed by the cluster; ``lost`` lost the lease and stopped; ``stopped`` stopped cleanly
=============  ===========================================================================================

Faults are flags beside the state (``wedged``, ``partitioned``, ``renewals``: running / paused).
:attr:`Cluster.leader` is the ``leader`` node or None, and :meth:`Cluster.status` reads the lease once and
derives every state from that one reading: a status answer never contradicts itself. Lease scripting goes
through :meth:`Cluster.lease_op`: an operation that keeps the holder (``fresh``, ``stale``, ``ttl``, …) on a
file without a readable record keeps the node that believes it owns (its own record), never an invented one.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from modeldconn import gotime
from modeldconn import lease as liblease
from modeldconn.lease import LeaseRecord

from . import leasescript
from .faults import FaultInjector, FaultSet
from .leasescript import LeaseScript
from .simulator import Simulator
from .transcript import Transcript

__all__ = ["FAILOVER_HOWS", "NODE_OPS", "Cluster", "ClusterError", "Node", "cli_main", "lease_holder"]

NODE_OPS: Final = ("kill", "wedge", "resume", "partition", "heal")
FAILOVER_HOWS: Final = ("kill", "wedge", "partition")
_NS: Final = 1_000_000_000
_POLL_S: Final = 0.002
_RENEW_SETTLE_S: Final = 5.0

LogFn = Callable[[str, str], object]


class ClusterError(RuntimeError):
    """An operation the cluster cannot do now (unknown node, nobody leads, no leader in time, …)."""


@dataclass
class Node:
    """One member; :meth:`state_for` says what it is (see the module docstring)."""

    name: str
    sim: Simulator | None = None
    proc: asyncio.subprocess.Process | None = None
    injector: FaultInjector | None = None
    start_task: asyncio.Task[str] | None = None
    io_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    killed: bool = False
    holder: Callable[[], str | None] = field(default=lambda: None, repr=False)
    """The instance id the lease file names now (set by the cluster; used by :attr:`state`)."""
    # a process node is known through its output lines and the signals sent to it
    proc_phase: str = "starting"
    proc_instance_id: str = ""
    proc_endpoint: str = ""
    proc_owned_ns: int = 0
    proc_stopped: bool = False
    sigstopped: bool = False

    @property
    def pid(self) -> int:
        return os.getpid() if self.proc is None else int(self.proc.pid)

    @property
    def instance_id(self) -> str:
        """The instance id this node owned the lease as (``""`` while it never did)."""
        if self.sim is not None:
            owner = self.sim.owner
            return owner.instance_id if owner is not None and owner.is_owner else ""
        return self.proc_instance_id

    @property
    def endpoint(self) -> str:
        if self.sim is not None:
            return self.sim.endpoint if self.instance_id else ""
        return self.proc_endpoint

    def believes_owner(self) -> bool:
        """The node thinks the lease is its own (it serves as owner and has not learnt otherwise)."""
        if self.killed:
            return False
        sim = self.sim
        if sim is not None:
            owner = sim.owner
            return (
                sim.running
                and not sim.crashed
                and owner is not None
                and owner.is_owner
                and not owner.lost.is_set()
            )
        return self.proc_phase == "owner"

    def owned_since_ns(self) -> int:
        """When this node acquired the lease (wall clock ns; 0 if it never did)."""
        sim = self.sim
        if sim is not None:
            owner = sim.owner
            if owner is not None and owner.handle is not None:
                return owner.handle.record.acquired_at.unix_ns
            return 0
        return self.proc_owned_ns

    @property
    def wedged(self) -> bool:
        if self.proc is not None:
            return self.sigstopped and not self.proc_stopped
        return self.injector is not None and self.injector.wedged

    @property
    def partitioned(self) -> bool:
        return self.sim is not None and self.sim.partitioned

    @property
    def renewals(self) -> str | None:
        """``running`` / ``paused`` while the node believes it owns; None otherwise."""
        if not self.believes_owner():
            return None
        sim = self.sim
        if sim is not None and sim.owner is not None and sim.owner.renewals_paused:
            return "paused"
        return "paused" if self.proc is not None and self.sigstopped else "running"

    def state_for(self, holder: str | None) -> str:
        """This node's state given ``holder``, the instance id the lease file names (None: no record)."""
        if self.killed or (self.sim is not None and self.sim.crashed):
            return "killed"
        if self.believes_owner():
            return "leader" if holder is not None and holder == self.instance_id else "deposed"
        sim = self.sim
        if sim is not None:
            if sim.role == "owner":
                return "lost" if sim.owner is not None and sim.owner.lost.is_set() else "stopped"
            if sim.stopped:
                return "stopped"
            return "standby" if (self.start_task is not None or sim.standby) else "starting"
        if self.proc_stopped:
            return "lost" if self.proc_phase == "lost" else "stopped"
        return self.proc_phase

    @property
    def state(self) -> str:
        return self.state_for(self.holder())

    def describe(self) -> dict[str, Any]:
        return self.describe_for(self.holder())

    def describe_for(self, holder: str | None) -> dict[str, Any]:
        """The node as :meth:`Cluster.status` shows it, given the lease file's ``holder``."""
        return {
            "name": self.name,
            "state": self.state_for(holder),
            "pid": self.pid,
            "instance_id": self.instance_id,
            "endpoint": self.endpoint,
            "mode": "process" if self.proc is not None else "in-process",
            "wedged": self.wedged,
            "partitioned": self.partitioned,
            "renewals": self.renewals,
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
        # a record the cluster has to invent (nobody holds the lease) lives as long as the cluster's own
        self.lease = LeaseScript(self.data_root, default_ttl_ns=max(1, round(ttl * _NS)))
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
        node = c._new_node(name)
        node.sim = sim
        node.injector = c._injector(node)
        sim.hooks = node.injector
        c._count = 1
        c._started = True
        return c

    def _new_node(self, name: str) -> Node:
        node = Node(name=name, holder=self.holder)
        self.nodes.append(node)
        return node

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
        await self.add_node()
        leader = await self.wait_leader(timeout=timeout)
        for _ in range(self.size - 1):
            await self.add_node()
        return leader

    async def add_node(self) -> Node:
        """Start one more member (a standby unless nobody leads)."""
        self._count += 1
        node = self._new_node(f"node{self._count}")
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
            node.start_task = asyncio.get_running_loop().create_task(self._run_node(node), name=node.name)
        self.event("node.start", node=node.name, pid=node.pid)
        return node

    async def _run_node(self, node: Node) -> str:
        assert node.sim is not None
        role = await node.sim.start()
        if role == "owner":
            self.event("leader", node=node.name, instance=node.instance_id, endpoint=node.endpoint)
            asyncio.get_running_loop().create_task(self._watch_stop(node))
        return role

    async def _watch_stop(self, node: Node) -> None:
        assert node.sim is not None
        reason = await node.sim.wait_stopped()
        if not node.killed:
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
        node.proc_phase = "standby"
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
                node.proc_instance_id = fields.get("instance", "")
                node.proc_endpoint = fields.get("endpoint", "")
                node.proc_owned_ns = time.time_ns()
                node.proc_phase = "owner"
                self.event("leader", node=node.name, instance=node.instance_id, endpoint=node.endpoint)
            elif line.startswith("modeld: lost lease") and node.proc_phase == "owner":
                node.proc_phase = "lost"
        node.proc_stopped = True

    # -- queries ------------------------------------------------------------------------------------------

    def holder(self) -> str | None:
        """The instance id the lease file names now (None: missing or no readable record)."""
        rec = self.lease.read()
        return None if rec is None else rec.instance_id

    def _leader_for(self, holder: str | None) -> Node | None:
        if holder is None:
            return None
        for node in self.nodes:
            if node.believes_owner() and node.instance_id == holder:
                return node
        return None

    @property
    def leader(self) -> Node | None:
        """The node that believes it owns and that the lease file names (None: nobody leads)."""
        return self._leader_for(self.holder())

    def believers(self) -> list[Node]:
        """Nodes that believe they own the lease, the latest to acquire it first."""
        nodes = [n for n in self.nodes if n.believes_owner()]
        return sorted(nodes, key=lambda n: n.owned_since_ns(), reverse=True)

    def node(self, name: str | None = None) -> Node:
        """A member by name; ``None`` (or ``"leader"``) = the current leader."""
        if name is None or name == "leader":
            holder = self.holder()
            lead = self._leader_for(holder)
            if lead is None:
                raise ClusterError(f"no node leads now ({self._why_no_leader(holder)}); name a node")
            return lead
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def _why_no_leader(self, holder: str | None) -> str:
        if holder is None:
            _, err = self.lease.read_state()
            return f"the lease file holds no record: {err}"
        return f"the lease names instance {holder}, which no node serves"

    def owner_node(self, name: str | None = None) -> Node:
        """A named node, else the leader, else the node that most recently acquired the lease and
        still believes it owns it (a deposed one)."""
        if name is not None and name != "leader":
            return self.node(name)
        holder = self.holder()
        lead = self._leader_for(holder)
        if lead is not None:
            return lead
        believers = self.believers()
        if believers:
            return believers[0]
        raise ClusterError(f"no node owns the lease ({self._why_no_leader(holder)})")

    def owner_record(self) -> LeaseRecord | None:
        """The own record of the node that most recently acquired the lease and still believes it owns
        it (what its next renew would write); None when no in-process node does."""
        for node in self.believers():
            owner = None if node.sim is None else node.sim.owner
            if owner is not None and owner.handle is not None:
                return owner.handle.record
        return None

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
        """One consistent view: the lease is read once and every node's state follows from it."""
        rec, err = self.lease.read_state()
        holder = None if rec is None else rec.instance_id
        lead = self._leader_for(holder)
        return {
            "data_root": self.data_root,
            "ttl_ms": self.ttl * 1000.0,
            "leader": None if lead is None else lead.name,
            "instance_id": None if lead is None else lead.instance_id,
            "endpoint": None if lead is None else lead.endpoint,
            "nodes": [n.describe_for(holder) for n in self.nodes],
            "lease": leasescript.describe(rec),
            "lease_error": err,
            "faults": self.faults.describe(),
        }

    # -- lease scripting ------------------------------------------------------------------------------------

    async def lease_op(
        self,
        op: str,
        params: Mapping[str, Any] | None = None,
        *,
        pause: bool = False,
        node: str | None = None,
    ) -> LeaseRecord | None:
        """Write lease state ``op`` (:data:`modeld_sim.leasescript.OPS`), after pausing the owner's
        renewals when ``pause`` (``node``, default the owner: see :meth:`owner_node`).

        On a file without a readable record an operation that keeps the holder starts from the record
        of the node that believes it owns; only when no node does is a record invented."""
        p = dict(params or {})
        leasescript.check(op, p)
        paused = self.pause_renewals(node) if pause else None
        script = self.lease.with_fallback(self.owner_record())
        rec = await asyncio.to_thread(leasescript.apply, script, op, p)
        self.event(
            f"lease.{op}",
            params={k: str(v) for k, v in p.items()},
            instance=None if rec is None else rec.instance_id,
            paused=None if paused is None else paused.name,
        )
        return rec

    def pause_renewals(self, name: str | None = None) -> Node:
        """Stop ``name``'s renewals (default: the owner, see :meth:`owner_node`)."""
        node = self.owner_node(name)
        sim = node.sim
        if sim is None:
            raise ClusterError(f"{node.name}: lease pause needs an in-process node (use wedge for a process)")
        if not node.believes_owner():
            raise ClusterError(f"{node.name} is {node.state}: it renews no lease")
        sim.pause_renewals()
        self.event("lease.pause", node=node.name, instance=node.instance_id)
        return node

    async def resume_renewals(self, name: str | None = None) -> list[Node]:
        """Let ``name`` renew again (default: every unwedged node whose renewals are paused); returns
        once each renew that came due during the pause has run, so its outcome shows in :meth:`status`."""
        if name is not None and name != "leader":
            nodes = [self.node(name)]
            if nodes[0].sim is None:
                raise ClusterError(
                    f"{nodes[0].name}: lease resume needs an in-process node (use resume for a process)"
                )
        elif name == "leader":
            nodes = [self.node(None)]
        else:
            nodes = [n for n in self.nodes if n.renewals == "paused" and n.sim is not None and not n.wedged]
        await self._resume(nodes)
        for node in nodes:
            self.event("lease.resume", node=node.name, instance=node.instance_id)
        return nodes

    async def _resume(self, nodes: list[Node]) -> None:
        """Resume renewals and wait (bounded) for the renew each node had parked to finish."""
        parked = []
        for node in nodes:
            owner = None if node.sim is None else node.sim.owner
            if owner is not None and owner.is_owner:
                if owner.renew_held and owner.renewing:
                    parked.append((owner, owner.renewals, owner.renew_failures))
                owner.resume_renewals()
        deadline = time.monotonic() + _RENEW_SETTLE_S
        for owner, renewals, failures in parked:
            while (
                owner.renewals == renewals
                and owner.renew_failures == failures
                and not owner.lost.is_set()
                and owner.renewing
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(_POLL_S)

    # -- faults ---------------------------------------------------------------------------------------------

    def _owning(self, node: Node, op: str) -> Node:
        if not node.believes_owner():
            raise ClusterError(f"{node.name} is {node.state}: {op} needs a node that owns the lease")
        return node

    async def kill(self, name: str | None = None) -> Node:
        node = self.node(name)
        if node.killed:
            raise ClusterError(f"{node.name} is already killed")
        was = node.state
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await node.proc.wait()
        elif node.sim is not None:
            task = node.start_task
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if node.injector is not None:
                node.injector.unwedge()
            await node.sim.crash()
        node.killed = True
        self.event("node.kill", node=node.name, instance=node.instance_id, was=was)
        if self.respawn:
            await self.add_node()
        return node

    async def wedge(self, name: str | None = None) -> Node:
        node = self._owning(self.node(name), "wedge")
        if node.proc is not None:
            node.proc.send_signal(signal.SIGSTOP)
            node.sigstopped = True
        else:
            assert node.sim is not None and node.injector is not None
            node.sim.pause_renewals()
            node.injector.wedge()
        self.event("node.wedge", node=node.name, instance=node.instance_id)
        return node

    async def resume(self, name: str | None = None) -> Node:
        """Undo ``wedge`` (default: the first wedged node, else the leader — then nothing to do)."""
        if name is None:
            wedged = [n for n in self.nodes if n.wedged and not n.killed]
            node = wedged[0] if wedged else self.node(None)
        else:
            node = self.node(name)
        if node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)
            node.sigstopped = False
        else:
            assert node.sim is not None and node.injector is not None
            node.injector.unwedge()
            await self._resume([node])
        self.event("node.resume", node=node.name, instance=node.instance_id)
        return node

    async def partition(self, name: str | None = None) -> Node:
        node = self.node(name)
        if node.sim is None:
            raise ClusterError("partition needs an in-process node (not available with procs=True)")
        self._owning(node, "partition")
        await node.sim.partition()
        self.event("node.partition", node=node.name, instance=node.instance_id)
        return node

    async def heal(self, name: str | None = None) -> Node:
        """Undo ``partition`` (default: the first partitioned node, else the leader)."""
        if name is None:
            cut = [n for n in self.nodes if n.partitioned and not n.killed]
            node = cut[0] if cut else self.node(None)
        else:
            node = self.node(name)
        if node.sim is None:
            raise ClusterError("heal needs an in-process node (not available with procs=True)")
        await node.sim.heal()
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
        if how not in FAILOVER_HOWS:
            raise ClusterError(f"failover how={how!r}: one of {', '.join(FAILOVER_HOWS)}")
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

    async def _stop_proc(self, node: Node) -> None:
        proc = node.proc
        assert proc is not None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            node.sigstopped = False
            try:
                await asyncio.wait_for(proc.wait(), timeout=10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for t in node.io_tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, timeout=2.0)
        node.proc_stopped = True

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
    from .control import ControlServer, remove_stale_control_file
    from .scenario import ScenarioError
    from .scenario import load_ref as load_scenario
    from .scenario import run as run_scenario

    scenario = None
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            out("stderr", f"modeld-sim: {exc}")
            return 2
        except OSError as exc:
            out("stderr", f"modeld-sim: {args.scenario}: {exc.strerror or exc}")
            return 1
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
        remove_stale_control_file(cluster.data_root)
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
