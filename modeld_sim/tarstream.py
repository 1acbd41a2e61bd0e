"""Unpack a pushed tar stream the way the real daemon reads it, without its holes.

The real daemon (``runtime/archiveutil/tar.go`` ``ExtractTar`` over Go's ``archive/tar`` reader) decides
three things this module reproduces: which error a malformed stream gets (Go's reader texts:
``archive/tar: invalid tar header``, ``unexpected EOF``, ``archive/tar: header field too long``, the
sparse-map errors), which member names and link targets are refused (``archiveutil: unsafe archive path
"<name>"``), and how many bytes it consumed — it stops at the end-of-archive marker (or the truncated
padding Go accepts as the end), so the digest and ``bytes_written`` of a push cover only those bytes.
The reader texts were learned by running Go 1.26's ``archive/tar`` and v0.36.0's ``ExtractTar`` on each
kind of malformed stream (docs/conformance/real-modeld.md, "Tar pushes").

Deliberately not reproduced, because the real behaviour is the defect (issue 20):

* members are written only as regular files (mode 0644) and directories (0755); symbolic links are
  validated like the real daemon validates them and then not created, so a chain of archive-made links
  (``s -> .``, ``s/p -> ..``, ...) can never lead a later member outside the staging directory;
* every path is resolved against the staging directory as it is on disk, one component at a time with
  ``O_NOFOLLOW`` from a directory descriptor, so nothing on disk can redirect a write either;
* FIFOs, devices and other member types are skipped (the real daemon skips them too).

The extractor is push-driven (:meth:`TarExtractor.feed` per received chunk, :meth:`TarExtractor.finish`
at the end of the stream) and blocking: callers run it on a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Final

from modeld_sim.engines.base import go_quote
from modeld_sim.safefs import go_clean, go_errno_text

__all__ = [
    "ERR_FIELD_TOO_LONG",
    "ERR_HEADER",
    "ERR_UNEXPECTED_EOF",
    "FileSink",
    "StagingError",
    "TarExtractor",
]

ERR_HEADER: Final = "archive/tar: invalid tar header"
ERR_UNEXPECTED_EOF: Final = "unexpected EOF"
ERR_FIELD_TOO_LONG: Final = "archive/tar: header field too long"
ERR_MISS_DATA: Final = "archive/tar: sparse file references non-existent data"
ERR_UNREF_DATA: Final = "archive/tar: sparse file contains unreferenced data"
ERR_SPARSE_TOO_LONG: Final = "archive/tar: sparse map too long"

_BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(_BLOCK)
_MAX_SPECIAL: Final = 1 << 20  # the largest PAX / GNU long-name body Go reads
_MAX_SPARSE_ENTRIES: Final = 1 << 20
_CHUNK: Final = 1 << 20
_INT64_MAX: Final = (1 << 63) - 1

# Go's header format guesses (archive/tar Format bits) that change how a header is read.
_V7, _USTAR_PAX, _GNU, _STAR = 1, 2 | 4, 8, 16
_HEADER_ONLY: Final = frozenset(b"123456")  # link, symlink, char, block, dir, fifo: no data section
_GO_SPACES: Final = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_DEC_INT = re.compile(rb"[+-]?[0-9]+")
_OCT_UINT = re.compile(rb"[0-7]+")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class StagingError(Exception):
    """Why the stream was refused: exactly the text the real daemon's ``ExtractTar`` returns."""


class _End(Exception):
    """Go's ``io.EOF`` from ``Next``: the archive ended (cleanly, as Go judges it)."""


def _go_parse_int(s: bytes) -> int | None:
    """Go ``strconv.ParseInt(s, 10, 64)``: ``None`` where Go returns an error."""
    if not _DEC_INT.fullmatch(s):
        return None
    v = int(s)
    return v if -(1 << 63) <= v <= _INT64_MAX else None


def _cstr(b: bytes) -> bytes:
    i = b.find(0)
    return b if i < 0 else b[:i]


class _Numbers:
    """Go's tar ``parser``: numeric fields, octal or base-256; the last failure is remembered."""

    def __init__(self) -> None:
        self.failed = False

    def octal(self, b: bytes) -> int:
        b = _cstr(b.strip(b" \x00"))
        if not b:
            return 0
        if not _OCT_UINT.fullmatch(b) or int(b, 8) >= 1 << 64:
            self.failed = True
            return 0
        v = int(b, 8)
        return v - (1 << 64) if v > _INT64_MAX else v

    def numeric(self, b: bytes) -> int:
        if b and b[0] & 0x80:
            inv = 0xFF if b[0] & 0x40 else 0
            x = 0
            for i, c in enumerate(b):
                c ^= inv
                if i == 0:
                    c &= 0x7F
                if x >> 56:
                    self.failed = True
                    return 0
                x = (x << 8) | c
            if x >> 63:
                self.failed = True
                return 0
            return ~x if inv else x
        return self.octal(b)


def _header_format(blk: bytes) -> int:
    p = _Numbers()
    value = p.octal(blk[148:156])
    # the checksum field counts as eight spaces; "signed" reads every byte as an int8
    rest = blk[:148] + b" " * 8 + blk[156:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for c in rest if c >= 0x80)
    if p.failed or value not in (unsigned, signed):
        return 0
    magic, version, trailer = blk[257:263], blk[263:265], blk[508:512]
    if magic == b"ustar\x00" and trailer == b"tar\x00":
        return _STAR
    if magic == b"ustar\x00":
        return _USTAR_PAX
    if magic == b"ustar " and version == b" \x00":
        return _GNU
    return _V7


@dataclass
class _Header:
    name: bytes
    typeflag: int
    linkname: bytes
    size: int
    pax: dict[bytes, bytes] = field(default_factory=dict)


def _parse_pax_records(buf: bytes) -> dict[bytes, bytes]:
    """Go ``parsePAX`` over the body of an ``x``/``g`` header (GNU sparse 0.0 pairs folded into a map)."""
    out: dict[bytes, bytes] = {}
    sparse: list[bytes] = []
    s = buf
    while s:
        n_str, sp, rest = s.partition(b" ")
        n = _go_parse_int(n_str) if sp else None
        if n is None or n < 5 or n > len(s):
            raise StagingError(ERR_HEADER)
        n -= len(n_str) + 1
        if n <= 0 or rest[n - 1 : n] != b"\n":
            raise StagingError(ERR_HEADER)
        rec, s = rest[: n - 1], rest[n:]
        key, eq, value = rec.partition(b"=")
        if not eq or not key:
            raise StagingError(ERR_HEADER)
        if key in (b"path", b"linkpath", b"uname", b"gname"):
            if b"\0" in value:
                raise StagingError(ERR_HEADER)
        elif b"\0" in key:
            raise StagingError(ERR_HEADER)
        if key in (b"GNU.sparse.offset", b"GNU.sparse.numbytes"):
            want = b"GNU.sparse.offset" if len(sparse) % 2 == 0 else b"GNU.sparse.numbytes"
            if key != want or b"," in value:
                raise StagingError(ERR_HEADER)
            sparse.append(value)
        else:
            out[key] = value
    if sparse:
        out[b"GNU.sparse.map"] = b",".join(sparse)
    return out


def _valid_pax_time(v: bytes) -> bool:
    secs, _, frac = v.partition(b".")
    return _go_parse_int(secs) is not None and all(0x30 <= c <= 0x39 for c in frac)


def _merge_pax(hdr: _Header, pax: dict[bytes, bytes], *, strict: bool = True) -> None:
    for k, v in pax.items():
        if not v:
            continue
        ok = True
        if k == b"path":
            hdr.name = v
        elif k == b"linkpath":
            hdr.linkname = v
        elif k in (b"uid", b"gid"):
            ok = _go_parse_int(v) is not None
        elif k in (b"atime", b"mtime", b"ctime"):
            ok = _valid_pax_time(v)
        elif k == b"size":
            n = _go_parse_int(v)
            ok = n is not None
            if n is not None:
                hdr.size = n
        if not ok and strict:
            raise StagingError(ERR_HEADER)
    hdr.pax = pax


def _valid_sparse(spd: list[tuple[int, int]], size: int) -> bool:
    if size < 0:
        return False
    pre_end = 0
    for off, length in spd:
        if off < 0 or length < 0 or off > _INT64_MAX - length or off + length > size or pre_end > off:
            return False
        pre_end = off + length
    return True


def _holes(spd: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The gaps between the data fragments, ending with the (possibly empty) last one."""
    out: list[tuple[int, int]] = []
    pos = 0
    for off, length in spd:
        if length == 0:
            continue
        if off - pos > 0:
            out.append((pos, off - pos))
        pos = off + length
    out.append((pos, size - pos))
    return out


def _is_go_blank(name: bytes) -> bool:
    return all(c in _GO_SPACES for c in name.decode("utf-8", "replace"))


class _Input:
    """The received bytes not yet read by the tar reader; what it reads is counted and hashed."""

    def __init__(self) -> None:
        self.buf = b""
        self.off = 0
        self.eof = False
        self.consumed = 0
        self.hasher = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.buf = self.buf[self.off :] + data if self.off < len(self.buf) else bytes(data)
        self.off = 0

    def available(self) -> int:
        return len(self.buf) - self.off

    def take(self, n: int) -> bytes:
        out = self.buf[self.off : self.off + n]
        self.off += len(out)
        self.consumed += len(out)
        self.hasher.update(out)
        return out


class _Staging:
    """The staging directory, walked with directory descriptors so no symlink is ever followed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.root = os.open(path, _DIR_FLAGS)

    def close(self) -> None:
        if self.root >= 0:
            os.close(self.root)
            self.root = -1

    def full(self, parts: list[bytes]) -> str:
        return os.path.join(self.path, *(os.fsdecode(p) for p in parts)) if parts else self.path

    def walk(self, parts: list[bytes], *, create: bool) -> int:
        """A descriptor of the directory ``parts``, missing components created (0755) when ``create``.

        Fails with Go's ``os.MkdirAll`` answer (``mkdir <path>: not a directory`` for a component that
        is a file — or a symlink, which is never followed); without ``create`` with the errno alone."""
        fd = os.dup(self.root)
        try:
            for i, part in enumerate(parts):
                here = f"mkdir {self.full(parts[: i + 1])}" if create else ""
                if b"\0" in part:
                    raise _FsError(errno.EINVAL, here)
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise _FsError(errno.ENOENT, here) from None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                        nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    except OSError as e:
                        raise _FsError(e.errno or errno.EIO, here) from None
                except OSError as e:
                    bad = errno.ENOTDIR if e.errno in (errno.ENOTDIR, errno.ELOOP) else e.errno or errno.EIO
                    raise _FsError(bad, here) from None
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd


class _FsError(Exception):
    """A file-system step failed: Go's ``<op> <path>`` and the errno, rendered as Go renders them."""

    def __init__(self, errnum: int, what: str) -> None:
        super().__init__(what)
        self.errnum = errnum
        self.what = what

    def staging_error(self) -> StagingError:
        text = os.strerror(self.errnum)
        return StagingError(f"{self.what}: {text[:1].lower() + text[1:]}")


class TarExtractor:
    """``ExtractTar`` of one push into ``staging``: feed the received bytes, then :meth:`finish`.

    After :attr:`done`, :attr:`error` is ``None`` (the archive ended) or the refusal; :attr:`consumed`
    and :meth:`hexdigest` cover exactly the bytes Go's reader would have read."""

    def __init__(self, staging: str) -> None:
        self.lock = threading.Lock()
        self._in = _Input()
        self._dest = staging
        self._fs = _Staging(staging)
        self._nb = 0  # physical bytes left in the current member's data section
        self._pad = 0
        self._holes: list[tuple[int, int]] | None = None
        self.done = False
        self.error: StagingError | None = None
        self._steps = self._run()

    @property
    def consumed(self) -> int:
        return self._in.consumed

    def hexdigest(self) -> str:
        return self._in.hasher.hexdigest()

    def feed(self, data: bytes) -> None:
        with self.lock:
            if self.done:
                return
            self._in.add(data)
            self._advance()

    def finish(self) -> None:
        with self.lock:
            if self.done:
                return
            self._in.eof = True
            self._advance()

    def close(self) -> None:
        with self.lock:
            self._steps.close()
            self._fs.close()

    def _advance(self) -> None:
        try:
            next(self._steps)
        except StopIteration:
            self.done = True
        except StagingError as e:
            self.done, self.error = True, e
        if self._in.eof and not self.done:  # the steps always end once the input has ended
            raise AssertionError("tar extractor waiting for input after the end of the stream")
        if self.done:
            self._fs.close()

    # ------------------------------------------------------------------ reading primitives

    def _read(self, n: int) -> Generator[None, None, bytes]:
        """Up to ``n`` bytes; fewer only when the stream ended."""
        while self._in.available() < n and not self._in.eof:
            yield
        return self._in.take(n)

    def _read_some(self, n: int) -> Generator[None, None, bytes]:
        """At least one byte (at most ``n``) unless the stream ended."""
        while self._in.available() == 0 and not self._in.eof:
            yield
        return self._in.take(min(n, self._in.available()))

    def _discard(self, n: int) -> Generator[None, None, None]:
        while n > 0:
            got = yield from self._read_some(min(n, _CHUNK))
            if not got:
                raise StagingError(ERR_UNEXPECTED_EOF)
            n -= len(got)

    def _member_read_some(self, n: int) -> Generator[None, None, bytes]:
        """Go's ``regFileReader``: the current data section; ``b""`` at its end, unexpected EOF when
        the stream ends inside it."""
        n = min(n, self._nb)
        if n <= 0:
            return b""
        got = yield from self._read_some(n)
        if not got:
            raise StagingError(ERR_UNEXPECTED_EOF)
        self._nb -= len(got)
        return got

    def _member_read_full(self, n: int) -> Generator[None, None, bytes]:
        out = bytearray()
        while len(out) < n:
            got = yield from self._member_read_some(n - len(out))
            if not got:
                break
            out += got
        return bytes(out)

    def _read_special(self) -> Generator[None, None, bytes]:
        """Go ``readSpecialFile``: a PAX or GNU long-name body, at most 1 MiB."""
        want = min(self._nb, _MAX_SPECIAL + 1)
        body = yield from self._member_read_full(want)
        if len(body) > _MAX_SPECIAL:
            raise StagingError(ERR_FIELD_TOO_LONG)
        return body

    # ------------------------------------------------------------------ Go's Reader.Next

    def _set_member(self, typeflag: int, size: int) -> None:
        nb = 0 if typeflag in _HEADER_ONLY else size
        if nb < 0:
            raise StagingError(ERR_HEADER)
        self._nb, self._pad, self._holes = nb, -nb % _BLOCK, None

    def _read_header(self) -> Generator[None, None, tuple[_Header, bytes]]:
        blk = yield from self._read(_BLOCK)
        if not blk:
            raise _End
        if len(blk) < _BLOCK:
            raise StagingError(ERR_UNEXPECTED_EOF)
        if blk == _ZERO_BLOCK:
            blk = yield from self._read(_BLOCK)
            if not blk:
                raise _End
            if len(blk) < _BLOCK:
                raise StagingError(ERR_UNEXPECTED_EOF)
            if blk == _ZERO_BLOCK:
                raise _End
            raise StagingError(ERR_HEADER)
        fmt = _header_format(blk)
        if fmt == 0:
            raise StagingError(ERR_HEADER)
        p = _Numbers()
        name, linkname = _cstr(blk[0:100]), _cstr(blk[157:257])
        size = p.numeric(blk[124:136])
        for lo, hi in ((100, 108), (108, 116), (116, 124), (136, 148)):  # mode uid gid mtime
            p.numeric(blk[lo:hi])
        if fmt > _V7:
            p.numeric(blk[329:337])
            p.numeric(blk[337:345])
            prefix = b""
            if fmt == _USTAR_PAX:
                prefix = _cstr(blk[345:500])
            elif fmt == _STAR:
                prefix = _cstr(blk[345:476])
                p.numeric(blk[476:488])
                p.numeric(blk[488:500])
            else:
                times = _Numbers()
                for lo, hi in ((345, 357), (357, 369)):
                    if blk[lo] != 0:
                        times.numeric(blk[lo:hi])
                if times.failed:  # files of pre-1.8 Go writers: these bytes were a USTAR prefix
                    s = _cstr(blk[345:500])
                    if all(c < 0x80 for c in s):
                        prefix = s
            if prefix:
                name = prefix + b"/" + name
        if p.failed:
            raise StagingError(ERR_HEADER)
        return _Header(name, blk[156], linkname, size), blk

    def _next(self) -> Generator[None, None, _Header]:
        pax: dict[bytes, bytes] = {}
        long_name = long_link = b""
        while True:
            yield from self._discard(self._nb)
            self._nb = 0
            pad = yield from self._read(self._pad)
            if len(pad) < self._pad:
                raise _End  # Go reads the padding with tryReadFull: a short read is a clean end
            self._pad = 0
            hdr, raw = yield from self._read_header()
            self._set_member(hdr.typeflag, hdr.size)
            if hdr.typeflag in b"xg":
                pax = _parse_pax_records((yield from self._read_special()))
                if hdr.typeflag == ord("g"):
                    _merge_pax(hdr, pax, strict=False)
                    return hdr
                continue
            if hdr.typeflag in b"LK":
                body = _cstr((yield from self._read_special()))
                if hdr.typeflag == ord("L"):
                    long_name = body
                else:
                    long_link = body
                continue
            _merge_pax(hdr, pax)
            if long_name:
                hdr.name = long_name
            if long_link:
                hdr.linkname = long_link
            if hdr.typeflag == 0:
                hdr.typeflag = ord("5") if hdr.name.endswith(b"/") else ord("0")
            self._set_member(hdr.typeflag, hdr.size)
            yield from self._sparse(hdr, raw)
            return hdr

    def _sparse(self, hdr: _Header, raw: bytes) -> Generator[None, None, None]:
        spd: list[tuple[int, int]] | None
        if hdr.typeflag == ord("S"):
            spd = yield from self._old_gnu_sparse(hdr, raw)
        else:
            spd = yield from self._pax_sparse(hdr)
        if spd is None:
            return
        if hdr.typeflag in _HEADER_ONLY or not _valid_sparse(spd, hdr.size):
            raise StagingError(ERR_HEADER)
        self._holes = _holes(spd, hdr.size)

    def _old_gnu_sparse(self, hdr: _Header, raw: bytes) -> Generator[None, None, list[tuple[int, int]]]:
        if _header_format(raw) != _GNU:
            raise StagingError(ERR_HEADER)
        p = _Numbers()
        hdr.size = p.numeric(raw[483:495])
        if p.failed:
            raise StagingError(ERR_HEADER)
        area, entries, total = raw[386:483], 4, 97
        spd: list[tuple[int, int]] = []
        while total < _MAX_SPECIAL:
            for i in range(entries):
                ent = area[i * 24 : i * 24 + 24]
                if ent[0] == 0:
                    break
                off, length = p.numeric(ent[:12]), p.numeric(ent[12:])
                if p.failed:
                    raise StagingError(ERR_HEADER)
                if len(spd) >= _MAX_SPARSE_ENTRIES:
                    raise StagingError(ERR_SPARSE_TOO_LONG)
                spd.append((off, length))
            if area[24 * entries] > 0:
                area = yield from self._read(_BLOCK)
                if len(area) < _BLOCK:
                    raise StagingError(ERR_UNEXPECTED_EOF)
                entries, total = 21, total + _BLOCK
                continue
            return spd
        raise StagingError(ERR_SPARSE_TOO_LONG)

    def _pax_sparse(self, hdr: _Header) -> Generator[None, None, list[tuple[int, int]] | None]:
        rec = hdr.pax
        major, minor = rec.get(b"GNU.sparse.major", b""), rec.get(b"GNU.sparse.minor", b"")
        if major == b"0" and minor in (b"0", b"1"):
            v1 = False
        elif major == b"1" and minor == b"0":
            v1 = True
        elif major or minor or not rec.get(b"GNU.sparse.map", b""):
            return None
        else:
            v1 = False
        if rec.get(b"GNU.sparse.name", b""):
            hdr.name = rec[b"GNU.sparse.name"]
        size = rec.get(b"GNU.sparse.size", b"") or rec.get(b"GNU.sparse.realsize", b"")
        if size:
            n = _go_parse_int(size)
            if n is None:
                raise StagingError(ERR_HEADER)
            hdr.size = n
        if v1:
            return (yield from self._sparse_map_1x0())
        return _sparse_map_0x1(rec)

    def _sparse_map_1x0(self) -> Generator[None, None, list[tuple[int, int]]]:
        buf = bytearray()
        total = 0

        def tokens() -> list[bytes]:
            return bytes(buf).split(b"\n")[:-1]

        def feed(n: int) -> Generator[None, None, None]:
            nonlocal total
            while buf.count(b"\n") < n:
                total += _BLOCK
                if total > _MAX_SPECIAL:
                    raise StagingError(ERR_SPARSE_TOO_LONG)
                blk = yield from self._member_read_full(_BLOCK)
                if len(blk) < _BLOCK:
                    raise StagingError(ERR_UNEXPECTED_EOF)
                buf.extend(blk)

        yield from feed(1)
        count = _go_parse_int(tokens()[0])
        if count is None or count < 0 or count >= 1 << 62:
            raise StagingError(ERR_HEADER)
        yield from feed(1 + 2 * count)
        toks = tokens()[1 : 1 + 2 * count]
        spd: list[tuple[int, int]] = []
        for i in range(count):
            off, length = _go_parse_int(toks[2 * i]), _go_parse_int(toks[2 * i + 1])
            if off is None or length is None:
                raise StagingError(ERR_HEADER)
            if len(spd) >= _MAX_SPARSE_ENTRIES:
                raise StagingError(ERR_SPARSE_TOO_LONG)
            spd.append((off, length))
        return spd

    # ------------------------------------------------------------------ ExtractTar

    def _run(self) -> Generator[None, None, None]:
        try:
            while True:
                try:
                    hdr = yield from self._next()
                except _End:
                    return
                yield from self._extract(hdr)
        finally:
            self._fs.close()

    def _safe_parts(self, name: bytes) -> list[bytes]:
        """archiveutil.SafeJoin: the cleaned components of ``name`` below the staging directory."""
        if _is_go_blank(name):
            raise StagingError(_unsafe(name))
        clean = go_clean(name)
        if clean.startswith(b"/") or clean == b".." or clean.startswith(b"../"):
            raise StagingError(_unsafe(name))
        return [] if clean == b"." else clean.split(b"/")

    def _extract(self, hdr: _Header) -> Generator[None, None, None]:
        parts = self._safe_parts(hdr.name)
        kind = hdr.typeflag
        try:
            if kind == ord("5"):
                os.close(self._fs.walk(parts, create=True))
            elif kind == ord("0"):
                yield from self._write_file(parts)
            elif kind == ord("2"):
                self._check_symlink(parts, hdr.linkname)
                os.close(self._fs.walk(parts[:-1], create=True))
            elif kind == ord("1"):
                self._hard_link(parts, self._safe_parts(hdr.linkname))
        except _FsError as e:
            raise e.staging_error() from None

    def _check_symlink(self, parts: list[bytes], linkname: bytes) -> None:
        # archiveutil.SafeLinkTarget, textual like the real daemon's (the link itself is never made)
        if _is_go_blank(linkname) or linkname.startswith(b"/"):
            raise StagingError(_unsafe(linkname))
        base = parts[:-1] if parts else [b".."]  # the member "." links from the parent directory
        resolved = go_clean(b"/".join([*base, linkname]))
        if resolved == b".." or resolved.startswith(b"../"):
            raise StagingError(_unsafe(linkname))

    def _write_file(self, parts: list[bytes]) -> Generator[None, None, None]:
        target = self._fs.full(parts)
        if not parts:
            raise _FsError(errno.EISDIR, f"open {target}")
        parent = self._fs.walk(parts[:-1], create=True)
        try:
            if b"\0" in parts[-1]:
                raise _FsError(errno.EINVAL, f"open {target}")
            try:
                fd = os.open(
                    parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=parent
                )
            except OSError as e:
                raise _FsError(e.errno or errno.EIO, f"open {target}") from None
        finally:
            os.close(parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _FsError(errno.EISDIR, f"open {target}")
            yield from self._copy_member(fd, target)
        finally:
            os.close(fd)

    def _copy_member(self, fd: int, target: str) -> Generator[None, None, None]:
        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except OSError as e:
                    raise _FsError(e.errno or errno.EIO, f"write {target}") from None

        if self._holes is None:
            while True:
                got = yield from self._member_read_some(_CHUNK)
                if not got:
                    return
                write(got)
        pos = 0
        for start, length in self._holes:
            while pos < start:
                if self._nb == 0:
                    raise StagingError(ERR_MISS_DATA)
                got = yield from self._member_read_some(min(start - pos, _CHUNK))
                write(got)
                pos += len(got)
            while pos < start + length:
                n = min(start + length - pos, _CHUNK)
                write(bytes(n))
                pos += n
        if self._nb > 0:
            raise StagingError(ERR_UNREF_DATA)

    def _hard_link(self, parts: list[bytes], source: list[bytes]) -> None:
        target, src_path = self._fs.full(parts), self._fs.full(source)
        what = f"link {src_path} {target}"
        if not parts or not source:  # the staging directory itself on either side
            raise _FsError(errno.EEXIST if source else errno.EPERM, what)
        dst_dir = self._fs.walk(parts[:-1], create=True)
        try:
            if b"\0" in parts[-1] or b"\0" in source[-1]:
                raise _FsError(errno.EINVAL, what)
            with contextlib.suppress(OSError):  # Go: `_ = os.Remove(target)`
                try:
                    os.unlink(parts[-1], dir_fd=dst_dir)
                except IsADirectoryError:
                    os.rmdir(parts[-1], dir_fd=dst_dir)
            try:
                src_dir = self._fs.walk(source[:-1], create=False)
            except _FsError as e:
                raise _FsError(e.errnum, what) from None
            try:
                os.link(source[-1], parts[-1], src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
            except OSError as e:
                raise _FsError(e.errno or errno.EIO, what) from None
            finally:
                os.close(src_dir)
        finally:
            os.close(dst_dir)


def _sparse_map_0x1(rec: dict[bytes, bytes]) -> list[tuple[int, int]]:
    count = _go_parse_int(rec.get(b"GNU.sparse.numblocks", b""))
    if count is None or count < 0 or count >= 1 << 62:
        raise StagingError(ERR_HEADER)
    items = rec.get(b"GNU.sparse.map", b"").split(b",")
    if items == [b""]:
        items = []
    if len(items) != 2 * count:
        raise StagingError(ERR_HEADER)
    spd: list[tuple[int, int]] = []
    for i in range(count):
        off, length = _go_parse_int(items[2 * i]), _go_parse_int(items[2 * i + 1])
        if off is None or length is None:
            raise StagingError(ERR_HEADER)
        if len(spd) >= _MAX_SPARSE_ENTRIES:
            raise StagingError(ERR_SPARSE_TOO_LONG)
        spd.append((off, length))
    return spd


def _unsafe(name: bytes) -> str:
    return f"archiveutil: unsafe archive path {go_quote(os.fsdecode(name))}"


class FileSink:
    """``writeStagedFile``: every received byte goes to ``<staging>/model.gguf`` (mode 0644)."""

    def __init__(self, staging: str) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.error: StagingError | None = None
        self.consumed = 0
        self._hasher = hashlib.sha256()
        root = os.open(staging, _DIR_FLAGS)
        try:
            self._fd = os.open(
                "model.gguf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=root
            )
        except OSError as e:
            raise StagingError(f"open {os.path.join(staging, 'model.gguf')}: {go_errno_text(e)}") from None
        finally:
            os.close(root)
        self._target = os.path.join(staging, "model.gguf")

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def feed(self, data: bytes) -> None:
        with self.lock:
            if self.done:
                return
            self._hasher.update(data)
            self.consumed += len(data)
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as e:
                self.done, self.error = True, StagingError(f"write {self._target}: {go_errno_text(e)}")
                self._close_fd()

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self._close_fd()

    def close(self) -> None:
        with self.lock:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
