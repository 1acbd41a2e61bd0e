"""The blocking facade: the same API as :mod:`modeldconn.client`, without ``await``.

Every call runs the async code on one **private event loop in a background daemon thread**
(started on first use) and waits for it. That makes it usable

* from plain synchronous code and from any number of threads at once (calls are serialised only
  where the daemon serialises them);
* from a thread where *another* event loop is running (e.g. a thread of your own, or a worker
  thread of an asyncio application): the call blocks that thread until it returns;
* from inside a running event loop's own thread (a coroutine or callback calling the sync API):
  it works, but it **blocks that loop** for the duration of the call, like any blocking I/O;
  in async code use :mod:`modeldconn.client` (or ``await asyncio.to_thread(sync_call)``).
* The one thing that cannot work - calling the facade from inside the private loop itself
  (i.e. from a callback the facade is running) - raises :class:`RuntimeError` instead of
  deadlocking.

The facade's connector has its own cached connection (it lives in the private loop) and
follows :func:`set_data_root` like the async module API. Objects returned by the facade
(:class:`Session`, :class:`DecodeIterator`) belong to it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from modeldconn import client as _client
from modeldconn.client import EndpointClient as _AsyncEndpointClient
from modeldconn.client import PushSource, Timeouts
from modeldconn.session import DecodeStream
from modeldconn.session import Session as _AsyncSession
from modeldconn.types import (
    ActiveModel,
    Chunk,
    Config,
    ContextReport,
    DecodeConfig,
    DiskStats,
    Health,
    ModelInfo,
    ModelRef,
    NodeModel,
    PrefixInput,
    PrefixStatus,
    PushResult,
    SessionSnapshot,
    Status,
    SuffixInput,
    SuffixStatus,
)

__all__ = [
    "DecodeIterator",
    "EndpointClient",
    "Session",
    "available",
    "backend",
    "close",
    "close_endpoint",
    "data_root",
    "describe",
    "disk_stats",
    "embed",
    "endpoint",
    "list_models",
    "load_model",
    "local_endpoint_addr",
    "open_session",
    "push_model",
    "remove_model",
    "serveable_backend",
    "set_data_root",
    "set_timeouts",
    "status",
    "unload_model",
]

T = TypeVar("T")


class _Runner:
    """One private loop in one daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                t = threading.Thread(target=run, name="modeldconn-sync", daemon=True)
                t.start()
                ready.wait()
                self._loop, self._thread = loop, t
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("modeldconn.sync called from its own event loop thread; use modeldconn.client")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result()
        except concurrent.futures.CancelledError:
            raise
        except KeyboardInterrupt:
            fut.cancel()
            raise

    @property
    def started(self) -> bool:
        with self._lock:
            return self._loop is not None and not self._loop.is_closed()

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()


_runner = _Runner()
_connector = _client.Connector()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return _runner.run(coro)


# --------------------------------------------------------------------------------- sessions


class DecodeIterator(Iterator[Chunk]):
    """Blocking iterator over one Decode stream; ``close()`` (or leaving a ``with``) cancels it."""

    def __init__(self, stream: DecodeStream) -> None:
        self._stream = stream

    def __iter__(self) -> DecodeIterator:
        return self

    def __next__(self) -> Chunk:
        async def step() -> Chunk | None:
            try:
                return await self._stream.__anext__()
            except StopAsyncIteration:
                return None

        chunk = _run(step())
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        _run(self._stream.aclose())

    def __enter__(self) -> DecodeIterator:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def text(self) -> str:
        return "".join(c.text for c in self)


class Session:
    """Blocking twin of :class:`modeldconn.session.Session`; use ``with`` to close it."""

    def __init__(self, inner: _AsyncSession) -> None:
        self._inner = inner

    @property
    def handle(self) -> str:
        return self._inner.handle

    @property
    def endpoint(self) -> str:
        return self._inner.endpoint

    @property
    def instance_id(self) -> str:
        return self._inner.instance_id

    @property
    def closed(self) -> bool:
        return self._inner.closed

    @property
    def aio(self) -> _AsyncSession:
        """The async session (usable only on the facade's loop)."""
        return self._inner

    def __repr__(self) -> str:
        return f"sync.{self._inner!r}"

    def ensure_prefix(self, prefix: PrefixInput | str, *, timeout: float | None = None) -> PrefixStatus:
        return _run(self._inner.ensure_prefix(prefix, timeout=timeout))

    def prefill_suffix(self, suffix: SuffixInput | str, *, timeout: float | None = None) -> SuffixStatus:
        return _run(self._inner.prefill_suffix(suffix, timeout=timeout))

    def decode(self, cfg: DecodeConfig | None = None, *, timeout: float | None = None) -> DecodeIterator:
        return DecodeIterator(self._inner.decode(cfg, timeout=timeout))

    def explain_context(self, *, timeout: float | None = None) -> ContextReport:
        return _run(self._inner.explain_context(timeout=timeout))

    def snapshot(self, *, timeout: float | None = None) -> SessionSnapshot:
        return _run(self._inner.snapshot(timeout=timeout))

    def restore(self, snapshot: SessionSnapshot, *, timeout: float | None = None) -> None:
        _run(self._inner.restore(snapshot, timeout=timeout))

    def close(self, *, timeout: float | None = None) -> None:
        _run(self._inner.close(timeout=timeout))

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if e is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # never mask the error on its way out
            self.close()


class EndpointClient:
    """Blocking twin of :class:`modeldconn.client.EndpointClient`."""

    def __init__(self, inner: _AsyncEndpointClient) -> None:
        self._inner = inner

    @property
    def backend_id(self) -> str:
        return self._inner.backend_id

    @property
    def address(self) -> str:
        return self._inner.address

    @property
    def health(self) -> Health:
        return self._inner.health

    @property
    def instance_id(self) -> str:
        return self._inner.instance_id

    @property
    def backend(self) -> str:
        return self._inner.backend

    def status(self, *, timeout: float | None = None) -> Status:
        return _run(self._inner.status(timeout=timeout))

    def describe(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> ModelInfo:
        return _run(self._inner.describe(ref, cfg, timeout=timeout))

    def open_session(
        self, ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None
    ) -> Session:
        return Session(_run(self._inner.open_session(ref, cfg, timeout=timeout)))

    def load_model(
        self,
        ref: ModelRef,
        cfg: Config | None = None,
        expected_generation: int | None = None,
        *,
        timeout: float | None = None,
    ) -> ActiveModel:
        return _run(self._inner.load_model(ref, cfg, expected_generation, timeout=timeout))

    def unload_model(self, expected_generation: int = 0, *, timeout: float | None = None) -> None:
        _run(self._inner.unload_model(expected_generation, timeout=timeout))

    def embed(
        self, ref: ModelRef, cfg: Config | None, text: str, *, timeout: float | None = None
    ) -> list[float]:
        return _run(self._inner.embed(ref, cfg, text, timeout=timeout))

    def list_models(self, *, timeout: float | None = None) -> list[NodeModel]:
        return _run(self._inner.list_models(timeout=timeout))

    def remove_model(self, name: str, *, timeout: float | None = None) -> None:
        _run(self._inner.remove_model(name, timeout=timeout))

    def disk_stats(self, *, timeout: float | None = None) -> DiskStats:
        return _run(self._inner.disk_stats(timeout=timeout))

    def push_model(
        self,
        source: PushSource,
        name: str,
        type: str,
        *,
        digest: str | None = None,
        format: str = "file",
        timeout: float | None = None,
    ) -> PushResult:
        return _run(self._inner.push_model(source, name, type, digest=digest, format=format, timeout=timeout))


# --------------------------------------------------------------------------------- module API


def set_data_root(root: str | os.PathLike[str] | None) -> None:
    """Same as :func:`modeldconn.client.set_data_root` (shared by both APIs)."""
    _client.set_data_root(root)


def data_root() -> str:
    return _client.data_root()


def set_timeouts(timeouts: Timeouts) -> None:
    """Default deadlines and liveness watch of the facade's connector (the watch settings apply to
    connections it dials afterwards)."""
    _connector.timeouts = timeouts


def available() -> bool:
    return _connector.available()


def backend() -> str:
    return _connector.backend()


def serveable_backend(*, now: float | None = None) -> str:
    return _connector.serveable_backend(now=now)


def status(*, timeout: float | None = None) -> Status:
    return _run(_connector.status(timeout=timeout))


def describe(ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None) -> ModelInfo:
    return _run(_connector.describe(ref, cfg, timeout=timeout))


def open_session(ref: ModelRef, cfg: Config | None = None, *, timeout: float | None = None) -> Session:
    return Session(_run(_connector.open_session(ref, cfg, timeout=timeout)))


def load_model(
    ref: ModelRef,
    cfg: Config | None = None,
    expected_generation: int | None = None,
    *,
    timeout: float | None = None,
) -> ActiveModel:
    return _run(_connector.load_model(ref, cfg, expected_generation, timeout=timeout))


def unload_model(expected_generation: int = 0, *, timeout: float | None = None) -> None:
    _run(_connector.unload_model(expected_generation, timeout=timeout))


def embed(ref: ModelRef, cfg: Config | None, text: str, *, timeout: float | None = None) -> list[float]:
    return _run(_connector.embed(ref, cfg, text, timeout=timeout))


def list_models(*, timeout: float | None = None) -> list[NodeModel]:
    return _run(_connector.list_models(timeout=timeout))


def remove_model(name: str, *, timeout: float | None = None) -> None:
    _run(_connector.remove_model(name, timeout=timeout))


def disk_stats(*, timeout: float | None = None) -> DiskStats:
    return _run(_connector.disk_stats(timeout=timeout))


def push_model(
    source: PushSource,
    name: str,
    type: str,
    *,
    digest: str | None = None,
    format: str = "file",
    timeout: float | None = None,
) -> PushResult:
    return _run(_connector.push_model(source, name, type, digest=digest, format=format, timeout=timeout))


def local_endpoint_addr(*, timeout: float | None = None) -> str:
    return _run(_connector.local_endpoint_addr(timeout=timeout))


def endpoint(addr: str, backend_id: str | None = None, *, timeout: float | None = None) -> EndpointClient:
    return EndpointClient(_run(_connector.endpoint(addr, backend_id, timeout=timeout)))


def close_endpoint(backend_id: str) -> None:
    _run(_connector.close_endpoint(backend_id))


def close() -> None:
    """Close the facade's connections (its sessions end) and stop its thread; the facade starts
    again on the next call."""
    if not _runner.started:
        return
    with contextlib.suppress(RuntimeError):
        _run(_connector.aclose())
    _runner.stop()


atexit.register(close)
