"""Broken connectors that mishandle a stream (Decode, PushModel)."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector, SessionWrapper
from modeld_contract.mutants.library._registry import mutant


class _LastChunkLost(SessionWrapper):
    def decode(self, *args: Any, **kw: Any) -> Any:
        return _DropLast(self._inner.decode(*args, **kw))


class _DropLast:
    """Reads one chunk ahead and never hands out the last one."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._held: Any = None
        self._started = False

    def __aiter__(self) -> _DropLast:
        return self

    async def __anext__(self) -> Any:
        if not self._started:
            self._started = True
            self._held = await self._inner.__anext__()
        nxt = await self._inner.__anext__()
        out, self._held = self._held, nxt
        return out

    async def aclose(self) -> None:
        await self._inner.aclose()


@mutant("stream_decode_last_chunk_lost", "streams")
class DecodeLastChunkLost(HookedConnector):
    """Decode reads one chunk ahead and loses the last chunk of the stream."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _LastChunkLost(await super().open_session(*args, **kw))


@mutant("stream_decode_error_chunk_ends_quietly", "streams")
class DecodeErrorChunkEndsQuietly(HookedConnector):
    """An in-stream error chunk is taken for the end of the stream (no error raised)."""

    def chunk(self, method: str, msg: Any) -> Any:
        if method == "Decode" and msg.error:
            msg.error = ""
            msg.error_token = ""
            msg.ClearField("error_detail")
            return None if not msg.text else msg
        return msg


@mutant("stream_decode_chunks_merged", "streams")
class DecodeChunksMerged(HookedConnector):
    """Decode buffers the stream and hands out every two chunks as one."""

    async def open_session(self, *args: Any, **kw: Any) -> Any:
        return _Merging(await super().open_session(*args, **kw))


class _Merging(SessionWrapper):
    def decode(self, *args: Any, **kw: Any) -> Any:
        return _Pairs(self._inner.decode(*args, **kw))


class _Pairs:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __aiter__(self) -> _Pairs:
        return self

    async def __anext__(self) -> Any:
        import dataclasses

        first = await self._inner.__anext__()
        try:
            second = await self._inner.__anext__()
        except StopAsyncIteration:
            return first
        return dataclasses.replace(first, text=first.text + second.text)

    async def aclose(self) -> None:
        await self._inner.aclose()


@mutant("stream_push_deadline_ignored", "streams")
class PushDeadlineIgnored(HookedConnector):
    """PushModel (client stream) ignores the caller's deadline and uses an hour."""

    async def push_model(self, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        return await super().push_model(*args, timeout=3600.0, **kw)
