"""Adapter: a connector in any language, behind an executable speaking the driver protocol.

The protocol (``docs/driver-protocol.md``): the harness starts ``COMMAND`` (shell-split), the driver
writes one hello line ``{"hello": "modeld-driver", "protocol": 1, "name": …}``, then answers each
request line ``{"id": N, "op": OP, "args": {…}}`` with exactly one final line
``{"id": N, "ok": true, "result": …}`` or ``{"id": N, "ok": false, "error": {"kind", "message",
"tokens", "detail"}}``; ``decode`` may send ``{"id": N, "chunk": {…}}`` lines before its final line,
whose result is ``{"error": null | {…}}``. One request at a time; stdout carries nothing else
(diagnostics go to stderr).

A driver that does not answer within the harness bound is killed and restarted on the next call;
that call reports ``harness_timeout``.

The optional operations (PushModel, the targeted API: :mod:`modeld_contract.connectors.extensions`)
are offered when the driver's hello lists them in ``ops``; a driver whose hello has no ``ops`` offers
the base operations only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import IO, Any

from modeld_contract.connectors.extensions import PUSH_OPS, TARGET_OPS, NodeTarget
from modeld_contract.connectors.protocol import (
    HARNESS_TIMEOUT,
    JSON,
    ConnectorError,
    DecodeResult,
    OperationUnsupported,
)

__all__ = ["DRIVER_PROTOCOL", "DriverProcess", "SubprocessConnector"]

DRIVER_PROTOCOL = 1
_DEFAULT_BOUND = 30.0
_SLACK = 10.0
_START_TIMEOUT = 60.0
_OPTIONAL_OPS = frozenset((*PUSH_OPS, *TARGET_OPS))


class DriverProcess:
    """One running driver: request/response over pipes, a reader thread feeding a queue."""

    def __init__(self, command: str, env: Mapping[str, str] | None = None) -> None:
        self.command = command
        argv = shlex.split(command)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the interpreter running the suite (its venv), not PATH's
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the driver
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="modeld-driver-reader")
        self._reader.start()
        self._id = 0
        self.hello = self._next(_START_TIMEOUT)
        if not isinstance(self.hello, dict) or self.hello.get("hello") != "modeld-driver":
            self.kill()
            raise ConnectorError(
                "error", f"driver {command!r} did not say hello: {self.hello!r}{self.stderr_tail()}"
            )
        self.name = str(self.hello.get("name") or command)
        ops = self.hello.get("ops")
        self.ops: frozenset[str] | None = frozenset(str(o) for o in ops) if isinstance(ops, list) else None

    def supports(self, op: str) -> bool:
        """The driver offers ``op``: listed in its hello, or a base op of a hello without ``ops``."""
        if self.ops is None:
            return op not in _OPTIONAL_OPS
        return op in self.ops

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float) -> Any:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ConnectorError(HARNESS_TIMEOUT, f"driver gave no answer within {timeout:.1f} s") from None
        if line is None:
            raise ConnectorError("error", f"driver exited (rc={self.proc.poll()}){self.stderr_tail()}")
        try:
            return json.loads(line)
        except ValueError:
            raise ConnectorError("error", f"driver wrote a line that is not JSON: {line[:200]!r}") from None

    def stderr_tail(self, n: int = 2000) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - n))
            tail = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"\n--- driver stderr (tail) ---\n{tail}" if tail else ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, op: str, args: Mapping[str, Any], bound: float) -> tuple[Any, list[JSON]]:
        """Send one request; return (result, chunks). Raises ConnectorError for an error answer."""
        self._id += 1
        rid = self._id
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"id": rid, "op": op, "args": dict(args)}).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ConnectorError("error", f"driver is gone: {exc}{self.stderr_tail()}") from None
        chunks: list[JSON] = []
        while True:
            msg = self._next(bound)
            if not isinstance(msg, dict) or msg.get("id") != rid:
                raise ConnectorError("error", f"driver answered out of turn: {msg!r}")
            if "chunk" in msg:
                chunks.append(dict(msg["chunk"]))
                continue
            if msg.get("ok"):
                return msg.get("result"), chunks
            raise ConnectorError.from_json(msg.get("error") or {"kind": "error", "message": "no error given"})

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        with contextlib.suppress(OSError):
            self._stderr.close()

    def shutdown(self) -> None:
        if self.alive:
            with contextlib.suppress(ConnectorError):
                self.request("shutdown", {}, 5.0)
            with contextlib.suppress(Exception):
                self.proc.wait(5)
        self.kill()


class SubprocessConnector:
    """:class:`~modeld_contract.connectors.protocol.Connector` over a driver executable.

    ``process`` may be shared between connectors (one driver per test session); each connector
    ``reset``s it when closed."""

    def __init__(self, command: str, process: DriverProcess | None = None) -> None:
        self.command = command
        self._proc = process
        self.name = f"exec:{command}"

    def _driver(self) -> DriverProcess:
        if self._proc is None or not self._proc.alive:
            self._proc = DriverProcess(self.command)
        return self._proc

    @property
    def process(self) -> DriverProcess:
        return self._driver()

    def _req(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        if timeout is not None:
            args["timeout"] = timeout
        bound = (timeout if timeout is not None else _DEFAULT_BOUND) + _SLACK
        proc = self._driver()
        try:
            result, _ = proc.request(op, args, bound)
        except ConnectorError as err:
            if err.kind == HARNESS_TIMEOUT:
                proc.kill()  # unknown state: restart on the next call
            raise
        return result

    def configure(self, data_root: str, env: Mapping[str, str | None] | None = None) -> None:
        self._req("configure", data_root=data_root, env=dict(env or {}))

    def available(self) -> bool:
        return bool(self._req("available"))

    def backend(self) -> str:
        return str(self._req("backend"))

    def serveable_backend(self) -> str:
        return str(self._req("serveable_backend"))

    def probe(self, timeout: float | None = None) -> JSON:
        return dict(self._req("probe", timeout))

    def status(self, timeout: float | None = None) -> JSON:
        return dict(self._req("status", timeout))

    def describe(self, model: JSON, config: JSON, timeout: float | None = None) -> JSON:
        return dict(self._req("describe", timeout, model=model, config=config))

    def open_session(self, model: JSON, config: JSON, timeout: float | None = None) -> str:
        return str(self._req("open_session", timeout, model=model, config=config))

    def load_model(
        self, model: JSON, config: JSON, expected_generation: int = 0, timeout: float | None = None
    ) -> JSON:
        return dict(
            self._req(
                "load_model", timeout, model=model, config=config, expected_generation=expected_generation
            )
        )

    def unload_model(self, expected_generation: int = 0, timeout: float | None = None) -> None:
        self._req("unload_model", timeout, expected_generation=expected_generation)

    def embed(self, model: JSON, config: JSON, text: str, timeout: float | None = None) -> list[float]:
        return [float(x) for x in self._req("embed", timeout, model=model, config=config, text=text)]

    def list_models(self, timeout: float | None = None) -> list[JSON]:
        return list(self._req("list_models", timeout) or [])

    def remove_model(self, name: str, timeout: float | None = None) -> None:
        self._req("remove_model", timeout, name=name)

    def disk_stats(self, timeout: float | None = None) -> JSON:
        return dict(self._req("disk_stats", timeout))

    def ensure_prefix(self, session: str, prefix: JSON, timeout: float | None = None) -> JSON:
        return dict(self._req("ensure_prefix", timeout, session=session, prefix=prefix))

    def prefill_suffix(self, session: str, suffix: JSON, timeout: float | None = None) -> JSON:
        return dict(self._req("prefill_suffix", timeout, session=session, suffix=suffix))

    def decode(self, session: str, config: JSON, timeout: float | None = None) -> DecodeResult:
        args: dict[str, Any] = {"session": session, "config": config}
        if timeout is not None:
            args["timeout"] = timeout
        bound = (timeout if timeout is not None else _DEFAULT_BOUND) + _SLACK
        proc = self._driver()
        try:
            result, chunks = proc.request("decode", args, bound)
        except ConnectorError as err:
            if err.kind == HARNESS_TIMEOUT:
                proc.kill()
            return DecodeResult([], err)
        err_json = (result or {}).get("error") if isinstance(result, dict) else None
        return DecodeResult(chunks, ConnectorError.from_json(err_json) if err_json else None)

    def explain_context(self, session: str, timeout: float | None = None) -> JSON:
        return dict(self._req("explain_context", timeout, session=session))

    def snapshot(self, session: str, timeout: float | None = None) -> JSON:
        return dict(self._req("snapshot", timeout, session=session))

    def restore(self, session: str, snapshot: JSON, timeout: float | None = None) -> None:
        self._req("restore", timeout, session=session, snapshot=snapshot)

    def close_session(self, session: str, timeout: float | None = None) -> None:
        self._req("close_session", timeout, session=session)

    # ---------------------------------------------------------------- optional operations

    def supports(self, op: str) -> bool:
        return self._driver().supports(op)

    def _opt(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        if not self.supports(op):
            raise OperationUnsupported(f"the driver does not offer {op!r}")
        return self._req(op, timeout, **args)

    @staticmethod
    def _push_args(
        name: str, type: str, data: bytes, digest: str | None, format: str, fail_after: int | None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "name": name,
            "type": type,
            "data": base64.b64encode(bytes(data)).decode(),
            "format": format,
        }
        if digest is not None:
            args["digest"] = digest
        if fail_after is not None:
            args["fail_after"] = fail_after
        return args

    def push_model(
        self,
        name: str,
        type: str,
        data: bytes,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
        *,
        fail_after: int | None = None,
    ) -> JSON:
        args = self._push_args(name, type, data, digest, format, fail_after)
        return dict(self._opt("push_model", timeout, **args))

    def endpoint(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        return dict(self._opt("endpoint", timeout, target=target.to_json()))

    def close_endpoint(self, target: NodeTarget) -> None:
        self._opt("close_endpoint", None, target=target.to_json())

    def target_status(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        return dict(self._opt("target_status", timeout, target=target.to_json()))

    def target_describe(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> JSON:
        return dict(
            self._opt("target_describe", timeout, target=target.to_json(), model=model, config=config)
        )

    def target_open_session(
        self, target: NodeTarget, model: JSON, config: JSON, timeout: float | None = None
    ) -> str:
        return str(
            self._opt("target_open_session", timeout, target=target.to_json(), model=model, config=config)
        )

    def target_load_model(
        self,
        target: NodeTarget,
        model: JSON,
        config: JSON,
        expected_generation: int = 0,
        timeout: float | None = None,
    ) -> JSON:
        return dict(
            self._opt(
                "target_load_model",
                timeout,
                target=target.to_json(),
                model=model,
                config=config,
                expected_generation=expected_generation,
            )
        )

    def target_unload_model(
        self, target: NodeTarget, expected_generation: int = 0, timeout: float | None = None
    ) -> None:
        self._opt(
            "target_unload_model", timeout, target=target.to_json(), expected_generation=expected_generation
        )

    def target_embed(
        self, target: NodeTarget, model: JSON, config: JSON, text: str, timeout: float | None = None
    ) -> list[float]:
        out = self._opt(
            "target_embed", timeout, target=target.to_json(), model=model, config=config, text=text
        )
        return [float(x) for x in out]

    def target_list_models(self, target: NodeTarget, timeout: float | None = None) -> list[JSON]:
        return list(self._opt("target_list_models", timeout, target=target.to_json()) or [])

    def target_remove_model(self, target: NodeTarget, name: str, timeout: float | None = None) -> None:
        self._opt("target_remove_model", timeout, target=target.to_json(), name=name)

    def target_disk_stats(self, target: NodeTarget, timeout: float | None = None) -> JSON:
        return dict(self._opt("target_disk_stats", timeout, target=target.to_json()))

    def target_push_model(
        self,
        target: NodeTarget,
        name: str,
        type: str,
        data: bytes,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
        *,
        fail_after: int | None = None,
    ) -> JSON:
        args = self._push_args(name, type, data, digest, format, fail_after)
        return dict(self._opt("target_push_model", timeout, target=target.to_json(), **args))

    def close(self) -> None:
        if self._proc is not None and self._proc.alive:
            try:
                self._req("reset", 10.0)
            except ConnectorError:
                self._proc.kill()
