// Command modeld-go-driver speaks the contract suite's driver protocol
// (docs/driver-protocol.md) on stdin/stdout around the REAL Go connector,
// github.com/contenox/runtime/runtime/modelrepo/modeldconn at v0.36.0 (with its
// wire client runtime/transport/grpc). Every op is one call of that package;
// nothing of the connector is re-implemented here. Errors are typed with
// errors.Is against the real sentinels (runtime/transport, contextasm,
// context) and against the probe's own error values (probe.go: linked by
// name, because runtime/internal/modeldprobe cannot be imported from outside
// the runtime module). PushModel and the targeted API live in targets.go.
//
// Built and cached by contract_tests/drivers/gobuild.py; selected with
// `--modeld-connector=go`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/contenox/runtime/runtime/contextasm"
	"github.com/contenox/runtime/runtime/modelrepo/modeldconn"
	"github.com/contenox/runtime/runtime/transport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	protocolVersion = 1
	runtimeModule   = "github.com/contenox/runtime"
	// resumeFlag marks the image a `reset` re-executed: it answers the reset
	// request (its id follows the flag) instead of saying hello again.
	resumeFlag = "--resume-reset"
	// origEnvVar carries the environment the driver was started with across a
	// reset, so that `configure` env changes of one test do not leak into the next.
	origEnvVar = "MODELD_GO_DRIVER_ORIG_ENV"
)

// sentinels: the wire table's tokens and the Go errors they stand for, in the
// table's order (runtime/transport/grpc/errors.go); errors.Is decides.
var sentinels = []struct {
	token string
	err   error
}{
	{"context_canceled", context.Canceled},
	{"deadline_exceeded", context.DeadlineExceeded},
	{"stale_fence", transport.ErrStaleFence},
	{"not_owner", transport.ErrNotOwner},
	{"session_closed", transport.ErrSessionClosed},
	{"context_overflow", transport.ErrContextOverflow},
	{"session_fatal", transport.ErrSessionFatal},
	{"model_busy", transport.ErrModelBusy},
	{"model_not_active", transport.ErrModelNotActive},
	{"model_switch_required", transport.ErrModelSwitchRequired},
	{"device_busy", transport.ErrDeviceBusy},
	{"model_load_failed", transport.ErrModelLoadFailed},
	{"insufficient_memory", transport.ErrInsufficientMemory},
	{"slot_generation_stale", transport.ErrSlotGenerationStale},
	{"backend_mismatch", transport.ErrBackendMismatch},
	{"unsupported_feature", transport.ErrUnsupportedFeature},
	{"manifest_mismatch", contextasm.ErrManifestMismatch},
	{"model_not_found", transport.ErrModelNotFound},
	{"digest_mismatch", transport.ErrDigestMismatch},
	{"unsupported_model_type", transport.ErrUnsupportedModelType},
}

// ---------------------------------------------------------------- protocol

type request struct {
	ID   json.RawMessage `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

type wireError struct {
	Kind    string         `json:"kind"`
	Message string         `json:"message"`
	Tokens  []string       `json:"tokens"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// ops: every op this driver answers (announced in its hello line).
var ops = []string{
	"configure", "available", "backend", "serveable_backend", "probe", "status", "describe",
	"open_session", "load_model", "unload_model", "embed", "list_models", "remove_model",
	"disk_stats", "ensure_prefix", "prefill_suffix", "decode", "explain_context", "snapshot",
	"restore", "close_session", "push_model", "endpoint", "close_endpoint", "target_status",
	"target_describe", "target_open_session", "target_load_model", "target_unload_model",
	"target_embed", "target_list_models", "target_remove_model", "target_disk_stats",
	"target_push_model", "reset", "shutdown",
}

type driver struct {
	out      *bufio.Writer
	sessions map[string]transport.Session
	seq      int
}

func (d *driver) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"id": nil, "ok": false, "error": wireError{Kind: "error", Message: "marshal: " + err.Error(), Tokens: []string{}}})
	}
	_, _ = d.out.Write(b)
	_ = d.out.WriteByte('\n')
	_ = d.out.Flush()
}

func (d *driver) ok(id json.RawMessage, result any) {
	d.send(map[string]any{"id": id, "ok": true, "result": result})
}

func (d *driver) fail(id json.RawMessage, err error) {
	d.send(map[string]any{"id": id, "ok": false, "error": typed(err)})
}

// harnessError is an error of the driver itself (bad arguments).
type harnessError struct{ msg string }

func (e harnessError) Error() string { return e.msg }

// unsupportedOp: an op this driver does not know (the suite reports the
// clauses needing it as not applicable).
type unsupportedOp struct{ op string }

func (e unsupportedOp) Error() string { return fmt.Sprintf("unknown op %q", e.op) }

// typed maps a Go error to the protocol's error object.
func typed(err error) wireError {
	var he harnessError
	if errors.As(err, &he) {
		return wireError{Kind: "error", Message: he.msg, Tokens: []string{}}
	}
	var uo unsupportedOp
	if errors.As(err, &uo) {
		return wireError{Kind: "unsupported_operation", Message: uo.Error(), Tokens: []string{}}
	}
	for _, p := range probeErrors() {
		if p.err != nil && errors.Is(err, p.err) {
			return wireError{Kind: p.state, Message: err.Error(), Tokens: []string{}}
		}
	}
	tokens := []string{}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			tokens = append(tokens, s.token)
		}
	}
	if len(tokens) > 0 {
		we := wireError{Kind: tokens[0], Message: err.Error(), Tokens: tokens}
		if detail, ok := transport.ContextOverflowDetailFromError(err); ok {
			we.Detail = map[string]any{
				"stage":             detail.Stage,
				"resident_tokens":   detail.ResidentTokens,
				"additional_tokens": detail.AdditionalTokens,
				"num_ctx":           detail.NumCtx,
			}
		}
		return we
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		kind := "transport"
		if st.Code() == codes.Internal {
			kind = "internal"
		}
		return wireError{Kind: kind, Message: err.Error(), Tokens: []string{}}
	}
	return wireError{Kind: "error", Message: err.Error(), Tokens: []string{}}
}

// ---------------------------------------------------------------- arguments

type args struct {
	Timeout            *float64                   `json:"timeout"`
	DataRoot           string                     `json:"data_root"`
	Env                map[string]*string         `json:"env"`
	Model              *modelArg                  `json:"model"`
	Config             json.RawMessage            `json:"config"`
	ExpectedGeneration uint64                     `json:"expected_generation"`
	Text               string                     `json:"text"`
	Name               string                     `json:"name"`
	Session            string                     `json:"session"`
	Prefix             *transport.PrefixInput     `json:"prefix"`
	Suffix             *transport.SuffixInput     `json:"suffix"`
	Snapshot           *transport.SessionSnapshot `json:"snapshot"`
	Type               string                     `json:"type"`
	Digest             *string                    `json:"digest"`
	Format             string                     `json:"format"`
	Data               []byte                     `json:"data"` // base64, as Go's encoding/json reads []byte
	Target             *targetArg                 `json:"target"`
	FailAfter          *int                       `json:"fail_after"`
}

type modelArg struct {
	ModelName string                  `json:"model_name"`
	Type      string                  `json:"type"`
	Digest    string                  `json:"digest"`
	Path      string                  `json:"path"`
	Adapters  []transport.AdapterSpec `json:"adapters"`
}

func (a *args) ref() modeldconn.ModelRef {
	if a.Model == nil {
		return modeldconn.ModelRef{}
	}
	return modeldconn.ModelRef{
		Name: a.Model.ModelName, Type: a.Model.Type, Digest: a.Model.Digest,
		Path: a.Model.Path, Adapters: a.Model.Adapters,
	}
}

func (a *args) config() (transport.Config, error) {
	var cfg transport.Config
	if len(a.Config) > 0 && string(a.Config) != "null" {
		if err := json.Unmarshal(a.Config, &cfg); err != nil {
			return cfg, harnessError{"bad config: " + err.Error()}
		}
	}
	return cfg, nil
}

func (a *args) decodeConfig() (transport.DecodeConfig, error) {
	var cfg transport.DecodeConfig
	if len(a.Config) > 0 && string(a.Config) != "null" {
		if err := json.Unmarshal(a.Config, &cfg); err != nil {
			return cfg, harnessError{"bad decode config: " + err.Error()}
		}
	}
	return cfg, nil
}

// ctx is the caller's deadline (Go's context); none = context.Background(), as
// a Go caller without a deadline would pass.
func (a *args) ctx() (context.Context, context.CancelFunc) {
	if a.Timeout == nil {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), time.Duration(*a.Timeout*float64(time.Second)))
}

// keep names a session for the suite.
func (d *driver) keep(sess transport.Session) string {
	d.seq++
	sid := "go" + strconv.Itoa(d.seq)
	d.sessions[sid] = sess
	return sid
}

func (d *driver) session(sid string) (transport.Session, error) {
	s, ok := d.sessions[sid]
	if !ok {
		return nil, harnessError{fmt.Sprintf("unknown session %q (harness)", sid)}
	}
	return s, nil
}

// ---------------------------------------------------------------- ops

func (d *driver) dispatch(req request) {
	var a args
	if len(req.Args) > 0 && string(req.Args) != "null" {
		if err := json.Unmarshal(req.Args, &a); err != nil {
			d.fail(req.ID, harnessError{"bad args: " + err.Error()})
			return
		}
	}
	ctx, cancel := a.ctx()
	defer cancel()

	switch req.Op {
	case "configure":
		for k, v := range a.Env {
			if v == nil {
				_ = os.Unsetenv(k)
			} else {
				_ = os.Setenv(k, *v)
			}
		}
		modeldconn.SetDataRoot(a.DataRoot)
		d.ok(req.ID, nil)
	case "available":
		d.ok(req.ID, modeldconn.Available())
	case "backend":
		d.ok(req.ID, modeldconn.Backend())
	case "serveable_backend":
		d.ok(req.ID, modeldconn.ServeableBackend())
	case "probe":
		d.ok(req.ID, probeAnswer(realProbe(ctx)))
	case "status":
		d.result(req.ID, wrap(modeldconn.Status(ctx)))
	case "describe":
		cfg, err := a.config()
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.result(req.ID, wrap(modeldconn.Describe(ctx, a.ref(), cfg)))
	case "open_session":
		cfg, err := a.config()
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		sess, err := modeldconn.OpenSession(ctx, a.ref(), cfg)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.ok(req.ID, d.keep(sess))
	case "load_model":
		cfg, err := a.config()
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.result(req.ID, wrap(modeldconn.LoadModel(ctx, a.ref(), cfg, a.ExpectedGeneration)))
	case "unload_model":
		d.result(req.ID, nil, modeldconn.UnloadModel(ctx, a.ExpectedGeneration))
	case "embed":
		cfg, err := a.config()
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		res, err := modeldconn.Embed(ctx, a.ref(), cfg, a.Text)
		if res.Vector == nil {
			res.Vector = []float32{}
		}
		d.result(req.ID, res.Vector, err)
	case "list_models":
		models, err := modeldconn.ListModelsTarget(ctx, modeldconn.ModeldTarget{})
		if models == nil {
			models = []transport.NodeModel{}
		}
		d.result(req.ID, models, err)
	case "remove_model":
		ec, err := localEndpoint(ctx)
		if err == nil {
			err = ec.RemoveModel(ctx, a.Name)
		}
		d.result(req.ID, nil, err)
	case "disk_stats":
		ec, err := localEndpoint(ctx)
		var st transport.NodeDiskStats
		if err == nil {
			st, err = ec.DiskStats(ctx)
		}
		d.result(req.ID, st, err)
	case "ensure_prefix":
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		var in transport.PrefixInput
		if a.Prefix != nil {
			in = *a.Prefix
		}
		d.result(req.ID, wrap(s.EnsurePrefix(ctx, in)))
	case "prefill_suffix":
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		var in transport.SuffixInput
		if a.Suffix != nil {
			in = *a.Suffix
		}
		d.result(req.ID, wrap(s.PrefillSuffix(ctx, in)))
	case "decode":
		d.decode(req.ID, ctx, a)
	case "explain_context":
		// Go's ExplainContext takes no context and has no error channel: a
		// failed call is reported as ContextReport{Closed: true}
		// (transport/grpc/client.go grpcSession.ExplainContext).
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.ok(req.ID, s.ExplainContext())
	case "snapshot":
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.result(req.ID, wrap(s.Snapshot(ctx)))
	case "restore":
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		var snap transport.SessionSnapshot
		if a.Snapshot != nil {
			snap = *a.Snapshot
		}
		d.result(req.ID, nil, s.Restore(ctx, snap))
	case "close_session":
		// Go's Session.Close takes no context (no deadline on the wire).
		s, err := d.session(a.Session)
		if err != nil {
			d.fail(req.ID, err)
			return
		}
		d.result(req.ID, nil, s.Close())
	default:
		if !d.targetOps(req.ID, req.Op, ctx, a) {
			d.fail(req.ID, unsupportedOp{req.Op})
		}
	}
}

type pair struct {
	v   any
	err error
}

func wrap[T any](v T, err error) pair { return pair{v, err} }

// result answers with v, or with err when it is not nil. It takes either a
// pair (from wrap) or a value and an error.
func (d *driver) result(id json.RawMessage, v any, errs ...error) {
	if p, ok := v.(pair); ok {
		v, errs = p.v, []error{p.err}
	}
	for _, err := range errs {
		if err != nil {
			d.fail(id, err)
			return
		}
	}
	d.ok(id, v)
}

// localEndpoint reaches the lease's owner through modeldconn's fenced
// Endpoint path, exactly as ListModelsTarget / PushModelTarget do for the local
// case (modeldconn.go): v0.36.0 has no lease-resolved RemoveModel/DiskStats.
func localEndpoint(ctx context.Context) (modeldconn.EndpointClient, error) {
	addr, err := modeldconn.LocalEndpointAddr(ctx)
	if err != nil {
		return modeldconn.EndpointClient{}, err
	}
	return modeldconn.Endpoint(ctx, "local", addr)
}

func (d *driver) decode(id json.RawMessage, ctx context.Context, a args) {
	s, err := d.session(a.Session)
	if err != nil {
		d.fail(id, err)
		return
	}
	cfg, err := a.decodeConfig()
	if err != nil {
		d.fail(id, err)
		return
	}
	ch, err := s.Decode(ctx, cfg)
	if err != nil {
		d.ok(id, map[string]any{"error": typed(err)})
		return
	}
	var streamErr error
	for c := range ch {
		chunk := map[string]any{}
		if c.Text != "" {
			chunk["text"] = c.Text
		}
		if c.Thinking != "" {
			chunk["thinking"] = c.Thinking
		}
		if len(c.ToolCalls) > 0 {
			chunk["tool_calls"] = c.ToolCalls
		}
		if c.Error != nil {
			if streamErr == nil {
				streamErr = c.Error
			}
			if len(chunk) == 0 {
				continue
			}
		}
		d.send(map[string]any{"id": id, "chunk": chunk})
	}
	if streamErr != nil {
		d.ok(id, map[string]any{"error": typed(streamErr)})
		return
	}
	d.ok(id, map[string]any{"error": nil})
}

// ---------------------------------------------------------------- start-up

func connectorName() string {
	version := "?"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == runtimeModule {
				version = dep.Version
			}
		}
	}
	return fmt.Sprintf("%s/runtime/modelrepo/modeldconn@%s (Go, real connector)", runtimeModule, version)
}

// reexec replaces the process image with a fresh one (same pid, same
// stdin/stdout pipes, the original environment): Go's modeldconn keeps its
// connection and caches in package state and has no Close, so a fresh
// connector is a fresh process. Go's sockets are close-on-exec: every
// connection of the old connector ends, and the daemon closes its sessions.
// Whatever the stdin scanner has buffered is lost with the old image: the
// protocol sends the next request only after this one's answer, so there is
// none.
func reexec(id json.RawMessage, origEnv []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append([]string{}, origEnv...)
	envJSON, _ := json.Marshal(origEnv)
	env = append(env, origEnvVar+"="+string(envJSON))
	flushCoverage()
	return syscall.Exec(self, []string{self, resumeFlag, string(id)}, env)
}

func main() {
	origEnv := os.Environ()
	var resumeID json.RawMessage
	if len(os.Args) == 3 && os.Args[1] == resumeFlag {
		resumeID = json.RawMessage(os.Args[2])
	}
	if raw := os.Getenv(origEnvVar); raw != "" {
		var saved []string
		if json.Unmarshal([]byte(raw), &saved) == nil {
			origEnv = saved
		}
		_ = os.Unsetenv(origEnvVar)
	}

	d := &driver{out: bufio.NewWriter(os.Stdout), sessions: map[string]transport.Session{}}
	if resumeID != nil {
		d.ok(resumeID, nil)
	} else {
		d.send(map[string]any{"hello": "modeld-driver", "protocol": protocolVersion, "name": connectorName(), "ops": ops})
	}

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	for in.Scan() {
		line := in.Bytes()
		if len(line) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil || req.Op == "" {
			d.send(map[string]any{"id": nil, "ok": false, "error": wireError{Kind: "error", Message: fmt.Sprintf("bad request: %v", err), Tokens: []string{}}})
			continue
		}
		switch req.Op {
		case "shutdown":
			d.ok(req.ID, nil)
			os.Exit(0) // runs the exit hooks (a cover build writes its counters there)
		case "reset":
			if err := reexec(req.ID, origEnv); err != nil {
				// Not reached on Linux; keep serving with the sessions closed.
				fmt.Fprintf(os.Stderr, "modeld-go-driver: re-exec failed: %v\n", err)
				for _, s := range d.sessions {
					_ = s.Close()
				}
				d.sessions = map[string]transport.Session{}
				d.ok(req.ID, nil)
			}
		default:
			d.dispatch(req)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "modeld-go-driver: stdin: %v\n", err)
		os.Exit(1)
	}
}
