"""The real modeld as a target of the contract suite: ``--modeld-target=real:none`` / ``real:llama``.

Each clause gets a fresh real daemon (``modeld_contract.real.RealDaemon``) on a fresh data root with a short
TTL, found through its lease, and stopped with SIGTERM at the end — which must exit 0 and release the lease
(else the clause errors with the daemon's log tail). A daemon that does not come up within 30 s ends the
session with its log tail (``pytest.exit``): every later clause would wait as long for the same reason.

The build (``modeld_contract.real.build``, cached; a second call is instant) happens once, at collection.
A :class:`~modeld_contract.real.BuildError` turns into a skip of **every** clause with the build's reason
(``BuildError.skip_reason()``). Under strict mode (``--modeld-strict``, ``CI=true``, ``MODELD_STRICT=1``:
:mod:`modeld_contract.strict`) nothing is skipped for it: every clause that needs the daemon fails with the
failing step's message, so a CI run cannot go green with the target never built.

The model: ``real:llama`` serves a tiny random-weight GGUF made by our generator
(``modeld_sim.makemodel.make_llama_gguf``, what ``modeld-sim make-model --type llama`` writes), unless
``--modeld-model llama:PATH`` names another; ``real:none`` gets the simulator's metadata-only GGUF (no
engine will ever read it). Either is copied into ``<data root>/models/<name>/model.gguf``, where the daemon
resolves a model given by name only (``runtime/modelrepo/llama/provider.go``; ``--models-dir`` default).

Clauses that need an inference engine skip on ``real:none`` with that reason: the backend-none daemon
answers every load with ``model_load_failed: … no local inference backend compiled in this build``
(recorded: ``tests/corpus/modeld-v0.36.0/real-none.jsonl`` ``open.*``). They are those marked
``needs_engine`` (if the clause carries the marker) and those listed in :data:`ENGINE_CLAUSES`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import pytest
from modeld_contract.real.build import BACKENDS, BuildError, BuildResult, build
from modeld_contract.real.daemon import DaemonError, RealDaemon
from modeld_contract.strict import is_strict, unavailable
from modeld_contract.targets import TINY_MODEL_NAME, Target, parse_model_option, read_lease

__all__ = [
    "ENGINE_CLAUSES",
    "REAL_TTL",
    "RealTarget",
    "collection_skips",
    "is_real",
    "make_real_target",
]

PREFIX: Final = "real:"
#: a short TTL: a lease left behind lapses quickly (renewed every second)
REAL_TTL: Final = "3s"
#: Clauses that open, load, describe or embed a model, or run a session: they need an inference engine.
#: Found by running the suite against ``real:none`` with none skipped: exactly these failed, each with the
#: backend-none load error (C-ERR-18 and C-OPEN-17 pass there: their model_load_failed is the same sentinel).
ENGINE_CLAUSES: Final = frozenset(
    {
        "C-FENCE-01",  # opens a session and runs every session call
        "C-FENCE-06",
        "C-OPEN-02",
        "C-OPEN-03",
        "C-OPEN-04",
        "C-OPEN-05",
        "C-OPEN-06",
        "C-OPEN-07",
        "C-OPEN-08",
        "C-OPEN-09",
        "C-OPEN-10",
        "C-OPEN-11",
        "C-OPEN-13",
        "C-OPEN-18",
        "C-OPEN-20",  # loads the model first
        "C-ERR-17",  # backend none answers Describe with `internal: … no local inference backend`
        *(f"C-SESSION-{n:02d}" for n in range(1, 17)),
    }
)

_BUILDS_KEY = pytest.StashKey[dict[str, "BuildResult | BuildError"]]()
_MODELS_KEY = pytest.StashKey[dict[str, str]]()


def is_real(target: str) -> bool:
    return target.startswith(PREFIX)


def backend_of(target: str) -> str:
    backend = target[len(PREFIX) :]
    if backend not in BACKENDS:
        raise pytest.UsageError(f"--modeld-target {target!r}: the real backends are {', '.join(BACKENDS)}")
    return backend


def _build(config: pytest.Config, backend: str) -> BuildResult | BuildError:
    builds = config.stash.setdefault(_BUILDS_KEY, {})
    if backend not in builds:
        try:
            builds[backend] = build(backend)
        except BuildError as exc:
            builds[backend] = exc
    return builds[backend]


def collection_skips(config: pytest.Config, target: str, item: pytest.Item, clause_id: str) -> None:
    """Skip markers for a clause against ``real:…``: the build's reason, or a missing engine."""
    backend = backend_of(target)
    res = _build(config, backend)
    if isinstance(res, BuildError):
        if not is_strict(config):
            item.add_marker(pytest.mark.skip(reason=res.skip_reason()))
        # strict: the clause runs and fails where it asks for the target (make_real_target)
        return
    if backend == "none" and (item.get_closest_marker("needs_engine") or clause_id in ENGINE_CLAUSES):
        item.add_marker(
            pytest.mark.skip(
                reason="needs an inference engine; target real:none is the real modeld built without one "
                "(every load fails: no local inference backend compiled in this build)"
            )
        )


def _session_model(config: pytest.Config, backend: str) -> str:
    """The model file served by every daemon of the session (made once)."""
    models = config.stash.setdefault(_MODELS_KEY, {})
    if backend not in models:
        folder = Path(tempfile.mkdtemp(prefix=f"modeld-real-{backend}-model-"))
        out = folder / TINY_MODEL_NAME / "model.gguf"
        if backend == "llama":
            try:
                from modeld_sim.makemodel import make_llama_gguf

                models[backend] = make_llama_gguf(str(out), seed=0)
            except ImportError as exc:
                unavailable(
                    f"making the tiny llama model needs the 'llama' extra (gguf, numpy): {exc}; "
                    "or give --modeld-model llama:PATH",
                    config,
                )
        else:
            from modeld_sim.gguf import write_fake_gguf

            models[backend] = write_fake_gguf(str(out), context_length=2048, name=TINY_MODEL_NAME)
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    return models[backend]


class RealTarget(Target):
    """One real ``modeld serve`` on its own data root, started now, stopped (and checked) by :meth:`stop`."""

    def __init__(
        self, binary: Path, data_root: str, backend: str, model: dict[str, Any], *, ttl: str = REAL_TTL
    ) -> None:
        super().__init__(f"real:{backend}", data_root, False)
        self.backend = backend
        os.makedirs(data_root, mode=0o700, exist_ok=True)
        name = str(model.get("model_name") or TINY_MODEL_NAME)
        dest = os.path.join(data_root, "models", name, "model.gguf")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(model["path"], dest)
        self.model = {"model_name": name, "type": str(model.get("type") or "llama"), "path": dest}
        log = Path(data_root).parent / f"{Path(data_root).name}.modeld.log"  # outside the data root
        self.daemon = RealDaemon(binary, data_root, ttl=ttl, log_path=log)
        self.daemon.start()

    @property
    def endpoint(self) -> str:
        rec = read_lease(self.data_root) or {}
        return str((rec.get("meta") or {}).get("endpoint", ""))

    def stop(self) -> None:
        """SIGTERM; exit 0 and the lease released, or :class:`DaemonError` with the log tail."""
        try:
            self.daemon.stop()
        finally:
            self.daemon.kill()
            super().stop()  # removes what the clauses staged in the store


def make_real_target(config: pytest.Config, target: str, model_option: str | None, root: Path) -> RealTarget:
    backend = backend_of(target)
    res = _build(config, backend)
    if isinstance(res, BuildError):
        unavailable(res.skip_reason(), config)
    model = parse_model_option(model_option) if model_option else {}
    if model and model.get("type") != backend and backend != "none":
        raise pytest.UsageError(f"--modeld-model {model_option!r}: target {target} serves {backend} models")
    if not model:
        model = {"model_name": TINY_MODEL_NAME, "type": "llama", "path": _session_model(config, backend)}
    try:
        return RealTarget(res.binary, str(root), backend, model)
    except DaemonError as exc:
        pytest.exit(
            f"the real modeld ({backend}) did not come up: {exc}", returncode=pytest.ExitCode.TESTS_FAILED
        )
