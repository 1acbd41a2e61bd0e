"""Load the machine while a block runs: busy-loop processes, started on entry and killed on exit.

    with busy_load(2):
        ...  # every core of a 2-core machine is contended while this runs

Timing assumptions in a test (a fixed pause, a deadline that is too tight) show up as flakes only when
the machine is busy; running a scenario under this load makes them show up on demand instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["busy_load", "cpu_seconds"]

#: A child that never sleeps and never makes a system call: pure CPU.
_SPIN = "while True:\n    pass\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (``/proc/<pid>/stat``, Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces; the fields after it are split by single spaces
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def busy_load(workers: int = 2, *, spun_up: float = 0.05, timeout: float = 30.0) -> Iterator[list[int]]:
    """Run ``workers`` busy loops for the duration of the block; yields their pids.

    Entry returns once every loop has used ``spun_up`` seconds of CPU (so the load is on before the block
    starts, not still starting an interpreter); exit kills and reaps them all, even when the block raised.
    """
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-S", "-c", _SPIN],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + timeout
        for p in procs:
            while cpu_seconds(p.pid) < spun_up:
                if p.poll() is not None:
                    raise RuntimeError(f"busy loop {p.pid} exited with {p.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"busy loop {p.pid} did not start spinning within {timeout:.0f} s")
                time.sleep(0.01)  # polling the child's CPU time, bounded by the deadline
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
