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

from dataclasses import dataclass, field

__all__ = ["UNKNOWN", "SessionModel", "tokens"]

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
