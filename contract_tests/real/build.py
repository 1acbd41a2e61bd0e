"""Reproducible builds of the real modeld daemon (``github.com/contenox/runtime`` v0.36.0, ``cmd/modeld``).

Two backends, as ``shared/notes/engines.md`` measured them:

- ``none``: ``CGO_ENABLED=0 go build`` from our tiny Go module (``gomod/``), which pins the runtime and keeps
  the daemon's dependencies in its checked-in go.sum (``go install …@v0.36.0`` is refused by the proxy).
- ``llama``: llama.cpp's shared libraries are built with cmake from the ``vendor/llama.cpp`` tree of the
  ``llama-cpp-python==0.3.33`` sdist (downloaded through pip, the package registry's own client), then the
  daemon is built with ``-tags "llamanode llamacpp_direct"`` and cgo, linked with an rpath to those libraries.

Everything is cached under ``$XDG_CACHE_HOME/modeld-contract/real`` (``~/.cache/…`` without it), keyed by the
daemon version, the backend, the Go version and every flag that changes the output; a second call finds the
result and returns at once. Each step logs to ``logs/`` there; a failing step raises :class:`BuildError`
naming the step, the log tail and how to retry, which tests turn into a skip (:meth:`BuildError.skip_reason`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "BACKENDS",
    "LLAMA_CPP_PYTHON_VERSION",
    "RUNTIME_MODULE",
    "RUNTIME_VERSION",
    "BuildError",
    "BuildResult",
    "build",
    "cache_root",
]

Backend = Literal["none", "llama"]
BACKENDS: Final[tuple[Backend, ...]] = ("none", "llama")

RUNTIME_MODULE: Final = "github.com/contenox/runtime"
RUNTIME_VERSION: Final = "v0.36.0"
DAEMON_PACKAGE: Final = f"{RUNTIME_MODULE}/cmd/modeld"
GOMOD_DIR: Final = Path(__file__).resolve().parent / "gomod"

LLAMA_CPP_PYTHON_VERSION: Final = "0.3.33"
LLAMA_TAGS: Final = "llamanode llamacpp_direct"
# The measured recipe (engines.md). GGML_NATIVE=OFF keeps a cached build portable between machines.
LLAMA_CMAKE_ARGS: Final[tuple[str, ...]] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
LLAMA_LIBS: Final[tuple[str, ...]] = ("libllama-common.so", "libllama.so", "libggml.so", "libggml-base.so")
LOG_TAIL_LINES: Final = 40

Progress = Callable[[str], None]


def _stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    """A build step failed. ``step`` names it, ``log_tail`` is the end of its output, ``retry`` says how."""

    def __init__(
        self,
        backend: str,
        step: str,
        summary: str,
        log_tail: str = "",
        log_file: Path | None = None,
        retry: str = "",
    ) -> None:
        self.backend = backend
        self.step = step
        self.summary = summary
        self.log_tail = log_tail
        self.log_file = log_file
        self.retry = retry or f"fix the cause, then: python -m modeld_contract.real build --backend {backend}"
        text = f"building the real modeld ({backend}) failed at step {step!r}: {summary}"
        if log_file is not None:
            text += f"\nlog: {log_file}"
        if log_tail:
            text += f"\n--- log tail ---\n{log_tail}"
        text += f"\nretry: {self.retry}"
        super().__init__(text)

    def skip_reason(self) -> str:
        """One paragraph for ``pytest.skip``: the step, its last output line, how to retry."""
        last = next((ln for ln in reversed(self.log_tail.splitlines()) if ln.strip()), "")
        reason = f"real modeld ({self.backend}) not buildable: step {self.step!r} failed: {self.summary}"
        if last and last not in self.summary:
            reason += f" [{last.strip()[:300]}]"
        return reason + f"; retry: {self.retry}"


@dataclass(frozen=True)
class BuildResult:
    """A built daemon: its binary, the llama.cpp library folder it links (llama only), how it was had."""

    backend: str
    binary: Path
    key: str
    cached: bool
    seconds: float
    version_output: str
    lib_dir: Path | None = None
    steps: tuple[tuple[str, float], ...] = ()


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/modeld-contract/real`` (``~/.cache/modeld-contract/real`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modeld-contract" / "real"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


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


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class _Builder:
    def __init__(
        self, backend: Backend, root: Path, progress: Progress, env: Mapping[str, str] | None
    ) -> None:
        self.backend = backend
        self.root = root
        self.progress = progress
        self.env = dict(os.environ if env is None else env)
        self.logs = root / "logs"
        self.steps: list[tuple[str, float]] = []

    def fail(
        self, step: str, summary: str, log_tail: str = "", log_file: Path | None = None, retry: str = ""
    ) -> BuildError:
        return BuildError(self.backend, step, summary, log_tail, log_file, retry)

    def run(
        self,
        step: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        retry: str = "",
        timeout: float = 3600,
    ) -> str:
        """Run one step, logging to ``logs/<step>.log``; returns its output or raises :class:`BuildError`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_file = self.logs / f"{self.backend}-{step}.log"
        t0 = time.monotonic()
        self.progress(f"[modeld build] {self.backend}: {step} ...")
        header = f"$ {' '.join(argv)}\n(cwd {cwd or os.getcwd()})\n"
        with open(log_file, "w", encoding="utf-8") as log:
            log.write(header)
            log.flush()
            try:
                proc = subprocess.run(
                    list(argv),
                    cwd=cwd,
                    env=dict(env if env is not None else self.env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
            except FileNotFoundError as exc:
                raise self.fail(step, f"{argv[0]!r} not found ({exc})", "", log_file, retry) from None
            except subprocess.TimeoutExpired:
                raise self.fail(
                    step,
                    f"timed out after {timeout:.0f} s",
                    _tail(log_file.read_text("utf-8", "replace")),
                    log_file,
                    retry,
                ) from None
        out = log_file.read_text("utf-8", "replace")[len(header) :]
        if proc.returncode != 0:
            raise self.fail(
                step,
                f"exit status {proc.returncode} from {' '.join(argv[:3])} …",
                _tail(out),
                log_file,
                retry,
            )
        took = time.monotonic() - t0
        self.steps.append((step, took))
        self.progress(f"[modeld build] {self.backend}: {step} ok ({took:.1f} s)")
        return out

    # -- tools ---------------------------------------------------------------------------------------

    def which(self, step: str, tool: str, hint: str) -> str:
        found = shutil.which(tool, path=self.env.get("PATH"))
        if found is None:
            raise self.fail(
                step,
                f"{tool!r} is not on PATH",
                retry=f"{hint}, then: python -m modeld_contract.real build --backend {self.backend}",
            )
        return found

    def go_facts(self) -> dict[str, str]:
        go = self.which(
            "go-toolchain", "go", "install a Go toolchain >= 1.25 (https://go.dev/dl) and put it on PATH"
        )
        out = self.run("go-toolchain", [go, "env", "-json", "GOVERSION", "GOOS", "GOARCH", "GOMODCACHE"])
        try:
            facts: dict[str, str] = json.loads(out[out.index("{") :])
        except ValueError:
            raise self.fail("go-toolchain", "`go env -json` printed no JSON", _tail(out)) from None
        facts["go"] = go
        return facts

    # -- the Go module -------------------------------------------------------------------------------

    def stage_module(self, where: Path) -> Path:
        """A copy of ``gomod/`` to build in (the package folder may be read-only)."""
        mod = where / "gomod"
        mod.mkdir(parents=True, exist_ok=True)
        for name in ("go.mod", "go.sum", "tools.go"):
            shutil.copyfile(GOMOD_DIR / name, mod / name)
        return mod

    def go_build(self, go: str, mod: Path, out: Path, env: Mapping[str, str], tags: str = "") -> None:
        registry_retry = (
            "check that the Go module proxy is reachable (go env GOPROXY) and that GOFLAGS has no "
            f"-mod=vendor, then: python -m modeld_contract.real build --backend {self.backend}"
        )
        self.run("go-mod-download", [go, "mod", "download"], cwd=mod, env=env, retry=registry_retry)
        argv = [go, "build", "-mod=readonly", "-trimpath", "-o", str(out)]
        if tags:
            argv += ["-tags", tags]
        self.run("go-build", [*argv, DAEMON_PACKAGE], cwd=mod, env=env, retry=registry_retry)

    def check_version(self, binary: Path) -> str:
        out = self.run("daemon-version", [str(binary), "version"])
        if f"backends: {self.backend}" not in out:
            raise self.fail(
                "daemon-version", f"`modeld version` does not list backends: {self.backend}", _tail(out)
            )
        return out.strip()


def _go_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = dict(base)
    env.setdefault("GOFLAGS", "")
    # The module proxy refuses version lists for this module; nothing here needs one.
    env["GOTOOLCHAIN"] = "local"
    env.update(extra)
    return env


def _module_digest() -> str:
    h = hashlib.sha256()
    for name in ("go.mod", "go.sum", "tools.go"):
        h.update((GOMOD_DIR / name).read_bytes())
    return h.hexdigest()[:12]


def _read_done(folder: Path) -> dict[str, object] | None:
    try:
        data = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _binary_of(folder: Path, backend: str) -> BuildResult | None:
    done = _read_done(folder)
    binary = folder / "modeld"
    if done is None or not binary.is_file() or not os.access(binary, os.X_OK):
        return None
    lib = done.get("lib_dir")
    if lib is not None and not all((Path(str(lib)) / name).exists() for name in LLAMA_LIBS):
        return None
    return BuildResult(
        backend=backend,
        binary=binary,
        key=folder.name,
        cached=True,
        seconds=0.0,
        version_output=str(done.get("version_output", "")),
        lib_dir=None if lib is None else Path(str(lib)),
        steps=_steps(done.get("steps")),
    )


def _steps(value: object) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, list):
        return ()
    return tuple((str(s[0]), float(s[1])) for s in value if isinstance(s, list) and len(s) == 2)


# -- llama.cpp -----------------------------------------------------------------------------------------


def _extract_llama_tree(b: _Builder, sdist: Path, dest: Path) -> Path:
    """Unpack ``<sdist>/vendor/llama.cpp`` into ``dest`` (returns the llama.cpp folder)."""
    t0 = time.monotonic()
    b.progress(f"[modeld build] {b.backend}: llama-cpp-extract ...")
    try:
        with tarfile.open(sdist) as tar:
            # <top>/vendor/llama.cpp/… only (not <top>/.git/modules/vendor/llama.cpp/…)
            members = [m for m in tar.getmembers() if m.name.split("/")[1:3] == ["vendor", "llama.cpp"]]
            if not members:
                raise b.fail("llama-cpp-extract", f"{sdist.name} holds no vendor/llama.cpp tree")
            top = members[0].name.split("/", 1)[0]
            tar.extractall(dest, members=members, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise b.fail("llama-cpp-extract", f"cannot unpack {sdist}: {exc}") from None
    took = time.monotonic() - t0
    b.steps.append(("llama-cpp-extract", took))
    b.progress(f"[modeld build] {b.backend}: llama-cpp-extract ok ({took:.1f} s)")
    return dest / top / "vendor" / "llama.cpp"


def _llama_cpp_python_sdist(b: _Builder, dl: Path) -> Path:
    """The ``llama-cpp-python`` sdist, downloaded once by pip (the package registry's own client)."""
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    with _locked(dl.parent / "sdist.lock"):
        if (dl / name).is_file():
            b.progress(f"[modeld build] {b.backend}: llama-cpp-python sdist cached ({dl / name})")
            return dl / name
        retry = (
            "check that PyPI is reachable for pip (pip config list) — the sdist comes only through the "
            f"package registry — then: python -m modeld_contract.real build --backend {b.backend}"
        )
        with tempfile.TemporaryDirectory(dir=dl.parent, prefix=".sdist-") as tmp:
            b.run(
                "llama-cpp-python-sdist",
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "-d",
                    tmp,
                    f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
                ],
                retry=retry,
            )
            got = Path(tmp) / name
            if not got.is_file():
                raise b.fail("llama-cpp-python-sdist", f"pip left no {name} in {tmp}", retry=retry)
            dl.mkdir(parents=True, exist_ok=True)
            os.replace(got, dl / name)
        return dl / name


def _llama_cpp(b: _Builder, root: Path) -> tuple[Path, Path, bool]:
    """Build (or find) llama.cpp's shared libraries; returns (source tree, install prefix, cached)."""
    for tool, hint in (
        ("cmake", "apt-get install cmake"),
        ("c++", "apt-get install g++"),
        ("cc", "apt-get install gcc"),
    ):
        b.which("llama-cpp-toolchain", tool, hint)
    generator = ["-G", "Ninja"] if shutil.which("ninja", path=b.env.get("PATH")) else []
    flags = _digest([LLAMA_CMAKE_ARGS, platform.machine(), bool(generator)])
    key = f"llama.cpp-lcp{LLAMA_CPP_PYTHON_VERSION}-{flags}"
    folder = root / key
    src_root, prefix, done_file = folder / "src", folder / "prefix", folder / "DONE"
    with _locked(root / f"{key}.lock"):
        if done_file.exists() and all((prefix / "lib" / n).exists() for n in LLAMA_LIBS):
            b.progress(f"[modeld build] {b.backend}: llama.cpp libraries cached ({folder})")
            trees = sorted(src_root.glob("*/vendor/llama.cpp"))
            if trees:
                return trees[0], prefix, True
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        sdist = _llama_cpp_python_sdist(b, root / "sdist")
        src = _extract_llama_tree(b, sdist, src_root)
        build_dir = folder / "build"
        b.run(
            "llama-cpp-configure",
            [
                "cmake",
                "-S",
                str(src),
                "-B",
                str(build_dir),
                *generator,
                *LLAMA_CMAKE_ARGS,
                f"-DCMAKE_INSTALL_PREFIX={prefix}",
                "-DCMAKE_INSTALL_LIBDIR=lib",
            ],
        )
        jobs = str(max(1, os.cpu_count() or 1))
        b.run("llama-cpp-compile", ["cmake", "--build", str(build_dir), "-j", jobs])
        b.run("llama-cpp-install", ["cmake", "--install", str(build_dir)])
        missing = [n for n in LLAMA_LIBS if not (prefix / "lib" / n).exists()]
        if missing:
            raise b.fail("llama-cpp-install", f"libraries missing after install: {missing}")
        shutil.rmtree(build_dir, ignore_errors=True)
        done_file.write_text(json.dumps({"steps": b.steps}))
        return src, prefix, False


# -- the entry point -----------------------------------------------------------------------------------


def build(
    backend: str,
    *,
    root: Path | None = None,
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    force: bool = False,
) -> BuildResult:
    """Build (or find in the cache) the real modeld for ``backend``; raises :class:`BuildError`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    bk: Backend = "none" if backend == "none" else "llama"
    root = cache_root() if root is None else root
    b = _Builder(bk, root, progress or _stderr_progress, env)
    t0 = time.monotonic()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise b.fail(
            "cache-dir",
            f"cannot create {root}: {exc}",
            retry="set XDG_CACHE_HOME to a writable folder and run the build again",
        ) from None
    facts = b.go_facts()
    go = facts["go"]
    flags: dict[str, object] = {
        "runtime": RUNTIME_VERSION,
        "backend": bk,
        "go": facts.get("GOVERSION"),
        "goos": facts.get("GOOS"),
        "goarch": facts.get("GOARCH"),
        "module": _module_digest(),
        "trimpath": True,
    }
    if bk == "llama":
        flags.update(
            {
                "tags": LLAMA_TAGS,
                "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
                "cmake": list(LLAMA_CMAKE_ARGS),
            }
        )
    key = f"modeld-{RUNTIME_VERSION}-{bk}-{facts.get('GOVERSION')}-{_digest(flags)}"
    folder = root / key
    with _locked(root / f"{key}.lock"):
        if not force:
            found = _binary_of(folder, bk)
            if found is not None:
                took = time.monotonic() - t0
                b.progress(f"[modeld build] {bk}: cached {found.binary} ({took:.2f} s)")
                return BuildResult(**{**found.__dict__, "seconds": took})
        lib_dir: Path | None = None
        if bk == "none":
            go_env = _go_env(b.env, CGO_ENABLED="0")
        else:
            src, prefix, _ = _llama_cpp(b, root)
            lib_dir = prefix / "lib"
            go_env = _go_env(
                b.env,
                CGO_ENABLED="1",
                CGO_CPPFLAGS=f"-I{prefix}/include -I{src}/common -I{src}/vendor",
                CGO_LDFLAGS=(
                    f"-L{lib_dir} -Wl,--disable-new-dtags -Wl,-rpath,{lib_dir} "
                    + " ".join(f"-l:{n}" for n in LLAMA_LIBS)
                    + " -lstdc++ -lm -ldl -lpthread"
                ),
            )
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{key}.") as tmp:
            work = Path(tmp)
            mod = b.stage_module(work)
            out = work / "modeld"
            b.go_build(go, mod, out, go_env, LLAMA_TAGS if bk == "llama" else "")
            version = b.check_version(out)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            os.replace(out, folder / "modeld")
        took = time.monotonic() - t0
        (folder / "build.json").write_text(
            json.dumps(
                {
                    "flags": flags,
                    "steps": b.steps,
                    "seconds": round(took, 1),
                    "version_output": version,
                    "lib_dir": None if lib_dir is None else str(lib_dir),
                },
                indent=2,
            )
        )
        b.progress(f"[modeld build] {bk}: built {folder / 'modeld'} in {took:.1f} s")
        return BuildResult(
            backend=bk,
            binary=folder / "modeld",
            key=key,
            cached=False,
            seconds=took,
            version_output=version,
            lib_dir=lib_dir,
            steps=tuple(b.steps),
        )
