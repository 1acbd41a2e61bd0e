"""Go ``time`` helpers: RFC 3339 instants and ``time.Duration`` strings, byte-exact with Go.

Python's :class:`datetime.datetime` has microsecond precision and no year 0, while Go's
``time.Time`` has nanoseconds and years 0..9999 in RFC 3339.  An instant is therefore a
:class:`GoTime`: integer nanoseconds since the Unix epoch plus the zone offset (seconds east of
UTC) it was written with.  All comparisons are exact integer comparisons.

Facts come from the Go standard library (``/usr/local/go/src``):

* ``time/format_rfc3339.go`` (``appendFormatRFC3339``, ``appendStrictRFC3339``) — formatting,
  RFC3339Nano trims trailing fractional zeros, ``Z`` whenever the offset is 0, offsets print as
  ``±hh:mm`` (seconds of the offset are dropped).
* ``time/time.go`` (``Time.UnmarshalJSON``) — the raw bytes between the quotes (not unescaped)
  go to ``parseStrictRFC3339``, whose strict branch is disabled, so the effective rules are those
  of ``time.Parse(time.RFC3339, s)`` in ``time/format.go``: 1- or 2-digit hour, ``.`` or ``,``
  fraction of any length (truncated to 9 digits), offset hour up to 24 and minute up to 60,
  mandatory ``T`` and offset, no trailing text.
* ``time/format.go`` (``ParseDuration``) and ``time/time.go`` (``Duration.String``).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

__all__ = [
    "NS_PER_S",
    "ZERO_TIME",
    "GoTime",
    "GoTimeError",
    "days_from_civil",
    "format_duration",
    "format_rfc3339",
    "format_rfc3339nano",
    "local_offset",
    "marshal_time",
    "now",
    "parse_duration",
    "parse_rfc3339",
]

NS_PER_S = 1_000_000_000
_SECONDS_PER_DAY = 86_400


class GoTimeError(ValueError):
    """A time or duration string Go would reject; ``str()`` is Go's error text."""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, incl. 0 and negatives)."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


@dataclass(frozen=True)
class GoTime:
    """A Go ``time.Time`` as it crosses a lease file: instant + the writer's zone offset.

    ``unix_ns`` is nanoseconds since 1970-01-01T00:00:00Z; ``offset_s`` seconds east of UTC.
    Dataclass equality compares both (the bytes Go writes depend on both); use
    :meth:`same_instant` or compare ``unix_ns`` for Go's ``Time.Equal``.
    """

    unix_ns: int
    offset_s: int = 0

    def add(self, duration_ns: int) -> GoTime:
        """Go ``Time.Add``: same zone, instant moved by ``duration_ns``."""
        return GoTime(self.unix_ns + duration_ns, self.offset_s)

    def same_instant(self, other: GoTime) -> bool:
        return self.unix_ns == other.unix_ns

    def is_zero(self) -> bool:
        """Go ``Time.IsZero``: January 1, year 1, 00:00:00 UTC."""
        return self.unix_ns == ZERO_TIME.unix_ns

    def fields(self) -> tuple[int, int, int, int, int, int, int]:
        """(year, month, day, hour, minute, second, nanosecond) in the time's own offset."""
        local_ns = self.unix_ns + self.offset_s * NS_PER_S
        secs, nsec = divmod(local_ns, NS_PER_S)
        days, sod = divmod(secs, _SECONDS_PER_DAY)
        y, m, d = _civil_from_days(days)
        return y, m, d, sod // 3600, sod // 60 % 60, sod % 60, nsec

    def __str__(self) -> str:
        return format_rfc3339nano(self)


ZERO_TIME = GoTime(days_from_civil(1, 1, 1) * _SECONDS_PER_DAY * NS_PER_S, 0)
"""Go's zero ``time.Time`` (what a missing or ``null`` time field decodes to)."""


def local_offset(unix_ns: int) -> int:
    """Offset (seconds east of UTC) of the process's local zone at that instant (Go ``Local``)."""
    secs = unix_ns // NS_PER_S
    try:
        return int(_time.localtime(secs).tm_gmtoff)
    except (OverflowError, OSError, ValueError):
        return 0


def now(clock_ns: int | None = None) -> GoTime:
    """Go ``time.Now()``: wall clock in the local zone (``clock_ns`` overrides the instant)."""
    ns = _time.time_ns() if clock_ns is None else clock_ns
    return GoTime(ns, local_offset(ns))


def _append_int(x: int, width: int) -> str:
    # time/format.go appendInt: sign, then zero-padded magnitude
    sign = "-" if x < 0 else ""
    return sign + str(abs(x)).rjust(width, "0")


def _format(t: GoTime, nanos: bool) -> str:
    y, mo, d, h, mi, s, ns = t.fields()
    out = f"{_append_int(y, 4)}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    if nanos and ns:
        out += "." + f"{ns:09d}".rstrip("0")
    if t.offset_s == 0:
        return out + "Z"
    zone = int(t.offset_s / 60)  # Go integer division truncates toward zero
    sign = "-" if zone < 0 else "+"
    zone = abs(zone)
    return out + sign + _append_int(zone // 60, 2) + ":" + _append_int(zone % 60, 2)


def format_rfc3339nano(t: GoTime) -> str:
    """Go ``t.Format(time.RFC3339Nano)``."""
    return _format(t, True)


def format_rfc3339(t: GoTime) -> str:
    """Go ``t.Format(time.RFC3339)`` (whole seconds; used in liblease's ErrHeld text)."""
    return _format(t, False)


def marshal_time(t: GoTime) -> str:
    """Go ``Time.MarshalJSON`` without the quotes; raises :class:`GoTimeError` as Go does."""
    s = format_rfc3339nano(t)
    if s[4:5] != "-":
        raise GoTimeError("Time.MarshalJSON: year outside of range [0,9999]")
    if not s.endswith("Z"):
        c = s[-6]
        if c.isdigit() or int(s[-5:-3]) >= 24:
            raise GoTimeError("Time.MarshalJSON: timezone hour outside of range [0,23]")
    return s


# --- parsing (time.Parse(time.RFC3339, value)) ----------------------------------------------

_LAYOUT = "2006-01-02T15:04:05Z07:00"


def _quote(raw: bytes) -> str:
    """Go time/format.go ``quote`` (bytes >= 0x80 or < 0x20 as \\xHH)."""
    out = ['"']
    for b in raw:
        if b >= 0x80 or b < 0x20:
            out.append(f"\\x{b:02x}")
        else:
            if b in (0x22, 0x5C):
                out.append("\\")
            out.append(chr(b))
    out.append('"')
    return "".join(out)


def _isdigit(b: bytes, i: int) -> bool:
    return i < len(b) and 0x30 <= b[i] <= 0x39


def _getnum(s: bytes, fixed: bool) -> tuple[int, bytes] | None:
    if not _isdigit(s, 0):
        return None
    if not _isdigit(s, 1):
        if fixed:
            return None
        return s[0] - 0x30, s[1:]
    return (s[0] - 0x30) * 10 + (s[1] - 0x30), s[2:]


def parse_rfc3339(value: str | bytes) -> GoTime:
    """Parse like Go's ``time.Time.UnmarshalJSON`` (i.e. ``time.Parse(time.RFC3339, value)``).

    Accepts exactly what Go accepts; raises :class:`GoTimeError` with Go's message otherwise.
    """
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    avalue = _quote(raw)

    def bad(layout_elem: str, rest: bytes) -> GoTimeError:
        return GoTimeError(
            f"parsing time {avalue} as {_quote(_LAYOUT.encode())}: cannot parse {_quote(rest)} "
            f"as {_quote(layout_elem.encode())}"
        )

    def rng(what: str) -> GoTimeError:
        return GoTimeError(f"parsing time {avalue}: {what} out of range")

    def skip(s: bytes, lit: bytes) -> bytes:
        if not s.startswith(lit):
            raise bad(lit.decode(), s)
        return s[len(lit) :]

    s = raw
    # "2006"
    if len(s) < 4 or not _isdigit(s, 0) or not all(0x30 <= c <= 0x39 for c in s[0:4]):
        raise bad("2006", s)
    year, s = int(s[0:4]), s[4:]
    s = skip(s, b"-")
    r = _getnum(s, True)
    if r is None:
        raise bad("01", s)
    month, s = r
    if not 1 <= month <= 12:
        raise rng("month")
    s = skip(s, b"-")
    r = _getnum(s, True)
    if r is None:
        raise bad("02", s)
    day, s = r
    s = skip(s, b"T")
    r = _getnum(s, False)
    if r is None:
        raise bad("15", s)
    hour, s = r
    if hour >= 24:
        raise rng("hour")
    s = skip(s, b":")
    r = _getnum(s, True)
    if r is None:
        raise bad("04", s)
    minute, s = r
    if minute >= 60:
        raise rng("minute")
    s = skip(s, b":")
    r = _getnum(s, True)
    if r is None:
        raise bad("05", s)
    second, s = r
    if second >= 60:
        raise rng("second")
    nsec = 0
    if len(s) >= 2 and s[0] in (0x2C, 0x2E) and _isdigit(s, 1):
        n = 2
        while _isdigit(s, n):
            n += 1
        digits = s[1 : min(n, 10)]
        nsec = int(digits) * 10 ** (9 - len(digits))
        s = s[n:]
    # "Z07:00"
    offset: int
    if s[:1] == b"Z":
        offset, s = 0, s[1:]
    else:
        hold = s
        if len(s) < 6 or s[3] != 0x3A:
            raise bad("Z07:00", hold)
        sign, hh, mm, s = s[0:1], s[1:3], s[4:6], s[6:]
        rh = _getnum(hh, True)
        rm = _getnum(mm, True) if rh is not None else None
        hr = rh[0] if rh is not None else 0
        mn = rm[0] if rm is not None else 0
        if hr > 24:
            raise rng("time zone offset hour")
        if mn > 60:
            raise rng("time zone offset minute")
        if rh is None or rm is None or sign not in (b"+", b"-"):
            raise bad("Z07:00", hold)
        offset = (hr * 60 + mn) * 60
        if sign == b"-":
            offset = -offset
    if s:
        raise GoTimeError(f"parsing time {avalue}: extra text: {_quote(s)}")
    if day < 1 or day > _days_in(month, year):
        raise GoTimeError(f"parsing time {avalue}: day out of range")
    secs = days_from_civil(year, month, day) * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    return GoTime((secs - offset) * NS_PER_S + nsec, offset)


# --- durations ------------------------------------------------------------------------------

_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
}
_MAX_U = 1 << 63


def _dur_quote(s: str) -> str:
    return _quote(s.encode("utf-8", "surrogateescape"))


def parse_duration(s: str) -> int:
    """Go ``time.ParseDuration``: returns integer nanoseconds or raises :class:`GoTimeError`."""
    orig = s
    b = s.encode("utf-8", "surrogateescape")

    def err(msg: str) -> GoTimeError:
        return GoTimeError(f"time: {msg} {_dur_quote(orig)}")

    neg = False
    if b and b[0] in (0x2B, 0x2D):
        neg = b[0] == 0x2D
        b = b[1:]
    if b == b"0":
        return 0
    if not b:
        raise err("invalid duration")
    d = 0
    while b:
        if not (b[0] == 0x2E or 0x30 <= b[0] <= 0x39):
            raise err("invalid duration")
        # leadingInt
        i = 0
        v = 0
        while i < len(b) and 0x30 <= b[i] <= 0x39:
            if v > _MAX_U // 10:
                raise err("invalid duration")
            v = v * 10 + b[i] - 0x30
            if v > _MAX_U:
                raise err("invalid duration")
            i += 1
        pre = i > 0
        b = b[i:]
        post = False
        f = 0
        scale = 1.0
        if b[:1] == b".":
            b = b[1:]
            i = 0
            overflow = False
            while i < len(b) and 0x30 <= b[i] <= 0x39:
                if not overflow:
                    if f > (_MAX_U - 1) // 10:
                        overflow = True
                    else:
                        y = f * 10 + b[i] - 0x30
                        if y > _MAX_U:
                            overflow = True
                        else:
                            f = y
                            scale *= 10
                i += 1
            post = i > 0
            b = b[i:]
        if not pre and not post:
            raise err("invalid duration")
        i = 0
        while i < len(b) and not (b[i] == 0x2E or 0x30 <= b[i] <= 0x39):
            i += 1
        if i == 0:
            raise err("missing unit in duration")
        u = b[:i].decode("utf-8", "surrogateescape")
        b = b[i:]
        if u not in _UNITS:
            raise GoTimeError(f"time: unknown unit {_dur_quote(u)} in duration {_dur_quote(orig)}")
        unit = _UNITS[u]
        if v > _MAX_U // unit:
            raise err("invalid duration")
        v *= unit
        if f > 0:
            # float64 arithmetic exactly as Go: v += uint64(float64(f) * (float64(unit) / scale))
            v += int(float(f) * (float(unit) / scale))
            if v > _MAX_U:
                raise err("invalid duration")
        d += v
        if d > _MAX_U:
            raise err("invalid duration")
    if neg:
        return -d
    if d > _MAX_U - 1:
        raise err("invalid duration")
    return d


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    digits = []
    printing = False
    for _ in range(prec):
        digit = v % 10
        printing = printing or digit != 0
        if printing:
            digits.append(chr(0x30 + digit))
        v //= 10
    if printing:
        digits.append(".")
    return "".join(reversed(digits)), v


def format_duration(ns: int) -> str:
    """Go ``time.Duration.String`` (``0s``, ``300ms``, ``1.5s``, ``1m30s``, ``2h0m0s``)."""
    if not -(1 << 63) <= ns < (1 << 63):
        raise GoTimeError(f"duration {ns} out of int64 range")
    neg = ns < 0
    u = -ns if neg else ns
    if u < NS_PER_S:
        if u == 0:
            return "0s"
        if u < 1_000:
            prec, unit = 0, "ns"
        elif u < 1_000_000:
            prec, unit = 3, "µs"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        out = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        out = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            out = f"{u % 60}m" + out
            u //= 60
            if u > 0:
                out = f"{u}h" + out
    return ("-" + out) if neg else out
