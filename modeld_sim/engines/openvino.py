"""The real OpenVINO engine: a stateful Llama-style IR on the raw OpenVINO runtime (docs/engines.md).

Model directory (``modeld-sim make-model --type openvino`` writes one):

* ``openvino_model.xml`` / ``.bin`` — inputs ``input_ids`` (i64 ``[1, T]``) and ``position_ids``
  (i64 ``[1, T]``); outputs ``logits`` (f32 ``[1, T, vocab]``) and ``hidden`` (f32 ``[1, T, embd]``,
  the final-norm hidden states); one pair of state variables ``past_key_<i>`` / ``past_value_<i>``
  (f32 ``[1, heads_kv, S, head_dim]``) per block: the KV cache lives in the infer request;
* ``tokenizer.json`` — a Hugging Face ``tokenizers`` tokenizer (real BPE tokenization);
* ``modeld_sim.json`` — the model facts (context length, shape, BOS/EOS ids, Describe facts).

Session semantics follow the real OpenVINO session (contenox/runtime v0.36.0,
``modeld/openvino/session.go``): overflows are the bare ``context_overflow`` sentinel (no stage, no
detail); Decode never slides — it refuses with ``context_overflow`` when the window is already full
and otherwise caps its tokens at the room left (the stream then ends OK); Snapshot carries no native
state and Restore re-prefills the snapshot's resident token ids. The prefix is reused by trimming
the state tensors to the common token prefix (exact: the KV cache is kept in f32) and evaluating only
the tail. Sampling: greedy at temperature ≤ 0, else top-k 40 / top-p 0.9 / min-p 0.05 / temperature
with ``numpy.random.default_rng(seed)`` (a missing seed is 0).

Every runtime call runs on the engine's one worker thread: the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar

from modeld_sim.engines.base import (
    Chunk,
    ModelFacts,
    PlainError,
    SnapshotResult,
    go_quote,
)
from modeld_sim.engines.fake import FakeEngine
from modeld_sim.engines.sessionstate import DEFAULT_MAX_TOKENS, SessionState
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

if TYPE_CHECKING:
    from modeld_sim.makemodel import ModelShape

__all__ = ["OpenVINOEngine", "OpenVINOModel", "OpenVINOSession", "build_ir", "openvino_available"]

_DECODE_STEP_TOKENS: Final = 16
_CONFIG: Final = {"KV_CACHE_PRECISION": "f32", "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1"}

T = TypeVar("T")


def openvino_available() -> bool:
    try:
        import openvino  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
        import tokenizers  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------------- IR builder


def build_ir(weights: dict[str, Any], shape: ModelShape, n_vocab: int, xml_path: str) -> None:
    """Write the tiny stateful Llama-style IR for ``weights`` (the GGUF tensor names, numpy arrays in
    ``[out, in]`` layout) to ``xml_path`` (+ ``.bin``)."""
    import numpy as np
    import openvino as ov  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from openvino import opset13 as ops  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from openvino.op.util import Variable, VariableInfo  # type: ignore[import-not-found,import-untyped,unused-ignore]

    e, h, hkv, d = shape.embedding_length, shape.head_count, shape.head_count_kv, shape.head_dim
    f32 = np.float32

    def const(a: Any) -> Any:
        return ops.constant(np.asarray(a, dtype=f32))

    def i64(v: Sequence[int]) -> Any:
        return ops.constant(np.asarray(v, dtype=np.int64))

    def linear(x: Any, w: Any) -> Any:  # x @ w.T, w in [out, in]
        return ops.matmul(x, const(w), False, True)

    def rms(x: Any, w: Any) -> Any:
        var = ops.reduce_mean(ops.multiply(x, x), i64([-1]), True)
        inv = ops.divide(const(1.0), ops.sqrt(ops.add(var, const(shape.rms_eps))))
        return ops.multiply(ops.multiply(x, inv), const(w))

    ids = ops.parameter([1, -1], ov.Type.i64, name="input_ids")
    pos = ops.parameter([1, -1], ov.Type.i64, name="position_ids")
    x = ops.gather(const(weights["token_embd.weight"]), ids, i64([0]))  # [1,T,E]

    inv_freq = 1.0 / (shape.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    pos_f = ops.unsqueeze(ops.convert(pos, ov.Type.f32), i64([2]))
    freqs = ops.multiply(pos_f, const(inv_freq[None, None, :]))
    emb = ops.concat([freqs, freqs], -1)  # [1,T,D]
    cos = ops.unsqueeze(ops.cos(emb), i64([1]))  # [1,1,T,D]
    sin = ops.unsqueeze(ops.sin(emb), i64([1]))

    def rope(t: Any) -> Any:  # t [1,H,T,D]
        half = d // 2
        t1 = ops.slice(t, i64([0]), i64([half]), i64([1]), i64([3]))
        t2 = ops.slice(t, i64([half]), i64([d]), i64([1]), i64([3]))
        rot = ops.concat([ops.negative(t2), t1], -1)
        return ops.add(ops.multiply(t, cos), ops.multiply(rot, sin))

    def heads(t: Any, n: int) -> Any:  # [1,T,n*D] -> [1,n,T,D]
        return ops.transpose(ops.reshape(t, i64([1, -1, n, d]), False), i64([0, 2, 1, 3]))

    sinks = []
    for i in range(shape.block_count):
        p = f"blk.{i}."
        a = rms(x, weights[p + "attn_norm.weight"])
        q = rope(heads(linear(a, weights[p + "attn_q.weight"]), h))
        k = rope(heads(linear(a, weights[p + "attn_k.weight"]), hkv))
        v = heads(linear(a, weights[p + "attn_v.weight"]), hkv)
        new_kv = []
        for kind, cur in (("key", k), ("value", v)):
            info = VariableInfo()
            info.variable_id = f"past_{kind}_{i}"
            info.data_type = ov.Type.f32
            info.data_shape = ov.PartialShape([1, hkv, -1, d])
            var = Variable(info)
            init = ops.broadcast(const(0.0), i64([1, hkv, 0, d]))
            past = ov.op.read_value(init, var)
            full = ops.concat([past, cur], 2)
            sinks.append(ov.op.assign(full, var))
            new_kv.append(full)
        kk, vv = new_kv
        if hkv != h:
            rep = h // hkv
            kk = ops.reshape(
                ops.tile(ops.unsqueeze(kk, i64([2])), i64([1, 1, rep, 1, 1])), i64([1, h, -1, d]), False
            )
            vv = ops.reshape(
                ops.tile(ops.unsqueeze(vv, i64([2])), i64([1, 1, rep, 1, 1])), i64([1, h, -1, d]), False
            )
        scores = ops.divide(ops.matmul(q, kk, False, True), const(math.sqrt(d)))  # [1,H,T,S]
        s_len = ops.gather(ops.shape_of(kk), i64([2]), i64([0]))
        t_len = ops.gather(ops.shape_of(q), i64([2]), i64([0]))
        zero, one = ops.constant(np.int64(0)), ops.constant(np.int64(1))
        kpos = ops.range(zero, ops.squeeze(s_len, i64([0])), one, "i64")
        start = ops.squeeze(ops.subtract(s_len, t_len), i64([0]))
        qpos = ops.range(start, ops.squeeze(s_len, i64([0])), one, "i64")
        allowed = ops.less_equal(ops.unsqueeze(kpos, i64([0])), ops.unsqueeze(qpos, i64([1])))  # [T,S]
        mask = ops.select(allowed, const(0.0), const(-1e9))
        probs = ops.softmax(ops.add(scores, mask), -1)
        ctx = ops.reshape(
            ops.transpose(ops.matmul(probs, vv, False, False), i64([0, 2, 1, 3])), i64([1, -1, e]), False
        )
        x = ops.add(x, linear(ctx, weights[p + "attn_output.weight"]))
        m = rms(x, weights[p + "ffn_norm.weight"])
        gate = linear(m, weights[p + "ffn_gate.weight"])
        up = linear(m, weights[p + "ffn_up.weight"])
        x = ops.add(x, linear(ops.multiply(ops.swish(gate), up), weights[p + "ffn_down.weight"]))
    hidden = rms(x, weights["output_norm.weight"])
    logits = linear(hidden, weights["output.weight"])
    r_logits = ops.result(logits)
    r_logits.get_output_tensor(0).set_names({"logits"})
    r_hidden = ops.result(hidden)
    r_hidden.get_output_tensor(0).set_names({"hidden"})
    model = ov.Model([r_logits, r_hidden], sinks, [ids, pos], "tiny-llama-stateful")
    ov.save_model(model, xml_path, compress_to_fp16=False)


# ----------------------------------------------------------------------------------- engine


def _open_tokenizer(path: str) -> Any:
    try:
        from tokenizers import Tokenizer  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise PlainError("openvino engine: the 'tokenizers' package is not installed") from None
    fp = os.path.join(path, "tokenizer.json")
    try:
        return Tokenizer.from_file(fp)
    except Exception:
        raise PlainError(f"openvino: load tokenizer {go_quote(fp)}") from None


class _Native:
    """Compiled model, infer request, tokenizer (worker thread only)."""

    def __init__(self, path: str, facts: ModelFacts, meta: dict[str, Any], threads: int) -> None:
        try:
            import openvino as ov  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise PlainError("openvino engine: the 'openvino' package is not installed") from None
        self.tok = _open_tokenizer(path)
        xml = os.path.join(path, "openvino_model.xml")
        if not os.path.isfile(xml):
            xml = os.path.join(path, "openvino_language_model.xml")
        core = ov.Core()
        cfg = dict(_CONFIG)
        cfg["INFERENCE_NUM_THREADS"] = str(threads)
        try:
            self.compiled = core.compile_model(xml, "CPU", cfg)
        except Exception as exc:
            raise PlainError(f"openvino: compile model {go_quote(xml)}: {str(exc).splitlines()[0]}") from None
        self.ov = ov
        self.req = self.compiled.create_infer_request()
        self.bos = int(meta.get("bos_token_id", -1))
        self.eos = int(meta.get("eos_token_id", -1))
        self.n_embd = facts.embedding_length

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        ids = [int(t) for t in self.tok.encode(text, add_special_tokens=False).ids]
        if add_bos and self.bos >= 0:
            ids = [self.bos, *ids]
        return ids

    def piece(self, token: int) -> bytes:
        s = self.tok.decode([token], skip_special_tokens=False)
        # The byte-level decoder renders a lone non-UTF-8 byte as U+FFFD already.
        return str(s).encode("utf-8", errors="surrogatepass")

    def states(self) -> list[Any]:
        return list(self.req.query_state())

    def kv_len(self) -> int:
        st = self.states()
        return int(st[0].state.shape[2]) if st else 0

    def trim(self, n: int) -> None:
        """Keep the first ``n`` KV positions (exact: f32 state)."""
        for s in self.states():
            arr = s.state.data
            if arr.shape[2] == n:
                continue
            s.state = self.ov.Tensor(arr[:, :, :n, :].copy())

    def reset(self) -> None:
        self.req.reset_state()

    def run(self, toks: Sequence[int], start: int) -> tuple[Any, Any]:
        import numpy as np

        ids = np.asarray([list(toks)], dtype=np.int64)
        pos = np.arange(start, start + len(toks), dtype=np.int64)[None, :]
        res = self.req.infer({"input_ids": ids, "position_ids": pos})
        return res["logits"][0, -1, :].copy(), res["hidden"][0, -1, :].copy()


class OpenVINOEngine:
    """The openvino backend on the raw OpenVINO runtime (CPU)."""

    backend = "openvino"

    def __init__(self, *, model: str | None = None, threads: int | None = None) -> None:
        self._facts = FakeEngine("openvino")
        self.default_model = model
        self.threads = threads if threads and threads > 0 else max(os.cpu_count() or 1, 1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openvino-engine")
        self.loads = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def inspect(self, path: str) -> ModelFacts:
        return self._facts.inspect(path)

    def describe(self, path: str, config: pb.Config, reclaimable_bytes: int = 0) -> pb.DescribeResp:
        info = self._facts.describe(path, config, reclaimable_bytes)
        info.runtime_name = "openvino"
        return info

    @staticmethod
    def _meta(path: str) -> dict[str, Any]:
        try:
            with open(os.path.join(path, "modeld_sim.json"), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    async def load(self, path: str, config: pb.Config, adapters: Sequence[pb.AdapterSpec]) -> OpenVINOModel:
        planned = await self._facts.load(path, config, adapters)
        await planned.close()
        facts, resolved = planned.facts, planned.config
        meta = self._meta(path)
        native = await self.run(_Native, path, facts, meta, self.threads)
        self.loads += 1
        return OpenVINOModel(facts, resolved, OpenVINOSession(self, facts, resolved, native))

    async def embed(self, path: str, config: pb.Config, text: str) -> list[float]:
        facts = self.inspect(path)
        if not facts.supports_embedding:
            raise werr.UnsupportedFeature(f"model {go_quote(path)} does not support embeddings")
        meta = self._meta(path)

        def run() -> list[float]:
            native = _Native(path, facts, meta, self.threads)
            toks = native.tokenize(text, bool(meta.get("add_bos", False)))
            if not toks:
                raise PlainError("openvino embed: empty input")
            _, hidden = native.run(toks, 0)
            vec = [float(v) for v in hidden]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            return [v / norm for v in vec]

        return await self.run(run)


class OpenVINOModel:
    def __init__(self, facts: ModelFacts, config: pb.Config, sess: OpenVINOSession) -> None:
        self.facts = facts
        self.config = config
        self._session = sess

    def session(self) -> OpenVINOSession:
        return self._session

    async def close(self) -> None:
        await self._session.close()


class OpenVINOSession(SessionState):
    """The OpenVINO session arithmetic over a real stateful infer request (the books:
    :class:`SessionState`, with the OpenVINO rules: bare overflows, no residency operations)."""

    def __init__(self, engine: OpenVINOEngine, facts: ModelFacts, config: pb.Config, native: _Native) -> None:
        super().__init__(
            config, even_window=False, llama_rules=False, add_bos=facts.add_bos and not config.DisableBOS
        )
        self._engine = engine
        self._facts = facts
        self._native: _Native | None = native
        self._logits: Any = None
        self._mu = threading.Lock()

    def _release_native(self) -> None:
        self._native = None
        self._logits = None

    async def close(self) -> None:
        await self._call(self._close_locked)

    async def _call(self, fn: Callable[[], T]) -> T:
        def run() -> T:
            with self._mu:
                return fn()

        return await self._engine.run(run)

    def _nat(self) -> _Native:
        if self._native is None:
            raise self.mark_fatal("openvino: session has no native context")
        return self._native

    def _prefill(self, toks: Sequence[int], start: int) -> None:
        if not toks:
            return
        self._count_prefill(len(toks))
        try:
            self._logits, _ = self._nat().run(toks, start)
        except werr.ModeldError:
            raise
        except Exception as exc:
            raise self.mark_fatal(f"openvino prefill: {str(exc).splitlines()[0]}") from None

    # ------------------------------------------------------------------ session hooks (worker, _mu)

    def _drop_kv(self, n: int) -> None:
        if n >= len(self.resident):
            return
        nat = self._nat()
        if n == 0:
            nat.reset()
        else:
            nat.trim(n)
        self._logits = None  # the logits belonged to a dropped position

    def _tokenize_prefix(self, text: str) -> list[int]:
        try:
            return self._nat().tokenize(text, self.add_bos)
        except PlainError as exc:
            raise PlainError(f"openvino: tokenize stable prefix: {exc}") from None

    def _tokenize_suffix(self, text: str, add_bos: bool) -> list[int]:
        try:
            return self._nat().tokenize(text, add_bos)
        except PlainError as exc:
            raise PlainError(f"openvino: tokenize suffix: {exc}") from None

    def _enrich_stable(self, m: pb.ContextManifest, text: str, toks: list[int]) -> pb.ContextManifest:
        out = self._stable_manifest(m, toks)
        if out.stable_bytes == 0 and len(out.segments) == 0:
            out.stable_bytes = len(text.encode("utf-8", errors="surrogatepass"))
        return out

    def _eval_prefix(self, toks: list[int], reuse: int) -> None:
        self._prefill(toks[reuse:], reuse)

    def _eval_suffix(self, stoks: list[int]) -> None:
        self._prefill(stoks, len(self.resident))

    def _fill_residency(self, rep: pb.ContextReport) -> None:
        if self.resident:
            rep.residency.budget_tokens = self.num_ctx

    # ------------------------------------------------------------------ session calls

    async def ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        return await self._call(lambda: self._ensure_prefix(prefix))

    def _ensure_prefix(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        self._check_open()
        return self._ensure_prefix_open(prefix)

    async def prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        return await self._call(lambda: self._prefill_suffix(suffix))

    def _prefill_suffix(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        self._check_open()
        return self._prefill_suffix_open(suffix)

    # ------------------------------------------------------------------ decode

    def _ensure_logits(self) -> None:
        if self._logits is None and self.resident:
            last = len(self.resident) - 1
            tok = self.resident[last]
            self._nat().trim(last)
            self._prefill([tok], last)

    @staticmethod
    def _pick(logits: Any, cfg: pb.DecodeConfig, rng: Any) -> int:
        import numpy as np

        temperature = float(cfg.Temperature) if cfg.HasField("Temperature") else 0.8
        lg = np.asarray(logits, dtype=np.float64)
        if temperature <= 0:
            return int(np.argmax(lg))
        top_k = int(cfg.TopK) if cfg.TopK > 0 else 40
        top_p = float(cfg.TopP) if cfg.HasField("TopP") else 0.9
        order = np.argsort(-lg, kind="stable")[: max(top_k, 1)]
        cand = lg[order]
        probs = np.exp(cand - cand.max())
        probs /= probs.sum()
        if 0 < top_p < 1:
            keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)
            order, cand, probs = order[:keep], cand[:keep], probs[:keep]
        keep_min = probs >= 0.05 * probs.max()
        order, cand = order[keep_min], cand[keep_min]
        p = np.exp((cand - cand.max()) / temperature)
        p /= p.sum()
        return int(order[int(rng.choice(len(order), p=p))])

    def _decode_start(self, cfg: pb.DecodeConfig) -> tuple[Any, int] | Chunk:
        import numpy as np

        if self._closed:
            return Chunk(error=self._closed_err())
        proto = cfg.StructuredOutput.Protocol
        if proto not in ("", "json_schema", "openvino:json_schema"):
            return Chunk(error=werr.UnsupportedFeature(f"structured output protocol {go_quote(proto)}"))
        if len(self.resident) >= self.num_ctx:
            return Chunk(error=werr.ContextOverflow())
        if not self.resident:
            return Chunk(error=werr.ContextOverflow())
        self.decode_calls += 1
        max_tokens = int(cfg.MaxTokens) if cfg.MaxTokens > 0 else DEFAULT_MAX_TOKENS
        max_tokens = min(max_tokens, self.num_ctx - len(self.resident))
        seed = int(cfg.Seed) if cfg.HasField("Seed") and cfg.Seed >= 0 else 0
        try:
            self._ensure_logits()
        except werr.ModeldError as exc:
            return Chunk(error=exc)
        return np.random.default_rng(seed), max_tokens

    def _decode_steps(
        self,
        cfg: pb.DecodeConfig,
        rng: Any,
        remaining: int,
        deadline_mono: float | None,
        stop: threading.Event,
    ) -> tuple[list[Chunk], int, bool]:
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
            nat = self._nat()
            tok = self._pick(self._logits, cfg, rng)
            used += 1
            if tok == nat.eos:
                return out, used, True
            try:
                self._logits, _ = nat.run([tok], len(self.resident))
            except Exception as exc:
                out.append(Chunk(error=self.mark_fatal(f"openvino decode: {str(exc).splitlines()[0]}")))
                return out, used, True
            self.resident.append(tok)
            text = nat.piece(tok).decode("utf-8", errors="replace")
            if text:
                out.append(Chunk(text=text))
        return out, used, used >= remaining

    async def decode(self, cfg: pb.DecodeConfig, *, deadline: float | None = None) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            yield Chunk(error=werr.DeadlineExceeded())
            return
        deadline_mono = None if deadline is None else time.monotonic() + (deadline - loop.time())
        start = await self._call(lambda: self._decode_start(cfg))
        if isinstance(start, Chunk):
            yield start
            return
        rng, remaining = start
        stop = threading.Event()
        try:
            finished = remaining <= 0
            while not finished:
                chunks, used, finished = await self._call(
                    lambda left=remaining: self._decode_steps(cfg, rng, left, deadline_mono, stop)  # type: ignore[misc]
                )
                remaining -= used
                finished = finished or remaining <= 0
                for c in chunks:
                    yield c
        finally:
            stop.set()

    def explain(self) -> pb.ContextReport:
        with self._mu:
            return self._context_report()

    async def snapshot(self) -> SnapshotResult:
        def run() -> SnapshotResult:
            self._check_open()
            return SnapshotResult(self._snapshot_wire(), b"")  # no native state: Restore re-prefills

        return await self._call(run)

    async def restore(self, snapshot: pb.SessionSnapshot, state: bytes) -> None:
        await self._call(lambda: self._restore(snapshot))

    def _restore(self, snap: pb.SessionSnapshot) -> None:
        # session.go Restore, checks in its order (num_ctx is never 0 here)
        self._check_open()
        self._check_snapshot(snap, token_ids_required=False)
        prefix_text = snap.prefix_text or snap.stable_text
        if snap.stable_text and not prefix_text.startswith(snap.stable_text):
            raise werr.ManifestMismatch("snapshot prefix text does not contain stable text")
        resident = [int(t) for t in snap.resident_token_ids]
        if not resident and snap.resident_tokens > 0:
            resident = self._nat().tokenize(prefix_text, snap.manifest.add_bos)
            if len(resident) != snap.resident_tokens:
                raise werr.ManifestMismatch("snapshot resident token count changed under tokenizer")
        if len(resident) != snap.resident_tokens:
            raise werr.ManifestMismatch("snapshot resident token ids do not match resident token count")
        self._truncate(0)
        self._prefill(resident, 0)
        self._adopt_snapshot(snap, resident)


with contextlib.suppress(Exception):  # keep OpenVINO's telemetry quiet in tests and CI
    os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
