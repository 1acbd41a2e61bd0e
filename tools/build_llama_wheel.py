#!/usr/bin/env python3
"""Build llama-cpp-python's wheel once per machine, cache it, and (optionally) install it.

llama-cpp-python ships only an sdist: compiling llama.cpp takes about 8 minutes on 2 cores. The
wheel is built once with portable flags (``GGML_NATIVE=OFF``: no host-specific CPU features, so a
cached wheel moves between machines of the same kind) and kept under

    ${MODELD_WHEEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/modeld-contract/wheels}/
        llama-cpp-python-<version>-<flags key>/

keyed by version and CMake flags. Later runs find it there and take a second.

    python tools/build_llama_wheel.py              # build if missing; print the wheel's path
    python tools/build_llama_wheel.py --install    # ... and pip-install it (with its dependencies)
    python tools/build_llama_wheel.py --check      # exit 1 if the cache has no wheel (never builds)
    python tools/build_llama_wheel.py --install --or-skip   # what the tox envs run (see below)

A failing step (``pip wheel``, ``pip install``) exits 1 with the step and the tail of its output, and
leaves that message in ``build-failed.txt`` next to the cached wheels, where the engine tests read it for
their skip or failure reason. ``--or-skip`` is for the tox envs: outside strict mode it prints the
message and exits 0 (the engine tests then skip with it); under strict mode (``CI=true``,
``MODELD_STRICT=1``: ``modeld_contract.strict``) the failure stands, so CI cannot pass without the engine.

Version 0.3.33 is pinned: its vendored llama.cpp tree is the one the recorded real daemon was built
with, so both tokenize and decode with one llama.cpp (see docs/engines.md).
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

VERSION = "0.3.33"
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
FAILURE_FILE = "build-failed.txt"
TAIL_LINES = 30


class WheelBuildError(Exception):
    """A step failed; ``str()`` names the step, its exit status and the tail of its output."""

    def __init__(self, step: str, summary: str, tail: str = "") -> None:
        self.step = step
        text = f"building the llama-cpp-python wheel failed at step {step!r}: {summary}"
        if tail:
            text += f"\n--- output tail ---\n{tail}"
        text += "\nretry: python tools/build_llama_wheel.py --install"
        super().__init__(text)


def cache_root() -> str:
    # the same cache home as the real-daemon builds (contract_tests/real/build.py): $XDG_CACHE_HOME
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("MODELD_WHEEL_CACHE") or os.path.join(base, "modeld-contract", "wheels")


def cache_dir(version: str = VERSION, cmake_args: str = CMAKE_ARGS) -> str:
    key = hashlib.sha256(" ".join(cmake_args.split()).encode()).hexdigest()[:12]
    return os.path.join(cache_root(), f"llama-cpp-python-{version}-{key}")


def cached_wheel(version: str = VERSION, cmake_args: str = CMAKE_ARGS) -> str | None:
    found = sorted(glob.glob(os.path.join(cache_dir(version, cmake_args), "llama_cpp_python-*.whl")))
    return found[-1] if found else None


def failure_file(version: str = VERSION, cmake_args: str = CMAKE_ARGS) -> str:
    return os.path.join(cache_dir(version, cmake_args), FAILURE_FILE)


def last_failure(version: str = VERSION, cmake_args: str = CMAKE_ARGS) -> str:
    """The message of the last failed build or install on this machine ("" when the last one worked)."""
    try:
        with open(failure_file(version, cmake_args), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _run(step: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
    """One step, its output passed on to stderr; :class:`WheelBuildError` with the tail if it fails."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise WheelBuildError(step, f"could not run {cmd[0]}: {exc}") from None
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace")
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    rc = proc.wait()
    if rc != 0:
        raise WheelBuildError(step, f"{' '.join(cmd[:4])} … exited with {rc}", "\n".join(tail))


def build(version: str, cmake_args: str, jobs: int) -> str:
    d = cache_dir(version, cmake_args)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per machine at a time
        have = cached_wheel(version, cmake_args)
        if have:
            return have
        env = dict(os.environ, CMAKE_ARGS=cmake_args, CMAKE_BUILD_PARALLEL_LEVEL=str(jobs))
        print(
            f"build_llama_wheel: compiling llama-cpp-python=={version} ({cmake_args}); this takes "
            "about 8 minutes on 2 cores",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="llama-wheel-") as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                f"llama-cpp-python=={version}",
                "-w",
                tmp,
            ]
            _run("pip wheel", cmd, env)
            wheels = glob.glob(os.path.join(tmp, "llama_cpp_python-*.whl"))
            if not wheels:
                raise WheelBuildError("pip wheel", f"pip left no llama_cpp_python wheel in {tmp}")
            for w in wheels:
                shutil.move(w, os.path.join(d, os.path.basename(w)))
        print(f"build_llama_wheel: built in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        got = cached_wheel(version, cmake_args)
        assert got is not None
        return got


def install(wheel: str) -> None:
    # The wheel's dependencies (numpy, typing-extensions, diskcache, jinja2) come from the index.
    _run(
        "pip install", [sys.executable, "-m", "pip", "install", "--find-links", os.path.dirname(wheel), wheel]
    )


def _strict() -> bool:
    try:
        from modeld_contract.strict import is_strict
    except ImportError:  # run outside the project's environment: the environment variables alone decide
        flag = os.environ.get("MODELD_STRICT") or os.environ.get("CI") or ""
        return flag.strip().lower() not in ("", "0", "false", "no", "off")
    return is_strict()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--version", default=VERSION)
    p.add_argument("--cmake-args", default=CMAKE_ARGS)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--install", action="store_true", help="pip-install the wheel into this interpreter")
    p.add_argument("--check", action="store_true", help="only report whether the wheel is cached")
    p.add_argument(
        "--or-skip",
        action="store_true",
        help="outside strict mode (CI / MODELD_STRICT) a failure prints its message and exits 0, so the "
        "engine tests skip with it; under strict mode it exits 1",
    )
    a = p.parse_args(argv)
    have = cached_wheel(a.version, a.cmake_args)
    if a.check:
        print(have or f"no cached wheel under {cache_dir(a.version, a.cmake_args)}")
        return 0 if have else 1
    record = failure_file(a.version, a.cmake_args)
    try:
        wheel = have or build(a.version, a.cmake_args, a.jobs)
        print(wheel)
        if a.install:
            install(wheel)
    except WheelBuildError as exc:
        os.makedirs(os.path.dirname(record), exist_ok=True)
        with open(record, "w", encoding="utf-8") as fh:
            fh.write(f"{exc}\n")
        print(f"build_llama_wheel: {exc}", file=sys.stderr)
        if a.or_skip and not _strict():
            print(
                "build_llama_wheel: not strict mode (CI / MODELD_STRICT unset): the llama engine tests "
                "will skip with this reason",
                file=sys.stderr,
            )
            return 0
        return 1
    if os.path.exists(record):
        os.remove(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
