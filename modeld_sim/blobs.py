"""Snapshot blobs: ``<data_root>/modeld-blobs/<backend>/<state_id>.bin`` (``modeld/slot/service.go``
``Snapshot`` / ``Restore``).

A snapshot's state bytes are stored under their sha256 (``state_id``); Restore with a ``state_id`` reads
them back. The real daemon joins any ``state_id`` to the blob directory, so ``../../../../secret`` reads a
``.bin`` file anywhere and its answer tells whether that file exists. Here a ``state_id`` is resolved inside
the blob directory — textually and then on disk (symlinks followed) — or refused with one answer that does
not depend on what is outside; and only a regular file is read, so a FIFO cannot hold the request.
Blocking functions: callers run them on a worker thread.
"""

from __future__ import annotations

import os
import stat

from modeld_sim.engines.base import PlainError, go_quote
from modeld_sim.safefs import NotRegularFile, go_errno_text, go_join, inside, open_regular

__all__ = ["blob_path", "read_blob", "write_blob"]

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)


def blob_path(blob_dir: str, state_id: str) -> str:
    """The real daemon's ``filepath.Join(blobDir, stateID + ".bin")`` (cleaned, not yet checked)."""
    return go_join(blob_dir, state_id + ".bin")


def _refused(state_id: str) -> PlainError:
    return PlainError(f"snapshot blob not found: state id {go_quote(state_id)} names no blob of this daemon")


def read_blob(blob_dir: str, state_id: str) -> bytes:
    """The state bytes of ``state_id``; ``snapshot blob not found: …`` (internal) when there are none.

    A missing blob keeps the real daemon's text (``open <path>: no such file or directory``); a
    ``state_id`` that leads outside the blob directory gets :func:`_refused`, whatever is there."""
    path = blob_path(blob_dir, state_id)
    base = go_join(blob_dir, "")
    if "\0" in state_id:
        raise PlainError(f"snapshot blob not found: open {path}: invalid argument")
    if not inside(base, path) or path == base:
        raise _refused(state_id)
    real_base = os.path.realpath(base)
    if not inside(real_base, os.path.realpath(path)):
        raise _refused(state_id)
    try:
        fd = open_regular(path)
    except NotRegularFile as e:
        what = "read" if e.is_dir else "open"
        reason = "is a directory" if e.is_dir else "not a regular file"
        raise PlainError(f"snapshot blob not found: {what} {path}: {reason}") from None
    except OSError as e:
        raise PlainError(f"snapshot blob not found: open {path}: {go_errno_text(e)}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except OSError as e:
        raise PlainError(f"snapshot blob not found: read {path}: {go_errno_text(e)}") from None


def write_blob(blob_dir: str, state_id: str, state: bytes) -> bool:
    """Store ``state`` as ``<state_id>.bin`` (temp file 0600, then rename), the directory 0700.

    ``False`` when it could not be stored (the real daemon logs that and answers without a
    ``state_id``); a special file planted at the temp name is never opened for a blocking write."""
    try:
        os.makedirs(blob_dir, mode=0o700, exist_ok=True)
        path = os.path.join(blob_dir, state_id + ".bin")
        tmp = path + ".tmp"
        fd = os.open(tmp, _WRITE_FLAGS, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            os.set_blocking(fd, True)
            view = memoryview(state)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        return False
    return True
