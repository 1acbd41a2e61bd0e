"""The simulator's fake engine as docs/fake-engine.md states it, restated from the document (nothing of
``modeld_sim`` is imported): what a Decode sends for a resident token list and a DecodeConfig, the
embedding of a text, the token hash ExplainContext and EnsurePrefix report.

Inputs are the wire's JSON (a ``DecodeConfig`` object with its Go keys, as a caller hands it to a
connector); outputs are the chunks as the connector protocol carries them (``text`` / ``thinking`` /
``tool_calls`` keys, empty ones left out).

Scope: the suite's tiny model (tokens = UTF-8 bytes, no BOS, no ``decode_text``, 64-value
embeddings) and Decodes that fit the window (no StreamingLLM slide): :func:`decode` refuses others.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EMBEDDING_LENGTH",
    "REASONING_PARSER",
    "TOOL_PARSER",
    "Decoded",
    "decode",
    "embedding",
    "greedy",
    "token_hash",
    "tokens",
]

DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.8
#: The suite's tiny model's embedding length (write_tiny_model: the GGUF default).
EMBEDDING_LENGTH = 64
REASONING_PARSER = "llama:common_chat_reasoning_parser"
TOOL_PARSER = "llama:common_chat_tool_parser"
_KNOWN_STRUCTURED = ("", "json_schema", "llama:json_schema", "llama:json_schema_tool_calls")


def tokens(text: str) -> list[int]:
    """The fake tokenizer on a model without BOS: the UTF-8 bytes."""
    return list(text.encode("utf-8"))


def token_hash(ids: Sequence[int]) -> str:
    """contextasm HashTokenIDs: sha256 hex over each id as 8 bytes little-endian (two's complement)."""
    return hashlib.sha256(b"".join((i % 2**64).to_bytes(8, "little") for i in ids)).hexdigest()


def _present(cfg: Mapping[str, Any], key: str) -> bool:
    return cfg.get(key) is not None


def greedy(cfg: Mapping[str, Any]) -> bool:
    """Temperature set and <= 0."""
    return _present(cfg, "Temperature") and float(cfg["Temperature"]) <= 0


def _key(cfg: Mapping[str, Any]) -> bytes | None:
    """The sampling key; None when a random seed is drawn (not predictable)."""
    if greedy(cfg):
        return b""
    seed = cfg.get("Seed")
    if seed is None or int(seed) < 0:
        return None
    t = float(cfg["Temperature"]) if _present(cfg, "Temperature") else DEFAULT_TEMPERATURE
    p = b"\x00" if not _present(cfg, "TopP") else b"\x01" + struct.pack("<d", float(cfg["TopP"]))
    top_k = int(cfg.get("TopK") or 0)
    return (
        (int(seed) % 2**64).to_bytes(8, "little")
        + struct.pack("<d", t)
        + p
        + (top_k % 2**64).to_bytes(8, "little")
    )


def _next_token(key: bytes, tape: Sequence[int]) -> int:
    d = hashlib.sha256(key + b"".join((t % 2**64).to_bytes(8, "little") for t in tape[-8:])).digest()
    return 0x80 + d[0] % 0x40 if d[1] < 16 else 0x20 + d[0] % 0x5F


def _piece(tok: int) -> str:
    return chr(tok) if tok < 0x80 else "\ufffd"


def _tool_name(tools: str) -> str:
    try:
        parsed = json.loads(tools) if tools else None
    except ValueError:
        return "fake_tool"
    first = parsed[0] if isinstance(parsed, list) and parsed else None
    if not isinstance(first, dict):
        return "fake_tool"
    fn = first.get("function")
    inner = fn.get("name") if isinstance(fn, dict) else None
    for name in (inner, first.get("name")):
        if isinstance(name, str) and name:
            return name
    return "fake_tool"


@dataclass
class Decoded:
    """A predicted Decode: the chunks, the tokens it adds to the resident ones, or the error kind that
    ends it before any token (``unsupported_feature``, ``context_overflow``)."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    error: str | None = None


def decode(resident: Sequence[int], cfg: Mapping[str, Any], *, num_ctx: int, tools: str = "") -> Decoded:
    """What Decode(cfg) sends on a session holding ``resident`` tokens (``tools``: the session's
    ``Tools``). Raises ValueError when the answer is not predictable (a random seed) or out of this
    oracle's scope (the window would slide)."""
    proto = str((cfg.get("StructuredOutput") or {}).get("Protocol") or "")
    parsers = [str(p) for p in cfg.get("ParserProtocols") or ()]
    fmt = str(cfg.get("ReasoningFormat") or "")
    if proto not in _KNOWN_STRUCTURED:
        return Decoded(error="unsupported_feature")
    for p in parsers:
        if p in ("", TOOL_PARSER):
            continue
        if p == REASONING_PARSER and fmt:
            continue
        return Decoded(error="unsupported_feature")
    if not resident:
        return Decoded(error="context_overflow")
    key = _key(cfg)
    if key is None:
        raise ValueError("a Decode without a seed (and not greedy) draws a random one")
    n = int(cfg.get("MaxTokens") or 0)
    n = n if n > 0 else DEFAULT_MAX_TOKENS
    if len(resident) + n > num_ctx:
        raise ValueError("the window would slide: out of this oracle's scope")
    thinking = n // 2 if REASONING_PARSER in parsers and fmt not in ("", "none") else 0
    tape = list(resident)
    out = Decoded()
    for i in range(n):
        tok = _next_token(key, tape)
        tape.append(tok)
        out.generated.append(tok)
        out.chunks.append({"thinking" if i < thinking else "text": _piece(tok)})
    if TOOL_PARSER in parsers:
        call = {
            "id": "call_0",
            "type": "function",
            "function": {"name": _tool_name(tools), "arguments": f'{{"tokens":{n}}}'},
        }
        out.chunks.append({"tool_calls": [call]})
    return out


def embedding(text: str, n: int = EMBEDDING_LENGTH) -> list[float]:
    """The documented embedding: sha256 blocks of ``"<c>\\0<text>"`` read as little-endian uint32 ``u``,
    values ``u / 2^31 - 1``, normalised with the correctly rounded sum and square root, as float32."""
    values: list[float] = []
    c = 0
    while len(values) < n:
        block = hashlib.sha256(str(c).encode("ascii") + b"\x00" + text.encode("utf-8")).digest()
        values.extend(int.from_bytes(block[i : i + 4], "little") / 2**31 - 1.0 for i in range(0, 32, 4))
        c += 1
    values = values[:n]
    norm = math.sqrt(math.fsum(v * v for v in values))
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]
