"""Run the contract suite against broken connectors and score it (``python -m modeld_contract.mutants``).

Each run is ``python -m pytest --pyargs modeld_contract -p modeld --modeld-connector=SPEC
--modeld-report=<tmp>/report.json`` in a fresh working directory, stopped at the first failed clause
(:mod:`modeld_contract.mutants.stopper`). The verdict comes from the JSON report only:

* **killed** — at least one clause's outcome is ``failed``;
* **survived** — the run finished and no clause failed;
* **not killed (no verdict)** — no report, or only set-up errors / harness problems: a factory that
  raises, a spec that does not import, a run past its time limit. These never count as killed.

The control run (the unmodified reference connector wrapped exactly as the mutants are, on the same
selection) comes first and must pass, or the run stops: a suite that fails the reference connector says
nothing about the broken ones.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MutantResult", "control_problem", "main", "run_suite", "verdict"]

KILLED = "killed"
SURVIVED = "survived"
NO_VERDICT = "not killed (no verdict)"
#: Wall-clock limit of one suite run (seconds): a mutant that hangs the suite is not killed by it.
DEFAULT_RUN_TIMEOUT = 1200.0


@dataclass
class MutantResult:
    name: str
    spec: str
    family: str = ""
    what: str = ""
    status: str = NO_VERDICT
    failed: list[str] = field(default_factory=list)
    """Clauses whose outcome is ``failed``."""
    detail: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def killed(self) -> bool:
        return self.status == KILLED

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "family": self.family,
            "what": self.what,
            "status": self.status,
            "killed": self.killed,
            "failed_clauses": self.failed,
            "detail": self.detail,
            "seconds": round(self.seconds, 1),
            "counts": self.counts,
        }


def verdict(report: Mapping[str, Any] | None) -> tuple[str, list[str], str]:
    """(status, failed clause ids, detail) of one run from its JSON report (None: no report)."""
    if report is None:
        return NO_VERDICT, [], "the run wrote no report"
    clauses = list(report.get("clauses") or [])
    failed = [c for c in clauses if c.get("outcome") == "failed"]
    if failed:
        return KILLED, [str(c.get("id")) for c in failed], str(failed[0].get("reason", ""))
    errors = [c for c in clauses if c.get("outcome") == "error"]
    if errors:
        first = errors[0]
        return (
            NO_VERDICT,
            [],
            f"{len(errors)} clause(s) errored, e.g. {first.get('id')}: {first.get('reason', '')}",
        )
    if report.get("problem"):
        return NO_VERDICT, [], str(report["problem"])
    if not any(c.get("outcome") == "passed" for c in clauses):
        return NO_VERDICT, [], "no clause ran"
    return SURVIVED, [], ""


def run_suite(
    spec: str,
    *,
    select: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_RUN_TIMEOUT,
    stop_at_first_failure: bool = True,
) -> tuple[dict[str, Any] | None, str, float]:
    """One suite run against ``spec``: (the JSON report or None, the output tail, seconds)."""
    with tempfile.TemporaryDirectory(prefix="modeld-mutant-") as tmp:
        report_path = os.path.join(tmp, "report.json")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "modeld_contract",
            "-p",
            "modeld",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--modeld-connector={spec}",
            f"--modeld-report={report_path}",
        ]
        if stop_at_first_failure:
            cmd += ["-p", "modeld_contract.mutants.stopper"]
        if select:
            cmd += ["-k", select]
        cmd += list(extra_args)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                cwd=tmp,
                env={**os.environ, **(env or {})},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            tail = (proc.stdout[-2000:] + proc.stderr[-2000:]).strip()
        except subprocess.TimeoutExpired:
            tail = f"the run did not finish within {timeout:.0f} s"
        took = time.monotonic() - t0
        report: dict[str, Any] | None = None
        try:
            with open(report_path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError):
            report = None
        return report, tail, took


def control_problem(report: Mapping[str, Any] | None, tail: str) -> str:
    """Why the control run does not let the mutants be judged ("" when it passed)."""
    if report is None:
        return f"the control run wrote no report:\n{tail}"
    clauses = list(report.get("clauses") or [])
    bad = [c for c in clauses if c.get("outcome") in ("failed", "error")]
    if bad:
        lines = [f"  {c.get('id')}: {c.get('outcome')}: {c.get('reason', '')}" for c in bad[:10]]
        return "the unmodified connector does not pass this selection:\n" + "\n".join(lines)
    if not any(c.get("outcome") == "passed" for c in clauses):
        return "no clause ran in the control run (check -k)"
    return ""


def _resolve(specs: Sequence[str]) -> list[MutantResult]:
    from modeld_contract.mutants.library import REGISTRY

    if not specs:
        return [MutantResult(m.name, m.spec, m.family, m.what) for m in REGISTRY.values()]
    out: list[MutantResult] = []
    for s in specs:
        m = REGISTRY.get(s)
        if m is not None:
            out.append(MutantResult(m.name, m.spec, m.family, m.what))
        elif ":" in s or "." in s:
            out.append(MutantResult(s, s, "given", ""))
        else:
            raise SystemExit(f"unknown broken connector {s!r} (see --list)")
    return out


def run_mutants(
    mutants: Sequence[MutantResult],
    *,
    select: str | None = None,
    jobs: int = 0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_RUN_TIMEOUT,
    progress: Any = None,
) -> list[MutantResult]:
    """Judge each mutant (in parallel, ``jobs`` at a time; 0 = the core count)."""
    workers = jobs or os.cpu_count() or 1

    def one(m: MutantResult) -> MutantResult:
        report, tail, took = run_suite(m.spec, select=select, extra_args=extra_args, env=env, timeout=timeout)
        m.status, m.failed, m.detail = verdict(report)
        if m.status == NO_VERDICT and report is None:
            m.detail = f"{m.detail}: {tail[-600:]}"
        m.seconds = took
        m.counts = dict((report or {}).get("counts") or {})
        if progress is not None:
            progress(m)
        return m

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, mutants))


def _print_result(m: MutantResult) -> None:
    why = f"{', '.join(m.failed)}: {m.detail}" if m.failed else m.detail
    print(f"  {m.status:<24} {m.name:<40} {m.seconds:6.1f} s  {why[:160]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from modeld_contract.mutants.library import CONTROL_SPEC, FAMILIES, REGISTRY

    ap = argparse.ArgumentParser(
        prog="python -m modeld_contract.mutants",
        description="Run the contract suite against broken connectors; print the mutation score.",
    )
    ap.add_argument(
        "--connector",
        action="append",
        default=[],
        metavar="SPEC",
        help="a broken connector to judge: a name from the library (--list) or a --modeld-connector spec "
        "(module:factory); repeatable; default: the whole library",
    )
    ap.add_argument("-k", dest="select", default=None, help="pytest -k selection of clauses (control too)")
    ap.add_argument("--jobs", type=int, default=0, help="parallel suite runs (default: the core count)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT, help="seconds per suite run")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--list", action="store_true", help="list the library and exit")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    ns = ap.parse_args(argv)

    if ns.list:
        for fam in FAMILIES:
            for entry in REGISTRY.values():
                if entry.family == fam:
                    print(f"{fam:<20} {entry.name:<40} {entry.what}")
        return 0
    mutants = _resolve(ns.connector)
    print(f"control run: {CONTROL_SPEC}" + (f" -k {ns.select!r}" if ns.select else ""), flush=True)
    report, tail, took = run_suite(
        CONTROL_SPEC,
        select=ns.select,
        extra_args=ns.pytest_args,
        timeout=ns.timeout,
        stop_at_first_failure=False,
    )
    problem = control_problem(report, tail)
    if problem:
        print(f"ABORTED: {problem}", file=sys.stderr)
        return 2
    passed = sum(1 for c in (report or {}).get("clauses") or [] if c.get("outcome") == "passed")
    print(f"control passed: {passed} clauses in {took:.0f} s", flush=True)
    print(f"{len(mutants)} broken connectors, {ns.jobs or os.cpu_count() or 1} at a time:", flush=True)
    results = run_mutants(
        mutants,
        select=ns.select,
        jobs=ns.jobs,
        extra_args=ns.pytest_args,
        timeout=ns.timeout,
        progress=_print_result,
    )
    killed = sum(1 for m in results if m.killed)
    print()
    print("per family:")
    for fam in sorted({m.family for m in results}, key=lambda f: (*FAMILIES, f).index(f)):
        ms = [m for m in results if m.family == fam]
        print(f"  {fam:<20} {sum(m.killed for m in ms)}/{len(ms)} killed")
    survivors = [m for m in results if not m.killed]
    if survivors:
        print("not killed:")
        for res in survivors:
            print(f"  {res.name}: {res.status}. {res.what}")
    score = killed / len(results) if results else 0.0
    print(f"mutation score: {killed}/{len(results)} killed = {100 * score:.1f} %")
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "score": score,
                    "killed": killed,
                    "total": len(results),
                    "mutants": [m.to_json() for m in results],
                },
                f,
                indent=2,
            )
    return 0 if killed == len(results) else 1
