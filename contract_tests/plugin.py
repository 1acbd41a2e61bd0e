"""The ``modeld`` pytest plugin (entry point ``pytest11``): options, fixtures, markers, report.

Installed, it is loaded by every pytest run in the environment, so it is a guest: importing it costs
next to nothing (heavy modules load inside the hooks that need them), it registers nothing global
(no Hypothesis profile: the clauses carry the suite's own settings, :mod:`modeld_contract.profiles`),
and it prints nothing unless the suite is in use — its clauses collected, ``-p modeld`` given, or a
``--modeld-*`` option / ``modeld_*`` ini value set.

Run the suite: ``python -m pytest --pyargs modeld_contract -p modeld [--modeld-report=report.md]``.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from modeld_contract.options import ModeldOptions, add_options, check_connector, explicitly_set, resolve

if TYPE_CHECKING:  # the report module loads only when the suite is in use
    from modeld_contract.report import Report

# The suite's folder and import name: its modules are imported under this name however they were
# collected (``--pyargs modeld_contract``, a path, or ``--pyargs contract_tests`` inside this
# repository), so they never take the folder's name ``contract_tests``, which a provider repository
# may well use for its own package.
SUITE_DIR = Path(__file__).resolve().parent
SUITE_PACKAGE = __name__.rpartition(".")[0]

REPORT_KEY = pytest.StashKey["Report"]()
OPTIONS_KEY = pytest.StashKey[ModeldOptions]()
ACTIVE_KEY = pytest.StashKey[bool]()
CONNECTOR_KEY = pytest.StashKey[str]()
CONNECTOR_PROBLEM_KEY = pytest.StashKey[str]()

__all__ = ["ModeldOptions", "suite_in_use"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _plugin_named(config: pytest.Config) -> bool:
    args = list(config.invocation_params.args)
    return any(
        (a == "-p" and i + 1 < len(args) and args[i + 1] == "modeld") or a == "-pmodeld"
        for i, a in enumerate(args)
    )


def _suite_in_args(config: pytest.Config) -> bool:
    for arg in config.args:
        name = arg.split("::")[0]
        if name.split(".")[0] in (SUITE_PACKAGE, SUITE_DIR.name) and config.option.pyargs:
            return True
        try:
            Path(name).resolve().relative_to(SUITE_DIR)
        except (ValueError, OSError):
            continue
        return True
    return False


def suite_in_use(config: pytest.Config) -> bool:
    """The user asked for the suite: only then does the plugin validate, print a header, or report."""
    return _plugin_named(config) or explicitly_set(config) or _suite_in_args(config)


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
    config.stash[ACTIVE_KEY] = False
    if not suite_in_use(config):
        return
    _activate(config)


def _activate(config: pytest.Config) -> ModeldOptions:
    from modeld_contract import profiles
    from modeld_contract.report import Report

    opts = resolve(config, default_profile=profiles.default_profile())
    profiles.choose(opts.profile)
    config.stash[OPTIONS_KEY] = opts
    config.stash[REPORT_KEY] = Report(
        opts.connector, opts.target, opts.profile, model=opts.model, strict=opts.strict
    )
    return opts


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    opts = config.stash.get(OPTIONS_KEY, None)
    if opts is None:
        return None
    from modeld_contract.catalogue import CONTRACT_VERSION, suite_version

    return [
        f"modeld contract suite {suite_version()} ({CONTRACT_VERSION}): connector={opts.connector} "
        f"target={opts.target} model={opts.model or '-'} profile={opts.profile}"
        + (" strict" if opts.strict else "")
    ]


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
    clause_items = [(item, c) for item in items if (c := _clause_of(item)) is not None]
    if not clause_items:
        return
    opts = config.stash.get(OPTIONS_KEY, None) or _activate(config)
    config.stash[ACTIVE_KEY] = True
    check_connector(opts.connector)  # a usage error, told once, before any clause runs
    problem = _prepare_connector(config, opts)

    from modeld_contract.catalogue import entries

    catalogue = entries()
    for item, (clause, source) in clause_items:
        entry = catalogue.get(clause)
        fn = getattr(item, "function", None)
        doc = " ".join((getattr(fn, "__doc__", None) or item.name).split())
        item.user_properties.append(("modeld_clause", clause))
        item.user_properties.append(("modeld_title", entry.sentence if entry else doc))
        item.user_properties.append(("modeld_source", entry.source if entry and entry.source else source))
        if problem:
            item.add_marker(pytest.mark.skip(reason=problem))
        elif item.get_closest_marker("needs_scripting") and not opts.scriptable:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs a scriptable target (the in-process simulator); target is {opts.target}"
                )
            )
        elif item.get_closest_marker("needs_fake_engine") and not opts.fake_engine:
            item.add_marker(pytest.mark.skip(reason=opts.fake_engine_skip_reason))
        if opts.target.startswith("real:"):
            from modeld_contract.real.target import collection_skips

            collection_skips(config, opts.target, item, clause)


def _prepare_connector(config: pytest.Config, opts: ModeldOptions) -> str:
    """Resolve the connector spec once (``go`` is built here). Returns a skip reason when it cannot be
    had and strict mode is off; under strict mode the run ends here, non-zero, with the reason."""
    from modeld_contract.connectors.loader import ConnectorUnavailable, resolve_spec

    if config.option.collectonly:
        config.stash[CONNECTOR_KEY] = opts.connector
        return ""
    try:
        config.stash[CONNECTOR_KEY] = resolve_spec(opts.connector)
    except ConnectorUnavailable as exc:
        if opts.strict:
            rep = config.stash.get(REPORT_KEY, None)
            if rep is not None:
                rep.problem = f"connector {opts.connector} unavailable: {exc.reason}"
            # the reason itself is in the report and the summary: said once
            pytest.exit(
                f"modeld: no clause ran: the connector {opts.connector!r} cannot be had, and strict mode "
                "(CI, MODELD_STRICT or --modeld-strict) makes that a failure instead of a skip",
                returncode=pytest.ExitCode.TESTS_FAILED,
            )
        return str(exc.reason)
    return ""


_HYPOTHESIS_BLOB = re.compile(r"@reproduce_failure\([^)]*\)")
_HYPOTHESIS_SEED = re.compile(r"@seed\((\d+)\)|--hypothesis-seed=(\d+)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    clause = props.get("modeld_clause")
    if clause is None:
        return
    from modeld_contract.applicability import NOT_APPLICABLE_PREFIX

    replay = ""
    if report.when == "call" or (report.when == "setup" and (report.failed or report.skipped)):
        if report.passed:
            outcome, reason = "passed", ""
        elif report.skipped:
            lr = report.longrepr
            reason = str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
            reason = reason.removeprefix("Skipped: ")
            outcome = "skipped"
            if reason.startswith(NOT_APPLICABLE_PREFIX):
                outcome, reason = "not-applicable", reason[len(NOT_APPLICABLE_PREFIX) :]
        else:
            outcome = "failed" if report.when == "call" else "error"
            reason = _failure_reason(report)
            replay = _hypothesis_replay(report)
    elif report.when == "teardown" and report.failed:
        outcome, reason = "error", _failure_reason(report)
    else:
        return
    _REPORTS.append(
        (
            str(clause),
            str(props.get("modeld_title", "")),
            str(props.get("modeld_source", "")),
            report.nodeid,
            outcome,
            reason,
            report.duration,
            replay,
        )
    )


_REPORTS: list[tuple[str, str, str, str, str, str, float, str]] = []


def _failure_reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and str(crash.message).strip():
        return str(crash.message).strip()
    text = str(report.longreprtext).strip()
    return text.splitlines()[-1] if text else "failed"


def _hypothesis_replay(report: pytest.TestReport) -> str:
    """Hypothesis's own way back to the failing example, when it printed one."""
    text = str(report.longreprtext)
    found = _HYPOTHESIS_BLOB.findall(text)
    if found:
        return str(found[-1])
    seed = _HYPOTHESIS_SEED.search(text)
    return f"--hypothesis-seed={seed.group(1) or seed.group(2)}" if seed else ""


def _collect(config: pytest.Config) -> Report | None:
    rep = config.stash.get(REPORT_KEY, None)
    if rep is None:
        return None
    while _REPORTS:
        rep.record(*_REPORTS.pop(0))
    return rep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller writes the report
    rep = _collect(config)
    opts = config.stash.get(OPTIONS_KEY, None)
    if rep is None or opts is None or not (rep.clauses or rep.problem):
        return
    ran = rep.ran()
    if opts.min_ran and ran < opts.min_ran and not rep.problem:
        rep.problem = (
            f"only {ran} clauses ran against target {opts.target} (passed or failed), fewer than the "
            f"{opts.min_ran} expected (--modeld-min-ran): a target or family silently ran nothing"
        )
        # outside strict mode an unavailable target skips on purpose (its reason is in the report):
        # the shortfall is reported, and only strict mode (CI) turns it into a failure
        if not opts.strict:
            rep.problem += "; not a failure outside strict mode"
    if rep.problem and opts.strict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if opts.report:
        rep.finished = time.time()
        rep.write(opts.report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    rep = _collect(config)
    opts = config.stash.get(OPTIONS_KEY, None)
    if rep is None or opts is None or not (rep.clauses or rep.problem):
        return
    tr = terminalreporter
    tr.section("modeld conformance", sep="=")
    tw = getattr(tr, "_tw", None)
    width = max(40, int(getattr(tw, "fullwidth", 80)))
    for line in rep.summary_lines(width=width, options=opts.command_line()):
        tr.write_line(line)
    if opts.report:
        tr.write_line(f"report written to {opts.report}")


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def modeld_options(pytestconfig: pytest.Config) -> ModeldOptions:
    opts = pytestconfig.stash.get(OPTIONS_KEY, None)
    return opts if opts is not None else _activate(pytestconfig)


@pytest.fixture(scope="session")
def modeld_connector_factory(pytestconfig: pytest.Config, modeld_options: ModeldOptions) -> Iterator[Any]:
    from modeld_contract.connectors.loader import ConnectorUnavailable, make_factory
    from modeld_contract.strict import unavailable

    spec = pytestconfig.stash.get(CONNECTOR_KEY, modeld_options.connector)
    try:
        factory = make_factory(spec)
    except ConnectorUnavailable as exc:
        unavailable(exc.reason, pytestconfig)
    yield factory
    factory.shutdown()


@pytest.fixture
def modeld_connector(modeld_connector_factory: Any) -> Iterator[Any]:
    """A fresh connector under test (closed after the test)."""
    conn = modeld_connector_factory()
    yield conn
    conn.close()


@pytest.fixture
def modeld_data_root(tmp_path: Path) -> str:
    """An empty data root for discovery clauses: a real temporary directory, for every kind of
    connector (a driver subprocess could not see a faked filesystem, and one code path keeps the
    clauses identical for all connectors)."""
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
        model = parse_model_option(modeld_options.model_spec)
        if not model:
            pytest.skip("this clause needs a model, and the run was given --modeld-model none")
        target = ExternalTarget(kind[len("lease:") :], model)
    elif kind.startswith("real:"):
        from modeld_contract.real.target import make_real_target

        target = make_real_target(request.config, kind, modeld_options.model_spec, tmp_path / "root")
    else:  # options.resolve refuses any other target before collection
        raise AssertionError(f"unvalidated --modeld-target {kind!r}")
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
