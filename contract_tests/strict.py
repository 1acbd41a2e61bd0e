"""Strict mode: under CI a target or connector that cannot be built or started fails the run.

Outside CI a missing Go toolchain or an unbuildable daemon is a friendly skip with its reason; in CI
the same skip would let a run go green while whole families of clauses never ran. Strict mode is on
when ``--modeld-strict`` is given (or ``modeld_strict = true`` in the ini file), when
``MODELD_STRICT`` is set to a true value, or when ``CI`` is (GitHub Actions, GitLab, tox under CI
and ``.ci/run`` all set ``CI=true``). ``MODELD_STRICT=0`` turns it off even under CI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import pytest

__all__ = ["is_strict", "unavailable"]

_FALSE = ("", "0", "false", "no", "off")


def _env_true(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() not in _FALSE


def is_strict(config: pytest.Config | None = None) -> bool:
    if config is not None:
        try:
            if config.getoption("--modeld-strict", False):
                return True
            if str(config.getini("modeld_strict")).strip().lower() in ("1", "true", "yes", "on"):
                return True
        except (ValueError, KeyError):
            pass  # the plugin is not loaded in this run: only the environment decides
    explicit = _env_true("MODELD_STRICT")
    if explicit is not None:
        return explicit
    return bool(_env_true("CI"))


def unavailable(reason: str, config: pytest.Config | None = None) -> NoReturn:
    """A target, connector or engine cannot be had here: fail under strict mode, skip otherwise."""
    import pytest

    if is_strict(config):
        why = "strict mode: CI or MODELD_STRICT is set, so this is a failure"
        pytest.fail(f"{reason} ({why})", pytrace=False)
    pytest.skip(reason)
