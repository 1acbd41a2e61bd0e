"""Systematic mutation of the reference connector's own source, the contract suite as the only killer.

    python bench/mutation.py [--module client --module session ...] [--jobs N] [--budget-minutes 30]

Cosmic Ray (docs/decisions.md D-mutation) enumerates the mutation sites of ``modeldconn/client.py``,
``session.py``, ``probe.py`` and the read path of ``lease.py`` (every operator that takes no
arguments; ``--module`` adds others) and applies one mutation at a time. The source is never mutated
in place: ``modeldconn`` is copied as the package ``modeldconn_mut`` (its generated wire messages
still imported from ``modeldconn``), the mutation is written into that copy, and the suite runs with
``--modeld-connector=modeldconn_mut``; the simulator and the harness keep importing the unmodified
``modeldconn``, so only the connector under test carries the mutation.

A mutant is **killed** only when a clause *failed* (the JSON report of the run); a mutant whose
module no longer imports, or whose run only errors, is *incompetent* (not killed). A control run of
the unmutated copy comes first and must pass. When every site would take longer than the budget
(estimated from the control run), a seeded random sample is taken per module, in proportion; its size
is printed. Prints, per module: sites, sampled, killed, survived, incompetent, and the score (killed /
sampled; and killed / competent).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "modeldconn"
COPY_NAME = "modeldconn_mut"
DEFAULT_MODULES = ("client", "session", "probe", "lease")
#: ``lease.py`` is shared with the simulator, which writes the lease; the connector only reads it.
READ_PATH = {
    "lease": {
        "LeaseRecord",
        "expires_at",
        "expired_for_liblease",
        "live_for_probe",
        "lease_path",
        "_decode_go_string",
        "_parse_json",
        "_kind",
        "_fold_key",
        "_unmarshal_record",
        "decode_record",
        "_read_bounded",
        "_read_record",
        "inspect",
        "_serr",
        "_quote_char",
    }
}


@dataclass
class Site:
    module: str
    operator: str
    occurrence: int
    definition: str
    line: int
    status: str = "pending"
    clauses: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _rewrite_imports(text: str) -> str:
    text = re.sub(r"\bmodeldconn\b", COPY_NAME, text)
    # the generated messages stay the reference's: one descriptor pool, one set of message classes
    return text.replace(f"{COPY_NAME}.wire._gen", "modeldconn.wire._gen")


def make_copy(dest: Path) -> Path:
    """``modeldconn`` copied to ``dest/modeldconn_mut`` (imports renamed, ``wire/_gen`` left out)."""
    pkg = dest / COPY_NAME
    for src in SOURCE.rglob("*.py"):
        rel = src.relative_to(SOURCE)
        if rel.parts[:2] == ("wire", "_gen") or "__pycache__" in rel.parts:
            continue
        out = pkg / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_rewrite_imports(src.read_text(encoding="utf-8")), encoding="utf-8")
    return pkg


def _operators() -> Iterator[tuple[str, Any]]:
    import cosmic_ray.plugins

    for name in sorted(cosmic_ray.plugins.operator_names()):
        cls = cosmic_ray.plugins.get_operator(name)
        if cls.arguments():
            continue  # operators that need a configuration (none is given)
        yield name, cls()


def _annotation_spans(tree: Any) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are: with ``from __future__ import annotations`` they are never
    evaluated, so a mutation there (``str | None`` → ``str - None``) is equivalent by construction."""
    from cosmic_ray.ast import ast_nodes

    spans = []
    for node in ast_nodes(tree):
        ann = None
        if node.type in ("param", "funcdef"):
            ann = getattr(node, "annotation", None)
        elif node.type == "annassign":
            ann = node.children[1]
        if ann is not None:
            spans.append((ann.start_pos, ann.end_pos))
    return spans


#: Where a ``*``, ``|``, ``-`` … is a binary operator; elsewhere (``def f(*, x)``, ``g(*args)``) it is
#: syntax, and replacing it makes either a syntax error or the same function.
_BINARY_PARENTS = frozenset({"term", "arith_expr", "expr", "xor_expr", "and_expr", "shift_expr", "power"})


def _syntax_not_operator(op_name: str, node: Any) -> bool:
    return (
        "BinaryOperator" in op_name
        and node.type == "operator"
        and getattr(node.parent, "type", "") not in _BINARY_PARENTS
    )


def enumerate_sites(pkg: Path, modules: list[str]) -> list[Site]:
    """Every (operator, occurrence) Cosmic Ray would try, minus the equivalent ones in annotations,
    the star and double star of signatures and calls (syntax, not operators) and, for ``lease``,
    sites outside the read path."""
    from cosmic_ray.ast import ast_nodes, get_ast_from_path
    from cosmic_ray.ast.ast_query import ASTQuery

    sites: list[Site] = []
    for mod in modules:
        path = pkg / f"{mod.replace('.', '/')}.py"
        keep = READ_PATH.get(mod)
        spans = _annotation_spans(get_ast_from_path(path))
        for op_name, op in _operators():
            tree = get_ast_from_path(path)
            occurrence = 0
            for node in ast_nodes(tree):
                for start, _end in op.mutation_positions(node):
                    definition = ASTQuery(node).get_definition_name() or ""
                    skip = any(a <= start < b for a, b in spans) or _syntax_not_operator(op_name, node)
                    if not skip and (keep is None or definition in keep):
                        sites.append(Site(mod, op_name, occurrence, definition, start[0]))
                    occurrence += 1
    return sites


def mutate(pkg: Path, site: Site) -> bool:
    """Write the mutation into the copy at ``pkg``; False when the operator did not apply."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    path = pkg / f"{site.module.replace('.', '/')}.py"
    op = cosmic_ray.plugins.get_operator(site.operator)()
    mutated = mutate_code(path.read_text(encoding="utf-8"), op, site.occurrence)
    if mutated is None:
        return False
    path.write_text(mutated, encoding="utf-8")
    return True


def judge(site: Site, select: str | None, timeout: float) -> Site:
    from modeld_contract.mutants.runner import KILLED, SURVIVED, run_suite, verdict

    with tempfile.TemporaryDirectory(prefix="modeld-bench-mut-") as tmp:
        pkg = make_copy(Path(tmp))
        if not mutate(pkg, site):
            site.status = "not applied"
            return site
        report, _tail, took = run_suite(
            COPY_NAME, select=select, env={"PYTHONPATH": tmp}, timeout=timeout, stop_at_first_failure=True
        )
    status, failed, _ = verdict(report)
    site.status = {KILLED: "killed", SURVIVED: "survived"}.get(status, "incompetent")
    site.clauses = failed
    site.seconds = took
    return site


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/mutation.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", default=[], help="modeldconn module (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--budget-minutes", type=float, default=30.0, help="sample when a full run exceeds it")
    ap.add_argument("--sample", type=int, default=0, help="sample exactly this many sites (0: by budget)")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("-k", dest="select", default=None, help="pytest -k selection of clauses")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per suite run")
    ap.add_argument("--list", action="store_true", help="list the sites and exit")
    ns = ap.parse_args(argv)
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        print("bench/mutation.py needs Cosmic Ray: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    from modeld_contract.mutants.runner import control_problem, run_suite

    modules = ns.module or list(DEFAULT_MODULES)
    with tempfile.TemporaryDirectory(prefix="modeld-bench-sites-") as tmp:
        pkg = make_copy(Path(tmp))
        sites = enumerate_sites(pkg, modules)
        if ns.list:
            for s in sites:
                print(f"{s.module}:{s.line} {s.definition} {s.operator} #{s.occurrence}")
            return 0
        print(f"control run: the unmutated copy ({COPY_NAME})", flush=True)
        report, tail, control_s = run_suite(
            COPY_NAME, select=ns.select, env={"PYTHONPATH": tmp}, stop_at_first_failure=False
        )
    problem = control_problem(report, tail)
    if problem:
        print(f"ABORTED: {problem}", file=sys.stderr)
        return 2
    per_module = {m: [s for s in sites if s.module == m] for m in modules}
    full_min = len(sites) * control_s / max(1, ns.jobs) / 60
    print(
        f"control passed in {control_s:.0f} s; {len(sites)} mutation sites; a full run ≈ {full_min:.0f} min "
        f"with {ns.jobs} jobs (each run stops at the first failed clause, so usually less)",
        flush=True,
    )
    size = ns.sample or (
        len(sites) if full_min <= ns.budget_minutes else int(ns.budget_minutes * 60 * ns.jobs / control_s)
    )
    size = max(1, min(size, len(sites)))
    rng = random.Random(ns.seed)
    chosen: list[Site] = []
    for ms in per_module.values():
        k = max(1, round(size * len(ms) / len(sites))) if ms else 0
        chosen += rng.sample(ms, min(k, len(ms)))
    sampled = len(chosen) < len(sites)
    print(f"sample size: {len(chosen)} of {len(sites)} sites" + (f" (seed {ns.seed})" if sampled else ""))
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=ns.jobs) as pool:
        futures = [pool.submit(judge, s, ns.select, ns.timeout) for s in chosen]
        for fut in concurrent.futures.as_completed(futures):
            s = fut.result()
            why = ", ".join(s.clauses[:3])
            print(f"  {s.status:<12} {s.module}:{s.line} {s.definition} {s.operator} {why}", flush=True)
    took_min = (time.monotonic() - t0) / 60
    print(f"\nmutation of modeldconn, killed by the contract suite only ({took_min:.1f} min)")
    print(
        f"{'module':<10} {'sites':>6} {'sampled':>8} {'killed':>7} {'survived':>9} {'incompetent':>12} "
        f"{'score':>7} {'competent':>10}"
    )
    for mod in modules:
        done = [s for s in chosen if s.module == mod and s.status != "not applied"]
        killed = sum(s.status == "killed" for s in done)
        survived = sum(s.status == "survived" for s in done)
        incompetent = sum(s.status == "incompetent" for s in done)
        score = 100 * killed / len(done) if done else 0.0
        competent = 100 * killed / (killed + survived) if killed + survived else 0.0
        print(
            f"{mod:<10} {len(per_module[mod]):>6} {len(done):>8} {killed:>7} {survived:>9} {incompetent:>12} "
            f"{score:>6.1f}% {competent:>9.1f}%"
        )
    survivors = [s for s in chosen if s.status == "survived"]
    if survivors:
        print("\nsurvivors (read each: an equivalent mutant, or a rule the suite does not yet check):")
        for s in sorted(survivors, key=lambda s: (s.module, s.line)):
            print(f"  {s.module}:{s.line} {s.definition} {s.operator} #{s.occurrence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
