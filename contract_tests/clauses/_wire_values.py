"""Hypothesis strategies for wire values, built from the wire IDL's message descriptors.

A drawn value is a Go JSON object the way a caller writes it: keys are the wire's JSON names, any
key may be left out (its zero value, or nil for a pointer), a pointer or a list may be ``null``,
``bytes`` are base64 text. Values span the Go types' whole range (int64, uint64, float32, float64,
any Unicode text), with zero and small values drawn often: the edges a connector gets wrong (a zero
it drops, a float it narrows, a large count it truncates) are drawn as readily as ordinary values.

:func:`to_message` turns such an object into the message the simulator sends when a clause scripts
its answer.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import example
from hypothesis import strategies as st
from modeld_contract.oracles.wire import float32, is_pointer

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "F32",
    "F64",
    "I64",
    "TEXT",
    "U64",
    "each_field",
    "full_json",
    "json_of",
    "to_message",
    "with_examples",
    "zero_json",
]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
#: int64 values: zero and small ones often, the extremes and anything between too.
I64 = st.one_of(
    st.just(0),
    st.integers(-3, 300),
    st.sampled_from([_I64_MIN, _I64_MAX, 2**31, -(2**31) - 1, 2**53 + 1]),
    st.integers(_I64_MIN, _I64_MAX),
)
#: uint64 values (a generation): beyond int64 too.
U64 = st.one_of(
    st.just(0), st.integers(1, 300), st.sampled_from([2**63, 2**64 - 1]), st.integers(0, 2**64 - 1)
)
#: float32 values (every one is exactly a float32), zero and signed zero included.
F32 = st.one_of(st.sampled_from([0.0, -0.0, 1.0]), st.floats(width=32, allow_nan=False, allow_infinity=False))
#: float64 values JSON can carry.
F64 = st.one_of(st.sampled_from([0.0, -0.0, 1.0]), st.floats(allow_nan=False, allow_infinity=False))
#: Any Unicode text (no surrogates: they are not text), short.
TEXT = st.text(max_size=12)


def _scalar(fd: Any) -> st.SearchStrategy[Any]:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return TEXT
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode("ascii"))
    if t == FieldDescriptor.TYPE_FLOAT:
        return F32
    if t == FieldDescriptor.TYPE_DOUBLE:
        return F64
    if t == FieldDescriptor.TYPE_UINT64:
        return U64
    if t == FieldDescriptor.TYPE_INT64:
        return I64
    raise TypeError(f"no strategy for field {fd.full_name} (type {t})")


def json_of(
    desc: Any,
    overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
    *,
    required: tuple[str, ...] = (),
    max_items: int = 3,
    _path: str = "",
) -> st.SearchStrategy[dict[str, Any]]:
    """Go JSON objects of message ``desc``. ``overrides``: a strategy per field path (``config``,
    ``config.NumCtx``, ``adapters``) replacing the generic one. ``required``: keys always present."""
    over = dict(overrides or {})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for fd in desc.fields:
        path = f"{_path}.{fd.json_name}" if _path else fd.json_name
        if path in over:
            fields[fd.json_name] = over[path]
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = fd.message_type
            assert sub is not None
            elem: st.SearchStrategy[Any] = json_of(sub, over, max_items=max_items, _path=path)
        else:
            elem = _scalar(fd)
        if fd.is_repeated:
            value: st.SearchStrategy[Any] = st.one_of(st.none(), st.lists(elem, max_size=max_items))
        elif is_pointer(fd):
            value = st.one_of(st.none(), elem)
        else:
            value = elem
        fields[fd.json_name] = value
    always = {k: v for k, v in fields.items() if k in required}
    maybe = {k: v for k, v in fields.items() if k not in required}
    return st.fixed_dictionaries(always, optional=maybe)


def to_message(cls: type[Message], obj: Mapping[str, Any]) -> Message:
    """The message a Go JSON object of :func:`json_of` decodes to (null and missing keys: zero/nil)."""
    msg = cls()
    _fill(msg, obj)
    return msg


def _fill(msg: Message, obj: Mapping[str, Any]) -> None:
    for fd in msg.DESCRIPTOR.fields:
        v = obj.get(fd.json_name)
        if v is None:
            continue
        if fd.is_repeated:
            target = getattr(msg, fd.name)
            for x in v:
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(target.add(), x)
                else:
                    target.append(_plain(fd, x))
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, fd.name)
            sub.SetInParent()  # a pointer given as {} is set, not nil
            _fill(sub, v)
        else:
            setattr(msg, fd.name, _plain(fd, v))


def _plain(fd: Any, v: Any) -> Any:
    return base64.b64decode(v) if fd.type == FieldDescriptor.TYPE_BYTES else v


def _full_scalar(fd: Any, i: int) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return f"{fd.json_name}-é✓{i}"
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(bytes([0, 255, i % 256]) + b"kv").decode("ascii")
    if t == FieldDescriptor.TYPE_FLOAT:
        return float32(0.1 + i)  # an exact float32 that is not a short decimal
    if t == FieldDescriptor.TYPE_DOUBLE:
        return 0.7 + i  # no float32 holds it
    if t == FieldDescriptor.TYPE_UINT64:
        return 2**63 + 12345 + i  # beyond int64
    if t == FieldDescriptor.TYPE_INT64:
        return 2**40 + 12345 + i  # beyond int32
    raise TypeError(f"no value for field {fd.full_name} (type {t})")


def full_json(desc: Any, overrides: Mapping[str, Any] | None = None, *, _path: str = "") -> dict[str, Any]:
    """One object with *every* field set to a distinctive non-zero value (two items per list, every
    pointer set, text beyond ASCII, integers beyond 32 bits, a double no float32 holds): a connector
    that loses or narrows any field cannot pass it. ``overrides``: a value per field path."""
    over = dict(overrides or {})
    out: dict[str, Any] = {}
    for i, fd in enumerate(desc.fields, 1):
        path = f"{_path}.{fd.json_name}" if _path else fd.json_name
        if path in over:
            out[fd.json_name] = over[path]
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = fd.message_type
            one = full_json(sub, over, _path=path)
            out[fd.json_name] = [one, full_json(sub, over, _path=path)] if fd.is_repeated else one
        elif fd.is_repeated:
            out[fd.json_name] = [_full_scalar(fd, i), _full_scalar(fd, i + 100)]
        else:
            out[fd.json_name] = _full_scalar(fd, i)
    return out


def zero_json(desc: Any, overrides: Mapping[str, Any] | None = None, *, _path: str = "") -> dict[str, Any]:
    """One object with every field present at its zero value — pointers too, set to a zero (``0``,
    ``false``, ``{}``), which is not nil: a connector that drops a zero pointer cannot pass it."""
    over = dict(overrides or {})
    out: dict[str, Any] = {}
    for fd in desc.fields:
        path = f"{_path}.{fd.json_name}" if _path else fd.json_name
        if path in over:
            out[fd.json_name] = over[path]
        elif fd.is_repeated:
            out[fd.json_name] = []
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            out[fd.json_name] = zero_json(fd.message_type, over, _path=path)
        else:
            out[fd.json_name] = {
                FieldDescriptor.TYPE_STRING: "",
                FieldDescriptor.TYPE_BOOL: False,
                FieldDescriptor.TYPE_BYTES: "",
                FieldDescriptor.TYPE_FLOAT: 0.0,
                FieldDescriptor.TYPE_DOUBLE: 0.0,
            }.get(fd.type, 0)
    return out


def each_field(desc: Any, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One object per field with only that field set (to its :func:`full_json` value): a connector
    that moves a value into another field, or fills an empty field from a set one, cannot pass them."""
    full = full_json(desc, overrides)
    return [{fd.json_name: full[fd.json_name]} for fd in desc.fields]


def with_examples(name: str, values: Sequence[Any], **fixed: Any) -> Callable[[_F], _F]:
    """Hypothesis ``@example`` for each value of argument ``name`` (other arguments ``fixed``)."""

    def apply(fn: _F) -> _F:
        for v in values:
            fn = example(**{name: v, **fixed})(fn)
        return fn

    return apply
