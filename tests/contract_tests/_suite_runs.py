"""Runs of the contract suite against the broken connectors of tests/broken_connectors/, through the
product's own runner (:func:`modeld_contract.mutants.runner.run_suite`), so these tests judge a broken
connector exactly as ``python -m modeld_contract.mutants`` does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modeld_contract.mutants.runner import run_suite

BROKEN = Path(__file__).resolve().parent.parent / "broken_connectors"


def suite_report(connector: str, select: str, *, timeout: float = 280) -> dict[str, Any]:
    """The JSON report of every selected clause (no stop at the first failure: a test may want all)."""
    # the directory itself goes on the path (not tests/: its contract_tests/ would shadow the package)
    env = {"PYTHONPATH": os.pathsep.join([str(BROKEN), os.environ.get("PYTHONPATH", "")])}
    report, tail, _ = run_suite(
        connector,
        select=select,
        env=env,
        timeout=timeout,
        stop_at_first_failure=False,
        extra_args=["--modeld-hypothesis-profile=dev"],
    )
    assert report is not None, tail
    return report


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {str(c["id"]): str(c["outcome"]) for c in report["clauses"]}
