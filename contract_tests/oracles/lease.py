"""Lease freshness and the offline probe decision, restated from lease-and-discovery.md §2, §3, §7.1
and modeldprobe.go (Detect). Nothing here reads a lease with the code under test.

* expiry = ``renewed_at + ttl`` (``acquired_at`` plays no role);
* the probe calls a lease live only when ``now < expiry`` (strictly);
* Detect: live → ``running``; else no binary → ``not-installed``; else a parsed lease → ``stale``;
  else ``not-running``. A lease that does not parse is no lease;
* ``available()`` = running; ``backend()`` = the live lease's ``meta.backend``, else ``""``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Expectation", "expect", "format_rfc3339", "parse_lease", "parse_rfc3339_ns"]

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm: days since 1970-01-01 (proleptic Gregorian).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339_ns(s: str) -> int:
    """Unix nanoseconds of an RFC 3339 time with a mandatory ``T`` and offset; ValueError otherwise."""
    m = _RFC3339.match(s)
    if not m:
        raise ValueError(f"not RFC 3339: {s!r}")
    y, mo, d, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 60):
        raise ValueError(f"out of range: {s!r}")
    frac = int((m.group(7) or "").ljust(9, "0") or 0)
    zone = m.group(8)
    off = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        off = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - off
    return secs * 1_000_000_000 + frac


def format_rfc3339(unix_ns: int, offset_minutes: int = 0, digits: int = 9) -> str:
    """Go RFC3339Nano-style text (trailing zeros of the fraction trimmed) in the given zone offset."""
    local = unix_ns + offset_minutes * 60 * 1_000_000_000
    secs, frac = divmod(local, 1_000_000_000)
    days, rem = divmod(secs, 86400)
    # civil from days
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + (3 if mp < 10 else -9)
    y += mo <= 2
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    f = str(frac).rjust(9, "0")[:digits].rstrip("0")
    if f:
        text += "." + f
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    a = abs(offset_minutes)
    return text + f"{sign}{a // 60:02d}:{a % 60:02d}"


@dataclass(frozen=True)
class ParsedLease:
    instance_id: str
    renewed_at_ns: int
    ttl_ns: int
    meta: dict[str, str]

    @property
    def expiry_ns(self) -> int:
        return self.renewed_at_ns + self.ttl_ns


def parse_lease(data: bytes) -> ParsedLease | None:
    """The record as Go's json.Unmarshal would read it, for the records the suite generates;
    ``None`` when it would fail (not an object, wrong types, bad times, non-integral ttl)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    folded: dict[str, Any] = {}
    for k, v in obj.items():  # Go matches keys case-insensitively (last one wins)
        folded[k.lower()] = v
    iid = folded.get("instance_id", "")
    if iid is None:
        iid = ""
    if not isinstance(iid, str):
        return None
    ttl = folded.get("ttl", 0)
    if ttl is None:
        ttl = 0
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        return None
    for key in ("acquired_at", "renewed_at"):
        v = folded.get(key)
        if v is not None and not isinstance(v, str):
            return None
    zero_ns = parse_rfc3339_ns("0001-01-01T00:00:00Z")
    try:
        renewed = parse_rfc3339_ns(folded["renewed_at"]) if folded.get("renewed_at") is not None else zero_ns
        if folded.get("acquired_at") is not None:
            parse_rfc3339_ns(folded["acquired_at"])
    except ValueError:
        return None
    meta = folded.get("meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        return None
    return ParsedLease(iid, renewed, int(ttl), {str(k): str(v) for k, v in meta.items()})


@dataclass(frozen=True)
class Expectation:
    state: str
    available: bool
    backend: str
    endpoint: str = ""
    instance: str = ""


def expect(lease: bytes | None, now_ns: int, binary: bool) -> Expectation:
    """The offline discovery answer for a data root holding ``lease`` (None: no file)."""
    rec = parse_lease(lease) if lease is not None else None
    if rec is not None and now_ns < rec.expiry_ns:
        return Expectation(
            "running", True, rec.meta.get("backend", ""), rec.meta.get("endpoint", ""), rec.instance_id
        )
    if not binary:
        return Expectation("not-installed", False, "")
    if rec is not None:
        return Expectation("stale", False, "")
    return Expectation("not-running", False, "")
