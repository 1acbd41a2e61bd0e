"""``modeld-sim``: run the simulated modeld daemon from a shell, printing the real daemon's lines.

    modeld-sim serve [--data-root DIR] [--backend llama|openvino|none] [--engine fake|llama|openvino] …
    modeld-sim make-model [--type fake|llama|openvino] --out PATH
    modeld-sim cluster --data-root DIR [--size 3] …
    modeld-sim scenario list | run NAME|FILE | check NAME|FILE
    modeld-sim ctl [--data-root DIR] status | fault … | lease … | failover | kill|wedge|resume|partition|heal
    modeld-sim lease [--data-root DIR] OP [key=value …]

``modeld-sim`` without a command prints this usage and exits 2: unlike the real ``modeld``, whose bare
invocation serves, nothing here takes a lease unless asked to. ``serve --help`` lists every option with
its default. ``serve`` behaves as ``cmd/modeld/main.go`` (contenox/runtime v0.36.0) ``serve``:

* the data root defaults to ``~/.contenox`` and is created with mode 0700;
* durations use Go syntax (:mod:`modeldconn.gotime`); ``--idle-ttl`` falls back to
  ``$CONTENOX_MODELD_IDLE_TTL``, then ``<data-root>/modeld.json`` ``{"idle":{"ttl":…}}``, then 5m;
  ``0`` / ``off`` / ``none`` disable it;
* a follower prints ``modeld follower: reason=lease_held …`` and exits 0 at once (``--standby``: it
  waits and takes over when the lease lapses — a simulator extension, the daemon has no standby);
* SIGINT / SIGTERM → graceful stop, release, ``modeld owner stopped: …``, exit 0; a lost lease →
  ``modeld: lost lease, shutting down: <reason>`` on stderr, then the same stop, exit 0;
* errors → ``modeld: <error>`` on stderr, exit 1 — among them a real engine (``--engine llama`` /
  ``openvino``) whose library is not installed: refused before the listener and the lease, naming the
  extra to install; bad usage → exit 2.

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
_COMMANDS: Final = ("serve", "make-model", "cluster", "scenario", "ctl", "lease")


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


# --- the parser ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from modeld_sim import makemodel

    p = argparse.ArgumentParser(
        prog="modeld-sim",
        description="A faithful simulator of the modeld daemon (contenox/runtime v0.36.0).",
        epilog="Start one: modeld-sim serve --data-root DIR. Each command has --help.",
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    _add_serve(sub)
    makemodel.add_parser(sub)
    _add_cluster(sub)
    _add_scenario(sub)
    _add_ctl(sub)
    _add_lease(sub)
    return p


def _add_serve(sub: Any) -> None:
    s = sub.add_parser(
        "serve",
        help="own the lease and serve the Compute API (or print the follower line)",
        description="Run one simulated modeld: take the lease of DATA_ROOT and serve, or print the "
        "follower line and exit 0 when another daemon holds it.",
    )
    s.add_argument(
        "--data-root", default="", help="contenox data root holding the lease (default: ~/.contenox)"
    )
    s.add_argument(
        "--backend",
        choices=("llama", "openvino", "none"),
        default="llama",
        help="backend advertised in the lease and served (default: llama)",
    )
    s.add_argument(
        "--engine",
        choices=("fake", "llama", "openvino"),
        default="fake",
        help="what computes: the deterministic fake engine, or llama.cpp / OpenVINO for a backend of "
        "the same name; the real ones need their extra, pip install 'modeld-contract[llama]' / "
        "'modeld-contract[openvino]' (default: fake)",
    )
    s.add_argument("--model", default=None, help="model file a real engine checks at start (default: none)")
    s.add_argument("--models-dir", default=None, help="the node's model store (default: DATA_ROOT/models)")
    s.add_argument("--host", default="127.0.0.1", help="listen host (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="listen port (default: 0, any free port)")
    s.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="listen address, as modeld --listen; overrides --host/--port (default: HOST:PORT)",
    )
    s.add_argument(
        "--ttl",
        type=_duration,
        default=30 * _NS,
        metavar="DURATION",
        help="lease TTL, Go syntax (default: 30s)",
    )
    s.add_argument(
        "--renew", type=_duration, default=None, metavar="DURATION", help="renew interval (default: TTL/3)"
    )
    s.add_argument(
        "--idle-ttl",
        default=None,
        metavar="DURATION",
        help="release the resident model after this idle time; 0/off/none disable it (default: "
        "$CONTENOX_MODELD_IDLE_TTL, else idle.ttl of DATA_ROOT/modeld.json, else 5m)",
    )
    s.add_argument(
        "--accept-plain-grpc",
        action="store_true",
        help="also answer content-type application/grpc, which the daemon refuses (default: off)",
    )
    s.add_argument(
        "--standby",
        action="store_true",
        help="as follower, wait and take over when the lease lapses instead of exiting (default: off)",
    )
    s.add_argument(
        "--scenario",
        default=None,
        metavar="NAME|FILE",
        help="play this timeline of faults, a packaged name (modeld-sim scenario list) or a TOML "
        "file (default: none)",
    )
    s.add_argument(
        "--control",
        action="store_true",
        help="serve the control plane for modeld-sim ctl, docs/control-plane.md (default: off)",
    )
    s.add_argument(
        "--transcript", default=None, metavar="FILE", help="append a JSON line per RPC here (default: none)"
    )
    s.add_argument("--node-name", default="node1", help=argparse.SUPPRESS)


def _add_cluster(sub: Any) -> None:
    c = sub.add_parser("cluster", help="N owners on one data root: a leader and standbys (failure injection)")
    c.add_argument("--data-root", required=True, help="the shared data root (required)")
    c.add_argument("--size", type=int, default=3, help="number of nodes (default: 3)")
    c.add_argument("--ttl", type=_duration, default=500_000_000, help="lease TTL (default: 500ms)")
    c.add_argument("--renew", type=_duration, default=None, help="renew interval (default: TTL/3)")
    c.add_argument(
        "--backend", choices=("llama", "openvino", "none"), default="llama", help="backend (default: llama)"
    )
    c.add_argument("--procs", action="store_true", help="one process per node: real SIGKILL / SIGSTOP")
    c.add_argument("--respawn", action="store_true", help="start a new standby whenever a node is killed")
    c.add_argument("--no-control", dest="control", action="store_false", help="no control plane")
    c.add_argument("--transcript", default=None, metavar="FILE", help="append a JSON line per RPC here")
    c.add_argument("--scenario", default=None, metavar="NAME|FILE", help="play this timeline")


def _add_scenario(sub: Any) -> None:
    sc = sub.add_parser("scenario", help="list, check or run a scenario (packaged name or TOML file)")
    scs = sc.add_subparsers(dest="scenario_cmd", required=True, metavar="list|run|check")
    scs.add_parser("list", help="the packaged scenarios, one per line")
    for name in ("run", "check"):
        x = scs.add_parser(name, help=f"{name} a packaged scenario (by name) or a TOML file")
        x.add_argument("scenario", metavar="NAME|FILE")
        if name == "run":
            x.add_argument("--data-root", default=None, help="default: a fresh temporary directory")
            x.add_argument("--control", action="store_true", help="serve the control plane while it runs")
            x.add_argument("--transcript", default=None, metavar="FILE", help="append a JSON line per RPC")


def _add_ctl(sub: Any) -> None:
    ctl = sub.add_parser("ctl", help="drive a running simulator through its control plane")
    ctl.add_argument("--data-root", default="", help="where the control file is (default: ~/.contenox)")
    ctl.add_argument(
        "ctl_args",
        nargs=argparse.REMAINDER,
        help="status | fault add k=v… | fault list | fault rm ID | fault clear | lease OP [k=v…] [--pause] "
        "| lease pause|resume [node=NAME] | failover [how] | kill|wedge|resume|partition|heal [NODE] "
        "| transcript [--since N] [--out F] | mark TEXT",
    )


def _add_lease(sub: Any) -> None:
    le = sub.add_parser("lease", help="write a lease state into a data root (no daemon needed)")
    le.add_argument("--data-root", default="", help="the data root (default: ~/.contenox)")
    le.add_argument(
        "op",
        help="show | fresh | stale | expire | future | ttl | corrupt | truncated | empty | "
        "missing | foreign | closed_port | endpoint | backend | no_meta | steal; pause | resume "
        "(of a running simulator's renewals, through its control plane)",
    )
    le.add_argument("params", nargs="*", help="key=value (durations: Go syntax or milliseconds)")


def _data_root(flag: str) -> str:
    if flag:
        return flag
    home = os.path.expanduser("~")
    if not home or home == "~":
        raise RuntimeError("resolve home: $HOME is not defined")
    return os.path.join(home, ".contenox")


# --- serve ----------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from modeld_sim.simulator import Simulator

    data_root = _data_root(args.data_root)
    idle_ttl_ns = resolve_idle_ttl(data_root, args.idle_ttl)
    if args.ttl <= 0:
        raise ValueError("owner: ttl must be positive")
    from modeld_sim.control import remove_stale_control_file

    # a control file left by a killed simulator names an endpoint nobody serves: ctl must not find it
    remove_stale_control_file(data_root)
    from modeld_sim.simulator import missing_engine

    missing = missing_engine(args.engine, args.backend)
    if missing is not None:
        raise RuntimeError(missing)
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
    extras = await _extras_begin(args, sim)  # None unless --scenario/--control/--transcript
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
        await _extras_end(extras)
        return 0
    try:
        role = start.result()  # raises a start-up error
    finally:
        if start.exception() is not None or start.result() != "owner":
            await _extras_end(extras)
    if role != "owner":
        sig_wait.cancel()
        return 0
    if extras is not None:
        extras.owner_started()  # the scenario clock starts now
    stopped = asyncio.ensure_future(sim.wait_stopped())
    await asyncio.wait({stopped, sig_wait}, return_when=asyncio.FIRST_COMPLETED)
    sig_wait.cancel()
    await _extras_end(extras)
    try:
        await sim.stop()
    except Exception as exc:
        print(f"modeld: release lease: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _extras_begin(args: argparse.Namespace, sim: Any) -> Any:
    """The failure-injection additions of ``serve`` (fault hooks, transcript, control plane, scenario)."""
    if not (args.scenario or args.control or args.transcript):
        return None
    from modeld_sim.control import ServeExtras

    return await ServeExtras.begin(args, sim, _out)


async def _extras_end(extras: Any) -> None:
    if extras is not None:
        await extras.end()


# --- main -----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        parser.print_usage(sys.stderr)
        hint = "modeld-sim serve " + (" ".join(args_list) if args_list else "--data-root DIR")
        print(
            f"modeld-sim: a command is required ({', '.join(_COMMANDS)}); to run the daemon: {hint}",
            file=sys.stderr,
        )
        return 2
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.cmd == "make-model":
        from modeld_sim import makemodel

        return makemodel.main(args, _out)
    if args.cmd in ("cluster", "scenario", "ctl", "lease"):
        return _tool_main(args)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(f"modeld: {exc}", file=sys.stderr, flush=True)
        from modeld_sim.scenario import ScenarioError

        return 2 if isinstance(exc, ScenarioError) else 1


def _tool_main(args: argparse.Namespace) -> int:
    """The failure-injection commands (bodies in cluster / scenario / control / leasescript)."""
    try:
        if args.cmd in ("lease", "ctl"):
            args.data_root = _data_root(args.data_root)
    except RuntimeError as exc:
        print(f"modeld-sim {args.cmd}: {exc}", file=sys.stderr, flush=True)
        return 1
    if args.cmd == "lease":
        from modeld_sim.leasescript import cli_main as lease_main

        return lease_main(args, _out)
    if args.cmd == "ctl":
        from modeld_sim.control import cli_main as ctl_main

        return ctl_main(args, _out)
    if args.cmd == "scenario":
        from modeld_sim.scenario import cli_main as scenario_main

        return scenario_main(args, _out)
    from modeld_sim.cluster import cli_main as cluster_main

    return cluster_main(args, _out)


if __name__ == "__main__":
    sys.exit(main())
