"""The sentinel table and the typed error hierarchy of the modeld wire (wire.md §9).

One place for the fact "which token, which gRPC code, which text": :data:`SENTINELS`.

Both directions are here:

* server side: :func:`status_for` (exception -> ``(code, message, details)``) and
  :func:`chunk_error_fields` (exception -> in-stream ``error`` / ``error_token`` / ``error_detail``);
* client side: :func:`error_from_status` (gRPC status -> exception, wire.md §9.3) and
  :func:`error_from_chunk` (in-stream chunk -> exception, wire.md §8.1.4).

Text model (mirrors Go's ``err.Error()``): every error has a *text*, ``str(exc)``. A sentinel built
with a *detail* renders ``"<sentinel text>: <detail>"`` (Go's ``fmt.Errorf("%w: %s", sentinel, detail)``),
without one just the sentinel text. The server sends ``"<token>: <text>"``; the Go client wraps the
sentinel around everything after the token, so a decoded error's detail is the server's text and
``str()`` shows the sentinel text twice (``session is closed: session is closed``), exactly as the real
Go connector does (observed/go-connector.api.jsonl). For people, ``.plain_text`` says it once
(``session is closed``, ``session marked fatal; evict and reopen: <cause>``): the CLIs and examples print
that. The full grpc-message as received is kept on ``.server_message``.

Source facts: ``runtime/transport/grpc/errors.go`` (sentinels, encodeError, decodeError,
decodeWireError, errorInfoForOverflow, overflowDetailFromMetadata), ``runtime/transport/session.go``
(sentinel texts, ContextOverflowError.Error, ContextOverflowDetailFromError),
``runtime/contextasm/manifest.go`` (ManifestMismatchError, trimManifestMismatchPrefix),
grpc-go ``status/status.go`` (``rpc error: code = %s desc = %s``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "DOMAIN",
    "GRPC_CODE_NAMES",
    "SENTINELS",
    "SENTINEL_BY_TOKEN",
    "BackendMismatch",
    "BackendMismatchLoadFailed",
    "Canceled",
    "ContextOverflow",
    "DeadlineExceeded",
    "DecodeError",
    "DeviceBusy",
    "DigestMismatch",
    "GrpcCode",
    "InsufficientMemory",
    "InternalError",
    "ManifestMismatch",
    "ModelBusy",
    "ModelLoadFailed",
    "ModelNotActive",
    "ModelNotFound",
    "ModelSwitchRequired",
    "ModeldError",
    "NotOwner",
    "OverflowDetail",
    "Sentinel",
    "SentinelError",
    "SessionClosed",
    "SessionFatal",
    "SlotGenerationStale",
    "StaleFence",
    "StreamError",
    "TransportError",
    "UnsupportedFeature",
    "UnsupportedModelType",
    "chunk_error_fields",
    "error_from_chunk",
    "error_from_status",
    "overflow_detail_from_error_info",
    "status_details_for_overflow",
    "status_for",
]


class GrpcCode:
    """gRPC status codes (numbers as on the wire)."""

    OK: Final = 0
    CANCELLED: Final = 1
    UNKNOWN: Final = 2
    INVALID_ARGUMENT: Final = 3
    DEADLINE_EXCEEDED: Final = 4
    NOT_FOUND: Final = 5
    ALREADY_EXISTS: Final = 6
    PERMISSION_DENIED: Final = 7
    RESOURCE_EXHAUSTED: Final = 8
    FAILED_PRECONDITION: Final = 9
    ABORTED: Final = 10
    OUT_OF_RANGE: Final = 11
    UNIMPLEMENTED: Final = 12
    INTERNAL: Final = 13
    UNAVAILABLE: Final = 14
    DATA_LOSS: Final = 15
    UNAUTHENTICATED: Final = 16


#: grpc-go's ``codes.Code.String()`` names (``codes/code_string.go``), used in Go's status error text.
GRPC_CODE_NAMES: Final[Mapping[int, str]] = {
    0: "OK",
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}

#: ErrorInfo domain of the context-overflow detail (errors.go errorInfoForOverflow).
DOMAIN: Final = "contenox.transport"
_ERROR_INFO_TYPE_URL: Final = "type.googleapis.com/google.rpc.ErrorInfo"


def _code_name(code: int) -> str:
    # grpc-go codes.Code.String(): unknown values print as "Code(<n>)".
    return GRPC_CODE_NAMES.get(code, f"Code({code})")


@dataclass(frozen=True)
class Sentinel:
    """One row of the sentinel table (wire.md §9.1)."""

    token: str
    code: int
    text: str


#: The ONE sentinel table, in wire.md §9.1 / errors.go order (the first matching row wins).
SENTINELS: Final[tuple[Sentinel, ...]] = (
    Sentinel("context_canceled", GrpcCode.CANCELLED, "context canceled"),
    Sentinel("deadline_exceeded", GrpcCode.DEADLINE_EXCEEDED, "context deadline exceeded"),
    Sentinel("stale_fence", GrpcCode.FAILED_PRECONDITION, "stale owner fence token"),
    Sentinel("not_owner", GrpcCode.FAILED_PRECONDITION, "instance is not the local runtime owner"),
    Sentinel("session_closed", GrpcCode.FAILED_PRECONDITION, "session is closed"),
    Sentinel("context_overflow", GrpcCode.RESOURCE_EXHAUSTED, "exceeded the session context window"),
    Sentinel("session_fatal", GrpcCode.ABORTED, "session marked fatal; evict and reopen"),
    Sentinel("model_busy", GrpcCode.FAILED_PRECONDITION, "modeld active model slot is busy"),
    Sentinel("model_not_active", GrpcCode.FAILED_PRECONDITION, "requested model is not active in modeld"),
    Sentinel(
        "model_switch_required", GrpcCode.FAILED_PRECONDITION, "modeld active model slot must be switched"
    ),
    Sentinel("device_busy", GrpcCode.RESOURCE_EXHAUSTED, "modeld accelerator device is busy"),
    Sentinel("model_load_failed", GrpcCode.INTERNAL, "modeld failed to load model"),
    Sentinel("insufficient_memory", GrpcCode.RESOURCE_EXHAUSTED, "insufficient memory for requested model"),
    Sentinel("slot_generation_stale", GrpcCode.FAILED_PRECONDITION, "stale modeld slot generation"),
    Sentinel(
        "backend_mismatch", GrpcCode.FAILED_PRECONDITION, "model type not served by this modeld backend"
    ),
    Sentinel("unsupported_feature", GrpcCode.UNIMPLEMENTED, "unsupported transport feature"),
    Sentinel("manifest_mismatch", GrpcCode.FAILED_PRECONDITION, "contextasm: context manifest mismatch"),
    Sentinel("model_not_found", GrpcCode.NOT_FOUND, "model not found in modeld's local store"),
    Sentinel("digest_mismatch", GrpcCode.FAILED_PRECONDITION, "model content digest mismatch"),
    Sentinel("unsupported_model_type", GrpcCode.INVALID_ARGUMENT, "unsupported model backend type"),
)

SENTINEL_BY_TOKEN: Final[Mapping[str, Sentinel]] = {s.token: s for s in SENTINELS}


@dataclass(frozen=True)
class OverflowDetail:
    """``transport.ContextOverflowDetail`` (wire.md §4.1); also the in-stream ``error_detail``."""

    stage: str = ""
    resident_tokens: int = 0
    additional_tokens: int = 0
    num_ctx: int = 0

    def is_set(self) -> bool:
        """Go's ContextOverflowDetailFromError: at least one field non-zero."""
        return bool(self.stage or self.resident_tokens or self.additional_tokens or self.num_ctx)


# --------------------------------------------------------------------------------------------------
# Exception hierarchy
# --------------------------------------------------------------------------------------------------


class ModeldError(Exception):
    """Base of every modeld error.

    ``token``: the sentinel token (``None`` for errors outside the table); ``code``: the gRPC code the
    server uses for it; ``server_message``: the complete grpc-message (or in-stream error text) as the
    peer sent it, ``None`` for an error made locally.
    """

    token: str | None = None
    code: int = GrpcCode.UNKNOWN
    server_message: str | None
    _plain_text: str | None = None

    def __init__(self, text: str, *, server_message: str | None = None) -> None:
        super().__init__(text)
        self._text = text
        self.server_message = server_message

    def __str__(self) -> str:
        return self._text

    @property
    def plain_text(self) -> str:
        """The text for a person: ``str()`` with a decoded sentinel's text said once.

        ``str()`` is the Go connector's ``err.Error()``, which wraps the sentinel around the server's
        whole text and so repeats it (``session marked fatal; evict and reopen: session marked fatal;
        evict and reopen``); this drops the repeat. For an error made locally it is ``str()``."""
        return self._plain_text if self._plain_text is not None else self._text

    def wrapped_tokens(self) -> Iterator[str]:
        """Tokens of every sentinel this error wraps (Go ``errors.Is``), own token first."""
        if self.token is not None:
            yield self.token


class SentinelError(ModeldError):
    """An error wrapping one sentinel of the table (``fmt.Errorf("%w: %s", sentinel, detail)``).

    ``detail`` is the text after the sentinel text (``None``: the bare sentinel). ``wraps`` lists further
    errors this one wraps: :func:`status_for` reports the earliest table row among all of them
    (e.g. a load failure wrapping a context overflow is sent as ``context_overflow``).
    """

    sentinel: ClassVar[Sentinel]

    def __init__(
        self,
        detail: str | None = None,
        *,
        wraps: tuple[ModeldError, ...] = (),
        server_message: str | None = None,
    ) -> None:
        text = self.sentinel.text if detail is None else f"{self.sentinel.text}: {detail}"
        super().__init__(text, server_message=server_message)
        self.detail = detail
        self.wraps = wraps

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        s = cls.__dict__.get("sentinel")
        if isinstance(s, Sentinel):
            cls.token = s.token
            cls.code = s.code

    def wrapped_tokens(self) -> Iterator[str]:
        yield from super().wrapped_tokens()
        for cause in self.wraps:
            yield from cause.wrapped_tokens()

    def overflow_detail(self) -> OverflowDetail | None:
        """Go ``ContextOverflowDetailFromError``: the first wrapped overflow detail that is set."""
        for cause in self.wraps:
            if isinstance(cause, SentinelError):
                d = cause.overflow_detail()
                if d is not None:
                    return d
        return None


def _row(token: str) -> Sentinel:
    return SENTINEL_BY_TOKEN[token]


class Canceled(SentinelError):
    sentinel = _row("context_canceled")


class DeadlineExceeded(SentinelError):
    sentinel = _row("deadline_exceeded")


class StaleFence(SentinelError):
    sentinel = _row("stale_fence")


class NotOwner(SentinelError):
    sentinel = _row("not_owner")


class SessionClosed(SentinelError):
    sentinel = _row("session_closed")


class ContextOverflow(SentinelError):
    """``context_overflow``. With any of the keyword fields given it is Go's typed
    ``ContextOverflowError`` and renders
    ``exceeded the session context window during <stage>: resident_tokens=… additional_tokens=… num_ctx=…``;
    without them it is the bare sentinel (optionally with a text detail)."""

    sentinel = _row("context_overflow")

    def __init__(
        self,
        detail: str | None = None,
        *,
        stage: str | None = None,
        resident_tokens: int | None = None,
        additional_tokens: int | None = None,
        num_ctx: int | None = None,
        wraps: tuple[ModeldError, ...] = (),
        server_message: str | None = None,
    ) -> None:
        self.typed = not (
            stage is None and resident_tokens is None and additional_tokens is None and num_ctx is None
        )
        self.stage = stage or ""
        self.resident_tokens = resident_tokens or 0
        self.additional_tokens = additional_tokens or 0
        self.num_ctx = num_ctx or 0
        super().__init__(detail, wraps=wraps, server_message=server_message)
        if self.typed:
            # transport.ContextOverflowError.Error() (runtime/transport/session.go)
            self._text = (
                f"{self.sentinel.text} during {self.stage}: resident_tokens={self.resident_tokens} "
                f"additional_tokens={self.additional_tokens} num_ctx={self.num_ctx}"
            )
            self.args = (self._text,)

    @classmethod
    def from_detail(cls, detail: OverflowDetail, *, server_message: str | None = None) -> ContextOverflow:
        return cls(
            stage=detail.stage,
            resident_tokens=detail.resident_tokens,
            additional_tokens=detail.additional_tokens,
            num_ctx=detail.num_ctx,
            server_message=server_message,
        )

    @property
    def detail_fields(self) -> OverflowDetail:
        return OverflowDetail(self.stage, self.resident_tokens, self.additional_tokens, self.num_ctx)

    def overflow_detail(self) -> OverflowDetail | None:
        if self.typed:
            d = self.detail_fields
            if d.is_set():
                return d
        return super().overflow_detail()


class SessionFatal(SentinelError):
    sentinel = _row("session_fatal")


class ModelBusy(SentinelError):
    sentinel = _row("model_busy")


class ModelNotActive(SentinelError):
    sentinel = _row("model_not_active")


class ModelSwitchRequired(SentinelError):
    sentinel = _row("model_switch_required")


class DeviceBusy(SentinelError):
    sentinel = _row("device_busy")


class ModelLoadFailed(SentinelError):
    sentinel = _row("model_load_failed")

    @classmethod
    def wrapping(cls, cause: ModeldError) -> ModelLoadFailed:
        """The slot's load error around ``cause`` (``modeld/slot/service.go`` loadError): the text is
        ``modeld failed to load model: <cause>`` and ``cause``'s sentinels stay visible to
        :func:`status_for` (an earlier row, e.g. ``context_overflow``, wins)."""
        if isinstance(cause, BackendMismatch):
            return BackendMismatchLoadFailed(str(cause), wraps=(cause,))
        return ModelLoadFailed(str(cause), wraps=(cause,))


class InsufficientMemory(SentinelError):
    sentinel = _row("insufficient_memory")


class SlotGenerationStale(SentinelError):
    sentinel = _row("slot_generation_stale")


class BackendMismatch(SentinelError):
    sentinel = _row("backend_mismatch")


class BackendMismatchLoadFailed(ModelLoadFailed, BackendMismatch):
    """A load failure caused by a foreign model type: both a :class:`ModelLoadFailed` and a
    :class:`BackendMismatch`. On the wire it is ``model_load_failed`` (row 12 precedes row 15):
    ``model_load_failed: modeld failed to load model: model type not served by this modeld backend: …``.
    (The Go connector's ``errors.Is`` only matches ``model_load_failed`` here; this class adds the
    backend-mismatch view on purpose.)"""

    sentinel = _row("model_load_failed")

    def wrapped_tokens(self) -> Iterator[str]:
        yield from super().wrapped_tokens()
        yield "backend_mismatch"


class UnsupportedFeature(SentinelError):
    sentinel = _row("unsupported_feature")


_MANIFEST_PREFIX: Final = SENTINEL_BY_TOKEN["manifest_mismatch"].text


def _trim_manifest_prefix(reason: str) -> str:
    # contextasm.trimManifestMismatchPrefix: TrimSpace, then strip repeated "<sentinel>: " prefixes;
    # a reason equal to the sentinel text becomes "". Go's TrimSpace trims Unicode white space.
    reason = reason.strip()
    while True:
        if reason == _MANIFEST_PREFIX:
            return ""
        if not reason.startswith(_MANIFEST_PREFIX + ": "):
            return reason
        reason = reason[len(_MANIFEST_PREFIX) + 2 :].strip()


class ManifestMismatch(SentinelError):
    """``contextasm.ManifestMismatchError``: text ``contextasm: context manifest mismatch[: <reason>]``;
    the reason is trimmed of repeated sentinel prefixes so the text is never duplicated."""

    sentinel = _row("manifest_mismatch")

    def __init__(
        self,
        reason: str = "",
        *,
        wraps: tuple[ModeldError, ...] = (),
        server_message: str | None = None,
    ) -> None:
        self.reason = _trim_manifest_prefix(reason)
        super().__init__(self.reason or None, wraps=wraps, server_message=server_message)


class ModelNotFound(SentinelError):
    sentinel = _row("model_not_found")


class DigestMismatch(SentinelError):
    sentinel = _row("digest_mismatch")


class UnsupportedModelType(SentinelError):
    sentinel = _row("unsupported_model_type")


_CLASS_BY_TOKEN: Final[Mapping[str, type[SentinelError]]] = {
    "context_canceled": Canceled,
    "deadline_exceeded": DeadlineExceeded,
    "stale_fence": StaleFence,
    "not_owner": NotOwner,
    "session_closed": SessionClosed,
    "context_overflow": ContextOverflow,
    "session_fatal": SessionFatal,
    "model_busy": ModelBusy,
    "model_not_active": ModelNotActive,
    "model_switch_required": ModelSwitchRequired,
    "device_busy": DeviceBusy,
    "model_load_failed": ModelLoadFailed,
    "insufficient_memory": InsufficientMemory,
    "slot_generation_stale": SlotGenerationStale,
    "backend_mismatch": BackendMismatch,
    "unsupported_feature": UnsupportedFeature,
    "manifest_mismatch": ManifestMismatch,
    "model_not_found": ModelNotFound,
    "digest_mismatch": DigestMismatch,
    "unsupported_model_type": UnsupportedModelType,
}


class TransportError(ModeldError):
    """A raw gRPC status carrying no known token. ``str()`` is grpc-go's status error text
    ``rpc error: code = <Name> desc = <message>``. :func:`status_for` sends it unchanged (code, message),
    which is how a handler answers a grpc-go-worded status (``grpc: error unmarshalling request: …``)."""

    def __init__(self, code: int, message: str, *, server_message: str | None = None) -> None:
        text = f"rpc error: code = {_code_name(code)} desc = {message}"
        super().__init__(text, server_message=server_message)
        self.code = code
        self.message = message


class InternalError(TransportError):
    """Code Internal with no known token: the server's ``internal: <text>`` for any error outside the
    table (errors.go encodeError), or a grpc-go Internal status. ``text`` is the message without the
    ``internal: `` prefix; made locally, ``str()`` is ``text``."""

    def __init__(self, text: str, *, server_message: str | None = None) -> None:
        message = server_message if server_message is not None else f"internal: {text}"
        super().__init__(GrpcCode.INTERNAL, message, server_message=server_message)
        self.text = text
        if server_message is None:
            self._text = text
            self.args = (text,)


class StreamError(ModeldError):
    """An in-stream chunk error with no known token (Go's ``errors.New(msg)``): ``str()`` is the text."""

    def __init__(self, text: str, *, server_message: str | None = None) -> None:
        super().__init__(text, server_message=server_message)
        self.text = text


class DecodeError(ModeldError):
    """A malformed payload from a peer: ``field`` (dotted path, ``""`` for the whole message) did not
    hold ``expected``. ``got`` optionally describes what was found."""

    code = GrpcCode.INTERNAL

    def __init__(
        self, field: str, expected: str, got: str | None = None, *, message: str | None = None
    ) -> None:
        where = field or "message"
        text = message or (f"{where}: expected {expected}" + (f", got {got}" if got else ""))
        super().__init__(text)
        self.field = field
        self.expected = expected
        self.got = got


# --------------------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------------------


def _tokens_of(exc: BaseException) -> set[str]:
    if isinstance(exc, ModeldError):
        return set(exc.wrapped_tokens())
    return set()


def _first_row(exc: BaseException) -> Sentinel | None:
    tokens = _tokens_of(exc)
    if not tokens:
        return None
    for row in SENTINELS:
        if row.token in tokens:
            return row
    return None


def _overflow_of(exc: BaseException) -> OverflowDetail | None:
    if isinstance(exc, SentinelError):
        return exc.overflow_detail()
    return None


def status_details_for_overflow(code: int, message: str, detail: OverflowDetail) -> bytes:
    """Serialized ``google.rpc.Status{code, message, details: [Any(ErrorInfo)]}`` as grpc-go builds it
    from ``status.New(code, msg).WithDetails(errorInfo)`` (errors.go encodeError / errorInfoForOverflow).
    """
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    info = error_details_pb2.ErrorInfo(
        reason="context_overflow",
        domain=DOMAIN,
        metadata={
            "stage": detail.stage,
            "resident_tokens": str(detail.resident_tokens),
            "additional_tokens": str(detail.additional_tokens),
            "num_ctx": str(detail.num_ctx),
        },
    )
    packed = any_pb2.Any(type_url=_ERROR_INFO_TYPE_URL, value=info.SerializeToString(deterministic=True))
    st = status_pb2.Status(code=code, message=message, details=[packed])
    data: bytes = st.SerializeToString(deterministic=True)
    return data


def status_for(exc: BaseException) -> tuple[int, str, bytes | None]:
    """``(code, message, details)`` the real server sends for ``exc`` (errors.go encodeError).

    First matching table row wins; message ``"<token>: <text>"``; a context overflow with detail also
    carries the ErrorInfo Status bytes. A :class:`TransportError` is sent unchanged; anything else is
    ``(13, "internal: <text>", None)``.
    """
    row = _first_row(exc)
    if row is not None:
        message = f"{row.token}: {exc}"
        details: bytes | None = None
        if row.token == "context_overflow":
            d = _overflow_of(exc)
            if d is not None:
                details = status_details_for_overflow(row.code, message, d)
        return row.code, message, details
    if isinstance(exc, TransportError):
        return exc.code, exc.message, None
    return GrpcCode.INTERNAL, f"internal: {exc}", None


def chunk_error_fields(exc: BaseException) -> tuple[str, str | None, OverflowDetail | None]:
    """In-stream error fields (wire.md §8.1.3): text WITHOUT token prefix, the first row's token (or
    ``None``), and the overflow detail when the error carries one."""
    row = _first_row(exc)
    text = str(exc)
    if row is None:
        return text, None, None
    detail = _overflow_of(exc)
    return text, row.token, detail


# --------------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------------


def _lenient_int(v: str | None) -> tuple[int, bool]:
    # errors.go atoiMetadata: "" or not an int -> (0, false). strconv.Atoi accepts an optional sign and
    # ASCII digits only, in the int64 range.
    if not v:
        return 0, False
    s = v[1:] if v[0] in "+-" else v
    if not s or not s.isascii() or not s.isdigit():
        return 0, False
    n = int(v)
    if not -(2**63) <= n < 2**63:
        return 0, False
    return n, True


def overflow_detail_from_error_info(metadata: Mapping[str, str]) -> OverflowDetail | None:
    """errors.go overflowDetailFromMetadata: missing/invalid numbers read as 0; ``None`` when the stage
    is empty and no number parses."""
    resident, r_ok = _lenient_int(metadata.get("resident_tokens"))
    additional, a_ok = _lenient_int(metadata.get("additional_tokens"))
    num_ctx, n_ok = _lenient_int(metadata.get("num_ctx"))
    stage = metadata.get("stage", "")
    if not (r_ok or a_ok or n_ok) and stage == "":
        return None
    return OverflowDetail(stage, resident, additional, num_ctx)


def _overflow_from_details(details: bytes | None) -> OverflowDetail | None:
    if not details:
        return None
    from google.protobuf.message import DecodeError as _PbDecodeError
    from google.rpc import error_details_pb2, status_pb2

    st = status_pb2.Status()
    try:
        st.ParseFromString(details)
    except _PbDecodeError:
        return None
    for anyd in st.details:
        if anyd.type_url.rsplit("/", 1)[-1] != "google.rpc.ErrorInfo":
            continue
        info = error_details_pb2.ErrorInfo()
        try:
            info.ParseFromString(anyd.value)
        except _PbDecodeError:
            continue
        if info.reason != "context_overflow":  # domain is not checked (errors.go)
            continue
        d = overflow_detail_from_error_info(dict(info.metadata))
        if d is not None:
            return d
    return None


_BACKEND_MISMATCH_TEXT: Final = SENTINEL_BY_TOKEN["backend_mismatch"].text


def _with_plain_text(err: ModeldError, sentinel_text: str, rest: str) -> ModeldError:
    """Record the once-only text of an error decoded from ``rest``, the server's text after the token,
    which already starts with the sentinel's own text (``<sentinel text>[: <detail>]``)."""
    if rest == sentinel_text or rest.startswith(sentinel_text + ": "):
        err._plain_text = rest
    return err


def _sentinel_error(
    token: str, rest: str, overflow: OverflowDetail | None, server_message: str
) -> SentinelError:
    if token == "context_overflow" and overflow is not None:
        return ContextOverflow.from_detail(overflow, server_message=server_message)
    if token == "manifest_mismatch":
        return ManifestMismatch(rest, server_message=server_message)  # contextasm trims the repeat
    if token == "model_load_failed" and _BACKEND_MISMATCH_TEXT in rest:
        err: SentinelError = BackendMismatchLoadFailed(rest, server_message=server_message)
    else:
        err = _CLASS_BY_TOKEN[token](rest, server_message=server_message)
    _with_plain_text(err, err.sentinel.text, rest)
    return err


def error_from_status(code: int, message: str, details: bytes | None = None) -> ModeldError:
    """Reconstruct the error of a non-OK gRPC status as the Go client does (wire.md §9.3)."""
    token, sep, rest = message.partition(": ")
    if not sep:
        rest = message
    if token in SENTINEL_BY_TOKEN:
        overflow = _overflow_from_details(details) if token == "context_overflow" else None
        return _sentinel_error(token, rest, overflow, message)
    if code == GrpcCode.CANCELLED:
        return _with_plain_text(Canceled(message, server_message=message), Canceled.sentinel.text, message)
    if code == GrpcCode.DEADLINE_EXCEEDED:
        exc = DeadlineExceeded(message, server_message=message)
        return _with_plain_text(exc, DeadlineExceeded.sentinel.text, message)
    if code == GrpcCode.INTERNAL:
        text = rest if token == "internal" and sep else message
        return InternalError(text, server_message=message)
    return TransportError(code, message, server_message=message)


def _coerce_detail(detail: object) -> OverflowDetail | None:
    if detail is None:
        return None
    if isinstance(detail, OverflowDetail):
        return detail
    if isinstance(detail, Mapping):
        get = detail.get
        return OverflowDetail(
            str(get("stage") or ""),
            int(get("resident_tokens") or 0),
            int(get("additional_tokens") or 0),
            int(get("num_ctx") or 0),
        )
    return OverflowDetail(
        str(getattr(detail, "stage", "") or ""),
        int(getattr(detail, "resident_tokens", 0) or 0),
        int(getattr(detail, "additional_tokens", 0) or 0),
        int(getattr(detail, "num_ctx", 0) or 0),
    )


def error_from_chunk(error_text: str, error_token: str | None, detail: object = None) -> ModeldError | None:
    """Reconstruct an in-stream chunk error (errors.go decodeWireError). ``None`` when ``error_text``
    is empty (even with a token). ``detail``: an :class:`OverflowDetail`, a mapping with its JSON keys,
    or any object with those attributes (e.g. the generated message)."""
    if not error_text:
        return None
    token = error_token or ""
    if token in SENTINEL_BY_TOKEN:
        d = _coerce_detail(detail) if token == "context_overflow" else None
        return _sentinel_error(token, error_text, d, error_text)
    return StreamError(error_text, server_message=error_text)
