"""The Go connector's recorded walk, made by our connector (a test helper, not product code).

``go-connector.api.jsonl`` lists the calls the Go program made through ``modeldconn`` v0.36.0
against the llama daemon, in order; :data:`STEPS` makes the same calls with the same arguments
through :class:`modeldconn.Connector`, against the simulator (backend ``llama``, fake engine),
through a :class:`~traffic_relay.Relay` that records every RPC. :func:`run_walk` returns each
call's outcome (result or exception) and the RPCs, ready to compare with the recordings.

The arguments are read off the Go recording (``go-connector.wire.jsonl``): model ``tiny`` of type
``llama`` at ``<MODEL>`` with ``NumCtx`` 128; prefix ``hello world``, suffix `` again``;
``DecodeConfig{MaxTokens: 4, Temperature: &0, Seed: &7}``; an overflowing prefix of 300 NULs;
``NumCtx`` 64 for the switch; type ``openvino`` for the foreign type; Embed of ``hello``;
expected generation 99 for the stale LoadModel / UnloadModel; model ``nosuch`` without a path.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from traffic_relay import MODEL, RPC, Relay, mirror_lease

import modeldconn as mc
from modeld_sim.simulator import Simulator
from modeldconn.session import Session

REF = mc.ModelRef("tiny", "llama", path=MODEL)
FOREIGN = mc.ModelRef("tiny", "openvino", path=MODEL)
UNKNOWN = mc.ModelRef("nosuch", "llama")
CFG = mc.Config(num_ctx=128)
CFG_SWITCH = mc.Config(num_ctx=64)
DECODE = mc.DecodeConfig(max_tokens=4, temperature=0.0, seed=7)
OVERFLOW_PREFIX = "\x00" * 300


@dataclass
class Outcome:
    call: str
    result: Any = None
    error: BaseException | None = None
    rpcs: list[RPC] = field(default_factory=list)


@dataclass
class Walk:
    """What the walk saw: per call its outcome and the RPCs it sent (in order)."""

    iid: str
    relay_endpoint: str
    outcomes: list[Outcome]
    rpcs: list[RPC]
    connections: int

    def outcome(self, call: str) -> Outcome:
        for o in self.outcomes:
            if o.call == call:
                return o
        raise KeyError(call)

    @property
    def subs(self) -> dict[str, str]:
        """Our concrete values → the recordings' placeholders."""
        return {
            self.iid: "<IID>",
            self.iid.upper(): "<IID_UPPER>",
            MODEL: "<MODEL>",
            self.relay_endpoint: "<RELAY>",
        }


class _State:
    def __init__(self, c: mc.Connector) -> None:
        self.c = c
        self.s: Session | None = None
        self.s2: Session | None = None
        self.snapshot: mc.SessionSnapshot | None = None

    @property
    def session(self) -> Session:
        assert self.s is not None
        return self.s


async def _decode(st: _State) -> int:
    return len(await st.session.decode(DECODE).collect())


async def _snapshot(st: _State) -> bool:
    st.snapshot = await st.session.snapshot()
    return st.snapshot is not None


async def _restore(st: _State) -> None:
    assert st.snapshot is not None
    await st.session.restore(st.snapshot)


async def _open(st: _State) -> None:
    st.s = await st.c.open_session(REF, CFG)


async def _open_switch(st: _State) -> None:
    st.s2 = await st.c.open_session(REF, CFG_SWITCH)


async def _close_switch(st: _State) -> None:
    assert st.s2 is not None
    await st.s2.close()


async def _status(st: _State) -> dict[str, Any]:
    s = await st.c.status()
    return {"owner_instance_id": s.owner_instance_id, "backend": s.backend, "state": s.state}


async def _describe(st: _State) -> dict[str, Any]:
    return {"ModelMaxContext": (await st.c.describe(REF, CFG)).model_max_context}


async def _explain(st: _State) -> int:
    return (await st.session.explain_context()).resident_tokens


async def _ensure(st: _State) -> Any:
    return await st.session.ensure_prefix("hello world")


async def _suffix(st: _State) -> Any:
    return await st.session.prefill_suffix(" again")


async def _overflow(st: _State) -> Any:
    return await st.session.ensure_prefix(OVERFLOW_PREFIX)


async def _after_close(st: _State) -> Any:
    return await st.session.ensure_prefix("x")


async def _close(st: _State) -> None:
    await st.session.close()


async def _busy(st: _State) -> Any:
    return await st.c.open_session(REF, CFG_SWITCH)


async def _describe_foreign(st: _State) -> Any:
    return await st.c.describe(FOREIGN, CFG)


async def _open_foreign(st: _State) -> Any:
    return await st.c.open_session(FOREIGN, CFG)


async def _embed(st: _State) -> int:
    return len(await st.c.embed(REF, CFG, "hello"))


async def _load_stale(st: _State) -> Any:
    return await st.c.load_model(REF, CFG, 99)


async def _load(st: _State) -> int:
    return (await st.c.load_model(REF, CFG)).generation


async def _unload_stale(st: _State) -> None:
    await st.c.unload_model(99)


async def _unload(st: _State) -> None:
    await st.c.unload_model()


async def _open_unknown(st: _State) -> Any:
    return await st.c.open_session(UNKNOWN, CFG)


def _sync(fn: Callable[[_State], Any]) -> Callable[[_State], Awaitable[Any]]:
    async def run(st: _State) -> Any:
        return fn(st)

    return run


#: The calls of go-connector.api.jsonl, in its order.
STEPS: list[tuple[str, Callable[[_State], Awaitable[Any]]]] = [
    ("Available", _sync(lambda st: st.c.available())),
    ("Backend", _sync(lambda st: st.c.backend())),
    ("ServeableBackend", _sync(lambda st: st.c.serveable_backend())),
    ("Status", _status),
    ("Describe", _describe),
    ("OpenSession", _open),
    ("EnsurePrefix", _ensure),
    ("PrefillSuffix", _suffix),
    ("Decode", _decode),
    ("ExplainContext", _explain),
    ("Snapshot", _snapshot),
    ("Restore", _restore),
    ("EnsurePrefix.overflow", _overflow),
    ("Close", _close),
    ("EnsurePrefix.after_close", _after_close),
    ("Close.again", _close),
    ("OpenSession.switch", _open_switch),
    ("OpenSession.busy", _busy),
    ("Close.switch", _close_switch),
    ("Describe.foreign_type", _describe_foreign),
    ("OpenSession.foreign_type", _open_foreign),
    ("Embed", _embed),
    ("LoadModel.stale", _load_stale),
    ("LoadModel", _load),
    ("UnloadModel.stale", _unload_stale),
    ("UnloadModel", _unload),
    ("OpenSession.unknown_name", _open_unknown),
]


async def walk_async(workdir: str) -> Walk:
    daemon_root = os.path.join(workdir, "daemon-root")
    client_root = os.path.join(workdir, "client-root")
    async with (
        Simulator(daemon_root, backend="llama", ttl=60.0, stop_grace=0.2) as sim,
        Relay(sim.endpoint) as relay,
    ):
        # The connector reads a lease naming the relay: same instance, backend and times.
        mirror_lease(daemon_root, client_root, relay.endpoint)
        c = mc.Connector(client_root)
        st = _State(c)
        outcomes: list[Outcome] = []
        try:
            for name, step in STEPS:
                before = len(relay.rpcs())
                o = Outcome(name)
                try:
                    o.result = await step(st)
                except mc.ModeldError as exc:
                    o.error = exc
                except mc.ProbeError as exc:
                    o.error = exc
                # let the relay decode the last frames (the answers came through it already)
                await asyncio.sleep(0)
                o.rpcs = relay.rpcs()[before:]
                outcomes.append(o)
        finally:
            await c.aclose()
        return Walk(sim.instance_id, relay.endpoint, outcomes, relay.rpcs(), relay.connections)


def go_rpcs_by_call(walk: Walk, go: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The Go RPCs (``go-connector.wire.jsonl`` lines) of each call: taken in order, as many as
    ours made for that call (the method sequences are compared by the traffic tests)."""
    out: dict[str, list[dict[str, Any]]] = {}
    i = 0
    for o in walk.outcomes:
        out[o.call] = go[i : i + len(o.rpcs)]
        i += len(o.rpcs)
    return out


def run_walk() -> Walk:
    """The walk in a fresh event loop and temporary directory (for module-scoped fixtures)."""
    with tempfile.TemporaryDirectory(prefix="traffic-walk-") as d:
        return asyncio.run(walk_async(d))
