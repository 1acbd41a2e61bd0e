"""Coverage of the REAL Go connector (contenox/runtime v0.36.0) by the contract suite, next to upstream's
own tests.

    python bench/gocoverage.py [--no-upstream] [--no-suite] [--work DIR] [--json PATH] [--missed]
                               [-- extra pytest args]

1. builds the Go driver (contract_tests/drivers/go/) with ``go build -cover -covermode=atomic
   -coverpkg=<modeldconn, transport/grpc, modeldprobe, liblease>,<the driver's package>`` (without the
   driver's own package in -coverpkg the binary writes no counters);
2. runs the contract suite with that binary as the connector (``--modeld-connector=exec:<binary>``) and
   ``GOCOVERDIR`` set; the driver writes each process image's counters before it re-executes itself on
   ``reset`` (contract_tests/drivers/go/coverage.go) and at ``shutdown``;
3. runs upstream's own ``go test -coverpkg=<the same packages>`` of those packages on a writable copy of
   the module taken from the Go module cache;
4. prints per file: statements, upstream %, suite %, union %, the same for the client-reachable
   statements, and the client-reachable totals, with the anchor and the goal.

Client-reachable leaves out what only a server (the daemon, the lease holder) runs: liblease
Acquire/Renew/Release/write and the holder's methods, transport/grpc ``encodeError``,
``errorInfoForOverflow``, ``errorToken``, ``checkFence``, the handlers of ``wire.go`` and all of
``server.go``. Statements are those of the coverage profiles (``go tool covdata textfmt``, ``go test
-coverprofile``); a block belongs to the top-level declaration it starts in.

Goal: the suite reaches >= 90 % of the client-reachable statements (anchor: 69.3 % when issue 24 was
filed). The exit status is 0 when the goal is met and every step ran.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modeld_contract.drivers import gobuild

RUNTIME = "github.com/contenox/runtime"
RUNTIME_VERSION = "v0.36.0"
DRIVER_PACKAGE = "github.com/modeld-contract/godriver"
PACKAGES = (
    f"{RUNTIME}/runtime/modelrepo/modeldconn",
    f"{RUNTIME}/runtime/transport/grpc",
    f"{RUNTIME}/runtime/internal/modeldprobe",
    f"{RUNTIME}/liblease",
)
GOAL_PCT = 90.0
ANCHOR_PCT = 69.3

#: (file, top-level declaration) pairs only a server or the lease holder runs; a file mapped to None
#: is server-only as a whole except the declarations listed in CLIENT_IN_SERVER_FILES.
SERVER_ONLY: dict[str, frozenset[str] | None] = {
    f"{RUNTIME}/liblease/lease.go": frozenset(
        {
            "WithMeta",
            "Acquire",
            "acquireLeaseLock",
            "tryCreate",
            "Lease.Renew",
            "Lease.Release",
            "Lease.Expired",
            "Lease.InstanceID",
            "Lease.Record",
            "Record.expired",
            "writeRecord",
            "writeTemp",
        }
    ),
    f"{RUNTIME}/runtime/transport/grpc/errors.go": frozenset(
        {"encodeError", "errorToken", "errorInfoForOverflow"}
    ),
    f"{RUNTIME}/runtime/transport/grpc/fence.go": frozenset({"checkFence"}),
    f"{RUNTIME}/runtime/transport/grpc/server.go": None,
    f"{RUNTIME}/runtime/transport/grpc/wire.go": None,
}
#: declarations a client runs inside a file that is otherwise server-only
CLIENT_IN_SERVER_FILES: dict[str, frozenset[str]] = {
    f"{RUNTIME}/runtime/transport/grpc/wire.go": frozenset({"method"}),
}

_BLOCK = re.compile(r"^(?P<file>.+):(?P<sl>\d+)\.(?P<sc>\d+),(?P<el>\d+)\.(?P<ec>\d+) (?P<n>\d+) (?P<c>\d+)$")
_FUNC = re.compile(r"^func\s+(?:\(\s*\w*\s*\*?\s*(?P<recv>\w+)(?:\[[^\]]*\])?\s*\)\s*)?(?P<name>\w+)")
_VAR = re.compile(r"^var\s+(?P<name>\w+)")


@dataclass(frozen=True)
class Block:
    file: str
    start: int
    start_col: int
    end: int
    end_col: int
    stmts: int


def read_profile(path: Path) -> dict[Block, int]:
    """A Go coverage profile → block → count (blocks listed twice, one per test binary, are merged)."""
    out: dict[Block, int] = {}
    for line in path.read_text().splitlines():
        m = _BLOCK.match(line.strip())
        if m is None:
            continue
        b = Block(m["file"], int(m["sl"]), int(m["sc"]), int(m["el"]), int(m["ec"]), int(m["n"]))
        out[b] = max(out.get(b, 0), int(m["c"]))
    return out


def declarations(source: str) -> list[tuple[int, str]]:
    """(first line, name) of each top-level func / var of a gofmt-formatted Go file, in order."""
    decls: list[tuple[int, str]] = []
    for i, line in enumerate(source.splitlines(), 1):
        m = _FUNC.match(line)
        if m is not None:
            decls.append((i, f"{m['recv']}.{m['name']}" if m["recv"] else m["name"]))
            continue
        m = _VAR.match(line)
        if m is not None:
            decls.append((i, f"var {m['name']}"))
        elif line.startswith(("type ", "const ", "import ", "var (")):
            decls.append((i, ""))
    return decls


def owner(decls: list[tuple[int, str]], line: int) -> str:
    name = ""
    for start, n in decls:
        if start > line:
            break
        name = n
    return name


def client_reachable(file: str, decl: str) -> bool:
    if file in SERVER_ONLY:
        excluded = SERVER_ONLY[file]
        if excluded is None:
            return decl in CLIENT_IN_SERVER_FILES.get(file, frozenset())
        return decl not in excluded
    return True


@dataclass
class FileRow:
    file: str
    stmts: int = 0
    up: int = 0
    suite: int = 0
    union: int = 0
    client: int = 0
    c_up: int = 0
    c_suite: int = 0
    c_union: int = 0
    missed: list[tuple[str, int, int, int]] = field(default_factory=list)  # (decl, start, end, stmts)


def tabulate(
    blocks: Iterable[Block], upstream: dict[Block, int], suite: dict[Block, int], module_dir: Path
) -> list[FileRow]:
    rows: dict[str, FileRow] = {}
    decl_cache: dict[str, list[tuple[int, str]]] = {}
    for b in sorted(set(blocks), key=lambda b: (b.file, b.start, b.start_col)):
        row = rows.setdefault(b.file, FileRow(b.file))
        if b.file not in decl_cache:
            rel = b.file.removeprefix(RUNTIME + "/")
            src = module_dir / rel
            decl_cache[b.file] = declarations(src.read_text()) if src.is_file() else []
        decl = owner(decl_cache[b.file], b.start)
        u, s = upstream.get(b, 0) > 0, suite.get(b, 0) > 0
        row.stmts += b.stmts
        row.up += b.stmts * u
        row.suite += b.stmts * s
        row.union += b.stmts * (u or s)
        if client_reachable(b.file, decl):
            row.client += b.stmts
            row.c_up += b.stmts * u
            row.c_suite += b.stmts * s
            row.c_union += b.stmts * (u or s)
            if not s and b.stmts:
                row.missed.append((decl, b.start, b.end, b.stmts))
    return [rows[k] for k in sorted(rows)]


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}" if whole else "    -"


def print_table(rows: list[FileRow], have_upstream: bool, have_suite: bool) -> dict[str, float]:
    def na(ok: bool, text: str) -> str:
        return text if ok else "  n/a"

    head = (
        f"{'file':<58} {'stmts':>5} {'up%':>5} {'suite%':>6} {'union%':>6} | "
        f"{'client':>6} {'up%':>5} {'suite%':>6} {'union%':>6}"
    )
    print(head)
    print("-" * len(head))
    tot = FileRow("total")
    for r in rows:
        short = r.file.removeprefix(RUNTIME + "/")
        print(
            f"{short:<58} {r.stmts:>5} {na(have_upstream, pct(r.up, r.stmts))} "
            f"{na(have_suite, pct(r.suite, r.stmts)):>6} {pct(r.union, r.stmts):>6} | "
            f"{r.client:>6} {na(have_upstream, pct(r.c_up, r.client))} "
            f"{na(have_suite, pct(r.c_suite, r.client)):>6} {pct(r.c_union, r.client):>6}"
        )
        for name in ("stmts", "up", "suite", "union", "client", "c_up", "c_suite", "c_union"):
            setattr(tot, name, getattr(tot, name) + getattr(r, name))
    print("-" * len(head))
    print(
        f"{'all statements':<58} {tot.stmts:>5} {na(have_upstream, pct(tot.up, tot.stmts))} "
        f"{na(have_suite, pct(tot.suite, tot.stmts)):>6} {pct(tot.union, tot.stmts):>6} | "
        f"{tot.client:>6} {na(have_upstream, pct(tot.c_up, tot.client))} "
        f"{na(have_suite, pct(tot.c_suite, tot.client)):>6} {pct(tot.c_union, tot.client):>6}"
    )

    def f(part: int) -> float:
        return round(100.0 * part / tot.client, 1) if tot.client else 0.0

    return {
        "client_statements": float(tot.client),
        "client_upstream_pct": f(tot.c_up),
        "client_suite_pct": f(tot.c_suite),
        "client_union_pct": f(tot.c_union),
    }


def print_missed(rows: list[FileRow]) -> None:
    print("\nclient-reachable statements the suite does not reach (declaration: lines, statements):")
    for r in rows:
        if not r.missed:
            continue
        print(f"  {r.file.removeprefix(RUNTIME + '/')}")
        by_decl: dict[str, list[tuple[int, int, int]]] = {}
        for decl, s, e, n in r.missed:
            by_decl.setdefault(decl or "?", []).append((s, e, n))
        for decl, spans in by_decl.items():
            text = ", ".join(f"{s}-{e}" if s != e else str(s) for s, e, _ in spans)
            print(f"    {decl}: {text} ({sum(n for *_, n in spans)})")


# ------------------------------------------------------------------------------------------ steps


def go_env(go: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(go) + os.pathsep + env.get("PATH", "")
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOTOOLCHAIN", "local")
    env.update(extra or {})
    return env


def find_go() -> str:
    try:
        return gobuild.go_binary()
    except gobuild.GoBuildError:
        fallback = "/usr/local/go/bin/go"
        if os.access(fallback, os.X_OK):
            return fallback
        raise


def run(
    step: str,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    timeout: float,
    *,
    tolerate: bool = False,
) -> str:
    """Run one step, logging its output; a failing step raises unless ``tolerate`` (then its failure is
    printed and its output returned)."""
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
    )
    out = proc.stdout.decode("utf-8", "replace")
    log.write_text(f"$ {' '.join(argv)}\n(cwd {cwd})\n{out}")
    took = time.monotonic() - t0
    if proc.returncode != 0 and not tolerate:
        tail = "\n".join(out.strip().splitlines()[-25:])
        raise RuntimeError(f"{step} failed (exit {proc.returncode}, {took:.0f} s; log {log})\n{tail}")
    note = "" if proc.returncode == 0 else f" (exit {proc.returncode}; log {log})"
    print(f"  {step}: {took:.0f} s{note}", flush=True)
    return out


def build_cover_driver(go: str, work: Path) -> Path:
    env = go_env(go, {"GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=readonly").strip()})
    run(
        "go mod download", [go, "mod", "download"], gobuild.MODULE_DIR, env, work / "go-mod-download.log", 900
    )
    binary = work / "modeld-go-driver-cover"
    coverpkg = ",".join([*PACKAGES, DRIVER_PACKAGE])
    run(
        "go build -cover",
        [go, "build", "-cover", "-covermode=atomic", f"-coverpkg={coverpkg}", "-o", str(binary), "."],
        gobuild.MODULE_DIR,
        env,
        work / "go-build-cover.log",
        900,
    )
    return binary


def run_suite(binary: Path, work: Path, extra: list[str]) -> tuple[int, Path, str]:
    covdir = work / "suite-covdata"
    shutil.rmtree(covdir, ignore_errors=True)
    covdir.mkdir(parents=True)
    report = work / "suite-report.json"
    argv = [
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
        f"--modeld-connector=exec:{binary}",
        f"--modeld-report={report}",
        *extra,
    ]
    t0 = time.monotonic()
    with (work / "suite.log").open("w") as log:
        proc = subprocess.run(
            argv,
            cwd=work,
            env={**os.environ, "GOCOVERDIR": str(covdir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    summary = ""
    if report.is_file():
        summary = json.dumps(json.loads(report.read_text()).get("counts", {}))
    print(
        f"  contract suite: {time.monotonic() - t0:.0f} s, pytest exit {proc.returncode}, clauses {summary}"
    )
    return proc.returncode, covdir, summary


def covdata_profile(go: str, covdir: Path, work: Path) -> Path:
    out = work / "suite.out"
    if not any(covdir.glob("covcounters.*")):
        raise RuntimeError(f"the suite left no coverage counters in {covdir}")
    run(
        "go tool covdata textfmt",
        [go, "tool", "covdata", "textfmt", f"-i={covdir}", f"-o={out}"],
        gobuild.MODULE_DIR,
        go_env(go),
        work / "covdata.log",
        300,
    )
    return out


def module_source(go: str) -> Path:
    env = go_env(go)
    modcache = subprocess.run(
        [go, "env", "GOMODCACHE"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    src = Path(modcache) / f"{RUNTIME}@{RUNTIME_VERSION}"
    if not src.is_dir():
        raise RuntimeError(f"{src} is not in the module cache (build the Go driver once: it fetches it)")
    return src


def writable_copy(src: Path, work: Path) -> Path:
    dest = work / f"runtime@{RUNTIME_VERSION}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    for root, dirs, files in os.walk(dest):
        for name in [*dirs, *files]:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    return dest


def run_upstream(go: str, module: Path, work: Path) -> Path:
    """Upstream's own tests of the four packages, one package at a time (``-p 1``: some are timing
    tests with short lease TTLs). A failing upstream test is reported, not fatal: the profile still
    holds what every test reached, and the figure is upstream's as measured on this machine."""
    out = work / "upstream.out"
    env = go_env(go, {"GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=mod").strip()})
    pkgs = ["./" + p.removeprefix(RUNTIME + "/") for p in PACKAGES]
    text = run(
        "upstream go test -coverpkg",
        [
            go,
            "test",
            "-count=1",
            "-p=1",
            "-covermode=atomic",
            f"-coverpkg={','.join(PACKAGES)}",
            f"-coverprofile={out}",
            *pkgs,
        ],
        module,
        env,
        work / "upstream-go-test.log",
        1800,
        tolerate=True,
    )
    failed = sorted({ln.split()[2] for ln in text.splitlines() if ln.startswith("--- FAIL:")})
    if failed:
        print(f"  upstream tests that failed here: {', '.join(failed)}", flush=True)
    if not out.is_file():
        raise RuntimeError(f"upstream go test wrote no profile (log {work / 'upstream-go-test.log'})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/gocoverage.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-upstream", action="store_true", help="skip upstream's go test")
    ap.add_argument("--no-suite", action="store_true", help="skip the contract suite")
    ap.add_argument("--work", type=Path, default=None, help="keep the build, profiles and logs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the totals as JSON here")
    ap.add_argument("--missed", action="store_true", help="list the client-reachable blocks the suite misses")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for the contract suite (after --)")
    ns = ap.parse_args(argv)

    tmp = None
    if ns.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="gocoverage-")
        work = Path(tmp.name)
    else:
        work = ns.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        go = find_go()
        print(f"Go connector coverage ({RUNTIME} {RUNTIME_VERSION}); work dir {work}", flush=True)
        src = module_source_or_fetch(go, work)
        module = writable_copy(src, work)
        suite: dict[Block, int] = {}
        upstream: dict[Block, int] = {}
        if not ns.no_suite:
            binary = build_cover_driver(go, work)
            rc, covdir, _ = run_suite(binary, work, ns.pytest_args)
            ok = ok and rc == 0
            suite = read_profile(covdata_profile(go, covdir, work))
        if not ns.no_upstream:
            upstream = read_profile(run_upstream(go, module, work))
        blocks = [b for b in {**upstream, **suite} if any(b.file.startswith(p + "/") for p in PACKAGES)]
        blocks = [b for b in blocks if b.file.rsplit("/", 1)[0] in PACKAGES]
        rows = tabulate(blocks, upstream, suite, module)
        print()
        totals = print_table(rows, not ns.no_upstream, not ns.no_suite)
        if ns.missed:
            print_missed(rows)
        figure = totals["client_suite_pct"]
        met = not ns.no_suite and figure >= GOAL_PCT
        print(
            f"\nclient-reachable statements: {int(totals['client_statements'])}; "
            f"upstream {totals['client_upstream_pct']:.1f} %, suite {figure:.1f} %, "
            f"union {totals['client_union_pct']:.1f} %"
        )
        print(
            f"suite figure {figure:.1f} % (anchor {ANCHOR_PCT:.1f} % before issue 24; "
            f"goal >= {GOAL_PCT:.0f} %: {'met' if met else 'MISSED'})"
        )
        if ns.json is not None:
            ns.json.write_text(
                json.dumps({**totals, "goal_pct": GOAL_PCT, "anchor_pct": ANCHOR_PCT}, indent=2)
            )
        return 0 if ok and met else 1
    except (RuntimeError, gobuild.GoBuildError, subprocess.SubprocessError, OSError) as err:
        print(f"gocoverage: {err}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()


def module_source_or_fetch(go: str, work: Path) -> Path:
    """The module's source in the module cache; downloading the driver's dependencies brings it."""
    try:
        return module_source(go)
    except RuntimeError:
        env = go_env(go, {"GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=readonly").strip()})
        run("go mod download", [go, "mod", "download"], gobuild.MODULE_DIR, env, work / "fetch.log", 900)
        return module_source(go)


if __name__ == "__main__":
    sys.exit(main())
