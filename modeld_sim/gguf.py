"""A small pure-Python GGUF (v2/v3) metadata reader and a writer of metadata-only "fake" GGUFs.

Only the header, the key/value section and the tensor-info section are read (what
``gguf_init_from_file(..., no_alloc=true)`` reads; the real daemon inspects a model through exactly
that call: ``modeld/llama/llamacppshim/direct.go`` InspectModelKVProfile). Any failure to read them —
missing file, a directory, wrong magic, unsupported version, truncation, an unknown value type, a
duplicate key — raises :class:`GGUFError`; the fake engine turns that into the daemon's
``llama model KV profile: llamacppshim: inspect GGUF metadata "<path>"``.

Our own keys (documented in docs/fake-engine.md) live under ``modeld_sim.``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from modeld_sim.safefs import NotRegularFile, open_regular

__all__ = [
    "GGUFError",
    "GGUFFile",
    "GGUFTensorInfo",
    "read_gguf",
    "write_fake_gguf",
]

MAGIC: Final = b"GGUF"

# gguf value types (ggml/include/gguf.h)
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = range(10)
T_UINT64, T_INT64, T_FLOAT64 = 10, 11, 12

_SCALAR_FMT: Final[Mapping[int, str]] = {
    T_UINT8: "<B",
    T_INT8: "<b",
    T_UINT16: "<H",
    T_INT16: "<h",
    T_UINT32: "<I",
    T_INT32: "<i",
    T_FLOAT32: "<f",
    T_BOOL: "<B",
    T_UINT64: "<Q",
    T_INT64: "<q",
    T_FLOAT64: "<d",
}

_MAX_DIMS: Final = 4
# Guards against absurd lengths in corrupt files (ggml refuses such sizes as well).
_MAX_STRING: Final = 1 << 30
_MAX_COUNT: Final = 1 << 40


class GGUFError(Exception):
    """The file is not a readable GGUF (any reason)."""


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass
class GGUFFile:
    """Metadata of one GGUF file."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[GGUFTensorInfo] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        v = self.metadata.get("general.architecture")
        return v if isinstance(v, str) else ""

    def arch_int(self, suffix: str) -> int:
        """``<arch>.<suffix>`` as an int (0 when absent or not an integer). Like the shim, any key
        ending in ``.<suffix>`` counts when the architecture key is missing."""
        arch = self.architecture
        if arch:
            v = self.metadata.get(f"{arch}.{suffix}")
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        for k, v in self.metadata.items():
            if k.endswith("." + suffix) and isinstance(v, int) and not isinstance(v, bool):
                return v
        return 0

    @property
    def context_length(self) -> int:
        return self.arch_int("context_length")

    @property
    def embedding_length(self) -> int:
        return self.arch_int("embedding_length")

    @property
    def has_tokenizer(self) -> bool:
        return "tokenizer.ggml.model" in self.metadata or "tokenizer.ggml.tokens" in self.metadata


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def take(self, n: int) -> bytes:
        b = self._f.read(n)
        if len(b) != n:
            raise GGUFError("unexpected end of file")
        return b

    def scalar(self, t: int) -> Any:
        fmt = _SCALAR_FMT[t]
        (v,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        if t == T_BOOL:
            if v not in (0, 1):
                raise GGUFError("invalid bool")
            return bool(v)
        return v

    def u32(self) -> int:
        v: int = struct.unpack("<I", self.take(4))[0]
        return v

    def u64(self) -> int:
        v: int = struct.unpack("<Q", self.take(8))[0]
        return v

    def string(self) -> str:
        n = self.u64()
        if n > _MAX_STRING:
            raise GGUFError("string too long")
        raw = self.take(n)
        return raw.decode("utf-8", errors="replace")

    def value(self, t: int, depth: int = 0) -> Any:
        if t == T_STRING:
            return self.string()
        if t == T_ARRAY:
            if depth > 0:
                raise GGUFError("nested arrays are not supported")
            et = self.u32()
            n = self.u64()
            if n > _MAX_COUNT:
                raise GGUFError("array too long")
            if et not in _SCALAR_FMT and et != T_STRING:
                raise GGUFError(f"invalid array element type {et}")
            return [self.value(et, depth + 1) for _ in range(n)]
        if t not in _SCALAR_FMT:
            raise GGUFError(f"invalid value type {t}")
        return self.scalar(t)


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Read a GGUF's metadata. Raises :class:`GGUFError` for anything that is not a readable GGUF."""
    try:
        # never blocks on a FIFO swapped in after the caller's checks; a directory is refused here too
        f = os.fdopen(open_regular(os.fspath(path)), "rb")
    except NotRegularFile as e:
        raise GGUFError("is a directory" if e.is_dir else "not a regular file") from e
    except OSError as e:
        raise GGUFError(str(e)) from e
    try:
        if os.path.isdir(path):
            raise GGUFError("is a directory")
        r = _Reader(f)
        try:
            magic = r.take(4)
        except GGUFError:
            raise GGUFError("file too short") from None
        if magic != MAGIC:
            raise GGUFError("bad magic")
        version = r.u32()
        if version not in (2, 3):
            raise GGUFError(f"unsupported version {version}")
        n_tensors = r.u64()
        n_kv = r.u64()
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise GGUFError("counts too large")
        out = GGUFFile(version=version)
        for _ in range(n_kv):
            key = r.string()
            if key in out.metadata:
                raise GGUFError(f"duplicate key {key!r}")
            t = r.u32()
            out.metadata[key] = r.value(t)
        alignment = out.metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError("invalid alignment")
        names: set[str] = set()
        for _ in range(n_tensors):
            name = r.string()
            if name in names:
                raise GGUFError(f"duplicate tensor {name!r}")
            names.add(name)
            nd = r.u32()
            if nd > _MAX_DIMS:
                raise GGUFError("too many dimensions")
            dims = tuple(r.u64() for _ in range(nd))
            gt = r.u32()
            off = r.u64()
            if off % alignment:
                raise GGUFError("misaligned tensor offset")
            out.tensors.append(GGUFTensorInfo(name, dims, gt, off))
        return out
    except OSError as e:
        raise GGUFError(str(e)) from e
    finally:
        f.close()


# ---------------------------------------------------------------------------------------- writer


def _w_string(buf: bytearray, s: str) -> None:
    raw = s.encode("utf-8")
    buf += struct.pack("<Q", len(raw))
    buf += raw


def _type_of(v: Any) -> int:
    if isinstance(v, bool):
        return T_BOOL
    if isinstance(v, int):
        if 0 <= v < 2**32:
            return T_UINT32
        if -(2**31) <= v < 2**31:
            return T_INT32
        return T_INT64 if v < 0 else T_UINT64
    if isinstance(v, float):
        return T_FLOAT32
    if isinstance(v, str):
        return T_STRING
    if isinstance(v, (list, tuple)):
        return T_ARRAY
    raise TypeError(f"unsupported GGUF value {v!r}")


def _w_value(buf: bytearray, v: Any) -> None:
    t = _type_of(v)
    buf += struct.pack("<I", t)
    _w_payload(buf, t, v)


def _w_payload(buf: bytearray, t: int, v: Any) -> None:
    if t == T_STRING:
        _w_string(buf, v)
    elif t == T_ARRAY:
        items = list(v)
        et = _type_of(items[0]) if items else T_UINT32
        if et == T_ARRAY:
            raise TypeError("nested arrays are not supported")
        buf += struct.pack("<IQ", et, len(items))
        for it in items:
            _w_payload(buf, et, it)
    else:
        buf += struct.pack(_SCALAR_FMT[t], int(v) if t == T_BOOL else v)


def write_fake_gguf(
    path: str | os.PathLike[str],
    *,
    context_length: int = 2048,
    name: str = "fake",
    architecture: str = "llama",
    embedding_length: int = 64,
    block_count: int = 2,
    head_count: int = 4,
    head_count_kv: int = 4,
    tokenizer: bool = True,
    extra: Mapping[str, Any] | None = None,
    **facts: Any,
) -> str:
    """Write a metadata-only GGUF v3 (no tensors) that the fake engine serves.

    ``facts`` become ``modeld_sim.<key>`` entries (e.g. ``vision_tokens_per_image=64``,
    ``chat_template_format="chatml"``, ``decode_text="hello"``, ``supports_embedding=False``);
    ``extra`` adds raw keys verbatim. Returns the path as a string.
    """
    kv: dict[str, Any] = {
        "general.architecture": architecture,
        "general.name": name,
        f"{architecture}.context_length": context_length,
        f"{architecture}.embedding_length": embedding_length,
        f"{architecture}.block_count": block_count,
        f"{architecture}.attention.head_count": head_count,
        f"{architecture}.attention.head_count_kv": head_count_kv,
    }
    if tokenizer:
        kv["tokenizer.ggml.model"] = "modeld_sim-bytes"
        kv["tokenizer.ggml.add_bos_token"] = False
    for k, v in facts.items():
        kv[f"modeld_sim.{k}"] = v
    if extra:
        kv.update(extra)
    buf = bytearray(MAGIC)
    buf += struct.pack("<IQQ", 3, 0, len(kv))
    for k, v in kv.items():
        _w_string(buf, k)
        _w_value(buf, v)
    p = os.fspath(path)
    parent = os.path.dirname(p)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(p, "wb") as f:
        f.write(bytes(buf))
    return p
