"""Runtime-side modeld discovery: ``detect()`` (lease only, offline) and ``probe()`` (plus Health).

Reference: ``contract_tests/contract/lease-and-discovery.md`` §1.2, §7 and the Go source
``github.com/contenox/runtime@v0.36.0``: ``runtime/internal/modeldprobe/modeldprobe.go``
(``State``, ``Status.Err``, ``Detect``, ``Probe``, ``locate``, ``DefaultDataRoot``,
``fileExists``) and ``runtime/internal/modeldinstall/managed.go`` (``CurrentLauncherPath``,
``FindCompatibleInstall``), ``probe.go`` (``ProbeBinary``), ``index.go`` (``compareVersions``,
``parseVersion``), ``artifact.go`` (``Platform``, ``LauncherName``).

``detect`` never raises for any state of the lease file (missing, corrupt, truncated, empty,
wrong-typed, huge, a directory, unreadable): like Go, anything that does not parse is "no lease".
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import platform
import re
import stat as _stat
import subprocess
import sys
import time as _time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modeldconn import lease as _lease

__all__ = [
    "BINARY_ENV",
    "DATA_ROOT_ENV",
    "HealthAnswer",
    "HealthCheck",
    "NotInstalled",
    "NotRunning",
    "ProbeError",
    "ProbeState",
    "ProbeStatus",
    "Stale",
    "Unreachable",
    "compare_versions",
    "default_data_root",
    "default_health",
    "detect",
    "locate_binary",
    "probe",
]

BINARY_ENV = "CONTENOX_MODELD_BIN"
DATA_ROOT_ENV = "CONTENOX_DATA_ROOT"
BINARY_NAME = "modeld"
ENDPOINT_META_KEY = "endpoint"
BACKEND_META_KEY = "backend"
MIN_PROTOCOL = 1
PROTOCOL_VERSION = 1
VERSION_PROBE_TIMEOUT_S = 10.0
DEFAULT_PROBE_TIMEOUT_S = 5.0


class ProbeState(enum.StrEnum):
    NOT_INSTALLED = "not-installed"
    NOT_RUNNING = "not-running"
    STALE = "stale"
    RUNNING = "running"
    UNREACHABLE = "unreachable"


class ProbeError(Exception):
    """Base of the probe's typed errors (Go ``modeldprobe.Err*``)."""

    state: ProbeState
    default_message = ""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.default_message)


class NotInstalled(ProbeError):
    state = ProbeState.NOT_INSTALLED
    default_message = "modeld is not installed"


class NotRunning(ProbeError):
    state = ProbeState.NOT_RUNNING
    default_message = "modeld is not running"


class Stale(ProbeError):
    state = ProbeState.STALE
    default_message = "modeld owner is stale (the daemon may have crashed)"


class Unreachable(ProbeError):
    state = ProbeState.UNREACHABLE
    default_message = "modeld holds a lease but does not answer a health probe"


_ERRORS: dict[ProbeState, type[ProbeError]] = {
    ProbeState.NOT_INSTALLED: NotInstalled,
    ProbeState.NOT_RUNNING: NotRunning,
    ProbeState.STALE: Stale,
    ProbeState.UNREACHABLE: Unreachable,
}


@dataclass(frozen=True)
class ProbeStatus:
    """Go ``modeldprobe.Status`` plus ``reason`` (free-form diagnostics, not part of the contract)."""

    state: ProbeState
    binary: str = ""
    endpoint: str = ""
    instance: str = ""
    backend: str = ""
    reason: str = ""

    def err(self) -> ProbeError | None:
        """The typed error of this state (Go ``Status.Err``); ``None`` when running."""
        cls = _ERRORS.get(self.state)
        return cls() if cls is not None else None


@dataclass(frozen=True)
class HealthAnswer:
    """What the unfenced ``Health`` RPC answered."""

    instance_id: str
    ready: bool
    backend: str = ""


HealthCheck = Callable[[str, float], Awaitable[HealthAnswer]]


async def default_health(endpoint: str, timeout: float) -> HealthAnswer:
    """An unfenced ``Health`` on a fresh connection, closed afterwards (Go ``modeldprobe``
    ``grpcHealthCheck``). Looked up as a module attribute at call time, so tests can replace it.

    The gRPC transport is imported here, on first use: lease-only users (``detect()``, the
    simulator, which shares ``modeldconn.lease``) never load grpclib."""
    from modeldconn import transport

    r = await transport.health_check(endpoint, timeout)
    return HealthAnswer(r.instance_id, r.ready, r.backend)


# --- data root and binary location -----------------------------------------------------------


def default_data_root() -> str:
    """``$CONTENOX_DATA_ROOT`` if non-empty, else ``<home>/.contenox``, else ``.contenox``."""
    root = os.environ.get(DATA_ROOT_ENV, "")
    if root:
        return root
    home = _user_home()
    return os.path.join(home, ".contenox") if home else ".contenox"


def _user_home() -> str:
    # Go os.UserHomeDir: $HOME on Unix ($USERPROFILE on Windows); empty → error
    var = "USERPROFILE" if sys.platform == "win32" else "HOME"
    return os.environ.get(var, "")


def _goos() -> str:
    p = sys.platform
    if p.startswith("linux"):
        return "linux"
    if p == "win32":
        return "windows"
    if p.startswith("freebsd"):
        return "freebsd"
    return p


def _goarch() -> str:
    m = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "i386": "386",
        "i686": "386",
        "x86": "386",
    }.get(m, "arm" if m.startswith("arm") else m)


def _launcher_name(goos: str) -> str:
    return "modeld.cmd" if goos == "windows" else BINARY_NAME


def _file_exists(path: str) -> bool:
    """Go ``fileExists``: stat succeeds (following links) and it is not a directory."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return not _stat.S_ISDIR(st.st_mode)


_VERSION_PART = re.compile(r"[+-]?[0-9]+")


def _parse_version(v: str) -> tuple[list[int], str] | None:
    v = v.strip()
    v = v.removeprefix("v").strip()
    if not v:
        return None
    v = v.split("+", 1)[0]
    pre = ""
    if "-" in v:
        v, pre = v.split("-", 1)
    nums: list[int] = []
    for part in v.split("."):
        if not _VERSION_PART.fullmatch(part):
            return None
        n = int(part)
        if not -(1 << 63) <= n < (1 << 63):
            return None
        nums.append(n)
    return nums, pre


def compare_versions(a: str, b: str) -> int:
    """Go ``modeldinstall.compareVersions`` (numeric parts, release > pre-release, else string)."""
    pa, pb = _parse_version(a), _parse_version(b)
    if pa is not None and pb is not None:
        an, ap = pa
        bn, bp = pb
        for i in range(max(len(an), len(bn))):
            x = an[i] if i < len(an) else 0
            y = bn[i] if i < len(bn) else 0
            if x != y:
                return -1 if x < y else 1
        if ap == "" and bp != "":
            return 1
        if ap != "" and bp == "":
            return -1
        return (ap > bp) - (ap < bp)
    return (a > b) - (a < b)


VersionRunner = Callable[[str], "tuple[str, int] | None"]


def _run_version(launcher: str) -> tuple[str, int] | None:
    """``<launcher> version --json`` (10 s); (version, protocol) or None (Go ``ProbeBinary``)."""
    if not _file_exists(launcher):
        return None
    try:
        out = subprocess.run(
            [launcher, "version", "--json"],
            capture_output=True,
            timeout=VERSION_PROBE_TIMEOUT_S,
            check=True,
        ).stdout
        doc = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    version = doc.get("version")
    if version is None:
        version = ""
    protocol = doc.get("protocol")
    if not isinstance(version, str) or not version:
        return None
    if protocol is None:
        protocol = MIN_PROTOCOL  # binaries older than the field speak the first protocol
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        return None
    return version, protocol


def _current_launcher(data_root: str, goos: str) -> str | None:
    ptr = os.path.join(data_root, "modeld", "current")
    try:
        if os.path.islink(ptr):
            target = os.readlink(ptr)
            if not os.path.isabs(target):
                target = os.path.join(os.path.dirname(ptr), target)
        else:
            with open(ptr, "rb") as f:
                target = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not target:
        return None
    name = _launcher_name(goos)
    if os.path.basename(target) == name:
        return target
    return os.path.join(target, name)


def _compatible(launcher: str, run_version: VersionRunner) -> str | None:
    got = run_version(launcher)
    if got is None:
        return None
    version, protocol = got
    if not MIN_PROTOCOL <= protocol <= PROTOCOL_VERSION:
        return None
    return version


def _find_managed(data_root: str, run_version: VersionRunner) -> str:
    goos = _goos()
    platform_dir = f"{goos}-{_goarch()}"
    cur = _current_launcher(data_root, goos)
    if cur is not None and _compatible(cur, run_version) is not None:
        return cur
    root = os.path.join(data_root, "modeld")
    try:
        entries = list(os.scandir(root))
    except OSError:
        return ""
    candidates: list[tuple[str, str]] = []
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        if entry.name == ".staging":
            continue
        launcher = os.path.join(root, entry.name, platform_dir, _launcher_name(goos))
        if not _file_exists(launcher):
            continue
        version = _compatible(launcher, run_version)
        if version is not None:
            candidates.append((version, launcher))
    best: tuple[str, str] | None = None
    for cand in candidates:
        if best is None:
            best = cand
            continue
        c = compare_versions(cand[0], best[0])
        if c > 0 or (c == 0 and cand[1] > best[1]):
            best = cand
    return best[1] if best else ""


def _look_path(name: str) -> str:
    """Go ``exec.LookPath`` on Unix: first executable match; a relative match is an error (ErrDot)."""
    path_env = os.environ.get("PATH", "")
    for d in path_env.split(os.pathsep):
        if d == "":
            d = "."
        cand = os.path.join(d, name)
        try:
            st = os.stat(cand)
        except (OSError, ValueError):
            continue
        if _stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            continue
        if not os.path.isabs(cand):
            return ""
        return cand
    return ""


def locate_binary(data_root: str | None = None, *, run_version: VersionRunner | None = None) -> str:
    """Go ``Detector.locate``: the modeld binary path, or ``""``.

    1. ``CONTENOX_MODELD_BIN`` set: it if it exists and is not a directory, else ``""`` (PATH and
       managed installs are not consulted).  2. a protocol-compatible managed install under
       ``<data_root>/modeld`` (the ``current`` pointer first, then the highest version; each
       asked ``version --json`` by ``run_version``).  3. ``modeld`` on ``PATH``.
    Never raises.
    """
    root = data_root if data_root else default_data_root()
    override = os.environ.get(BINARY_ENV, "")
    if override:
        return override if _file_exists(override) else ""
    try:
        managed = _find_managed(root, run_version or _run_version)
    except Exception:  # discovery failure falls back to PATH, as in Go
        managed = ""
    if managed and _file_exists(managed):
        return managed
    try:
        return _look_path(BINARY_NAME)
    except Exception:
        return ""


Locator = Callable[[str], str]


def detect(
    data_root: str | None = None,
    *,
    now: _lease.Clock | None = None,
    locate: Locator | None = None,
) -> ProbeStatus:
    """Go ``Detector.Detect``: lease + binary only, no network.  Never raises.

    ``now`` returns wall-clock ns; ``locate`` maps a data root to a binary path (default
    :func:`locate_binary`).
    """
    root = data_root if data_root else default_data_root()
    path = _lease.lease_path(root)
    rec: _lease.LeaseRecord | None = None
    try:
        rec = _lease.inspect(path)
        why = ""
    except _lease.LeaseNotFound:
        why = f"no lease at {path}"
    except _lease.LeaseError as exc:
        why = f"lease unusable (treated as no lease): {exc}"
    except Exception as exc:  # defensive: detect must not raise
        why = f"lease unreadable (treated as no lease): {exc!r}"
    now_ns = (now or _time.time_ns)()
    live = rec is not None and _lease.live_for_probe(rec, now_ns)
    try:
        binary = (locate or locate_binary)(root)
    except Exception:
        binary = ""

    if rec is not None and live:
        exp = _lease.expires_at(rec)
        return ProbeStatus(
            ProbeState.RUNNING,
            binary=binary,
            endpoint=rec.meta.get(ENDPOINT_META_KEY, ""),
            instance=rec.instance_id,
            backend=rec.meta.get(BACKEND_META_KEY, ""),
            reason=f"live lease of instance {rec.instance_id} until {exp}",
        )
    if rec is not None:
        why = f"lease of instance {rec.instance_id} expired at {_lease.expires_at(rec)} (now >= expiry)"
    if not binary:
        return ProbeStatus(ProbeState.NOT_INSTALLED, reason=f"no modeld binary found; {why}")
    if rec is not None:
        return ProbeStatus(ProbeState.STALE, binary=binary, instance=rec.instance_id, reason=why)
    return ProbeStatus(ProbeState.NOT_RUNNING, binary=binary, reason=why)


async def probe(
    data_root: str | None = None,
    *,
    health: HealthCheck | None = None,
    timeout: float = DEFAULT_PROBE_TIMEOUT_S,
    now: _lease.Clock | None = None,
    locate: Locator | None = None,
) -> ProbeStatus:
    """Go ``Detector.Probe``: :func:`detect`, then — only when running — an unfenced Health check.

    Empty endpoint → unreachable without dialing.  Any exception from ``health`` (or exceeding
    ``timeout``), ``ready`` false, or a Health instance differing from a non-empty lease
    instance → unreachable.  ``health`` defaults to the module attribute :func:`default_health`
    looked up at call time.
    """
    st = detect(data_root, now=now, locate=locate)
    if st.state is not ProbeState.RUNNING:
        return st
    if not st.endpoint:
        return _unreachable(st, "lease advertises no endpoint")
    check = health if health is not None else default_health
    try:
        answer = await asyncio.wait_for(check(st.endpoint, timeout), timeout)
    except Exception as exc:
        return _unreachable(st, f"health check of {st.endpoint} failed: {exc!r}")
    if not answer.ready:
        return _unreachable(st, "modeld reports not ready")
    if st.instance and answer.instance_id != st.instance:
        return _unreachable(st, f"owner mismatch: lease={st.instance} serving={answer.instance_id}")
    return st


def _unreachable(st: ProbeStatus, reason: str) -> ProbeStatus:
    return ProbeStatus(
        ProbeState.UNREACHABLE,
        binary=st.binary,
        endpoint=st.endpoint,
        instance=st.instance,
        backend=st.backend,
        reason=reason,
    )
