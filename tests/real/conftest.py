"""The real modeld daemon in tests: enabled by ``MODELD_REAL``, built (or found cached) once per session.

``MODELD_REAL=none`` (or ``llama``, ``none,llama``, ``all``) enables the tests marked
``real_daemon`` for those backends; without it they skip with the reason, so the fast suite never
builds Go. For an enabled backend, a build that fails (no Go toolchain, no compiler, the registry
unreachable) is a skip naming the failed step and how to retry — and under strict mode (``CI=true``,
``MODELD_STRICT=1``: :mod:`modeld_contract.strict`) a failure with the build's whole message, so CI
cannot pass with the daemon never built. The tox envs ``real-none`` / ``real-llama`` set these (see
``docs/real-daemon.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from modeld_contract.real.build import BACKENDS, BuildError, BuildResult, build
from modeld_contract.strict import is_strict, unavailable

ENV = "MODELD_REAL"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_daemon(backend): needs the real modeld of that backend (enabled by MODELD_REAL=backend)",
    )


def enabled_backends() -> set[str]:
    raw = os.environ.get(ENV, "").strip().lower()
    if raw in ("all", "1", "yes"):
        return set(BACKENDS)
    return {b.strip() for b in raw.split(",") if b.strip()}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on = enabled_backends()
    for item in items:
        marker = item.get_closest_marker("real_daemon")
        if marker is None:
            continue
        backend = marker.args[0] if marker.args else "none"
        if backend not in on:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"the real modeld ({backend}) is not enabled: set {ENV}={backend} "
                    f"(or run `tox -e real-{backend}`); building it needs Go "
                    "(and cmake + a C++ compiler for llama)"
                )
            )


_BUILDS: dict[str, BuildResult | BuildError] = {}


def built(backend: str, config: pytest.Config | None = None) -> BuildResult:
    """The daemon of ``backend`` (built once per session); when it cannot be built, a skip with the failed
    step and how to retry, or under strict mode a failure with the build's message and log tail."""
    if backend not in _BUILDS:
        try:
            _BUILDS[backend] = build(backend)
        except BuildError as exc:
            _BUILDS[backend] = exc
    res = _BUILDS[backend]
    if isinstance(res, BuildError):
        unavailable(str(res) if is_strict(config) else res.skip_reason(), config)
    return res


@pytest.fixture(scope="session")
def modeld_none(pytestconfig: pytest.Config) -> BuildResult:
    return built("none", pytestconfig)


@pytest.fixture(scope="session")
def modeld_llama(pytestconfig: pytest.Config) -> BuildResult:
    return built("llama", pytestconfig)


@pytest.fixture(scope="session")
def record_twice(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Path], tuple[Path, Path]]:
    """Record ``real-<backend>.jsonl`` twice (two fresh daemons), once per session and backend."""
    from modeld_contract.real.record import record

    done: dict[str, tuple[Path, Path]] = {}

    def run(backend: str, binary: Path) -> tuple[Path, Path]:
        if backend not in done:
            first = record(backend, tmp_path_factory.mktemp(f"rec-{backend}-1"), modeld_bin=binary)
            second = record(backend, tmp_path_factory.mktemp(f"rec-{backend}-2"), modeld_bin=binary)
            done[backend] = (first, second)
        return done[backend]

    return run
