"""The mutation runner's verdicts: only a failed clause kills; a factory that raises, a run without a
report, or set-up errors never count as killed; the control run must pass."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from modeld_contract.mutants.library import CONTROL_SPEC, FAMILIES, REGISTRY
from modeld_contract.mutants.runner import (
    KILLED,
    NO_VERDICT,
    SURVIVED,
    MutantResult,
    control_problem,
    run_mutants,
    run_suite,
    verdict,
)


def _report(*outcomes: str) -> dict[str, Any]:
    return {"clauses": [{"id": f"C-X-{i:02d}", "outcome": o, "reason": o} for i, o in enumerate(outcomes)]}


def test_a_failed_clause_kills() -> None:
    status, failed, _ = verdict(_report("passed", "failed", "error"))
    assert (status, failed) == (KILLED, ["C-X-01"])


@pytest.mark.parametrize(
    "report",
    [None, _report("error", "error"), _report("passed", "error"), _report(), _report("skipped")],
    ids=["no-report", "only-errors", "errors-beside-passes", "no-clauses", "only-skips"],
)
def test_errors_and_missing_reports_never_kill(report: dict[str, Any] | None) -> None:
    status, failed, detail = verdict(report)
    assert status == NO_VERDICT and failed == [] and detail


def test_a_clean_run_survives() -> None:
    assert verdict(_report("passed", "passed", "not-applicable"))[0] == SURVIVED


def test_the_control_must_pass() -> None:
    assert control_problem(_report("passed"), "") == ""
    assert "C-X-01" in control_problem(_report("passed", "failed"), "")
    assert "no report" in control_problem(None, "boom")
    assert control_problem(_report("skipped"), "")


def test_the_library_covers_every_family_with_30_or_more() -> None:
    assert len(REGISTRY) >= 30
    assert {m.family for m in REGISTRY.values()} == set(FAMILIES)
    assert all(m.spec.startswith("modeld_contract.mutants.library.") for m in REGISTRY.values())


@pytest.mark.slow
def test_a_raising_factory_is_not_killed_and_a_broken_connector_is(tmp_path: Path) -> None:
    """End to end on one clause: the control passes; a factory that raises gets no verdict; a connector
    that loses Status.last_error is killed by the clause that reads it."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "raising_factory.py").write_text(
        textwrap.dedent(
            """
            def make():
                raise RuntimeError("this factory cannot build a connector")
            """
        )
    )
    env = {"PYTHONPATH": str(pkg)}
    select = "C_OPEN_17"
    report, tail, _ = run_suite(CONTROL_SPEC, select=select, env=env, stop_at_first_failure=False)
    assert control_problem(report, tail) == "", tail
    broken = REGISTRY["dec_status_last_error_lost"]
    results = run_mutants(
        [MutantResult("raising", "raising_factory:make"), MutantResult(broken.name, broken.spec)],
        select=select,
        env=env,
        jobs=2,
    )
    raising, lost = results
    assert raising.status == NO_VERDICT and not raising.killed, raising
    assert lost.status == KILLED and lost.failed == ["C-OPEN-17"], lost
