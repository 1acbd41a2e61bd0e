"""``modeld-sim``: run the simulated modeld daemon from a shell, printing the real daemon's lines.

    modeld-sim serve --data-root DIR [--backend llama|openvino|none] [--engine fake|llama|openvino]
                     [--model PATH] [--models-dir DIR] [--host 127.0.0.1] [--port 0] [--listen ADDR]
                     [--ttl 30s] [--renew 10s] [--idle-ttl 5m] [--accept-plain-grpc] [--standby]

Behaviour as ``cmd/modeld/main.go`` (contenox/runtime v0.36.0) ``run`` / ``serve``:

* ``serve`` is the default command (no arguments, or the first starts with ``-``);
* the data root defaults to ``~/.contenox`` and is created with mode 0700;
* durations use Go syntax (:mod:`modeldconn.gotime`); ``--idle-ttl`` falls back to
  ``$CONTENOX_MODELD_IDLE_TTL``, then ``<data-root>/modeld.json`` ``{"idle":{"ttl":…}}``, then 5m;
  ``0`` / ``off`` / ``none`` disable it;
* a follower prints ``modeld follower: reason=lease_held …`` and exits 0 at once (``--standby``: it
  waits and takes over when the lease lapses — a simulator extension, the daemon has no standby);
* SIGINT / SIGTERM → graceful stop, release, ``modeld owner stopped: …``, exit 0; a lost lease →
  ``modeld: lost lease, shutting down: <reason>`` on stderr, then the same stop, exit 0;
* errors → ``modeld: <error>`` on stderr, exit 1; bad usage (incl. an engine that is not implemented
  yet) → exit 2.

Start-up is kept light: heavy modules (the gRPC server, protobuf) load only after the arguments parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["main", "resolve_idle_ttl"]

_NS: Final = 1_000_000_000
DEFAULT_IDLE_TTL_NS: Final = 5 * 60 * _NS


class UsageError(Exception):
    """Bad command line: exit 2."""


def _out(stream: str, line: str) -> None:
    f = sys.stdout if stream == "stdout" else sys.stderr
    print(line, file=f, flush=True)


def _duration(value: str) -> int:
    from modeldconn.gotime import GoTimeError, parse_duration

    try:
        return parse_duration(value)
    except GoTimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _idle_ttl_from_json(data_root: str) -> str:
    """main.go ``idleTTLFromJSON``: ``idle.ttl`` of ``<data_root>/modeld.json``, "" if absent."""
    path = os.path.join(data_root, "modeld.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    try:
        doc = json.loads(raw)
        idle = doc.get("idle") if isinstance(doc, dict) else None
        ttl = idle.get("ttl") if isinstance(idle, dict) else None
        if not isinstance(ttl, str | None):
            raise ValueError(f"idle.ttl is not a string: {ttl!r}")
    except ValueError as exc:
        print(f"modeld: {path} is malformed, idle TTL falls back to the default: {exc}", file=sys.stderr)
        return ""
    return (ttl or "").strip()


def resolve_idle_ttl(data_root: str, flag_value: str | None) -> int:
    """main.go ``resolveIdleTTL``: flag > env > modeld.json > 5m; 0/off/none → 0 (disabled)."""
    from modeldconn.gotime import GoTimeError, parse_duration

    raw = (flag_value or "").strip()
    if not raw:
        raw = os.environ.get("CONTENOX_MODELD_IDLE_TTL", "").strip()
    if not raw:
        raw = _idle_ttl_from_json(data_root)
    if not raw:
        return DEFAULT_IDLE_TTL_NS
    if raw == "0" or raw.lower() in ("off", "none"):
        return 0
    try:
        d = parse_duration(raw)
    except GoTimeError as exc:
        raise ValueError(f"parse --idle-ttl {_q(raw)}: {exc}") from None
    if d < 0:
        raise ValueError(f"parse --idle-ttl {_q(raw)}: must not be negative")
    return d


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modeld-sim", description="A faithful simulator of the modeld daemon.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="own the lease and serve the Compute API (or print the follower line)")
    s.add_argument("--data-root", default="", help="contenox data root (default ~/.contenox)")
    s.add_argument("--backend", choices=("llama", "openvino", "none"), default="llama")
    s.add_argument("--engine", choices=("fake", "llama", "openvino"), default="fake")
    s.add_argument("--model", default=None, help="model file for a real engine")
    s.add_argument("--models-dir", default=None, help="on-disk models (default <data-root>/models)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--listen", default=None, help="host:port (overrides --host/--port, as modeld --listen)")
    s.add_argument(
        "--ttl", type=_duration, default=30 * _NS, help="lease duration (Go syntax); renewed at ttl/3"
    )
    s.add_argument("--renew", type=_duration, default=None, help="renew interval (default ttl/3)")
    s.add_argument("--idle-ttl", default=None, help="idle release of the resident model (default 5m; 0/off)")
    s.add_argument("--accept-plain-grpc", action="store_true", help="also answer plain application/grpc")
    s.add_argument(
        "--standby", action="store_true", help="as follower, wait and take over when the lease lapses"
    )
    _fi_add_parsers(sub, s)  # [faults] cluster / scenario / ctl / lease, serve --scenario/--control
    return p


def _data_root(flag: str) -> str:
    if flag:
        return flag
    home = os.path.expanduser("~")
    if not home or home == "~":
        raise RuntimeError("resolve home: $HOME is not defined")
    return os.path.join(home, ".contenox")


async def _serve(args: argparse.Namespace) -> int:
    from modeld_sim.simulator import Simulator

    data_root = _data_root(args.data_root)
    idle_ttl_ns = resolve_idle_ttl(data_root, args.idle_ttl)
    if args.ttl <= 0:
        raise ValueError("owner: ttl must be positive")
    sim = Simulator(
        data_root,
        backend=args.backend,
        engine=args.engine,
        model=args.model,
        host=args.host,
        port=args.port,
        listen=args.listen,
        ttl=args.ttl / _NS,
        renew=None if args.renew is None else args.renew / _NS,
        idle_ttl=idle_ttl_ns / _NS,
        accept_plain_grpc=args.accept_plain_grpc,
        models_dir=args.models_dir,
        standby=args.standby,
        log=_out,
    )
    fi = await _fi_serve_begin(args, sim)  # [faults] None unless --scenario/--control/--transcript
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)

    start = asyncio.ensure_future(sim.start())
    sig_wait = asyncio.ensure_future(signalled.wait())
    await asyncio.wait({start, sig_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not start.done():  # a signal while joining or standing by
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start
        sig_wait.cancel()
        await _fi_serve_end(fi)  # [faults]
        return 0
    try:  # [faults]
        role = start.result()  # raises a start-up error
    finally:
        if not start.done() or start.exception() is not None or start.result() != "owner":
            await _fi_serve_end(fi)
    if role != "owner":
        sig_wait.cancel()
        return 0
    _fi_serve_owner(fi)  # [faults] the scenario clock starts now
    stopped = asyncio.ensure_future(sim.wait_stopped())
    await asyncio.wait({stopped, sig_wait}, return_when=asyncio.FIRST_COMPLETED)
    sig_wait.cancel()
    await _fi_serve_end(fi)  # [faults]
    try:
        await sim.stop()
    except Exception as exc:
        print(f"modeld: release lease: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["make-model"]:  # [make-model]
        return _make_model(args_list[1:])
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.cmd in _FI_COMMANDS:  # [faults]
        return _fi_main(args)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(f"modeld: {exc}", file=sys.stderr, flush=True)
        return 1


# --- [make-model] tiny random-weight models for the real engines (modeld_sim/makemodel.py) ------------


def _make_model(argv: Sequence[str]) -> int:
    """``modeld-sim make-model --type llama|openvino --out PATH [--seed N] …`` (see modeld_sim.makemodel)."""
    from modeld_sim import makemodel

    p = argparse.ArgumentParser(prog="modeld-sim")
    makemodel.add_parser(p.add_subparsers(dest="cmd", required=True))
    try:
        args = p.parse_args(["make-model", *argv])
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    return makemodel.main(args, _out)


# --- [faults] failure injection: cluster, scenario, ctl, lease; serve --scenario/--control ------------

_FI_COMMANDS: Final = ("cluster", "scenario", "ctl", "lease")


def _fi_add_parsers(sub: Any, serve: argparse.ArgumentParser) -> None:
    """Parsers of the failure-injection commands (bodies in cluster / scenario / control / leasescript)."""
    serve.add_argument("--scenario", default=None, metavar="FILE", help="play this TOML timeline of faults")
    serve.add_argument("--control", action="store_true", help="serve the control plane")
    serve.add_argument("--transcript", default=None, metavar="FILE", help="append a JSON line per RPC here")
    serve.add_argument("--node-name", default="node1", help=argparse.SUPPRESS)

    c = sub.add_parser("cluster", help="N owners on one data root: a leader and standbys (failure injection)")
    c.add_argument("--data-root", required=True)
    c.add_argument("--size", type=int, default=3)
    c.add_argument("--ttl", type=_duration, default=500_000_000, help="lease duration (default 500ms)")
    c.add_argument("--renew", type=_duration, default=None, help="renew interval (default ttl/3)")
    c.add_argument("--backend", choices=("llama", "openvino", "none"), default="llama")
    c.add_argument("--procs", action="store_true", help="one process per node (real SIGKILL / SIGSTOP)")
    c.add_argument("--respawn", action="store_true", help="start a new standby whenever a node is killed")
    c.add_argument("--no-control", dest="control", action="store_false", help="no control plane")
    c.add_argument("--transcript", default=None, metavar="FILE", help="append a JSON line per RPC here")
    c.add_argument("--scenario", default=None, metavar="FILE", help="play this TOML timeline")

    sc = sub.add_parser("scenario", help="check or run a scenario file")
    scs = sc.add_subparsers(dest="scenario_cmd", required=True)
    for name in ("run", "check"):
        x = scs.add_parser(name)
        x.add_argument("file")
        if name == "run":
            x.add_argument("--data-root", default=None, help="default: a fresh temporary directory")
            x.add_argument("--control", action="store_true", help="serve the control plane while it runs")
            x.add_argument("--transcript", default=None, metavar="FILE")

    ctl = sub.add_parser("ctl", help="drive a running simulator through its control plane")
    ctl.add_argument("--data-root", default="", help="where the control file is (default ~/.contenox)")
    ctl.add_argument(
        "ctl_args",
        nargs=argparse.REMAINDER,
        help="status | fault add k=v… | fault list | "
        "fault rm ID | fault clear | lease OP [k=v…] [--pause] | failover [how] | "
        "kill|wedge|resume|partition|heal [NODE] | transcript [--since N] [--out F] | mark TEXT",
    )

    le = sub.add_parser("lease", help="write a lease state into a data root (no daemon needed)")
    le.add_argument("--data-root", default="")
    le.add_argument(
        "op",
        help="show | fresh | stale | expire | future | ttl | corrupt | truncated | empty | "
        "missing | foreign | closed_port | endpoint | backend | no_meta | steal",
    )
    le.add_argument("params", nargs="*", help="key=value (durations: Go syntax or milliseconds)")


async def _fi_serve_begin(args: argparse.Namespace, sim: Any) -> Any:
    if not (args.scenario or args.control or args.transcript):
        return None
    from modeld_sim.control import ServeExtras

    return await ServeExtras.begin(args, sim, _out)


def _fi_serve_owner(fi: Any) -> None:
    if fi is not None:
        fi.owner_started()


async def _fi_serve_end(fi: Any) -> None:
    if fi is not None:
        await fi.end()


def _fi_main(args: argparse.Namespace) -> int:
    if args.cmd == "lease":
        from modeld_sim.leasescript import cli_main as lease_main

        args.data_root = _data_root(args.data_root)
        return lease_main(args, _out)
    if args.cmd == "ctl":
        from modeld_sim.control import cli_main as ctl_main

        args.data_root = _data_root(args.data_root)
        return ctl_main(args, _out)
    if args.cmd == "scenario":
        from modeld_sim.scenario import cli_main as scenario_main

        return scenario_main(args, _out)
    from modeld_sim.cluster import cli_main as cluster_main

    return cluster_main(args, _out)


if __name__ == "__main__":
    sys.exit(main())
