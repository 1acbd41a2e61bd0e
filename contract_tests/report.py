"""The conformance report: per clause, pass / fail / skip (with the reason), for one connector ×
target; written as Markdown or JSON, and summarised on one screen at the end of the run."""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClauseResult", "Report"]

_ORDER = {"failed": 0, "error": 1, "passed": 2, "skipped": 3}


@dataclass
class ClauseResult:
    clause: str
    title: str
    source: str
    nodeids: list[str] = field(default_factory=list)
    outcome: str = "passed"
    reason: str = ""
    duration: float = 0.0

    def add(self, nodeid: str, outcome: str, reason: str, duration: float) -> None:
        if nodeid not in self.nodeids:
            self.nodeids.append(nodeid)
        self.duration += duration
        # the worst outcome wins: failed/error > passed > skipped
        if _ORDER[outcome] < _ORDER[self.outcome] or (self.outcome == "skipped" and outcome == "passed"):
            self.outcome = outcome
            self.reason = reason
        elif outcome == self.outcome and reason and not self.reason:
            self.reason = reason


@dataclass
class Report:
    connector: str
    target: str
    profile: str
    clauses: dict[str, ClauseResult] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float = 0.0

    def record(
        self, clause: str, title: str, source: str, nodeid: str, outcome: str, reason: str, duration: float
    ) -> None:
        r = self.clauses.get(clause)
        if r is None:
            r = self.clauses[clause] = ClauseResult(clause, title, source, outcome=outcome, reason=reason)
        r.add(nodeid, outcome, reason, duration)

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        for r in self.clauses.values():
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out

    def reproduce(self, r: ClauseResult) -> str:
        ids = " or ".join(sorted({n.split("::")[-1].split("[")[0] for n in r.nodeids}))
        return (
            "python -m pytest --pyargs modeld_contract -p modeld "
            f"--modeld-connector={shlex.quote(self.connector)} --modeld-target={shlex.quote(self.target)} "
            f"-k {shlex.quote(ids)}"
        )

    def sorted(self) -> list[ClauseResult]:
        def key(r: ClauseResult) -> tuple[str, int]:
            fam, _, num = r.clause.rpartition("-")
            return (fam, int(num) if num.isdigit() else 0)

        return sorted(self.clauses.values(), key=key)

    def to_json(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "target": self.target,
            "hypothesis_profile": self.profile,
            "started": self.started,
            "duration_s": round((self.finished or time.time()) - self.started, 3),
            "counts": self.counts(),
            "clauses": [
                {
                    "id": r.clause,
                    "title": r.title,
                    "source": r.source,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "duration_s": round(r.duration, 3),
                    "tests": r.nodeids,
                    **({"reproduce": self.reproduce(r)} if r.outcome in ("failed", "error") else {}),
                }
                for r in self.sorted()
            ],
        }

    def to_markdown(self) -> str:
        c = self.counts()
        lines = [
            "# modeld conformance report",
            "",
            f"- connector: `{self.connector}`",
            f"- target: `{self.target}`",
            f"- Hypothesis profile: `{self.profile}`",
            f"- clauses: {len(self.clauses)} — **{c['passed']} pass**, {c['failed'] + c['error']} fail, "
            f"{c['skipped']} skip",
            "",
            "| clause | outcome | what | source | reason |",
            "|---|---|---|---|---|",
        ]
        for r in self.sorted():
            reason = _one_line(r.reason).replace("|", "\\|")
            lines.append(
                f"| {r.clause} | {r.outcome.upper()} | {r.title.replace('|', '/')} | {r.source} | {reason} |"
            )
        failed = [r for r in self.sorted() if r.outcome in ("failed", "error")]
        if failed:
            lines += ["", "## How to reproduce the failures", ""]
            for r in failed:
                lines.append(f"- {r.clause}: `{self.reproduce(r)}`")
        return "\n".join(lines) + "\n"

    def write(self, path: str) -> None:
        self.finished = self.finished or time.time()
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            if path.endswith(".json"):
                json.dump(self.to_json(), f, indent=2)
                f.write("\n")
            else:
                f.write(self.to_markdown())

    def summary_lines(self, width: int = 100) -> list[str]:
        c = self.counts()
        out = [
            f"modeld contract: connector={self.connector} target={self.target} profile={self.profile}",
            f"{len(self.clauses)} clauses: {c['passed']} passed, {c['failed'] + c['error']} failed, "
            f"{c['skipped']} skipped",
        ]
        fams: dict[str, list[str]] = {}
        for r in self.sorted():
            fam = r.clause.rpartition("-")[0]
            mark = {"passed": ".", "failed": "F", "error": "E", "skipped": "s"}[r.outcome]
            fams.setdefault(fam, []).append(mark)
        for fam, marks in fams.items():
            out.append(f"  {fam:<12} {''.join(marks)}")
        for r in self.sorted():
            if r.outcome in ("failed", "error"):
                out.append(f"  FAIL {r.clause} {r.title}: {_one_line(r.reason)}"[:width])
                out.append(f"       reproduce: {self.reproduce(r)}")
        return out


def _one_line(text: str, limit: int = 240) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"
