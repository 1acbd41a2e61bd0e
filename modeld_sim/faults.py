"""Fault rules on any Compute method, applied by the server's hooks while the daemon runs.

A rule is a plain mapping (TOML table, JSON object, keyword arguments) checked by :func:`parse_rule`;
a bad rule raises :class:`FaultRuleError` naming the field. Fields:

what it matches (all given must hold)
    ``method``       a method name, a list of them, or ``"*"`` (default ``"*"``)
    ``model``        only calls for this model: ``model_name`` of the request, or of the session a
                     ``handle`` belongs to (learned from OpenSession answers)
    ``handle``       only calls carrying this handle (a trailing ``*`` makes it a prefix)
when it fires, counted over the calls it matches
    ``nth = 3``      the third call only          ``every = 2``  calls 2, 4, 6, …
    ``first = 2``    the first two calls          ``probability = 0.3`` with ``seed = 7`` (reproducible)
what it does (``action``)
    ``error``        a sentinel error exactly as the daemon sends it: ``token`` (e.g. ``stale_fence``),
                     optional ``detail`` → code and ``"<token>: <text>"`` via ``errors.status_for``
    ``status``       any gRPC status: ``code`` (number or name such as ``"Unavailable"``), ``message``
    ``delay``        wait ``delay`` then answer normally
    ``hang``         answer nothing until the client's deadline (grpc-go then resets the stream), or
                     for ``delay`` at most when given, or forever
    ``close_connection``   drop the HTTP/2 connection mid-call (every session on it dies)
    ``reset_stream``       RST_STREAM the call (``error_code``, default 8 = CANCEL)
    ``decode``       Decode only: stream ``after_chunks`` chunks, then ``then`` = ``end`` (status OK),
                     ``error`` (an in-stream error chunk of ``token`` / ``detail``, then OK, as the daemon
                     does), ``close_connection``, ``reset_stream`` or ``hang``
    ``health``       Health only: answer with ``ready``, ``instance_id`` and / or ``backend`` replaced
                     (not ready, a wrong instance id, a backend mismatch); ``delay`` makes it slow
    ``backend_mismatch``   the ``backend_mismatch`` sentinel (Describe / Embed answer), or
                     ``model_load_failed`` wrapping it for OpenSession / LoadModel (as the slot wraps it)
``delay`` (before any action) and every duration: a Go duration string (``"250ms"``) or a number of
milliseconds. ``id`` names the rule (default ``r1``, ``r2``, …).

:class:`FaultSet` holds the rules (add / remove / clear / list at any time, also counting calls for
scenario triggers); :class:`FaultInjector` is one node's ``ComputeServer.hooks``: it applies the set,
keeps the wedge gate, and writes each call to a :class:`~modeld_sim.transcript.Transcript`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import Message

from modeldconn.gotime import GoTimeError, parse_duration
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb
from modeldconn.wire.fence import FENCE_HEADER
from modeldconn.wire.methods import BY_NAME

from .transcript import Transcript
from .transport import GrpcStatus, ServerCall

__all__ = [
    "ACTIONS",
    "DECODE_THEN",
    "FaultInjector",
    "FaultRule",
    "FaultRuleError",
    "FaultSet",
    "parse_code",
    "parse_duration_field",
    "parse_rule",
    "sentinel_error",
]

ACTIONS: Final = (
    "error",
    "status",
    "delay",
    "hang",
    "close_connection",
    "reset_stream",
    "decode",
    "health",
    "backend_mismatch",
)
DECODE_THEN: Final = ("end", "error", "close_connection", "reset_stream", "hang")
_TERMINAL: Final = frozenset(
    {"error", "status", "hang", "close_connection", "reset_stream", "backend_mismatch"}
)
_FIELDS: Final = frozenset(
    {
        "id",
        "method",
        "model",
        "handle",
        "nth",
        "every",
        "first",
        "probability",
        "seed",
        "action",
        "token",
        "detail",
        "code",
        "message",
        "delay",
        "after_chunks",
        "then",
        "ready",
        "instance_id",
        "backend",
        "error_code",
        "enabled",
    }
)
_CODE_BY_NAME: Final = {name.lower(): num for num, name in werr.GRPC_CODE_NAMES.items()}
_CODE_BY_NAME.update(
    {
        "cancelled": 1,
        "deadline_exceeded": 4,
        "failed_precondition": 9,
        "resource_exhausted": 8,
        "invalid_argument": 3,
        "not_found": 5,
    }
)
_NS: Final = 1_000_000_000
_LOAD_WRAPPED: Final = frozenset({"OpenSession", "LoadModel"})


class FaultRuleError(ValueError):
    """A rule that cannot be used: ``field`` names the offending key (``""`` for the whole rule)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"fault rule: field {field!r}: {message}" if field else f"fault rule: {message}")


def parse_duration_field(name: str, value: Any) -> float:
    """Seconds from a Go duration string or a number of milliseconds; FaultRuleError otherwise."""
    if isinstance(value, bool):
        raise FaultRuleError(
            name, f'want a duration such as "250ms" or a number of milliseconds, got {value!r}'
        )
    if isinstance(value, int | float):
        if value < 0:
            raise FaultRuleError(name, f"must not be negative, got {value!r}")
        return float(value) / 1000.0
    if isinstance(value, str):
        try:
            ns = parse_duration(value.strip())
        except GoTimeError as exc:
            raise FaultRuleError(name, str(exc)) from None
        if ns < 0:
            raise FaultRuleError(name, f"must not be negative, got {value!r}")
        return ns / _NS
    raise FaultRuleError(name, f'want a duration such as "250ms" or a number of milliseconds, got {value!r}')


def parse_code(name: str, value: Any) -> int:
    """A gRPC code from a number (0..16) or a name (``Unavailable``, ``FAILED_PRECONDITION``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 16:
            return value
        raise FaultRuleError(name, f"gRPC codes are 0..16, got {value}")
    if isinstance(value, str):
        key = value.strip().lower()
        if key.isdigit():
            return parse_code(name, int(key))
        if key in _CODE_BY_NAME:
            return _CODE_BY_NAME[key]
    known = ", ".join(werr.GRPC_CODE_NAMES.values())
    raise FaultRuleError(name, f"unknown gRPC code {value!r} (known: 0..16 or {known})")


def sentinel_error(token: str, detail: str | None = None) -> werr.ModeldError:
    """The exception the daemon raises for ``token`` (its class from the sentinel table)."""
    if token not in werr.SENTINEL_BY_TOKEN:
        raise FaultRuleError(
            "token", f"unknown sentinel {token!r} (known: {', '.join(werr.SENTINEL_BY_TOKEN)})"
        )
    cls: type[werr.SentinelError] = next(c for c in _sentinel_classes() if c.sentinel.token == token)
    if cls is werr.ManifestMismatch:
        return werr.ManifestMismatch(detail or "")
    return cls(detail)


def _sentinel_classes() -> Iterable[type[werr.SentinelError]]:
    stack: list[type[werr.SentinelError]] = [werr.SentinelError]
    while stack:
        c = stack.pop()
        for sub in c.__subclasses__():
            stack.append(sub)
            if "sentinel" in sub.__dict__ and sub is not werr.BackendMismatchLoadFailed:
                yield sub


def _int_field(d: Mapping[str, Any], name: str, minimum: int) -> int | None:
    v = d.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise FaultRuleError(name, f"want an integer >= {minimum}, got {v!r}")
    if v < minimum:
        raise FaultRuleError(name, f"want an integer >= {minimum}, got {v}")
    return v


def _str_field(d: Mapping[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise FaultRuleError(name, f"want a string, got {v!r}")
    return v


@dataclass
class FaultRule:
    """One checked rule (see the module docstring). Mutable counters live on the rule."""

    id: str
    action: str
    methods: frozenset[str] | None = None  # None: every method
    model: str | None = None
    handle: str | None = None
    nth: int | None = None
    every: int | None = None
    first: int | None = None
    probability: float | None = None
    seed: int | None = None
    token: str | None = None
    detail: str | None = None
    code: int = 0
    message: str = ""
    delay: float = 0.0
    after_chunks: int = 0
    then: str = "end"
    ready: bool | None = None
    instance_id: str | None = None
    backend: str | None = None
    error_code: int = 8
    enabled: bool = True
    spec: dict[str, Any] = field(default_factory=dict)
    matched: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def describe(self) -> dict[str, Any]:
        """The rule as given plus its counters (what ``fault list`` shows)."""
        return {**self.spec, "id": self.id, "matched": self.matched, "fired": self.fired}

    @property
    def label(self) -> str:
        return f"{self.id}:{self.action}" + (f"/{self.then}" if self.action == "decode" else "")

    def matches(self, method: str, model: str | None, handle: str | None) -> bool:
        if not self.enabled:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.model is not None and model != self.model:
            return False
        if self.handle is not None:
            if handle is None:
                return False
            if self.handle.endswith("*"):
                if not handle.startswith(self.handle[:-1]):
                    return False
            elif handle != self.handle:
                return False
        return True

    def select(self) -> bool:
        """Count one matching call; True when the rule fires for it."""
        self.matched += 1
        n = self.matched
        ok = True
        if self.nth is not None:
            ok = ok and n == self.nth
        if self.every is not None:
            ok = ok and n % self.every == 0
        if self.first is not None:
            ok = ok and n <= self.first
        if self.probability is not None:
            ok = self._rng.random() < self.probability and ok
        if ok:
            self.fired += 1
        return ok


def parse_rule(spec: Mapping[str, Any], *, default_id: str = "") -> FaultRule:
    """Check a rule given as a mapping; raises :class:`FaultRuleError` naming the bad field."""
    if not isinstance(spec, Mapping):
        raise FaultRuleError("", f"a rule is a table / object, got {type(spec).__name__}")
    for k in spec:
        if k not in _FIELDS:
            raise FaultRuleError(str(k), f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    action = spec.get("action")
    if action is None:
        raise FaultRuleError("action", f"missing (one of {', '.join(ACTIONS)})")
    if action not in ACTIONS:
        raise FaultRuleError("action", f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    rid = spec.get("id", default_id or "r")
    if not isinstance(rid, str) or not rid:
        raise FaultRuleError("id", f"want a non-empty string, got {rid!r}")
    # methods
    raw_m = spec.get("method", "*")
    methods: frozenset[str] | None
    names = [raw_m] if isinstance(raw_m, str) else raw_m
    if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
        raise FaultRuleError("method", f'want a method name, a list of names or "*", got {raw_m!r}')
    if "*" in names:
        methods = None
    else:
        for name in names:
            if name not in BY_NAME:
                raise FaultRuleError("method", f"unknown method {name!r} (known: {', '.join(BY_NAME)})")
        methods = frozenset(names)
    rule = FaultRule(id=rid, action=str(action), methods=methods, spec=dict(spec))
    rule.model = _str_field(spec, "model")
    rule.handle = _str_field(spec, "handle")
    rule.nth = _int_field(spec, "nth", 1)
    rule.every = _int_field(spec, "every", 1)
    rule.first = _int_field(spec, "first", 0)
    p = spec.get("probability")
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise FaultRuleError("probability", f"want a number in [0, 1], got {p!r}")
        rule.probability = float(p)
    seed = spec.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultRuleError("seed", f"want an integer, got {seed!r}")
        rule.seed = seed
    rule._rng = random.Random(rule.seed)
    if "delay" in spec:
        rule.delay = parse_duration_field("delay", spec["delay"])
    en = spec.get("enabled", True)
    if not isinstance(en, bool):
        raise FaultRuleError("enabled", f"want true or false, got {en!r}")
    rule.enabled = en
    rule.detail = _str_field(spec, "detail")
    # per action
    if action == "error":
        token = _str_field(spec, "token")
        if token is None:
            raise FaultRuleError("token", 'missing: the sentinel token to send (e.g. "stale_fence")')
        sentinel_error(token)  # validates
        rule.token = token
    elif action == "status":
        if "code" not in spec:
            raise FaultRuleError("code", "missing: the gRPC code to send")
        rule.code = parse_code("code", spec["code"])
        if rule.code == 0:
            raise FaultRuleError("code", "0 (OK) is not a fault")
        rule.message = _str_field(spec, "message") or ""
    elif action == "decode":
        if methods is not None and methods != frozenset({"Decode"}):
            raise FaultRuleError("method", "the decode action applies to Decode only")
        rule.methods = frozenset({"Decode"})
        rule.after_chunks = _int_field(spec, "after_chunks", 0) or 0
        then = spec.get("then", "end")
        if then not in DECODE_THEN:
            raise FaultRuleError("then", f"unknown {then!r} (one of {', '.join(DECODE_THEN)})")
        rule.then = str(then)
        if then == "error":
            token = _str_field(spec, "token")
            if token is not None:
                sentinel_error(token)
            elif rule.detail is None:
                raise FaultRuleError("token", 'then = "error" needs a token (or a detail for a plain error)')
            rule.token = token
    elif action == "health":
        if methods is not None and methods != frozenset({"Health"}):
            raise FaultRuleError("method", "the health action applies to Health only")
        rule.methods = frozenset({"Health"})
        ready = spec.get("ready")
        if ready is not None and not isinstance(ready, bool):
            raise FaultRuleError("ready", f"want true or false, got {ready!r}")
        rule.ready = ready
        rule.instance_id = _str_field(spec, "instance_id")
        rule.backend = _str_field(spec, "backend")
        if ready is None and rule.instance_id is None and rule.backend is None and rule.delay == 0:
            raise FaultRuleError("", "a health rule needs ready, instance_id, backend or delay")
    elif action == "reset_stream":
        ec = _int_field(spec, "error_code", 0)
        rule.error_code = 8 if ec is None else ec
    elif action in ("delay", "hang") and action == "delay" and "delay" not in spec:
        raise FaultRuleError("delay", "missing: how long to wait")
    for name in ("token",):
        if name in spec and action not in ("error", "decode"):
            raise FaultRuleError(name, f"not used by action {action!r}")
    return rule


# --- the rule set ------------------------------------------------------------------------------------


class FaultSet:
    """The live rules of a daemon (or of a whole cluster) plus a call counter for scenario triggers."""

    def __init__(self) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._ids = itertools.count(1)
        self.calls: dict[str, int] = {}
        self.total_calls = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def add(self, spec: Mapping[str, Any] | FaultRule) -> FaultRule:
        """Add (or replace, same id) a rule; returns it. Raises FaultRuleError."""
        if isinstance(spec, FaultRule):
            rule = spec
        else:
            default_id = ""
            if "id" not in spec:
                while True:
                    default_id = f"r{next(self._ids)}"
                    if default_id not in self._rules:
                        break
            rule = parse_rule(spec, default_id=default_id)
        self._rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> int:
        n = len(self._rules)
        self._rules.clear()
        return n

    def rules(self) -> list[FaultRule]:
        return list(self._rules.values())

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self._rules.values()]

    def get(self, rule_id: str) -> FaultRule | None:
        return self._rules.get(rule_id)

    def fired(self, method: str, model: str | None, handle: str | None) -> list[FaultRule]:
        return [r for r in list(self._rules.values()) if r.matches(method, model, handle) and r.select()]

    # -- call counting (scenario triggers) --------------------------------------------------------------

    def count_call(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        self.total_calls += 1
        still: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        for pred, fut in self._waiters:
            if fut.done():
                continue
            if pred():
                fut.set_result(None)
            else:
                still.append((pred, fut))
        self._waiters = still

    def call_count(self, method: str | None = None) -> int:
        return self.total_calls if method is None else self.calls.get(method, 0)

    async def wait_calls(self, n: int, method: str | None = None) -> None:
        """Wait until ``n`` calls (of ``method``, or of any) were counted in total."""

        def pred() -> bool:
            return self.call_count(method) >= n

        if pred():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        await fut


# --- the hooks -----------------------------------------------------------------------------------------


def _field(req: Message | None, name: str) -> str | None:
    if req is None or name not in req.DESCRIPTOR.fields_by_name:
        return None
    v = getattr(req, name)
    return v if isinstance(v, str) else None


@dataclass
class _CallState:
    start: float
    faults: list[str] = field(default_factory=list)
    decode: FaultRule | None = None
    health: list[FaultRule] = field(default_factory=list)
    chunks: int = 0
    recorded: bool = False
    outcome: str | None = None
    request: Message | None = None


class FaultInjector:
    """``ComputeServer.hooks`` of one node: applies a :class:`FaultSet`, records a transcript.

    ``instance`` returns the server's current instance id (for the transcript). The wedge gate
    (:meth:`wedge` / :meth:`unwedge`) holds every call, Health included, until released.
    """

    def __init__(
        self,
        faults: FaultSet | None = None,
        transcript: Transcript | None = None,
        *,
        node: str = "",
        instance: Callable[[], str] | None = None,
    ) -> None:
        self.faults = faults if faults is not None else FaultSet()
        self.transcript = transcript
        self.node = node
        self.instance = instance or (lambda: "")
        self._calls: weakref.WeakKeyDictionary[ServerCall, _CallState] = weakref.WeakKeyDictionary()
        self._handle_model: dict[str, str] = {}
        self._open = asyncio.Event()
        self._open.set()

    # -- wedge gate ---------------------------------------------------------------------------------------

    def wedge(self) -> None:
        """Hold every call (nothing answers) until :meth:`unwedge`."""
        self._open.clear()

    def unwedge(self) -> None:
        self._open.set()

    @property
    def wedged(self) -> bool:
        return not self._open.is_set()

    # -- Hooks protocol -------------------------------------------------------------------------------------

    def _model_of(self, req: Message | None) -> str | None:
        m = _field(req, "model_name")
        if m:
            return m
        h = _field(req, "handle")
        return None if h is None else self._handle_model.get(h)

    async def before(self, call: ServerCall, method: str, request: Message | None) -> None:
        state = _CallState(start=time.monotonic(), request=request)
        self._calls[call] = state
        task = asyncio.current_task()
        if task is not None:

            def done(_t: asyncio.Task[Any]) -> None:
                self._task_done(call, method, state)

            task.add_done_callback(done)
        self.faults.count_call(method)
        if not self._open.is_set():
            state.faults.append("wedged")
            await self._open.wait()
        fired = self.faults.fired(method, self._model_of(request), _field(request, "handle"))
        for rule in fired:
            state.faults.append(rule.label)
            if rule.delay > 0 and rule.action != "hang":
                await asyncio.sleep(rule.delay)
            if rule.action == "decode":
                if state.decode is None:
                    state.decode = rule
                continue
            if rule.action == "health":
                state.health.append(rule)
                continue
            if rule.action in _TERMINAL:
                await self._terminal(call, method, rule, state)
                return

    async def _terminal(self, call: ServerCall, method: str, rule: FaultRule, state: _CallState) -> None:
        a = rule.action
        if a == "error":
            assert rule.token is not None
            raise _status(sentinel_error(rule.token, rule.detail))
        if a == "backend_mismatch":
            exc: werr.ModeldError = werr.BackendMismatch(rule.detail)
            if method in _LOAD_WRAPPED:
                exc = werr.ModelLoadFailed.wrapping(exc)
            raise _status(exc)
        if a == "status":
            raise GrpcStatus(rule.code, rule.message)
        if a == "hang":
            await _hang(call, rule.delay)
            raise GrpcStatus(4, "context deadline exceeded")  # only after a bounded hang
        if a == "close_connection":
            state.outcome = "connection closed"
            call.close_connection()
            await _hang(call, 0.0)
        if a == "reset_stream":
            state.outcome = "stream reset"
            call.reset_stream(rule.error_code)
            raise GrpcStatus(1, "stream reset")  # the call is finished: nothing more goes out

    def after(self, call: ServerCall, method: str, request: Message | None, code: int, message: str) -> None:
        state = self._calls.get(call)
        if state is None:  # refused before the hooks ran (decode error, foreign codec)
            state = _CallState(start=time.monotonic(), request=request)
            self._calls[call] = state
            self.faults.count_call(method)
            latency: float | None = None
        else:
            latency = time.monotonic() - state.start
        state.recorded = True
        if state.outcome is not None:  # the fault ended the call without a status
            self._record(call, method, request, None, "", latency, state, state.outcome)
            return
        self._record(call, method, request, code, message, latency, state)

    def respond(self, call: ServerCall, method: str, request: Message | None, response: Message) -> Message:
        """Rewrite a unary answer (Health faults); remember which model each handle belongs to."""
        if (
            isinstance(response, pb.OpenSessionResp)
            and isinstance(request, pb.OpenSessionReq)
            and response.handle
            and request.model_name
        ):
            self._handle_model[response.handle] = request.model_name
        state = self._calls.get(call)
        if state is not None and state.health and isinstance(response, pb.HealthResp):
            for rule in state.health:
                if rule.ready is not None:
                    response.ready = rule.ready
                if rule.instance_id is not None:
                    response.instance_id = rule.instance_id
                if rule.backend is not None:
                    response.backend = rule.backend
        return response

    def wrap_decode(
        self, call: ServerCall, request: Message | None, chunks: AsyncIterator[pb.WireChunk]
    ) -> AsyncIterator[pb.WireChunk]:
        """The Decode chunk stream, cut or failed as a ``decode`` rule says."""
        state = self._calls.get(call)
        rule = None if state is None else state.decode
        return self._decode(call, chunks, rule, state)

    async def _decode(
        self,
        call: ServerCall,
        chunks: AsyncIterator[pb.WireChunk],
        rule: FaultRule | None,
        state: _CallState | None,
    ) -> AsyncIterator[pb.WireChunk]:
        n = 0
        if rule is None or rule.after_chunks > 0:
            async for chunk in chunks:
                n += 1
                if state is not None:
                    state.chunks = n
                yield chunk
                if chunk.error:
                    return
                if rule is not None and n >= rule.after_chunks:
                    break
            else:
                if rule is None:
                    return
        if rule is None:
            return
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):  # the session's own cleanup error is not under test
                await aclose()
        if rule.then == "end":
            return
        if rule.then == "error":
            exc: BaseException = (
                sentinel_error(rule.token, rule.detail) if rule.token else werr.StreamError(rule.detail or "")
            )
            text, token, detail = werr.chunk_error_fields(exc)
            out = pb.WireChunk(error=text)
            if token:
                out.error_token = token
            if detail is not None:
                out.error_detail.CopyFrom(
                    pb.ContextOverflowDetail(
                        stage=detail.stage,
                        resident_tokens=detail.resident_tokens,
                        additional_tokens=detail.additional_tokens,
                        num_ctx=detail.num_ctx,
                    )
                )
            yield out
            return
        if state is not None:
            state.outcome = {"close_connection": "connection closed", "reset_stream": "stream reset"}.get(
                rule.then, rule.then
            )
        if rule.then == "close_connection":
            call.close_connection()
        elif rule.then == "reset_stream":
            call.reset_stream(rule.error_code)
            raise GrpcStatus(1, "stream reset")  # the call is finished: nothing more goes out
        await _hang(call, 0.0)

    # -- transcript -----------------------------------------------------------------------------------------

    def _task_done(self, call: ServerCall, method: str, state: _CallState) -> None:
        if state.recorded:
            return
        state.recorded = True
        outcome = state.outcome or ("deadline" if _past_deadline(call) else "cancelled")
        self._record(call, method, state.request, None, "", time.monotonic() - state.start, state, outcome)

    def _record(
        self,
        call: ServerCall,
        method: str,
        request: Message | None,
        code: int | None,
        message: str,
        latency: float | None,
        state: _CallState,
        outcome: str | None = None,
    ) -> None:
        if self.transcript is None:
            return
        try:
            instance = self.instance()
        except Exception:
            instance = ""
        self.transcript.record_call(
            method=method,
            conn=call.conn_id,
            fence=call.metadata(FENCE_HEADER),
            request=request,
            code=code,
            message=message,
            latency_s=latency,
            faults=state.faults,
            node=self.node,
            instance=instance,
            outcome=outcome,
            chunks=state.chunks if method == "Decode" else None,
        )


def _status(exc: BaseException) -> GrpcStatus:
    code, message, details = werr.status_for(exc)
    return GrpcStatus(code, message, details)


def _past_deadline(call: ServerCall) -> bool:
    try:
        left = call.time_remaining()
    except RuntimeError:
        return False
    return left is not None and left <= 0


async def _hang(call: ServerCall, at_most: float) -> None:
    """Wait until the call is cancelled (deadline, reset, closed connection) or ``at_most`` seconds."""
    if at_most > 0:
        await asyncio.sleep(at_most)
        return
    while True:  # until the transport cancels this task
        await asyncio.sleep(3600)
