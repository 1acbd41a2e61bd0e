"""The method table against wire.md §2, restated here independently."""

from __future__ import annotations

from modeldconn.wire import fence, methods
from modeldconn.wire._gen.contenox.transport.v1 import compute_pb2 as pb

# name: (kind, request, response, fenced, handle-checked) — wire.md §2
TABLE = {
    "Health": ("unary", pb.HealthReq, pb.HealthResp, False, False),
    "Status": ("unary", pb.StatusReq, pb.DaemonStatus, True, False),
    "LoadModel": ("unary", pb.LoadModelReq, pb.ActiveModel, True, False),
    "UnloadModel": ("unary", pb.UnloadModelReq, pb.UnloadModelResp, True, False),
    "OpenSession": ("unary", pb.OpenSessionReq, pb.OpenSessionResp, True, False),
    "Describe": ("unary", pb.OpenSessionReq, pb.DescribeResp, True, False),
    "Embed": ("unary", pb.EmbedReq, pb.EmbedResp, True, False),
    "EnsurePrefix": ("unary", pb.EnsurePrefixReq, pb.PrefixStatus, True, True),
    "PrefillSuffix": ("unary", pb.PrefillSuffixReq, pb.SuffixStatus, True, True),
    "ExplainContext": ("unary", pb.ExplainReq, pb.ContextReport, True, True),
    "Snapshot": ("unary", pb.SnapshotReq, pb.SessionSnapshot, True, True),
    "Restore": ("unary", pb.RestoreReq, pb.RestoreResp, True, True),
    "CloseSession": ("unary", pb.CloseReq, pb.CloseResp, True, False),
    "ListModels": ("unary", pb.ListModelsReq, pb.ListModelsResp, True, False),
    "RemoveModel": ("unary", pb.RemoveModelReq, pb.RemoveModelResp, True, False),
    "DiskStats": ("unary", pb.DiskStatsReq, pb.NodeDiskStats, True, False),
    "Decode": ("server_stream", pb.DecodeReq, pb.WireChunk, True, True),
    "PushModel": ("client_stream", pb.PushModelChunk, pb.PushModelResp, True, False),
}


def test_codec_method_table_matches_wire_md() -> None:
    assert [m.name for m in methods.METHODS] == list(TABLE)
    for m in methods.METHODS:
        kind, req, resp, fenced, handle = TABLE[m.name]
        assert (m.kind.value, m.request, m.response, m.fenced, m.handle_checked) == (
            kind,
            req,
            resp,
            fenced,
            handle,
        )
        assert m.path == f"/contenox.transport.v1.Compute/{m.name}"
        assert methods.method_for_path(m.path) is m
        assert methods.method(m.name) is m
    assert methods.method_for_path("/contenox.transport.v1.Compute/Nope") is None


def test_codec_fence_rules() -> None:
    assert fence.CONTENT_TYPE == "application/grpc+contenoxtransportjson"
    assert fence.MAX_MESSAGE_BYTES == 536870912 and fence.PUSH_CHUNK_BYTES == 4194304
    assert fence.fence_ok([], "")
    assert fence.fence_ok(["x", "y"], "")
    assert fence.fence_ok(["iid"], "iid")
    assert not fence.fence_ok([], "iid")
    assert not fence.fence_ok(["iid", "iid"], "iid")
    assert not fence.fence_ok([""], "iid")
    assert not fence.fence_ok(["other"], "iid")
    assert fence.handle_instance_ok("iid/1/1", "iid")
    assert not fence.handle_instance_ok("other/1/1", "iid")
    assert not fence.handle_instance_ok("", "iid")
    assert not fence.handle_instance_ok("iid", "iid")
    assert fence.handle_instance_ok("/1", "")
