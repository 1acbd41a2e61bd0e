"""Build-on-demand and cache of the Go driver (``contract_tests/drivers/go/``).

The Go module there requires ``github.com/contenox/runtime`` v0.36.0 (go.mod + the checked-in go.sum)
and has two commands:

- ``driver`` (the module root): the driver protocol around the REAL Go connector
  ``runtime/modelrepo/modeldconn`` — ``--modeld-connector=go``;
- ``memserver`` (``./memserver``): the module's real gRPC transport server around its in-memory
  ``transport.MemoryService``, discoverable through a real lease — the reverse check of ``tests/go/``.

Binaries are cached under ``$XDG_CACHE_HOME/modeld-contract/go-driver/<key>/`` (``~/.cache/…``
without it). The key starts with the hash of the module's ``go.sum`` and adds the hash of ``go.mod``,
the Go sources, ``go version`` and GOOS/GOARCH, so a changed dependency *or* a changed source makes a
new build; the same inputs find the cached binary at once. A failing step raises :class:`GoBuildError`
naming the step (``locate go``, ``go version``, ``go mod download``, ``go build <target>``,
``hello check``); :meth:`GoBuildError.skip_reason` is the one-line skip reason the suite shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "MODULE_DIR",
    "TARGETS",
    "GoBuildError",
    "build",
    "build_key",
    "cache_root",
    "driver_command",
]

MODULE_DIR: Final = Path(__file__).resolve().parent / "go"
#: target name → package path inside the module, and the binary's file name.
TARGETS: Final[dict[str, tuple[str, str]]] = {
    "driver": (".", "modeld-go-driver"),
    "memserver": ("./memserver", "modeld-go-memserver"),
}
LOG_TAIL_LINES: Final = 30
_GO_DOWNLOAD_TIMEOUT: Final = 900.0
_GO_BUILD_TIMEOUT: Final = 900.0


class GoBuildError(RuntimeError):
    """A step of the Go build failed. ``step`` names it; ``log_tail`` is the end of its output."""

    def __init__(self, step: str, summary: str, log_tail: str = "", log_file: Path | None = None) -> None:
        self.step = step
        self.summary = summary
        self.log_tail = log_tail
        self.log_file = log_file
        text = f"building the Go driver failed at step {step!r}: {summary}"
        if log_file is not None:
            text += f"\nlog: {log_file}"
        if log_tail:
            text += f"\n--- log tail ---\n{log_tail}"
        super().__init__(text)

    def skip_reason(self) -> str:
        """One line for ``pytest.skip``: the step, its last meaningful output line, where the log is."""
        last = next((ln.strip() for ln in reversed(self.log_tail.splitlines()) if ln.strip()), "")
        reason = f"Go driver unavailable: step {self.step!r} failed: {self.summary}"
        if last and last not in self.summary:
            reason += f" [{last[:300]}]"
        if self.log_file is not None:
            reason += f" (log: {self.log_file})"
        return reason


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/modeld-contract/go-driver`` (``~/.cache/modeld-contract/go-driver`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modeld-contract" / "go-driver"


def _sources(module_dir: Path) -> list[Path]:
    return sorted(p for p in module_dir.rglob("*.go") if p.is_file())


def build_key(go_version: str, module_dir: Path = MODULE_DIR) -> str:
    """``<sha256(go.sum)[:16]>-<sha256(go.mod, sources, go version, platform)[:12]>``."""
    gosum = hashlib.sha256((module_dir / "go.sum").read_bytes()).hexdigest()[:16]
    h = hashlib.sha256()
    h.update((module_dir / "go.mod").read_bytes())
    for src in _sources(module_dir):
        h.update(str(src.relative_to(module_dir)).encode() + b"\0" + src.read_bytes() + b"\0")
    h.update(go_version.encode())
    h.update(f"{sys.platform}-{os.uname().machine}".encode())
    return f"{gosum}-{h.hexdigest()[:12]}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock so that parallel callers (xdist workers, two shells) build a key once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(text: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=readonly").strip()
    env.setdefault("GOTOOLCHAIN", "local")
    if extra:
        env.update(extra)
    return env


def _run(step: str, argv: list[str], cwd: Path, log: Path, timeout: float) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=_go_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else ""
        log.write_text(out)
        raise GoBuildError(step, f"timed out after {timeout:.0f} s", _tail(out), log) from None
    except OSError as exc:
        raise GoBuildError(step, f"could not run {argv[0]}: {exc}") from None
    out = proc.stdout.decode("utf-8", "replace")
    log.write_text(f"$ {' '.join(argv)}\n(cwd {cwd})\n{out}")
    if proc.returncode != 0:
        raise GoBuildError(step, f"{' '.join(argv)} exited {proc.returncode}", _tail(out), log)
    return out


def _hello_check(binary: Path) -> None:
    """Start the driver, read its hello line, shut it down."""
    try:
        proc = subprocess.run(
            [str(binary)],
            input=b'{"id": 1, "op": "shutdown", "args": {}}\n',
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GoBuildError("hello check", f"{binary}: {exc}") from None
    first = proc.stdout.split(b"\n", 1)[0]
    try:
        hello = json.loads(first)
    except ValueError:
        hello = None
    if not isinstance(hello, dict) or hello.get("hello") != "modeld-driver":
        raise GoBuildError(
            "hello check",
            f"{binary} did not say hello (rc={proc.returncode}): {first[:200]!r}",
            proc.stderr.decode("utf-8", "replace"),
        )


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoBuildError("locate go", "`go` is not on PATH (install Go >= 1.25 to run the Go connector)")
    return go


def build(target: str = "driver", *, module_dir: Path = MODULE_DIR, root: Path | None = None) -> Path:
    """Return the path of the built ``target`` binary, building it first when the cache has none."""
    if target not in TARGETS:
        raise ValueError(f"unknown Go target {target!r}; known: {', '.join(TARGETS)}")
    pkg, name = TARGETS[target]
    go = go_binary()
    version = _run("go version", [go, "version"], module_dir, _scratch_log("go-version"), 60).strip()
    key = build_key(version, module_dir)
    base = (root or cache_root()) / key
    binary = base / name
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    with _locked(base / ".lock"):
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        logs = base / "logs"
        _run(
            "go mod download",
            [go, "mod", "download", "-x"],
            module_dir,
            logs / "go-mod-download.log",
            _GO_DOWNLOAD_TIMEOUT,
        )
        tmp = base / f".{name}.{os.getpid()}.tmp"
        t0 = time.monotonic()
        _run(
            f"go build {target}",
            [go, "build", "-trimpath", "-o", str(tmp), pkg],
            module_dir,
            logs / f"go-build-{target}.log",
            _GO_BUILD_TIMEOUT,
        )
        if target == "driver":
            _hello_check(tmp)
        os.replace(tmp, binary)
        (base / f"{name}.json").write_text(
            json.dumps(
                {"target": target, "key": key, "go": version, "seconds": round(time.monotonic() - t0, 1)}
            )
        )
    return binary


def _scratch_log(name: str) -> Path:
    return cache_root() / "logs" / f"{name}.log"


def driver_command() -> str:
    """The ``exec:`` command of the Go driver (built if needed)."""
    return shlex.quote(str(build("driver")))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from modeld_contract.strict import is_strict

    ap = argparse.ArgumentParser(prog="python -m modeld_contract.drivers.gobuild")
    ap.add_argument("targets", nargs="*", default=list(TARGETS), help=f"any of {', '.join(TARGETS)}")
    ap.add_argument(
        "--or-skip",
        action="store_true",
        help="outside strict mode (CI / MODELD_STRICT unset) a failed build prints its message and exits 0, "
        "so the tests that need it skip with that message; under strict mode it exits 1",
    )
    ns = ap.parse_args(argv)
    try:
        for t in ns.targets:
            print(f"{t}: {build(t)}")
    except GoBuildError as err:
        print(err, file=sys.stderr)
        if ns.or_skip and not is_strict():
            print("not strict mode: the tests that need the Go build skip with this reason", file=sys.stderr)
            return 0
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
