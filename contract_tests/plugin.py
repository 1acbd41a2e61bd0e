"""The ``modeld`` pytest plugin (entry point ``pytest11``): options, fixtures, markers, report.

Registered for every pytest run once the package is installed, so it stays inert unless clauses of
the contract suite are collected: fixtures are lazy, and the report hooks act only on tests that
carry the ``clause`` marker.

Run the suite: ``python -m pytest --pyargs modeld_contract -p modeld [--modeld-report=report.md]``.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.report import Report

# The suite's folder and import name: its modules are imported under this name however they were
# collected (``--pyargs modeld_contract``, a path, or ``--pyargs contract_tests`` inside this
# repository), so they never take the folder's name ``contract_tests``, which a provider repository
# may well use for its own package.
SUITE_DIR = Path(__file__).resolve().parent
SUITE_PACKAGE = __name__.rpartition(".")[0]

REPORT_KEY = pytest.StashKey[Report]()
OPTIONS_KEY = pytest.StashKey["ModeldOptions"]()
ACTIVE_KEY = pytest.StashKey[bool]()

DEFAULT_CONNECTOR = "modeldconn"
PROFILES = ("dev", "ci", "deep")


@dataclass(frozen=True)
class ModeldOptions:
    connector: str
    target: str
    model: str | None
    report: str | None
    profile: str

    @property
    def subprocess_connector(self) -> bool:
        # Go driver (issue "Go conformance"): "go" runs the Go driver as a subprocess too
        return self.connector.startswith("exec:") or self.connector == "go"

    @property
    def target_kind(self) -> str:
        return "external" if self.target.startswith("lease:") else self.target

    @property
    def scriptable(self) -> bool:
        return self.target == "sim"

    # [real engines] byte arithmetic holds only for the simulator's fake engine
    @property
    def fake_engine(self) -> bool:
        """The target serves the simulator's fake engine (one token per UTF-8 byte): the in-process or
        subprocess simulator on its own tiny model, no ``--modeld-model``."""
        return self.target in ("sim", "sim-subprocess") and not self.model

    @property
    def fake_engine_skip_reason(self) -> str:
        why = f"target is {self.target}" + (f" with --modeld-model {self.model}" if self.model else "")
        return f"needs the simulator's fake engine (one token per UTF-8 byte, docs/fake-engine.md); {why}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modeld", "modeld contract suite")
    group.addoption(
        "--modeld-connector",
        default=DEFAULT_CONNECTOR,
        help="connector under test: a Python module or module:factory (default modeldconn), "
        "'exec:COMMAND' for a driver executable (docs/driver-protocol.md), "
        "or 'go' for the real Go connector (built on demand; skipped without Go)",
    )
    group.addoption(
        "--modeld-target",
        default="sim",
        help="target: sim (default, in-process simulator), sim-subprocess (modeld-sim serve), "
        "lease:DATA_ROOT (an external daemon found through its lease), "
        "real:none|real:llama (the real modeld v0.36.0, built if needed, a fresh daemon per clause)",
    )
    group.addoption("--modeld-model", default=None, help="TYPE:PATH of the model for external targets")
    group.addoption(
        "--modeld-report", default=None, help="write the conformance report to PATH.md or PATH.json"
    )
    group.addoption("--modeld-hypothesis-profile", default=None, help="Hypothesis profile: dev, ci, deep")


def _register_profiles() -> None:
    from hypothesis import HealthCheck, settings

    common: dict[str, Any] = {
        "deadline": None,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    }
    settings.register_profile("dev", max_examples=60, **common)
    settings.register_profile("ci", max_examples=200, derandomize=True, **common)
    settings.register_profile("deep", max_examples=5000, **common)


def _current_profile() -> str:
    from hypothesis import settings

    getter = getattr(settings, "get_current_profile_name", None)
    if callable(getter):
        return str(getter())
    return str(getattr(settings, "_current_profile", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(id, source=''): a modeld contract clause (stable id C-FAMILY-nn)"
    )
    config.addinivalue_line(
        "markers", "needs_scripting: clause needs a scriptable target (skipped against an external daemon)"
    )
    config.addinivalue_line(
        "markers",
        "needs_fake_engine: clause checks the fake engine's byte arithmetic (skipped unless the target "
        "is the simulator with its fake engine)",
    )
    _register_profiles()
    from hypothesis import settings

    chosen = config.getoption("--modeld-hypothesis-profile", None)
    if chosen:
        settings.load_profile(chosen)
    elif _current_profile() == "default":
        settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
    opts = ModeldOptions(
        connector=config.getoption("--modeld-connector", DEFAULT_CONNECTOR),
        target=config.getoption("--modeld-target", "sim"),
        model=config.getoption("--modeld-model", None),
        report=config.getoption("--modeld-report", None),
        profile=chosen or _current_profile(),
    )
    config.stash[OPTIONS_KEY] = opts
    config.stash[ACTIVE_KEY] = False
    config.stash[REPORT_KEY] = Report(opts.connector, opts.target, opts.profile)


def _suite_module_name(path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(SUITE_DIR)
    except ValueError:
        return None
    parts = list(rel.parts)
    if parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][: -len(".py")]
    return ".".join([SUITE_PACKAGE, *parts])


class SuiteModule(pytest.Module):
    """A clause module, imported by its name inside the suite package rather than by pytest's
    folder-derived name (which would be ``contract_tests.…`` for an editable install)."""

    def _getobj(self) -> Any:
        name = _suite_module_name(self.path)
        assert name is not None
        return importlib.import_module(name)


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # A plain directory, not a pytest Package: a Package imports ``__init__.py`` by its folder name.
    if _suite_module_name(path) is not None and (path / "__init__.py").is_file():
        return pytest.Dir.from_parent(parent, path=path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if _suite_module_name(module_path) is None:
        return None
    mod: pytest.Module = SuiteModule.from_parent(parent, path=module_path)
    return mod


def _clause_of(item: pytest.Item) -> tuple[str, str] | None:
    m = item.get_closest_marker("clause")
    if m is None or not m.args:
        return None
    return str(m.args[0]), str(m.kwargs.get("source", ""))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opts = config.stash.get(OPTIONS_KEY, None)
    if opts is None:
        return
    for item in items:
        c = _clause_of(item)
        if c is None:
            continue
        config.stash[ACTIVE_KEY] = True
        fn = getattr(item, "function", None)
        doc = (getattr(fn, "__doc__", None) or item.name).strip().splitlines()[0]
        item.user_properties.append(("modeld_clause", c[0]))
        item.user_properties.append(("modeld_title", doc))
        item.user_properties.append(("modeld_source", c[1]))
        if item.get_closest_marker("needs_scripting") and not opts.scriptable:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs a scriptable target (the in-process simulator); target is {opts.target}"
                )
            )
        elif item.get_closest_marker("needs_fake_engine") and not opts.fake_engine:
            item.add_marker(pytest.mark.skip(reason=opts.fake_engine_skip_reason))
        # [real-targets] real:none|real:llama: the build's reason, or no engine (real/target.py)
        if opts.target.startswith("real:"):
            from modeld_contract.real.target import collection_skips

            collection_skips(config, opts.target, item, c[0])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    clause = props.get("modeld_clause")
    if clause is None:
        return
    if report.when == "call" or (report.when == "setup" and (report.failed or report.skipped)):
        if report.passed:
            outcome, reason = "passed", ""
        elif report.skipped:
            outcome = "skipped"
            lr = report.longrepr
            reason = str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
            reason = reason.removeprefix("Skipped: ")
        else:
            outcome = "failed" if report.when == "call" else "error"
            reason = _failure_reason(report)
        _REPORTS.append(
            (
                str(clause),
                str(props.get("modeld_title", "")),
                str(props.get("modeld_source", "")),
                report.nodeid,
                outcome,
                reason,
                report.duration,
            )
        )
    elif report.when == "teardown" and report.failed:
        _REPORTS.append(
            (
                str(clause),
                str(props.get("modeld_title", "")),
                str(props.get("modeld_source", "")),
                report.nodeid,
                "error",
                _failure_reason(report),
                report.duration,
            )
        )


_REPORTS: list[tuple[str, str, str, str, str, str, float]] = []


def _failure_reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longreprtext).strip().splitlines()[-1] if report.longreprtext else "failed"


def _collect(config: pytest.Config) -> Report | None:
    rep = config.stash.get(REPORT_KEY, None)
    if rep is None:
        return None
    while _REPORTS:
        rep.record(*_REPORTS.pop(0))
    return rep if rep.clauses else None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller writes the report
    rep = _collect(config)
    opts = config.stash.get(OPTIONS_KEY, None)
    if rep is not None and opts is not None and opts.report:
        rep.finished = time.time()
        rep.write(opts.report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    rep = _collect(config)
    if rep is None:
        return
    tr = terminalreporter
    tr.section("modeld conformance", sep="=")
    tw = getattr(tr, "_tw", None)
    width = max(80, int(getattr(tw, "fullwidth", 100)))
    for line in rep.summary_lines(width=width):
        tr.write_line(line)
    opts = config.stash.get(OPTIONS_KEY, None)
    if opts is not None and opts.report:
        tr.write_line(f"report written to {opts.report}")


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def modeld_options(pytestconfig: pytest.Config) -> ModeldOptions:
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture(scope="session")
def modeld_connector_factory(modeld_options: ModeldOptions) -> Iterator[Any]:
    from modeld_contract.connectors.loader import ConnectorUnavailable, make_factory

    try:
        factory = make_factory(modeld_options.connector)
    except ConnectorUnavailable as exc:  # Go driver (issue "Go conformance"): no Go, or the build failed
        pytest.skip(exc.reason)
    yield factory
    factory.shutdown()


@pytest.fixture
def modeld_connector(modeld_connector_factory: Any) -> Iterator[Any]:
    """A fresh connector under test (closed after the test)."""
    conn = modeld_connector_factory()
    yield conn
    conn.close()


@pytest.fixture
def modeld_data_root(request: pytest.FixtureRequest, modeld_options: ModeldOptions, tmp_path: Path) -> str:
    """An empty data root for discovery clauses: on pyfakefs for an in-process connector (nothing
    touches the disk), a real temporary directory for a driver subprocess (it cannot see pyfakefs)."""
    if not modeld_options.subprocess_connector:
        fs = request.getfixturevalue("fs")
        root = "/modeld-contract/data"
        fs.create_dir(root)
        return root
    root_path = tmp_path / "data"
    root_path.mkdir()
    return str(root_path)


@pytest.fixture
def modeld_target(
    request: pytest.FixtureRequest, modeld_options: ModeldOptions, tmp_path: Path
) -> Iterator[Any]:
    """The target of ``--modeld-target``, started for this test (an external daemon is only found)."""
    from modeld_contract.targets import ExternalTarget, SimTarget, SubprocessSimTarget, parse_model_option

    kind = modeld_options.target
    target: Any
    if kind == "sim":
        target = SimTarget(str(tmp_path / "root"))
    elif kind == "sim-subprocess":
        target = SubprocessSimTarget(str(tmp_path / "root"))
    elif kind.startswith("lease:"):
        model = parse_model_option(modeld_options.model)
        if not model:
            pytest.skip("--modeld-model TYPE:PATH is required for an external target")
        target = ExternalTarget(kind[len("lease:") :], model)
    elif kind.startswith("real:"):
        # [real-targets] a fresh real modeld per clause (contract_tests/real/target.py)
        from modeld_contract.real.target import make_real_target

        target = make_real_target(request.config, kind, modeld_options.model, tmp_path / "root")
    else:
        raise pytest.UsageError(f"unknown --modeld-target {kind!r}")
    yield target
    target.stop()


@pytest.fixture
def modeld_sim(modeld_options: ModeldOptions, tmp_path: Path) -> Iterator[Any]:
    """The in-process simulator (scriptable: restart, takeover, faults). Clauses using it carry
    ``needs_scripting``."""
    from modeld_contract.targets import SimTarget

    if not modeld_options.scriptable:
        pytest.skip(f"needs the in-process simulator; target is {modeld_options.target}")
    sim = SimTarget(str(tmp_path / "sim-root"))
    yield sim
    sim.stop()


@pytest.fixture
def modeld_cluster(modeld_options: ModeldOptions, tmp_path: Path) -> Iterator[Any]:
    """Nodes sharing one data root, for failover: ``cluster.owner`` serves; ``cluster.takeover()``
    lets its lease lapse (the owner keeps serving, as a wedged or partitioned daemon would) and starts
    a new owner on the same root; ``cluster.restart()`` stops it cleanly and starts a new one."""
    from modeld_contract.targets import Cluster

    if not modeld_options.scriptable:
        pytest.skip(f"needs the in-process simulator; target is {modeld_options.target}")
    cluster = Cluster(str(tmp_path / "cluster-root"))
    yield cluster
    cluster.stop()


@pytest.fixture
def modeld_faults(modeld_sim: Any) -> Any:
    """The fault rules of ``modeld_sim`` (``modeld_sim.faults`` rule mappings)."""
    return modeld_sim.faults


@dataclass
class ModeldEnv:
    """What most clauses need: the connector pointed at the target, and the target's model."""

    conn: Any
    target: Any
    fake_engine: bool = False
    """[real engines] the target serves the fake engine (exact byte arithmetic may be checked)."""

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.target.model)

    @property
    def backend(self) -> str:
        """The backend the target serves, from its lease (``meta.backend``), not from the connector."""
        return str(self.target.served_backend)

    @staticmethod
    def config(num_ctx: int = 256) -> dict[str, Any]:
        return {"NumCtx": num_ctx}


@pytest.fixture
def modeld(modeld_connector: Any, modeld_target: Any, modeld_options: ModeldOptions) -> ModeldEnv:
    modeld_connector.configure(modeld_target.data_root)
    return ModeldEnv(modeld_connector, modeld_target, modeld_options.fake_engine)


@pytest.fixture
def modeld_scripted(modeld_connector: Any, modeld_sim: Any) -> ModeldEnv:
    """Like ``modeld`` but on the scriptable in-process simulator."""
    modeld_connector.configure(modeld_sim.data_root)
    return ModeldEnv(modeld_connector, modeld_sim, True)
