"""``endpoint(addr)`` failures: the Health error is wrapped (Go ``%w``), so a node that never answers
is still the caller's deadline (``deadline_exceeded``), while a refused connection carries no
sentinel."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from connector_testlib import closed_port, silent_listener

import modeldconn as mc
from modeldconn.wire import errors


@pytest.fixture
async def connector(tmp_path: object) -> AsyncIterator[mc.Connector]:
    c = mc.Connector(str(tmp_path))
    yield c
    await c.aclose()


@pytest.fixture
def silent_addr() -> Iterator[str]:
    with silent_listener() as addr:
        yield addr


async def test_a_silent_node_is_the_callers_deadline(connector: mc.Connector, silent_addr: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(mc.EndpointError, match=r"^modeldconn: health probe ") as info:
        await connector.endpoint(silent_addr, "silent", timeout=0.3)
    took = time.monotonic() - t0
    err = info.value
    assert took >= 0.3, took
    assert err.token == "deadline_exceeded"
    assert list(err.wrapped_tokens()) == ["deadline_exceeded"]
    assert isinstance(err.cause, errors.DeadlineExceeded)
    assert err.code == errors.DeadlineExceeded.code
    # a failed probe is never cached
    with pytest.raises(mc.EndpointError):
        await connector.endpoint(silent_addr, "silent", timeout=0.3)


async def test_a_refused_connection_carries_no_sentinel(connector: mc.Connector) -> None:
    with pytest.raises(mc.EndpointError, match=r"^modeldconn: health probe ") as info:
        await connector.endpoint(closed_port(), "refused", timeout=2.0)
    err = info.value
    assert err.token is None
    assert list(err.wrapped_tokens()) == []
    assert not isinstance(err.cause, errors.SentinelError)


def test_a_node_not_ready_carries_no_sentinel() -> None:
    err = mc.NodeNotReady("modeldconn: node 127.0.0.1:1 reported not ready")
    assert err.token is None and err.cause is None
    assert list(err.wrapped_tokens()) == []
