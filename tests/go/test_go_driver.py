"""The Go driver's plumbing: build-on-demand and cache (``modeld_contract.drivers.gobuild``), the clear
skip reason without Go or with a failing build, ``--modeld-connector=go`` resolution, and the
driver's own protocol behaviour (hello, reset by re-exec, typed errors) — the contract suite itself
is the tox env ``go``. The tests that need the built driver skip with the failed build step when it
cannot be built, and fail with it under strict mode (``CI=true``, ``MODELD_STRICT=1``)."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from modeld_contract.connectors import loader
from modeld_contract.connectors.protocol import ConnectorError
from modeld_contract.connectors.subprocess import DriverProcess, SubprocessConnector
from modeld_contract.drivers import gobuild
from modeld_contract.strict import is_strict, unavailable


def _built_driver() -> Path:
    """The built driver; without it a skip with the failed step (a failure with its log under strict mode)."""
    try:
        return gobuild.build("driver")
    except gobuild.GoBuildError as err:
        unavailable(str(err) if is_strict() else err.skip_reason())


# ---------------------------------------------------------------------------- without Go


def test_no_go_on_path_is_a_clear_skip_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(gobuild.GoBuildError) as ei:
        gobuild.build("driver", root=tmp_path / "cache")
    assert ei.value.step == "locate go"
    reason = ei.value.skip_reason()
    assert reason.startswith("Go driver unavailable: step 'locate go' failed")
    assert "`go` is not on PATH" in reason


def test_the_go_spec_turns_a_build_failure_into_connector_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert loader.is_subprocess_spec("go")
    with pytest.raises(loader.ConnectorUnavailable) as ei:
        loader.make_factory("go")
    assert "locate go" in ei.value.reason
    assert loader.resolve_spec("modeldconn") == "modeldconn"  # other specs untouched


def test_the_cache_key_starts_with_the_go_sum_hash(tmp_path: Path) -> None:
    mod = tmp_path / "go"
    shutil.copytree(gobuild.MODULE_DIR, mod)
    key = gobuild.build_key("go version go1.26 linux/amd64", mod)
    assert key.startswith(hashlib.sha256((mod / "go.sum").read_bytes()).hexdigest()[:16] + "-")
    assert gobuild.build_key("go version go1.26 linux/amd64", mod) == key
    assert gobuild.build_key("go version go1.27 linux/amd64", mod) != key
    (mod / "main.go").write_text((mod / "main.go").read_text() + "\n// changed\n")
    changed_source = gobuild.build_key("go version go1.26 linux/amd64", mod)
    assert changed_source != key and changed_source.split("-")[0] == key.split("-")[0]
    with (mod / "go.sum").open("a") as f:
        f.write("example.com/x v1.0.0 h1:AAAA=\n")
    assert gobuild.build_key("go version go1.26 linux/amd64", mod).split("-")[0] != key.split("-")[0]


def test_the_module_pins_the_runtime() -> None:
    gomod = (gobuild.MODULE_DIR / "go.mod").read_text()
    assert "github.com/contenox/runtime v0.36.0" in gomod
    gosum = (gobuild.MODULE_DIR / "go.sum").read_text()
    assert "github.com/contenox/runtime v0.36.0 h1:" in gosum


# ---------------------------------------------------------------------------- with Go


def test_a_failing_build_names_its_step(tmp_path: Path) -> None:
    _built_driver()  # skips without Go
    mod = tmp_path / "go"
    shutil.copytree(gobuild.MODULE_DIR, mod)
    (mod / "main.go").write_text((mod / "main.go").read_text() + "\nthis is not Go\n")
    with pytest.raises(gobuild.GoBuildError) as ei:
        gobuild.build("driver", module_dir=mod, root=tmp_path / "cache")
    assert ei.value.step == "go build driver"
    assert ei.value.log_file is not None and ei.value.log_file.is_file()
    assert "step 'go build driver' failed" in ei.value.skip_reason()


def test_the_cached_binary_is_reused() -> None:
    first = _built_driver()
    t0 = time.monotonic()
    again = gobuild.build("driver")
    assert again == first
    assert time.monotonic() - t0 < 10.0  # `go version` + hashing, no build


@pytest.fixture
def driver() -> Iterator[DriverProcess]:
    _built_driver()  # skips without Go
    proc = DriverProcess(gobuild.driver_command())
    yield proc
    proc.shutdown()


def test_hello_names_the_real_connector(driver: DriverProcess) -> None:
    assert driver.hello["protocol"] == 1
    assert "runtime/modelrepo/modeldconn@v0.36.0" in driver.name


def test_reset_re_executes_the_driver_in_place(driver: DriverProcess, tmp_path: Path) -> None:
    """``reset`` = a fresh Go connector: the same process (pid, pipes) re-executed, so modeldconn's
    package state (cached connection, endpoint cache, serveable memory) starts afresh, and the
    environment set by ``configure`` is the original one again."""
    pid = driver.proc.pid
    conn = SubprocessConnector(driver.command, driver)
    root = tmp_path / "root"
    root.mkdir()
    conn.configure(str(root), {"CONTENOX_MODELD_BIN": str(tmp_path / "missing")})
    assert conn.probe(timeout=2.0)["state"] == "not-installed"
    conn.close()  # reset
    assert driver.alive and driver.proc.pid == pid
    conn.configure(str(root), {"CONTENOX_MODELD_BIN": gobuild.driver_command()})
    assert conn.probe(timeout=2.0)["state"] == "not-running"


def test_errors_are_typed_with_the_probe_sentinels(driver: DriverProcess, tmp_path: Path) -> None:
    conn = SubprocessConnector(driver.command, driver)
    root = tmp_path / "root"
    root.mkdir()
    conn.configure(str(root), {"CONTENOX_MODELD_BIN": str(tmp_path / "missing")})
    with pytest.raises(ConnectorError) as ei:
        conn.status(timeout=2.0)
    assert ei.value.kind == "not-installed"
    assert ei.value.message == "modeld is not installed"  # Go's text
    with pytest.raises(ConnectorError) as ei:
        conn.ensure_prefix("nope", {"Text": "x"})
    assert ei.value.kind == "error" and "unknown session" in ei.value.message
