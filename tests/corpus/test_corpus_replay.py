"""Replay every recorded exchange of the real modeld v0.36.0 against `modeld-sim serve`.

Each recording runs in file order against one simulator started on a fresh data root with the
recorded backend, exactly as it was recorded against one real daemon (state carries over). One test
per case: selecting a single case replays every earlier case first, so `-k` works on any of them.
Nothing is normalised away but what the recording itself wrote as a placeholder.

The llama recording's 51 session cases need the real llama engine: they belong to the real-engine
suite (`tests/engines/`), not here; here its first 103 lines run against the fake engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.corpus import (
    MODELD_CORPUS,
    Case,
    Placeholders,
    comparable,
    load_cases,
    prepare_model,
    replay_case,
    reply_record,
    side_by_side,
)
from modeld_contract.h2client import RawGrpcClient

# The llama recording: the first 103 lines are the backend-independent exchanges (the same as
# backend none's), answered by the fake engine; the session cases after them need llama.cpp.
LLAMA_FAKE_ENGINE_LINES = 103

RECORDINGS = {
    "none": (MODELD_CORPUS / "real-none.jsonl", None),
    "llama": (MODELD_CORPUS / "real-llama.jsonl", LLAMA_FAKE_ENGINE_LINES),
}


def _cases(backend: str) -> list[Case]:
    path, limit = RECORDINGS[backend]
    return load_cases(path)[:limit]


class Replayer:
    """A `modeld-sim serve` subprocess plus a raw h2 client on a private event loop thread."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.cases = _cases(backend)
        self.data_root = root / "data"
        self.tmp = root
        model, model_dir = prepare_model(root)
        env = dict(os.environ, TZ="UTC")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modeld_sim.cli",
                "serve",
                "--data-root",
                str(self.data_root),
                "--backend",
                backend,
                "--ttl",
                "30s",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        lease = self._wait_for_lease()
        host, _, port = lease["meta"]["endpoint"].rpartition(":")
        self.ph = Placeholders(
            instance_id=lease["instance_id"],
            endpoint=lease["meta"]["endpoint"],
            model=model,
            model_dir=model_dir,
            tmp_dir=str(root),
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = RawGrpcClient(host, int(port))
        self.done = -1
        self.results: dict[int, dict[str, Any]] = {}

    def _wait_for_lease(self) -> dict[str, Any]:
        lease_path = self.data_root / "modeld.lease"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"modeld-sim exited {self.proc.returncode}: {out!r} {err!r}")
            try:
                lease: dict[str, Any] = json.loads(lease_path.read_text())
                if lease.get("meta", {}).get("endpoint"):
                    return lease
            except (OSError, ValueError):
                pass
            time.sleep(0.02)  # polling a file the subprocess writes; not synchronisation by delay
        raise RuntimeError("modeld-sim did not publish its lease within 15 s")

    def _run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=60)

    def reply_for(self, index: int) -> dict[str, Any]:
        while self.done < index:
            self.done += 1
            case = self.cases[self.done]
            # The `info.` case is a client hang on the real daemon: a short timeout suffices.
            timeout = 2.0 if case.is_info else 15.0
            raw = self._run(replay_case(self.client, case, self.ph, timeout=timeout))
            self.results[self.done] = reply_record(case, raw, self.ph)
        return self.results[index]

    def close(self) -> None:
        try:
            self._run(self.client.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def replayers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Replayer]]:
    made: dict[str, Replayer] = {}

    class _Lazy(dict[str, Replayer]):
        def __missing__(self, backend: str) -> Replayer:
            r = Replayer(backend, tmp_path_factory.mktemp(f"corpus-{backend}"))
            made[backend] = r
            self[backend] = r
            return r

    yield _Lazy()
    for r in made.values():
        r.close()


def _params() -> list[Any]:
    out = []
    for backend in RECORDINGS:
        for case in _cases(backend):
            if case.is_close:
                continue
            marks = []
            out.append(pytest.param(backend, case.index, id=f"{backend}-{case.name}", marks=marks))
    return out


@pytest.mark.parametrize(("backend", "index"), _params())
def test_corpus_exchange(replayers: dict[str, Replayer], backend: str, index: int) -> None:
    replayer = replayers[backend]
    case = replayer.cases[index]
    actual = replayer.reply_for(index)
    if case.is_info:
        # An observation, not a requirement: the real daemon never answered (a client hang). We only
        # require that the simulator is still serving afterwards, which the next case checks.
        return
    want, got = comparable(case, case.reply, actual)
    assert got == want, side_by_side(case, replayer.ph, want, got)


def test_corpus_counts() -> None:
    """The corpus holds what its README says: 102 exchanges + 1 observation per 103 lines."""
    none = _cases("none")
    llama_head = _cases("llama")
    assert len(none) == 103 and sum(c.is_info for c in none) == 1
    assert len(llama_head) == 103 and sum(c.is_info for c in llama_head) == 1
    assert [c.name for c in none] == [c.name for c in llama_head]


def test_corpus_comparison_sees_every_kind_of_difference() -> None:
    """The comparison is not vacuous: a changed code, message, body value or key order all differ."""
    case = next(c for c in _cases("none") if c.name == "status.ok")
    rec = case.reply
    same = json.loads(json.dumps(rec))
    assert comparable(case, rec, same)[0] == comparable(case, rec, same)[1]
    body = rec["messages"][0]
    variants = [
        {**rec, "code": 9},
        {**rec, "message": "x"},
        {**rec, "messages": [{**body, "state": "Ready"}]},
        {**rec, "messages": [dict(reversed(list(body.items())))]},
        {**rec, "content_type": "application/grpc"},
    ]
    for v in variants:
        want, got = comparable(case, rec, v)
        assert want != got, v
