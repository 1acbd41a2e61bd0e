"""C-LEASE: discovery from the lease file alone (offline): available / backend / the probe's state.

The offline state (not-installed, not-running, stale) is read where every connector shows it: the
typed error a lease-resolved call fails with (session-semantics.md §7: every lease-resolved call
probes first and fails with the probe's error). A connector's own ``probe`` is held to the same states
by C-PROBE-11.

Sources: edge-cases.md §B (modeldprobe Detect), §C (Backend/Available/ServeableBackend),
lease-and-discovery.md §2, §3, §4.6, §7.1, §7.2, §8."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modeld_contract.clauses._util import (
    NS,
    binary_env,
    counting_listener,
    goos_goarch,
    lease_bytes,
    raises_kind,
    write_lease,
)
from modeld_contract.oracles.lease import expect, format_rfc3339, parse_rfc3339_ns
from modeld_contract.profiles import suite_settings
from modeld_contract.targets import closed_port

clause = pytest.mark.clause


def _state(conn: Any) -> str:
    """The offline state as a lease-resolved call reports it (its typed error)."""
    return raises_kind(lambda: conn.status(timeout=2.0)).kind


@clause("C-LEASE-01", source="edge-cases.md:26")
def test_C_LEASE_01_no_binary_no_lease_is_not_installed(modeld_connector: Any, modeld_data_root: str) -> None:
    """No binary and no lease → not-installed; available false, backend empty."""
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, False))
    assert _state(modeld_connector) == "not-installed"
    assert modeld_connector.available() is False
    assert modeld_connector.backend() == ""


@clause("C-LEASE-02", source="edge-cases.md:27")
def test_C_LEASE_02_binary_no_lease_is_not_running(modeld_connector: Any, modeld_data_root: str) -> None:
    """A located binary and no lease → not-running."""
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert _state(modeld_connector) == "not-running"
    assert modeld_connector.available() is False


@clause("C-LEASE-03", source="edge-cases.md:28")
def test_C_LEASE_03_lapsed_lease_is_stale(modeld_connector: Any, modeld_data_root: str) -> None:
    """A lease observed an hour after it lapsed → stale; available false, backend empty."""
    write_lease(modeld_data_root, lease_bytes(renewed_at_ns=time.time_ns() - 3600 * NS))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert _state(modeld_connector) == "stale"
    assert modeld_connector.available() is False
    assert modeld_connector.backend() == ""


@clause("C-LEASE-04", source="edge-cases.md:29,39,51")
def test_C_LEASE_04_fresh_lease_is_running(modeld_connector: Any, modeld_data_root: str) -> None:
    """A fresh lease → running: available and backend from meta without touching the network; the
    endpoint dialed is meta.endpoint (a lease-resolved call connects there)."""
    with counting_listener() as ep:
        write_lease(modeld_data_root, lease_bytes(endpoint=ep.endpoint, backend="openvino"))
        modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
        assert modeld_connector.available() is True
        assert modeld_connector.backend() == "openvino"
        assert modeld_connector.serveable_backend() == "openvino"
        assert ep.accepted == 0, "available/backend must read the lease only (offline), yet it was dialed"
        err = raises_kind(lambda: modeld_connector.status(timeout=1.0))
        assert err.kind in ("unreachable", "deadline_exceeded"), err
        assert ep.wait_accepted(1, within=2.0) >= 1, f"status never dialed meta.endpoint {ep.endpoint}"


@clause("C-LEASE-05", source="edge-cases.md:30")
def test_C_LEASE_05_running_precedes_binary(modeld_connector: Any, modeld_data_root: str) -> None:
    """A fresh lease with no locatable binary is still available."""
    write_lease(modeld_data_root, lease_bytes(backend="llama"))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, False))
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == "llama"


@clause("C-LEASE-06", source="edge-cases.md:31")
def test_C_LEASE_06_missing_override_hides_path(modeld_connector: Any, modeld_data_root: str) -> None:
    """CONTENOX_MODELD_BIN naming a missing file → not-installed even with a modeld on PATH."""
    bindir = os.path.join(modeld_data_root, "pathbin")
    os.makedirs(bindir)
    exe = os.path.join(bindir, "modeld")
    with open(exe, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(exe, 0o755)
    env = {**binary_env(modeld_data_root, False), "PATH": bindir}
    modeld_connector.configure(modeld_data_root, env)
    assert _state(modeld_connector) == "not-installed"


@clause("C-LEASE-07", source="edge-cases.md:32; lease-and-discovery.md §7.2")
def test_C_LEASE_07_override_wins(modeld_connector: Any, modeld_data_root: str) -> None:
    """An existing CONTENOX_MODELD_BIN is located although PATH has no modeld → not-running."""
    env = {**binary_env(modeld_data_root, True), "PATH": os.path.join(modeld_data_root, "empty")}
    modeld_connector.configure(modeld_data_root, env)
    assert _state(modeld_connector) == "not-running"


@clause("C-LEASE-08", source="lease-and-discovery.md §4.6; edge-cases.md:26-27")
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b'{"instance_id": 5}',
        b'{"ttl": "30s"}',
        b'{"renewed_at": "2026-06-21 18:00:00Z"}',
        b"[]",
        b'{"a":1} trailing',
    ],
)
def test_C_LEASE_08_corrupt_lease_is_no_lease(
    modeld_connector: Any, modeld_data_root: str, body: bytes
) -> None:
    """A lease that does not parse is no lease: not-running (not stale), available false."""
    write_lease(modeld_data_root, body)
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert _state(modeld_connector) == "not-running"
    assert modeld_connector.available() is False


@clause("C-LEASE-09", source="lease-and-discovery.md §2 (reading rules)")
def test_C_LEASE_09_keys_match_case_insensitively(modeld_connector: Any, modeld_data_root: str) -> None:
    """Upper-case keys are read (Go encoding/json): a fresh lease written with them is live."""
    rec = json.loads(lease_bytes(backend="llama"))
    upper = {k.upper(): v for k, v in rec.items()}
    write_lease(modeld_data_root, json.dumps(upper).encode())
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == "llama"


@clause("C-LEASE-10", source="lease-and-discovery.md §3")
def test_C_LEASE_10_expiry_is_renewed_at_plus_ttl(modeld_connector: Any, modeld_data_root: str) -> None:
    """acquired_at plays no role: an old acquisition renewed just now is live."""
    now = time.time_ns()
    write_lease(modeld_data_root, lease_bytes(acquired_at_ns=now - 10 * 3600 * NS, renewed_at_ns=now))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.available() is True


@clause("C-LEASE-11", source="lease-and-discovery.md §2 (times with zone offsets)")
def test_C_LEASE_11_zone_offsets_are_honoured(modeld_connector: Any, modeld_data_root: str) -> None:
    """A time written in +05:30 is the same instant: live if fresh, stale if lapsed."""
    write_lease(modeld_data_root, lease_bytes(offset_minutes=330, ttl_ns=3600 * NS))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.available() is True
    write_lease(modeld_data_root, lease_bytes(offset_minutes=-420, renewed_at_ns=time.time_ns() - 120 * NS))
    assert modeld_connector.available() is False


@clause("C-LEASE-12", source="edge-cases.md:51")
def test_C_LEASE_12_serveable_backend_grace(modeld_connector: Any, modeld_data_root: str) -> None:
    """After the lease goes away, backend() is "" but serveable_backend() keeps the last live one."""
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    write_lease(modeld_data_root, lease_bytes(backend="openvino"))
    assert modeld_connector.serveable_backend() == "openvino"
    write_lease(modeld_data_root, None)
    assert modeld_connector.backend() == ""
    assert modeld_connector.serveable_backend() == "openvino"


@clause("C-LEASE-13", source="edge-cases.md:52")
def test_C_LEASE_13_serveable_without_observation_is_empty(
    modeld_connector: Any, modeld_data_root: str
) -> None:
    """No prior live observation → serveable_backend() is ""; set_data_root forgets the memory."""
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.serveable_backend() == ""
    write_lease(modeld_data_root, lease_bytes(backend="llama"))
    assert modeld_connector.serveable_backend() == "llama"
    write_lease(modeld_data_root, None)
    modeld_connector.configure(modeld_data_root)
    assert modeld_connector.serveable_backend() == ""


@clause("C-LEASE-14", source="edge-cases.md:35; lease-and-discovery.md §1.2")
def test_C_LEASE_14_data_root_is_honoured(modeld_connector: Any, modeld_data_root: str) -> None:
    """Discovery reads <data root>/modeld.lease of the configured root, not another one."""
    other = os.path.join(modeld_data_root, "other")
    os.makedirs(other)
    write_lease(other, lease_bytes(backend="llama"))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.available() is False
    modeld_connector.configure(other)
    assert modeld_connector.available() is True


@clause("C-LEASE-15", source="lease-and-discovery.md §2.1, §8")
def test_C_LEASE_15_lease_without_backend_meta(modeld_connector: Any, modeld_data_root: str) -> None:
    """A live lease without meta: available true, backend ""."""
    write_lease(modeld_data_root, lease_bytes(backend=None, endpoint=None))
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, True))
    assert modeld_connector.available() is True
    assert modeld_connector.backend() == ""


_S = NS
_MS = NS // 1000
_records = st.fixed_dictionaries(
    {
        # expiry − now when the record is written: far off either way, within a few milliseconds of
        # the edge, or exactly on it (the probe calls a lease live only while now < expiry)
        "delta_ns": st.one_of(
            st.integers(-7200 * _S, 7200 * _S),
            st.integers(-50 * _MS, 50 * _MS),
            st.just(0),
        ),
        "ttl_s": st.integers(1, 3600),
        "offset_min": st.sampled_from([0, 60, 120, -300, 330, -720, 840]),
        "digits": st.integers(0, 9),
        "backend": st.sampled_from(["llama", "openvino", "none", None]),
        "binary": st.booleans(),
        "corrupt": st.sampled_from([None, None, None, "garbage", "ttl-string", "zoneless", "empty", "upper"]),
    }
)


def _record(case: dict[str, Any], endpoint: str) -> bytes:
    """A lease whose expiry (renewed_at as written, at the case's precision, + ttl) is exactly
    now + delta: the ttl absorbs what the written precision cut off renewed_at."""
    expiry = time.time_ns() + case["delta_ns"]
    renewed = expiry - case["ttl_s"] * NS
    written = parse_rfc3339_ns(format_rfc3339(renewed, case["offset_min"], case["digits"]))
    ttl = expiry - written
    data = lease_bytes(
        instance_id=str(uuid.uuid4()),
        renewed_at_ns=renewed,
        ttl_ns=ttl,
        endpoint=endpoint,
        backend=case["backend"],
        offset_minutes=case["offset_min"],
        digits=case["digits"],
    )
    c = case["corrupt"]
    if c == "garbage":
        data = data[: len(data) // 2]
    elif c == "ttl-string":
        data = data.replace(f'"ttl": {ttl}'.encode(), b'"ttl": "30s"')
    elif c == "zoneless":
        rec = json.loads(data)
        rec["renewed_at"] = rec["renewed_at"].replace("T", " ")
        data = json.dumps(rec).encode()
    elif c == "empty":
        data = b""
    elif c == "upper":
        data = json.dumps({k.upper(): v for k, v in json.loads(data).items()}).encode()
    return data


def _bracketed(what: str, call: Any, want: Any) -> None:
    """``call()`` must give what the oracle says at some instant it ran: the oracle is asked for the
    instants just before and just after (near the edge they differ and either answer is right)."""
    before = time.time_ns()
    got = call()
    after = time.time_ns()
    allowed = {want(before), want(after)}
    assert got in allowed, f"{what}: got {got!r}, the oracle says {' or '.join(map(repr, sorted(allowed)))}"


@clause("C-LEASE-16", source="lease-and-discovery.md §3, §4.6, §7.1, §8; edge-cases.md:26-30,39,51")
@suite_settings()
@given(case=_records)
def test_C_LEASE_16_generated_leases_match_the_oracle(
    modeld_connector: Any, modeld_data_root: str, case: dict[str, Any]
) -> None:
    """Generated lease records (far from expiry, within milliseconds of it, exactly on it; zone offsets,
    precisions, corruptions): available / backend / the probe's state as the oracle says at that instant."""
    data = _record(case, closed_port())
    write_lease(modeld_data_root, data)
    modeld_connector.configure(modeld_data_root, binary_env(modeld_data_root, case["binary"]))
    binary = bool(case["binary"])
    _bracketed("available()", modeld_connector.available, lambda now: expect(data, now, binary).available)
    _bracketed("backend()", modeld_connector.backend, lambda now: expect(data, now, binary).backend)

    def state_of(now: int) -> str:
        # live: the call goes on to the (closed) endpoint and the probe finds it unreachable
        want = expect(data, now, binary).state
        return "unreachable" if want == "running" else want

    _bracketed("a lease-resolved call's probe state", lambda: _state(modeld_connector), state_of)


@clause("C-LEASE-17", source="edge-cases.md:33; lease-and-discovery.md §7.2")
def test_C_LEASE_17_managed_install_is_located(modeld_connector: Any, tmp_path: Any) -> None:
    """A protocol-compatible managed install under <root>/modeld/<v>/<os-arch>/modeld is located."""
    root = str(tmp_path / "data")
    launcher = os.path.join(root, "modeld", "v0.36.0", goos_goarch(), "modeld")
    os.makedirs(os.path.dirname(launcher))
    with open(launcher, "w") as f:
        f.write('#!/bin/sh\necho \'{"version":"v0.36.0","protocol":1}\'\n')
    os.chmod(launcher, 0o755)
    env: dict[str, str | None] = {"CONTENOX_MODELD_BIN": None, "PATH": str(tmp_path / "empty")}
    modeld_connector.configure(root, env)
    assert _state(modeld_connector) == "not-running"


@clause("C-LEASE-18", source="edge-cases.md:34")
def test_C_LEASE_18_broken_managed_install_falls_back_to_path(modeld_connector: Any, tmp_path: Any) -> None:
    """A managed install that fails its version check is skipped; PATH is used."""
    root = str(tmp_path / "data")
    launcher = os.path.join(root, "modeld", "v0.36.0", goos_goarch(), "modeld")
    os.makedirs(os.path.dirname(launcher))
    with open(launcher, "w") as f:
        f.write('#!/bin/sh\necho \'{"version":"v9.0.0","protocol":7}\'\n')
    os.chmod(launcher, 0o755)
    env: dict[str, str | None] = {"CONTENOX_MODELD_BIN": None, "PATH": str(tmp_path / "empty")}
    modeld_connector.configure(root, env)
    assert _state(modeld_connector) == "not-installed"
    bindir = tmp_path / "pathbin"
    bindir.mkdir()
    exe = bindir / "modeld"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    modeld_connector.configure(root, {"PATH": str(bindir)})
    assert _state(modeld_connector) == "not-running"


@clause("C-LEASE-19", source="lease-and-discovery.md §1.2; modeldprobe.go DefaultDataRoot; edge-cases.md:35")
def test_C_LEASE_19_data_root_discovery_order(modeld_connector: Any, modeld_data_root: str) -> None:
    """The data root is the configured one, else $CONTENOX_DATA_ROOT (when non-empty), else
    $HOME/.contenox: three roots holding leases of three backends tell which one was read."""
    explicit = os.path.join(modeld_data_root, "explicit")
    from_env = os.path.join(modeld_data_root, "env-root")
    home = os.path.join(modeld_data_root, "home")
    for root, backend in (
        (explicit, "llama"),
        (from_env, "openvino"),
        (os.path.join(home, ".contenox"), "none"),
    ):
        os.makedirs(root, exist_ok=True)
        write_lease(root, lease_bytes(backend=backend))
    env: dict[str, str | None] = {"CONTENOX_DATA_ROOT": from_env, "HOME": home}
    modeld_connector.configure(explicit, env)
    assert modeld_connector.backend() == "llama", "an explicit data root comes first"
    modeld_connector.configure("", env)
    assert modeld_connector.backend() == "openvino", "without one, $CONTENOX_DATA_ROOT"
    modeld_connector.configure("", {"CONTENOX_DATA_ROOT": None, "HOME": home})
    assert modeld_connector.backend() == "none", "without either, $HOME/.contenox"
    modeld_connector.configure("", {"CONTENOX_DATA_ROOT": "", "HOME": home})
    assert modeld_connector.backend() == "none", "an empty $CONTENOX_DATA_ROOT counts as unset"
    write_lease(os.path.join(home, ".contenox"), None)
    assert modeld_connector.available() is False, "the root read is $HOME/.contenox, now without a lease"
