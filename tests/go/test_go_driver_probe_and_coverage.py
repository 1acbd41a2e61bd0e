"""The Go driver's probe, optional ops and coverage counters (issue 24):

- ``probe`` answers the Go connector's own probe (``modeldprobe.Detector.Probe``, reached by symbol
  name; ``go test`` in the driver module pins the mirrored result type to the connector's answers);
- the hello lists the optional ops, and an op the driver does not know is ``unsupported_operation``;
- a ``-cover`` build writes the counters of every process image: before each ``reset`` re-exec and at
  ``shutdown`` (``bench/gocoverage.py`` depends on it).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from modeld_contract.clauses._util import binary_env, lease_bytes, write_lease
from modeld_contract.connectors.extensions import PUSH_OPS, TARGET_OPS
from modeld_contract.connectors.protocol import OperationUnsupported
from modeld_contract.connectors.subprocess import DriverProcess, SubprocessConnector
from modeld_contract.drivers import gobuild
from modeld_contract.strict import unavailable
from modeld_contract.targets import HealthStub

RUNTIME = "github.com/contenox/runtime"
COVERPKG = ",".join(
    [
        f"{RUNTIME}/runtime/modelrepo/modeldconn",
        f"{RUNTIME}/runtime/transport/grpc",
        f"{RUNTIME}/runtime/internal/modeldprobe",
        f"{RUNTIME}/liblease",
        "github.com/modeld-contract/godriver",
    ]
)


def _go() -> str:
    try:
        gobuild.build("driver")
        return gobuild.go_binary()
    except gobuild.GoBuildError as err:
        unavailable(err.skip_reason())


def _go_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=readonly").strip()
    env.update(extra)
    return env


@pytest.fixture
def driver() -> Iterator[DriverProcess]:
    _go()
    proc = DriverProcess(gobuild.driver_command())
    yield proc
    proc.shutdown()


def test_go_test_pins_the_probe_mirror() -> None:
    """The driver module's own tests: the linked probe answers what modeldconn's calls answer, field
    for field, in all five discovery states."""
    go = _go()
    proc = subprocess.run(
        [go, "test", "-count=1", "."],
        cwd=gobuild.MODULE_DIR,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("ok"), proc.stdout


def test_hello_lists_the_optional_ops(driver: DriverProcess) -> None:
    ops = set(driver.hello.get("ops") or [])
    assert set(PUSH_OPS) | set(TARGET_OPS) <= ops, sorted(ops)
    assert {"probe", "decode", "reset", "shutdown"} <= ops
    with pytest.raises(OperationUnsupported):
        driver.request("no_such_op", {}, 10.0)


def test_probe_answers_the_connectors_own_probe(driver: DriverProcess, tmp_path: Path) -> None:
    """Running: the endpoint, instance and backend of the probe; unreachable (another instance answers
    Health): still the lease's instance and endpoint, as modeldprobe's Status has them."""
    conn = SubprocessConnector(driver.command, driver)
    root = str(tmp_path / "root")
    iid = str(uuid.uuid4())
    stub = HealthStub(iid, backend="openvino").start()
    try:
        write_lease(root, lease_bytes(instance_id=iid, endpoint=stub.endpoint, backend="openvino"))
        conn.configure(root, binary_env(root, True))
        assert conn.probe(timeout=5.0) == {
            "state": "running",
            "endpoint": stub.endpoint,
            "instance": iid,
            "backend": "openvino",
        }
        other = str(uuid.uuid4())
        write_lease(root, lease_bytes(instance_id=other, endpoint=stub.endpoint, backend="openvino"))
        assert conn.probe(timeout=5.0) == {
            "state": "unreachable",
            "endpoint": stub.endpoint,
            "instance": other,
            "backend": "openvino",
        }
    finally:
        stub.stop()


def test_every_process_image_writes_its_coverage_counters(tmp_path: Path) -> None:
    """A cover build: hello, two resets (two re-execs), shutdown → three images, three counter files."""
    go = _go()
    binary = tmp_path / "driver-cover"
    build = subprocess.run(
        [go, "build", "-cover", "-covermode=atomic", f"-coverpkg={COVERPKG}", "-o", str(binary), "."],
        cwd=gobuild.MODULE_DIR,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    covdir = tmp_path / "cov"
    covdir.mkdir()
    proc = DriverProcess(str(binary), env={"GOCOVERDIR": str(covdir)})
    try:
        for op in ("available", "reset", "available", "reset", "available"):
            proc.request(op, {}, 30.0)  # one request at a time, as the protocol has it
    finally:
        proc.shutdown()
    assert proc.proc.returncode == 0
    counters = sorted(covdir.glob("covcounters.*"))
    assert len(counters) == 3, f"want one counter file per process image, got {[c.name for c in counters]}"
    assert len(list(covdir.glob("covmeta.*"))) == 1
