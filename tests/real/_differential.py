"""The machinery of the differential tests: two daemons driven in lockstep through one raw client.

A :class:`Pair` holds the real modeld (``RealDaemon``) and our simulator (in-process
``modeld_sim.simulator.Simulator`` on the same backend; the llama backend with the real llama.cpp engine),
each on its own fresh data root inside its own temporary folder, each with its own copy of the corpus's
``tiny-llama-ctx256.gguf``. An operation is a corpus-form case (``modeld_contract.corpus.Case``: method,
path, content-type, metadata, payloads with the corpus placeholders ``<IID>``, ``<MODEL>``, …); each side
fills the placeholders with its own values and sends it with ``replay_case`` — the same bytes but for those
values — and puts the reply in the corpus form with ``reply_record`` (instance id, endpoint, model and
temporary paths back to placeholders). Describe and DiskStats replies get the recorder's machine-value
masking (``modeld_contract.real.record.mask_machine_values``). Everything else is compared exactly, as JSON
text (key order included): gRPC status code, message, details, HTTP status, content-type, every message.

Exempt by nature, and only this: Snapshot's ``state_id`` (the sha256 of the engine's state blob); each side
keeps its own and gets it back in Restore (``<STATE_ID>`` in a request).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from modeld_contract._loop import LoopThread
from modeld_contract.corpus import (
    MACHINE_METHODS,
    Case,
    Placeholders,
    prepare_model,
    replay_case,
    reply_record,
)
from modeld_contract.h2client import RawGrpcClient
from modeld_contract.real.daemon import RealDaemon
from modeld_contract.real.record import mask_machine_values

STATE_ID: Final = "<STATE_ID>"
#: Sessions of a closed connection end about half a second later on the real daemon
#: (``llama.ensure_after_conn_closed``); a settle waits at most this long for both sides to agree.
SETTLE_S: Final = 5.0

_loop: LoopThread | None = None


def loop() -> LoopThread:
    global _loop
    if _loop is None:
        _loop = LoopThread("modeld-differential")
    return _loop


class Divergence(AssertionError):
    """The two daemons answered the same request differently."""


@dataclass
class Side:
    name: str
    tmp: Path
    ph: Placeholders
    client: RawGrpcClient
    state_ids: list[str] = field(default_factory=list)

    @property
    def data_root(self) -> Path:
        return self.tmp / "data"


def _fresh_tmp(prefix: str) -> tuple[Path, str, str]:
    # resolved: the daemons report real paths, and <TMP> must match them
    tmp = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    model, model_dir = prepare_model(tmp)
    return tmp, model, model_dir


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class Pair:
    """The real daemon and the simulator, started now on fresh data roots (``close()`` stops both)."""

    def __init__(self, backend: str, binary: Path, *, ttl: str = "3s") -> None:
        self.backend = backend
        self.loop = loop()
        self.calls = 0
        # the real daemon
        rtmp, rmodel, rdir = _fresh_tmp("modeld-diff-real-")
        self.real_daemon = RealDaemon(binary, rtmp / "data", ttl=ttl, log_path=rtmp / "modeld.log")
        self.real_daemon.start()
        d = self.real_daemon
        self.real = Side(
            "real",
            rtmp,
            Placeholders(d.instance_id, d.endpoint, rmodel, rdir, str(rtmp)),
            RawGrpcClient(d.host, d.port),
        )
        # the simulator
        stmp, smodel, sdir = _fresh_tmp("modeld-diff-sim-")
        from modeld_sim.simulator import Simulator

        self.sim_daemon = Simulator(
            str(stmp / "data"),
            backend=backend,
            engine="llama" if backend == "llama" else "fake",
            ttl=3.0,
            log=lambda stream, line: None,
        )
        role = self.loop.run(self.sim_daemon.start(), 30)
        assert role == "owner", role
        host, port = _host_port(self.sim_daemon.endpoint)
        self.sim = Side(
            "sim",
            stmp,
            Placeholders(self.sim_daemon.instance_id, self.sim_daemon.endpoint, smodel, sdir, str(stmp)),
            RawGrpcClient(host, port),
        )

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.real, self.sim)

    # -- one request to both -----------------------------------------------------------------------------

    def _case_for(self, side: Side, case: Case) -> Case:
        text = json.dumps(case.raw)
        if STATE_ID not in text:
            return case
        sid = side.state_ids[-1] if side.state_ids else "none-stored"
        return Case(case.index, case.name, json.loads(text.replace(STATE_ID, sid)))

    def one(self, side: Side, case: Case, timeout: float = 60.0) -> dict[str, Any]:
        raw = self.loop.run(
            replay_case(side.client, self._case_for(side, case), side.ph, timeout=timeout), timeout + 10
        )
        rec = reply_record(case, raw, side.ph)
        msgs = rec.get("messages")
        if case.method in MACHINE_METHODS and isinstance(msgs, list):
            rec["messages"] = mask_machine_values(case.method, msgs)
        if case.method == "Snapshot" and isinstance(msgs, list):
            for m in msgs:
                if isinstance(m, dict) and isinstance(m.get("state_id"), str):
                    side.state_ids.append(m["state_id"])
                    m["state_id"] = STATE_ID  # exempt by nature: each side keeps its own
        return rec

    def both(self, case: Case, timeout: float = 60.0) -> dict[str, Any]:
        """Send ``case`` to both; the (normalised) reply, or :class:`Divergence`."""
        self.calls += 1
        real = self.one(self.real, case, timeout)
        sim = self.one(self.sim, case, timeout)
        want, got = json.dumps(real, ensure_ascii=False), json.dumps(sim, ensure_ascii=False)
        if want != got:
            raise Divergence(
                f"{case.name}: the simulator differs from the real modeld\n"
                f"request: {json.dumps(case.raw.get('request'), ensure_ascii=False)[:3000]}\n"
                f"real: {want[:3000]}\nsim:  {got[:3000]}"
            )
        return real

    def close_connection(self, name: str) -> None:
        for side in self.sides:
            self.loop.run(side.client.close_connection(name), 10)

    def settle(self, probes: Sequence[Case], until_code: int) -> None:
        """Poll ``probes`` on both sides (not compared) until each answers ``until_code`` (bounded)."""
        deadline = time.monotonic() + SETTLE_S
        for side in self.sides:
            for probe in probes:
                while self.one(side, probe, 10).get("code") != until_code:
                    if time.monotonic() > deadline:
                        raise Divergence(f"{side.name}: {probe.name} never answered code {until_code}")
                    time.sleep(0.05)  # polling the daemon's own asynchronous clean-up, bounded

    def close(self) -> None:
        """Close the clients, stop both daemons (the real one must exit 0 and release its lease)."""
        try:
            for side in self.sides:
                self.loop.run(side.client.aclose(), 15)
        finally:
            try:
                self.loop.run(self.sim_daemon.stop(), 30)
            finally:
                try:
                    self.real_daemon.stop()
                finally:
                    self.real_daemon.kill()
                    for side in self.sides:
                        shutil.rmtree(side.tmp, ignore_errors=True)
