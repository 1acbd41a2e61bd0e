"""A clause that does not apply to the connector under test is *not applicable*, never "passed".

A connector that lacks an operation (no ``probe``, no ``push_model``) cannot keep or break the rules
about it, and nothing of ours may stand in for it. The clause raises :func:`not_applicable`; pytest
sees a skip, and the report counts it apart from skips (which mean the *target* could not run it).
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["NOT_APPLICABLE_PREFIX", "is_not_applicable", "not_applicable"]

NOT_APPLICABLE_PREFIX = "not applicable: "


def not_applicable(reason: str) -> NoReturn:
    import pytest

    pytest.skip(NOT_APPLICABLE_PREFIX + reason)


def is_not_applicable(skip_reason: str) -> bool:
    return skip_reason.removeprefix("Skipped: ").startswith(NOT_APPLICABLE_PREFIX)
