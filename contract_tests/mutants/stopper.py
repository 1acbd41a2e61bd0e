"""A pytest plugin for mutant runs: stop at the first clause that *failed* (the mutant is killed; the
rest of the suite cannot change that), but never at a set-up error, which kills nothing (unlike
``-x``, which stops at either)."""

from __future__ import annotations

from typing import Any

import pytest

_session: list[pytest.Session] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _session[:] = [session]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.failed or not _session:
        return
    props: dict[str, Any] = dict(report.user_properties)
    if "modeld_clause" in props:
        _session[0].shouldstop = f"clause {props['modeld_clause']} failed: the mutant is killed"
