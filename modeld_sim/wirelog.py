"""The simulator's own record of every call it answered, message for message, and scripted answers.

The transcript (:mod:`modeld_sim.transcript`) keeps a short summary per call for people to read. A
conformance clause needs more: the request exactly as the daemon decoded it (every field, zero values
and absent pointers included) and every message it sent back. :class:`WireLog` keeps that, in memory,
for the last ``keep`` calls. It is the independent witness of a connector's encoding: what a caller
asked a connector to send is compared with what the daemon received, and what a connector returned
with what the daemon sent.

It also lets a test choose what the daemon answers (:meth:`WireLog.answer_next`): the next successful
call of a method answers the given message instead of the engine's (a unary method still runs, so its
side effects happen; a Decode stream is replaced whole, the engine is not asked). Values a real engine
would rarely produce (every field of ``DescribeResp`` set, extreme counts, odd strings) can so be sent
through a connector and compared with what it returns.

Thread-safe: the server appends on its event loop, a test reads from its own thread.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import Message

__all__ = ["DEFAULT_KEEP", "WireCall", "WireLog"]

#: Calls kept in memory (the oldest are dropped first).
DEFAULT_KEEP: Final = 4096


def _copy(msg: Message) -> Message:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


@dataclass
class WireCall:
    """One call as the daemon saw it.

    ``request``: the decoded request (for PushModel its first frame, without data bytes), a copy made
    before any handler touched it; None when the body could not be decoded. ``data_bytes``: PushModel
    only, the number of data bytes of each frame in order; :attr:`data_sha256` the digest of them all
    (the data itself is not kept). ``responses``: every message sent (one for a unary
    call, each chunk of a Decode stream). ``code``/``message``: the status, None until the call ended
    (and when the stream was reset without one).
    """

    seq: int
    method: str
    conn: int
    fence: tuple[str, ...]
    request: Message | None
    responses: list[Message] = field(default_factory=list)
    data_bytes: list[int] = field(default_factory=list)
    code: int | None = None
    message: str = ""
    done: bool = False
    _data_hash: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def ok(self) -> bool:
        return self.done and self.code == 0

    @property
    def data_sha256(self) -> str:
        """sha256 hex of the PushModel data received, every frame in order."""
        return str(self._data_hash.hexdigest())


class WireLog:
    """Calls answered by one simulator, oldest first, plus the answers scripted for the next calls."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._calls: collections.deque[WireCall] = collections.deque(maxlen=max(1, keep))
        self._answers: dict[str, collections.deque[Message | tuple[Message, ...]]] = {}
        self._seq = 0
        self._mu = threading.Lock()

    # -- reading ----------------------------------------------------------------------------------

    def mark(self) -> int:
        """The sequence number of the last call so far: ``calls(since=mark())`` are the calls after."""
        with self._mu:
            return self._seq

    def calls(self, method: str | None = None, *, since: int = 0) -> list[WireCall]:
        """Calls with ``seq > since`` (of ``method`` when given), oldest first."""
        with self._mu:
            return [c for c in self._calls if c.seq > since and (method is None or c.method == method)]

    # -- scripting --------------------------------------------------------------------------------

    def answer_next(self, method: str, reply: Message | Sequence[Message]) -> None:
        """The next successful call of ``method`` answers ``reply`` (a message; for Decode the
        sequence of chunks the stream sends). Queued answers are used in order."""
        item: Message | tuple[Message, ...] = (
            _copy(reply) if isinstance(reply, Message) else tuple(_copy(m) for m in reply)
        )
        with self._mu:
            self._answers.setdefault(method, collections.deque()).append(item)

    def clear_answers(self) -> None:
        with self._mu:
            self._answers.clear()

    def pending_answers(self, method: str) -> int:
        with self._mu:
            return len(self._answers.get(method, ()))

    # -- recording (the server) -------------------------------------------------------------------

    def begin(self, method: str, conn: int, fence: Sequence[str], request: Message | None) -> WireCall:
        req = None if request is None else _copy(request)
        data = b""
        if req is not None and method == "PushModel":
            data = getattr(req, "data", b"")
            req.ClearField("data")
        with self._mu:
            self._seq += 1
            entry = WireCall(self._seq, method, conn, tuple(fence), req)
            if req is not None and method == "PushModel":
                entry.data_bytes.append(len(data))
                entry._data_hash.update(data)
            self._calls.append(entry)
            return entry

    def take_answer(self, method: str) -> Message | tuple[Message, ...] | None:
        with self._mu:
            q = self._answers.get(method)
            if not q:
                return None
            return q.popleft()

    def sent(self, entry: WireCall, msg: Message) -> None:
        copy = _copy(msg)
        with self._mu:
            entry.responses.append(copy)

    def frame(self, entry: WireCall, data: bytes) -> None:
        """A later PushModel frame's data (counted and hashed, not kept)."""
        with self._mu:
            entry.data_bytes.append(len(data))
            entry._data_hash.update(data)

    def end(self, entry: WireCall, code: int | None, message: str) -> None:
        with self._mu:
            entry.code = code
            entry.message = message
            entry.done = True
