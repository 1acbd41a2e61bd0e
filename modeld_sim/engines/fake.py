"""Deterministic fake engine (documented in docs/fake-engine.md).

Arithmetic follows the real llama session (``modeld/llama/llamasession/llama.go``): longest common
token-prefix reuse in EnsurePrefix, PrefillSuffix appending, Decode with the StreamingLLM slide
(``slideForDecodeLocked`` + ``modeld/residency`` ``DeriveEvictionBudget``), Snapshot/Restore checks,
counters of ExplainContext. Tokens are bytes: token id = UTF-8 byte value (0..255), plus
``BOS_ID`` = 256 when the model adds a BOS token. Decode emits one token per chunk; a lone byte
that is not valid UTF-8 is sent as U+FFFD (as the real daemon does).

Backends:

* ``llama``: ModelRef.Path must be a readable GGUF (:mod:`modeld_sim.gguf`); anything else fails with
  the recorded ``llama model KV profile: llamacppshim: inspect GGUF metadata "<path>"``.
* ``openvino``: ModelRef.Path is a directory holding ``openvino_model.xml`` or
  ``openvino_language_model.xml``, with optional ``modeld_sim.json`` facts. Overflows are bare
  ``context_overflow`` (no stage), decode does not slide (``modeld/openvino/session.go``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from modeld_sim.engines.base import (
    Chunk,
    ModelFacts,
    PlainError,
    SnapshotResult,
    go_quote,
    inspect_failure,
    token_hash,
)
from modeld_sim.engines.sessionstate import (
    DEFAULT_MAX_TOKENS,
    LLAMA_STRUCTURED_PROTOCOLS,
    EvictionBudget,
    SessionState,
    derive_eviction_budget,
    llama_parser_error,
    llama_structured_unsupported,
)
from modeld_sim.gguf import GGUFError, GGUFFile, read_gguf
from modeld_sim.safefs import read_regular
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "BOS_ID",
    "DEFAULT_TOOL_NAME",
    "EOS_ID",
    "OPENVINO_ENTRYPOINTS",
    "REASONING_PARSER",
    "TOOL_PARSER",
    "EvictionBudget",
    "FakeEngine",
    "FakeModel",
    "FakeSession",
    "derive_eviction_budget",
    "fake_tool_call",
    "reasoning_tokens",
    "sampling_key",
    "tokenize",
    "tool_name",
]

BOS_ID: Final = 256
EOS_ID: Final = 257
OPENVINO_ENTRYPOINTS: Final = ("openvino_model.xml", "openvino_language_model.xml")
_STATE_MAGIC: Final = b"MODELD-SIM-KV1\n"

# capacity constants (modeld/capacity/capacity.go)
_HEADROOM_FRAC: Final = 0.1
_MAX_RESIDENT_FRAC: Final = 0.8
_HOST_COLD_FRAC: Final = 0.25
_DEFAULT_MIN_HOT_CONTEXT: Final = 4096  # modeld/llama/service.go DefaultMinHotContextTokens


def tokenize(text: str, add_bos: bool) -> list[int]:
    """The fake tokenizer: UTF-8 bytes, optionally preceded by ``BOS_ID``."""
    ids = list(text.encode("utf-8", errors="surrogatepass"))
    return [BOS_ID, *ids] if add_bos else ids


def _piece(tok: int) -> str:
    if tok >= 256:
        return ""  # control tokens render as nothing
    return bytes([tok]).decode("utf-8", errors="replace")


#: The parser protocols that make Decode's reasoning and tool calls visible (newChatOutputParser's).
REASONING_PARSER: Final = "llama:common_chat_reasoning_parser"
TOOL_PARSER: Final = "llama:common_chat_tool_parser"
#: The tool name of the fake tool call when the session's tools name none.
DEFAULT_TOOL_NAME: Final = "fake_tool"
_DEFAULT_TEMPERATURE: Final = 0.8


def sampling_key(cfg: pb.DecodeConfig, seed: int) -> bytes | None:
    """What a non-greedy Decode's tokens depend on besides the resident tokens: the seed, the
    temperature, top-p (or its absence) and top-k, packed little-endian; None when greedy
    (Temperature set and <= 0). docs/fake-engine.md states the layout byte for byte."""
    temperature = cfg.Temperature if cfg.HasField("Temperature") else _DEFAULT_TEMPERATURE
    if temperature <= 0:
        return None
    top_p = b"\x01" + struct.pack("<d", cfg.TopP) if cfg.HasField("TopP") else b"\x00"
    return (
        struct.pack("<Q", seed & 0xFFFFFFFFFFFFFFFF)
        + struct.pack("<d", temperature)
        + top_p
        + struct.pack("<q", int(cfg.TopK))
    )


def reasoning_tokens(cfg: pb.DecodeConfig, max_tokens: int) -> int:
    """How many of the first generated tokens are reasoning (sent as ``thinking``): half the budget,
    rounded down, when the reasoning parser runs with a ReasoningFormat other than ``none``."""
    if REASONING_PARSER not in cfg.ParserProtocols or cfg.ReasoningFormat in ("", "none"):
        return 0
    return max_tokens // 2


def tool_name(tools: str) -> str:
    """The name of the first tool of a session's ``Tools`` JSON array (``{"function": {"name": …}}``
    or ``{"name": …}``), else :data:`DEFAULT_TOOL_NAME`."""
    try:
        parsed = json.loads(tools) if tools else None
    except ValueError:
        return DEFAULT_TOOL_NAME
    first = parsed[0] if isinstance(parsed, list) and parsed else None
    if not isinstance(first, dict):
        return DEFAULT_TOOL_NAME
    fn = first.get("function")
    for name in (fn.get("name") if isinstance(fn, dict) else None, first.get("name")):
        if isinstance(name, str) and name:
            return name
    return DEFAULT_TOOL_NAME


def fake_tool_call(tools: str, generated: int) -> pb.ToolCall:
    """The one tool call the tool parser reports after the text: it names the session's first tool
    and carries the number of tokens this Decode generated."""
    call = pb.ToolCall(id="call_0", type="function")
    call.function.name = tool_name(tools)
    call.function.arguments = f'{{"tokens":{generated}}}'
    return call


def _machine_memory() -> tuple[int, int]:
    """(total, available) bytes of system RAM (gopsutil VirtualMemory Total/Available)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {}
            for line in f:
                k, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[k] = int(parts[0]) * 1024
        total = info.get("MemTotal", 0)
        return total, info.get("MemAvailable", info.get("MemFree", total))
    except (OSError, ValueError):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
            return total, avail
        except (OSError, ValueError):
            return 16 << 30, 8 << 30


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def _kv_type_bytes(kv_type: str) -> int:
    # modeld/capacity/capacity.go kvTypeBytes
    return {"f32": 4, "fp32": 4, "q8_0": 1, "q4_0": 1, "q4_1": 1}.get(kv_type, 2)


def _sim_key(g: GGUFFile | dict[str, Any], key: str, default: Any) -> Any:
    v = g.get(f"modeld_sim.{key}", None) if isinstance(g, GGUFFile) else g.get(key, None)
    if v is None:
        return default
    if isinstance(default, bool):
        return bool(v)
    if isinstance(default, int):
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default
    if isinstance(default, str):
        return v if isinstance(v, str) else default
    return v


@dataclass(frozen=True)
class _Plan:
    num_ctx: int
    planner_ctx: int
    info: pb.DescribeResp


class FakeEngine:
    """The deterministic fake backend. ``token_latency``: seconds per decoded token (default 0).

    ``sleep`` spends the token latency and ``clock`` is the time decode deadlines are compared
    against (default: ``asyncio.sleep`` and the running loop's ``time()``, the time the slot's
    deadlines are in). Inject both to run decode on virtual time.
    """

    def __init__(
        self,
        backend: str = "llama",
        *,
        token_latency: float = 0.0,
        seed: int | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if backend not in ("llama", "openvino"):
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self.token_latency = token_latency
        self.sleep = sleep
        self.clock = clock
        self._rng = random.Random(seed)
        self.loads = 0  # number of successful loads (observable in tests)

    # ------------------------------------------------------------------ inspect

    def inspect(self, path: str) -> ModelFacts:
        if self.backend == "llama":
            return self._inspect_gguf(path)
        return self._inspect_openvino(path)

    def _inspect_gguf(self, path: str) -> ModelFacts:
        # modeld/llama/model_params.go inspectLlamaModelParams + llamacppshim InspectModelKVProfile
        if path == "":
            raise PlainError("llama model KV profile: llamacppshim: model path is required")
        try:
            g = read_gguf(path)
        except GGUFError:
            raise inspect_failure("llama", path) from None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        add_bos = g.get("tokenizer.ggml.add_bos_token", False)
        return ModelFacts(
            path=path,
            backend="llama",
            architecture=g.architecture,
            name=str(g.get("general.name", "") or ""),
            context_length=g.context_length,
            embedding_length=g.embedding_length,
            block_count=g.arch_int("block_count"),
            head_count=g.arch_int("attention.head_count"),
            head_count_kv=g.arch_int("attention.head_count_kv"),
            key_length=g.arch_int("attention.key_length"),
            sliding_window=g.arch_int("attention.sliding_window"),
            weights_bytes=size,
            has_tokenizer=g.has_tokenizer,
            add_bos=bool(add_bos) if isinstance(add_bos, bool) else False,
            supports_vision=_sim_key(g, "supports_vision", False),
            vision_tokens_per_image=_sim_key(g, "vision_tokens_per_image", 0),
            chat_template_format=_sim_key(g, "chat_template_format", "peg-native"),
            chat_template_thinking_start_tag=_sim_key(g, "chat_template_thinking_start_tag", ""),
            chat_template_supports_tool_calls=_sim_key(g, "chat_template_supports_tool_calls", False),
            chat_template_supports_thinking=_sim_key(g, "chat_template_supports_thinking", False),
            chat_template_supports_reasoning_effort=_sim_key(
                g, "chat_template_supports_reasoning_effort", False
            ),
            supports_embedding=_sim_key(g, "supports_embedding", True),
            decode_text=_sim_key(g, "decode_text", ""),
        )

    def _inspect_openvino(self, path: str) -> ModelFacts:
        # Text invented (the recordings have no openvino daemon): modeld/openvino/service.go wraps its
        # native inspect error as "openvino model KV profile: %w".
        fail = inspect_failure("openvino", path)
        if not path or not os.path.isdir(path):
            raise fail
        if not any(os.path.isfile(os.path.join(path, e)) for e in OPENVINO_ENTRYPOINTS):
            raise fail
        facts: dict[str, Any] = {}
        fp = os.path.join(path, "modeld_sim.json")
        if os.path.exists(fp):
            try:
                # a FIFO or device here would block the reader: only a regular file is read
                loaded = json.loads(read_regular(fp).decode("utf-8"))
            except (OSError, ValueError):
                raise fail from None
            if isinstance(loaded, dict):
                facts = loaded
        size = 0
        for root, _dirs, files in os.walk(path):
            for fn in files:
                with contextlib.suppress(OSError):
                    size += os.path.getsize(os.path.join(root, fn))
        return ModelFacts(
            path=path,
            backend="openvino",
            architecture=_sim_key(facts, "architecture", "openvino"),
            name=_sim_key(facts, "name", os.path.basename(os.path.normpath(path))),
            context_length=_sim_key(facts, "context_length", 4096),
            embedding_length=_sim_key(facts, "embedding_length", 64),
            block_count=_sim_key(facts, "block_count", 2),
            head_count=_sim_key(facts, "head_count", 4),
            head_count_kv=_sim_key(facts, "head_count_kv", 4),
            key_length=_sim_key(facts, "key_length", 0),
            sliding_window=_sim_key(facts, "sliding_window", 0),
            weights_bytes=size,
            add_bos=_sim_key(facts, "add_bos", False),
            supports_vision=_sim_key(facts, "supports_vision", False),
            vision_tokens_per_image=_sim_key(facts, "vision_tokens_per_image", 0),
            chat_template_format=_sim_key(facts, "chat_template_format", ""),
            chat_template_thinking_start_tag=_sim_key(facts, "chat_template_thinking_start_tag", ""),
            chat_template_supports_tool_calls=_sim_key(facts, "chat_template_supports_tool_calls", False),
            chat_template_supports_thinking=_sim_key(facts, "chat_template_supports_thinking", False),
            chat_template_supports_reasoning_effort=_sim_key(
                facts, "chat_template_supports_reasoning_effort", False
            ),
            supports_embedding=_sim_key(facts, "supports_embedding", True),
            decode_text=_sim_key(facts, "decode_text", ""),
        )

    # ------------------------------------------------------------------ describe

    def describe(self, path: str, config: pb.Config, reclaimable_bytes: int = 0) -> pb.DescribeResp:
        """modeld/llama/service.go describe + modeld/capacity Resolve, on system RAM (no accelerator)."""
        facts = self.inspect(path)
        total, free = _machine_memory()
        host_free = free
        if reclaimable_bytes > 0:
            free += reclaimable_bytes
        user_limit = int(free * _MAX_RESIDENT_FRAC) if free > 0 else 0
        host_cold = int(host_free * _HOST_COLD_FRAC) if host_free > 0 else 0
        weights = facts.weights_bytes
        layers = facts.block_count
        per_layer = 0
        if facts.kv_heads > 0 and facts.head_dim > 0:
            per_layer = 2 * facts.kv_heads * facts.head_dim * _kv_type_bytes(config.KVCacheType)
        kv = per_layer * layers if layers > 0 else 0
        request = int(config.NumCtx)
        model_max = facts.context_length

        eff = model_max
        usable = max(free, 0)
        if user_limit > 0:
            usable = min(usable, user_limit)
        usable = max(int(usable * (1 - _HEADROOM_FRAC)), 0)
        memory_tokens = 0
        if kv > 0:
            budget = max(usable - weights, 0)
            memory_tokens = budget // kv
            if eff <= 0 or memory_tokens < eff:
                eff = memory_tokens
        if request > 0 and ((eff > 0 and request < eff) or (eff <= 0 and kv <= 0 and model_max <= 0)):
            eff = request
        eff = max(eff, 0)
        req_for_required = request if request > 0 else eff
        required = weights + (req_for_required * kv if kv > 0 and req_for_required > 0 else 0)
        clamped, reason = False, ""
        if user_limit > 0 and required > user_limit:
            clamped, reason = True, "request_exceeds_user_limit"
        elif request > 0 and eff < request:
            clamped, reason = True, "request_exceeds_memory_budget"
        elif request <= 0 and model_max > 0 and eff < model_max:
            clamped, reason = True, "model_context_exceeds_memory_budget"
        hot = eff
        if kv > 0 and memory_tokens > 0:
            hot = memory_tokens
            if model_max > 0:
                hot = min(hot, model_max)
            if request > 0:
                hot = min(hot, request)
        cold = host_cold // kv if kv > 0 and host_cold > 0 else 0
        planner = hot + cold
        if model_max > 0:
            planner = min(planner, model_max)
        if request > 0:
            planner = min(planner, request)
        planner = max(planner, eff)

        info = pb.DescribeResp(
            model_max_context=model_max,
            effective_context=eff,
            memory_context_tokens=memory_tokens,
            hot_context_tokens=hot,
            planner_effective_context=planner,
            kv_bytes_per_token=kv,
            free_bytes=free,
            weights_bytes=weights,
            user_limit_bytes=user_limit,
            host_cold_budget_bytes=host_cold,
            usable_bytes=usable,
            required_bytes=required,
            clamped=clamped,
            reason=reason,
            device_kind="system",
            device_id="ram",
            device_total_bytes=total,
        )
        if facts.sliding_window > 0:
            info.sparse_attention = True
            info.sliding_window_attention_tokens = facts.sliding_window
        info.requested_gpu_layers = int(config.NumGpuLayers)
        if config.NumGpuLayers > 0:
            info.clamped = True
            if not info.reason:
                info.reason = "no_accelerator_present"
        info.chat_template_format = facts.chat_template_format
        info.chat_template_thinking_start_tag = facts.chat_template_thinking_start_tag
        info.chat_template_supports_tool_calls = facts.chat_template_supports_tool_calls
        info.chat_template_supports_thinking = facts.chat_template_supports_thinking
        info.chat_template_supports_reasoning_effort = facts.chat_template_supports_reasoning_effort
        if (
            facts.chat_template_supports_thinking
            or facts.chat_template_supports_reasoning_effort
            or facts.chat_template_thinking_start_tag
        ):
            info.chat_template_reasoning_format = "auto"
        if self.backend == "llama":
            info.runtime_name = "llama.cpp"
            info.runtime_system_info = "CPU : modeld_sim fake engine = 1 | "
        else:
            info.runtime_name = "openvino"
        info.devices.append(
            pb.DeviceInfo(
                index=0,
                name="CPU",
                description=_cpu_name(),
                type="cpu",
                memory_free=free,
                memory_total=total,
                memory_free_known=True,
                memory_total_known=True,
            )
        )
        return info

    def _plan(self, path: str, config: pb.Config) -> _Plan:
        # modeld/llama/service.go resolveSession
        info = self.describe(path, config)
        if info.effective_context <= 0 and info.reason:
            raise werr.ContextOverflow(
                f"model {go_quote(path)} does not fit the {info.device_kind} device ({info.reason})"
            )
        request = int(config.NumCtx)
        if request <= 0:
            floor = min(_DEFAULT_MIN_HOT_CONTEXT, info.model_max_context or _DEFAULT_MIN_HOT_CONTEXT)
            if info.hot_context_tokens < floor:
                raise werr.ContextOverflow(
                    f"model fits only {info.hot_context_tokens} usable context tokens on the "
                    f"{info.device_kind} device — below the {floor}-token minimum for a usable session"
                )
            num_ctx = int(info.hot_context_tokens)
        else:
            if request > info.effective_context:
                raise werr.ContextOverflow(
                    f"requested num_ctx={request} exceeds modeld effective context="
                    f"{info.effective_context} ({info.reason})"
                )
            num_ctx = request
        # transport.ResolvePlannerEffectiveContext: requested > 0 wins, else the daemon's; clamped to
        # the model max; never below NumCtx.
        planner = int(config.PlannerEffectiveContext) or int(info.planner_effective_context) or num_ctx
        if info.model_max_context > 0:
            planner = min(planner, int(info.model_max_context))
        planner = max(planner, num_ctx)
        return _Plan(num_ctx, planner, info)

    # ------------------------------------------------------------------ load / embed

    async def load(self, path: str, config: pb.Config, adapters: Sequence[pb.AdapterSpec]) -> FakeModel:
        # the model's header is read on a worker thread: a slow or stuck file holds only this request
        plan, facts = await asyncio.to_thread(lambda: (self._plan(path, config), self.inspect(path)))
        for a in adapters:
            if not a.path or not os.path.isfile(a.path):
                # llamasession applyAdapters: llama.NewUnsupportedFeatureError("lora adapter %q: %v")
                raise werr.UnsupportedFeature(f"lora adapter {go_quote(a.name)}: failed to load adapter")
        await asyncio.sleep(0)
        resolved = pb.Config()
        resolved.CopyFrom(config)
        resolved.NumCtx = plan.num_ctx
        resolved.HotContextTokens = plan.info.hot_context_tokens
        resolved.PlannerEffectiveContext = plan.planner_ctx
        self.loads += 1
        return FakeModel(facts, resolved, self)

    async def embed(self, path: str, config: pb.Config, text: str) -> list[float]:
        facts = await asyncio.to_thread(self.inspect, path)
        if not facts.supports_embedding:
            raise werr.UnsupportedFeature(f"model {go_quote(path)} does not support embeddings")
        await asyncio.sleep(0)
        n = facts.embedding_length if facts.embedding_length > 0 else 64
        out: list[float] = []
        counter = 0
        while len(out) < n:
            block = hashlib.sha256(f"{counter}\0{text}".encode("utf-8", errors="surrogatepass")).digest()
            for i in range(0, 32, 4):
                (u,) = struct.unpack("<I", block[i : i + 4])
                out.append(u / 2**31 - 1.0)
            counter += 1
        vec = out[:n]
        # fsum and sqrt are correctly rounded: the vector is a function of the text alone, bit for bit
        norm = math.sqrt(math.fsum(v * v for v in vec)) or 1.0
        return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vec]

    def random_seed(self) -> int:
        return self._rng.getrandbits(32)


class FakeModel:
    """A loaded fake model; its one session holds the KV state."""

    def __init__(self, facts: ModelFacts, config: pb.Config, engine: FakeEngine) -> None:
        self.facts = facts
        self.config = config
        self._session = FakeSession(facts, config, engine)

    def session(self) -> FakeSession:
        return self._session

    async def close(self) -> None:
        await self._session.close()


class FakeSession(SessionState):
    """llama-style session arithmetic over byte tokens (the books: :class:`SessionState`)."""

    def __init__(self, facts: ModelFacts, config: pb.Config, engine: FakeEngine) -> None:
        super().__init__(
            config,
            even_window=True,
            llama_rules=facts.backend == "llama",
            add_bos=facts.add_bos and not config.DisableBOS,
            sliding_window=facts.sliding_window,
        )
        self._facts = facts
        self._engine = engine

    async def close(self) -> None:
        self._close_locked()

    # ------------------------------------------------------------------ native work (bytes)

    def _tokenize_prefix(self, text: str) -> list[int]:
        return tokenize(text, self.add_bos)

    def _tokenize_suffix(self, text: str, add_bos: bool) -> list[int]:
        return tokenize(text, add_bos)

    def _enrich_stable(self, m: pb.ContextManifest, text: str, toks: list[int]) -> pb.ContextManifest:
        out = self._stable_manifest(m, toks)
        off = 1 if self.add_bos else 0
        for seg in out.segments:
            if not seg.stable:
                continue
            start = min(max(int(seg.byte_start) + off, 0), len(toks))
            end = min(max(int(seg.byte_end) + off, start), len(toks))
            seg.token_start, seg.token_end = start, end
            seg.token_hash = token_hash(toks[start:end])
        return out

    def _place_volatile_segments(self, suffix: pb.SuffixInput, stoks: list[int]) -> str:
        base = int(suffix.Manifest.stable_bytes)
        start_tok = len(self.resident) - len(stoks)
        for seg in self.manifest.segments:
            if seg.stable:
                continue
            lo = min(max(int(seg.byte_start) - base, 0), len(stoks))
            hi = min(max(int(seg.byte_end) - base, lo), len(stoks))
            seg.token_start, seg.token_end = start_tok + lo, start_tok + hi
            seg.token_hash = token_hash(stoks[lo:hi])
        return ""

    # ------------------------------------------------------------------ session calls

    async def ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        self._check_open()
        await asyncio.sleep(0)
        return self._ensure_prefix_open(prefix)

    async def prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        self._check_open()
        await asyncio.sleep(0)
        return self._prefill_suffix_open(suffix)

    def _sample(self, key: bytes | None, step: int) -> int:
        """The next token: a function of the sampling key (None = greedy) and the last 8 resident
        tokens (docs/fake-engine.md, Decode)."""
        if self._facts.decode_text:
            raw = self._facts.decode_text.encode("utf-8", errors="surrogatepass")
            return raw[step % len(raw)]
        h = hashlib.sha256()
        if key is not None:
            h.update(key)
        for t in self.resident[-8:]:
            h.update(struct.pack("<q", t))
        d = h.digest()
        if d[1] < 16:  # occasionally a byte that is not valid UTF-8 on its own
            return 0x80 + d[0] % 0x40
        return 0x20 + d[0] % 0x5F

    async def decode(self, cfg: pb.DecodeConfig, *, deadline: float | None = None) -> AsyncIterator[Chunk]:
        """llama.go Decode: one chunk per token, errors as a final chunk, slide past the window."""
        now = self._engine.clock or asyncio.get_running_loop().time
        if self._closed:
            yield Chunk(error=self._closed_err())
            return
        if deadline is not None and now() >= deadline:
            yield Chunk(error=werr.DeadlineExceeded())
            return
        proto = cfg.StructuredOutput.Protocol
        if proto not in ("", *LLAMA_STRUCTURED_PROTOCOLS):
            yield Chunk(error=llama_structured_unsupported(proto))
            return
        parser_err = llama_parser_error(cfg)
        if parser_err is not None:
            yield Chunk(error=parser_err)
            return
        self.decode_calls += 1
        seed = int(cfg.Seed) if cfg.HasField("Seed") and cfg.Seed >= 0 else self._engine.random_seed()
        key = sampling_key(cfg, seed)
        max_tokens = int(cfg.MaxTokens) if cfg.MaxTokens > 0 else DEFAULT_MAX_TOKENS
        thinking_tokens = reasoning_tokens(cfg, max_tokens)
        tool_parser = TOOL_PARSER in cfg.ParserProtocols
        generated = 0
        if len(self.resident) >= self.num_ctx and not (self.llama_rules and self._slide_for_decode()):
            yield Chunk(error=self._overflow("decode", len(self.resident), 1))
            return
        if not self.resident:  # refreshTailLogitsLocked
            yield Chunk(error=self._overflow("decode", 0, 1))
            return
        self._count_prefill(1)
        latency = self._engine.token_latency
        for n in range(max_tokens):
            if latency > 0:
                await self._engine.sleep(latency)
            else:
                await asyncio.sleep(0)
            if self._closed:
                yield Chunk(error=self._closed_err())
                return
            if deadline is not None and now() >= deadline:
                yield Chunk(error=werr.DeadlineExceeded())
                return
            tok = self._sample(key, n)
            if len(self.resident) >= self.num_ctx:
                if not self.llama_rules:
                    yield Chunk(error=werr.ContextOverflow())
                    return
                if not self._slide_for_decode():
                    break  # at the window's end with nothing to slide: stop, end OK
            self.resident.append(tok)
            generated += 1
            piece = _piece(tok)
            if piece:
                yield Chunk(thinking=piece) if n < thinking_tokens else Chunk(text=piece)
        if tool_parser:
            yield Chunk(tool_calls=[fake_tool_call(self.tools, generated)])

    def explain(self) -> pb.ContextReport:
        return self._context_report()

    async def snapshot(self) -> SnapshotResult:
        self._check_open()
        await asyncio.sleep(0)
        state = _STATE_MAGIC + json.dumps(
            {"num_ctx": self.num_ctx, "tokens": self.resident}, separators=(",", ":")
        ).encode("ascii")
        return SnapshotResult(self._snapshot_wire(), state)

    async def restore(self, snapshot: pb.SessionSnapshot, state: bytes) -> None:
        # llama.go Restore, checks in its order.
        self._check_open()
        await asyncio.sleep(0)
        self._check_snapshot(snapshot)
        self._check_state_present(snapshot, state)
        if snapshot.resident_tokens > 0 and not state.startswith(_STATE_MAGIC):
            raise self.mark_fatal("llamasession restore state: invalid state data")
        self._adopt_snapshot(snapshot, [int(t) for t in snapshot.resident_token_ids])


def with_facts(facts: ModelFacts, **changes: Any) -> ModelFacts:
    """A copy of ``facts`` with fields changed (tests)."""
    return replace(facts, **changes)
