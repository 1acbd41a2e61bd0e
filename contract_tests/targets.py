"""Targets a clause runs against: the in-process simulator, a ``modeld-sim serve`` subprocess, or an
external daemon found through its lease; plus the small stand-ins the discovery clauses need (a
Health-only server, a port that accepts TCP but never speaks, a closed port).

The in-process simulator runs on its own event loop in a background thread, so clauses stay
synchronous and the connector under test (in-process or a driver) meets it only on the wire and in
the data root, as it meets the real daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeld_contract._loop import LoopThread

__all__ = [
    "ExternalTarget",
    "FaultHandle",
    "HealthStub",
    "SimTarget",
    "SubprocessSimTarget",
    "Target",
    "TargetError",
    "closed_port",
    "lease_expiry_ns",
    "rfc3339_ns",
    "silent_listener",
    "wait_lease_lapsed",
    "write_tiny_model",
]

TINY_MODEL_NAME = "tiny"
TINY_CONTEXT = 2048

_sim_loop: LoopThread | None = None


def sim_loop() -> LoopThread:
    """The loop the in-process simulators of this process run on."""
    global _sim_loop
    if _sim_loop is None:
        _sim_loop = LoopThread("modeld-contract-sim")
    return _sim_loop


class TargetError(RuntimeError):
    """The target could not be started or driven."""


def write_tiny_model(models_dir: str, name: str = TINY_MODEL_NAME, context_length: int = TINY_CONTEXT) -> str:
    """A metadata-only GGUF the fake engine serves, at ``<models_dir>/<name>/model.gguf``."""
    from modeld_sim.gguf import write_fake_gguf

    return write_fake_gguf(
        os.path.join(models_dir, name, "model.gguf"), context_length=context_length, name=name
    )


def read_lease(data_root: str) -> dict[str, Any] | None:
    """The lease record as plain JSON (no lease library: targets judge nothing)."""
    try:
        with open(os.path.join(data_root, "modeld.lease"), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_NS_PER_S = 1_000_000_000
#: How often the lease file is re-read while waiting for it to lapse.
LEASE_POLL_S = 0.01


def rfc3339_ns(text: str) -> int:
    """Unix nanoseconds of an RFC 3339 time with up to nine fraction digits (Go's RFC3339Nano)."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return int(base.timestamp()) * _NS_PER_S + int((m.group(2) or "").ljust(9, "0"))


def lease_expiry_ns(record: Mapping[str, Any]) -> int | None:
    """``renewed_at + ttl`` of a lease record in Unix nanoseconds; ``None`` when the record lacks them."""
    try:
        return rfc3339_ns(str(record["renewed_at"])) + int(record["ttl"])
    except (KeyError, ValueError, TypeError):
        return None


def wait_lease_lapsed(data_root: str, timeout: float = 30.0) -> dict[str, Any]:
    """Re-read the lease until its expiry lies in the past by the wall clock; returns that record.

    Past the expiry both judges agree the lease is gone: liblease takes it over (``now > expiry``) and the
    probe calls it stale (``now >= expiry``). Waiting on the file itself rather than for a TTL's worth of
    time keeps this right however late the last renewal landed and however slow the machine is.
    Raises :class:`TargetError` when the lease is still live (or absent) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    rec: dict[str, Any] | None = None
    while True:
        rec = read_lease(data_root)
        expiry = None if rec is None else lease_expiry_ns(rec)
        if rec is not None and expiry is not None and time.time_ns() > expiry:
            return rec
        if time.monotonic() > deadline:
            raise TargetError(f"the lease in {data_root} did not lapse within {timeout:.0f} s; last: {rec}")
        time.sleep(LEASE_POLL_S)  # polling the lease file, bounded by the deadline


# --------------------------------------------------------------------------------------------------
# fault injection


class FaultHandle:
    """Fault rules of one in-process node (``modeld_sim.faults`` rule mappings: ``method``, ``action``
    ``error`` + ``token``, ``hang``, ``first``/``nth``…). Survives restarts of the node."""

    def __init__(self) -> None:
        from modeld_sim.faults import FaultSet

        self.set = FaultSet()
        self._injectors: list[Any] = []

    def hooks(self, instance: Callable[[], str]) -> Any:
        from modeld_sim.faults import FaultInjector

        inj = FaultInjector(self.set, instance=instance)
        self._injectors.append(inj)
        return inj

    def add(self, **rule: Any) -> None:
        self.set.add(rule)

    def error(self, method: str, token: str, *, first: int = 1, detail: str | None = None) -> None:
        rule: dict[str, Any] = {"method": method, "action": "error", "token": token, "first": first}
        if detail is not None:
            rule["detail"] = detail
        self.set.add(rule)

    def clear(self) -> None:
        self.set.clear()


# --------------------------------------------------------------------------------------------------
# targets


@dataclass
class Target:
    """What clauses need from a target."""

    kind: str
    data_root: str
    scriptable: bool
    model: dict[str, Any] = field(default_factory=dict)
    faults: FaultHandle | None = None
    _store_ref: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _staged: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        rec = read_lease(self.data_root) or {}
        return str((rec.get("meta") or {}).get("endpoint", ""))

    @property
    def instance_id(self) -> str:
        rec = read_lease(self.data_root) or {}
        return str(rec.get("instance_id", ""))

    # the backend the daemon serves and a model its store holds -------------------
    @property
    def served_backend(self) -> str:
        """The backend the daemon serves, as its lease names it (``meta.backend``; "" without one)."""
        rec = read_lease(self.data_root) or {}
        return str((rec.get("meta") or {}).get("backend", "")) or str(getattr(self, "backend", ""))

    def store_model(self) -> dict[str, Any]:
        """A model reference by name only (``{"model_name", "type"}``) that the daemon's store holds
        (``<data_root>/models/<name>/model.gguf`` for llama, ``<data_root>/models/<name>/`` with an
        ``openvino_*.xml`` for openvino; session-semantics.md §3.1). When :attr:`model` already lies
        there it is that model; otherwise (an external daemon given a model file anywhere) the model is
        staged there once for this target — hard links, else a copy — and removed again by
        :meth:`stop` (only what this target created)."""
        if self._store_ref is not None:
            return dict(self._store_ref)
        typ = str(self.model.get("type", "llama"))
        path = os.path.abspath(str(self.model.get("path", "")))
        models = os.path.join(os.path.abspath(self.data_root), "models")
        inside = os.path.dirname(path) if typ == "llama" else path
        if os.path.dirname(inside) == models and _in_store_layout(inside, typ):
            self._store_ref = {"model_name": os.path.basename(inside), "type": typ}
            return dict(self._store_ref)
        stem = os.path.basename(path.rstrip("/")).split(".")[0]
        if stem in ("", "model"):  # <dir>/<name>/model.gguf elsewhere: the directory names it
            stem = os.path.basename(os.path.dirname(path.rstrip("/"))) or "model"
        name = f"contract-{stem}"
        if not _in_store_layout(os.path.join(models, name), typ):
            self.stage_model(name)
        self._store_ref = {"model_name": name, "type": typ}
        return dict(self._store_ref)

    def stage_model(self, name: str) -> dict[str, Any]:
        """Put a copy of :attr:`model` into the daemon's store as ``<data_root>/models/<name>/`` (hard
        links, else copies; made aside and renamed in, as a push would) and return its reference by
        name. :meth:`stop` removes whatever this target staged and is still there."""
        typ = str(self.model.get("type", "llama"))
        path = os.path.abspath(str(self.model.get("path", "")))
        models = os.path.join(os.path.abspath(self.data_root), "models")
        dest = os.path.join(models, name)
        os.makedirs(models, exist_ok=True)
        staging = os.path.join(models, f".staging-contract-{os.getpid()}-{name}")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        if typ == "llama":
            _link_or_copy(path, os.path.join(staging, "model.gguf"))
        else:
            for entry in os.listdir(path):
                if os.path.isfile(os.path.join(path, entry)):
                    _link_or_copy(os.path.join(path, entry), os.path.join(staging, entry))
        os.replace(staging, dest)
        self._staged.append(dest)
        return {"model_name": name, "type": typ}

    def _unstage(self) -> None:
        staged, self._staged = self._staged, []
        for d in staged:
            shutil.rmtree(d, ignore_errors=True)

    def stop(self) -> None:  # pragma: no cover - overridden
        self._unstage()


class SimTarget(Target):
    """The simulator in-process (``--modeld-target=sim``)."""

    def __init__(
        self,
        data_root: str,
        *,
        backend: str = "llama",
        ttl: float = 30.0,
        renew: float | None = None,
        idle_ttl: float = 300.0,
        faults: bool = True,
        start: bool = True,
    ) -> None:
        super().__init__("sim", data_root, True)
        self.backend = backend
        self.ttl = ttl
        self.renew = renew
        self.idle_ttl = idle_ttl
        self.loop = sim_loop()
        self.sim: Any = None
        self.port = 0
        self.instances: list[str] = []
        self.faults = FaultHandle() if faults else None
        os.makedirs(data_root, exist_ok=True)
        path = write_tiny_model(os.path.join(data_root, "models"))
        self.model = {"model_name": TINY_MODEL_NAME, "type": "llama", "path": path}
        if start:
            self.start()

    def start(self, *, same_port: bool = False, **overrides: Any) -> str:
        from modeld_sim.simulator import Simulator

        kw: dict[str, Any] = {
            "backend": overrides.pop("backend", self.backend),
            "ttl": overrides.pop("ttl", self.ttl),
            "renew": overrides.pop("renew", self.renew),
            "idle_ttl": overrides.pop("idle_ttl", self.idle_ttl),
            "port": self.port if same_port else 0,
            **overrides,
        }
        sim = Simulator(self.data_root, **kw)

        async def go() -> str:
            role = await sim.start()
            if role == "owner" and self.faults is not None and sim.server is not None:
                sim.server.hooks = self.faults.hooks(lambda: sim.instance_id)
            return str(role)

        role = self.loop.run(go(), 30.0)
        if role != "owner":
            self.loop.run(sim.stop(), 30.0)
            raise TargetError(f"simulator on {self.data_root} became {role}, not owner")
        self.sim = sim
        self.port = int(sim.endpoint.rsplit(":", 1)[1])
        self.instances.append(sim.instance_id)
        return str(sim.instance_id)

    @property
    def endpoint(self) -> str:
        return str(self.sim.endpoint) if self.sim is not None else ""

    @property
    def instance_id(self) -> str:
        return str(self.sim.instance_id) if self.sim is not None else ""

    def stop(self) -> None:
        sim, self.sim = self.sim, None
        if sim is not None:
            with contextlib.suppress(Exception):
                self.loop.run(sim.stop(), 30.0)

    def kill(self) -> None:
        """Stop serving without releasing the lease (as SIGKILL would leave it)."""
        sim, self.sim = self.sim, None
        if sim is None:
            return

        async def go() -> None:
            sim.pause_renewals()
            if sim.owner is not None:
                # forget the lease so stop() does not delete it
                sim.owner.release = _noop_release
            await sim.stop()

        with contextlib.suppress(Exception):
            self.loop.run(go(), 30.0)

    def restart(self, *, same_port: bool = True) -> str:
        """Stop (releasing the lease) and start a new owner: a new instance id."""
        self.stop()
        return self.start(same_port=same_port)

    def pause_renewals(self) -> None:
        if self.sim is not None:
            self.sim.pause_renewals()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.loop.run(coro, timeout)


async def _noop_release() -> None:
    return None


class SubprocessSimTarget(Target):
    """``modeld-sim serve`` in a child process (``--modeld-target=sim-subprocess``); can be wedged."""

    def __init__(
        self, data_root: str, *, ttl: str = "30s", renew: str | None = None, start: bool = True
    ) -> None:
        super().__init__("sim-subprocess", data_root, False)
        self.ttl = ttl
        self.renew = renew
        self.proc: subprocess.Popen[bytes] | None = None
        os.makedirs(data_root, exist_ok=True)
        path = write_tiny_model(os.path.join(data_root, "models"))
        self.model = {"model_name": TINY_MODEL_NAME, "type": "llama", "path": path}
        if start:
            self.start()

    def start(self) -> str:
        argv = [
            sys.executable,
            "-m",
            "modeld_sim.cli",
            "serve",
            "--data-root",
            self.data_root,
            "--ttl",
            self.ttl,
        ]
        if self.renew:
            argv += ["--renew", self.renew]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30.0
        pid = self.proc.pid
        while time.monotonic() < deadline:
            rec = read_lease(self.data_root)
            if rec and rec.get("pid") == pid and (rec.get("meta") or {}).get("endpoint"):
                return str(rec["instance_id"])
            if self.proc.poll() is not None:
                raise TargetError(f"modeld-sim serve exited with {self.proc.returncode}")
            time.sleep(0.02)
        self.stop()
        raise TargetError("modeld-sim serve did not publish its lease within 30 s")

    def wedge(self) -> None:
        """SIGSTOP: the socket stays open, nothing answers (the recorded wedged daemon)."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def unwedge(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ExternalTarget(Target):
    """A daemon we did not start, found through its lease (``--modeld-target=lease:DATA_ROOT``)."""

    def __init__(self, data_root: str, model: Mapping[str, Any]) -> None:
        super().__init__("external", data_root, False, dict(model))

    def stop(self) -> None:
        self._unstage()


def _in_store_layout(model_dir: str, typ: str) -> bool:
    if typ == "llama":
        return os.path.isfile(os.path.join(model_dir, "model.gguf"))
    entries = ("openvino_model.xml", "openvino_language_model.xml")
    return any(os.path.isfile(os.path.join(model_dir, e)) for e in entries)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def parse_model_option(value: str | None) -> dict[str, Any]:
    """``--modeld-model TYPE:PATH`` → a model spec (name = the file's parent directory)."""
    if not value:
        return {}
    typ, _, path = value.partition(":")
    name = os.path.basename(os.path.dirname(path.rstrip("/"))) or "model"
    return {"model_name": name, "type": typ, "path": path}


# --------------------------------------------------------------------------------------------------
# stand-ins for discovery clauses


class HealthStub:
    """A gRPC server answering only ``Health`` with ``{"instance_id", "ready", "backend"}`` as told
    (``hang=True``: never answers). Runs on the simulator loop; built on ``modeld_sim.transport``."""

    def __init__(
        self, instance_id: str, *, ready: bool = True, backend: str = "llama", hang: bool = False
    ) -> None:
        self.instance_id = instance_id
        self.ready = ready
        self.backend = backend
        self.hang = hang
        self.loop = sim_loop()
        self.server: Any = None
        self.endpoint = ""

    def start(self) -> HealthStub:
        import asyncio

        from modeld_sim.transport import GrpcServer

        async def health(call: Any, payload: bytes) -> bytes:
            if self.hang:
                await asyncio.sleep(3600)
            body: dict[str, Any] = {}
            if self.instance_id:
                body["instance_id"] = self.instance_id
            body["ready"] = self.ready
            if self.backend:
                body["backend"] = self.backend
            return json.dumps(body, separators=(",", ":")).encode()

        async def go() -> None:
            self.server = GrpcServer({"contenox.transport.v1.Compute": {"Health": ("unary", health)}})
            await self.server.start()
            self.endpoint = str(self.server.address)

        self.loop.run(go(), 10.0)
        return self

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.loop.run(self.server.close(grace=0.0), 10.0)
            self.server = None


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback port that completes TCP handshakes (backlog) but never reads or answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


def closed_port() -> str:
    """A loopback address nobody listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


class Cluster:
    """Nodes on one data root (see the ``modeld_cluster`` fixture)."""

    def __init__(self, data_root: str, *, ttl: float = 0.6, renew: float = 0.2) -> None:
        self.data_root = data_root
        self.ttl = ttl
        self.renew = renew
        self.owner = SimTarget(data_root, ttl=ttl, renew=renew)
        self.retired: list[SimTarget] = []

    @property
    def model(self) -> dict[str, Any]:
        return self.owner.model

    def takeover(self) -> str:
        """The owner stops renewing (but keeps serving); once its lease lapsed a new node takes over."""
        old = self.owner
        old.pause_renewals()
        self.wait_lapsed()
        self.owner = SimTarget(self.data_root, ttl=self.ttl, renew=self.renew)
        self.retired.append(old)
        return self.owner.instance_id

    def wait_lapsed(self, timeout: float = 30.0) -> dict[str, Any]:
        """Until the lease on the shared root has lapsed (its owner stopped renewing or was killed)."""
        return wait_lease_lapsed(self.data_root, timeout)

    def restart(self, *, same_port: bool = True) -> str:
        return self.owner.restart(same_port=same_port)

    def stop(self) -> None:
        for t in [self.owner, *self.retired]:
            t.stop()
