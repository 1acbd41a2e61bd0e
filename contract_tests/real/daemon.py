"""One real ``modeld serve`` on a data root: start it, wait for its lease, stop it and check the release.

    with RealDaemon(binary, data_root, ttl="3s") as d:
        d.endpoint, d.instance_id, d.host, d.port
    # SIGTERM sent, exit 0 and the lease file gone, or DaemonError with the log tail

The daemon's stdout and stderr go to a log file *outside* the data root (the data root of a running daemon
holds nothing but ``modeld.lease``, a recorded fact). ``serve`` takes its data root from ``--data-root`` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["LEASE_NAME", "DaemonError", "RealDaemon", "read_lease"]

LEASE_NAME = "modeld.lease"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 40


class DaemonError(RuntimeError):
    """The daemon did not come up, exited unexpectedly, or did not release its lease."""

    def __init__(self, summary: str, log_tail: str = "") -> None:
        self.summary = summary
        self.log_tail = log_tail
        super().__init__(summary + (f"\n--- modeld log tail ---\n{log_tail}" if log_tail else ""))


def read_lease(data_root: Path) -> dict[str, Any] | None:
    """The lease document of ``data_root`` (``None`` when absent or not a JSON object)."""
    try:
        doc = json.loads((data_root / LEASE_NAME).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class RealDaemon:
    """``BINARY serve --data-root DATA_ROOT --ttl TTL`` as a subprocess (a context manager)."""

    def __init__(
        self,
        binary: str | os.PathLike[str],
        data_root: str | os.PathLike[str],
        ttl: str = "3s",
        env: Mapping[str, str] | None = None,
        *,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.binary = Path(binary)
        self.data_root = Path(data_root)
        self.ttl = ttl
        # TZ=UTC: the lease's times then end in `Z`, as recorded.
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("TZ", "UTC")
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="modeld-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lease: dict[str, Any] = {}
        self.exit_code: int | None = None

    # -- facts ---------------------------------------------------------------------------------------

    @property
    def argv(self) -> list[str]:
        return [
            str(self.binary),
            "serve",
            "--data-root",
            str(self.data_root),
            "--ttl",
            self.ttl,
            *self.extra_args,
        ]

    @property
    def lease_path(self) -> Path:
        return self.data_root / LEASE_NAME

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise DaemonError("the daemon was not started")
        return self.proc.pid

    @property
    def instance_id(self) -> str:
        return str(self.lease["instance_id"])

    @property
    def endpoint(self) -> str:
        return str(self.lease["meta"]["endpoint"])

    @property
    def backend(self) -> str:
        return str(self.lease["meta"].get("backend", ""))

    @property
    def host(self) -> str:
        return self.endpoint.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.endpoint.rpartition(":")[2])

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().rstrip().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------------

    def spawn(self) -> Self:
        """Start the process without waiting for anything (for followers and lifecycle recordings)."""
        if self.proc is not None:
            raise DaemonError("the daemon was already started")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        return self

    def start(self) -> Self:
        """Start and wait until this process owns the lease (``DaemonError`` with the log tail otherwise)."""
        self.spawn()
        self.lease = self.wait_for_lease(self.start_timeout)
        return self

    def wait_for_lease(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Poll the data root until the lease names this process with an endpoint."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            lease = read_lease(self.data_root)
            if (
                lease is not None
                and lease.get("pid") == self.proc.pid
                and isinstance(lease.get("meta"), dict)
                and lease["meta"].get("endpoint")
            ):
                return lease
            code = self.proc.poll()
            if code is not None:
                self.exit_code = code
                raise DaemonError(
                    f"modeld exited with status {code} before it owned the lease of {self.data_root}",
                    self.log_tail(),
                )
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.kill()
                raise DaemonError(
                    f"modeld did not publish its lease in {self.data_root} within {timeout:.0f} s", tail
                )
            time.sleep(0.02)  # polling a file the subprocess writes, with a deadline

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Wait for the process to exit; its exit status."""
        assert self.proc is not None
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(
                f"modeld (pid {self.proc.pid}) did not exit within {timeout:.0f} s", self.log_tail()
            ) from None
        return self.exit_code

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S, *, check: bool = True) -> int:
        """SIGTERM, wait, and (``check``) require exit 0 and that this daemon's lease is gone."""
        if self.proc is None:
            raise DaemonError("the daemon was not started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.wait(timeout)
            except DaemonError:
                self.kill()
                raise
        else:
            code = self.proc.returncode
        self.exit_code = code
        if check:
            if code != 0:
                raise DaemonError(f"modeld exited with status {code} on SIGTERM (want 0)", self.log_tail())
            left = read_lease(self.data_root)
            if left is not None and left.get("pid") == self.proc.pid:
                raise DaemonError(
                    f"modeld exited but left its lease in {self.data_root}: {left}", self.log_tail()
                )
        return code

    def kill(self) -> None:
        """SIGKILL (after SIGCONT) and reap; no checks."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.exit_code = self.proc.wait(10)

    def close(self) -> None:
        """Kill the process if it still runs and remove a log file this object made."""
        self.kill()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.stop()
            else:
                with contextlib.suppress(DaemonError):
                    self.stop(check=False)
        finally:
            self.kill()
            if exc_type is None and self._own_log:
                with contextlib.suppress(OSError):
                    self.log_path.unlink()
