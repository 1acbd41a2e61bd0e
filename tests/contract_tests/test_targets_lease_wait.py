"""modeld_contract.targets: a lease's expiry, and waiting for it to lapse (a condition, not a pause)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from modeld_contract.targets import TargetError, lease_expiry_ns, rfc3339_ns, wait_lease_lapsed

S = 1_000_000_000


def _go_time(ns: int) -> str:
    base = datetime.fromtimestamp(ns // S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % S:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def _write_lease(root: Path, renewed_ns: int, ttl_ns: int) -> None:
    rec = {"instance_id": "i-1", "pid": 1, "renewed_at": _go_time(renewed_ns), "ttl": ttl_ns}
    (root / "modeld.lease").write_text(json.dumps(rec))


def test_rfc3339_ns_reads_go_times_with_any_fraction_and_offset() -> None:
    assert rfc3339_ns("1970-01-01T00:00:01Z") == S
    assert rfc3339_ns("1970-01-01T00:00:01.5Z") == S + S // 2
    assert rfc3339_ns("2026-12-02T14:59:02.123456789Z") == 1796223542 * S + 123456789
    assert rfc3339_ns("1970-01-01T02:00:01+02:00") == S
    with pytest.raises(ValueError):
        rfc3339_ns("yesterday")


def test_lease_expiry_is_renewed_at_plus_ttl() -> None:
    assert lease_expiry_ns({"renewed_at": "1970-01-01T00:00:01Z", "ttl": 3 * S}) == 4 * S
    assert lease_expiry_ns({"renewed_at": "1970-01-01T00:00:01Z"}) is None
    assert lease_expiry_ns({"renewed_at": "soon", "ttl": S}) is None


def test_wait_returns_once_the_expiry_has_passed(tmp_path: Path) -> None:
    ttl = 300_000_000
    _write_lease(tmp_path, time.time_ns(), ttl)
    rec = wait_lease_lapsed(str(tmp_path), timeout=10.0)
    expiry = lease_expiry_ns(rec)
    assert expiry is not None and time.time_ns() > expiry


def test_a_lease_lapsed_long_ago_is_returned_at_once(tmp_path: Path) -> None:
    _write_lease(tmp_path, time.time_ns() - 10 * S, S)
    t0 = time.monotonic()
    rec = wait_lease_lapsed(str(tmp_path), timeout=0.0)
    assert rec["instance_id"] == "i-1" and time.monotonic() - t0 < 1.0


def test_wait_gives_up_at_its_deadline_on_a_live_or_missing_lease(tmp_path: Path) -> None:
    _write_lease(tmp_path, time.time_ns(), 3600 * S)
    t0 = time.monotonic()
    with pytest.raises(TargetError, match="did not lapse within"):
        wait_lease_lapsed(str(tmp_path), timeout=0.2)
    assert time.monotonic() - t0 < 5.0
    (tmp_path / "modeld.lease").unlink()
    with pytest.raises(TargetError, match="last: None"):
        wait_lease_lapsed(str(tmp_path), timeout=0.1)
