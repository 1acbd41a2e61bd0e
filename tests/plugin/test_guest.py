"""The plugin is a guest in other people's repositories.

Each test builds a throwaway provider project with pytester and runs pytest in a subprocess, as the
project's own CI would, with our package installed (the entry point loads the plugin into every run):
its own ``contract_tests/`` package, its own Hypothesis profiles, its own ini settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PYTEST_SCRIPT = Path(sys.executable).parent / "pytest"

OWN_CONFTEST = """
import os
from hypothesis import settings
settings.register_profile("ci", max_examples=1000, deadline=500)
settings.register_profile("myprof", max_examples=7)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
"""

OWN_TEST = """
import datetime
from hypothesis import given, settings, strategies as st

EXPECTED = {"ci": (1000, 500), "myprof": (7, 200), "default": (100, 200)}

def test_profile_is_ours():
    import os
    name = os.environ.get("HYPOTHESIS_PROFILE", "default")
    examples, deadline_ms = EXPECTED[name]
    assert settings().max_examples == examples
    assert settings().deadline == datetime.timedelta(milliseconds=deadline_ms)
    assert settings().derandomize is False

@given(st.integers())
def test_property(n):
    assert isinstance(n, int)
"""


def _provider_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OWN_CONFTEST)
    pkg = pytester.mkpydir("contract_tests")
    (pkg / "test_own.py").write_text(OWN_TEST, encoding="utf-8")


# pytest-asyncio is in this environment for our own tests (the dev extra), not a dependency of the
# package a provider installs; its own configure-time warning is not ours to judge
NOT_OURS = ("-p", "no:asyncio")


def _run(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> pytest.RunResult:
    args = (*NOT_OURS, *args)
    old = dict(os.environ)
    try:
        os.environ.pop("CI", None)
        os.environ.pop("MODELD_STRICT", None)
        os.environ.update(env or {})
        return pytester.runpytest_subprocess(*args)
    finally:
        os.environ.clear()
        os.environ.update(old)


def _outcome_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if " PASSED" in line or " FAILED" in line or "ERROR" in line]


@pytest.mark.parametrize("profile", ["ci", "myprof", "default"])
def test_a_provider_project_runs_exactly_as_without_the_plugin(
    pytester: pytest.Pytester, profile: str
) -> None:
    _provider_project(pytester)
    env = {"HYPOTHESIS_PROFILE": profile}
    with_us = _run(pytester, "-v", "-W", "error", env=env)
    without = _run(pytester, "-v", "-W", "error", "-p", "no:modeld", env=env)
    assert with_us.ret == 0, with_us.stdout.str() + with_us.stderr.str()
    assert without.ret == 0
    assert _outcome_lines(with_us) == _outcome_lines(without)
    # pytest's own "plugins:" line lists the installed distribution; nothing else may name us
    text = "\n".join(line for line in with_us.outlines + with_us.errlines if not line.startswith("plugins:"))
    assert "modeld" not in text
    assert "warning" not in text.lower()
    assert "INTERNALERROR" not in text


def test_the_suite_runs_next_to_a_projects_own_contract_tests_package(pytester: pytest.Pytester) -> None:
    """The project's ini names its connector; the suite runs from the installed package although the
    project's own ``contract_tests`` package is first on sys.path."""
    _provider_project(pytester)
    marker = pytester.path / "acme-used"
    pytester.makepyfile(
        acme=f"""
        from modeldconn import Connector

        class AcmeConnector(Connector):
            pass

        def make():
            open({str(marker)!r}, "w").close()
            return AcmeConnector()
        """
    )
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nmodeld_connector = "acme:make"\n')
    report = pytester.path / "report.json"
    result = _run(
        pytester,
        "-p",
        "modeld",
        "--pyargs",
        "modeld_contract",
        "-k",
        "C_LEASE_01 or C_FENCE_05",
        f"--modeld-report={report}",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["connector"] == "acme:make"
    assert data["counts"]["passed"] == 2
    assert marker.exists(), "the connector named in pyproject.toml was not the one tested"
    # and the project's own package is still its own
    own = _run(pytester, "contract_tests", "-q")
    assert own.ret == 0


def test_the_run_header_names_what_is_tested(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "-p", "modeld", "--pyargs", "modeld_contract", "-k", "C_LEASE_01")
    assert result.ret == 0
    header = [line for line in result.outlines if line.startswith("modeld contract suite")]
    assert len(header) == 1
    for part in ("connector=modeldconn", "target=sim", "profile=dev", "contenox/runtime v0.36.0"):
        assert part in header[0]


MISTAKES = {
    "bogus target": (["--modeld-target", "bogus"], "unknown --modeld-target 'bogus'"),
    "bogus profile": (["--modeld-hypothesis-profile", "fast"], "unknown --modeld-hypothesis-profile 'fast'"),
    "model without type": (["--modeld-model", "tiny.gguf"], "expected TYPE:PATH"),
    "no such driver": (["--modeld-connector", "exec:./no-such-driver"], "'./no-such-driver' does not exist"),
    "unknown module": (
        ["--modeld-connector", "nosuchmodule_xyz:make"],
        "cannot import module 'nosuchmodule_xyz'",
    ),
    "lease without model": (["--modeld-target", "lease:{root}"], "--modeld-model none"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_mistake_is_told_once_before_any_clause_runs(pytester: pytest.Pytester, mistake: str) -> None:
    args, expected = MISTAKES[mistake]
    root = pytester.mkdir("data")
    args = [a.format(root=root) for a in args]
    result = _run(pytester, "-p", "modeld", "--pyargs", "modeld_contract", *args)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert text.count(expected) == 1, text
    assert "passed" not in text and "failed" not in text and "C-" not in text


def test_a_local_connector_module_under_plain_pytest_names_the_fix(pytester: pytest.Pytester) -> None:
    """Plain ``pytest`` does not put the current directory on sys.path: the message says so."""
    pytester.makepyfile(acme="def make():\n    raise AssertionError('never called')\n")
    # not pytester.run: it puts the project directory on PYTHONPATH, which is what this is about
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI", "MODELD_STRICT")}
    args = [*NOT_OURS, "-p", "modeld", "--pyargs", "modeld_contract", "--modeld-connector=acme:make"]
    proc = subprocess.run(
        [str(PYTEST_SCRIPT), *args], cwd=pytester.path, env=env, capture_output=True, text=True, timeout=300
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, text
    assert text.count("python -m pytest") == 1
    assert "C-" not in text


def test_lease_target_without_a_model_on_purpose(pytester: pytest.Pytester) -> None:
    root = pytester.mkdir("data")
    result = _run(
        pytester,
        "-p",
        "modeld",
        "--pyargs",
        "modeld_contract",
        f"--modeld-target=lease:{root}",
        "--modeld-model=none",
        "--collect-only",
        "-q",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_fewer_clauses_ran_than_required_fails_a_strict_run(pytester: pytest.Pytester) -> None:
    report = pytester.path / "r.json"
    args = ["-p", "modeld", "--pyargs", "modeld_contract", "-k", "C_LEASE_01", f"--modeld-report={report}"]
    enough = _run(pytester, *args, "--modeld-min-ran=1")
    assert enough.ret == 0, enough.stdout.str()
    short = _run(pytester, *args, "--modeld-min-ran=5", "--modeld-strict")
    assert short.ret == pytest.ExitCode.TESTS_FAILED, short.stdout.str()
    assert "only 1 clauses ran against target sim" in short.stdout.str()
    assert "only 1 clauses ran" in json.loads(report.read_text(encoding="utf-8"))["problem"]
    # outside strict mode a target that cannot run skips on purpose: the shortfall is told, not failed
    lenient = _run(pytester, *args, "--modeld-min-ran=5")
    assert lenient.ret == 0, lenient.stdout.str()
    assert "not a failure outside strict mode" in lenient.stdout.str()
