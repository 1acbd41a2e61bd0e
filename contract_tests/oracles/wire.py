"""What a wire message *means* to Go: canonical values for comparing what a caller asked a connector
to send with what the daemon received, and what the daemon sent with what the connector returned.

Go's encoding/json decides which differences in the JSON text make no difference to the program
that reads it; this module restates those rules (from the message descriptors of the wire IDL,
``proto/contenox/transport/v1/compute.proto``, with its ``contenox.gojson.v1`` options read by name —
nothing of the codec under test is used):

* a missing key, ``null`` and the zero value are the same for a value field (a Go struct field that is
  not a pointer keeps its zero value) — so omitempty (leaving a zero field out) changes nothing;
* a *pointer* field (a proto3 ``optional`` scalar, or a message field with the ``pointer`` option) is
  ``None`` when missing or ``null``, and a zero value is *not* ``None``: ``Temperature: 0`` and no
  ``Temperature`` are different requests;
* a missing or ``null`` list is the empty list (a nil and an empty Go slice read the same);
* a ``float`` field holds a float32: the value is rounded to float32 (as Go's decoder does) before it
  is compared, so ``0.1`` and ``0.10000000149011612`` are the same float32, ``0.1`` and ``0.1001`` are
  not; a ``double`` is compared exactly;
* ``bytes`` travel as standard base64 text.

:func:`from_json` reads a JSON object (the keys the wire uses: a connector's results and a clause's
requests are written with them), :func:`from_message` a decoded message; both give the same nested
``dict`` for the same Go value, and :func:`differences` lists where two such values differ, field
path by field path.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["differences", "float32", "from_json", "from_message", "is_pointer", "show"]

_POINTER_OPTION = "contenox.gojson.v1.pointer"
_INTS = (
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SINT32,
)


def _message_type(fd: Any) -> Descriptor:
    desc: Descriptor | None = fd.message_type
    assert desc is not None, fd.full_name
    return desc


def float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (ties to even), as a Python float."""
    if math.isnan(x) or math.isinf(x):
        return x
    try:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])
    except OverflowError:  # beyond float32: Go's decoder refuses it; keep it visible as it is
        return x


def is_pointer(fd: Any) -> bool:
    """A Go pointer field: ``None`` is a value of its own (proto3 ``optional`` scalars, messages marked
    with the ``pointer`` option)."""
    if fd.is_repeated:
        return False
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return any(opt.full_name == _POINTER_OPTION and bool(v) for opt, v in fd.GetOptions().ListFields())
    return bool(fd.has_presence)


def _zero(fd: Any) -> Any:
    if fd.is_repeated:
        return []
    if is_pointer(fd):
        return None
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return from_json(_message_type(fd), None)
    return _scalar_json(fd, None)


def _scalar_json(fd: Any, v: Any) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return "" if v is None else v
    if t == FieldDescriptor.TYPE_BOOL:
        return False if v is None else v
    if t == FieldDescriptor.TYPE_BYTES:
        if v is None:
            return b""
        if isinstance(v, str):
            try:
                return base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                return v  # not base64: Go refuses it; the difference shows
        return v
    if t == FieldDescriptor.TYPE_FLOAT:
        return 0.0 if v is None else float32(float(v)) if isinstance(v, int | float) else v
    if t == FieldDescriptor.TYPE_DOUBLE:
        return 0.0 if v is None else float(v) if isinstance(v, int | float) else v
    if t in _INTS:
        return 0 if v is None else v
    return v


def _field_json(fd: Any, v: Any) -> Any:
    if fd.is_repeated:
        items = [] if v is None else list(v) if isinstance(v, list | tuple) else v
        if not isinstance(items, list):
            return items
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            return [from_json(_message_type(fd), x) for x in items]
        return [_scalar_json(fd, x) for x in items]
    if v is None and is_pointer(fd):
        return None
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return from_json(_message_type(fd), v)
    return _scalar_json(fd, v)


def from_json(desc: Any, obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Go value a JSON object decodes to, keyed by the wire's JSON names (every field present).
    Keys the message does not have are ignored, as Go ignores them."""
    src: Mapping[str, Any] = obj if isinstance(obj, Mapping) else {}
    out: dict[str, Any] = {}
    for fd in desc.fields:
        out[fd.json_name] = _field_json(fd, src.get(fd.json_name)) if fd.json_name in src else _zero(fd)
    return out


def _scalar_msg(fd: Any, v: Any) -> Any:
    if fd.type == FieldDescriptor.TYPE_FLOAT:
        return float32(float(v))
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return bytes(v)
    return v


def from_message(msg: Message) -> dict[str, Any]:
    """The Go value a decoded message holds, in the shape of :func:`from_json`."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        v = getattr(msg, fd.name)
        if fd.is_repeated:
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                out[fd.json_name] = [from_message(x) for x in v]
            else:
                out[fd.json_name] = [_scalar_msg(fd, x) for x in v]
        elif is_pointer(fd) and not msg.HasField(fd.name):
            out[fd.json_name] = None
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            out[fd.json_name] = from_message(v)
        else:
            out[fd.json_name] = _scalar_msg(fd, v)
    return out


def show(v: Any) -> str:
    """A value as a failure message prints it (floats with every digit, bytes as hex)."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return f"bytes({v.hex()})"
    if isinstance(v, str):
        return repr(v if len(v) <= 80 else v[:80] + "…")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(show(x) for x in v) + "]"
    return repr(v)


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # True == 1 in Python, not in Go
        return type(a) is type(b) and a == b
    return bool(a == b)


def differences(
    expected: Any, got: Any, *, path: str = "", ignore: Iterable[str] = (), labels: tuple[str, str] = ("", "")
) -> list[str]:
    """Every field path where two canonical values differ, as ``path: <want label> X, <got label> Y``.
    ``ignore``: field paths (``config.NumCtx``, ``owner_instance_id``) not compared."""
    skip = set(ignore)
    want_label, got_label = labels[0] or "expected", labels[1] or "got"
    out: list[str] = []

    def walk(a: Any, b: Any, p: str) -> None:
        if p in skip:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(a.keys() | b.keys()):
                walk(a.get(k), b.get(k), f"{p}.{k}" if p else k)
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(
                    f"{p}: {want_label} {len(a)} items {show(a)}, {got_label} {len(b)} items {show(b)}"
                )
                return
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{p}[{i}]")
            return
        if isinstance(a, dict | list) or isinstance(b, dict | list) or not _same_scalar(a, b):
            out.append(f"{p or '(value)'}: {want_label} {show(a)}, {got_label} {show(b)}")

    walk(expected, got, path)
    return sorted(out)
