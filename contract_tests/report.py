"""The conformance report: per clause, its outcome (with the reason) for one connector × target;
written as Markdown, JSON or a self-contained HTML page, and summarised at the end of the run.

A clause's outcome is the worst of its tests' outcomes: failed / error > passed > not applicable >
skipped. Every reason is kept whole: a reader of a CI log must see why a clause failed without
re-running it.
"""

from __future__ import annotations

import html
import json
import os
import shlex
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

from modeld_contract.catalogue import CONTRACT_VERSION, suite_version

__all__ = ["OUTCOMES", "ClauseResult", "Report"]

_ORDER = {"failed": 0, "error": 1, "passed": 2, "not-applicable": 3, "skipped": 4}
_MARK = {"passed": ".", "failed": "F", "error": "E", "skipped": "s", "not-applicable": "n"}

# what each outcome means, printed in every report so a reader needs no other document
OUTCOMES: dict[str, str] = {
    "passed": "the connector kept the rule: every test of the clause ran and its assertions held",
    "failed": "the connector broke the rule: an assertion about what it sent or returned did not hold",
    "error": "the clause could not be set up or torn down (the target, the connector's start-up, or a "
    "fixture failed): no verdict on the rule; read the reason",
    "not-applicable": "the connector lacks the operation the rule is about (it cannot keep or break "
    "it); counted apart, never as passed",
    "skipped": "the target cannot run the clause (for example it is not scriptable, has no engine, or "
    "could not be built outside CI): no verdict; run it against a target that can",
}


@dataclass
class ClauseResult:
    clause: str
    title: str
    source: str
    nodeids: list[str] = field(default_factory=list)
    outcome: str = "passed"
    reason: str = ""
    duration: float = 0.0
    failing: list[str] = field(default_factory=list)
    replay: str = ""

    def add(self, nodeid: str, outcome: str, reason: str, duration: float, replay: str = "") -> None:
        if nodeid not in self.nodeids:
            self.nodeids.append(nodeid)
        self.duration += duration
        if outcome in ("failed", "error") and nodeid not in self.failing:
            self.failing.append(nodeid)
            self.replay = self.replay or replay
        if _ORDER[outcome] < _ORDER[self.outcome]:
            self.outcome = outcome
            self.reason = reason
        elif outcome == self.outcome and reason and not self.reason:
            self.reason = reason


@dataclass
class Report:
    connector: str
    target: str
    profile: str
    model: str | None = None
    strict: bool = False
    clauses: dict[str, ClauseResult] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    problem: str = ""
    """A problem with the run as a whole (a connector that could not be built under strict mode,
    fewer clauses ran than required): the run fails and the report says why on its first lines."""

    def record(
        self,
        clause: str,
        title: str,
        source: str,
        nodeid: str,
        outcome: str,
        reason: str,
        duration: float,
        replay: str = "",
    ) -> None:
        r = self.clauses.get(clause)
        if r is None:
            # the first test seen sets the starting outcome; worse ones replace it
            r = self.clauses[clause] = ClauseResult(clause, title, source, outcome=outcome, reason=reason)
        r.add(nodeid, outcome, reason, duration, replay)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_ORDER, 0)
        for r in self.clauses.values():
            out[r.outcome] += 1
        return out

    def ran(self) -> int:
        """Clauses that ran to a verdict against the target (passed, failed or error)."""
        c = self.counts()
        return c["passed"] + c["failed"] + c["error"]

    def _options(self) -> list[str]:
        out = [f"--modeld-connector={self.connector}", f"--modeld-target={self.target}"]
        if self.model:
            out.append(f"--modeld-model={self.model}")
        out.append(f"--modeld-hypothesis-profile={self.profile}")
        return out

    def reproduce(self, r: ClauseResult) -> str:
        """The command that re-runs exactly the failing cases of ``r`` with this run's settings."""
        nodeids = r.failing or r.nodeids
        modules = sorted({_module_of(n) for n in nodeids})
        names = sorted({n.split("::")[-1] for n in nodeids})
        args = ["python", "-m", "pytest", "-p", "modeld", "--pyargs", *modules, *self._options()]
        args += ["-k", " or ".join(names)]
        cmd = " ".join(shlex.quote(a) for a in args)
        if r.replay.startswith("--hypothesis-seed"):
            cmd += " " + r.replay
        return cmd

    def sorted(self) -> list[ClauseResult]:
        def key(r: ClauseResult) -> tuple[str, int]:
            fam, _, num = r.clause.rpartition("-")
            return (fam, int(num) if num.isdigit() else 0)

        return sorted(self.clauses.values(), key=key)

    def _facts(self) -> list[tuple[str, str]]:
        duration = (self.finished or time.time()) - self.started
        return [
            ("suite", f"modeld-contract {suite_version()}"),
            ("contract", CONTRACT_VERSION),
            ("connector", self.connector),
            ("target", self.target),
            ("model", self.model or "the target's own"),
            ("Hypothesis profile", self.profile),
            ("strict", "yes (an unavailable target or connector fails the run)" if self.strict else "no"),
            ("duration", f"{duration:.1f} s"),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "suite_version": suite_version(),
            "contract_version": CONTRACT_VERSION,
            "connector": self.connector,
            "target": self.target,
            "model": self.model,
            "hypothesis_profile": self.profile,
            "strict": self.strict,
            "started": self.started,
            "duration_s": round((self.finished or time.time()) - self.started, 3),
            "problem": self.problem,
            "counts": self.counts(),
            "ran": self.ran(),
            "outcomes": OUTCOMES,
            "clauses": [
                {
                    "id": r.clause,
                    "title": r.title,
                    "source": r.source,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "duration_s": round(r.duration, 3),
                    "tests": r.nodeids,
                    **(
                        {"failing": r.failing, "reproduce": self.reproduce(r), "replay": r.replay}
                        if r.outcome in ("failed", "error")
                        else {}
                    ),
                }
                for r in self.sorted()
            ],
        }

    def _count_line(self) -> str:
        c = self.counts()
        return (
            f"{len(self.clauses)} clauses, {self.ran()} ran against {self.target}: {c['passed']} passed, "
            f"{c['failed']} failed, {c['error']} errors; {c['not-applicable']} not applicable, "
            f"{c['skipped']} skipped"
        )

    def to_markdown(self) -> str:
        lines = ["# modeld conformance report", ""]
        if self.problem:
            lines += [f"**Problem with the run:** {self.problem}", ""]
        lines += [f"- {k}: `{v}`" for k, v in self._facts()]
        lines += [f"- {self._count_line()}", "", "Outcomes:", ""]
        lines += [f"- **{k}**: {v}" for k, v in OUTCOMES.items()]
        lines += [
            "",
            "Sources point into the contract reference shipped with the suite, in `modeld_contract/contract/`"
            " (`docs/fake-engine.md` is there too, as `fake-engine.md`).",
            "",
            "| clause | outcome | what is required | source | reason |",
            "|---|---|---|---|---|",
        ]
        for r in self.sorted():
            cells = [r.clause, r.outcome.upper(), _cell(r.title), _cell(r.source), _cell(r.reason)]
            lines.append("| " + " | ".join(cells) + " |")
        failed = [r for r in self.sorted() if r.outcome in ("failed", "error")]
        if failed:
            lines += ["", "## How to reproduce the failures", ""]
            for r in failed:
                lines.append(f"- {r.clause}: `{self.reproduce(r)}`")
                if r.replay and not r.replay.startswith("--"):
                    lines.append(f"  - Hypothesis replay: add `{r.replay}` above the test")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        c = self.counts()
        esc = html.escape
        facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in self._facts())
        legend = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in OUTCOMES.items())
        buttons = "".join(
            f'<label><input type="checkbox" class="f" value="{k}" checked> {k} ({c[k]})</label> '
            for k in _ORDER
        )
        rows = []
        for r in self.sorted():
            cells = "".join(f'<td class="m">{"●" if r.outcome == k else ""}</td>' for k in _ORDER)
            repro = (
                f"<div class='r'><code>{esc(self.reproduce(r))}</code></div>"
                if r.outcome in ("failed", "error")
                else ""
            )
            rows.append(
                f'<tr class="row {r.outcome}" data-outcome="{r.outcome}" data-text="'
                f'{esc((r.clause + " " + r.title + " " + r.reason).lower())}">'
                f"<td>{esc(r.clause)}</td>{cells}<td>{esc(r.title)}</td><td>{esc(r.source)}</td>"
                f"<td><pre>{esc(r.reason)}</pre>{repro}</td></tr>"
            )
        heads = "".join(f"<th>{k}</th>" for k in _ORDER)
        problem = (
            f"<p class='problem'><b>Problem with the run:</b> {esc(self.problem)}</p>" if self.problem else ""
        )
        return _HTML.format(
            title=esc(f"modeld conformance: {self.connector} × {self.target}"),
            problem=problem,
            facts=facts,
            count=esc(self._count_line()),
            legend=legend,
            buttons=buttons,
            heads=heads,
            rows="\n".join(rows),
        )

    def write(self, path: str) -> None:
        self.finished = self.finished or time.time()
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            if path.endswith(".json"):
                json.dump(self.to_json(), f, indent=2)
                f.write("\n")
            elif path.endswith(".html"):
                f.write(self.to_html())
            else:
                f.write(self.to_markdown())

    def summary_lines(self, width: int = 80, options: list[str] | None = None) -> list[str]:
        out: list[str] = []
        if self.problem:
            out += textwrap.wrap("RUN PROBLEM: " + self.problem, width, subsequent_indent="  ")
        out += textwrap.wrap(
            f"modeld contract: connector={self.connector} target={self.target} profile={self.profile}",
            width,
            subsequent_indent="  ",
        )
        out += textwrap.wrap(self._count_line(), width, subsequent_indent="  ")
        fams: dict[str, list[str]] = {}
        for r in self.sorted():
            fams.setdefault(r.clause.rpartition("-")[0], []).append(_MARK[r.outcome])
        for fam, marks in fams.items():
            out.append(f"  {fam:<12} {''.join(marks)}")
        for r in self.sorted():
            if r.outcome not in ("failed", "error"):
                continue
            out.append("")
            head = f"{r.outcome.upper()} {r.clause}: {r.title}"
            out += textwrap.wrap(head, width, subsequent_indent="    ")
            for para in (r.reason or "(no reason given)").splitlines():
                out += textwrap.wrap(para, width, initial_indent="    ", subsequent_indent="    ") or [""]
            out.append("  reproduce:")
            out.append("    " + self.reproduce(r))
            if r.replay and not r.replay.startswith("--"):
                out.append(f"    Hypothesis replay: {r.replay}")
        return out


def _module_of(nodeid: str) -> str:
    """``…/contract_tests/clauses/test_x.py::name`` → ``modeld_contract.clauses.test_x``."""
    path = nodeid.split("::")[0].removesuffix(".py").replace("\\", "/").split("/")
    if "clauses" in path:
        path = path[path.index("clauses") :]
    return ".".join(["modeld_contract", *path])


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}}
th{{background:#f3f3f3;text-align:left}} td.m{{text-align:center}}
tr.failed td,tr.error td{{background:#fde8e8}} tr.passed td.m{{color:#1a7f37}}
tr.skipped,tr.not-applicable{{color:#777}} pre{{white-space:pre-wrap;margin:0;font-size:12px}}
.r code{{font-size:11px}} .problem{{background:#fde8e8;padding:6px}} label{{margin-right:1em}}
</style></head><body>
<h1>{title}</h1>
{problem}
<table>{facts}</table>
<p>{count}</p>
<ul>{legend}</ul>
<p>Show: {buttons} <input id="q" placeholder="filter text" size="30"></p>
<table id="m"><thead><tr><th>clause</th>{heads}<th>what is required</th><th>source</th><th>reason</th></tr>
</thead><tbody>
{rows}
</tbody></table>
<script>
function apply(){{
  var on={{}};document.querySelectorAll('input.f').forEach(function(b){{on[b.value]=b.checked}});
  var q=document.getElementById('q').value.toLowerCase();
  document.querySelectorAll('tr.row').forEach(function(r){{
    r.style.display=(on[r.dataset.outcome]&&r.dataset.text.indexOf(q)>=0)?'':'none';}});
}}
document.querySelectorAll('input').forEach(function(i){{i.addEventListener('input',apply)}});
</script>
</body></html>
"""
