"""The driver side of the driver protocol (docs/driver-protocol.md) around any Python Connector."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from modeld_contract.connectors.protocol import Connector, ConnectorError, DecodeResult

__all__ = ["serve"]

_OPS = (
    "configure",
    "available",
    "backend",
    "serveable_backend",
    "probe",
    "status",
    "describe",
    "open_session",
    "load_model",
    "unload_model",
    "embed",
    "list_models",
    "remove_model",
    "disk_stats",
    "ensure_prefix",
    "prefill_suffix",
    "explain_context",
    "snapshot",
    "restore",
    "close_session",
)


def serve(
    make: Callable[[], Connector],
    name: str,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Answer requests until EOF or ``shutdown``. ``reset`` closes the connector and makes a new one."""
    inp = stdin or sys.stdin
    out = stdout or sys.stdout

    def send(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    connector = make()
    send({"hello": "modeld-driver", "protocol": 1, "name": name})
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            rid, op, args = req["id"], str(req["op"]), dict(req.get("args") or {})
        except (ValueError, KeyError, TypeError) as exc:
            send({"id": None, "ok": False, "error": {"kind": "error", "message": f"bad request: {exc}"}})
            continue
        try:
            if op == "shutdown":
                connector.close()
                send({"id": rid, "ok": True, "result": None})
                return 0
            if op == "reset":
                connector.close()
                connector = make()
                send({"id": rid, "ok": True, "result": None})
                continue
            if op == "decode":
                res: DecodeResult = connector.decode(
                    args["session"], args.get("config") or {}, args.get("timeout")
                )
                for chunk in res.chunks:
                    send({"id": rid, "chunk": chunk})
                send(
                    {
                        "id": rid,
                        "ok": True,
                        "result": {"error": None if res.error is None else res.error.to_json()},
                    }
                )
                continue
            if op not in _OPS:
                raise ConnectorError("error", f"unknown op {op!r}")
            result = getattr(connector, op)(**args)
            send({"id": rid, "ok": True, "result": result})
        except ConnectorError as err:
            send({"id": rid, "ok": False, "error": err.to_json()})
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            send(
                {
                    "id": rid,
                    "ok": False,
                    "error": {"kind": "error", "message": f"{type(exc).__name__}: {exc}"},
                }
            )
    connector.close()
    return 0
