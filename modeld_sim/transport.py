"""A raw HTTP/2 gRPC server (h2 + asyncio) that answers transport-level questions like grpc-go does.

Why ours and not grpclib's server: grpclib judges the content-type itself (HTTP 415 / Unknown for any
foreign subtype), while the real daemon (grpc-go v1.80.0) lets any ``application/grpc…`` through to the
handler and only answers 415 / InvalidArgument for a missing or non-gRPC content-type
(real-daemon-observations.md; ``internal/transport/http2_server.go`` operateHeaders, writeEarlyAbort).

The API is small:

* :class:`GrpcServer` ``(services, host="127.0.0.1", port=0, …)``; ``await start()``, ``await close()``,
  ``abort_all_connections()``, ``async with``; ``on_connection_closed(conn_id)`` fires once per connection.
* ``services`` = ``{service: {method: (kind, handler)}}``; kinds and handler signatures:

  - ``"unary"``: ``async def h(call, payload: bytes) -> bytes``
  - ``"server_stream"``: ``async def h(call, payload: bytes) -> None`` (replies with ``await call.send``)
  - ``"client_stream"``: ``async def h(call) -> bytes`` (reads with ``await call.recv()`` until ``None``)

  A handler answers an error by raising :class:`GrpcStatus` (or calling ``call.finish``). Any other
  exception becomes Internal ``internal: handler <Method> panicked: <exc>``.
* :class:`ServerCall` is what a handler sees (method, headers, metadata, conn id, peer, deadline,
  ``codec_ok``, ``content_type``, recv/send/finish, fault hooks ``reset_stream`` / ``close_connection``).

grpc-go facts reproduced (file paths under ``google.golang.org/grpc@v1.80.0``):

* content-type (``internal/grpcutil/method.go`` ContentSubtype; ``http2_server.go`` operateHeaders):
  ``application/grpc`` exactly, or followed by ``+`` or ``;``, is gRPC; the codec is looked up by the
  lower-cased subtype, an unknown one falls back to proto (so the handler fails: ``codec_ok`` False).
  The reply content-type is ``application/grpc`` + (``+<subtype>`` if any) - for ``+…`` an echo.
  Anything else: HTTP 415, ``content-type: application/grpc``, grpc-status 3
  ``invalid gRPC request content-type "<value>"`` (Trailers-Only), then RST_STREAM(NO_ERROR) if the
  client had not ended its stream.
* a ``:method`` other than POST: HTTP 405, Internal ``Received a HEADERS frame with :method "GET" which
  should be POST``; a malformed ``grpc-timeout``: HTTP 400, Internal ``malformed grpc-timeout: …``.
* routing (``server.go`` handleStream): ``malformed method name: "<path>"``, ``unknown service <svc>``,
  ``unknown method <m> for service <svc>`` - all Unimplemented.
* framing (``rpc_util.go`` parser.recvMsg, checkRecvPayload; ``server.go`` processUnaryRPC):
  oversize → ResourceExhausted ``grpc: received message larger than max (<n> vs. <max>)``; flag 1 →
  Internal ``grpc: compressed flag set with identity or empty encoding``; other flags → Internal
  ``grpc: received unexpected payload format <n>``; a ``grpc-encoding`` other than identity →
  Unimplemented ``grpc: Decompressor is not installed for grpc-encoding "<enc>"``; no message on a
  unary call → Unknown ``EOF``; on a server-streaming call → Internal ``cardinality violation: received
  no request message from non-client-streaming RPC``; a truncated message → ``unexpected EOF`` (Unknown
  on unary, Internal on streams).
* status (``http2_server.go`` writeStatus): Trailers-Only (one HEADERS with ``:status``,
  ``content-type``, ``grpc-status``, ``grpc-message`` and END_STREAM) when nothing was sent yet, else
  trailers; ``grpc-message`` percent-encoded (``http_util.go`` encodeGrpcMessage);
  ``grpc-status-details-bin`` unpadded base64; RST_STREAM(NO_ERROR) after the status if the client
  had not half-closed.
* deadline: ``grpc-timeout`` already expired at arrival → DeadlineExceeded ``context deadline exceeded``
  (early abort); expiring later → grpc-go resets the stream with RST_STREAM(CANCEL) and sends no status
  (``http2_server.go`` operateHeaders timer → closeStream(ErrCodeCancel)). ``deadline_status=True``
  sends a DeadlineExceeded status instead.
* a bad header ends its stream, never the connection (``golang.org/x/net/http2`` Framer.readMetaFrame,
  checkPseudos; ``http2_server.go`` operateHeaders, in that order): a control character but space or tab
  in a value, a name that is not a lower-case token, a pseudo-header after a regular one, an unknown or
  repeated pseudo-header, ``:status`` in a request, a ``connection`` header → RST_STREAM(PROTOCOL_ERROR);
  two ``host`` → HTTP 400 Internal ``num values of :authority: …``; ``-bin`` metadata Go's base64 refuses
  → HTTP 400 Internal ``malformed binary metadata "…" in header "…": illegal base64 data at input byte N``;
  spaces around a value, ``te`` and ``content-length`` are not checked (a fence with spaces is a wrong
  fence: ``stale_fence``). Quoted request text is Go's ``%q`` (:func:`go_quote`).
* the size of what is echoed (``writeStatus`` / ``writeEarlyAbort`` → checkForHeaderListSize): headers
  over the SETTINGS_MAX_HEADER_LIST_SIZE the client advertised (h2-based clients say 64 KiB) are never
  sent, the stream gets RST_STREAM(INTERNAL_ERROR); a client that advertised none gets the whole echo (a
  512 KB ``:path`` comes back in full), up to 16 MiB. HPACK's Huffman coding is ours and linear (hpack's
  is quadratic: a 512 KB value took 54 s on the event loop), and kept to values up to 1 MiB.
* what is read: header lists up to 16 MiB (grpc-go's default) and frames up to the 16 MiB we advertise,
  from the first byte on (h2 applies advertised limits only once acknowledged, and to a whole read at
  once: a SETTINGS ACK and a 40 KB DATA frame in one segment failed); a header block over 1 MiB as sent
  is refused with GOAWAY(PROTOCOL_ERROR) before any decoding (Python's HPACK decoder needs about 0.4 s a
  MiB; grpc-go would decode up to 16 MiB).
* PINGs (``http2_server.go`` handlePing, the default ``keepalive.EnforcementPolicy``): a ping less than
  ``ping_min_time`` (5 min; 2 h with no stream open) after the previous one earns a strike unless we
  wrote HEADERS or DATA since; a third strike → GOAWAY(ENHANCE_YOUR_CALM, ``too_many_pings``) and the
  connection closes, as the real daemon does to a client that pings too often.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import re
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeAlias

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
import hpack.huffman_constants

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PING_MIN_TIME",
    "MAX_HEADER_BLOCK_BYTES",
    "MAX_HEADER_LIST_SIZE",
    "ClientStreamHandler",
    "GrpcServer",
    "GrpcStatus",
    "Kind",
    "ServerCall",
    "ServerStreamHandler",
    "ServiceTable",
    "UnaryHandler",
    "decode_grpc_message",
    "encode_grpc_message",
    "go_quote",
    "parse_grpc_timeout",
    "set_nodelay",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/grpc+contenoxtransportjson"
CODEC_SUBTYPE = "contenoxtransportjson"
#: grpc-go max message size of the daemon (runtime/transport/grpc/limits.go: 512 << 20).
DEFAULT_MAX_MESSAGE_SIZE = 512 << 20

_BASE_CT = "application/grpc"
_BIG_WINDOW = (1 << 31) - 1
_MAX_FRAME = (1 << 24) - 1
#: grpc-go's server reads header lists up to 16 MiB (``defaultServerMaxHeaderListSize``).
MAX_HEADER_LIST_SIZE = 16 << 20
#: A header block larger than this *as sent* is refused (GOAWAY PROTOCOL_ERROR) without being decoded:
#: Python's HPACK decoder needs about 0.4 s per MiB of Huffman input, on the event loop.
MAX_HEADER_BLOCK_BYTES = 1 << 20
#: Longer header values go out as plain literals: Huffman coding costs about 0.1 s per MiB here (ours is
#: linear; hpack's own is quadratic: 64 KB 0.8 s, 512 KB 54 s), a plain literal a copy.
_HUFFMAN_MAX = 1 << 20
#: What we never send in one header list even to a peer that advertised no limit: grpc-go clients read
#: at most this much (``defaultClientMaxHeaderListSize``), so a longer echo could serve nobody.
_MAX_SEND_HEADER_LIST = 16 << 20
#: grpc-go's default keepalive enforcement (``keepalive.EnforcementPolicy``; ``http2_server.go``
#: handlePing): pings closer together than this earn a strike unless the server wrote HEADERS or DATA
#: since the last ping; more than two strikes → GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
DEFAULT_PING_MIN_TIME = 300.0
_PING_NO_STREAM_MIN_TIME = 2 * 3600.0
_MAX_PING_STRIKES = 2

Kind: TypeAlias = Literal["unary", "server_stream", "client_stream"]
UnaryHandler: TypeAlias = Callable[["ServerCall", bytes], Awaitable[bytes]]
ServerStreamHandler: TypeAlias = Callable[["ServerCall", bytes], Awaitable[None]]
ClientStreamHandler: TypeAlias = Callable[["ServerCall"], Awaitable[bytes]]
Handler: TypeAlias = UnaryHandler | ServerStreamHandler | ClientStreamHandler
ServiceTable: TypeAlias = Mapping[str, Mapping[str, tuple[Kind, Any]]]


class GrpcStatus(Exception):
    """Raise from a handler (or from ``call.recv``) to end the call with this status."""

    def __init__(self, code: int, message: str = "", details: bytes | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"grpc status {self.code}: {self.message}"


def encode_grpc_message(msg: str) -> str:
    """grpc-go ``encodeGrpcMessage``: bytes outside 0x20..0x7E and ``%`` as ``%XX`` (upper hex).
    Bytes that were not UTF-8 in a request (held as ``surrogateescape``) are escaped as they came."""
    try:
        raw = msg.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = msg.encode("utf-8", "replace")
    if _GRPC_MESSAGE_ESCAPE.search(raw) is None:
        return msg
    return _GRPC_MESSAGE_ESCAPE.sub(lambda m: b"%%%02X" % m[0][0], raw).decode("ascii")


_GRPC_MESSAGE_ESCAPE = re.compile(rb"[^\x20-\x24\x26-\x7e]")


def decode_grpc_message(msg: str) -> str:
    """grpc-go ``decodeGrpcMessage``: ``%XX`` → byte (invalid escapes kept), then UTF-8 (replace)."""
    if "%" not in msg:
        return msg
    raw = msg.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n:
            hx = raw[i + 1 : i + 3]
            if all(c in _HEX for c in hx):
                out.append(int(hx, 16))
                i += 3
                continue
        out.append(b)
        i += 1
    return out.decode("utf-8", "replace")


_NO_REQUEST = "cardinality violation: received no request message from non-client-streaming RPC"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_grpc_timeout(value: str) -> float:
    """grpc-go ``decodeTimeout`` (``internal/transport/http_util.go``); seconds. Raises ValueError with
    grpc-go's wording."""
    size = len(value.encode("utf-8", "surrogateescape"))
    if size < 2:
        raise ValueError(f"transport: timeout string is too short: {go_quote(value)}")
    if size > 9:
        raise ValueError(f"transport: timeout string is too long: {go_quote(value)}")
    unit = _TIMEOUT_UNITS.get(value[-1])
    if unit is None:
        raise ValueError(f"transport: timeout unit is not recognized: {go_quote(value)}")
    digits = value[:-1]
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(digits)}: invalid syntax")
    return int(digits) * unit


def _parse_content_type(values: list[str]) -> tuple[bool, str, str]:
    """(is_grpc, subtype, last invalid value) like http2_server.go operateHeaders."""
    is_grpc, subtype, invalid = False, "", ""
    for v in values:
        if v == _BASE_CT:
            is_grpc, subtype = True, ""
        elif v.startswith(_BASE_CT) and v[len(_BASE_CT)] in "+;":
            is_grpc, subtype = True, v[len(_BASE_CT) + 1 :]
        else:
            invalid = v
    return is_grpc, subtype, invalid


def _reply_content_type(subtype: str) -> str:
    return _BASE_CT if subtype == "" else f"{_BASE_CT}+{subtype}"


# x/net/http2 (Framer.readMetaFrame, checkPseudos) rejects these with a *stream* error: grpc-go then
# resets that stream with PROTOCOL_ERROR and keeps the connection.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # httpguts.ValidHeaderFieldValue: CTL but SP/HTAB
_WIRE_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")  # a token without upper case
_REQUEST_PSEUDO = frozenset((b":method", b":path", b":scheme", b":authority", b":protocol"))


def _malformed_headers(raw: list[tuple[bytes, bytes]]) -> str | None:
    """Why x/net's framer refuses this header list as a stream error, or None."""
    saw_regular = False
    pseudo: list[bytes] = []
    for name, value in raw:
        if _BAD_VALUE.search(value):
            return f"invalid header field value for {name!r}"
        if name.startswith(b":"):
            if saw_regular:
                return "pseudo header field after regular header field"
            pseudo.append(name)
        else:
            saw_regular = True
            if not _WIRE_NAME.fullmatch(name):
                return f"invalid header field name {name!r}"
    is_request = is_response = False
    for i, name in enumerate(pseudo):
        if name in _REQUEST_PSEUDO:
            is_request = True
        elif name == b":status":
            is_response = True
        else:
            return f"invalid pseudo-header {name!r}"
        if name in pseudo[:i]:
            return f"duplicate pseudo-header {name!r}"
    if is_request and is_response:
        return "mix of request and response pseudo headers"
    return None


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = (0x0A, 0x0D)


def _go_base64_error(src: bytes, padded: bool) -> int | None:
    """The offset Go's ``encoding/base64`` reports (``illegal base64 data at input byte N``) for
    ``src`` in StdEncoding (``padded``) or RawStdEncoding, or None when it decodes."""
    si, n = 0, len(src)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 1 or padded:
                    return si - j
                break
            c = src[si]
            si += 1
            if c in _B64_ALPHABET:
                j += 1
                continue
            if c in _NEWLINES:
                continue
            if not padded or c != 0x3D or j < 2:
                return si - 1
            if j == 2:  # "==" expected: the second one must follow (newlines aside)
                while si < n and src[si] in _NEWLINES:
                    si += 1
                if si == n:
                    return n
                if src[si] != 0x3D:
                    return si - 1
                si += 1
            while si < n and src[si] in _NEWLINES:
                si += 1
            return si if si < n else None
    return None


def _bin_header_error(value: bytes) -> int | None:
    """grpc-go ``decodeBinHeader``: StdEncoding when the length is a multiple of 4, else Raw."""
    return _go_base64_error(value, padded=len(value) % 4 == 0)


def go_quote(s: str) -> str:
    """Go ``strconv.Quote`` (``%q``) of a header value decoded with ``surrogateescape``: printable
    runes kept, ``"`` and ``\\`` escaped, the rest as ``\\n``-style, ``\\xNN`` (bytes that are not
    UTF-8 included), ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    if _GO_QUOTE_PLAIN.fullmatch(s):  # the common case, at C speed even for a 512 KB path
        return f'"{s}"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_QUOTE_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _header_list_size(hdrs: list[tuple[str, str]]) -> int:
    """RFC 7540 §6.5.2 size (name + value + 32 per field), as grpc-go's checkForHeaderListSize."""
    return sum(len(k) + len(v.encode("utf-8", "surrogateescape")) + 32 for k, v in hdrs)


_HUFFMAN_BITS = [
    format(code, f"0{length}b")
    for code, length in zip(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH, strict=True
    )
]


class _LinearHuffman:
    """The HPACK Huffman code (RFC 7541 appendix B) in linear time: the codes are joined as a string of
    bits and converted once (hpack's encoder grows one integer bit by bit, quadratic in the length)."""

    def encode(self, data: bytes | None) -> bytes:
        if not data:
            return b""
        bits = "".join([_HUFFMAN_BITS[b] for b in data])
        bits += "1" * (-len(bits) % 8)  # padded with the EOS prefix
        return int(bits, 2).to_bytes(len(bits) // 8, "big")


class _Encoder(hpack.Encoder):
    """HPACK encoder with linear Huffman coding, kept to values up to ``_HUFFMAN_MAX``."""

    def __init__(self) -> None:
        super().__init__()
        self.huffman_coder = _LinearHuffman()  # type: ignore[assignment]

    def add(self, to_add: tuple[bytes, bytes], sensitive: bool, huffman: bool = False) -> bytes:
        return super().add(to_add, sensitive, huffman and len(to_add[1]) <= _HUFFMAN_MAX)


def _no_content_length_check(headers: object) -> None:
    """grpc-go treats ``content-length`` as ordinary metadata: never compared with the body."""


class _H2Connection(h2.connection.H2Connection):
    """h2's connection with two bounds grpc-go has and h2 lacks: a header block too large to decode
    ends the connection before any decoding work, and ``content-length`` is not enforced."""

    def _receive_headers_frame(self, frame: Any) -> Any:
        if len(frame.data) > MAX_HEADER_BLOCK_BYTES:
            raise h2.exceptions.ProtocolError(
                f"header block of {len(frame.data)} bytes (limit {MAX_HEADER_BLOCK_BYTES})"
            )
        return super()._receive_headers_frame(frame)

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        setattr(stream, "_initialize_content_length", _no_content_length_check)  # noqa: B010
        return stream


class _Stream:
    """Per-stream state (internal)."""

    __slots__ = (
        "buf",
        "call",
        "client_ended",
        "closed",
        "headers_sent",
        "messages",
        "msg_waiter",
        "outq",
        "recv_error",
        "sid",
        "task",
        "window_waiter",
    )

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.buf = bytearray()
        self.messages: deque[bytes] = deque()
        self.msg_waiter: asyncio.Future[None] | None = None
        self.window_waiter: asyncio.Future[None] | None = None
        self.client_ended = False
        self.recv_error: GrpcStatus | None = None
        self.headers_sent = False
        self.closed = False  # our side finished (or stream reset)
        self.task: asyncio.Task[None] | None = None
        self.call: ServerCall | None = None
        # outbound queue: bytes/memoryview of DATA, or ("trailers", headers, reset_after)
        self.outq: deque[Any] = deque()


class ServerCall:
    """One incoming RPC as a handler sees it."""

    def __init__(
        self,
        conn: _Connection,
        stream: _Stream,
        service: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        content_type: str,
        reply_content_type: str,
        codec_ok: bool,
        deadline: float | None,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self.service = service
        self.method = method
        self.path = path
        #: request headers in order, names lower-cased, duplicates kept (pseudo-headers included)
        self.headers = headers
        #: the request's content-type ("" when absent)
        self.content_type = content_type
        self.reply_content_type = reply_content_type
        #: True when the request's codec is the JSON codec (grpc-go found the codec by subtype)
        self.codec_ok = codec_ok
        #: loop.time() deadline from grpc-timeout, or None
        self.deadline = deadline
        self.conn_id = conn.conn_id
        self.peer = conn.peer
        self._finished = False
        self._first_recv = True

    def metadata(self, key: str) -> list[str]:
        """All values of header ``key`` (lower-case), in order."""
        key = key.lower()
        return [v for k, v in self.headers if k == key]

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    @property
    def finished(self) -> bool:
        return self._finished

    async def recv(self) -> bytes | None:
        """Next raw request message, ``None`` at the end of the client's stream. Raises
        :class:`GrpcStatus` for framing errors (oversize, compressed, truncated)."""
        st = self._stream
        while True:
            if st.messages:
                return st.messages.popleft()
            if st.recv_error is not None:
                raise st.recv_error
            if st.client_ended or st.closed:
                if st.buf:
                    # grpc-go: io.ErrUnexpectedEOF; unary converts it to Unknown, streams to Internal
                    raise GrpcStatus(13, "unexpected EOF")
                return None
            fut = asyncio.get_running_loop().create_future()
            st.msg_waiter = fut
            try:
                await fut
            finally:
                st.msg_waiter = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[bytes]:
        while True:
            m = await self.recv()
            if m is None:
                return
            yield m

    async def send(self, message: bytes) -> None:
        """Send one response message (framed here); waits while the peer's window is exhausted."""
        if self._finished:
            raise RuntimeError("call already finished")
        n = len(message)
        limit = self._conn.server.max_send_message_size
        if n > limit:
            raise GrpcStatus(8, f"grpc: trying to send message larger than max ({n} vs. {limit})")
        await self._conn.send_message(self._stream, self, message)

    def finish(self, code: int, message: str = "", details: bytes | None = None) -> None:
        """End the call with this status (trailers, or Trailers-Only if nothing was sent)."""
        if self._finished:
            return
        self._finished = True
        self._conn.send_status(self._stream, self.reply_content_type, code, message, details)

    def reset_stream(self, error_code: int = 8) -> None:
        """Fault injection: RST_STREAM this call (default CANCEL)."""
        self._finished = True
        self._conn.reset(self._stream, error_code)

    def close_connection(self) -> None:
        """Fault injection: drop the whole connection this call rides on."""
        self._conn.abort()


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP transport. asyncio leaves it on for the sockets a server
    accepts: the last small frames of a stream (the end of a Decode, its trailers) then wait for the
    peer's delayed ACK, about 40 ms on Linux, although every chunk before them went out at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Connection(asyncio.Protocol):
    def __init__(self, server: GrpcServer, conn_id: int) -> None:
        self.server = server
        self.conn_id = conn_id
        self.peer: Any = None
        self.transport: asyncio.Transport | None = None
        # Header checks are ours (grpc-go's, per stream): h2's own would end the whole connection.
        # Outbound values are echoes of validated input or our own; h2 would strip or refuse spaces
        # grpc-go sends as they are (a content-type echo).
        cfg = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = _H2Connection(config=cfg)
        self.h2.encoder = _Encoder()
        self.streams: dict[int, _Stream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._goaway_sent = False
        self._loop = asyncio.get_running_loop()
        # grpc-go's ping policing (handlePing): strikes, the last ping's time, and whether we wrote
        # HEADERS or DATA since the last ping (which forgives the strikes).
        self._ping_strikes = 0
        self._last_ping_at: float | None = None
        self._wrote_since_ping = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        set_nodelay(transport)
        self.h2.initiate_connection()
        self.h2.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1 << 20,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _BIG_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: _MAX_FRAME,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            }
        )
        # grpc-go reads with fixed limits from the first byte on; h2 would apply what we advertise only
        # once the client acknowledged it, and judge every frame of one read by the limits in force
        # when the read began - so a SETTINGS ACK and a 40 KB DATA frame in one segment failed.
        self.h2.max_inbound_frame_size = _MAX_FRAME
        self.h2.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        self.h2.increment_flow_control_window(_BIG_WINDOW - 65535)
        self._flush()
        self.server._register(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for st in list(self.streams.values()):
            self._stream_gone(st)
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        self.server._unregister(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # h2 queued a GOAWAY; send it and drop the connection
            self._flush()
            self.abort()
            return
        except Exception:  # pragma: no cover - never let garbage crash the server
            log.exception("h2 failure")
            self.abort()
            return
        try:
            for ev in events:
                self._on_event(ev)
        except Exception:  # pragma: no cover
            log.exception("event handling failure")
            self.abort()
            return
        self._flush()

    # -- events ----------------------------------------------------------------------------------
    def _on_event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            self._on_request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            sid = ev.stream_id
            if ev.flow_controlled_length:
                with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
            st = self.streams.get(sid)
            if st is not None and ev.data:
                self._on_data(st, ev.data)
            if ev.stream_ended is not None and st is not None:
                self._on_client_end(st)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                self._on_client_end(st)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.closed = True
                self._stream_gone(st)
        elif isinstance(ev, h2.events.WindowUpdated):
            if ev.stream_id == 0:
                for st in list(self.streams.values()):
                    self._pump(st)
            else:
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    self._pump(st)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for st in list(self.streams.values()):
                self._pump(st)
        elif isinstance(ev, h2.events.PingReceived):
            self._police_ping()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self._flush()
            self.abort()

    def _police_ping(self) -> None:
        """grpc-go ``handlePing`` with the default enforcement policy (h2 has already queued the ACK)."""
        now = self._loop.time()
        last, self._last_ping_at = self._last_ping_at, now
        if self._wrote_since_ping:
            self._wrote_since_ping = False
            self._ping_strikes = 0
            return
        srv = self.server
        if not self.streams and not srv.ping_permit_without_stream:
            min_time = _PING_NO_STREAM_MIN_TIME
        else:
            min_time = srv.ping_min_time
        if last is not None and now - last < min_time:
            self._ping_strikes += 1
        if self._ping_strikes > _MAX_PING_STRIKES:
            log.info("connection %d: too many pings, GOAWAY", self.conn_id)
            with contextlib.suppress(Exception):
                self.h2.close_connection(
                    error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                    additional_data=b"too_many_pings",
                    last_stream_id=self.h2.highest_inbound_stream_id,
                )
            self._goaway_sent = True
            self.close_after_flush()

    def _on_data(self, st: _Stream, data: bytes) -> None:
        if st.recv_error is not None or st.closed:
            return
        buf = st.buf
        buf += data
        limit = self.server.max_receive_message_size
        woke = False
        while len(buf) >= 5:
            flag = buf[0]
            length = int.from_bytes(buf[1:5], "big")
            if length > limit:
                st.recv_error = GrpcStatus(
                    8, f"grpc: received message larger than max ({length} vs. {limit})"
                )
                buf.clear()
                woke = True
                break
            if len(buf) < 5 + length:
                break
            if flag != 0:
                if flag == 1:
                    msg = "grpc: compressed flag set with identity or empty encoding"
                else:
                    msg = f"grpc: received unexpected payload format {flag}"
                st.recv_error = GrpcStatus(13, msg)
                buf.clear()
                woke = True
                break
            st.messages.append(bytes(buf[5 : 5 + length]))
            del buf[: 5 + length]
            woke = True
        if woke:
            self._wake(st)

    def _on_client_end(self, st: _Stream) -> None:
        if not st.client_ended:
            st.client_ended = True
            self._wake(st)

    def _wake(self, st: _Stream) -> None:
        w = st.msg_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _stream_gone(self, st: _Stream) -> None:
        st.closed = True
        self._wake(st)
        ww = st.window_waiter
        if ww is not None and not ww.done():
            ww.set_result(None)
        if st.task is not None and not st.task.done():
            st.task.cancel()
        self.streams.pop(st.sid, None)

    def _on_request(self, ev: h2.events.RequestReceived) -> None:
        sid = ev.stream_id
        raw = [(bytes(k), bytes(v)) for k, v in ev.headers or ()]
        headers = [(k.decode("utf-8", "replace"), v.decode("utf-8", "surrogateescape")) for k, v in raw]
        st = _Stream(sid)
        self.streams[sid] = st
        if ev.stream_ended is not None:
            st.client_ended = True
        if self._goaway_sent or self.server._closing:
            self.reset(st, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        # The order of grpc-go's checks (x/net's framer, then http2_server.go operateHeaders), each
        # answered on this stream alone.
        why = _malformed_headers(raw)
        if why is not None:
            log.debug("stream %d: %s: RST_STREAM(PROTOCOL_ERROR)", sid, why)
            self.reset(st, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return

        path, http_method, timeout_v, encoding = "", "", None, ""
        ct_values: list[str] = []
        protocol_error = False
        header_error = ""
        authorities = hosts = 0
        for k, v in headers:
            if k == ":path":
                path = v
            elif k == ":method":
                http_method = v
            elif k == "content-type":
                ct_values.append(v)
            elif k == "grpc-timeout":
                timeout_v = v
            elif k == "grpc-encoding":
                encoding = v
            elif k == "connection":
                protocol_error = True  # gRFC A41: a connection header makes the request malformed
            elif k == ":authority":
                authorities += 1
            elif k == "host":
                hosts += 1
            elif k.endswith("-bin") and not k.startswith(":"):
                at = _bin_header_error(v.encode("utf-8", "surrogateescape"))
                if at is not None:
                    header_error = (
                        f"malformed binary metadata {go_quote(v)} in header {go_quote(k)}: "
                        f"illegal base64 data at input byte {at}"
                    )
        is_grpc, subtype, invalid_ct = _parse_content_type(ct_values)
        srv = self.server
        if srv.accept_plain_grpc and is_grpc and subtype == "":
            codec_ok = True
        else:
            # grpc-go looks the codec up by the subtype exactly as sent (server.go getCodec): an
            # upper-case `ContenoxTransportJSON` falls back to proto and fails like any foreign type.
            codec_ok = is_grpc and subtype == CODEC_SUBTYPE
        reply_ct = _reply_content_type(subtype)
        if authorities > 1 or hosts > 1:
            self._early_abort(
                st,
                400,
                reply_ct,
                13,
                f"num values of :authority: {authorities}, num values of host: {hosts}, "
                "both must only have 1 value as per HTTP/2 spec",
            )
            return
        if protocol_error:
            self.reset(st, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        if not is_grpc:
            self._early_abort(
                st, 415, _BASE_CT, 3, f"invalid gRPC request content-type {go_quote(invalid_ct)}"
            )
            return
        timeout: float | None = None
        if timeout_v is not None:
            try:
                timeout = parse_grpc_timeout(timeout_v)
            except ValueError as e:
                header_error = f"malformed grpc-timeout: {e}"
        if header_error:
            self._early_abort(st, 400, reply_ct, 13, header_error)
            return
        if http_method != "POST":
            self._early_abort(
                st,
                405,
                reply_ct,
                13,
                f"Received a HEADERS frame with :method {go_quote(http_method)} which should be POST",
            )
            return
        if timeout is not None and timeout <= 0:
            self._early_abort(st, 200, reply_ct, 4, "context deadline exceeded")
            return

        # routing (server.go handleStream)
        sm = path
        if sm == "" or sm[0] != "/" or "/" not in sm[1:]:
            self._early_abort(st, 200, reply_ct, 12, f"malformed method name: {go_quote(path)}")
            return
        sm = sm[1:]
        pos = sm.rfind("/")
        service, method = sm[:pos], sm[pos + 1 :]
        svc = srv.services.get(service)
        entry = svc.get(method) if svc is not None else None
        if entry is None:
            if svc is None:
                msg = f"unknown service {service}"
            else:
                msg = f"unknown method {method} for service {service}"
            self._early_abort(st, 200, reply_ct, 12, msg)
            return
        if encoding and encoding != "identity":
            self._early_abort(
                st,
                200,
                reply_ct,
                12,
                f"grpc: Decompressor is not installed for grpc-encoding {go_quote(encoding)}",
            )
            return

        deadline = None if timeout is None else self._loop.time() + timeout
        call = ServerCall(
            self,
            st,
            service,
            method,
            path,
            headers,
            ",".join(ct_values) if len(ct_values) > 1 else (ct_values[0] if ct_values else ""),
            reply_ct,
            codec_ok,
            deadline,
        )
        st.call = call
        kind, handler = entry
        task = self._loop.create_task(self._run(st, call, kind, handler, timeout))
        st.task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(
        self, st: _Stream, call: ServerCall, kind: Kind, handler: Any, timeout: float | None
    ) -> None:
        timer: asyncio.TimerHandle | None = None
        expired = False

        def on_deadline() -> None:
            nonlocal expired
            expired = True
            if st.task is not None and not st.task.done():
                st.task.cancel()

        if timeout is not None:
            timer = self._loop.call_later(timeout, on_deadline)
        try:
            try:
                if kind == "unary":
                    try:
                        payload = await call.recv()
                    except GrpcStatus as e:
                        if e.message == "unexpected EOF":
                            e = GrpcStatus(2, "unexpected EOF")
                        raise e from None
                    if payload is None:
                        raise GrpcStatus(2, "EOF")
                    reply = await handler(call, payload)
                    if not call.finished:
                        await call.send(reply)
                        call.finish(0, "")
                elif kind == "server_stream":
                    payload = await call.recv()
                    if payload is None:
                        raise GrpcStatus(13, _NO_REQUEST)
                    await handler(call, payload)
                    if not call.finished:
                        call.finish(0, "")
                else:
                    reply = await handler(call)
                    if not call.finished:
                        await call.send(reply)
                        call.finish(0, "")
            except GrpcStatus as e:
                if not call.finished and not st.closed:
                    call.finish(e.code, e.message, e.details)
            except asyncio.CancelledError:
                if expired and not st.closed and not call.finished:
                    if self.server.deadline_status:
                        call.finish(4, "context deadline exceeded")
                    else:
                        call._finished = True
                        self.reset(st, h2.errors.ErrorCodes.CANCEL)
                    return
                raise
            except Exception as e:
                if not call.finished and not st.closed:
                    call.finish(13, f"internal: handler {call.method} panicked: {e}")
        finally:
            if timer is not None:
                timer.cancel()
            if not call.finished and not st.closed:
                # never leak a stream
                call._finished = True
                self.reset(st, h2.errors.ErrorCodes.CANCEL)
            self._flush()

    # -- sending ---------------------------------------------------------------------------------
    def _send_headers_if_needed(self, st: _Stream, call: ServerCall) -> None:
        if not st.headers_sent:
            st.headers_sent = True
            hdrs = [(":status", "200"), ("content-type", call.reply_content_type)]
            st.outq.append(("headers", hdrs, False))

    async def send_message(self, st: _Stream, call: ServerCall, message: bytes) -> None:
        if st.closed or self._closed:
            raise asyncio.CancelledError()
        self._send_headers_if_needed(st, call)
        n = len(message)
        if n <= 65536:
            st.outq.append(bytes((0,)) + n.to_bytes(4, "big") + message)
        else:
            st.outq.append(bytes((0,)) + n.to_bytes(4, "big"))
            st.outq.append(memoryview(message))
        self._pump(st)
        self._schedule_flush()
        # back-pressure: wait while data is stuck behind the peer's window or the socket buffer
        while st.outq and not st.closed and not self._closed:
            fut = self._loop.create_future()
            st.window_waiter = fut
            try:
                await fut
            finally:
                st.window_waiter = None
        if self._write_paused and not self._closed:
            fut = self._loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if st.closed:
            raise asyncio.CancelledError()

    def send_status(self, st: _Stream, reply_ct: str, code: int, message: str, details: bytes | None) -> None:
        if st.closed:
            return
        hdrs: list[tuple[str, str]] = []
        if not st.headers_sent:
            st.headers_sent = True
            hdrs += [(":status", "200"), ("content-type", reply_ct)]
        hdrs += [("grpc-status", str(code)), ("grpc-message", encode_grpc_message(message))]
        if details:
            hdrs.append(("grpc-status-details-bin", base64.b64encode(details).decode("ascii").rstrip("=")))
        st.outq.append(("headers", hdrs, True))
        self._pump(st)
        self._schedule_flush()

    def _early_abort(self, st: _Stream, http_status: int, ct: str, code: int, message: str) -> None:
        hdrs = [
            (":status", str(http_status)),
            ("content-type", ct),
            ("grpc-status", str(code)),
            ("grpc-message", encode_grpc_message(message)),
        ]
        st.headers_sent = True
        st.outq.append(("headers", hdrs, True))
        self._pump(st)

    def _pump(self, st: _Stream) -> None:
        h = self.h2
        q = st.outq
        try:
            while q:
                item = q[0]
                if isinstance(item, tuple):
                    _, hdrs, end = item
                    limit = h.remote_settings.max_header_list_size or _MAX_SEND_HEADER_LIST
                    if _header_list_size(hdrs) > limit:
                        # grpc-go checkForHeaderListSize: what the client said it cannot take is
                        # never sent; the stream is reset instead (an echo of a huge request field).
                        self._reset_oversized(st, limit)
                        return
                    h.send_headers(st.sid, hdrs, end_stream=end)
                    self._wrote_since_ping = True
                    q.popleft()
                    if end:
                        self._our_side_done(st)
                        return
                    continue
                window = h.local_flow_control_window(st.sid)
                if window <= 0:
                    break
                size = min(window, h.max_outbound_frame_size, len(item))
                if size >= len(item):
                    h.send_data(st.sid, item)
                    q.popleft()
                else:
                    mv = item if isinstance(item, memoryview) else memoryview(item)
                    h.send_data(st.sid, mv[:size])
                    q[0] = mv[size:]
                self._wrote_since_ping = True
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            q.clear()
            st.closed = True
        if not q:
            ww = st.window_waiter
            if ww is not None and not ww.done():
                ww.set_result(None)

    def _reset_oversized(self, st: _Stream, limit: int) -> None:
        log.debug("stream %d: headers over the peer's limit of %d bytes: RST_STREAM(INTERNAL)", st.sid, limit)
        call = st.call
        if call is not None:
            call._finished = True
        self.reset(st, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def _our_side_done(self, st: _Stream) -> None:
        st.closed = True
        if not st.client_ended:
            # grpc-go finishStream: RST_STREAM(NO_ERROR) when the client had not half-closed
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.NO_ERROR)
        self._wake(st)
        self.streams.pop(st.sid, None)
        ww = st.window_waiter
        if ww is not None and not ww.done():
            ww.set_result(None)

    def reset(self, st: _Stream, error_code: int) -> None:
        if not st.closed or st.sid in self.streams:
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                self.h2.reset_stream(st.sid, error_code)
        st.outq.clear()
        st.closed = True
        self.streams.pop(st.sid, None)
        self._wake(st)
        ww = st.window_waiter
        if ww is not None and not ww.done():
            ww.set_result(None)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is None or self._closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def goaway(self) -> None:
        """Say GOAWAY (NO_ERROR): no new streams on this connection."""
        if self._closed or self._goaway_sent:
            return
        self._goaway_sent = True
        with contextlib.suppress(Exception):
            self.h2.close_connection(error_code=0, last_stream_id=self.h2.highest_inbound_stream_id)
        self._flush()

    def abort(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.abort()

    def close_after_flush(self) -> None:
        """Close once what is written has reached the socket (answers of calls that just finished)."""
        if self.transport is not None and not self._closed:
            self._flush()
            self._closed = True
            self.transport.close()


class GrpcServer:
    """The raw gRPC server. Loopback by default; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(
        self,
        services: ServiceTable,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_receive_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_send_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_plain_grpc: bool = False,
        deadline_status: bool = False,
        on_connection_closed: Callable[[int], object] | None = None,
        on_connection_made: Callable[[int], object] | None = None,
        ping_min_time: float = DEFAULT_PING_MIN_TIME,
        ping_permit_without_stream: bool = False,
    ) -> None:
        self.services = services
        #: grpc-go keepalive.EnforcementPolicy (MinTime, PermitWithoutStream); defaults as the daemon's
        self.ping_min_time = ping_min_time
        self.ping_permit_without_stream = ping_permit_without_stream
        self.host = host
        self.port = port
        self.max_receive_message_size = max_receive_message_size
        self.max_send_message_size = max_send_message_size
        self.accept_plain_grpc = accept_plain_grpc
        self.deadline_status = deadline_status
        self.on_connection_closed = on_connection_closed
        self.on_connection_made = on_connection_made
        self.connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, *, serve: bool = True) -> None:
        """Bind and listen (and, unless ``serve`` is False, accept). ``serve=False`` is Go's
        ``net.Listen`` before ``Serve``: the port is known (and advertised) and early dialers wait in
        the backlog until :meth:`begin_serving` (asyncio alone would not listen() before serving)."""
        loop = asyncio.get_running_loop()
        family = socket.getaddrinfo(
            self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0][0]
        sock = socket.create_server((self.host, self.port), family=family, backlog=128)
        self._server = await loop.create_server(
            lambda: _Connection(self, next(self._ids)), sock=sock, start_serving=serve
        )
        self.port = int(sock.getsockname()[1])

    async def begin_serving(self) -> None:
        if self._server is not None and not self._server.is_serving():
            await self._server.start_serving()

    def _register(self, conn: _Connection) -> None:
        self.connections[conn.conn_id] = conn
        self._idle.clear()
        if self.on_connection_made is not None:
            self._safe_callback(self.on_connection_made, conn.conn_id)

    def _unregister(self, conn: _Connection) -> None:
        if self.connections.pop(conn.conn_id, None) is None:
            return
        if not self.connections:
            self._idle.set()
        if self.on_connection_closed is not None:
            self._safe_callback(self.on_connection_closed, conn.conn_id)

    @staticmethod
    def _safe_callback(cb: Callable[[int], object], conn_id: int) -> None:
        try:
            r = cb(conn_id)
            if asyncio.iscoroutine(r):
                asyncio.get_running_loop().create_task(r)
        except Exception:
            log.exception("connection callback failed")

    def stop_listening(self) -> None:
        """Fault injection (a network partition): refuse new connections; :meth:`start` listens again
        on the same port."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def abort_all_connections(self) -> None:
        """Fault injection: drop every live connection at once (no GOAWAY)."""
        for c in list(self.connections.values()):
            c.abort()

    def close_connection(self, conn_id: int) -> None:
        c = self.connections.get(conn_id)
        if c is not None:
            c.abort()

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening and refuse new streams, let in-flight calls finish for up to ``grace`` s, then
        GOAWAY and close every connection (what is still running past the grace is dropped).

        grpc-go's GracefulStop sends its GOAWAY first and keeps serving the streams in flight; an
        h2-based client (grpclib, ours) cannot take a frame after a GOAWAY (h2's state machine is then
        CLOSED), so here the GOAWAY comes once the in-flight answers are out. New streams meanwhile
        get REFUSED_STREAM, which a client may retry elsewhere, as after a GOAWAY."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        conns = list(self.connections.values())
        pending = [t for c in conns for t in c.tasks]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for c in list(self.connections.values()):
            if any(not t.done() for t in c.tasks):
                c.abort()  # past the grace period: what is left is dropped
            else:
                c.goaway()
                c.close_after_flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=1.0)
        for c in list(self.connections.values()):
            c.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
