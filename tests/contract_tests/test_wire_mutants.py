"""Every C-WIRE / C-ENGINE clause can fail: small realistic broken connectors (tests/broken_connectors/
wire_*.py, thin subclasses of the reference connector) each fail the clause that states the rule they
break, and the reference connector passes the same selection.

Each run is the suite in a subprocess (``--modeld-connector=<module>:make -k <clauses>``,
tests/broken_connectors on ``PYTHONPATH``) with a JSON report; a mutant counts as caught only when the
named clauses report the outcome ``failed`` (an error in set-up or a crash of the factory is not a
verdict on the rule). A mutant runs only the clauses named for it, to keep the check fast; the
reference connector runs every C-WIRE and C-ENGINE clause, a superset of each mutant's selection."""

from __future__ import annotations

import pytest
from _suite_runs import BROKEN, outcomes, suite_report

SELECTION = "WIRE or C_ENGINE"

#: mutant module → the clauses that must fail on it (the rule it breaks)
MUTANTS: dict[str, tuple[str, ...]] = {
    "wire_zero_dropped": ("C-WIRE-09", "C-ENGINE-01"),
    "wire_temperature_float32": ("C-WIRE-09", "C-ENGINE-01"),
    "wire_topk_dropped": ("C-WIRE-09", "C-ENGINE-01"),
    "wire_seed_ignored": ("C-WIRE-09", "C-ENGINE-01"),
    "wire_parsers_dropped": ("C-WIRE-09", "C-ENGINE-02", "C-ENGINE-03"),
    "wire_digest_dropped": ("C-WIRE-01", "C-WIRE-02", "C-WIRE-03", "C-WIRE-04"),
    "wire_adapters_dropped": ("C-WIRE-01", "C-WIRE-02", "C-WIRE-03"),
    "wire_generation_ignored": ("C-WIRE-03",),
    "wire_enable_thinking_dropped": ("C-WIRE-08",),
    "wire_embed_rounded": ("C-WIRE-16", "C-ENGINE-04"),
    "wire_status_field_lost": ("C-WIRE-13",),
    "wire_describe_altered": ("C-WIRE-14",),
    "wire_snapshot_blocks_dropped": ("C-WIRE-21",),
    "wire_thinking_lost": ("C-WIRE-22", "C-ENGINE-02"),
}


def _selection(clauses: tuple[str, ...]) -> str:
    """``-k`` for these clauses (test names carry the id: ``test_C_WIRE_09_…``)."""
    return " or ".join(c.replace("-", "_") for c in clauses)


def test_every_mutant_module_is_listed() -> None:
    assert sorted(p.stem for p in BROKEN.glob("wire_*.py")) == sorted(MUTANTS)


@pytest.mark.slow
def test_reference_connector_passes_the_selection() -> None:
    got = outcomes(suite_report("modeldconn", SELECTION))
    assert set(got.values()) == {"passed"}, got
    wire = [c for c in got if c.startswith("C-WIRE-")]
    engine = [c for c in got if c.startswith("C-ENGINE-")]
    assert len(wire) >= 22 and len(engine) >= 5, got
    named = {c for want in MUTANTS.values() for c in want}
    assert named <= set(got), f"clauses named by the mutants but not run: {named - set(got)}"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_wire_clause_fails_on_mutant(mutant: str) -> None:
    got = outcomes(suite_report(f"{mutant}:make", _selection(MUTANTS[mutant])))
    missed = {c: got.get(c, "not run") for c in MUTANTS[mutant] if got.get(c) != "failed"}
    assert not missed, f"{mutant}: these clauses did not fail: {missed}"
    caught = sorted(c for c, o in got.items() if o == "failed")
    print(f"{mutant}: caught by {', '.join(caught)}")
