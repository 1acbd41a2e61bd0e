"""The node model store over ``<data_root>/models`` (``modeld/modelstore/modelstore.go``, ``admin.go``).

Layout: ``<dir>/<name>/model.gguf`` (llama) and ``<dir>/<name>/`` holding ``openvino_model.xml`` or
``openvino_language_model.xml`` (openvino). Plain ``os`` / ``pathlib`` only (pyfakefs-friendly).

Errors carry the real daemon's texts (observed/real-*.jsonl): typed sentinels from
:mod:`modeldconn.wire.errors`, or :class:`~modeld_sim.engines.base.PlainError` (``internal: …``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Final

from modeld_sim.engines.base import PlainError, go_quote
from modeld_sim.gguf import GGUFError, read_gguf
from modeldconn.wire import errors as werr
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

__all__ = ["DEFAULT_SUBDIR", "OPENVINO_ENTRYPOINTS", "STAGING_PREFIX", "ModelStore", "models_dir"]

DEFAULT_SUBDIR: Final = "models"
STAGING_PREFIX: Final = ".staging-"
OPENVINO_ENTRYPOINTS: Final = ("openvino_model.xml", "openvino_language_model.xml")
_COPY_CHUNK: Final = 1 << 20


def models_dir(data_root: str, override: str = "") -> str:
    """modelstore.Dir: the override, else ``<data_root>/models``."""
    return override if override else os.path.join(data_root, DEFAULT_SUBDIR)


def _go_errno_text(e: OSError) -> str:
    # Go's syscall.Errno strings are strerror in lower case ("no such file or directory").
    msg = os.strerror(e.errno) if e.errno else str(e)
    return msg[:1].lower() + msg[1:]


def file_digest(path: str) -> str:
    """modelstore.FileDigest: sha256 hex of the file."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while True:
                b = f.read(_COPY_CHUNK)
                if not b:
                    break
                h.update(b)
    except OSError as e:
        raise PlainError(f"modelstore: open {path}: {_go_errno_text(e)}") from None
    return h.hexdigest()


class ModelStore:
    """Resolve / ListModels / RemoveModel / DiskStats / PushModel over one models directory."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self._in_flight: set[str] = set()
        #: Called with the name before a removal; raises to refuse (the slot refuses its resident model).
        self.resident_guard: Callable[[str], None] | None = None

    @classmethod
    def for_data_root(cls, data_root: str, override: str = "") -> ModelStore:
        return cls(models_dir(data_root, override))

    # ------------------------------------------------------------------ resolve

    def resolve(self, name: str, backend_type: str, want_digest: str = "") -> str:
        """modelstore.Resolve (session-semantics §3.1)."""
        if name == "":
            raise werr.ModelNotFound("empty model name")
        model_dir = os.path.join(self.dir, name)
        if backend_type == "llama":
            path = os.path.join(model_dir, "model.gguf")
            try:
                os.stat(path)
            except OSError:
                raise werr.ModelNotFound(f"{name} (llama)") from None
            if want_digest:
                got = file_digest(path)
                if got != want_digest:
                    raise werr.DigestMismatch(f"model {name} want={want_digest} got={got}")
            return path
        if backend_type == "openvino":
            for entry in OPENVINO_ENTRYPOINTS:
                if os.path.exists(os.path.join(model_dir, entry)):
                    return model_dir
            raise werr.ModelNotFound(f"{name} (openvino)")
        raise werr.UnsupportedModelType(go_quote(backend_type))

    def resolve_path(self, path: str, name: str, backend_type: str, digest: str) -> str:
        """slot resolvePath: a non-empty path is used verbatim."""
        return path if path else self.resolve(name, backend_type, digest)

    # ------------------------------------------------------------------ list / remove / disk

    async def list_models(self) -> list[pb.NodeModel]:
        """admin.ListModels: every model dir (staging dirs skipped), by name (os.ReadDir order)."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise PlainError(f"modelstore: read models dir: open {self.dir}: {_go_errno_text(e)}") from None
        out: list[pb.NodeModel] = []
        for name in names:
            full = os.path.join(self.dir, name)
            if not os.path.isdir(full) or name.startswith(STAGING_PREFIX):
                continue
            gguf = os.path.join(full, "model.gguf")
            if os.path.exists(gguf):
                m = pb.NodeModel(name=name, type="llama")
                with contextlib.suppress(OSError):
                    m.size_bytes = os.stat(gguf).st_size
                with contextlib.suppress(PlainError):
                    m.digest = file_digest(gguf)
                with contextlib.suppress(GGUFError):
                    m.context_length = read_gguf(gguf).context_length
                out.append(m)
                continue
            if any(os.path.exists(os.path.join(full, e)) for e in OPENVINO_ENTRYPOINTS):
                m = pb.NodeModel(name=name, type="openvino", size_bytes=_dir_size(full))
                cl = _openvino_context_length(full)
                if cl:
                    m.context_length = cl
                out.append(m)
        return out

    async def remove_model(self, name: str) -> None:
        """slot.RemoveModel + admin.RemoveModel: the slot's :attr:`resident_guard` refuses the resident
        model's name first (``model_busy``). A name that would leave the models dir is answered
        ``model_not_found`` without touching anything (the real daemon joins it verbatim; recorded
        ``../../etc`` → ``model_not_found`` because nothing was there)."""
        if self.resident_guard is not None:
            self.resident_guard(name)
        if name == "":
            raise PlainError("modelstore: empty model name")
        model_dir = os.path.join(self.dir, name)
        base = os.path.abspath(self.dir)
        target = os.path.abspath(model_dir)
        if os.path.dirname(target) != base or os.path.basename(target) in ("", ".", ".."):
            raise werr.ModelNotFound()
        try:
            os.stat(model_dir)
        except FileNotFoundError:
            raise werr.ModelNotFound() from None
        except OSError as e:
            raise PlainError(f"modelstore: stat {model_dir}: stat {model_dir}: {_go_errno_text(e)}") from None
        try:
            if os.path.isdir(model_dir) and not os.path.islink(model_dir):
                shutil.rmtree(model_dir)
            else:
                os.remove(model_dir)
        except OSError as e:
            raise PlainError(f"modelstore: remove {model_dir}: {_go_errno_text(e)}") from None

    async def disk_stats(self) -> pb.NodeDiskStats:
        """admin.DiskStats (gopsutil disk.Usage: used = total - free, free = available to users)."""
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise PlainError(
                f"modelstore: ensure models dir: mkdir {self.dir}: {_go_errno_text(e)}"
            ) from None
        try:
            st = os.statvfs(self.dir)
        except OSError as e:
            raise PlainError(f"modelstore: disk usage: {_go_errno_text(e)}") from None
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return pb.NodeDiskStats(free_bytes=free, used_bytes=used, total_bytes=total)

    # ------------------------------------------------------------------ push

    def push_in_progress(self, name: str) -> bool:
        """A push of ``name`` is being received (a second push of it is refused until it ends)."""
        return name in self._in_flight

    async def receive_model(self, manifest: pb.PushManifest, data: AsyncIterable[bytes]) -> pb.PushModelResp:
        """admin.ReceiveModel. ``data`` yields the raw bytes of every frame in order (the first frame's
        data included). Early rejections raise before ``data`` is consumed: the caller must drain the
        client stream itself so the client never deadlocks."""
        if manifest.name == "":
            raise PlainError("modelstore: push manifest missing model name")
        if manifest.type not in ("llama", "openvino"):
            raise werr.UnsupportedModelType(go_quote(manifest.type))
        name = manifest.name
        if name in self._in_flight:
            raise PlainError(f"modelstore: push already in progress for {go_quote(name)}")
        self._in_flight.add(name)
        staging = ""
        try:
            try:
                os.makedirs(self.dir, mode=0o755, exist_ok=True)
            except OSError as e:
                raise PlainError(
                    f"modelstore: ensure models dir: mkdir {self.dir}: {_go_errno_text(e)}"
                ) from None
            pattern = STAGING_PREFIX + name + "-*"
            if os.sep in pattern or (os.altsep and os.altsep in pattern):
                raise PlainError(
                    f"modelstore: create staging dir: mkdirtemp {pattern}: pattern contains path separator"
                )
            try:
                staging = tempfile.mkdtemp(prefix=STAGING_PREFIX + name + "-", dir=self.dir)
            except OSError as e:
                raise PlainError(
                    f"modelstore: create staging dir: mkdirtemp {os.path.join(self.dir, pattern)}: "
                    f"{_go_errno_text(e)}"
                ) from None
            hasher = hashlib.sha256()
            if manifest.format == "file":
                written = await _write_staged_file(staging, data, hasher)
            elif manifest.format == "tar":
                written = await _write_staged_tar(staging, data, hasher)
            else:
                raise PlainError(f"modelstore: unsupported push format {go_quote(manifest.format)}")
            got = hasher.hexdigest()
            if manifest.digest and got != manifest.digest:
                raise werr.DigestMismatch(f"model {name} want={manifest.digest} got={got}")
            try:
                self.resolve(name, manifest.type, got)
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
                raise PlainError(f"modelstore: clear existing model dir: {_go_errno_text(e)}") from None
            try:
                os.rename(staging, model_dir)
            except OSError as e:
                raise PlainError(
                    f"modelstore: install model {name}: rename {staging} {model_dir}: {_go_errno_text(e)}"
                ) from None
            staging = ""
            return pb.PushModelResp(bytes_written=written)
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
            self._in_flight.discard(name)

    push_model = receive_model


async def _write_staged_file(staging: str, data: AsyncIterable[bytes], hasher: hashlib._Hash) -> int:
    target = os.path.join(staging, "model.gguf")
    n = 0
    try:
        with open(target, "wb") as f:
            async for chunk in data:
                hasher.update(chunk)
                f.write(chunk)
                n += len(chunk)
    except OSError as e:
        raise PlainError(f"modelstore: write staged content: {_go_errno_text(e)}") from None
    return n


async def _write_staged_tar(staging: str, data: AsyncIterable[bytes], hasher: hashlib._Hash) -> int:
    # archiveutil.ExtractTar, buffered: the raw stream is hashed/counted as it arrives.
    buf = io.BytesIO()
    n = 0
    async for chunk in data:
        hasher.update(chunk)
        buf.write(chunk)
        n += len(chunk)
    buf.seek(0)
    dest = os.path.abspath(staging)
    try:
        with tarfile.open(fileobj=buf, mode="r:") as tf:
            for member in tf:
                target = _safe_join(dest, member.name)
                if member.isdir():
                    os.makedirs(target, mode=0o755, exist_ok=True)
                elif member.isreg():
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    src = tf.extractfile(member)
                    with open(target, "wb") as out:
                        if src is not None:
                            shutil.copyfileobj(src, out)
                    os.chmod(target, member.mode & 0o777)
                elif member.issym():
                    link = os.path.normpath(os.path.join(os.path.dirname(target), member.linkname))
                    if os.path.isabs(member.linkname) or not _inside(dest, link):
                        raise PlainError(
                            f"modelstore: write staged content: archiveutil: unsafe archive path "
                            f"{go_quote(member.linkname)}"
                        )
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    if os.path.lexists(target):
                        os.remove(target)
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    source = _safe_join(dest, member.linkname)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    if os.path.lexists(target):
                        os.remove(target)
                    os.link(source, target)
    except tarfile.TarError as e:
        raise PlainError(f"modelstore: write staged content: archive/tar: {e}") from None
    except OSError as e:
        raise PlainError(f"modelstore: write staged content: {_go_errno_text(e)}") from None
    return n


def _inside(dest: str, target: str) -> bool:
    rel = os.path.relpath(target, dest)
    return rel != ".." and not rel.startswith(".." + os.sep)


def _safe_join(dest: str, name: str) -> str:
    if name.strip() == "":
        raise PlainError(
            f"modelstore: write staged content: archiveutil: unsafe archive path {go_quote(name)}"
        )
    clean = os.path.normpath(name)
    if os.path.isabs(clean):
        raise PlainError(
            f"modelstore: write staged content: archiveutil: unsafe archive path {go_quote(name)}"
        )
    target = os.path.join(dest, clean)
    if not _inside(dest, target):
        raise PlainError(
            f"modelstore: write staged content: archiveutil: unsafe archive path {go_quote(name)}"
        )
    return target


def _dir_size(d: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(d):
        for fn in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, fn)).st_size
    return total


def _openvino_context_length(d: str) -> int:
    import json

    for fn in ("modeld_sim.json", "config.json"):
        p = os.path.join(d, fn)
        try:
            with open(p, encoding="utf-8") as f:
                v = json.load(f)
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
