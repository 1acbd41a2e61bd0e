"""``--modeld-connector`` specs → connector factories.

* ``exec:COMMAND`` — a driver executable (:mod:`modeld_contract.connectors.subprocess`); one driver
  process serves the whole test session and is reset between tests;
* ``module`` — a Python module with the ``modeldconn`` API (:mod:`modeld_contract.connectors.inprocess`);
* ``module:factory`` — ``factory()`` returns either a ready
  :class:`~modeld_contract.connectors.protocol.Connector` or an object with the ``modeldconn`` API;
* ``go`` — the real Go connector (``github.com/contenox/runtime`` v0.36.0 ``modeldconn``) behind the
  Go driver of ``contract_tests/drivers/go/``, built on demand and cached
  (:mod:`modeld_contract.drivers.gobuild`), run as ``exec:<binary>``; :class:`ConnectorUnavailable`
  (a skip reason naming the failing build step) when ``go`` is missing or the build fails.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from modeld_contract.connectors.inprocess import InProcessConnector
from modeld_contract.connectors.protocol import Connector
from modeld_contract.connectors.subprocess import DriverProcess, SubprocessConnector

__all__ = [
    "GO_SPEC",
    "ConnectorFactory",
    "ConnectorUnavailable",
    "is_subprocess_spec",
    "load_python_connector",
    "make_factory",
    "resolve_spec",
]

# --- Go driver (issue "Go conformance") -------------------------------------------------------------
GO_SPEC = "go"


class ConnectorUnavailable(Exception):
    """The connector of a spec cannot be had here (e.g. no Go toolchain); ``reason`` is the skip reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve_spec(spec: str) -> str:
    """``go`` → ``exec:<built Go driver>`` (building it when the cache has none); other specs unchanged."""
    if spec != GO_SPEC:
        return spec
    from modeld_contract.drivers.gobuild import GoBuildError, driver_command

    try:
        return "exec:" + driver_command()
    except GoBuildError as err:
        raise ConnectorUnavailable(err.skip_reason()) from err


# --- end Go driver -----------------------------------------------------------------------------------


class ConnectorFactory:
    """Makes one connector per test; owns the shared driver process of an ``exec:`` spec."""

    def __init__(self, spec: str) -> None:
        spec = resolve_spec(spec)  # Go driver (issue "Go conformance"): "go" → "exec:<binary>"
        self.spec = spec
        self.subprocess = is_subprocess_spec(spec)
        self._proc: DriverProcess | None = None
        self._make: Callable[[], Connector]
        if self.subprocess:
            command = spec[len("exec:") :]
            self._make = lambda: self._subprocess_connector(command)
        else:
            self._make = lambda: load_python_connector(spec)

    def _subprocess_connector(self, command: str) -> Connector:
        if self._proc is None or not self._proc.alive:
            self._proc = DriverProcess(command)
        return SubprocessConnector(command, self._proc)

    def __call__(self) -> Connector:
        return self._make()

    def shutdown(self) -> None:
        if self._proc is not None:
            self._proc.shutdown()
            self._proc = None


def is_subprocess_spec(spec: str) -> bool:
    return spec.startswith("exec:") or spec == GO_SPEC  # Go driver (issue "Go conformance")


def _looks_like_connector(obj: Any) -> bool:
    return all(
        callable(getattr(obj, n, None)) for n in ("configure", "ensure_prefix", "close_session", "probe")
    )


def load_python_connector(spec: str) -> Connector:
    mod_name, _, attr = spec.partition(":")
    module = importlib.import_module(mod_name)
    if not attr:
        return InProcessConnector(module, name=mod_name)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part)
    obj = target() if callable(target) else target
    if _looks_like_connector(obj):
        return obj  # type: ignore[no-any-return]
    return InProcessConnector(obj, name=spec)


def make_factory(spec: str) -> ConnectorFactory:
    return ConnectorFactory(spec)
