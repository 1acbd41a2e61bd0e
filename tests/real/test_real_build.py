"""modeld_contract.real.build: the cached build, and its typed failure (without Go for the failure tests)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from modeld_contract.real.build import GOMOD_DIR, RUNTIME_VERSION, BuildError, BuildResult, build, cache_root
from modeld_contract.strict import unavailable


def test_build_error_names_the_step_the_log_tail_and_the_retry() -> None:
    err = BuildError(
        "llama",
        "llama-cpp-compile",
        "exit status 1 from cmake --build …",
        "line 1\nfatal: boom",
        Path("/x/logs/llama-llama-cpp-compile.log"),
    )
    text = str(err)
    assert "step 'llama-cpp-compile'" in text and "fatal: boom" in text and "/x/logs/" in text
    assert "retry: " in text and "python -m modeld_contract.real build --backend llama" in text
    reason = err.skip_reason()
    assert "real modeld (llama) not buildable" in reason and "llama-cpp-compile" in reason
    assert "fatal: boom" in reason and "retry:" in reason


def test_missing_go_toolchain_is_a_build_error_at_step_go_toolchain(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as info:
        build(
            "none",
            root=tmp_path,
            env={"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)},
            progress=lambda _: None,
        )
    assert info.value.step == "go-toolchain"
    assert "'go' is not on PATH" in str(info.value)
    assert "install a Go toolchain" in info.value.retry


def test_missing_cmake_for_llama_is_a_build_error(tmp_path: Path) -> None:
    go = Path(
        subprocess.run(["sh", "-c", "command -v go || true"], capture_output=True, text=True).stdout.strip()
    )
    if not go.name:
        unavailable("no Go toolchain on PATH (this test builds with it)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "go").symlink_to(go)
    with pytest.raises(BuildError) as info:
        build(
            "llama",
            root=tmp_path / "cache",
            env={"PATH": str(bindir), "HOME": str(tmp_path)},
            progress=lambda _: None,
        )
    assert info.value.step == "llama-cpp-toolchain" and "'cmake' is not on PATH" in str(info.value)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        build("openvino")


def test_cache_root_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "modeld-contract" / "real"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "modeld-contract" / "real"


def test_go_module_pins_the_runtime() -> None:
    gomod = (GOMOD_DIR / "go.mod").read_text()
    assert f"require github.com/contenox/runtime {RUNTIME_VERSION}" in gomod
    assert "github.com/contenox/runtime " + RUNTIME_VERSION in (GOMOD_DIR / "go.sum").read_text()
    tools = (GOMOD_DIR / "tools.go").read_text()
    assert tools.startswith("//go:build tools") and '_ "github.com/contenox/runtime/cmd/modeld"' in tools


def _check_built(res: BuildResult, backend: str) -> None:
    out = subprocess.run([str(res.binary), "version"], capture_output=True, text=True, timeout=30, check=True)
    assert f"backends: {backend}" in out.stdout
    again = build(backend, progress=lambda _: None)
    assert again.cached and again.binary == res.binary and again.seconds < 5.0


@pytest.mark.real_daemon("none")
def test_none_build_is_cached_and_serves_backend_none(modeld_none: BuildResult) -> None:
    _check_built(modeld_none, "none")
    assert modeld_none.lib_dir is None


@pytest.mark.real_daemon("llama")
def test_llama_build_is_cached_and_links_llama_cpp(modeld_llama: BuildResult) -> None:
    _check_built(modeld_llama, "llama")
    assert modeld_llama.lib_dir is not None and (modeld_llama.lib_dir / "libllama.so").exists()
    ldd = subprocess.run(["ldd", str(modeld_llama.binary)], capture_output=True, text=True, timeout=30).stdout
    assert "not found" not in ldd and str(modeld_llama.lib_dir) in ldd


@pytest.mark.real_daemon("none")
def test_cli_build_prints_the_binary_and_is_instant_when_cached(modeld_none: BuildResult) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "modeld_contract.real", "build", "--backend", "none"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert time.monotonic() - t0 < 10
    assert out.stdout.strip() == str(modeld_none.binary)
    assert "cached" in out.stderr
