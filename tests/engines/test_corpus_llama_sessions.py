"""The 51 recorded llama session cases, replayed against ``modeld-sim serve --engine llama``.

The real daemon (contenox/runtime v0.36.0 built on llama-cpp-python 0.3.33's llama.cpp tree) answered
them on ``tiny-llama-ctx256.gguf`` (``tests/corpus/modeld-v0.36.0/real-llama.jsonl`` lines 104-156).
Our daemon runs with the real llama.cpp engine on a copy of the same GGUF, started as a subprocess on a
fresh data root; the whole recording is sent in file order (the first 103 backend-independent lines
set up the same state as on the real daemon), and every session case must give the recorded reply.

Exempt by nature, and only these:

* ``state_id`` of Snapshot (the sha256 of the engine's state blob): the replay sends back *our*
  ``llama.snapshot`` reply's ``state_id`` in ``llama.restore``;
* the values of Embed's vector (its length is compared; whether the values matched is reported);
* decoded text, only when the llama.cpp version differs from the recording's (0.3.33): the failure
  then says which text differs and why.

Skipped when llama-cpp-python is not installed; with ``MODELD_REQUIRE_LLAMA=1`` (the ``sim-llama`` tox env)
under strict mode (``CI=true``, ``MODELD_STRICT=1``) its absence is a failure instead.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from _engines_support import ServeProcess, require_or_skip
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

from modeld_sim.engines.llama import LLAMA_CPP_PYTHON_VERSION, llama_available, llama_unavailable_reason

RECORDING = MODELD_CORPUS / "real-llama.jsonl"
HEAD_LINES = 103  # the backend-independent exchanges; the session cases follow
SESSION_CASES = 51


def _cases() -> list[Case]:
    return load_cases(RECORDING)


def _session_cases() -> list[Case]:
    return [c for c in _cases()[HEAD_LINES:] if not c.is_close]


def _installed_llama_version() -> str:
    try:
        import llama_cpp  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:
        return ""
    return str(getattr(llama_cpp, "__version__", ""))


class LlamaReplayer:
    def __init__(self, root: Path) -> None:
        self.cases = _cases()
        model, model_dir = prepare_model(root)
        self.daemon = ServeProcess(root / "data", engine="llama", model=model)
        host, _, port = self.daemon.endpoint.rpartition(":")
        self.ph = Placeholders(
            instance_id=self.daemon.instance_id,
            endpoint=self.daemon.endpoint,
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
        self.our_state_id: str | None = None

    def _run(self, coro: Any, timeout: float = 120) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=timeout)

    def _request_case(self, case: Case) -> Case:
        """The case as sent: ``llama.restore`` carries our own snapshot's state_id."""
        if case.name != "llama.restore" or self.our_state_id is None:
            return case
        raw = copy.deepcopy(case.raw)
        raw["request"]["payloads"][0]["json"]["snapshot"]["state_id"] = self.our_state_id
        return Case(index=case.index, name=case.name, raw=raw)

    def reply_for(self, index: int) -> dict[str, Any]:
        while self.done < index:
            self.done += 1
            case = self.cases[self.done]
            timeout = 2.0 if case.is_info else 60.0
            raw = self._run(replay_case(self.client, self._request_case(case), self.ph, timeout=timeout))
            rec = reply_record(case, raw, self.ph)
            if case.name == "llama.snapshot" and rec.get("messages"):
                self.our_state_id = rec["messages"][0].get("state_id")
            self.results[self.done] = rec
        return self.results[index]

    def close(self) -> None:
        try:
            self._run(self.client.aclose(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.daemon.stop()


@pytest.fixture(scope="module")
def replayer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaReplayer]:
    require_or_skip(llama_available(), f"llama-cpp-python is not installed ({llama_unavailable_reason()})")
    r = LlamaReplayer(tmp_path_factory.mktemp("llama-sessions"))
    yield r
    r.close()


def _exempt(
    case: Case, want: dict[str, Any], got: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Apply the exemptions; returns (want, got, note)."""
    want, got = copy.deepcopy(want), copy.deepcopy(got)
    note = ""
    if case.method == "Snapshot":
        for side in (want, got):
            for m in side.get("messages") or []:
                if isinstance(m, dict) and "state_id" in m:
                    m["state_id"] = "<state_id: exempt>"
    if case.method == "Embed":
        wv = [m.get("vector") for m in want.get("messages") or [] if isinstance(m, dict)]
        gv = [m.get("vector") for m in got.get("messages") or [] if isinstance(m, dict)]
        if wv and gv and isinstance(wv[0], list) and isinstance(gv[0], list):
            note = "Embed vector values: " + ("identical" if wv[0] == gv[0] else "differ (exempt)")
            for side in (want, got):
                for m in side.get("messages") or []:
                    if isinstance(m, dict) and isinstance(m.get("vector"), list):
                        m["vector"] = f"<{len(m['vector'])} floats>"
    return want, got, note


def _text_only_difference(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Both are Decode streams of the same shape differing only in chunk texts."""
    wm, gm = want.get("messages") or [], got.get("messages") or []
    if len(wm) != len(gm) or want.get("code") != got.get("code"):
        return False
    for a, b in zip(wm, gm, strict=True):
        if {k: v for k, v in a.items() if k != "text"} != {k: v for k, v in b.items() if k != "text"}:
            return False
    return True


@pytest.mark.parametrize("index", [c.index for c in _session_cases()], ids=[c.name for c in _session_cases()])
def test_llama_session_case(replayer: LlamaReplayer, index: int) -> None:
    case = replayer.cases[index]
    actual = replayer.reply_for(index)
    want_rec, got_rec, note = _exempt(case, case.reply, actual)
    want, got = comparable(case, want_rec, got_rec)
    if note:
        print(f"{case.name}: {note}")
    if got == want:
        return
    if case.method == "Decode" and _text_only_difference(json.loads(want), json.loads(got)):
        version = _installed_llama_version()
        if version != LLAMA_CPP_PYTHON_VERSION:
            pytest.xfail(
                f"{case.name}: decoded text differs; llama-cpp-python {version or '?'} is installed, the "
                f"recording was made on {LLAMA_CPP_PYTHON_VERSION}'s llama.cpp (text is exempt then)"
            )
        pytest.fail(
            f"{case.name}: decoded text differs although llama-cpp-python {version} is the recording's "
            f"version: a numerical or sampling difference in our engine.\n"
            + side_by_side(case, replayer.ph, want, got)
        )
    assert got == want, side_by_side(case, replayer.ph, want, got)


def test_backend_independent_head_still_matches(replayer: LlamaReplayer) -> None:
    """The first 103 lines (answered before any engine work) are unchanged with the real engine."""
    bad = []
    for case in replayer.cases[:HEAD_LINES]:
        if case.is_close or case.is_info:
            continue
        want, got = comparable(case, case.reply, replayer.reply_for(case.index))
        if want != got:
            bad.append(side_by_side(case, replayer.ph, want, got))
    assert not bad, "\n\n".join(bad[:3])


def test_the_corpus_has_51_session_cases() -> None:
    cases = _session_cases()
    assert len(cases) == SESSION_CASES
    assert cases[0].name == "llama.describe" and cases[-1].name == "llama.open_foreign_type_while_resident"
