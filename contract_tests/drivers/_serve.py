"""The driver side of the driver protocol (docs/driver-protocol.md) around any Python Connector.

The optional operations (PushModel, the targeted API) are served when the connector offers them
(``push_model`` of the base protocol, the extensions of
:mod:`~modeld_contract.connectors.extensions`) and listed in the hello's ``ops``; any other op is
answered ``unsupported_operation``."""

from __future__ import annotations

import base64
import binascii
import json
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from modeld_contract.connectors.extensions import (
    PUSH_OPS,
    TARGET_OPS,
    NodeTarget,
    failing_push,
    offers_push,
    target_ops,
)
from modeld_contract.connectors.protocol import (
    Connector,
    ConnectorError,
    DecodeResult,
    OperationUnsupported,
    optional_op,
)

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


def _offered(connector: Connector) -> list[str]:
    ops = [*_OPS, "decode", "reset", "shutdown"]
    if offers_push(connector):
        ops += PUSH_OPS
    if target_ops(connector) is not None:
        ops += TARGET_OPS
    return ops


def _optional(connector: Connector, op: str, args: dict[str, Any]) -> Any:
    """An optional op, with its protocol arguments turned into the extension's (target, bytes)."""
    ext: Any
    if op in PUSH_OPS:
        # fail_after needs a connector whose push takes a failing source; plain pushes go to the
        # connector's own push_model
        ext = failing_push(connector) if "fail_after" in args else connector
    else:
        ext = target_ops(connector)
    if ext is None or optional_op(ext, op) is None:
        raise OperationUnsupported(f"the connector does not offer {op!r}")
    if "target" in args:
        args["target"] = NodeTarget.from_json(dict(args["target"] or {}))
    if "data" in args:
        try:
            args["data"] = base64.b64decode(str(args["data"] or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConnectorError("error", f"data is not base64: {exc}") from None
    return getattr(ext, op)(**args)


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
    send({"hello": "modeld-driver", "protocol": 1, "name": name, "ops": _offered(connector)})
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
            if op in PUSH_OPS or op in TARGET_OPS:
                result = _optional(connector, op, args)
            elif op in _OPS:
                result = getattr(connector, op)(**args)
            else:
                raise OperationUnsupported(f"unknown op {op!r}")
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
