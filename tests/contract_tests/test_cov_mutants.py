"""Every clause of C-PUSH, C-ENDPOINT, C-STREAM, C-DETAIL, C-LOAD and C-REDIAL can fail: small realistic
broken connectors (tests/broken_connectors/cov_*.py, thin subclasses of the reference connector) each
fail the clauses that state the rule they break, and the reference connector passes the same
selection.

Each run is the suite in a subprocess (``--modeld-connector=<module>:make -k <clauses>``,
tests/broken_connectors on ``PYTHONPATH``) with a JSON report; a mutant counts as caught only when the
named clauses report the outcome ``failed`` (an error in set-up, a crash of the factory or a "not
applicable" is no verdict on the rule). A mutant runs only the clauses named for it; every clause of
the six families is named for at least one mutant."""

from __future__ import annotations

import pytest
from _suite_runs import BROKEN, outcomes, suite_report

FAMILIES = ("C_PUSH", "C_ENDPOINT", "C_STREAM", "C_DETAIL", "C_LOAD", "C_REDIAL")
SELECTION = " or ".join(FAMILIES)

#: mutant module → (the clauses that must fail on it — the rule it breaks —, the ``-k`` that runs them)
MUTANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "cov_push_digest_uppercase": (("C-PUSH-01",), "C_PUSH_01"),
    "cov_push_presence_lost": (("C-PUSH-02",), "C_PUSH_02"),
    "cov_push_mismatch_retried_unverified": (("C-PUSH-03",), "C_PUSH_03"),
    "cov_push_tail_dropped": (("C-PUSH-04",), "C_PUSH_04"),
    "cov_push_empty_skipped": (("C-PUSH-05",), "C_PUSH_05"),
    "cov_push_type_defaulted": (("C-PUSH-06",), "C_PUSH_06"),
    "cov_push_read_error_as_eof": (("C-PUSH-07",), "C_PUSH_07"),
    "cov_push_offline_swallowed": (("C-PUSH-08",), "C_PUSH_08"),
    "cov_endpoint_backend_lost": (("C-ENDPOINT-01",), "C_ENDPOINT_01"),
    "cov_endpoint_via_lease": (tuple(f"C-ENDPOINT-{n:02d}" for n in range(2, 12)), "C_ENDPOINT_targeted"),
    "cov_endpoint_uncached": (("C-ENDPOINT-12",), "C_ENDPOINT_12"),
    "cov_endpoint_never_rechecked": (("C-ENDPOINT-13",), "C_ENDPOINT_13"),
    "cov_endpoint_lazy_dial": (("C-ENDPOINT-14",), "C_ENDPOINT_14"),
    "cov_endpoint_not_ready_accepted": (("C-ENDPOINT-15",), "C_ENDPOINT_15"),
    "cov_endpoint_close_noop": (("C-ENDPOINT-16",), "C_ENDPOINT_16"),
    "cov_endpoint_one_cache": (("C-ENDPOINT-17",), "C_ENDPOINT_17"),
    "cov_endpoint_default_deadline": (("C-ENDPOINT-18",), "C_ENDPOINT_18"),
    "cov_unreachable_reported_stale": (("C-ENDPOINT-19",), "C_ENDPOINT_19"),
    "cov_decode_tiny_deadline_ignored": (("C-STREAM-01",), "C_STREAM_01"),
    "cov_decode_start_failure_silent": (("C-STREAM-02",), "C_STREAM_02"),
    "cov_stream_tokens_untyped": (("C-STREAM-03",), "C_STREAM_03"),
    "cov_stream_plain_as_fatal": (("C-STREAM-04", "C-STREAM-05"), "C_STREAM_04 or C_STREAM_05"),
    "cov_overflow_detail_any_reason": (("C-DETAIL-01", "C-DETAIL-06"), "C_DETAIL and foreign"),
    "cov_overflow_stage_defaulted": (
        ("C-DETAIL-02", "C-DETAIL-04", "C-DETAIL-05"),
        "C_DETAIL and (empty or nothing or without)",
    ),
    "cov_overflow_detail_strict": (("C-DETAIL-03", "C-DETAIL-05"), "C_DETAIL and (numeric or without)"),
    "cov_open_retries_any_error": (("C-LOAD-01", "C-LOAD-02"), "C_LOAD_failed and lease"),
    "cov_target_open_retries_any_error": (("C-LOAD-03", "C-LOAD-04"), "C_LOAD_failed and targeted"),
    "cov_target_open_no_load": (("C-LOAD-05",), "C_LOAD_05"),
    "cov_calls_keep_first_owner": (
        tuple(f"C-REDIAL-{n:02d}" for n in range(1, 7)),
        "C_REDIAL and (status or describe or open_session or load_model or unload_model or embed)",
    ),
    "cov_admin_keeps_first_owner": (
        tuple(f"C-REDIAL-{n:02d}" for n in range(7, 11)),
        "C_REDIAL and (list_models or remove_model or disk_stats or push_model)",
    ),
}


def _clause_ids() -> set[str]:
    """Every clause id of the six families, read off the clause modules' marks (no run needed)."""
    import importlib

    ids: set[str] = set()
    for module in ("push", "endpoint", "stream_errors", "overflow_detail", "implicit_load", "redial"):
        mod = importlib.import_module(f"modeld_contract.clauses.test_{module}")
        for fn in vars(mod).values():
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "clause":
                    ids.add(str(mark.args[0]))
                elif mark.name == "parametrize":
                    for param in mark.args[1]:
                        ids.update(str(m.args[0]) for m in getattr(param, "marks", ()) if m.name == "clause")
    return ids


def test_every_mutant_module_is_listed() -> None:
    assert sorted(p.stem for p in BROKEN.glob("cov_*.py")) == sorted(MUTANTS)


def test_every_clause_has_a_mutant_that_fails_it() -> None:
    ids = _clause_ids()
    assert len(ids) >= 50, sorted(ids)
    named = {c for clauses, _ in MUTANTS.values() for c in clauses}
    assert ids - named == set(), f"clauses no broken connector is shown to fail: {sorted(ids - named)}"
    assert named - ids == set(), f"mutants name clauses that do not exist: {sorted(named - ids)}"


@pytest.mark.slow
def test_reference_connector_passes_the_selection() -> None:
    got = outcomes(suite_report("modeldconn", SELECTION))
    assert set(got.values()) == {"passed"}, got
    assert set(got) == _clause_ids(), "the selection must run exactly the six families' clauses"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_cov_clause_fails_on_mutant(mutant: str) -> None:
    clauses, selection = MUTANTS[mutant]
    got = outcomes(suite_report(f"{mutant}:make", selection))
    missed = {c: got.get(c, "not run") for c in clauses if got.get(c) != "failed"}
    assert not missed, f"{mutant}: these clauses did not fail: {missed}"
    caught = sorted(c for c, o in got.items() if o == "failed")
    print(f"{mutant}: caught by {', '.join(caught)}")
