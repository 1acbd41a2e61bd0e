"""The one Go ``encoding/json`` codec of the Compute wire.

Every message of ``contenox.transport.v1`` is a Go struct marshalled by Go's
``encoding/json`` (Go 1.26, v1 semantics).  The generated protobuf classes describe
those structs (``json_name`` = the JSON key, ``contenox.gojson.v1`` options =
omitempty / pointer / Go type names); this module writes and reads them byte for
byte as Go does:

* :func:`encode` — ``json.Marshal``: compact, key order = field order, omitempty,
  nil pointer / nil slice = ``null``, value structs always written in full,
  integers as JSON integers, floats in Go's shortest form ('e' form outside
  [1e-6, 1e21)), ``[]byte`` as padded standard base64, Go's string escaping
  (``\\u003c \\u003e \\u0026 \\u2028 \\u2029``, ``\\b \\f \\n \\r \\t``, other
  controls ``\\u00xx``).
* :func:`decode` — ``json.Unmarshal``: the validity scan of the whole input runs
  first (syntax errors win, max depth 10000), then the value is stored: keys are
  matched exactly, then case-insensitively with Go's folding; unknown keys are
  ignored; ``null`` keeps the previous value (clears pointers and slices);
  duplicate keys: the last wins (objects merge); type errors are saved, decoding
  goes on, the first one is raised as :class:`GoJSONError` whose ``str()`` is Go's
  text.

Known limits (protobuf cannot carry them): a nil vs. empty non-nil slice (an
empty repeated field is written ``null`` without omitempty, ``[]`` is decoded to
empty), invalid UTF-8 inside Go strings (decoded to U+FFFD as Go does; a Python
``str`` cannot hold invalid UTF-8 so ``\\ufffd`` escapes are never written), and
the hidden-capacity reuse of Go slices across duplicate keys.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import math
import re
import struct
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from modeldconn.wire._gen.contenox.gojson.v1 import gojson_pb2

__all__ = [
    "GoJSONError",
    "decode",
    "decode_value",
    "encode",
    "encode_value",
    "format_float32",
    "format_float64",
    "go_string",
    "grpc_unmarshal_message",
    "hash_string",
    "manifest_digest",
    "token_hash",
]

M = TypeVar("M", bound=Message)

MAX_DEPTH: Final = 10000
_UNARY_PREFIX: Final = "grpc: error unmarshalling request: "
_STREAM_PREFIX: Final = "grpc: failed to unmarshal the received message: "


class GoJSONError(Exception):
    """A Go ``encoding/json`` error; ``str()`` is exactly Go's ``err.Error()``.

    ``kind`` is ``"syntax"`` (``*json.SyntaxError``), ``"type"``
    (``*json.UnmarshalTypeError``), ``"base64"`` (``base64.CorruptInputError``) or
    ``"unsupported"`` (``*json.UnsupportedValueError`` from :func:`encode`).
    ``field`` is the dotted JSON path (``config.NumCtx``) and ``go_type`` the Go
    type named in the text; ``struct`` the innermost Go struct name; ``value`` the
    JSON value kind (``number``, ``number 1.5``, ``string``, …); ``offset`` the byte
    offset Go reports (syntax errors: bytes read; base64: input byte).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        field: str | None = None,
        go_type: str | None = None,
        struct: str | None = None,
        value: str | None = None,
        offset: int | None = None,
        stream: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.field = field
        self.go_type = go_type
        self.struct = struct
        self.value = value
        self.offset = offset
        self.stream = stream

    def __str__(self) -> str:
        return self.message

    @property
    def grpc_message(self) -> str:
        """The grpc-go status message of a request that fails to decode (§9.4, recorded)."""
        return grpc_unmarshal_message(self.message, stream=self.stream)


def grpc_unmarshal_message(json_error: str, *, stream: bool = False) -> str:
    """grpc-go's wording around a codec error: unary handlers vs. the first message of a stream."""
    return (_STREAM_PREFIX if stream else _UNARY_PREFIX) + json_error


# --------------------------------------------------------------------------- plans

# the gojson option extensions (typed loosely: the stubs cannot express them)
_OMITEMPTY: Any = gojson_pb2.omitempty
_POINTER: Any = gojson_pb2.pointer
_GO_TYPE: Any = gojson_pb2.go_type
_GO_NAME: Any = gojson_pb2.go_name

_K_STR: Final = 1
_K_BOOL: Final = 2
_K_INT: Final = 3
_K_UINT: Final = 4
_K_F32: Final = 5
_K_F64: Final = 6
_K_BYTES: Final = 7
_K_MSG: Final = 8

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1

_T = FieldDescriptor
_KIND_OF_TYPE: Final = {
    _T.TYPE_STRING: (_K_STR, "string"),
    _T.TYPE_BOOL: (_K_BOOL, "bool"),
    _T.TYPE_INT64: (_K_INT, "int"),
    _T.TYPE_INT32: (_K_INT, "int"),
    _T.TYPE_SINT64: (_K_INT, "int"),
    _T.TYPE_UINT64: (_K_UINT, "uint64"),
    _T.TYPE_UINT32: (_K_UINT, "uint32"),
    _T.TYPE_FLOAT: (_K_F32, "float32"),
    _T.TYPE_DOUBLE: (_K_F64, "float64"),
    _T.TYPE_BYTES: (_K_BYTES, "[]uint8"),
    _T.TYPE_MESSAGE: (_K_MSG, ""),
}


class _FieldPlan:
    __slots__ = (
        "elem_type",
        "go_type",
        "key",
        "kind",
        "msg",
        "name",
        "omitempty",
        "optional",
        "pointer",
        "prefix",
        "repeated",
    )

    def __init__(self, fd: FieldDescriptor) -> None:
        opts = fd.GetOptions()
        self.name: str = fd.name
        self.key: str = fd.json_name
        self.omitempty: bool = bool(opts.Extensions[_OMITEMPTY])
        self.pointer: bool = bool(opts.Extensions[_POINTER])
        try:
            kind, elem_type = _KIND_OF_TYPE[fd.type]
        except KeyError:  # pragma: no cover - the proto uses none of these
            raise TypeError(f"gojson codec: unsupported field type {fd.type} of {fd.full_name}") from None
        self.kind: int = kind
        self.repeated: bool = bool(fd.is_repeated)
        self.optional: bool = (not self.repeated) and kind != _K_MSG and fd.has_presence
        self.msg: _MsgPlan | None = None
        if kind == _K_MSG:
            assert fd.message_type is not None
            self.msg = _plan(fd.message_type)
            elem_type = self.msg.go_name
        override = str(opts.Extensions[_GO_TYPE])
        if override:
            elem_type = override
        self.elem_type: str = elem_type
        # The type Go names when the field's value itself has the wrong JSON kind
        # (after indirection through a pointer: *float64 -> float64).
        self.go_type: str = ("[]" + elem_type) if self.repeated else elem_type
        self.prefix: str = '"' + _escape_key(self.key) + '":'


class _MsgPlan:
    __slots__ = ("by_exact", "by_fold", "cls", "fields", "go_name", "name_fields", "struct_name")

    def __init__(self, desc: Descriptor) -> None:
        self.go_name: str = str(desc.GetOptions().Extensions[_GO_NAME]) or desc.name
        # reflect.Type.Name(): the unqualified name; "" for an anonymous struct.
        self.struct_name: str = "" if self.go_name.startswith("struct ") else self.go_name.rsplit(".", 1)[-1]
        self.cls: Any = None
        self.fields: tuple[_FieldPlan, ...] = ()
        self.by_exact: dict[str, _FieldPlan] = {}
        self.by_fold: dict[str, _FieldPlan] = {}


_PLANS: dict[str, _MsgPlan] = {}


def _plan(desc: Descriptor) -> _MsgPlan:
    plan = _PLANS.get(desc.full_name)
    if plan is not None:
        return plan
    plan = _MsgPlan(desc)
    _PLANS[desc.full_name] = plan  # before the fields: recursive types
    from google.protobuf import message_factory

    plan.cls = message_factory.GetMessageClass(desc)
    fields = tuple(_FieldPlan(fd) for fd in sorted(desc.fields, key=lambda f: f.index))
    plan.fields = fields
    for f in fields:
        plan.by_exact.setdefault(f.key, f)
        plan.by_fold.setdefault(_fold_name(f.key), f)
    return plan


def _plan_of(msg_or_cls: Message | type[Message]) -> _MsgPlan:
    desc: Any = msg_or_cls.DESCRIPTOR
    plan = _PLANS.get(desc.full_name)
    return plan if plan is not None else _plan(desc)


# Go fold.go: ASCII upper-casing, other runes to the smallest rune of their
# unicode.SimpleFold orbit.  Field names are ASCII, so a non-ASCII rune can only
# matter when its orbit reaches ASCII: U+017F (ſ -> S) and U+212A (Kelvin -> K).
_FOLD_SPECIAL: Final = {"\u017f": "S", "\u212a": "K"}


def _fold_name(key: str) -> str:
    if key.isascii():
        return key.upper()
    out = []
    for ch in key:
        if ch < "\x80":
            out.append(ch.upper())
        else:
            special = _FOLD_SPECIAL.get(ch)
            # any other non-ASCII rune folds to a non-ASCII rune: keep a
            # non-ASCII marker so it can never equal an ASCII field name.
            out.append(special if special is not None else _fold_rune(ch))
    return "".join(out)


def _fold_rune(ch: str) -> str:
    cands = {ch, ch.lower(), ch.upper(), ch.casefold()}
    best = min((c for c in cands if len(c) == 1 and not c.isascii()), default=ch)
    return best


# --------------------------------------------------------------------------- encoding

_HTML_ESCAPES: Final = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_NEEDS_HTML: Final = re.compile("[<>&\u2028\u2029]")
_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring


def go_string(s: str) -> str:
    """A Go-encoded JSON string literal (with quotes) of ``s``."""
    out: str = _encode_basestring(s)
    if _NEEDS_HTML.search(out) is not None:
        out = out.translate(_HTML_ESCAPES)
    return out


def _escape_key(key: str) -> str:
    return go_string(key)[1:-1]


def _unsupported(x: float, bits: int) -> GoJSONError:
    text = "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
    return GoJSONError("json: unsupported value: " + text, kind="unsupported", value=text)


def _go_float_text(digits: str, exp: int, neg: bool, e_form: bool) -> str:
    """Render ``0.digits × 10**exp`` like strconv 'f'/'e' with precision -1, then Go's
    json cleanup (``e-09`` -> ``e-9``; positive exponents here are always >= 21)."""
    if e_form:
        e = exp - 1
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out = f"{mant}e-{-e}" if e < 0 else f"{mant}e+{e:02d}"
    else:
        n = len(digits)
        if exp <= 0:
            out = "0." + "0" * (-exp) + digits
        elif exp >= n:
            out = digits + "0" * (exp - n)
        else:
            out = digits[:exp] + "." + digits[exp:]
    return "-" + out if neg else out


def _digits_of_repr(r: str) -> tuple[str, int]:
    """(digits, exp) with value = 0.digits × 10**exp, from a Python shortest repr (no sign)."""
    if "e" in r or "E" in r:
        mant, _, es = r.lower().partition("e")
        e = int(es)
    else:
        mant, e = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    exp = len(ip) - lead_zeros + e
    digits = digits.rstrip("0")
    return digits, exp


def format_float64(x: float) -> str:
    """Go ``encoding/json`` text of a float64."""
    if x != x or x in (math.inf, -math.inf):
        raise _unsupported(x, 64)
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    a = abs(x)
    digits, exp = _digits_of_repr(repr(a))
    return _go_float_text(digits, exp, x < 0, a < 1e-6 or a >= 1e21)


_F32: Final = struct.Struct("<f")
_U32: Final = struct.Struct("<I")


def _to_f32(x: float) -> float:
    """float64 -> float32, round half to even; overflow gives ±inf (as a Go conversion)."""
    try:
        return float(_F32.unpack(_F32.pack(x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def _parse_f32(s: str) -> float:
    """strconv.ParseFloat(s, 32): correctly rounded decimal -> float32 (no double rounding)."""
    d = float(s)
    f = _to_f32(d)
    if f == d or math.isinf(f) or math.isinf(d):
        return f
    other = _next_f32(f, -1 if f > d else 1)
    if math.isinf(other) or (f + other) / 2 != d:
        return f  # d is not on a float32 midpoint: rounding through float64 is exact
    exact = Decimal(s)
    dd = Decimal(d)
    if exact == dd:
        return f
    return max(f, other) if exact > dd else min(f, other)


def _next_f32(f: float, direction: int) -> float:
    if f == 0:
        return math.copysign(1.401298464324817e-45, direction)
    bits = _U32.unpack(_F32.pack(f))[0]
    bits = bits + 1 if (f > 0) == (direction > 0) else bits - 1
    return float(_F32.unpack(_U32.pack(bits))[0])


_F32_1EM6: Final = 9.999999974752427e-07  # float32(1e-6)
_F32_1E21: Final = 1.0000000200408773e21  # float32(1e21)


def _f32_ok(s: str, a: float) -> bool:
    return _parse_f32(s) == a


def _f32_shortest(a: float) -> str:
    """The shortest decimal (as '%e' text) that parses back to the float32 ``a`` > 0;
    among several of that length the closest (strconv's shortest formatting)."""
    mant_zero = (_U32.unpack(_F32.pack(a))[0] & 0x7FFFFF) == 0
    if mant_zero:
        # asymmetric rounding interval at a power of two: the closest p-digit
        # decimal may fall outside while the next one up fits -> linear search
        for p in range(1, 10):
            s = f"{a:.{p - 1}e}"
            mant, _, e = s.partition("e")
            dig = str(int(mant.replace(".", "")) + 1)
            ex = int(e)
            if len(dig) > p:
                dig, ex = dig[:p], ex + 1
            s2 = (dig[0] + "." + dig[1:] if p > 1 else dig) + f"e{ex}"
            if _f32_ok(s, a):
                # Dragonbox's shorter-interval case rounds a tie up (to even only for 2**-54)
                if a != 2.0**-54 and Decimal(s2) - Decimal(a) == Decimal(a) - Decimal(s) and _f32_ok(s2, a):
                    return s2
                return s
            if _f32_ok(s2, a):
                return s2
        return f"{a:.8e}"  # pragma: no cover
    lo, hi = 1, 9  # 9 significant digits always round-trip a float32
    best = f"{a:.8e}"
    while lo < hi:
        mid = (lo + hi) // 2
        s = f"{a:.{mid - 1}e}"
        if _f32_ok(s, a):
            hi, best = mid, s
        else:
            lo = mid + 1
    if hi != 9 or best == f"{a:.8e}":
        return f"{a:.{hi - 1}e}"
    return best


def format_float32(x: float) -> str:
    """Go ``encoding/json`` text of a float32 (``x`` is rounded to float32 first)."""
    if x != x or x in (math.inf, -math.inf):
        raise _unsupported(x, 32)
    x = _to_f32(x)
    if math.isinf(x):
        raise _unsupported(x, 32)
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    a = abs(x)
    digits, exp = _digits_of_repr(_f32_shortest(a))
    # encode.go compares in float32: float32(1e-6) and float32(1e21) are the cutoffs
    return _go_float_text(digits, exp, x < 0, a < _F32_1EM6 or a >= _F32_1E21)


def _enc_str(s: str) -> str:
    out: str = _encode_basestring(s)
    if _NEEDS_HTML.search(out) is not None:
        out = out.translate(_HTML_ESCAPES)
    return out


def _enc_scalar(kind: int, v: Any) -> str:
    if kind == _K_STR:
        return _enc_str(v)
    if kind in (_K_INT, _K_UINT):
        return str(v)
    if kind == _K_BOOL:
        return "true" if v else "false"
    if kind == _K_F64:
        return format_float64(v)
    if kind == _K_F32:
        return format_float32(v)
    if kind == _K_BYTES:
        return '"' + base64.b64encode(v).decode("ascii") + '"'
    raise AssertionError(kind)  # pragma: no cover


def _is_empty_scalar(kind: int, v: Any) -> bool:
    return not v  # "", 0, 0.0, -0.0, False, b""


def _enc_msg(msg: Message, plan: _MsgPlan, out: list[str]) -> None:
    out.append("{")
    first = True
    for f in plan.fields:
        kind = f.kind
        if f.repeated:
            seq = getattr(msg, f.name)
            if not seq:
                if f.omitempty:
                    continue
                piece = "null"
            elif kind == _K_MSG:
                sub_plan = f.msg
                assert sub_plan is not None
                parts: list[str] = []
                parts_append = parts.append
                for item in seq:
                    parts_append("," if parts else "[")
                    _enc_msg(item, sub_plan, parts)
                parts_append("]")
                piece = "".join(parts)
            elif kind == _K_STR:
                piece = "[" + ",".join([_enc_str(s) for s in seq]) + "]"
            elif kind in (_K_INT, _K_UINT):
                piece = "[" + ",".join(map(str, seq)) + "]"
            elif kind == _K_F32:
                piece = "[" + ",".join([format_float32(x) for x in seq]) + "]"
            else:
                piece = "[" + ",".join([_enc_scalar(kind, x) for x in seq]) + "]"
        elif kind == _K_MSG:
            sub_plan = f.msg
            assert sub_plan is not None
            if f.pointer and not msg.HasField(f.name):
                if f.omitempty:
                    continue
                piece = "null"
            else:
                out.append(f.prefix if first else "," + f.prefix)
                first = False
                _enc_msg(getattr(msg, f.name), sub_plan, out)
                continue
        elif f.optional:
            if not msg.HasField(f.name):
                if f.omitempty:
                    continue
                piece = "null"
            else:
                piece = _enc_scalar(kind, getattr(msg, f.name))
        else:
            v = getattr(msg, f.name)
            if f.omitempty and not v:
                continue
            if kind == _K_STR:
                piece = _enc_str(v)
            elif kind in (_K_INT, _K_UINT):
                piece = str(v)
            elif kind == _K_BOOL:
                piece = "true" if v else "false"
            elif kind == _K_BYTES and not v:
                piece = "null"  # a nil []byte without omitempty
            else:
                piece = _enc_scalar(kind, v)
        if first:
            out.append(f.prefix)
            first = False
        else:
            out.append("," + f.prefix)
        out.append(piece)
    out.append("}")


def _to_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates stand for invalid UTF-8: Go writes \ufffd for each
        return re.sub("[\ud800-\udfff]", "\\\\ufffd", text).encode("utf-8")


def encode(msg: Message) -> bytes:
    """``json.Marshal`` of the Go struct ``msg`` describes: the exact bytes Go writes."""
    out: list[str] = []
    _enc_msg(msg, _plan_of(msg), out)
    return _to_utf8("".join(out))


def encode_value(value: Any) -> bytes:
    """``json.Marshal`` of a plain value: ``None``, bool, int, float (float64), str,
    bytes (base64), list/tuple (array), dict (object with sorted string keys) or a
    generated message."""
    out: list[str] = []
    _enc_any(value, out)
    return _to_utf8("".join(out))


def _enc_any(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(format_float64(v))
    elif isinstance(v, str):
        out.append(_enc_str(v))
    elif isinstance(v, bytes | bytearray | memoryview):
        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    elif isinstance(v, Message):
        _enc_msg(v, _plan_of(v), out)
    elif isinstance(v, dict):
        out.append("{")
        for i, k in enumerate(sorted(v)):
            if not isinstance(k, str):
                raise TypeError("encode_value: map keys must be str")
            out.append(("," if i else "") + _enc_str(k) + ":")
            _enc_any(v[k], out)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _enc_any(item, out)
        out.append("]")
    else:
        raise TypeError(f"encode_value: unsupported type {type(v).__name__}")


# --------------------------------------------------------------------------- parsing


class _Num(str):
    """A JSON number literal, kept as its text."""

    __slots__ = ()


class _Obj(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in input order (duplicates kept)."""

    __slots__ = ()


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end  # one U+FFFD per invalid byte, as Go


codecs.register_error("modeldconn.gojson", _go_replace)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_decoder = json.JSONDecoder(
    object_pairs_hook=_Obj,
    parse_int=_Num,
    parse_float=_Num,
    parse_constant=_reject_constant,
)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _parse(data: bytes) -> tuple[Any, bool]:
    """Parse ``data`` as Go would accept it; returns (tree, may_hold_surrogates)."""
    text = data.decode("utf-8", "modeldconn.gojson")
    escapes = "\\u" in text
    try:
        return _decoder.decode(text), escapes
    except (ValueError, RecursionError):
        pass
    err = _check_valid(data)
    if err is not None:
        raise err
    return _SlowParser(text).parse(), escapes


def _quote_char(c: int) -> str:
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + _strconv_quote_rune(c) + "'"


def _strconv_quote_rune(c: int) -> str:
    short = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 0x5C: "\\\\"}
    if c in short:
        return short[c]
    ch = chr(c)
    if c == 0x20 or (c != 0x7F and unicodedata.category(ch)[0] in "LMNPS"):
        return ch
    if c < 0x80:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}"


def _syntax(c: int, context: str, offset: int) -> GoJSONError:
    msg = "invalid character " + _quote_char(c) + " " + context
    return GoJSONError(msg, kind="syntax", offset=offset)


_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_SPACE: Final = frozenset(b" \t\r\n")
_DIGITS: Final = frozenset(b"0123456789")


def _check_valid(data: bytes) -> GoJSONError | None:
    """A port of Go's scanner (checkValid + eof): the first syntax error, or None."""
    stack: list[int] = []  # 0 object key, 1 object value, 2 array value
    state = "begin"
    end_top = False
    n = len(data)

    def end_value(c: int, i: int) -> tuple[str, GoJSONError | None]:
        nonlocal end_top
        if not stack:
            end_top = True
            if c in _SPACE:
                return "endtop", None
            return "endtop", _syntax(c, "after top-level value", i)
        if c in _SPACE:
            return "endvalue", None
        ps = stack[-1]
        if ps == 0:
            if c == 0x3A:
                stack[-1] = 1
                return "begin", None
            return "", _syntax(c, "after object key", i)
        if ps == 1:
            if c == 0x2C:
                stack[-1] = 0
                return "beginstring", None
            if c == 0x7D:
                stack.pop()
                if not stack:
                    end_top = True
                    return "endtop", None
                return "endvalue", None
            return "", _syntax(c, "after object key:value pair", i)
        if c == 0x2C:
            return "begin", None
        if c == 0x5D:
            stack.pop()
            if not stack:
                end_top = True
                return "endtop", None
            return "endvalue", None
        return "", _syntax(c, "after array element", i)

    def step(c: int, i: int) -> GoJSONError | None:
        nonlocal state
        s = state
        err: GoJSONError | None = None
        if s in ("begin", "beginorempty", "beginstringorempty"):
            if c in _SPACE:
                return None
            if s == "beginorempty" and c == 0x5D:
                state, err = end_value(c, i)
                return err
            if s == "beginstringorempty":
                if c == 0x7D:
                    stack[-1] = 1
                    state, err = end_value(c, i)
                    return err
                s = "beginstring"
            else:
                if c == 0x7B:
                    state = "beginstringorempty"
                    stack.append(0)
                    return _syntax(c, "exceeded max depth", i) if len(stack) > MAX_DEPTH else None
                if c == 0x5B:
                    state = "beginorempty"
                    stack.append(2)
                    return _syntax(c, "exceeded max depth", i) if len(stack) > MAX_DEPTH else None
                if c == 0x22:
                    state = "str"
                    return None
                if c == 0x2D:
                    state = "neg"
                    return None
                if c == 0x30:
                    state = "0"
                    return None
                if 0x31 <= c <= 0x39:
                    state = "1"
                    return None
                lit = {0x74: "t", 0x66: "f", 0x6E: "n"}.get(c)
                if lit is not None:
                    state = lit
                    return None
                return _syntax(c, "looking for beginning of value", i)
        if s == "beginstring":
            if c in _SPACE:
                state = "beginstring"
                return None
            if c == 0x22:
                state = "str"
                return None
            return _syntax(c, "looking for beginning of object key string", i)
        if s == "endvalue":
            state, err = end_value(c, i)
            return err
        if s == "endtop":
            if c not in _SPACE:
                return _syntax(c, "after top-level value", i)
            return None
        if s == "str":
            if c == 0x22:
                state = "endvalue"
            elif c == 0x5C:
                state = "esc"
            elif c < 0x20:
                return _syntax(c, "in string literal", i)
            return None
        if s == "esc":
            if c in b'bfnrt\\/"':
                state = "str"
                return None
            if c == 0x75:
                state = "u0"
                return None
            return _syntax(c, "in string escape code", i)
        if s in ("u0", "u1", "u2", "u3"):
            if c in _HEX:
                state = {"u0": "u1", "u1": "u2", "u2": "u3", "u3": "str"}[s]
                return None
            return _syntax(c, "in \\u hexadecimal character escape", i)
        if s == "neg":
            if c == 0x30:
                state = "0"
                return None
            if 0x31 <= c <= 0x39:
                state = "1"
                return None
            return _syntax(c, "in numeric literal", i)
        if s == "1" and c in _DIGITS:
            return None
        if s in ("1", "0"):
            if c == 0x2E:
                state = "dot"
                return None
            if c in (0x65, 0x45):
                state = "e"
                return None
            state, err = end_value(c, i)
            return err
        if s == "dot":
            if c in _DIGITS:
                state = "dot0"
                return None
            return _syntax(c, "after decimal point in numeric literal", i)
        if s == "dot0":
            if c in _DIGITS:
                return None
            if c in (0x65, 0x45):
                state = "e"
                return None
            state, err = end_value(c, i)
            return err
        if s in ("e", "esign"):
            if s == "e" and c in (0x2B, 0x2D):
                state = "esign"
                return None
            if c in _DIGITS:
                state = "e0"
                return None
            return _syntax(c, "in exponent of numeric literal", i)
        if s == "e0":
            if c in _DIGITS:
                return None
            state, err = end_value(c, i)
            return err
        literal = _LITERAL_STATES.get(s)
        if literal is not None:
            want, nxt, ctx = literal
            if c == want:
                state = nxt
                return None
            return _syntax(c, ctx, i)
        raise AssertionError(s)  # pragma: no cover

    for i in range(n):
        err = step(data[i], i + 1)
        if err is not None:
            return err
    # eof
    if end_top:
        return None
    err = step(0x20, n)
    if err is not None:
        return err
    if end_top or state == "endtop":
        return None
    return GoJSONError("unexpected end of JSON input", kind="syntax", offset=n)


_LITERAL_STATES: Final = {
    "t": (0x72, "tr", "in literal true (expecting 'r')"),
    "tr": (0x75, "tru", "in literal true (expecting 'u')"),
    "tru": (0x65, "endvalue", "in literal true (expecting 'e')"),
    "f": (0x61, "fa", "in literal false (expecting 'a')"),
    "fa": (0x6C, "fal", "in literal false (expecting 'l')"),
    "fal": (0x73, "fals", "in literal false (expecting 's')"),
    "fals": (0x65, "endvalue", "in literal false (expecting 'e')"),
    "n": (0x75, "nu", "in literal null (expecting 'u')"),
    "nu": (0x6C, "nul", "in literal null (expecting 'l')"),
    "nul": (0x6C, "endvalue", "in literal null (expecting 'l')"),
}

_NUM_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_STR_RE: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_WS_RE: Final = re.compile(r"[ \t\r\n]*")


class _SlowParser:
    """Iterative parser for input already validated by :func:`_check_valid` (deep nesting)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def _ws(self) -> None:
        m = _WS_RE.match(self.s, self.i)
        assert m is not None
        self.i = m.end()

    def _scalar(self) -> Any:
        s, i = self.s, self.i
        c = s[i]
        if c == '"':
            m = _STR_RE.match(s, i)
            assert m is not None
            self.i = m.end()
            return json.loads(m.group(0))
        if c == "t":
            self.i += 4
            return True
        if c == "f":
            self.i += 5
            return False
        if c == "n":
            self.i += 4
            return None
        m = _NUM_RE.match(s, i)
        assert m is not None
        self.i = m.end()
        return _Num(m.group(0))

    def parse(self) -> Any:
        s = self.s
        stack: list[Any] = []  # containers; objects carry a pending key
        keys: list[str | None] = []
        result: Any = None
        self._ws()
        while True:
            c = s[self.i]
            value: Any
            if c == "{":
                self.i += 1
                stack.append(_Obj())
                keys.append(None)
                self._ws()
                if s[self.i] == "}":
                    self.i += 1
                    value = stack.pop()
                    keys.pop()
                else:
                    keys[-1] = self._scalar()
                    self._ws()
                    self.i += 1  # ':'
                    self._ws()
                    continue
            elif c == "[":
                self.i += 1
                stack.append([])
                keys.append(None)
                self._ws()
                if s[self.i] == "]":
                    self.i += 1
                    value = stack.pop()
                    keys.pop()
                else:
                    continue
            else:
                value = self._scalar()
            # attach value, then close containers as long as they end
            while True:
                if not stack:
                    return value
                top = stack[-1]
                if isinstance(top, _Obj):
                    top.append((str(keys[-1]), value))
                else:
                    top.append(value)
                self._ws()
                c = s[self.i]
                self.i += 1
                if c == ",":
                    self._ws()
                    if isinstance(top, _Obj):
                        keys[-1] = self._scalar()
                        self._ws()
                        self.i += 1
                        self._ws()
                    break
                value = stack.pop()  # '}' or ']'
                keys.pop()
        return result  # pragma: no cover


# --------------------------------------------------------------------------- decoding


class _State:
    __slots__ = ("err", "fix_surrogates", "stack", "stream", "struct")

    def __init__(self, fix: bool, stream: bool) -> None:
        self.err: GoJSONError | None = None
        self.stack: list[str] = []
        self.struct: str | None = None
        self.fix_surrogates = fix
        self.stream = stream


def _kind_word(v: Any) -> str:
    if isinstance(v, _Num):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, _Obj):
        return "object"
    if isinstance(v, list):
        return "array"
    return "null"  # pragma: no cover


def _type_error(st: _State, value: str, go_type: str) -> None:
    if st.err is not None:
        return
    if st.struct is not None or st.stack:
        field = ".".join(st.stack)
        struct_name = st.struct or ""
        msg = f"json: cannot unmarshal {value} into Go struct field {struct_name}.{field} of type {go_type}"
        st.err = GoJSONError(
            msg, kind="type", field=field, go_type=go_type, struct=struct_name, value=value, stream=st.stream
        )
    else:
        msg = f"json: cannot unmarshal {value} into Go value of type {go_type}"
        st.err = GoJSONError(msg, kind="type", go_type=go_type, value=value, stream=st.stream)


def _fix(st: _State, s: str) -> str:
    if st.fix_surrogates and _SURROGATE.search(s) is not None:
        return _SURROGATE.sub("\ufffd", s)
    return s


_B64_RE: Final = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_B64_MAP: Final = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def _b64_decode(src: bytes) -> bytes | int:
    """Go base64.StdEncoding.Decode: the bytes, or the offset of the first corrupt input byte."""
    if _B64_RE.fullmatch(src) is not None:
        return binascii.a2b_base64(src)
    n = len(src)
    si = 0
    out = bytearray()
    while si < n:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        err: int | None = None
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                return si - j
            c = src[si]
            si += 1
            val = _B64_MAP.get(c)
            if val is not None:
                dbuf[j] = val
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != 0x3D:
                return si - 1
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return n
                if src[si] != 0x3D:
                    return si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                err = si
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        chunk = bytes(((val >> 16) & 0xFF, (val >> 8) & 0xFF, val & 0xFF))
        out += chunk[: dlen - 1]
        if err is not None:
            return err
    return bytes(out)


def _num_value(st: _State, f: _FieldPlan | None, kind: int, lit: str, go_type: str) -> Any:
    """A number literal into a scalar of ``kind``; None after saving Go's error."""
    if kind == _K_INT:
        if "." not in lit and "e" not in lit and "E" not in lit:
            n = int(lit)
            if _INT64_MIN <= n <= _INT64_MAX:
                return n
        _type_error(st, "number " + lit, go_type)
        return None
    if kind == _K_UINT:
        if lit[0] != "-" and "." not in lit and "e" not in lit and "E" not in lit:
            n = int(lit)
            if n <= (_UINT64_MAX if go_type == "uint64" else (1 << 32) - 1):
                return n
        _type_error(st, "number " + lit, go_type)
        return None
    if kind == _K_F64:
        x = float(lit)
        if math.isinf(x):
            _type_error(st, "number " + lit, go_type)
            return None
        return x
    if kind == _K_F32:
        x = _parse_f32(lit)
        if math.isinf(x):
            _type_error(st, "number " + lit, go_type)
            return None
        return x
    _type_error(st, "number", go_type)
    return None


def _scalar_value(st: _State, kind: int, v: Any, go_type: str) -> Any:
    """A non-null JSON scalar/array/object into a scalar of ``kind``; None on (saved) error."""
    if isinstance(v, _Num):
        return _num_value(st, None, kind, v, go_type)
    if isinstance(v, str):
        if kind == _K_STR:
            return _fix(st, v)
        if kind == _K_BYTES:
            raw = _fix(st, v).encode("utf-8")
            res = _b64_decode(raw)
            if isinstance(res, int):
                if st.err is None:
                    st.err = GoJSONError(
                        f"illegal base64 data at input byte {res}",
                        kind="base64",
                        offset=res,
                        stream=st.stream,
                    )
                return None
            return res
        _type_error(st, "string", go_type)
        return None
    if v is True or v is False:
        if kind == _K_BOOL:
            return v
        _type_error(st, "bool", go_type)
        return None
    _type_error(st, _kind_word(v), go_type)
    return None


def _dec_obj(st: _State, pairs: _Obj, msg: Message, plan: _MsgPlan) -> None:
    by_exact = plan.by_exact
    stack = st.stack
    for key, value in pairs:
        f = by_exact.get(key)
        if f is None:
            if st.fix_surrogates:
                key = _fix(st, key)
            f = plan.by_fold.get(_fold_name(key))
            if f is None:
                continue  # unknown keys are ignored
        saved_struct = st.struct
        st.struct = plan.struct_name
        stack.append(f.key)
        try:
            _dec_field(st, f, value, msg)
        finally:
            stack.pop()
            st.struct = saved_struct


def _dec_field(st: _State, f: _FieldPlan, value: Any, msg: Message) -> None:
    name = f.name
    kind = f.kind
    if value is None:
        # null: pointers, slices (and []byte) become nil; other values are kept
        if f.repeated or f.optional or (kind == _K_MSG and f.pointer) or kind == _K_BYTES:
            msg.ClearField(name)
        return
    if f.repeated:
        if not isinstance(value, list) or isinstance(value, _Obj):
            _type_error(st, _kind_word(value), f.go_type)
            return
        seq: Any = getattr(msg, name)
        if kind == _K_MSG:
            sub = f.msg
            assert sub is not None
            if len(seq) == 0:
                for item in value:
                    elem = seq.add()
                    _dec_elem_msg(st, sub, item, elem)
                return
            old = [m for m in seq]
            new = []
            for i, item in enumerate(value):
                elem = sub.cls()
                if i < len(old):
                    elem.CopyFrom(old[i])
                _dec_elem_msg(st, sub, item, elem)
                new.append(elem)
            del seq[:]
            seq.extend(new)
            return
        vals = []
        elem_type = f.elem_type
        old_vals = list(seq)
        for i, item in enumerate(value):
            if item is None:
                x = old_vals[i] if i < len(old_vals) else _ZERO[kind]
            else:
                x = _scalar_value(st, kind, item, elem_type)
                if x is None:
                    x = old_vals[i] if i < len(old_vals) else _ZERO[kind]
            vals.append(x)
        del seq[:]
        seq.extend(vals)
        return
    if kind == _K_MSG:
        sub = f.msg
        assert sub is not None
        if isinstance(value, _Obj):
            child = getattr(msg, name)
            if f.pointer:
                child.SetInParent()
                _dec_obj(st, value, child, sub)
            else:
                # A Go struct value has no presence: keep the canonical protobuf
                # form (an all-zero value struct is "unset") so equality does not
                # depend on whether the key was on the wire.
                _dec_obj(st, value, child, sub)
                if not child.ListFields():
                    msg.ClearField(name)
            return
        if f.pointer:
            # Go's indirect allocates the pointer before the kind check
            getattr(msg, name).SetInParent()
        _type_error(st, _kind_word(value), f.go_type)
        return
    x = _scalar_value(st, kind, value, f.go_type)
    if x is None:
        # an optional's pointer was allocated by indirect before the failure: *T = zero
        if f.optional and not msg.HasField(name):
            setattr(msg, name, _ZERO[kind])
        return
    setattr(msg, name, x)


def _dec_elem_msg(st: _State, sub: _MsgPlan, item: Any, elem: Message) -> None:
    if isinstance(item, _Obj):
        _dec_obj(st, item, elem, sub)
    elif item is not None:
        _type_error(st, _kind_word(item), sub.go_name)


_ZERO: Final[dict[int, Any]] = {
    _K_STR: "",
    _K_BOOL: False,
    _K_INT: 0,
    _K_UINT: 0,
    _K_F32: 0.0,
    _K_F64: 0.0,
    _K_BYTES: b"",
}


def decode(cls: type[M], data: bytes, *, stream: bool = False) -> M:
    """``json.Unmarshal(data, &v)`` for the Go struct ``cls`` describes.

    Raises :class:`GoJSONError` with Go's error text.  ``stream`` only marks the
    error (``.grpc_message`` then uses grpc-go's stream wording).
    """
    plan = _plan_of(cls)
    try:
        tree, fix = _parse(bytes(data))
    except GoJSONError as exc:
        exc.stream = stream
        raise
    msg: M = plan.cls()
    st = _State(fix, stream)
    if isinstance(tree, _Obj):
        _dec_obj(st, tree, msg, plan)
    elif tree is not None:
        _type_error(st, _kind_word(tree), plan.go_name)
    if st.err is not None:
        raise st.err
    return msg


def decode_value(data: bytes) -> Any:
    """``json.Unmarshal`` into ``any``: dict (last duplicate wins), list, str, float, bool, None."""
    tree, fix = _parse(bytes(data))
    st = _State(fix, False)
    out = _to_any(st, tree)
    if st.err is not None:
        raise st.err
    return out


def _to_any(st: _State, v: Any) -> Any:
    if isinstance(v, _Num):
        x = float(v)
        if math.isinf(x):
            _type_error(st, "number " + v, "float64")
            return None
        return x
    if isinstance(v, str):
        return _fix(st, v)
    if isinstance(v, _Obj):
        return {_fix(st, k): _to_any(st, item) for k, item in v}
    if isinstance(v, list):
        return [_to_any(st, item) for item in v]
    return v


# --------------------------------------------------------------------------- hashes


_MANIFEST_ZERO_FIELDS: Final = (
    "backend",
    "profile_id",
    "model_digest",
    "prompt_format",
    "prompt_template_digest",
    "runtime_digest",
    "stable_byte_hash",
)


def manifest_digest(manifest: Message) -> str:
    """contextasm Digest (session-semantics §5.3): "" for a zero manifest, else the
    lowercase sha256 hex of Go ``json.Marshal(manifest)``."""
    if all(not getattr(manifest, name) for name in _MANIFEST_ZERO_FIELDS):
        return ""
    return hashlib.sha256(encode(manifest)).hexdigest()


_U64: Final = struct.Struct("<Q")


def token_hash(ids: Iterable[int]) -> str:
    """contextasm HashTokenIDs (§5.4): sha256 over each id as 8-byte little-endian
    unsigned (two's complement for negatives)."""
    h = hashlib.sha256()
    pack = _U64.pack
    mask = _UINT64_MAX
    h.update(b"".join(pack(i & mask) for i in ids))
    return h.hexdigest()


def hash_string(s: str | bytes) -> str:
    """contextasm HashString (§5.4): sha256 hex of the UTF-8 text."""
    return hashlib.sha256(s if isinstance(s, bytes) else s.encode("utf-8")).hexdigest()
