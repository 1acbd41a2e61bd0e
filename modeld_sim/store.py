"""The node model store over ``<data_root>/models`` (``modeld/modelstore/modelstore.go``, ``admin.go``).

Layout: ``<dir>/<name>/model.gguf`` (llama) and ``<dir>/<name>/`` holding ``openvino_model.xml`` or
``openvino_language_model.xml`` (openvino). Plain ``os`` calls, made on worker threads by the ``async``
methods: a request-named file is opened only when it is a regular file (:mod:`modeld_sim.safefs`), and a
pushed tar is unpacked by :mod:`modeld_sim.tarstream`.

Errors carry the real daemon's texts (observed/real-*.jsonl): typed sentinels from
:mod:`modeldconn.wire.errors`, or :class:`~modeld_sim.engines.base.PlainError` (``internal: …``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Final

from modeld_sim.engines.base import PlainError, go_quote
from modeld_sim.gguf import GGUFError, read_gguf
from modeld_sim.safefs import go_errno_text, go_join, is_plain_name, open_regular, read_regular
from modeld_sim.tarstream import FileSink, StagingError, TarExtractor
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = [
    "DEFAULT_SUBDIR",
    "OPENVINO_ENTRYPOINTS",
    "STAGING_PREFIX",
    "ModelStore",
    "bad_name_error",
    "file_digest",
    "models_dir",
]

DEFAULT_SUBDIR: Final = "models"
STAGING_PREFIX: Final = ".staging-"
OPENVINO_ENTRYPOINTS: Final = ("openvino_model.xml", "openvino_language_model.xml")
_COPY_CHUNK: Final = 1 << 20
_MAX_CONFIG_BYTES: Final = 1 << 20


def models_dir(data_root: str, override: str = "") -> str:
    """modelstore.Dir: the override, else ``<data_root>/models``."""
    return override if override else os.path.join(data_root, DEFAULT_SUBDIR)


def bad_name_error(name: str) -> PlainError:
    """Our refusal of ``.`` and ``..`` on push and remove. The real daemon has no answer of its own for
    them: it joins the name to the models directory and removes what that names (the whole models
    directory, or the data root) — docs/conformance/real-modeld.md, "Model names"."""
    return PlainError(
        f"modelstore: invalid model name {go_quote(name)}: a model name is one plain path element"
    )


def file_digest(path: str) -> str:
    """modelstore.FileDigest: sha256 hex of the file (a regular file only; blocking)."""
    h = hashlib.sha256()
    try:
        fd = open_regular(path)
    except OSError as e:
        raise PlainError(f"modelstore: open {path}: {go_errno_text(e)}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            while True:
                b = f.read(_COPY_CHUNK)
                if not b:
                    break
                h.update(b)
    except OSError as e:
        raise PlainError(f"modelstore: hash {path}: {go_errno_text(e)}") from None
    return h.hexdigest()


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class ModelStore:
    """Resolve / ListModels / RemoveModel / DiskStats / PushModel over one models directory.

    The ``async`` methods do their file work on worker threads; :meth:`resolve` and
    :meth:`resolve_path` block (they read a whole model to check a digest) and are meant for a worker
    thread too. Push and remove refuse ``.`` and ``..`` (:func:`bad_name_error`); every other name
    keeps the real daemon's answer, which never touches anything outside the models directory."""

    def __init__(self, directory: str, *, reads_headers: bool = True) -> None:
        self.dir = directory
        #: Whether ListModels reports a model's context length. The real daemon reads it with its
        #: engines' header parsers (modelstore/admin.go ListModels → llama.ContextLength /
        #: openvino.ContextLength); a build without an inference backend has none and leaves it out.
        self.reads_headers = reads_headers
        self._in_flight: set[str] = set()
        #: Called with the name before a removal; raises to refuse (the slot refuses its resident model).
        self.resident_guard: Callable[[str], None] | None = None

    @classmethod
    def for_data_root(cls, data_root: str, override: str = "", *, backend: str = "llama") -> ModelStore:
        return cls(models_dir(data_root, override), reads_headers=backend != "none")

    # ------------------------------------------------------------------ resolve

    def resolve(self, name: str, backend_type: str, want_digest: str = "") -> str:
        """modelstore.Resolve (session-semantics §3.1). A name that is not one plain path element names
        no model (the real daemon's answer whenever nothing is at the joined path), and only a regular
        file counts as a model file (a FIFO would block whoever reads it). Blocking."""
        if name == "":
            raise werr.ModelNotFound("empty model name")
        if backend_type not in ("llama", "openvino"):
            raise werr.UnsupportedModelType(go_quote(backend_type))
        model_dir = os.path.join(self.dir, name)
        if backend_type == "llama":
            path = os.path.join(model_dir, "model.gguf")
            if not is_plain_name(name) or not _is_regular(path):
                raise werr.ModelNotFound(f"{name} (llama)")
            if want_digest:
                got = file_digest(path)
                if got != want_digest:
                    raise werr.DigestMismatch(f"model {name} want={want_digest} got={got}")
            return path
        if is_plain_name(name) and any(_is_regular(os.path.join(model_dir, e)) for e in OPENVINO_ENTRYPOINTS):
            return model_dir
        raise werr.ModelNotFound(f"{name} (openvino)")

    def resolve_path(self, path: str, name: str, backend_type: str, digest: str) -> str:
        """slot resolvePath: a non-empty path is used verbatim. Blocking."""
        return path if path else self.resolve(name, backend_type, digest)

    # ------------------------------------------------------------------ list / remove / disk

    async def list_models(self) -> list[pb.NodeModel]:
        """admin.ListModels: every model dir (staging dirs skipped), by name (os.ReadDir order)."""
        return await asyncio.to_thread(self._list_models)

    def _list_models(self) -> list[pb.NodeModel]:
        try:
            with os.scandir(self.dir) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise PlainError(f"modelstore: read models dir: open {self.dir}: {go_errno_text(e)}") from None
        out: list[pb.NodeModel] = []
        for entry in entries:
            name = entry.name
            # Go's DirEntry.IsDir: a symlink is not a directory here
            if not entry.is_dir(follow_symlinks=False) or name.startswith(STAGING_PREFIX):
                continue
            with contextlib.suppress(werr.ModeldError):
                gguf = self.resolve(name, "llama")
                m = pb.NodeModel(name=name, type="llama")
                with contextlib.suppress(OSError):
                    m.size_bytes = os.stat(gguf).st_size
                with contextlib.suppress(PlainError):
                    m.digest = file_digest(gguf)
                if self.reads_headers:
                    with contextlib.suppress(GGUFError, OSError):
                        m.context_length = read_gguf(gguf).context_length
                out.append(m)
                continue
            with contextlib.suppress(werr.ModeldError):
                full = self.resolve(name, "openvino")
                m = pb.NodeModel(name=name, type="openvino", size_bytes=_dir_size(full))
                cl = _openvino_context_length(full) if self.reads_headers else 0
                if cl:
                    m.context_length = cl
                out.append(m)
        return out

    async def remove_model(self, name: str) -> None:
        """slot.RemoveModel + admin.RemoveModel: the slot's :attr:`resident_guard` refuses the resident
        model's name first (``model_busy``). ``.`` and ``..`` are refused (:func:`bad_name_error`); a
        name with a separator is ``model_not_found`` without touching anything (the real daemon joins
        it verbatim: recorded ``../../etc`` → ``model_not_found`` because nothing was there); a NUL byte
        gets the real daemon's ``stat`` error."""
        if self.resident_guard is not None:
            self.resident_guard(name)
        await asyncio.to_thread(self._remove_model, name)

    def _remove_model(self, name: str) -> None:
        if name == "":
            raise PlainError("modelstore: empty model name")
        model_dir = go_join(self.dir, name)
        if "\0" in name:
            raise PlainError(f"modelstore: stat {model_dir}: stat {model_dir}: invalid argument")
        if name in (".", ".."):
            raise bad_name_error(name)
        if "/" in name:
            raise werr.ModelNotFound()
        try:
            os.stat(model_dir)
        except FileNotFoundError:
            raise werr.ModelNotFound() from None
        except OSError as e:
            raise PlainError(f"modelstore: stat {model_dir}: stat {model_dir}: {go_errno_text(e)}") from None
        try:
            if stat.S_ISDIR(os.lstat(model_dir).st_mode):
                shutil.rmtree(model_dir)
            else:
                os.remove(model_dir)
        except OSError as e:
            raise PlainError(f"modelstore: remove {model_dir}: {go_errno_text(e)}") from None

    async def disk_stats(self) -> pb.NodeDiskStats:
        """admin.DiskStats (gopsutil disk.Usage: used = total - free, free = available to users)."""
        return await asyncio.to_thread(self._disk_stats)

    def _disk_stats(self) -> pb.NodeDiskStats:
        self._ensure_dir()
        try:
            st = os.statvfs(self.dir)
        except OSError as e:
            raise PlainError(f"modelstore: disk usage: {go_errno_text(e)}") from None
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return pb.NodeDiskStats(free_bytes=free, used_bytes=used, total_bytes=total)

    def _ensure_dir(self) -> None:
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
        except FileExistsError:  # Go's MkdirAll over a file
            raise PlainError(f"modelstore: ensure models dir: mkdir {self.dir}: not a directory") from None
        except OSError as e:
            raise PlainError(f"modelstore: ensure models dir: mkdir {self.dir}: {go_errno_text(e)}") from None

    # ------------------------------------------------------------------ push

    def push_in_progress(self, name: str) -> bool:
        """A push of ``name`` is being received (a second push of it is refused until it ends)."""
        return name in self._in_flight

    async def receive_model(self, manifest: pb.PushManifest, data: AsyncIterable[bytes]) -> pb.PushModelResp:
        """admin.ReceiveModel. ``data`` yields the raw bytes of every frame in order (the first frame's
        data included). Early rejections raise before ``data`` is consumed, and a tar stream is read
        only up to its end-of-archive marker (like the real daemon, whose digest and ``bytes_written``
        cover what its tar reader read): the caller must drain the client stream itself so the client
        never deadlocks. The bytes are written on worker threads, one received chunk at a time."""
        if manifest.name == "":
            raise PlainError("modelstore: push manifest missing model name")
        if manifest.type not in ("llama", "openvino"):
            raise werr.UnsupportedModelType(go_quote(manifest.type))
        name = manifest.name
        if name in self._in_flight:
            raise PlainError(f"modelstore: push already in progress for {go_quote(name)}")
        self._in_flight.add(name)
        staging = ""
        sink: FileSink | TarExtractor | None = None
        try:
            staging = await asyncio.to_thread(self._make_staging, name)
            if manifest.format not in ("file", "tar"):
                raise PlainError(f"modelstore: unsupported push format {go_quote(manifest.format)}")
            sink = active = await asyncio.to_thread(_open_sink, manifest.format, staging)
            async for chunk in data:
                await asyncio.to_thread(active.feed, chunk)
                if active.done:
                    break
            if not active.done:
                await asyncio.to_thread(active.finish)
            if active.error is not None:
                raise PlainError(f"modelstore: write staged content: {active.error}")
            got, written = active.hexdigest(), active.consumed
            if manifest.digest and got != manifest.digest:
                raise werr.DigestMismatch(f"model {name} want={manifest.digest} got={got}")
            resp = await asyncio.to_thread(self._install, name, manifest.type, got, staging, written)
            if not resp.already_present:
                staging = ""
            return resp
        finally:
            cleanup = asyncio.get_running_loop().run_in_executor(None, _discard_staging, sink, staging)
            try:
                await asyncio.shield(cleanup)  # after a cancellation it finishes in the background
            finally:
                self._in_flight.discard(name)

    push_model = receive_model

    def _make_staging(self, name: str) -> str:
        """os.MkdirAll of the models dir, then os.MkdirTemp(dir, ".staging-<name>-*") as Go does it
        (a random uint32 in decimal); ``.`` and ``..`` are refused here, where the real daemon would
        go on to remove what they name."""
        self._ensure_dir()
        pattern = STAGING_PREFIX + name + "-*"
        if "/" in pattern:
            raise PlainError(
                f"modelstore: create staging dir: mkdirtemp {pattern}: pattern contains path separator"
            )
        if name in (".", ".."):
            raise bad_name_error(name)
        prefix = os.path.join(self.dir, STAGING_PREFIX + name + "-")
        for _ in range(10000):
            path = prefix + str(secrets.randbits(32))
            if "\0" in path:
                raise PlainError(f"modelstore: create staging dir: mkdir {path}: invalid argument")
            try:
                os.mkdir(path, 0o700)
                return path
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno == errno.ENOENT and not os.path.exists(self.dir):
                    raise PlainError(
                        f"modelstore: create staging dir: stat {self.dir}: no such file or directory"
                    ) from None
                raise PlainError(
                    f"modelstore: create staging dir: mkdir {path}: {go_errno_text(e)}"
                ) from None
        raise PlainError(f"modelstore: create staging dir: mkdirtemp {prefix}*: file already exists")

    def _install(self, name: str, typ: str, got: str, staging: str, written: int) -> pb.PushModelResp:
        try:
            self.resolve(name, typ, got)
        except werr.ModeldError:
            pass
        else:
            return pb.PushModelResp(already_present=True, bytes_written=written)
        model_dir = os.path.join(self.dir, name)
        try:
            if os.path.lexists(model_dir):
                if os.path.isdir(model_dir) and not os.path.islink(model_dir):
                    shutil.rmtree(model_dir)
                else:
                    os.remove(model_dir)
        except OSError as e:
            raise PlainError(f"modelstore: clear existing model dir: {go_errno_text(e)}") from None
        try:
            os.rename(staging, model_dir)
        except OSError as e:
            raise PlainError(
                f"modelstore: install model {name}: rename {staging} {model_dir}: {go_errno_text(e)}"
            ) from None
        return pb.PushModelResp(bytes_written=written)


def _open_sink(fmt: str, staging: str) -> FileSink | TarExtractor:
    try:
        return FileSink(staging) if fmt == "file" else TarExtractor(staging)
    except StagingError as e:
        raise PlainError(f"modelstore: write staged content: {e}") from None
    except OSError as e:
        raise PlainError(f"modelstore: write staged content: open {staging}: {go_errno_text(e)}") from None


def _discard_staging(sink: FileSink | TarExtractor | None, staging: str) -> None:
    # The sink's lock waits for a chunk still being written on another thread.
    if sink is not None:
        sink.close()
    if staging:
        shutil.rmtree(staging, ignore_errors=True)


def _dir_size(d: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(d):
        for fn in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, fn)).st_size
    return total


def _openvino_context_length(d: str) -> int:
    for fn in ("modeld_sim.json", "config.json"):
        try:
            v = json.loads(read_regular(os.path.join(d, fn), _MAX_CONFIG_BYTES))
        except (OSError, ValueError):
            continue
        if isinstance(v, dict):
            for k in ("context_length", "max_position_embeddings"):
                x = v.get(k)
                if isinstance(x, int) and not isinstance(x, bool) and x > 0:
                    return x
    return 0


async def iter_bytes(*chunks: bytes) -> AsyncIterator[bytes]:
    """Helper: an async iterable over the given byte chunks (tests, in-process callers)."""
    for c in chunks:
        yield c
