"""The conformance report: outcomes counted apart, reasons whole, reproduce commands complete."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from modeld_contract.report import OUTCOMES, Report

LONG_REASON = (
    "AssertionError: DecodeConfig.TopK: the connector was asked to send 0 and the daemon received "
    "nothing at all; Go's omitempty keeps a zero int out of the JSON, but the field is a pointer here "
    "so the zero must be sent"
)
NODE = "contract_tests/clauses/test_errors.py::test_C_ERR_unary_sentinels[describe]"


def _report() -> Report:
    rep = Report("acme:make", "sim", "ci", model="llama:/m/model.gguf")
    rep.record(
        "C-ERR-02",
        "Every sentinel on `describe` surfaces typed",
        "wire.md §9.1",
        NODE,
        "failed",
        LONG_REASON,
        0.5,
        "@reproduce_failure('6.1', b'AAEC')",
    )
    rep.record(
        "C-LEASE-01", "No binary, no lease", "lease-and-discovery.md §7", "x.py::test_a", "passed", "", 0.1
    )
    rep.record(
        "C-PROBE-01",
        "The probe",
        "lease-and-discovery.md §7",
        "x.py::test_p",
        "not-applicable",
        "the connector has no probe",
        0.0,
    )
    rep.record("C-OPEN-01", "Open", "wire.md", "x.py::test_o", "skipped", "needs a scriptable target", 0.0)
    return rep


def test_outcomes_are_counted_apart_and_not_applicable_never_passes() -> None:
    rep = _report()
    counts = rep.counts()
    assert counts == {"failed": 1, "error": 0, "passed": 1, "not-applicable": 1, "skipped": 1}
    assert rep.ran() == 2
    assert set(OUTCOMES) == set(counts)


def test_the_worst_outcome_of_a_clause_wins() -> None:
    rep = Report("c", "sim", "dev")
    rep.record("C-X-01", "t", "s", "m.py::a[1]", "passed", "", 0.1)
    rep.record("C-X-01", "t", "s", "m.py::a[2]", "failed", "boom", 0.1)
    rep.record("C-X-01", "t", "s", "m.py::a[3]", "passed", "", 0.1)
    r = rep.clauses["C-X-01"]
    assert (r.outcome, r.reason, r.failing) == ("failed", "boom", ["m.py::a[2]"])


def test_reproduce_names_every_setting_and_only_the_failing_case() -> None:
    rep = _report()
    cmd = rep.reproduce(rep.clauses["C-ERR-02"])
    for part in (
        "--modeld-connector=acme:make",
        "--modeld-target=sim",
        "--modeld-model=llama:/m/model.gguf",
        "--modeld-hypothesis-profile=ci",
        "modeld_contract.clauses.test_errors",
        "'test_C_ERR_unary_sentinels[describe]'",
    ):
        assert part in cmd


def test_the_summary_prints_the_whole_reason_within_the_width() -> None:
    lines = _report().summary_lines(width=80)
    text_lines = [ln for ln in lines if not ln.startswith("    python ")]
    assert all(len(ln) <= 80 for ln in text_lines), [ln for ln in text_lines if len(ln) > 80]
    assert " ".join(" ".join(lines).split()).count(" ".join(LONG_REASON.split())) == 1
    assert any("@reproduce_failure('6.1', b'AAEC')" in ln for ln in lines)


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.filters: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-outcome" in a:
            self.rows.append(str(a["data-outcome"]))
        if tag == "input" and a.get("class") == "f":
            self.filters.append(str(a["value"]))


def test_every_format_is_written(tmp_path: Path) -> None:
    rep = _report()
    for ext in ("md", "json", "html"):
        rep.write(str(tmp_path / f"r.{ext}"))
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["contract_version"] == "contenox/runtime v0.36.0"
    assert data["counts"]["not-applicable"] == 1
    failed = next(c for c in data["clauses"] if c["id"] == "C-ERR-02")
    assert failed["reason"] == LONG_REASON and "--modeld-model=llama:/m/model.gguf" in failed["reproduce"]
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "not-applicable" in md and "C-PROBE-01 | NOT-APPLICABLE" in md
    parser = _Rows()
    parser.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert sorted(parser.rows) == sorted(["failed", "passed", "not-applicable", "skipped"])
    assert set(parser.filters) == set(OUTCOMES)


def test_a_run_problem_heads_every_format(tmp_path: Path) -> None:
    rep = Report("go", "sim", "dev", problem="only 3 clauses ran")
    rep.write(str(tmp_path / "r.md"))
    assert "**Problem with the run:** only 3 clauses ran" in (tmp_path / "r.md").read_text(encoding="utf-8")
    assert rep.summary_lines()[0].startswith("RUN PROBLEM: only 3 clauses ran")
