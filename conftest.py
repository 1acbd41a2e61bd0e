"""Repository-wide pytest configuration: Hypothesis profiles.

Profiles: `dev` (default, quick), `ci` (more examples, derandomised so a CI failure reproduces
locally), `deep` (long fuzzing). Select with HYPOTHESIS_PROFILE=<name>. Deadlines are off: these
machines are shared and noisy, and speed is measured in bench/, never in tests.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# tests/plugin/ runs pytest inside throwaway projects to see the plugin as a provider repository does
pytest_plugins = ["pytester"]
