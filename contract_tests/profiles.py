"""The suite's Hypothesis settings, kept out of Hypothesis's global profile registry.

The plugin is installed into other people's environments: registering or loading a global profile
would change their own tests (a project's ``ci`` profile silently replaced by ours, or
``HYPOTHESIS_PROFILE=theirs`` failing because we loaded ours first). So the suite's clauses take a
``settings`` object built here from the profile the user chose with ``--modeld-hypothesis-profile``
(or ``modeld_hypothesis_profile`` in the ini file), and nothing else in the run sees it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings as Settings

__all__ = ["PROFILES", "choose", "default_profile", "selected", "suite_settings"]

# max_examples per profile; every profile shares the rest (see _common)
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 60},
    "ci": {"max_examples": 200, "derandomize": True},
    "deep": {"max_examples": 5000},
}

_selected = "dev"


def default_profile() -> str:
    """``ci`` (derandomised, so a CI failure reproduces locally) when running under CI, else ``dev``."""
    return "ci" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no") else "dev"


def choose(name: str) -> None:
    """Select the profile for the clauses collected from now on (the plugin calls this once)."""
    global _selected
    if name not in PROFILES:
        raise ValueError(f"unknown Hypothesis profile {name!r}: choose one of {', '.join(PROFILES)}")
    _selected = name


def selected() -> str:
    return _selected


def suite_settings(**overrides: Any) -> Settings:
    """A ``hypothesis.settings`` for one clause: Hypothesis's defaults, the selected profile, then
    ``overrides``. Built from ``settings.default`` (never the currently loaded profile), so neither
    our profile leaks into the user's tests nor theirs into our clauses."""
    from hypothesis import HealthCheck, settings

    values: dict[str, Any] = {
        # speed is measured in bench/, never here: these machines are shared and noisy
        "deadline": None,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        **PROFILES[_selected],
        **overrides,
    }
    return settings(settings.get_profile("default"), **values)
