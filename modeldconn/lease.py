"""A liblease-compatible TTL file lease (the modeld owner lease), byte-for-byte with Go.

Reference: ``contract_tests/contract/lease-and-discovery.md`` §1-§4 and the Go source
``github.com/contenox/runtime@v0.36.0/liblease/lease.go`` (``Record``, ``Acquire``,
``acquireLeaseLock``, ``tryCreate``, ``Renew``, ``Release``, ``Inspect``, ``readRecord``,
``writeRecord``, ``writeTemp``).  The contract describes a later revision with a context
(30 s bounded lock wait, cancelled-context check, one read before takeover); this module
follows the contract.  v0.36.0 differs only in waiting forever for the lock and re-reading
the lease once more before a takeover.

On-disk record: Go ``json.MarshalIndent(rec, "", "  ")`` — keys ``instance_id, pid, host,
acquired_at, renewed_at, ttl, meta``; two-space indent; no trailing newline; times in
RFC3339Nano; ``ttl`` integer nanoseconds; ``meta`` omitted when empty, keys sorted; strings with
Go's HTML-safe escaping.  Reading follows Go ``json.Unmarshal`` into the record exactly
(``encoding/json/decode.go``, ``scanner.go``): case-insensitive keys (Unicode simple folding),
unknown keys ignored, ``null`` leaves the zero value (top-level ``null`` is a zero record),
``ttl``/``pid`` must be integer literals within int64, trailing data is an error, invalid UTF-8
becomes U+FFFD, nesting deeper than 10000 is an error.

Deliberate differences from Go: a lease file larger than :data:`MAX_LEASE_BYTES` (1 MiB) is not
read in full; it is reported as corrupt.  A real record is a few hundred bytes, so this only
bounds the memory a hostile or broken file can cost.  A stale acquisition lock is reclaimed by one
contender at a time and moved aside by an atomic rename before it is removed, where Go stats it and
removes whatever is at the path (two owners at once: docs/conformance/liblease-herd.md); the lock
itself stays Go's empty directory.  The new owner removes temp files and moved-aside locks that
killed processes left behind.

Only plain ``os``/``open``/``time`` calls are used (mkdir, link, rename, unlink, stat), so the
module runs unchanged on a real filesystem and under pyfakefs; no threads are needed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modeldconn import gotime
from modeldconn.gotime import GoTime

__all__ = [
    "LEASE_FILE_NAME",
    "LOCK_MAX_WAIT_S",
    "MAX_LEASE_BYTES",
    "AcquireTimeout",
    "LeaseCorrupt",
    "LeaseError",
    "LeaseHandle",
    "LeaseHeld",
    "LeaseIOError",
    "LeaseLost",
    "LeaseNotFound",
    "LeaseRecord",
    "acquire",
    "decode_record",
    "encode_record",
    "expired_for_liblease",
    "expires_at",
    "inspect",
    "lease_path",
    "live_for_probe",
    "main",
    "stale_after_ns",
]

LEASE_FILE_NAME = "modeld.lease"
MAX_LEASE_BYTES = 1 << 20
LOCK_STALE_AFTER_NS = 5 * gotime.NS_PER_S
LOCK_STALE_FLOOR_NS = 100_000_000
LOCK_MAX_WAIT_S = 30.0
LOCK_POLL_S = 0.001
RECLAIM_SUFFIX = ".reclaim"
GRAVE_INFIX = ".stale-"
RECLAIM_STALE_FLOOR_NS = gotime.NS_PER_S
_TEMP_NAME = re.compile(r"\.lease-[0-9]+\.tmp")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

Clock = Callable[[], int]


# --- errors ---------------------------------------------------------------------------------


class LeaseError(Exception):
    """Base of every error raised by this module."""


class LeaseHeld(LeaseError):
    """Go ``liblease.ErrHeld``: a live lease is held by another instance."""


class LeaseLost(LeaseError):
    """Go ``liblease.ErrLost``: renew found the lease taken over or locally expired."""


class AcquireTimeout(LeaseError, TimeoutError):
    """Go ``liblease.ErrAcquireTimeout``: the acquisition lock was not obtained in time."""


class LeaseCorrupt(LeaseError):
    """The lease file exists but Go's ``json.Unmarshal`` would reject it (or it is > 1 MiB).

    ``str()`` starts with ``liblease: corrupt lease "<path>": ``; ``reason`` is the rest.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"liblease: corrupt lease {_go_quote(path)}: {reason}")
        self.path = path
        self.reason = reason


class LeaseNotFound(LeaseError, FileNotFoundError):
    """No lease file (Go ``os.ErrNotExist``); also a :class:`FileNotFoundError`."""

    def __init__(self, path: str, context: str = "") -> None:
        FileNotFoundError.__init__(self, errno.ENOENT, f"{context}no lease file", path)


class LeaseIOError(LeaseError):
    """Any other filesystem error (a directory at the lease path, permissions, ...).

    The underlying :class:`OSError` is ``__cause__`` and ``os_error``.
    """

    def __init__(self, message: str, os_error: OSError) -> None:
        super().__init__(message)
        self.os_error = os_error


def _go_quote(s: str) -> str:
    """Go ``%q`` of a printable path (json.dumps without the ASCII escaping is close enough)."""
    return json.dumps(s, ensure_ascii=False)


# --- the record -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """Go ``liblease.Record``. ``ttl_ns`` is ``time.Duration`` (nanoseconds)."""

    instance_id: str = ""
    pid: int = 0
    host: str = ""
    acquired_at: GoTime = gotime.ZERO_TIME
    renewed_at: GoTime = gotime.ZERO_TIME
    ttl_ns: int = 0
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def expires_at(self) -> GoTime:
        return expires_at(self)

    def endpoint(self) -> str:
        return self.meta.get("endpoint", "")

    def backend(self) -> str:
        return self.meta.get("backend", "")


def expires_at(rec: LeaseRecord) -> GoTime:
    """Go ``Record.ExpiresAt``: ``renewed_at + ttl`` (``acquired_at`` plays no role)."""
    return rec.renewed_at.add(rec.ttl_ns)


def expired_for_liblease(rec: LeaseRecord, now_ns: int) -> bool:
    """liblease's judgement: expired only when ``now > expiry`` (held at equality)."""
    return now_ns > expires_at(rec).unix_ns


def live_for_probe(rec: LeaseRecord, now_ns: int) -> bool:
    """The runtime probe's judgement: live only when ``now < expiry`` (stale at equality)."""
    return now_ns < expires_at(rec).unix_ns


def lease_path(data_root: str | os.PathLike[str]) -> str:
    """``<data_root>/modeld.lease``."""
    return os.path.join(os.fspath(data_root), LEASE_FILE_NAME)


# --- encoding (json.MarshalIndent) -----------------------------------------------------------

_HEX = "0123456789abcdef"
_SHORT_ESC = {0x5C: "\\\\", 0x22: '\\"', 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def _go_string(s: str) -> str:
    """Go ``encoding/json`` appendString with escapeHTML (what Marshal uses)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if c < 0x80:
            if c in _SHORT_ESC:
                out.append(_SHORT_ESC[c])
            elif c < 0x20 or c in (0x3C, 0x3E, 0x26):
                out.append("\\u00" + _HEX[c >> 4] + _HEX[c & 0xF])
            else:
                out.append(ch)
        elif 0xD800 <= c <= 0xDFFF:
            out.append("\\ufffd")  # a lone surrogate is not valid UTF-8; Go writes U+FFFD
        elif c in (0x2028, 0x2029):
            out.append("\\u202" + _HEX[c & 0xF])
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _check_int64(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"liblease: {name} must be an int64, got {v!r}")


def encode_record(rec: LeaseRecord) -> bytes:
    """The exact bytes liblease writes for ``rec`` (``json.MarshalIndent(rec, "", "  ")``).

    Raises :class:`ValueError` where Go's Marshal fails (a time outside years 0..9999 or with an
    offset of 24 h or more, or an integer outside int64).
    """
    _check_int64("pid", rec.pid)
    _check_int64("ttl", rec.ttl_ns)
    lines = [
        "{",
        f'  "instance_id": {_go_string(rec.instance_id)},',
        f'  "pid": {rec.pid},',
        f'  "host": {_go_string(rec.host)},',
        f'  "acquired_at": "{gotime.marshal_time(rec.acquired_at)}",',
        f'  "renewed_at": "{gotime.marshal_time(rec.renewed_at)}",',
    ]
    if rec.meta:
        lines.append(f'  "ttl": {rec.ttl_ns},')
        lines.append('  "meta": {')
        keys = sorted(rec.meta, key=lambda k: k.encode("utf-8", "surrogatepass"))
        items = [f"    {_go_string(k)}: {_go_string(rec.meta[k])}" for k in keys]
        lines.append(",\n".join(items))
        lines.append("  }")
    else:
        lines.append(f'  "ttl": {rec.ttl_ns}')
    lines.append("}")
    return "\n".join(lines).encode("utf-8")


# --- decoding (json.Unmarshal) -----------------------------------------------------------------


class _SyntaxError(Exception):
    pass


class _JStr:
    __slots__ = ("raw", "value")

    def __init__(self, value: str, raw: bytes) -> None:
        self.value = value
        self.raw = raw


class _JNum:
    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _JObj:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []


_WS = b" \t\r\n"
_MAX_DEPTH = 10000


def _quote_char(c: int) -> str:
    """Go encoding/json ``quoteChar`` (byte c shown as the rune U+00XX, strconv.Quote style)."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    esc = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v"}
    if c in esc:
        return f"'{esc[c]}'"
    if c == 0x5C:
        return "'\\\\'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if 0x80 <= c <= 0xA0 or c == 0xAD:
        return f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


def _serr(c: int, context: str) -> _SyntaxError:
    return _SyntaxError(f"invalid character {_quote_char(c)} {context}")


_EOF = _SyntaxError("unexpected end of JSON input")


def _decode_go_string(body: bytes) -> str:
    """Unescape a validated JSON string body like Go ``unquote`` (invalid UTF-8 → U+FFFD)."""
    if b"\\" not in body:
        return body.decode("utf-8", "replace")
    out: list[str] = []
    i, n = 0, len(body)
    start = 0
    while i < n:
        if body[i] != 0x5C:
            i += 1
            continue
        out.append(body[start:i].decode("utf-8", "replace"))
        e = body[i + 1]
        if e == 0x75:  # \uXXXX
            r = int(body[i + 2 : i + 6], 16)
            i += 6
            if 0xD800 <= r < 0xDC00 and body[i : i + 2] == b"\\u":
                r2 = int(body[i + 2 : i + 6], 16)
                if 0xDC00 <= r2 < 0xE000:
                    out.append(chr(0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)))
                    i += 6
                    start = i
                    continue
            out.append("\ufffd" if 0xD800 <= r < 0xE000 else chr(r))
        else:
            out.append({0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t"}.get(e, chr(e)))
            i += 2
        start = i
    out.append(body[start:].decode("utf-8", "replace"))
    return "".join(out)


def _parse_json(data: bytes) -> Any:
    """Validate and parse like Go's scanner; iterative, so deep nesting cannot blow the stack."""
    n = len(data)
    i = 0
    # stack entries: [container, pending_key]; container is list or _JObj
    stack: list[list[Any]] = []
    root: list[Any] = []

    def skip_ws(j: int) -> int:
        while j < n and data[j] in _WS:
            j += 1
        return j

    def parse_string(j: int) -> tuple[_JStr, int]:
        # data[j] == '"'
        k = j + 1
        while True:
            if k >= n:
                raise _EOF
            c = data[k]
            if c == 0x22:
                body = data[j + 1 : k]
                return _JStr(_decode_go_string(body), body), k + 1
            if c == 0x5C:
                k += 1
                if k >= n:  # Go's eof() feeds a space to the scanner
                    raise _serr(0x20, "in string escape code")
                e = data[k]
                if e in b'bfnrt\\/"':
                    k += 1
                elif e == 0x75:
                    for m in range(1, 5):
                        if k + m >= n:
                            raise _serr(0x20, "in \\u hexadecimal character escape")
                        if data[k + m] not in b"0123456789abcdefABCDEF":
                            raise _serr(data[k + m], "in \\u hexadecimal character escape")
                    k += 5
                else:
                    raise _serr(e, "in string escape code")
            elif c < 0x20:
                raise _serr(c, "in string literal")
            else:
                k += 1

    def parse_number(j: int) -> tuple[_JNum, int]:
        k = j
        if data[k] == 0x2D:
            k += 1
            if k >= n:
                raise _serr(0x20, "in numeric literal")
            if not 0x30 <= data[k] <= 0x39:
                raise _serr(data[k], "in numeric literal")
        if data[k] == 0x30:
            k += 1
        else:
            while k < n and 0x30 <= data[k] <= 0x39:
                k += 1
        if k < n and data[k] == 0x2E:
            k += 1
            if k >= n:
                raise _serr(0x20, "after decimal point in numeric literal")
            if not 0x30 <= data[k] <= 0x39:
                raise _serr(data[k], "after decimal point in numeric literal")
            while k < n and 0x30 <= data[k] <= 0x39:
                k += 1
        if k < n and data[k] in b"eE":
            k += 1
            if k < n and data[k] in b"+-":
                k += 1
            if k >= n:
                raise _serr(0x20, "in exponent of numeric literal")
            if not 0x30 <= data[k] <= 0x39:
                raise _serr(data[k], "in exponent of numeric literal")
            while k < n and 0x30 <= data[k] <= 0x39:
                k += 1
        return _JNum(data[j:k].decode("ascii")), k

    def parse_literal(j: int) -> tuple[Any, int]:
        word = {0x74: (b"true", True), 0x66: (b"false", False), 0x6E: (b"null", None)}[data[j]]
        lit, val = word
        name = lit.decode()
        for m in range(1, len(lit)):
            c = data[j + m] if j + m < n else 0x20  # Go's eof() feeds a space
            if c != lit[m]:
                raise _serr(c, f"in literal {name} (expecting {_quote_char(lit[m])})")
        return val, j + len(lit)

    def add_value(v: Any) -> None:
        if not stack:
            root.append(v)
            return
        top = stack[-1]
        if isinstance(top[0], _JObj):
            top[0].items.append((top[1], v))
        else:
            top[0].append(v)

    def after_value(j: int) -> tuple[bool, int]:
        """After a complete value: handle ',' / '}' / ']' chains; (top-level done?, next index)."""
        while True:
            if not stack:
                return True, j
            j = skip_ws(j)
            if j >= n:
                raise _EOF
            c = data[j]
            top = stack[-1]
            if isinstance(top[0], _JObj):
                if c == 0x2C:
                    j = skip_ws(j + 1)
                    if j >= n:
                        raise _EOF
                    if data[j] != 0x22:
                        raise _serr(data[j], "looking for beginning of object key string")
                    key, j = parse_string(j)
                    j = skip_ws(j)
                    if j >= n:
                        raise _EOF
                    if data[j] != 0x3A:
                        raise _serr(data[j], "after object key")
                    top[1] = key.value
                    return False, j + 1
                if c == 0x7D:
                    stack.pop()
                    add_value(top[0])
                    j += 1
                    continue
                raise _serr(c, "after object key:value pair")
            if c == 0x2C:
                return False, j + 1
            if c == 0x5D:
                stack.pop()
                add_value(top[0])
                j += 1
                continue
            raise _serr(c, "after array element")

    while True:
        # expecting the beginning of a value at i
        i = skip_ws(i)
        if i >= n:
            raise _EOF
        c = data[i]
        if c == 0x7B or c == 0x5B:
            if len(stack) + 1 > _MAX_DEPTH:
                raise _serr(c, "exceeded max depth")
            i = skip_ws(i + 1)
            if i >= n:
                raise _EOF
            if c == 0x7B:
                obj = _JObj()
                if data[i] == 0x7D:
                    add_value(obj)
                    i += 1
                else:
                    if data[i] != 0x22:
                        raise _serr(data[i], "looking for beginning of object key string")
                    key, i = parse_string(i)
                    i = skip_ws(i)
                    if i >= n:
                        raise _EOF
                    if data[i] != 0x3A:
                        raise _serr(data[i], "after object key")
                    stack.append([obj, key.value])
                    i += 1
                    continue
            else:
                arr: list[Any] = []
                if data[i] == 0x5D:
                    add_value(arr)
                    i += 1
                else:
                    stack.append([arr, None])
                    continue
        elif c == 0x22:
            s, i = parse_string(i)
            add_value(s)
        elif c == 0x2D or 0x30 <= c <= 0x39:
            num, i = parse_number(i)
            add_value(num)
        elif c in (0x74, 0x66, 0x6E):
            lit, i = parse_literal(i)
            add_value(lit)
        else:
            raise _serr(c, "looking for beginning of value")
        done, i = after_value(i)
        if done:
            break
    # Go's checkValid: only whitespace may follow the top-level value
    i = skip_ws(i)
    if i < n:
        raise _serr(data[i], "after top-level value")
    return root[0]


def _kind(v: Any) -> str:
    if isinstance(v, _JStr):
        return "string"
    if isinstance(v, _JNum):
        return "number"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, _JObj):
        return "object"
    if isinstance(v, list):
        return "array"
    return "null"


_FOLD_EXTRA = {"ſ": "s", "K": "k"}  # non-ASCII runes that simple-fold onto ASCII letters


def _fold_key(key: str) -> str:
    """Fold like Go's ``foldName`` for matching against ASCII field names."""
    return "".join(_FOLD_EXTRA.get(ch, ch.lower() if ch.isascii() else ch) for ch in key)


_FIELDS = ("instance_id", "pid", "host", "acquired_at", "renewed_at", "ttl", "meta")
_GO_TYPES = {
    "instance_id": "string",
    "pid": "int",
    "host": "string",
    "ttl": "time.Duration",
    "meta": "map[string]string",
}


class _TypeErr(Exception):
    pass


def _unmarshal_record(top: Any) -> LeaseRecord:
    if top is None:
        return LeaseRecord()  # json null into a struct: no-op
    if not isinstance(top, _JObj):
        raise _TypeErr(f"json: cannot unmarshal {_kind(top)} into Go value of type liblease.Record")
    vals: dict[str, Any] = {
        "instance_id": "",
        "pid": 0,
        "host": "",
        "acquired_at": gotime.ZERO_TIME,
        "renewed_at": gotime.ZERO_TIME,
        "ttl": 0,
        "meta": None,
    }
    saved: str | None = None

    def type_err(kind: str, fname: str, gotype: str) -> None:
        nonlocal saved
        if saved is None:
            saved = f"json: cannot unmarshal {kind} into Go struct field Record.{fname} of type {gotype}"

    for key, v in top.items:
        fname = key if key in _FIELDS else _fold_key(key)
        if fname not in _FIELDS:
            continue
        if fname in ("acquired_at", "renewed_at"):
            # time.Time implements json.Unmarshaler: it gets the raw value; errors abort at once
            if v is None:
                continue
            if not isinstance(v, _JStr):
                raise _TypeErr("Time.UnmarshalJSON: input is not a JSON string")
            try:
                vals[fname] = gotime.parse_rfc3339(v.raw)
            except gotime.GoTimeError as exc:
                raise _TypeErr(str(exc)) from None
        elif fname in ("instance_id", "host"):
            if v is None:
                continue
            if isinstance(v, _JStr):
                vals[fname] = v.value
            else:
                type_err(_kind(v), fname, "string")
        elif fname in ("pid", "ttl"):
            if v is None:
                continue
            if isinstance(v, _JNum):
                lit = v.literal
                ok = lit.lstrip("-").isdigit()
                num = int(lit) if ok else 0
                if ok and _INT64_MIN <= num <= _INT64_MAX:
                    vals[fname] = num
                else:
                    type_err(f"number {lit}", fname, _GO_TYPES[fname])
            else:
                type_err(_kind(v), fname, _GO_TYPES[fname])
        else:  # meta
            if v is None:
                vals["meta"] = None
                continue
            if not isinstance(v, _JObj):
                type_err(_kind(v), "meta", "map[string]string")
                continue
            if vals["meta"] is None:
                vals["meta"] = {}
            for mk, mv in v.items:
                if mv is None or isinstance(mv, _JStr):
                    vals["meta"][mk] = "" if mv is None else mv.value
                else:
                    type_err(_kind(mv), "meta", "string")
                    vals["meta"][mk] = ""
    if saved is not None:
        raise _TypeErr(saved)
    return LeaseRecord(
        instance_id=vals["instance_id"],
        pid=vals["pid"],
        host=vals["host"],
        acquired_at=vals["acquired_at"],
        renewed_at=vals["renewed_at"],
        ttl_ns=vals["ttl"],
        meta=vals["meta"] if vals["meta"] is not None else {},
    )


def decode_record(data: bytes, path: str = "") -> LeaseRecord:
    """Decode lease bytes with Go ``json.Unmarshal`` semantics; errors raise :class:`LeaseCorrupt`.

    A nil and an empty ``meta`` both decode to ``{}``.
    """
    if len(data) > MAX_LEASE_BYTES:
        raise LeaseCorrupt(path, f"lease file larger than {MAX_LEASE_BYTES} bytes")
    try:
        top = _parse_json(bytes(data))
        return _unmarshal_record(top)
    except (_SyntaxError, _TypeErr) as exc:
        raise LeaseCorrupt(path, str(exc)) from None


# --- filesystem primitives -----------------------------------------------------------------


def _read_bounded(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_LEASE_BYTES + 1)


def _read_record(path: str, context: str = "") -> LeaseRecord:
    """Go ``readRecord``: missing → LeaseNotFound, other OS errors → LeaseIOError, bad → corrupt."""
    try:
        data = _read_bounded(path)
    except FileNotFoundError as exc:
        raise LeaseNotFound(path, context) from exc
    except OSError as exc:
        raise LeaseIOError(f"{context}read {path}: {exc.strerror or exc}", exc) from exc
    try:
        return decode_record(data, path)
    except LeaseCorrupt as exc:
        if context:
            raise LeaseCorrupt(path, exc.reason) from None
        raise


def _go_remove(path: str) -> None:
    """Go ``os.Remove``: unlink, or rmdir if it is a directory."""
    try:
        os.unlink(path)
    except OSError as first:
        try:
            os.rmdir(path)
        except OSError:
            raise first from None


def _write_temp(path: str, rec: LeaseRecord) -> str:
    """Go ``writeTemp``: ``.lease-<random>.tmp`` next to path, mode 0600 (os.CreateTemp)."""
    data = encode_record(rec)
    directory = os.path.dirname(path) or "."
    for _ in range(10000):
        name = os.path.join(directory, f".lease-{int.from_bytes(os.urandom(4), 'big')}.tmp")
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError:
            os.close(fd)
            _silent_remove(name)
            raise
        os.close(fd)
        return name
    raise LeaseIOError(
        f"liblease: could not create a temp file in {directory}",
        FileExistsError(errno.EEXIST, "too many temp name collisions"),
    )


def _silent_remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _try_create(path: str, rec: LeaseRecord) -> bool:
    """Go ``tryCreate``: exclusive publish via hard link; False when a lease file exists."""
    tmp = _write_temp(path, rec)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        _silent_remove(tmp)
    return True


def _write_record(path: str, rec: LeaseRecord) -> None:
    """Go ``writeRecord``: temp + atomic rename; a reader never sees a half-written lease."""
    tmp = _write_temp(path, rec)
    try:
        os.replace(tmp, path)
    finally:
        _silent_remove(tmp)


def stale_after_ns(ttl_ns: int) -> int:
    """Lock staleness window: ``min(5 s, ttl)`` floored at 100 ms."""
    stale = LOCK_STALE_AFTER_NS
    if 0 < ttl_ns < stale:
        stale = ttl_ns
    return max(stale, LOCK_STALE_FLOOR_NS)


def _deadline(timeout: float | None) -> float:
    wait = LOCK_MAX_WAIT_S if timeout is None else min(LOCK_MAX_WAIT_S, timeout)
    return time.monotonic() + wait


class _LockTimeout(Exception):
    pass


def _acquire_lock(path: str, ttl_ns: int, timeout: float | None) -> str:
    """Go ``acquireLeaseLock``: mkdir ``<lease>.acquire.lock``; reclaim a stale lock; 1 ms poll.

    Staleness compares the lock's mtime with the real wall clock (mtimes are real, so the
    injectable record clock is not used here).  Returns the lock path; raises _LockTimeout.
    Reclaiming differs from Go (docs/conformance/liblease-herd.md): see :func:`_reclaim_stale_lock`.
    """
    lock = path + ".acquire.lock"
    if timeout is not None and timeout <= 0:
        raise _LockTimeout("context canceled")  # a cancelled context fails before touching the fs
    stale = stale_after_ns(ttl_ns)
    deadline = _deadline(timeout)
    while True:
        try:
            os.mkdir(lock, 0o700)
            return lock
        except FileExistsError:
            pass
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            continue
        if time.time_ns() - st.st_mtime_ns > stale and _reclaim_stale_lock(lock, st, stale):
            continue
        if time.monotonic() >= deadline:
            raise _LockTimeout("context deadline exceeded")
        time.sleep(LOCK_POLL_S)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    # An inode number can come back at once for a new directory, but not with the stale one's mtime;
    # ctime is left out because the rename itself changes it.
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _reclaim_stale_lock(lock: str, judged: os.stat_result, stale_ns: int) -> bool:
    """Remove the acquisition lock judged stale — that directory and never a fresh one.

    Go's liblease stats the lock and then removes whatever is at the path; a second contender that
    judged the same stale lock can so remove the first one's fresh lock, and both then own the lease.
    Here reclaimers take turns through ``<lock>.reclaim`` (an mkdir lock of its own), look at the
    lock again inside it, and move exactly the directory they judged aside by an atomic rename before
    removing it. Returns ``False`` when another reclaim is in progress (the caller polls again)."""
    mutex = lock + RECLAIM_SUFFIX
    try:
        os.mkdir(mutex, 0o700)
    except FileExistsError:
        # a reclaim takes a few system calls: one that lasts longer than this was abandoned
        _retire_if_stale(mutex, max(stale_ns, RECLAIM_STALE_FLOOR_NS))
        return False
    except OSError:
        return False
    try:
        mine = os.stat(mutex)
    except OSError:
        return True
    try:
        try:
            cur = os.stat(lock)
        except OSError:
            return True
        if _identity(cur) == _identity(judged):
            _retire(lock, cur)
        return True
    finally:
        with contextlib.suppress(OSError):
            if _identity(os.stat(mutex)) == _identity(mine):
                os.rmdir(mutex)


def _retire_if_stale(directory: str, stale_ns: int) -> None:
    with contextlib.suppress(OSError):
        st = os.stat(directory)
        if time.time_ns() - st.st_mtime_ns > stale_ns:
            _retire(directory, st)


def _retire(directory: str, expected: os.stat_result) -> None:
    """Rename ``directory`` to a name of its own, then remove it if it is the one ``expected``.

    If a process outside this protocol (Go's liblease) put a new directory there in between, that one
    is renamed back while the name is still free."""
    grave = f"{directory}{GRAVE_INFIX}{uuid.uuid4().hex}"
    try:
        os.rename(directory, grave)
    except OSError:
        return
    try:
        took = os.stat(grave)
        if _identity(took) == _identity(expected):
            os.rmdir(grave)
        elif not os.path.lexists(directory):
            os.rename(grave, directory)
    except OSError:
        pass


def _sweep_leftovers(path: str, stale_ns: int) -> None:
    """Remove what killed processes left next to the lease: ``.lease-*.tmp`` temp files (a renew or
    takeover killed between writing and renaming) and renamed-aside stale locks, once they are older
    than the lock's staleness window. Called while holding the acquisition lock, when every such
    file is no one's work in progress any more."""
    directory = os.path.dirname(path) or "."
    lock_grave = os.path.basename(path) + ".acquire.lock" + GRAVE_INFIX
    now = time.time_ns()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        is_temp = _TEMP_NAME.fullmatch(name) is not None
        if not is_temp and not name.startswith(lock_grave):
            continue
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            st = os.lstat(full)
            if now - st.st_mtime_ns <= stale_ns:
                continue
            if is_temp and stat.S_ISREG(st.st_mode):
                os.unlink(full)
            elif not is_temp and stat.S_ISDIR(st.st_mode):
                os.rmdir(full)


def _release_lock(lock: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(lock)


def _timeout_error(prefix: str, why: str) -> AcquireTimeout:
    return AcquireTimeout(f"{prefix}liblease: timed out waiting for the acquisition lock: {why}")


def _hostname() -> str:
    try:
        return os.uname().nodename
    except (AttributeError, OSError):
        try:
            return socket.gethostname()
        except OSError:
            return ""


def _default_clock() -> int:
    return time.time_ns()


# --- public operations ----------------------------------------------------------------------


def inspect(path: str | os.PathLike[str]) -> LeaseRecord:
    """Go ``liblease.Inspect``: plain read + parse, no lock.

    Raises :class:`LeaseNotFound` (a FileNotFoundError) when missing, :class:`LeaseCorrupt` when
    unparsable or larger than 1 MiB, :class:`LeaseIOError` for other read errors.
    """
    return _read_record(os.fspath(path))


def _held_error(cur: LeaseRecord) -> LeaseHeld:
    return LeaseHeld(
        f"liblease: lease is held by another instance: instance {cur.instance_id} "
        f"(pid {cur.pid}) until {gotime.format_rfc3339(expires_at(cur))}"
    )


class LeaseHandle:
    """A held lease (Go ``*liblease.Lease``). Safe to share between threads."""

    def __init__(self, path: str, record: LeaseRecord, clock: Clock = _default_clock) -> None:
        self._path = path
        self._rec = record
        self._clock = clock
        self._mu = threading.Lock()

    @property
    def path(self) -> str:
        return self._path

    @property
    def record(self) -> LeaseRecord:
        return self._rec

    @property
    def instance_id(self) -> str:
        return self._rec.instance_id

    def expired(self) -> bool:
        """Go ``Lease.Expired``: this holder's last record lapsed (``now > expiry``)."""
        return expired_for_liblease(self._rec, self._clock())

    def renew(self, *, timeout: float | None = None) -> LeaseRecord:
        """Go ``Lease.Renew``: returns the new record.

        :class:`LeaseLost` when the file names another instance or this holder's own record
        already expired; read errors (missing → LeaseNotFound, corrupt, I/O) are NOT LeaseLost;
        a lock timeout is :class:`AcquireTimeout`.
        """
        with self._mu:
            try:
                lock = _acquire_lock(self._path, self._rec.ttl_ns, timeout)
            except _LockTimeout as exc:
                raise _timeout_error("liblease: renew lock: ", str(exc)) from None
            except OSError as exc:
                raise LeaseIOError(f"liblease: renew lock: {exc}", exc) from exc
            try:
                cur = _read_record(self._path, "liblease: renew: ")
                if cur.instance_id != self._rec.instance_id:
                    raise LeaseLost(
                        f"liblease: lease was taken over by another instance: now held by {cur.instance_id}"
                    )
                if expired_for_liblease(self._rec, self._clock()):
                    raise LeaseLost(
                        "liblease: lease was taken over by another instance: lease expired before renewal"
                    )
                new = _replace_renewed(self._rec, gotime.now(self._clock()))
                try:
                    _write_record(self._path, new)
                except OSError as exc:
                    raise LeaseIOError(f"liblease: renew: write: {exc}", exc) from exc
                self._rec = new
                return new
            finally:
                _release_lock(lock)

    def release(self, *, timeout: float | None = None) -> None:
        """Go ``Lease.Release``: delete the file only if still ours; idempotent."""
        with self._mu:
            try:
                lock = _acquire_lock(self._path, self._rec.ttl_ns, timeout)
            except _LockTimeout as exc:
                raise _timeout_error("", str(exc)) from None
            except OSError as exc:
                raise LeaseIOError(f"liblease: release lock: {exc}", exc) from exc
            try:
                try:
                    cur = _read_record(self._path)
                except LeaseNotFound:
                    return
                if cur.instance_id != self._rec.instance_id:
                    return
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    return
                except OSError as exc:
                    raise LeaseIOError(f"liblease: release: {exc}", exc) from exc
            finally:
                _release_lock(lock)

    def __repr__(self) -> str:
        return f"LeaseHandle(path={self._path!r}, instance_id={self._rec.instance_id!r})"


def _replace_renewed(rec: LeaseRecord, renewed: GoTime) -> LeaseRecord:
    return LeaseRecord(
        instance_id=rec.instance_id,
        pid=rec.pid,
        host=rec.host,
        acquired_at=rec.acquired_at,
        renewed_at=renewed,
        ttl_ns=rec.ttl_ns,
        meta=rec.meta,
    )


def acquire(
    path: str | os.PathLike[str],
    ttl_ns: int,
    meta: Mapping[str, str] | None = None,
    *,
    timeout: float | None = None,
    now: Clock | None = None,
) -> LeaseHandle:
    """Go ``liblease.Acquire``: claim the lease if free, expired, corrupt or unreadable.

    ``timeout`` (seconds) bounds the acquisition-lock wait (never more than 30 s; ``<= 0`` acts
    as an already-cancelled context: AcquireTimeout before touching the filesystem).  ``now``
    returns wall-clock nanoseconds (injectable for tests).  Raises :class:`LeaseHeld`,
    :class:`AcquireTimeout`, :class:`LeaseIOError`, :class:`ValueError` (ttl <= 0).
    """
    p = os.fspath(path)
    if isinstance(ttl_ns, bool) or not isinstance(ttl_ns, int) or ttl_ns <= 0:
        raise ValueError("liblease: ttl must be positive")
    clock = now or _default_clock
    try:
        lock = _acquire_lock(p, ttl_ns, timeout)
    except _LockTimeout as exc:
        raise _timeout_error("", str(exc)) from None
    except OSError as exc:
        raise LeaseIOError(f"liblease: acquire lock: {exc}", exc) from exc
    try:
        t = gotime.now(clock())
        rec = LeaseRecord(
            instance_id=str(uuid.uuid4()),
            pid=os.getpid(),
            host=_hostname(),
            acquired_at=t,
            renewed_at=t,
            ttl_ns=ttl_ns,
            meta=dict(meta) if meta else {},
        )
        try:
            if _try_create(p, rec):
                _sweep_leftovers(p, stale_after_ns(ttl_ns))
                return LeaseHandle(p, rec, clock)
        except OSError as exc:
            raise LeaseIOError(f"liblease: acquire: {exc}", exc) from exc
        try:
            cur = _read_record(p)
        except LeaseError:
            cur = None  # corrupt or unreadable: treated as stale
        if cur is not None and not expired_for_liblease(cur, t.unix_ns):
            raise _held_error(cur)
        try:
            _write_record(p, rec)
        except OSError as exc:
            raise LeaseIOError(f"liblease: takeover: {exc}", exc) from exc
        after = _read_record(p)
        if after.instance_id != rec.instance_id:
            raise LeaseHeld(
                "liblease: lease is held by another instance: lost takeover race to instance "
                f"{after.instance_id}"
            )
        _sweep_leftovers(p, stale_after_ns(ttl_ns))
        return LeaseHandle(p, rec, clock)
    finally:
        _release_lock(lock)


# --- CLI -------------------------------------------------------------------------------------


def _record_json(rec: LeaseRecord) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(encode_record(rec))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modeldconn.lease inspect DATA_ROOT [--json]``."""
    import argparse

    exits = (
        "exit status:\n  0  a record was read (held or expired: see liblease / probe)\n"
        "  1  no readable lease (missing, corrupt or unreadable; one line on stderr says which)\n"
        "  2  usage error"
    )
    parser = argparse.ArgumentParser(
        prog="python -m modeldconn.lease",
        description=__doc__.split("\n")[0],
        epilog=exits,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    ins = sub.add_parser(
        "inspect",
        help="print the lease record, its expiry and freshness",
        epilog=exits,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ins.add_argument("data_root", help="the data root holding modeld.lease")
    ins.add_argument("--json", action="store_true", help="one JSON object on stdout (default: text)")
    args = parser.parse_args(argv)

    path = lease_path(args.data_root)
    try:
        rec = inspect(path)
    except LeaseNotFound:
        print(f"no lease at {path} (modeld is not running)", file=sys.stderr)
        return 1
    except LeaseError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    now_ns = time.time_ns()
    exp = expires_at(rec)
    held = not expired_for_liblease(rec, now_ns)
    live = live_for_probe(rec, now_ns)
    if args.json:
        try:
            doc = _record_json(rec)
        except ValueError:
            doc = {"instance_id": rec.instance_id, "pid": rec.pid, "host": rec.host, "ttl": rec.ttl_ns}
        doc.update(
            {
                "path": path,
                "expires_at": gotime.format_rfc3339nano(exp),
                "expired": not held,
                "probe_live": live,
                "ttl_left_ns": exp.unix_ns - now_ns,
            }
        )
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    lines = [
        f"lease:        {path}",
        f"instance_id:  {rec.instance_id}",
        f"pid:          {rec.pid}",
        f"host:         {rec.host}",
        f"acquired_at:  {gotime.format_rfc3339nano(rec.acquired_at)}",
        f"renewed_at:   {gotime.format_rfc3339nano(rec.renewed_at)}",
        f"ttl:          {gotime.format_duration(rec.ttl_ns)}",
    ]
    lines += [f"meta.{k}:{' ' * max(1, 8 - len(k))}{v}" for k, v in sorted(rec.meta.items())]
    left = exp.unix_ns - now_ns
    lines += [
        f"expires_at:   {gotime.format_rfc3339nano(exp)}",
        f"liblease:     {'held' if held else 'expired'} (expired only when now > expiry)",
        f"probe:        {'live' if live else 'stale'} (live only when now < expiry)",
        f"ttl_left:     {gotime.format_duration(max(min(left, _INT64_MAX), _INT64_MIN))}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
