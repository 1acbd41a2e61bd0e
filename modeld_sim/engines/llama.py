"""The real llama.cpp engine: llama-cpp-python 0.3.33's low-level API (documented in docs/engines.md).

The session mirrors the real daemon's llama session call for call (contenox/runtime v0.36.0,
``modeld/llama/llamasession/llama.go``; ``modeld/llama/llamacppshim/direct.go``) so that, on the same
llama.cpp tree (llama-cpp-python 0.3.33 vendors the one the daemon was built with), the same requests
give the same tokens:

* one context per loaded model, ``n_ctx`` = the resolved NumCtx (even), ``n_batch = n_ubatch`` =
  NumBatch or 512, one sequence, ``n_threads`` = the CPUs of the process, flash attention *auto*,
  f16 KV (``q8_0`` / ``q4_0`` on request), ``use_mmap``;
* tokenization ``llama_tokenize(text, add_special=<BOS policy>, parse_special=true)``;
* EnsurePrefix keeps the longest common token prefix: ``llama_memory_seq_rm(seq 0, K, -1)`` and
  evaluates only the tail, in ``n_batch`` batches at positions ``K…`` (no logits);
* PrefillSuffix appends (logits on the last token);
* Decode: the sampler chain of ``NewSamplingContextForModel`` (top-k 40, top-p 0.9, min-p 0.05, then
  greedy when temperature ≤ 0, else temperature + ``dist(seed)``; a missing seed is 0 as in Go), a
  tail-logit refresh (the last resident token re-evaluated at its position), one token per chunk,
  end of generation stops; at the window's end ``slideForDecodeLocked``: the middle
  ``[prefix_len, resident − recent)`` is removed (``llama_memory_seq_rm``) and the tail shifted down
  (``llama_memory_seq_add``), ``recent`` from ``DeriveEvictionBudget`` (``modeld/residency``);
* Snapshot / Restore carry the whole context state (``llama_state_get_data`` / ``set_data``);
* Embed: a separate non-causal context with last-token pooling, L2-normalised (``llamasession/embed.go``).

Facts (Describe, the capacity plan, the recorded error texts for bad model files) come from the
header-only inspection the fake engine shares (:mod:`modeld_sim.gguf`): the daemon reads them from
the GGUF header before llama.cpp loads anything, and so do we.

Every native call runs on the engine's one worker thread: the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from modeld_sim.engines.base import (
    Chunk,
    ModelFacts,
    PlainError,
    SnapshotResult,
    go_quote,
    token_hash,
)
from modeld_sim.engines.fake import FakeEngine
from modeld_sim.engines.sessionstate import (
    DEFAULT_MAX_TOKENS,
    LLAMA_STRUCTURED_PROTOCOLS,
    SessionState,
    llama_parser_error,
    llama_structured_unsupported,
)
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaEngine",
    "LlamaModel",
    "LlamaSession",
    "go_json_text",
    "llama_available",
    "llama_unavailable_reason",
]

#: The llama-cpp-python release whose vendored llama.cpp tree the recorded daemon was built with.
LLAMA_CPP_PYTHON_VERSION: Final = "0.3.33"
DEFAULT_BATCH: Final = 512
_DEFAULT_EMBED_TOKEN_LIMIT: Final = 4096
_MAX_EMBED_TOKEN_LIMIT: Final = 32768
_DECODE_STEP_TOKENS: Final = 16  # tokens computed per worker hop (Go's chunk channel holds 16)

T = TypeVar("T")

# ----------------------------------------------------------------------------------- native library

_native_lock = threading.Lock()
_native: Any = None
_native_err: str | None = None
_log_cb: Any = None  # keeps the ctypes log callback alive


def _lib() -> Any:
    """``llama_cpp`` (imported once; the backend initialised once, its log silenced unless
    ``MODELD_SIM_LLAMA_LOG=1``). Raises :class:`PlainError` when the binding is not installed."""
    global _native, _native_err, _log_cb
    with _native_lock:
        if _native is not None:
            return _native
        if _native_err is not None:
            raise PlainError(_native_err)
        try:
            import llama_cpp  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except Exception as exc:  # ImportError, or a broken shared library (OSError)
            _native_err = f"llama engine: llama-cpp-python is not installed: {exc}"
            raise PlainError(_native_err) from None
        if os.environ.get("MODELD_SIM_LLAMA_LOG", "") != "1":

            @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator,unused-ignore]
            def _quiet(level: int, text: bytes, user_data: Any) -> None:
                return None

            _log_cb = _quiet
            llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _native = llama_cpp
        return _native


def llama_available() -> bool:
    """Whether llama-cpp-python can be imported here."""
    try:
        _lib()
    except PlainError:
        return False
    return True


def llama_unavailable_reason() -> str:
    try:
        _lib()
    except PlainError as exc:
        return str(exc)
    return ""


def _cpu_count() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def go_json_text(raw: bytes) -> str:
    """The text a Go string holding ``raw`` becomes through ``encoding/json``: every byte that is
    not part of valid UTF-8 is one U+FFFD (``utf8.DecodeRuneInString`` width 1)."""
    s = raw.decode("utf-8", errors="surrogateescape")
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in s):
        return s
    return "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in s)


def _kv_type(name: str) -> int:
    # llamacppshim kvCacheType: q8_0 / q4_0, everything else f16 (ggml type ids)
    return {"q8_0": 8, "q4_0": 2}.get(name.lower(), 1)


# ----------------------------------------------------------------------------------- native model


class _NativeModel:
    """One ``llama_model`` + its vocab (worker thread only)."""

    def __init__(self, path: str, n_gpu_layers: int) -> None:
        L = _lib()
        params = L.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.use_mmap = True
        ptr = L.llama_model_load_from_file(path.encode("utf-8", errors="surrogateescape"), params)
        if not ptr:
            q = go_quote(path)
            raise PlainError(f"llamasession: load model {q}: llamacppshim: load model {q}")
        self.L = L
        self.ptr = ptr
        self.vocab = L.llama_model_get_vocab(ptr)
        self.n_embd = int(L.llama_model_n_embd(ptr))
        self.n_swa = int(L.llama_model_n_swa(ptr))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """llamacppshim Tokenize(text, addSpecial, parseSpecial=true)."""
        raw = text.encode("utf-8", errors="surrogatepass")
        n_max = len(raw) + 8
        buf = (self.L.llama_token * n_max)()
        got = int(self.L.llama_tokenize(self.vocab, raw, len(raw), buf, n_max, add_special, True))
        if got < 0:
            n_max = -got
            buf = (self.L.llama_token * n_max)()
            got = int(self.L.llama_tokenize(self.vocab, raw, len(raw), buf, n_max, add_special, True))
            if got < 0:
                raise PlainError("llamacppshim: tokenize failed")
        return [int(buf[i]) for i in range(got)]

    def piece(self, token: int) -> bytes:
        """llamacppshim TokenToPiece (special tokens rendered; trailing NULs trimmed)."""
        n = 32
        buf = ctypes.create_string_buffer(n)
        got = int(self.L.llama_token_to_piece(self.vocab, token, buf, n, 0, True))
        if got < 0:
            n = -got
            buf = ctypes.create_string_buffer(n)
            got = int(self.L.llama_token_to_piece(self.vocab, token, buf, n, 0, True))
        if got <= 0:
            return b""
        return buf.raw[:got].rstrip(b"\x00")

    def is_eog(self, token: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, token))

    def free(self) -> None:
        if self.ptr:
            self.L.llama_model_free(self.ptr)
            self.ptr = None


class _Batch:
    def __init__(self, L: Any, size: int) -> None:
        self.L = L
        self.size = size
        self.b = L.llama_batch_init(size, 0, 1)

    def fill(self, toks: Sequence[int], start_pos: int, logits_on_last: bool) -> None:
        b = self.b
        n = len(toks)
        b.n_tokens = n
        for j, t in enumerate(toks):
            b.token[j] = t
            b.pos[j] = start_pos + j
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = 0
            b.logits[j] = 1 if (logits_on_last and j == n - 1) else 0

    def free(self) -> None:
        if self.b is not None:
            self.L.llama_batch_free(self.b)
            self.b = None


def _decode_error(code: int) -> str:
    # llamacppshim Decode status texts
    if code == 1:
        return "llamacppshim: no kv slot"
    if code == 2:
        return "llamacppshim: decode aborted with partial memory"
    if code == -1:
        return "llamacppshim: invalid decode batch"
    return f"llamacppshim: fatal decode code {code}"


class _PrefillFailed(Exception):
    """prefillAt failed (the llamacppshim text in args[0])."""


# ----------------------------------------------------------------------------------- engine


class LlamaEngine:
    """The llama backend on llama.cpp. ``model``: the ``serve --model`` path (checked to exist when
    given; requests still name their model). ``threads``: override of the CPU count."""

    backend = "llama"

    def __init__(self, *, model: str | None = None, threads: int | None = None) -> None:
        self._facts = FakeEngine("llama")
        self.default_model = model
        self.threads = threads if threads and threads > 0 else _cpu_count()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-engine")
        self._embed_models: dict[str, _NativeModel] = {}
        self.loads = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the engine's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def inspect(self, path: str) -> ModelFacts:
        return self._facts.inspect(path)

    def describe(self, path: str, config: pb.Config, reclaimable_bytes: int = 0) -> pb.DescribeResp:
        info = self._facts.describe(path, config, reclaimable_bytes)
        info.runtime_name = "llama.cpp"
        with contextlib.suppress(PlainError):
            info.runtime_system_info = bytes(_lib().llama_print_system_info()).decode("utf-8", "replace")
        return info

    async def load(self, path: str, config: pb.Config, adapters: Sequence[pb.AdapterSpec]) -> LlamaModel:
        # Plan first (header facts, capacity, context_overflow, adapter files): the same steps and
        # texts as the fake engine, which follows service.go resolveSession.
        planned = await self._facts.load(path, config, adapters)
        await planned.close()
        facts, resolved = planned.facts, planned.config
        _lib()
        sess = await self.run(LlamaSession.open_native, self, facts, resolved, list(adapters))
        self.loads += 1
        return LlamaModel(facts, resolved, sess)

    async def embed(self, path: str, config: pb.Config, text: str) -> list[float]:
        facts = self.inspect(path)
        if not facts.supports_embedding:
            raise werr.UnsupportedFeature(f"model {go_quote(path)} does not support embeddings")
        _lib()
        return await self.run(self._embed_sync, path, config, text)

    def _embed_sync(self, path: str, config: pb.Config, text: str) -> list[float]:
        # llamasession/embed.go
        L = _lib()
        m = self._embed_models.get(path)
        if m is None:
            try:
                m = _NativeModel(path, int(config.NumGpuLayers))
            except PlainError as exc:
                tail = _shim_tail(str(exc))
                raise PlainError(f"llama embed: load model {go_quote(path)}: {tail}") from None
            self._embed_models[path] = m
        try:
            toks = m.tokenize(text, True)
        except PlainError as exc:
            raise PlainError(f"llama embed: tokenize: {exc}") from None
        limit = int(config.NumCtx) if config.NumCtx > 0 else _DEFAULT_EMBED_TOKEN_LIMIT
        limit = min(limit, _MAX_EMBED_TOKEN_LIMIT)
        if len(toks) > limit:
            raise PlainError(
                f"llama embed: input is {len(toks)} tokens but the limit is {limit}; raise context length "
                "or chunk the input"
            )
        bsz = max(len(toks), 1)
        params = L.llama_context_default_params()
        params.n_ctx = bsz
        params.n_batch = bsz
        params.n_ubatch = bsz
        params.n_seq_max = 1
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.embeddings = True
        params.pooling_type = L.LLAMA_POOLING_TYPE_LAST
        params.attention_type = L.LLAMA_ATTENTION_TYPE_NON_CAUSAL
        ctx = L.llama_init_from_model(m.ptr, params)
        if not ctx:
            raise PlainError("llama embed: create context: llamacppshim: unable to create llama context")
        batch = _Batch(L, bsz)
        try:
            batch.fill(toks, 0, False)
            for j in range(len(toks)):
                batch.b.logits[j] = 1
            code = int(L.llama_decode(ctx, batch.b))
            if code != 0:
                raise PlainError(f"llama embed: decode: {_decode_error(code)}")
            vec: list[float] | None = None
            ptr = L.llama_get_embeddings_seq(ctx, 0)
            if ptr:
                vec = [float(ptr[i]) for i in range(m.n_embd)]
            else:
                acc: list[float] | None = None
                n = 0
                for i in range(len(toks)):
                    row = L.llama_get_embeddings_ith(ctx, i)
                    if not row:
                        continue
                    if acc is None:
                        acc = [0.0] * m.n_embd
                    for j in range(m.n_embd):
                        acc[j] += float(row[j])
                    n += 1
                if acc is None or n == 0:
                    raise PlainError(
                        "llama embed: no embeddings returned (model may not support embedding extraction)"
                    )
                vec = [v / n for v in acc]
        finally:
            batch.free()
            L.llama_free(ctx)
        total = 0.0
        for v in vec:
            if math.isnan(v) or math.isinf(v):
                raise PlainError("llama embed: embedding contains NaN or Inf")
            total += v * v
        norm = 1.0 / max(math.sqrt(total), 1e-12)
        return [v * norm for v in vec]

    def random_seed(self) -> int:
        return 0

    async def aclose(self) -> None:
        """Free the embedding models and stop the worker (tests / shutdown)."""
        models = list(self._embed_models.values())
        self._embed_models.clear()

        def free() -> None:
            for m in models:
                m.free()

        await self.run(free)
        self._executor.shutdown(wait=False)


def _shim_tail(text: str) -> str:
    i = text.find("llamacppshim:")
    return text[i:] if i >= 0 else text


class LlamaModel:
    """A loaded model: its one session holds the native context."""

    def __init__(self, facts: ModelFacts, config: pb.Config, sess: LlamaSession) -> None:
        self.facts = facts
        self.config = config
        self._session = sess

    def session(self) -> LlamaSession:
        return self._session

    async def close(self) -> None:
        await self._session.close()


# ----------------------------------------------------------------------------------- session


@dataclass
class _Sampling:
    top_k: int
    top_p: float
    min_p: float
    temperature: float
    seed: int
    grammar: str


class LlamaSession(SessionState):
    """llamasession.session on llama-cpp-python (native calls on the engine's worker thread; the
    books: :class:`SessionState`). ``add_bos`` and ``sliding_window`` come from the native model."""

    def __init__(self, engine: LlamaEngine, facts: ModelFacts, config: pb.Config) -> None:
        super().__init__(config, even_window=True, llama_rules=True)
        self._engine = engine
        self._facts = facts
        self.n_batch = int(config.NumBatch) if config.NumBatch > 0 else DEFAULT_BATCH
        self._mu = threading.Lock()
        self._model: _NativeModel | None = None
        self._ctx: Any = None
        self._batch: _Batch | None = None

    # ------------------------------------------------------------------ native set-up (worker)

    @classmethod
    def open_native(
        cls, engine: LlamaEngine, facts: ModelFacts, config: pb.Config, adapters: list[pb.AdapterSpec]
    ) -> LlamaSession:
        """llamasession.NewWithAdapters."""
        s = cls(engine, facts, config)
        L = _lib()
        model = _NativeModel(facts.path, int(config.NumGpuLayers))
        params = L.llama_context_default_params()
        params.n_ctx = s.num_ctx
        params.n_batch = s.n_batch
        params.n_ubatch = s.n_batch
        params.n_seq_max = 1
        params.n_threads = engine.threads if config.NumThreads <= 0 else int(config.NumThreads)
        params.n_threads_batch = params.n_threads
        params.flash_attn_type = (
            L.LLAMA_FLASH_ATTN_TYPE_ENABLED if config.FlashAttn else L.LLAMA_FLASH_ATTN_TYPE_AUTO
        )
        params.type_k = _kv_type(config.KVCacheType)
        params.type_v = _kv_type(config.KVCacheType)
        params.embeddings = False
        params.offload_kqv = config.NumGpuLayers != 0
        params.kv_unified = False
        ctx = L.llama_init_from_model(model.ptr, params)
        if not ctx:
            model.free()
            raise PlainError("llamasession: new context: llamacppshim: unable to create llama context")
        for a in adapters:
            lora = L.llama_adapter_lora_init(model.ptr, a.path.encode("utf-8", "surrogateescape"))
            if not lora:
                L.llama_free(ctx)
                model.free()
                raise werr.UnsupportedFeature(f"lora adapter {go_quote(a.name)}: failed to load adapter")
        s._model = model
        s._ctx = ctx
        s._batch = _Batch(L, s.n_batch)
        s.add_bos = model.add_bos and not config.DisableBOS
        s.sliding_window = model.n_swa
        return s

    def _release_native(self) -> None:
        if self._ctx is not None and self._model is not None:
            L = self._model.L
            L.llama_memory_clear(L.llama_get_memory(self._ctx), True)
            L.llama_free(self._ctx)
        self._ctx = None
        if self._batch is not None:
            self._batch.free()
            self._batch = None
        if self._model is not None:
            self._model.free()
            self._model = None

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        def run() -> None:
            with self._mu:
                self._close_locked()

        await self._engine.run(run)

    async def _call(self, fn: Callable[[], T]) -> T:
        def run() -> T:
            with self._mu:
                return fn()

        return await self._engine.run(run)

    # ------------------------------------------------------------------ native helpers (worker, _mu)

    def _native(self) -> tuple[_NativeModel, Any, _Batch]:
        if self._model is None or self._ctx is None or self._batch is None:
            raise self.mark_fatal("llamasession context is nil")
        return self._model, self._ctx, self._batch

    def _remove_kv(self, p0: int, p1: int) -> None:
        model, ctx, _ = self._native()
        L = model.L
        if not L.llama_memory_seq_rm(L.llama_get_memory(ctx), 0, p0, p1):
            self._close_locked()
            raise werr.SessionFatal(f"llamasession kv remove failed seq=0 p0={p0} p1={p1}")

    def _add_kv(self, p0: int, p1: int, delta: int) -> None:
        model, ctx, _ = self._native()
        L = model.L
        L.llama_memory_seq_add(L.llama_get_memory(ctx), 0, p0, p1, delta)

    def _prefill_at(self, toks: Sequence[int], start: int, logits_on_last: bool) -> None:
        """prefillAt: counts one physical call, evaluates in n_batch batches; raises _PrefillFailed."""
        n = len(toks)
        self._count_prefill(n)
        model, ctx, batch = self._native()
        for i in range(0, n, self.n_batch):
            end = min(i + self.n_batch, n)
            part = toks[i:end]
            batch.fill(part, start + i, logits_on_last and end == n)
            code = int(model.L.llama_decode(ctx, batch.b))
            if code != 0:
                raise _PrefillFailed(f"llamasession: prefill decode: {_decode_error(code)}")

    def _tokenize(self, text: str, add_special: bool) -> list[int]:
        model, _, _ = self._native()
        return model.tokenize(text, add_special)

    def _evict(self, a: int, b: int) -> None:
        """evictRangeLocked: drop [a,b) from the KV and slide the tail down (StreamingLLM move)."""
        n = len(self.resident)
        if a < 0 or b > n or a >= b:
            raise PlainError(f"llamasession: evict range [{a},{b}) outside resident [0,{n})")
        self._remove_kv(a, b)
        if b < n:
            self._add_kv(b, -1, -(b - a))
        self._forget_range(a, b)

    # ------------------------------------------------------------------ session hooks (worker, _mu)

    def _tokenize_prefix(self, text: str) -> list[int]:
        try:
            return self._tokenize(text, self.add_bos)
        except PlainError as exc:
            raise PlainError(f"llamasession: tokenize prefix: {exc}") from None

    def _tokenize_suffix(self, text: str, add_bos: bool) -> list[int]:
        try:
            return self._tokenize(text, add_bos)
        except PlainError as exc:
            raise PlainError(f"llamasession: tokenize suffix: {exc}") from None

    def _drop_kv(self, n: int) -> None:
        self._remove_kv(n, -1)

    def _eval_prefix(self, toks: list[int], reuse: int) -> None:
        try:
            self._prefill_at(toks[reuse:], reuse, False)
        except _PrefillFailed as exc:
            self._truncate(reuse)
            raise self.mark_fatal(f"llamasession prefill prefix failed: {exc}") from None

    def _eval_suffix(self, stoks: list[int]) -> None:
        before = len(self.resident)
        try:
            self._prefill_at(stoks, before, True)
        except _PrefillFailed as exc:
            self._remove_kv(before, -1)
            raise self.mark_fatal(f"llamasession prefill suffix failed: {exc}") from None

    def _enrich_stable(self, m: pb.ContextManifest, text: str, toks: list[int]) -> pb.ContextManifest:
        """enrichStableSegments without chat templates: a stable segment ends where the tokens of the
        text up to its byte end end (the cumulative render of Go, with the verbatim text as render)."""
        out = self._stable_manifest(m, toks)
        prev = 0
        raw = text.encode("utf-8", errors="surrogatepass")
        for seg in out.segments:
            if not seg.stable:
                continue
            end = len(toks)
            if 0 <= seg.byte_end < len(raw):
                cum = self._tokenize(raw[: seg.byte_end].decode("utf-8", "replace"), self.add_bos)
                end = len(cum)
            if end < prev or end > len(toks):
                raise werr.ManifestMismatch("stable segment token boundary out of range")
            seg.token_start, seg.token_end = prev, end
            seg.token_hash = token_hash(toks[prev:end])
            prev = end
        return out

    def _place_volatile_segments(self, suffix: pb.SuffixInput, stoks: list[int]) -> str:
        """enrichVolatileSegments (advisory, never fails): ranges relative to the resident tape; a
        boundary that is not token-prefix-additive is kept as the residency diagnostic."""
        base = int(suffix.Manifest.stable_bytes)
        raw = suffix.Text.encode("utf-8", errors="surrogatepass")
        start_tok = len(self.resident) - len(stoks)
        prev = 0
        for seg in self.manifest.segments:
            if seg.stable:
                continue
            hi = int(seg.byte_end) - base
            end = len(stoks)
            if 0 <= hi < len(raw):
                end = len(self._tokenize(raw[:hi].decode("utf-8", "replace"), False))
            if end < prev or end > len(stoks):
                self._residency_err = (
                    "volatile segment boundaries unavailable (template not token-prefix-additive): "
                    f"kind={go_quote(seg.kind)}"
                )
                return self._residency_err
            seg.token_start, seg.token_end = start_tok + prev, start_tok + end
            seg.token_hash = token_hash(stoks[prev:end])
            prev = end
        return self._residency_err

    # ------------------------------------------------------------------ EnsurePrefix

    async def ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        return await self._call(lambda: self._ensure_prefix(prefix))

    def _ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        self._check_open()
        return self._ensure_prefix_open(prefix)

    # ------------------------------------------------------------------ PrefillSuffix

    async def prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        return await self._call(lambda: self._prefill_suffix(suffix))

    def _prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        self._check_open()
        return self._prefill_suffix_open(suffix)

    # ------------------------------------------------------------------ Decode

    def _sampling(self, cfg: pb.DecodeConfig, grammar: str) -> _Sampling:
        return _Sampling(
            top_k=int(cfg.TopK) if cfg.TopK > 0 else 40,
            top_p=float(cfg.TopP) if cfg.HasField("TopP") else 0.9,
            min_p=0.05,
            temperature=float(cfg.Temperature) if cfg.HasField("Temperature") else 0.8,
            seed=(int(cfg.Seed) & 0xFFFFFFFF) if cfg.HasField("Seed") and cfg.Seed >= 0 else 0,
            grammar=grammar,
        )

    def _new_sampler(self, sp: _Sampling) -> Any:
        """llamacppshim NewSamplingContextForModel."""
        model, _, _ = self._native()
        L = model.L
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if not chain:
            raise PlainError("llamasession: sampler: llamacppshim: create sampler chain")
        if sp.grammar:
            g = L.llama_sampler_init_grammar(model.vocab, sp.grammar.encode(), b"root")
            if not g:
                L.llama_sampler_free(chain)
                raise PlainError(
                    "llamasession: sampler: llamacppshim: create grammar sampler (invalid GBNF?)"
                )
            L.llama_sampler_chain_add(chain, g)
        if sp.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(sp.top_k))
        if 0 < sp.top_p < 1:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(sp.top_p, 1))
        if sp.min_p > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(sp.min_p, 1))
        if sp.temperature <= 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(sp.temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(sp.seed))
        return chain

    def _refresh_tail_logits(self) -> None:
        """refreshTailLogitsLocked: re-evaluate the last resident token at its position."""
        if not self.resident:
            raise self._overflow("decode", 0, 1)
        last = len(self.resident) - 1
        tok = self.resident[last]
        self._remove_kv(last, -1)
        try:
            self._prefill_at([tok], last, True)
        except _PrefillFailed as exc:
            raise self.mark_fatal(f"llamasession prefill decode logits failed: {exc}") from None

    def _decode_start(self, cfg: pb.DecodeConfig) -> tuple[Any, int] | Chunk:
        """Decode's set-up, up to the first sample: the sampler and max tokens, or a final chunk."""
        if self._closed:
            return Chunk(error=self._closed_err())
        proto = cfg.StructuredOutput.Protocol
        grammar = ""
        if proto in LLAMA_STRUCTURED_PROTOCOLS:
            try:
                from llama_cpp.llama_grammar import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
                    json_schema_to_gbnf,
                )

                grammar = str(json_schema_to_gbnf(cfg.StructuredOutput.Payload))
            except Exception as exc:
                what = "structured output schema"
                if proto.endswith("tool_calls"):
                    what = "structured tool-call schema"
                return Chunk(error=PlainError(f"llamasession: {what}: {exc}"))
        elif proto != "":
            return Chunk(error=llama_structured_unsupported(proto))
        self.decode_calls += 1
        try:
            sampler = self._new_sampler(self._sampling(cfg, grammar))
        except PlainError as exc:
            return Chunk(error=exc)
        except werr.ModeldError as exc:
            return Chunk(error=exc)
        max_tokens = int(cfg.MaxTokens) if cfg.MaxTokens > 0 else DEFAULT_MAX_TOKENS
        try:
            if len(self.resident) >= self.num_ctx:
                try:
                    slid = self._slide_for_decode()
                except PlainError as exc:
                    raise self.mark_fatal(f"llamasession decode slide: {exc}") from None
                if not slid:
                    raise self._overflow("decode", len(self.resident), 1)
            self._refresh_tail_logits()
            if grammar == "":
                err = llama_parser_error(cfg)
                if err is not None:
                    raise err
        except werr.ModeldError as exc:
            self._free_sampler(sampler)
            return Chunk(error=exc)
        return sampler, max_tokens

    def _free_sampler(self, sampler: Any) -> None:
        if sampler and self._model is not None:
            self._model.L.llama_sampler_free(sampler)
        elif sampler:
            with contextlib.suppress(PlainError):
                _lib().llama_sampler_free(sampler)

    def _decode_steps(
        self, sampler: Any, remaining: int, deadline_mono: float | None, stop: threading.Event
    ) -> tuple[list[Chunk], int, bool]:
        """Up to ``_DECODE_STEP_TOKENS`` iterations of Decode's token loop: (chunks, tokens used,
        finished)."""
        out: list[Chunk] = []
        used = 0
        while used < min(remaining, _DECODE_STEP_TOKENS):
            if stop.is_set():
                return out, used, True
            if self._closed:
                out.append(Chunk(error=self._closed_err()))
                return out, used, True
            if deadline_mono is not None and time.monotonic() >= deadline_mono:
                out.append(Chunk(error=werr.DeadlineExceeded()))
                return out, used, True
            model, ctx, batch = self._native()
            L = model.L
            tok = int(L.llama_sampler_sample(sampler, ctx, -1))
            used += 1
            if tok < 0:
                out.append(Chunk(error=self.mark_fatal("llamasession decode sample returned no token")))
                return out, used, True
            if model.is_eog(tok):
                return out, used, True
            if len(self.resident) >= self.num_ctx:
                try:
                    slid = self._slide_for_decode()
                except (PlainError, werr.SessionFatal) as exc:
                    out.append(Chunk(error=self.mark_fatal(f"llamasession decode slide: {exc}")))
                    return out, used, True
                if not slid:
                    return out, used, True
            batch.fill([tok], len(self.resident), True)
            code = int(L.llama_decode(ctx, batch.b))
            if code != 0:
                out.append(Chunk(error=self.mark_fatal(f"llamasession decode token: {_decode_error(code)}")))
                return out, used, True
            self.resident.append(tok)
            text = go_json_text(model.piece(tok))
            if text:
                out.append(Chunk(text=text))
        return out, used, used >= remaining

    async def decode(self, cfg: pb.DecodeConfig, *, deadline: float | None = None) -> AsyncIterator[Chunk]:
        """llama.go Decode: one chunk per token; errors as a final chunk."""
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            yield Chunk(error=werr.DeadlineExceeded())
            return
        deadline_mono = None if deadline is None else time.monotonic() + (deadline - loop.time())
        start = await self._call(lambda: self._decode_start(cfg))
        if isinstance(start, Chunk):
            yield start
            return
        sampler, remaining = start
        stop = threading.Event()
        try:
            finished = False
            while not finished:
                chunks, used, finished = await self._call(
                    lambda left=remaining: self._decode_steps(sampler, left, deadline_mono, stop)  # type: ignore[misc]
                )
                remaining -= used
                finished = finished or remaining <= 0
                for c in chunks:
                    yield c
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await self._engine.run(self._free_sampler, sampler)

    # ------------------------------------------------------------------ ExplainContext

    def explain(self) -> pb.ContextReport:
        with self._mu:
            return self._context_report()

    # ------------------------------------------------------------------ Snapshot / Restore

    async def snapshot(self) -> SnapshotResult:
        return await self._call(self._snapshot)

    def _snapshot(self) -> SnapshotResult:
        if self._closed:
            raise self._closed_err()
        model, ctx, _ = self._native()
        L = model.L
        n = int(L.llama_state_get_size(ctx))
        if n == 0:
            raise self.mark_fatal("llamasession snapshot: llamacppshim: empty context state")
        buf = (ctypes.c_uint8 * n)()
        got = int(L.llama_state_get_data(ctx, buf, n))
        if got != n:
            raise self.mark_fatal(
                f"llamasession snapshot: llamacppshim: copied {got} context state bytes, want {n}"
            )
        return SnapshotResult(self._snapshot_wire(), bytes(buf))

    async def restore(self, snapshot: pb.SessionSnapshot, state: bytes) -> None:
        await self._call(lambda: self._restore(snapshot, state))

    def _restore(self, snap: pb.SessionSnapshot, state: bytes) -> None:
        # llama.go Restore, checks in its order
        self._check_open()
        self._check_snapshot(snap)
        if self._ctx is None:
            raise self.mark_fatal("llamasession restore context is nil")
        self._check_state_present(snap, state)
        model, ctx, _ = self._native()
        L = model.L
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        if snap.resident_tokens > 0:
            buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            got = int(L.llama_state_set_data(ctx, buf, len(state)))
            if got != len(state):
                raise self.mark_fatal(
                    f"llamasession restore state: llamacppshim: loaded {got} context state bytes, "
                    f"want {len(state)}"
                )
        self._adopt_snapshot(snap, [int(t) for t in snap.resident_token_ids])
