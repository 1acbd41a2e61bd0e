"""File-system helpers for request input: names that stay one path element, paths cleaned like Go's
``path/filepath``, and opening a file only when it is a regular one.

A request can name anything: ``..``, a path with a NUL byte, a FIFO, a device. Opening a FIFO for reading
blocks until a writer appears, so every open of a request-named file goes through :func:`open_regular`
(non-blocking open, then ``fstat``), and callers run these helpers on a worker thread, never on the event
loop. Plain ``os`` calls only, so the helpers work under pyfakefs as well.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from typing import AnyStr, Final

__all__ = [
    "NotRegularFile",
    "go_clean",
    "go_errno_text",
    "go_join",
    "inside",
    "is_plain_name",
    "open_regular",
    "read_regular",
]

_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path exists but is a FIFO, device, socket or directory (``is_dir``)."""

    def __init__(self, path: str, *, is_dir: bool = False) -> None:
        super().__init__(errno.EISDIR if is_dir else errno.EINVAL, "not a regular file", path)
        self.is_dir = is_dir


def go_errno_text(e: OSError) -> str:
    """Go's ``syscall.Errno`` text: strerror in lower case (``no such file or directory``)."""
    msg = os.strerror(e.errno) if e.errno else str(e)
    return msg[:1].lower() + msg[1:]


def go_clean(path: AnyStr) -> AnyStr:
    """Go ``filepath.Clean`` (Unix): ``posixpath.normpath`` except that a leading ``//`` becomes ``/``."""
    out = posixpath.normpath(path)
    sep = "/" if isinstance(out, str) else b"/"
    if out[:2] == sep * 2 and out[2:3] != sep:
        out = out[1:]
    return out


def go_join(base: str, name: str) -> str:
    """Go ``filepath.Join(base, name)``: joined with a separator, then cleaned (an absolute ``name``
    is *not* a new root, unlike ``os.path.join``)."""
    if not name:
        return go_clean(base) if base else ""
    if not base:
        return go_clean(name)
    return go_clean(base + "/" + name)


def inside(base: str, target: str) -> bool:
    """``target`` is ``base`` or below it (both cleaned absolute paths; purely textual)."""
    return target == base or target.startswith(base.rstrip("/") + "/")


def is_plain_name(name: str) -> bool:
    """One plain path element: not empty, not ``.`` or ``..``, no separator, no NUL byte."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def open_regular(path: str) -> int:
    """Open ``path`` for reading without blocking on a FIFO; the descriptor of a regular file (blocking
    mode restored), else :class:`NotRegularFile`. A NUL byte in the path is ``EINVAL`` (Go's answer),
    not Python's ``ValueError``."""
    if "\0" in path:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, is_dir=stat.S_ISDIR(st.st_mode))
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str, limit: int = -1) -> bytes:
    """The bytes of a regular file (at most ``limit`` when it is not negative); see :func:`open_regular`."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit) if limit >= 0 else f.read()
