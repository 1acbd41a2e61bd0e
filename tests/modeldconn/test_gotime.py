"""Go time / duration helpers (names contain "gotime" so ``-k gotime`` selects them)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldconn import gotime
from modeldconn.gotime import GoTime, GoTimeError

EPOCH_ORD = dt.date(1970, 1, 1).toordinal()


def oracle_unix_ns(y: int, mo: int, d: int, h: int, mi: int, s: int, ns: int, off_s: int) -> int:
    """Independent of gotime: Python's proleptic ordinal for the date, integer arithmetic."""
    days = dt.date(y, mo, d).toordinal() - EPOCH_ORD
    return ((days * 86400 + h * 3600 + mi * 60 + s) - off_s) * 1_000_000_000 + ns


def oracle_text(y: int, mo: int, d: int, h: int, mi: int, s: int, ns: int, off_min: int) -> str:
    """RFC3339Nano written by hand from integers (trailing zeros trimmed, Z for offset 0)."""
    frac = ""
    if ns:
        digits = f"{ns:09d}"
        while digits.endswith("0"):
            digits = digits[:-1]
        frac = "." + digits
    if off_min == 0:
        zone = "Z"
    else:
        sign = "-" if off_min < 0 else "+"
        a = abs(off_min)
        zone = f"{sign}{a // 60:02d}:{a % 60:02d}"
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"


@st.composite
def wall(draw: st.DrawFn) -> tuple[int, int, int, int, int, int, int, int]:
    date = draw(st.dates(min_value=dt.date(1, 1, 2), max_value=dt.date(9999, 12, 30)))
    h = draw(st.integers(0, 23))
    mi = draw(st.integers(0, 59))
    s = draw(st.integers(0, 59))
    ns = draw(st.one_of(st.integers(0, 999_999_999), st.sampled_from([0, 1, 10, 500_000_000, 120_000_000])))
    off_min = draw(st.one_of(st.just(0), st.integers(-(23 * 60 + 59), 23 * 60 + 59)))
    return date.year, date.month, date.day, h, mi, s, ns, off_min


@given(wall())
def test_gotime_format_matches_integer_oracle(w: tuple[int, int, int, int, int, int, int, int]) -> None:
    y, mo, d, h, mi, s, ns, off_min = w
    t = GoTime(oracle_unix_ns(y, mo, d, h, mi, s, ns, off_min * 60), off_min * 60)
    text = oracle_text(*w)
    assert gotime.format_rfc3339nano(t) == text
    assert gotime.marshal_time(t) == text
    assert gotime.parse_rfc3339(text) == t
    assert t.fields() == (y, mo, d, h, mi, s, ns)


@given(st.integers(-(10**20), 10**20), st.integers(-(23 * 60 + 59), 23 * 60 + 59))
def test_gotime_parse_format_round_trip(unix_ns: int, off_min: int) -> None:
    t = GoTime(unix_ns, off_min * 60)
    text = gotime.format_rfc3339nano(t)
    if t.fields()[0] < 0 or t.fields()[0] > 9999:
        with pytest.raises(GoTimeError):
            gotime.marshal_time(t)
        return
    assert gotime.parse_rfc3339(text) == t
    assert gotime.parse_rfc3339(text.encode()) == t


@pytest.mark.parametrize(
    ("text", "unix_ns", "offset"),
    [
        ("2026-06-21T18:00:00.123456789+02:00", 1782057600123456789, 7200),
        ("2026-06-21T16:00:10.5Z", 1782057610500000000, 0),
        ("0001-01-01T00:00:00Z", -62135596800 * 10**9, 0),
        ("0000-01-01T00:00:00Z", -62167219200 * 10**9, 0),  # year 0: Python datetime cannot
        ("2026-06-21T8:00:00Z", 1782028800 * 10**9, 0),  # Go accepts a one-digit hour
        ("2026-06-21T18:00:00,25+01:00", 1782061200250000000, 3600),  # and a comma fraction
        ("2026-06-21T18:00:00+24:00", 1781978400 * 10**9, 86400),  # and offset hour 24
        ("2026-06-21T18:00:00+23:60", 1781978400 * 10**9, 86400),
        ("2026-06-21T18:00:00.1234567891234Z", 1782064800123456789, 0),  # truncated to ns
        ("2026-06-21T18:00:00-00:00", 1782064800 * 10**9, 0),
        ("9999-12-31T23:59:59.999999999-23:59", 253402387139999999999, -86340),
    ],
)
def test_gotime_parse_go_vectors(text: str, unix_ns: int, offset: int) -> None:
    assert gotime.parse_rfc3339(text) == GoTime(unix_ns, offset)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-06-21 18:00:00Z", 'cannot parse " 18:00:00Z" as "T"'),
        ("2026-06-21T18:00:00", 'cannot parse "" as "Z07:00"'),
        ("2026-06-21T18:00:00+25:00", "time zone offset hour out of range"),
        ("2026-02-29T18:00:00Z", "day out of range"),
        ("2026-06-21T18:00:60Z", "second out of range"),
        ("2026-06-21T24:00:00Z", "hour out of range"),
        ("2026-06-21t18:00:00Z", 'cannot parse "t18:00:00Z" as "T"'),
        ("2026-06-21T18:00:00z", 'cannot parse "z" as "Z07:00"'),
        ("2026-06-21T18:00:00.Z", 'cannot parse ".Z" as "Z07:00"'),
        ("2026-6-21T18:00:00Z", 'cannot parse "6-21T18:00:00Z" as "01"'),
        ("2026-06-21T18:00:00Z ", 'extra text: " "'),
        ("2026-06-21T18:00:00+0100", 'cannot parse "+0100" as "Z07:00"'),
        ("", 'cannot parse "" as "2006"'),
    ],
)
def test_gotime_parse_rejects_like_go(text: str, message: str) -> None:
    with pytest.raises(GoTimeError) as ei:
        gotime.parse_rfc3339(text)
    assert str(ei.value).startswith(f'parsing time "{text}"')
    assert str(ei.value).endswith(message)


def test_gotime_marshal_rejects_out_of_range() -> None:
    with pytest.raises(GoTimeError, match="year outside"):
        gotime.marshal_time(GoTime(gotime.days_from_civil(10000, 1, 1) * 86400 * 10**9))
    with pytest.raises(GoTimeError, match="timezone hour"):
        gotime.marshal_time(GoTime(0, 24 * 3600))


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("30s", 30 * 10**9),
        ("300ms", 300 * 10**6),
        ("1m30s", 90 * 10**9),
        ("1.5s", 1_500_000_000),
        ("1h", 3600 * 10**9),
        (".5s", 500_000_000),
        ("1.s", 10**9),
        ("1µs", 1000),
        ("1μs", 1000),
        ("1us", 1000),
        ("-1.5h", -5400 * 10**9),
        ("+2ns", 2),
        ("1h1m1s1ms1us1ns", 3661001001001),
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
        ("0.3333333333333333333h", 1200 * 10**9),
    ],
)
def test_gotime_parse_duration(text: str, ns: int) -> None:
    assert gotime.parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("30", 'time: missing unit in duration "30"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        (".s", 'time: invalid duration ".s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("s", 'time: invalid duration "s"'),
        ("1s ", 'time: unknown unit "s " in duration "1s "'),
    ],
)
def test_gotime_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(GoTimeError) as ei:
        gotime.parse_duration(text)
    assert str(ei.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1100, "1.1µs"),
        (2_200_000, "2.2ms"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (30 * 10**9, "30s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-(2**63), "-2562047h47m16.854775808s"),
        (2**63 - 1, "2562047h47m16.854775807s"),
    ],
)
def test_gotime_format_duration(ns: int, text: str) -> None:
    assert gotime.format_duration(ns) == text


@given(st.integers(-(2**63), 2**63 - 1))
def test_gotime_duration_round_trip(ns: int) -> None:
    assert gotime.parse_duration(gotime.format_duration(ns)) == ns


def test_gotime_now_uses_local_offset() -> None:
    t = gotime.now(1_000_000_000_123)
    assert t.unix_ns == 1_000_000_000_123
    assert t.offset_s == gotime.local_offset(t.unix_ns)
