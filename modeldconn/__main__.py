"""The doctor: ``python -m modeldconn status [--data-root DIR] [--json] [--timeout S]``.

Prints what the connector sees: the probe state (lease + health), endpoint, owner instance,
backend, the Health answer and the model slot (``Status``). Exit status:

=====  ===========================================================
0      a healthy owner answered (state ``running``) and Status worked
1      the owner is healthy but Status failed (the error is printed)
2      usage error
3      ``not-installed``: no modeld binary found and no live lease
4      ``not-running``: no lease (or a corrupt one)
5      ``stale``: the lease lapsed (the daemon may have crashed)
6      ``unreachable``: a live lease, but no healthy answer to Health within the timeout
=====  ===========================================================
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, Final

from modeldconn import client as _client
from modeldconn import probe as _probe
from modeldconn import transport as _t
from modeldconn.types import Health, Status
from modeldconn.wire.errors import ModeldError

EXIT_CODES: Final = {
    _probe.ProbeState.RUNNING: 0,
    _probe.ProbeState.NOT_INSTALLED: 3,
    _probe.ProbeState.NOT_RUNNING: 4,
    _probe.ProbeState.STALE: 5,
    _probe.ProbeState.UNREACHABLE: 6,
}
EXIT_STATUS_FAILED: Final = 1
EXIT_USAGE: Final = 2

#: what each exit status means, for ``--help`` (the table above, from the same constants)
EXIT_MEANINGS: Final = (
    (EXIT_CODES[_probe.ProbeState.RUNNING], "running: a healthy owner answered and Status worked"),
    (EXIT_STATUS_FAILED, "the owner is healthy but Status failed (the error is printed)"),
    (EXIT_USAGE, "usage error"),
    (EXIT_CODES[_probe.ProbeState.NOT_INSTALLED], "not-installed: no modeld binary found and no live lease"),
    (EXIT_CODES[_probe.ProbeState.NOT_RUNNING], "not-running: no lease (or a corrupt one)"),
    (EXIT_CODES[_probe.ProbeState.STALE], "stale: the lease lapsed (the daemon may have crashed)"),
    (
        EXIT_CODES[_probe.ProbeState.UNREACHABLE],
        "unreachable: a live lease, but no healthy answer to Health within the timeout",
    ),
)


@dataclasses.dataclass
class Report:
    state: str
    data_root: str
    reason: str = ""
    error: str | None = None
    endpoint: str = ""
    instance_id: str = ""
    backend: str = ""
    binary: str = ""
    health: Health | None = None
    status: Status | None = None
    status_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["healthy"] = self.state == _probe.ProbeState.RUNNING.value
        return d


async def collect(data_root: str | None, timeout: float) -> Report:
    """Probe ``data_root`` and ask the owner for its status."""
    root = data_root or _client.data_root()
    answers: list[Health] = []

    async def health(endpoint: str, t: float) -> _probe.HealthAnswer:
        r = await _t.health_check(endpoint, t)
        answers.append(Health.from_pb(r))
        return _probe.HealthAnswer(r.instance_id, r.ready, r.backend)

    st = await _probe.probe(root, health=health, timeout=timeout)
    err = st.err()
    rep = Report(
        state=st.state.value,
        data_root=root,
        reason=st.reason,
        error=str(err) if err is not None else None,
        endpoint=st.endpoint,
        instance_id=st.instance,
        backend=st.backend,
        binary=st.binary,
        health=answers[-1] if answers else None,
    )
    if st.state is _probe.ProbeState.RUNNING:
        conn = _client.Connector(root, timeouts=_client.Timeouts(probe=timeout))
        try:
            rep.status = await conn.status(timeout=max(timeout, 1.0) * 2)
        except Exception as exc:
            text = exc.plain_text if isinstance(exc, ModeldError) else str(exc)
            rep.status_error = f"{type(exc).__name__}: {text}"
        finally:
            await conn.aclose()
    return rep


def exit_code(rep: Report) -> int:
    code = EXIT_CODES.get(_probe.ProbeState(rep.state), EXIT_STATUS_FAILED)
    if code == 0 and rep.status_error is not None:
        return EXIT_STATUS_FAILED
    return code


def render(rep: Report) -> str:
    lines = [f"modeld: {rep.state}" + (f" - {rep.error}" if rep.error else "")]

    def row(k: str, v: str) -> None:
        lines.append(f"  {k + ':':<11}{v}")

    row("data root", rep.data_root)
    row("endpoint", rep.endpoint or "-")
    row("instance", rep.instance_id or "-")
    row("backend", rep.backend or "-")
    row("binary", rep.binary or "(not found)")
    if rep.health is not None:
        h = rep.health
        state = "ready" if h.ready else "NOT ready"
        row("health", f"{state} (instance {h.instance_id or '-'}, backend {h.backend or '-'})")
    elif rep.state in (_probe.ProbeState.RUNNING.value, _probe.ProbeState.UNREACHABLE.value):
        row("health", "no answer")
    if rep.reason:
        row("reason", rep.reason)
    if rep.status is not None:
        s = rep.status
        row("slot", s.state or "Empty")
        if s.active is not None:
            a = s.active
            model = f"{a.model_name or '-'} ({a.type or '-'})" + (f" {a.path}" if a.path else "")
            row("model", f"{model} generation {a.generation} num_ctx {a.config.num_ctx}")
        if s.busy_operation:
            row("busy", s.busy_operation)
        if s.last_error:
            row("last error", s.last_error)
    if rep.status_error is not None:
        row("status", f"failed: {rep.status_error}")
    return "\n".join(lines)


def exit_codes_help() -> str:
    """The exit statuses of ``status``, one per line (the epilog of ``--help``)."""
    return "exit status:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_MEANINGS)


def _seconds(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want seconds, got {value!r}") from None
    if not t > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"want seconds > 0, got {value!r}")
    return t


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeldconn",
        description="modeld connector doctor",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "status",
        help="probe the modeld owner and print its state and model slot",
        description="Probe the modeld owner of a data root (lease + Health) and print its state and model "
        "slot (Status).",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-root", default=None, help="data root (default: $CONTENOX_DATA_ROOT or ~/.contenox)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: text)")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=_t.DEFAULT_PROBE_TIMEOUT,
        help=f"health probe deadline in seconds (default: {_t.DEFAULT_PROBE_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    rep = asyncio.run(collect(args.data_root, args.timeout))
    if args.json:
        print(json.dumps(rep.as_json(), indent=2, sort_keys=False))
    else:
        print(render(rep))
    return exit_code(rep)


if __name__ == "__main__":
    sys.exit(main())
