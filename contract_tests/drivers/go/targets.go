package main

// PushModel and the targeted API: the connector reaching one node by address
// (modeldconn.Endpoint, cached per backend id apart from the lease-resolved
// cache) instead of through the lease. Where upstream has a *Target helper
// (OpenSessionTarget, DescribeTarget, EmbedTarget, ListModelsTarget,
// PushModelTarget) the op calls it; the other ops call the EndpointClient's
// methods with the request a Go caller would build from its health answer.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"

	"github.com/contenox/runtime/runtime/modelrepo/modeldconn"
	"github.com/contenox/runtime/runtime/transport"
)

type targetArg struct {
	BackendID string `json:"backend_id"`
	Addr      string `json:"addr"`
}

func (a *args) target() (modeldconn.ModeldTarget, error) {
	if a.Target == nil || a.Target.Addr == "" {
		return modeldconn.ModeldTarget{}, harnessError{"a targeted op needs target.addr"}
	}
	return modeldconn.ModeldTarget{BackendID: a.Target.BackendID, Endpoint: a.Target.Addr}, nil
}

// manifest is the PushManifest a Go caller hands PushModel for these bytes:
// the digest it was given, else the sha256 it computes of the content (the
// connector sends the manifest as given; it computes nothing itself).
func (a *args) manifest() transport.PushManifest {
	digest := ""
	if a.Digest != nil {
		digest = *a.Digest
	} else {
		sum := sha256.Sum256(a.Data)
		digest = hex.EncodeToString(sum[:])
	}
	format := a.Format
	if format == "" {
		format = "file"
	}
	return transport.PushManifest{
		Name: a.Name, Type: a.Type, Digest: digest, TotalBytes: int64(len(a.Data)),
		Format: transport.PushFormat(format),
	}
}

// errSourceFailed: the caller's model source breaking mid-push (`fail_after`).
var errSourceFailed = errors.New("modeld-contract: the caller's model source failed")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errSourceFailed }

// pushSource: the bytes to push, as the reader a Go caller hands PushModel;
// with fail_after, the reader fails after that many bytes.
func (a *args) pushSource() io.Reader {
	if a.FailAfter == nil {
		return bytes.NewReader(a.Data)
	}
	n := min(max(*a.FailAfter, 0), len(a.Data))
	return io.MultiReader(bytes.NewReader(a.Data[:n]), failingReader{})
}

func pushAnswer(r transport.PushResult) map[string]any {
	return map[string]any{"already_present": r.AlreadyPresent, "bytes_written": r.BytesWritten}
}

func healthAnswer(h modeldconn.EndpointHealth) map[string]any {
	return map[string]any{"instance_id": h.InstanceID, "backend": h.Backend, "ready": h.Ready}
}

// targetOps answers the ops of this file; false when op is not one of them.
func (d *driver) targetOps(id json.RawMessage, op string, ctx context.Context, a args) bool {
	switch op {
	case "push_model":
		res, err := modeldconn.PushModelTarget(ctx, modeldconn.ModeldTarget{}, a.manifest(), a.pushSource())
		d.result(id, pushAnswer(res), err)
		return true
	case "endpoint", "close_endpoint", "target_status", "target_describe", "target_open_session",
		"target_load_model", "target_unload_model", "target_embed", "target_list_models",
		"target_remove_model", "target_disk_stats", "target_push_model":
	default:
		return false
	}
	t, err := a.target()
	if err != nil {
		d.fail(id, err)
		return true
	}
	switch op {
	case "endpoint":
		ec, err := modeldconn.Endpoint(ctx, t.BackendID, t.Endpoint)
		d.result(id, healthAnswer(ec.EndpointHealth), err)
	case "close_endpoint":
		modeldconn.CloseEndpoint(t.BackendID)
		d.ok(id, nil)
	case "target_describe":
		cfg, err := a.config()
		if err == nil {
			d.result(id, wrap(modeldconn.DescribeTarget(ctx, t, a.ref(), cfg)))
		} else {
			d.fail(id, err)
		}
	case "target_open_session":
		cfg, err := a.config()
		if err != nil {
			d.fail(id, err)
			return true
		}
		sess, err := modeldconn.OpenSessionTarget(ctx, t, a.ref(), cfg)
		if err != nil {
			d.fail(id, err)
			return true
		}
		d.ok(id, d.keep(sess))
	case "target_embed":
		cfg, err := a.config()
		if err != nil {
			d.fail(id, err)
			return true
		}
		res, err := modeldconn.EmbedTarget(ctx, t, a.ref(), cfg, a.Text)
		if res.Vector == nil {
			res.Vector = []float32{}
		}
		d.result(id, res.Vector, err)
	case "target_list_models":
		models, err := modeldconn.ListModelsTarget(ctx, t)
		if models == nil {
			models = []transport.NodeModel{}
		}
		d.result(id, models, err)
	case "target_push_model":
		res, err := modeldconn.PushModelTarget(ctx, t, a.manifest(), a.pushSource())
		d.result(id, pushAnswer(res), err)
	default:
		d.endpointClientOp(id, op, ctx, t, a)
	}
	return true
}

// endpointClientOp: the targeted calls upstream has no *Target helper for.
func (d *driver) endpointClientOp(id json.RawMessage, op string, ctx context.Context, t modeldconn.ModeldTarget, a args) {
	ec, err := modeldconn.Endpoint(ctx, t.BackendID, t.Endpoint)
	if err != nil {
		d.fail(id, err)
		return
	}
	fence := transport.Fence{OwnerInstanceID: ec.InstanceID}
	switch op {
	case "target_status":
		d.result(id, wrap(ec.Status(ctx)))
	case "target_load_model":
		cfg, err := a.config()
		if err != nil {
			d.fail(id, err)
			return
		}
		ref := a.ref()
		d.result(id, wrap(ec.LoadModel(ctx, transport.LoadModelRequest{
			Fence: fence, ModelName: ref.Name, Type: ref.Type, Digest: ref.Digest, Path: ref.Path,
			Config: cfg, Adapters: ref.Adapters, ExpectedGeneration: a.ExpectedGeneration,
		})))
	case "target_unload_model":
		d.result(id, nil, ec.UnloadModel(ctx, transport.UnloadModelRequest{
			Fence: fence, ExpectedGeneration: a.ExpectedGeneration,
		}))
	case "target_remove_model":
		d.result(id, nil, ec.RemoveModel(ctx, a.Name))
	case "target_disk_stats":
		d.result(id, wrap(ec.DiskStats(ctx)))
	default:
		d.fail(id, harnessError{"unhandled targeted op " + op})
	}
}
