"""``python -m modeld_contract.real build|record|record-lifecycle|diff``: the real modeld, built and recorded.

python -m modeld_contract.real build --backend none
python -m modeld_contract.real record --backend none --out /tmp/rec
python -m modeld_contract.real record-lifecycle --out /tmp/rec/lifecycle-none.jsonl
python -m modeld_contract.real diff tests/corpus/modeld-v0.36.0/real-none.jsonl /tmp/rec/real-none.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from modeld_contract.real.build import BACKENDS, BuildError, build, cache_root
from modeld_contract.real.daemon import DaemonError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modeld_contract.real",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "build",
        help="build (or find cached) the real modeld daemon",
        description="Build the real modeld (github.com/contenox/runtime v0.36.0, cmd/modeld) and cache "
        f"it under {cache_root()} ($XDG_CACHE_HOME/modeld-contract/real), keyed by version and flags. "
        "A second call finds it at once. Prints the binary's path on stdout.",
    )
    b.add_argument(
        "--backend",
        choices=BACKENDS,
        required=True,
        help="none: CGO_ENABLED=0 (no engine); llama: cgo with llama.cpp from the llama-cpp-python==0.3.33 "
        "sdist",
    )
    b.add_argument("--force", action="store_true", help="rebuild the daemon even if a cached one exists")

    r = sub.add_parser(
        "record",
        help="record the corpus's exchanges against a real daemon",
        description="Start the real daemon on a fresh data root, send the corpus's requests "
        "(tests/corpus/modeld-v0.36.0/real-BACKEND.jsonl) in the same order on the same named connections, "
        "and write OUT/real-BACKEND.jsonl in the corpus's format and normalisation (placeholders for the "
        "instance id, endpoint, model and temporary paths; <machine> only for Describe's and DiskStats' "
        "machine values; "
        "body key order kept; the info. case recorded as it behaves). The daemon is stopped with SIGTERM.",
    )
    r.add_argument("--backend", choices=BACKENDS, required=True, help="which daemon and which corpus file")
    r.add_argument(
        "--out", type=Path, required=True, help="folder to write real-BACKEND.jsonl into (made if absent)"
    )
    r.add_argument(
        "--modeld-bin",
        type=Path,
        default=None,
        help="use this modeld binary instead of building (or finding cached) one",
    )
    r.add_argument(
        "--model",
        type=Path,
        default=None,
        help="the GGUF that stands for <MODEL> (default: a copy of the corpus's tiny-llama-ctx256.gguf)",
    )
    r.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="the recording whose requests are sent (default: the corpus's real-BACKEND.jsonl)",
    )
    r.add_argument("--ttl", default="3s", help="the daemon's lease TTL (default 3s)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per exchange (default 60)")

    lc = sub.add_parser(
        "record-lifecycle",
        help="record the 17 lifecycle facts (lifecycle-none.jsonl) against the real daemon",
        description="Run the lifecycle scenarios of tests/corpus/modeld-v0.36.0/lifecycle-none.jsonl "
        "(lease form, renewals, signals, rivals) against the real backend-none daemon and write the facts, "
        "same case names and fields.",
    )
    lc.add_argument("--out", type=Path, required=True, help="the JSON-lines file to write")
    lc.add_argument(
        "--modeld-bin", type=Path, default=None, help="use this modeld binary instead of building one"
    )

    d = sub.add_parser(
        "diff",
        help="what changed between two recordings, case by case",
        description="Compare two recordings line by line by case name: status (grpc code, HTTP "
        "status), message, body (messages, details, content-type, timeouts), body key order, "
        "requests, and cases added, removed or moved. Exit 0 when identical, 1 when they differ.",
    )
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            res = build(args.backend, force=args.force)
            print(res.binary)
            return 0
        if args.command == "record":
            from modeld_contract.real.record import record

            t0 = time.monotonic()
            out = record(
                args.backend,
                args.out,
                modeld_bin=args.modeld_bin,
                model=args.model,
                corpus=args.corpus,
                ttl=args.ttl,
                timeout=args.timeout,
                progress=_progress,
            )
            print(f"recorded {out} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            print(out)
            return 0
        if args.command == "record-lifecycle":
            from modeld_contract.real.record import record_lifecycle

            print(record_lifecycle(args.out, modeld_bin=args.modeld_bin, progress=_progress))
            return 0
        from modeld_contract.real.diff import diff_files

        report, differs = diff_files(args.old, args.new)
        sys.stdout.write(report)
        return 1 if differs else 0
    except BuildError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DaemonError as exc:
        print(f"the real modeld failed: {exc}", file=sys.stderr)
        return 3


def _progress(line: str) -> None:
    print(f"[modeld record] {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
