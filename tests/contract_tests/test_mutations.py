"""Mutation check: the contract suite fails every deliberately broken connector on at least one clause.

Each broken variant (tests/broken_connectors/) runs the whole default-profile suite in a subprocess
(``--modeld-connector=<name>:make``, tests/broken_connectors on ``PYTHONPATH``) with a JSON report; the
test asserts a clause *failed* (a set-up error kills nothing) and names the clauses that caught the
defect. The reference connector itself passing is checked by the acceptance command, not here (it
would double the run time). The shipped library of broken connectors and its runner are tested in
test_mutants_runner.py."""

from __future__ import annotations

import pytest
from _suite_runs import outcomes, suite_report

MUTANTS = {
    "stale_lease": "C-LEASE",
    "no_redial": "C-FAILOVER",
    "no_fence": "C-",
    "swallow_backend_mismatch": "C-ERR",
    "no_deadline": "C-DEADLINE",
    "miscount_reused": "C-SESSION",
}
# Which clauses to run per mutant (the families that can see the defect), to keep the check fast.
SELECT = {
    "stale_lease": "LEASE or PROBE",
    "no_redial": "FAILOVER or FENCE",
    "no_fence": "OPEN or FENCE",
    "swallow_backend_mismatch": "ERR",
    "no_deadline": "DEADLINE",
    "miscount_reused": "SESSION",
}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_suite_catches_mutant(mutant: str) -> None:
    got = outcomes(suite_report(f"{mutant}:make", SELECT[mutant], timeout=600))
    failed = [c for c, o in got.items() if o == "failed"]
    assert failed, f"{mutant}: no clause failed: {got}"
    assert any(c.startswith(MUTANTS[mutant]) for c in failed), f"{mutant}: caught only by {failed}"
    print(f"{mutant}: caught by {', '.join(failed)}")
