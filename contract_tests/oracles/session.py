"""A model of one session's resident tokens and of every count the daemon reports.

Arithmetic assumed (session-semantics.md §4.2–4.6 with the llama backend's longest-common-prefix
reuse, which the simulator's fake engine follows — docs/fake-engine.md): a token is one UTF-8 byte
of the text (no BOS: the suite's model says ``add_bos_token = false``); manifests are zero (always
compatible). With R the resident token list and P the new prefix:

* EnsurePrefix(P): ``len(P) > num_ctx`` → ``context_overflow`` (stage prefix, resident 0, additional
  len(P)), nothing changes; else Reused = LCP(R, P), Prefilled = len(P) − Reused, Dropped =
  len(R) − Reused, Prefix = Resident = len(P), Available = num_ctx − Resident; R := P.
* PrefillSuffix(S): ``len(R) + len(S) > num_ctx`` → ``context_overflow`` (stage suffix, resident
  len(R), additional len(S)), nothing changes; else SuffixTokens = len(S), Resident = len(R)+len(S),
  Prefix unchanged; R := R + S.
* Decode(n) (only while len(R) + n < num_ctx, so no window slide): with R empty → one in-stream
  ``context_overflow``; else exactly n chunks of one token each, and the tokens become resident
  (a chunk ``"\ufffd"`` is a byte the model cannot know: it matches no ASCII prefix byte).
* ExplainContext: Resident, Prefix, NumCtx, Available; Snapshot records (R, prefix); Restore
  brings them back; after Close every call → ``session_closed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UNKNOWN", "Failure", "SessionModel", "SessionRelations", "tokens"]

UNKNOWN = -1  # a resident token whose byte the model does not know


def tokens(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y or x == UNKNOWN:
            break
        n += 1
    return n


@dataclass
class SessionModel:
    num_ctx: int
    resident: list[int] = field(default_factory=list)
    prefix: int = 0
    closed: bool = False

    def ensure_prefix(self, text: str) -> dict[str, int] | tuple[str, dict[str, int]]:
        if self.closed:
            return ("session_closed", {})
        p = tokens(text)
        if len(p) > self.num_ctx:
            return (
                "context_overflow",
                {"resident_tokens": 0, "additional_tokens": len(p), "num_ctx": self.num_ctx},
            )
        reused = _lcp(self.resident, p)
        out = {
            "ReusedTokens": reused,
            "PrefilledTokens": len(p) - reused,
            "DroppedTokens": len(self.resident) - reused,
            "PrefixTokens": len(p),
            "ResidentTokens": len(p),
            "AvailableTokens": self.num_ctx - len(p),
        }
        self.resident = p
        self.prefix = len(p)
        return out

    def prefill_suffix(self, text: str) -> dict[str, int] | tuple[str, dict[str, int]]:
        if self.closed:
            return ("session_closed", {})
        s = tokens(text)
        if len(self.resident) + len(s) > self.num_ctx:
            return (
                "context_overflow",
                {"resident_tokens": len(self.resident), "additional_tokens": len(s), "num_ctx": self.num_ctx},
            )
        self.resident = self.resident + s
        return {
            "SuffixTokens": len(s),
            "PrefixTokens": self.prefix,
            "ResidentTokens": len(self.resident),
            "AvailableTokens": self.num_ctx - len(self.resident),
        }

    def decode_allowed(self, n: int) -> bool:
        return len(self.resident) + n < self.num_ctx

    def decode(self, n: int) -> int | str:
        """Expected chunk count, or the expected error kind."""
        if self.closed:
            return "session_closed"
        if not self.resident:
            return "context_overflow"
        return n

    def decoded(self, chunk_texts: list[str]) -> None:
        for t in chunk_texts:
            b = t.encode("utf-8")
            self.resident.append(b[0] if len(b) == 1 else UNKNOWN)

    def explain(self) -> dict[str, int] | str:
        if self.closed:
            return "session_closed"
        return {
            "ResidentTokens": len(self.resident),
            "PrefixTokens": self.prefix,
            "NumCtx": self.num_ctx,
            "AvailableTokens": self.num_ctx - len(self.resident),
        }

    def snapshot(self) -> tuple[list[int], int]:
        return (list(self.resident), self.prefix)

    def restore(self, snap: tuple[list[int], int]) -> None:
        self.resident, self.prefix = list(snap[0]), snap[1]

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------------------------------
# the same session, tokenizer-agnostic: relations only


Failure = tuple[str, Mapping[str, Any] | None]
"""A typed failure as the oracle sees it: (kind, overflow detail or None)."""


@dataclass
class SessionRelations:
    """The session of :class:`SessionModel` for an engine whose tokenizer the oracle does not know.

    Token counts are learned from the answers (a text's PrefixTokens / SuffixTokens, an overflow's
    ``additional_tokens``) and must stay the same for the same text; everything else is the relation
    the contract states (session-semantics.md §4.2–4.6), with R the resident count, P = PrefixTokens:

    * EnsurePrefix: Reused + Prefilled = P, Dropped = R − Reused, 0 ≤ Reused ≤ min(R, P), Resident = P,
      Available = num_ctx − P; the prefix whose tokens open the resident set, sent again, is fully
      warm (Reused = P); nothing resident → Reused 0. P > num_ctx → ``context_overflow`` (detail:
      stage ``prefix``, resident 0, additional P, num_ctx), nothing changes.
    * PrefillSuffix: SuffixTokens S > 0, Resident = R + S, Prefix unchanged, Available = num_ctx −
      Resident; R + S > num_ctx → ``context_overflow`` (stage ``suffix``, resident R, additional S).
    * Decode(n), R + n < num_ctx: R = 0 → one in-stream ``context_overflow`` (stage ``decode``); else
      n tokens are generated (the suite's tiny models never end a stream early) and become resident,
      in at most n chunks (a token whose piece is empty sends no chunk: llama, OpenVINO).
    * ExplainContext / Snapshot agree with R, the prefix count and num_ctx; Restore brings them back.

    ``detail_required``: the backend emits the overflow detail (llama); otherwise (openvino) a bare
    sentinel is accepted and, when a detail comes, it is checked all the same. Each method takes the
    daemon's answer (a mapping) or its :data:`Failure`, returns the list of violations (empty: agreed)
    and moves the model on as the contract says.
    """

    num_ctx: int
    detail_required: bool = True
    resident: int = 0
    prefix: int = 0
    prefix_text: str | None = None
    closed: bool = False
    prefix_counts: dict[str, int] = field(default_factory=dict)
    suffix_counts: dict[str, int] = field(default_factory=dict)
    too_long: set[str] = field(default_factory=set)
    suffix_floor: dict[str, int] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------------------

    def _overflow(
        self, fail: Failure, stage: str, resident: int, known: int | None, fits: bool | None
    ) -> tuple[list[str], int | None]:
        kind, detail = fail
        bad: list[str] = []
        if kind != "context_overflow":
            return [f"{stage}: want context_overflow or an answer, got {kind}"], None
        if fits:
            bad.append(f"{stage}: context_overflow although {known} tokens fit (resident {resident})")
        if not detail or not detail.get("stage"):
            if self.detail_required:
                bad.append(f"{stage}: context_overflow without its detail")
            return bad, None
        add = detail.get("additional_tokens")
        got = (detail.get("stage"), detail.get("resident_tokens"), detail.get("num_ctx"))
        if got != (stage, resident, self.num_ctx):
            want = f"{stage}/{resident}/{self.num_ctx}"
            bad.append(f"{stage}: overflow detail {dict(detail)}, want stage/resident/num_ctx {want}")
        if not isinstance(add, int) or resident + add <= self.num_ctx:
            bad.append(f"{stage}: overflow additional {add!r} would fit beside {resident} in {self.num_ctx}")
            return bad, None
        if known is not None and add != known:
            bad.append(f"{stage}: overflow additional_tokens {add}, earlier the same text counted {known}")
        return bad, add

    @staticmethod
    def _eq(bad: list[str], what: str, got: Any, want: Any) -> None:
        if got != want:
            bad.append(f"{what}: got {got!r}, the contract says {want!r}")

    # -- calls -------------------------------------------------------------------------------------

    def ensure_prefix(self, text: str, got: Mapping[str, Any] | Failure) -> list[str]:
        if self.closed:
            return [] if isinstance(got, tuple) and got[0] == "session_closed" else [f"closed: got {got!r}"]
        known = self.prefix_counts.get(text)
        if isinstance(got, tuple):
            fits = None if known is None else known <= self.num_ctx
            bad, add = self._overflow(got, "prefix", 0, known, fits)
            if add is not None:
                self.prefix_counts[text] = add
            elif not bad:
                self.too_long.add(text)
            return bad
        bad = []
        p = int(got.get("PrefixTokens", 0))
        reused, prefilled = int(got.get("ReusedTokens", 0)), int(got.get("PrefilledTokens", 0))
        if text in self.too_long or p > self.num_ctx or p <= 0:
            bad.append(f"prefix: {p} tokens accepted in a window of {self.num_ctx} (or known too long)")
        if known is not None:
            self._eq(bad, "PrefixTokens (same text as before)", p, known)
        self._eq(bad, "ReusedTokens + PrefilledTokens", reused + prefilled, p)
        dropped = got.get("DroppedTokens", 0)
        self._eq(bad, "DroppedTokens = old resident − Reused", dropped, self.resident - reused)
        self._eq(bad, "ResidentTokens", got.get("ResidentTokens", 0), p)
        self._eq(bad, "AvailableTokens", got.get("AvailableTokens", 0), self.num_ctx - p)
        if not 0 <= reused <= min(self.resident, p):
            bad.append(f"ReusedTokens {reused} outside [0, min(resident {self.resident}, prefix {p})]")
        if self.prefix_text == text and self.resident:
            self._eq(bad, "ReusedTokens of the resident prefix sent again (fully warm)", reused, p)
        self.prefix_counts[text] = p
        self.resident, self.prefix, self.prefix_text = p, p, text
        return bad

    def prefill_suffix(self, text: str, got: Mapping[str, Any] | Failure) -> list[str]:
        if self.closed:
            return [] if isinstance(got, tuple) and got[0] == "session_closed" else [f"closed: got {got!r}"]
        known = self.suffix_counts.get(text)
        if isinstance(got, tuple):
            fits = None if known is None else self.resident + known <= self.num_ctx
            bad, add = self._overflow(got, "suffix", self.resident, known, fits)
            if add is not None:
                self.suffix_counts[text] = add
            elif not bad:
                floor = self.num_ctx - self.resident + 1
                self.suffix_floor[text] = max(floor, self.suffix_floor.get(text, 0))
            return bad
        bad = []
        s = int(got.get("SuffixTokens", 0))
        if s <= 0 or self.resident + s > self.num_ctx or s < self.suffix_floor.get(text, 0):
            bad.append(f"suffix: {s} tokens accepted beside {self.resident} in {self.num_ctx}")
        if known is not None:
            self._eq(bad, "SuffixTokens (same text as before)", s, known)
        self._eq(bad, "PrefixTokens after a suffix", got.get("PrefixTokens", 0), self.prefix)
        self._eq(bad, "ResidentTokens = resident + suffix", got.get("ResidentTokens", 0), self.resident + s)
        self._eq(bad, "AvailableTokens", got.get("AvailableTokens", 0), self.num_ctx - self.resident - s)
        self.suffix_counts[text] = s
        self.resident += s
        return bad

    def decode_allowed(self, n: int) -> bool:
        return self.resident + n < self.num_ctx

    def decode(self, n: int, chunks: int, fail: Failure | None) -> list[str]:
        if self.closed:
            ok = fail is not None and fail[0] == "session_closed"
            return [] if ok else [f"closed: decode got {fail!r}"]
        bad: list[str] = []
        if self.resident == 0:
            if fail is None:
                return [f"decode with nothing resident: want context_overflow, got {chunks} chunks"]
            kind, detail = fail
            bad += [] if kind == "context_overflow" else [f"decode with nothing resident: {kind}"]
            if chunks:
                bad.append(f"decode overflow after {chunks} chunks")
            if detail and detail.get("stage"):
                if (detail.get("stage"), detail.get("num_ctx")) != ("decode", self.num_ctx):
                    bad.append(f"decode overflow detail {dict(detail)}")
            elif self.detail_required and kind == "context_overflow":
                bad.append("decode: context_overflow without its detail")
            return bad
        if fail is not None:
            return [f"decode({n}) with {self.resident} resident in {self.num_ctx}: {fail[0]}"]
        if chunks > n:
            bad.append(f"Decode MaxTokens {n} sent {chunks} chunks (at most one per token)")
        self.resident += n
        return bad

    def explain(self, got: Mapping[str, Any] | Failure) -> list[str]:
        if self.closed:
            if isinstance(got, tuple):
                return [] if got[0] == "session_closed" else [f"closed: explain got {got[0]}"]
            return [] if got.get("Closed") is True else [f"closed: explain answered {dict(got)}"]
        if isinstance(got, tuple):
            return [f"explain failed: {got[0]}"]
        bad: list[str] = []
        self._eq(bad, "explain ResidentTokens", got.get("ResidentTokens", 0), self.resident)
        self._eq(bad, "explain PrefixTokens", got.get("PrefixTokens", 0), self.prefix)
        self._eq(bad, "explain NumCtx", got.get("NumCtx", 0), self.num_ctx)
        self._eq(bad, "explain AvailableTokens", got.get("AvailableTokens", 0), self.num_ctx - self.resident)
        return bad

    def snapshot(self, got: Mapping[str, Any]) -> list[str]:
        bad: list[str] = []
        self._eq(bad, "snapshot resident_tokens", got.get("resident_tokens", 0), self.resident)
        self._eq(bad, "snapshot prefix_tokens", got.get("prefix_tokens", 0), self.prefix)
        return bad

    def state(self) -> tuple[int, int, str | None]:
        return (self.resident, self.prefix, self.prefix_text)

    def restore(self, state: tuple[int, int, str | None]) -> None:
        self.resident, self.prefix, self.prefix_text = state

    def close(self) -> None:
        self.closed = True
