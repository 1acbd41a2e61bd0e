"""The `modeld` pytest plugin (entry point `pytest11`): options for the contract suite.

Registered for every pytest run once the package is installed, so it must stay cheap and inert
unless its options are used.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modeld", "modeld contract suite")
    group.addoption("--modeld-connector", default="modeldconn",
                    help="connector under test: a Python module:factory, 'exec:COMMAND' or 'go'")
    group.addoption("--modeld-target", default="sim",
                    help="target: sim (default), sim-subprocess, lease:DATA_ROOT, real:none, real:llama")
    group.addoption("--modeld-model", default=None, help="TYPE:PATH of the model for real targets")
    group.addoption("--modeld-report", default=None, help="write the conformance report to PATH.md or PATH.json")
    group.addoption("--modeld-hypothesis-profile", default=None, help="Hypothesis profile: dev, ci, deep")
