"""The optional operations across the driver protocol (modeld_contract.connectors.extensions, the
reference driver's serve loop, the subprocess connector): who offers what, and what a connector
without an operation gets — never a stand-in of ours."""

from __future__ import annotations

import inspect
import io
import json
import sys
import types
from typing import Any

import pytest
from modeld_contract.connectors import extensions
from modeld_contract.connectors.extensions import (
    PUSH_OPS,
    TARGET_OPS,
    FailingPushConnector,
    FailingReader,
    NodeTarget,
    TargetedConnector,
    failing_push,
    offers_push,
    target_ops,
)
from modeld_contract.connectors.inprocess import InProcessConnector
from modeld_contract.connectors.protocol import (
    OPTIONAL_OPS,
    UNSUPPORTED,
    ConnectorError,
    OperationUnsupported,
)
from modeld_contract.connectors.subprocess import DriverProcess, SubprocessConnector
from modeld_contract.drivers._serve import serve


def _serve(make: Any, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    inp = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    out = io.StringIO()
    assert serve(make, "test", stdin=inp, stdout=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


class _BaseOnly:
    """A Connector with the base operations only (what the serve loop needs of one here)."""

    name = "base-only"

    def configure(self, data_root: str, env: Any = None) -> None:
        return None

    def ensure_prefix(self, session: str, prefix: Any, timeout: float | None = None) -> Any:
        return {}

    def close_session(self, session: str, timeout: float | None = None) -> None:
        return None

    def probe(self, timeout: float | None = None) -> Any:
        return {"state": "not-running"}

    def close(self) -> None:
        return None


def test_the_reference_driver_offers_push_and_the_targeted_api() -> None:
    import modeldconn

    answers = _serve(lambda: InProcessConnector(modeldconn, name="modeldconn"), {"id": 1, "op": "shutdown"})
    hello = answers[0]
    assert hello["hello"] == "modeld-driver"
    assert set(PUSH_OPS) | set(TARGET_OPS) <= set(hello["ops"])
    assert answers[1] == {"id": 1, "ok": True, "result": None}


def test_a_connector_without_them_offers_none_and_answers_unsupported() -> None:
    target = {"backend_id": "b", "addr": "127.0.0.1:1"}
    answers = _serve(
        _BaseOnly,
        {"id": 1, "op": "push_model", "args": {"name": "m", "type": "llama", "data": ""}},
        {"id": 2, "op": "target_status", "args": {"target": target}},
        {"id": 3, "op": "no_such_op", "args": {}},
        {"id": 4, "op": "probe", "args": {}},
    )
    assert not (set(PUSH_OPS) | set(TARGET_OPS)) & set(answers[0]["ops"])
    for a in answers[1:4]:
        assert a["ok"] is False and a["error"]["kind"] == UNSUPPORTED, a
    assert answers[4] == {"id": 4, "ok": True, "result": {"state": "not-running"}}


def test_bad_base64_is_the_harness_error_not_a_push() -> None:
    import modeldconn

    answers = _serve(
        lambda: InProcessConnector(modeldconn, name="modeldconn"),
        {"id": 1, "op": "push_model", "args": {"name": "m", "type": "llama", "data": "***"}},
    )
    assert answers[1]["ok"] is False and answers[1]["error"]["kind"] == "error"
    assert "base64" in answers[1]["error"]["message"]


def test_the_extension_finders() -> None:
    import modeldconn

    conn = InProcessConnector(modeldconn, name="modeldconn")
    assert target_ops(conn) is conn and failing_push(conn) is conn
    assert all(conn.supports(op) for op in OPTIONAL_OPS) and conn.supports("status")
    assert target_ops(_BaseOnly()) is None and failing_push(_BaseOnly()) is None
    bare = InProcessConnector(object(), name="bare")
    assert target_ops(bare) is None and failing_push(bare) is None
    assert not any(bare.supports(op) for op in OPTIONAL_OPS)
    assert offers_push(conn) and not offers_push(bare) and not offers_push(_BaseOnly())


def test_a_module_with_push_but_no_endpoint_offers_push_only() -> None:
    import modeldconn

    push_only = types.SimpleNamespace(push_model=modeldconn.push_model, endpoint=modeldconn.endpoint)
    conn = InProcessConnector(push_only, name="push-only")
    assert offers_push(conn) and failing_push(conn) is conn
    # endpoint without close_endpoint: the targeted API is not offered at all
    assert target_ops(conn) is None and not any(conn.supports(op) for op in TARGET_OPS)
    with pytest.raises(OperationUnsupported):
        conn.target_status(NodeTarget("127.0.0.1:1", "b"), timeout=1.0)


def test_the_optional_ops_are_the_extensions_with_their_signatures() -> None:
    assert set(OPTIONAL_OPS) == set(PUSH_OPS) | set(TARGET_OPS)
    assert len(OPTIONAL_OPS) == len(set(OPTIONAL_OPS))
    for op in TARGET_OPS:
        want = inspect.signature(getattr(TargetedConnector, op))
        assert inspect.signature(getattr(InProcessConnector, op)) == want, op
        assert inspect.signature(getattr(SubprocessConnector, op)) == want, op
    push = inspect.signature(FailingPushConnector.push_model)
    assert inspect.signature(InProcessConnector.push_model) == push
    assert "fail_after" in push.parameters
    assert push.parameters["fail_after"].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_driver_whose_hello_has_no_ops_offers_the_base_ops_only(tmp_path: Any) -> None:
    script = tmp_path / "old_driver.py"
    script.write_text(
        "import json, sys\n"
        "print(json.dumps({'hello': 'modeld-driver', 'protocol': 1, 'name': 'old'}), flush=True)\n"
        "for line in sys.stdin:\n"
        "    r = json.loads(line)\n"
        "    print(json.dumps({'id': r['id'], 'ok': True, 'result': None}), flush=True)\n"
        "    if r['op'] == 'shutdown':\n"
        "        break\n"
    )
    proc = DriverProcess(f"{sys.executable} {script}")
    try:
        conn = SubprocessConnector(proc.command, proc)
        assert conn.supports("status") and not conn.supports("push_model")
        assert not any(conn.supports(op) for op in TARGET_OPS)
        with pytest.raises(OperationUnsupported):
            conn.push_model("m", "llama", b"x")
        with pytest.raises(OperationUnsupported):
            conn.endpoint(NodeTarget("127.0.0.1:1", "b"))
        assert target_ops(conn) is None and failing_push(conn) is None
    finally:
        proc.shutdown()


def test_failing_reader_yields_its_bytes_then_fails() -> None:
    r = FailingReader(b"abcdefgh", 5)
    assert r.read(3) == b"abc"
    assert r.read(10) == b"de"
    with pytest.raises(OSError):
        r.read(1)
    assert not r.seekable()


def test_node_target_round_trip() -> None:
    t = NodeTarget("127.0.0.1:5", "row-7")
    assert t.to_json() == {"backend_id": "row-7", "addr": "127.0.0.1:5"}
    assert NodeTarget.from_json(t.to_json()) == t


def test_unsupported_is_a_connector_error_of_its_own_kind() -> None:
    err = ConnectorError.from_json({"kind": UNSUPPORTED, "message": "no"})
    assert isinstance(err, OperationUnsupported) and err.kind == UNSUPPORTED
    assert extensions.PUSH_OPS == ("push_model",)


class _FakeNode:
    """A node client that records the deadline each call was given."""

    instance_id, backend, ready = "inst-1", "llama", True

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.closed = 0

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        self.timeouts.append(timeout)
        return {"owner_instance_id": self.instance_id}

    def open_session(self, ref: Any, cfg: Any, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        node = self

        class _Sess:
            def close(self) -> None:
                node.closed += 1

        return _Sess()


def test_targeted_calls_share_one_deadline_and_join_the_adapters_sessions() -> None:
    node = _FakeNode()
    seen: list[tuple[str, str, float | None]] = []

    def endpoint(addr: str, backend_id: str, timeout: float | None = None) -> _FakeNode:
        seen.append((addr, backend_id, timeout))
        return node

    module = types.SimpleNamespace(endpoint=endpoint, close_endpoint=lambda backend_id: None)
    conn = InProcessConnector(module, name="fake")
    target = NodeTarget("127.0.0.1:7", "row-1")
    assert conn.endpoint(target, timeout=4.0) == {"instance_id": "inst-1", "backend": "llama", "ready": True}
    assert conn.target_status(target, timeout=4.0) == {"owner_instance_id": "inst-1"}
    assert seen == [("127.0.0.1:7", "row-1", 4.0)] * 2
    left = node.timeouts[0]
    assert left is not None and 0 < left <= 4.0
    assert conn.target_status(target) == {"owner_instance_id": "inst-1"}
    assert node.timeouts[1] is None  # no caller deadline: none invented
    sid = conn.target_open_session(target, {"model_name": "m", "type": "llama"}, {"NumCtx": 8}, timeout=4.0)
    conn.close_session(sid)
    assert node.closed == 1
    with pytest.raises(OperationUnsupported):
        conn.target_list_models(target, timeout=1.0)
