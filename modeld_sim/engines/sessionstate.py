"""The session bookkeeping every engine shares (docs/engines.md, docs/fake-engine.md).

The real daemon's sessions (``modeld/llama/llamasession/llama.go``, ``modeld/openvino/session.go``) keep
the same books whatever computes the tokens: the resident token tape, the stable prefix (its length and
texts), the enriched context manifest, the counters of ExplainContext, the fatal/closed lifecycle. That
part lives here, once, with the wire-facing arithmetic built on it: EnsurePrefix's longest-common-prefix
reuse and :class:`~pb.PrefixStatus`, PrefillSuffix's manifest checks and :class:`~pb.SuffixStatus`,
the :class:`~pb.ContextReport`, the wire part of a :class:`~pb.SessionSnapshot`, Restore's checks,
the overflow errors, the StreamingLLM slide of Decode.

An engine's session subclasses :class:`SessionState` and does only its native work through the hooks:
tokenize, enrich the stable segments, drop KV positions, evaluate the prefix / suffix tokens (the
``_tokenize_*``, ``_enrich_stable``, ``_place_volatile_segments``, ``_drop_kv``, ``_eval_*`` and
``_release_native`` methods), plus its own Decode, snapshot bytes and restore of native state.
``llama_rules`` chooses between the llama session's rules (overflows carry stage and token counts; the
StreamingLLM residency operations) and the OpenVINO session's (the bare ``context_overflow`` sentinel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from modeld_sim.engines.base import (
    PlainError,
    compatible_runtime,
    go_quote,
    manifest_digest,
    manifest_is_zero,
    token_hash,
)
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_NUM_CTX",
    "LLAMA_STRUCTURED_PROTOCOLS",
    "EvictionBudget",
    "SessionState",
    "common_prefix_len",
    "derive_eviction_budget",
    "llama_parser_error",
    "llama_structured_unsupported",
    "resolve_window",
]

#: Decode's token budget when ``MaxTokens`` ≤ 0.
DEFAULT_MAX_TOKENS: Final = 256
#: The context window when the resolved config has no ``NumCtx``.
DEFAULT_NUM_CTX: Final = 8192


def resolve_window(config: pb.Config, *, even: bool) -> tuple[int, int]:
    """``(num_ctx, planner_ctx)`` of a session on ``config``: llama rounds the window down to even;
    the planner context is never below it."""
    num_ctx = int(config.NumCtx) if config.NumCtx > 0 else DEFAULT_NUM_CTX
    if even:
        num_ctx -= num_ctx % 2
    planner = int(config.PlannerEffectiveContext) if config.PlannerEffectiveContext > 0 else num_ctx
    return num_ctx, max(planner, num_ctx)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# ----------------------------------------------------------------------------------- residency


@dataclass(frozen=True)
class EvictionBudget:
    sink_tokens: int
    recent_tokens: int
    max_tokens: int

    @property
    def valid(self) -> bool:
        return (
            self.sink_tokens > 0
            and self.recent_tokens > 0
            and self.max_tokens > self.sink_tokens + self.recent_tokens
        )


def _align_up(n: int, block: int) -> int:
    if block <= 1:
        return max(n, 1)
    return max(((n + block - 1) // block) * block, block)


def _align_down(n: int, block: int) -> int:
    return n if block <= 1 else (n // block) * block


def derive_eviction_budget(window: int, sliding_window: int, block_size: int = 1) -> EvictionBudget:
    """``modeld/residency`` DeriveEvictionBudget (token-granular for llama: block size 1)."""
    if sliding_window > 0 and (window <= 0 or sliding_window < window):
        window = sliding_window
    block_size = max(block_size, 1)
    if window < 4 * block_size:
        return EvictionBudget(0, window, window)
    sinks = _align_up(window // 16, block_size)
    recent = _align_up(window // 4, block_size)
    max_tokens = _align_down(window, block_size)
    if max_tokens <= sinks + recent:
        max_tokens = sinks + recent + block_size
    return EvictionBudget(sinks, recent, max_tokens)


# ----------------------------------------------------------------------------------- decode config

#: The structured-output protocols the llama backend turns into a grammar.
LLAMA_STRUCTURED_PROTOCOLS: Final = ("json_schema", "llama:json_schema", "llama:json_schema_tool_calls")


def llama_structured_unsupported(proto: str) -> werr.UnsupportedFeature:
    """The llama backend's refusal of a structured-output protocol it does not know."""
    return werr.UnsupportedFeature(
        f"structured output protocol {go_quote(proto)} is not supported by the llama backend"
    )


def llama_parser_error(cfg: pb.DecodeConfig) -> werr.ModeldError | None:
    """newChatOutputParser's refusals (the parsers themselves, llama.cpp common chat, are not run:
    text passes through)."""
    for p in cfg.ParserProtocols:
        if p in ("", "llama:common_chat_tool_parser"):
            continue
        if p == "llama:common_chat_reasoning_parser":
            if not cfg.ReasoningFormat:
                return werr.UnsupportedFeature(
                    f"reasoning format is required for parser protocol {go_quote(p)}"
                )
            continue
        return werr.UnsupportedFeature(f"parser protocol {go_quote(p)}")
    return None


# ----------------------------------------------------------------------------------- the session


class SessionState:
    """The engine-independent state of one session and the wire answers computed from it.

    Not thread-safe by itself: the real engines call it under their session lock on their worker
    thread, the fake one on the event loop.
    """

    def __init__(
        self,
        config: pb.Config,
        *,
        even_window: bool,
        llama_rules: bool,
        add_bos: bool = False,
        sliding_window: int = 0,
    ) -> None:
        self.num_ctx, self.planner_ctx = resolve_window(config, even=even_window)
        #: llama session rules (staged overflows, StreamingLLM residency ops); else OpenVINO's.
        self.llama_rules = llama_rules
        self.add_bos = add_bos
        self.sliding_window = sliding_window
        self.resident: list[int] = []
        self.prefix_len = 0
        self.stable_text = ""
        self.prefix_text = ""
        self.tools = ""
        self.manifest = pb.ContextManifest()
        self.physical_prefill_calls = 0
        self.physical_prefill_tokens = 0
        self.decode_calls = 0
        self._plan_budget = 0
        self._closed = False
        self._fatal = ""
        self._residency_err = ""

    # ------------------------------------------------------------------ engine hooks

    def _tokenize_prefix(self, text: str) -> list[int]:
        """The stable prefix's tokens (with the BOS policy), engine error texts wrapped."""
        raise NotImplementedError

    def _tokenize_suffix(self, text: str, add_bos: bool) -> list[int]:
        raise NotImplementedError

    def _enrich_stable(self, m: pb.ContextManifest, text: str, toks: list[int]) -> pb.ContextManifest:
        """The prefix manifest as the session keeps it (a copy; token ranges of stable segments)."""
        return self._stable_manifest(m, toks)

    def _place_volatile_segments(self, suffix: pb.SuffixInput, stoks: list[int]) -> str:
        """Token ranges of the volatile segments after a suffix; returns the residency diagnostic the
        session keeps ("" for none)."""
        return ""

    def _drop_kv(self, n: int) -> None:
        """Drop the native KV positions ``n…`` (before the tape is cut to ``n``)."""

    def _eval_prefix(self, toks: list[int], reuse: int) -> None:
        """Evaluate ``toks[reuse:]`` at positions ``reuse…`` (counting the physical prefill)."""
        self._count_prefill(len(toks) - reuse)

    def _eval_suffix(self, stoks: list[int]) -> None:
        """Evaluate the suffix tokens at the end of the tape (counting the physical prefill)."""
        self._count_prefill(len(stoks))

    def _release_native(self) -> None:
        """Free the native context (on close)."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def fatal_error(self) -> str:
        return self._fatal

    def _closed_err(self) -> werr.ModeldError:
        if self._fatal:
            return werr.SessionFatal(self._fatal)
        return werr.SessionClosed()

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_err()

    def _close_locked(self) -> None:
        # closeLocked
        if self._closed:
            return
        self._closed = True
        self._release_native()
        self.resident = []
        self.prefix_len = 0
        self.planner_ctx = 0
        self.stable_text = ""
        self.prefix_text = ""
        self.manifest = pb.ContextManifest()
        self._plan_budget = 0
        self._residency_err = ""

    def mark_fatal(self, cause: str) -> werr.SessionFatal:
        """Poison the session (lifecycle.go markFatal): the first cause wins, the session is closed,
        later calls answer ``session_fatal``."""
        if not self._fatal:
            self._fatal = cause
        self._close_locked()
        self._residency_err = "session fatal: " + self._fatal
        return werr.SessionFatal(cause)

    # ------------------------------------------------------------------ books

    def _overflow(self, stage: str, resident: int, additional: int) -> werr.ContextOverflow:
        if self.llama_rules:
            return werr.ContextOverflow(
                stage=stage, resident_tokens=resident, additional_tokens=additional, num_ctx=self.num_ctx
            )
        return werr.ContextOverflow()  # OpenVINO: the bare sentinel

    def _count_prefill(self, n: int) -> None:
        if n > 0:
            self.physical_prefill_calls += 1
            self.physical_prefill_tokens += n

    def _update_plan(self) -> None:
        self._residency_err = ""
        self._plan_budget = self.num_ctx if self.num_ctx > 0 and self.resident else 0

    def _truncate(self, n: int) -> None:
        """Cut the resident tape (and the native KV) to ``n`` tokens; a cut prefix loses its text."""
        self._drop_kv(n)
        del self.resident[n:]
        if self.prefix_len > n:
            self.prefix_len = n
            self.prefix_text = ""

    def _forget_range(self, a: int, b: int) -> None:
        """evictRangeLocked's books: ``[a,b)`` leaves the tape, the positions after it slide down."""
        old_prefix = self.prefix_len
        del self.resident[a:b]
        self.prefix_len = min(a, old_prefix) + max(0, old_prefix - b)
        if a < old_prefix:
            self.prefix_text = ""

    def _evict(self, a: int, b: int) -> None:
        self._forget_range(a, b)

    def _slide_for_decode(self) -> bool:
        """slideForDecodeLocked: keep the stable prefix and the recent tail, drop the middle."""
        recent = derive_eviction_budget(self.num_ctx, self.sliding_window, 1).recent_tokens
        a = self.prefix_len
        b = len(self.resident) - recent
        if b <= a:
            return False
        self._evict(a, b)
        return True

    # ------------------------------------------------------------------ manifests

    @staticmethod
    def _stable_manifest(m: pb.ContextManifest, toks: list[int]) -> pb.ContextManifest:
        out = pb.ContextManifest()
        out.CopyFrom(m)
        out.stable_token_hash = token_hash(toks)
        return out

    def _check_suffix_manifest(self, m: pb.ContextManifest) -> None:
        ok, reason = compatible_runtime(self.manifest, m)
        if not ok:
            raise werr.ManifestMismatch(reason)
        if (
            not manifest_is_zero(self.manifest)
            and not manifest_is_zero(m)
            and self.manifest.stable_byte_hash != m.stable_byte_hash
        ):
            raise werr.ManifestMismatch("stable prefix changed between EnsurePrefix and PrefillSuffix")

    # ------------------------------------------------------------------ EnsurePrefix / PrefillSuffix

    def _ensure_prefix_open(self, prefix: pb.PrefixInput) -> pb.PrefixStatus:
        """EnsurePrefix on an open session: longest common token-prefix reuse, the tail evaluated."""
        toks = self._tokenize_prefix(prefix.Text)
        if len(toks) > self.num_ctx:  # no cold store: the logical budget is the hot window
            raise self._overflow("prefix", 0, len(toks))
        enriched = self._enrich_stable(prefix.Manifest, prefix.Text, toks)
        old_resident = len(self.resident)
        reuse = 0
        ok, _ = compatible_runtime(self.manifest, prefix.Manifest)
        if not ok:
            self._drop_kv(0)
            self.resident = []
            self.prefix_len = 0
            self.prefix_text = ""
            self.manifest = pb.ContextManifest()
        else:
            reuse = common_prefix_len(self.resident, toks)
        if reuse < len(self.resident):
            self._truncate(reuse)
        self._eval_prefix(toks, reuse)
        self.resident = list(toks)
        self.prefix_len = len(toks)
        self.stable_text = prefix.Text
        self.prefix_text = prefix.Text
        self.tools = prefix.Tools
        self.manifest = enriched
        self._update_plan()
        return pb.PrefixStatus(
            ReusedTokens=reuse,
            PrefilledTokens=len(toks) - reuse,
            DroppedTokens=old_resident - reuse,
            PrefixTokens=len(toks),
            ResidentTokens=len(self.resident),
            AvailableTokens=self.num_ctx - len(self.resident),
            StableByteHash=prefix.Manifest.stable_byte_hash,
            StableTokenHash=token_hash(toks),
            ManifestDigest=manifest_digest(prefix.Manifest),
        )

    def _prefill_suffix_open(self, suffix: pb.SuffixInput) -> pb.SuffixStatus:
        """PrefillSuffix on an open session: the suffix appended; it must fit the hot window (without
        manifest token ranges the residency driver has nothing to park: llama.go's StreamingLLM-only
        branch)."""
        self._check_suffix_manifest(suffix.Manifest)
        stoks = self._tokenize_suffix(suffix.Text, self.prefix_len == 0 and self.add_bos)
        if len(self.resident) + len(stoks) > self.num_ctx:
            raise self._overflow("suffix", len(self.resident), len(stoks))
        self._eval_suffix(stoks)
        self.resident.extend(stoks)
        self.manifest.volatile_token_hash = token_hash(stoks)
        diag = self._place_volatile_segments(suffix, stoks)
        self._update_plan()
        self._residency_err = diag
        return pb.SuffixStatus(
            SuffixTokens=len(stoks),
            PrefixTokens=self.prefix_len,
            ResidentTokens=len(self.resident),
            AvailableTokens=self.num_ctx - len(self.resident),
            ManifestDigest=manifest_digest(self.manifest),
        )

    # ------------------------------------------------------------------ ExplainContext

    def _fill_residency(self, rep: pb.ContextReport) -> None:
        """The residency section: the plan budget, the llama residency operations, sliding-window
        attention, the last residency error."""
        if self._plan_budget > 0 or self._residency_err:
            r = rep.residency
            r.budget_tokens = self._plan_budget
            if self.llama_rules:
                r.capabilities.remove_tail = True
                r.capabilities.remove_middle = True
                r.capabilities.position_shift = True
            if self.sliding_window > 0:
                r.capabilities.sparse_attention = True
                r.capabilities.sliding_window_attention_tokens = self.sliding_window
            if self._residency_err:
                r.error = self._residency_err

    def _context_report(self) -> pb.ContextReport:
        rep = pb.ContextReport(
            ResidentTokens=len(self.resident),
            PrefixTokens=self.prefix_len,
            NumCtx=self.num_ctx,
            HotContextTokens=self.num_ctx,
            PlannerEffectiveContext=self.planner_ctx,
            AvailableTokens=self.num_ctx - len(self.resident),
            StableByteHash=self.manifest.stable_byte_hash,
            StableTokenHash=self.manifest.stable_token_hash,
            ManifestDigest=manifest_digest(self.manifest),
            Closed=self._closed,
            fatal_error=self._fatal,
            physical_prefill_calls=self.physical_prefill_calls,
            physical_prefill_tokens=self.physical_prefill_tokens,
            decode_calls=self.decode_calls,
        )
        rep.Manifest.CopyFrom(self.manifest)
        self._fill_residency(rep)
        return rep

    # ------------------------------------------------------------------ Snapshot / Restore

    def _snapshot_wire(self) -> pb.SessionSnapshot:
        """The wire part of a snapshot (the engine adds its state bytes)."""
        snap = pb.SessionSnapshot(
            resident_tokens=len(self.resident),
            prefix_tokens=self.prefix_len,
            num_ctx=self.num_ctx,
            resident_token_ids=self.resident,
            stable_text=self.stable_text,
            prefix_text=self.prefix_text,
            tools=self.tools,
        )
        snap.manifest.CopyFrom(self.manifest)
        return snap

    def _check_snapshot(self, snap: pb.SessionSnapshot, *, token_ids_required: bool = True) -> None:
        """Restore's checks up to the manifest, in Go's order. ``token_ids_required``: a non-empty
        snapshot must carry its resident token ids (llama; OpenVINO re-tokenizes the prefix text)."""
        if snap.num_ctx > 0 and snap.num_ctx != self.num_ctx:
            raise werr.ManifestMismatch("snapshot context window changed")
        if snap.resident_tokens < 0 or snap.prefix_tokens < 0 or snap.prefix_tokens > snap.resident_tokens:
            if not self.llama_rules:
                raise werr.ContextOverflow()
            raise PlainError(
                f"llamasession restore invalid snapshot: prefix_tokens={snap.prefix_tokens} "
                f"resident_tokens={snap.resident_tokens}"
            )
        if snap.resident_tokens > self.num_ctx:
            raise self._overflow("restore", 0, int(snap.resident_tokens))
        if (
            token_ids_required
            and snap.resident_tokens > 0
            and len(snap.resident_token_ids) != snap.resident_tokens
        ):
            raise PlainError(
                f"llamasession restore invalid snapshot: resident_token_ids={len(snap.resident_token_ids)} "
                f"resident_tokens={snap.resident_tokens}"
            )
        if not manifest_is_zero(self.manifest) and not manifest_is_zero(snap.manifest):
            ok, reason = compatible_runtime(self.manifest, snap.manifest)
            if not ok:
                raise werr.ManifestMismatch(reason)

    @staticmethod
    def _check_state_present(snap: pb.SessionSnapshot, state: bytes) -> None:
        if snap.resident_tokens > 0 and not state:
            raise PlainError(
                "llamasession restore invalid snapshot: non-empty resident token set has empty state"
            )

    def _adopt_snapshot(self, snap: pb.SessionSnapshot, resident: list[int]) -> None:
        """The session's books after a restore from ``snap`` (its tape already in the native state)."""
        self.resident = resident
        self.prefix_len = int(snap.prefix_tokens)
        self.stable_text = snap.stable_text
        self.prefix_text = snap.prefix_text or snap.stable_text
        self.tools = snap.tools
        m = pb.ContextManifest()
        m.CopyFrom(snap.manifest)
        self.manifest = m
        self._update_plan()
