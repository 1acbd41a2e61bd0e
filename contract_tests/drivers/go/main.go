// Command modeld-go-driver speaks the contract suite's driver protocol
// (docs/driver-protocol.md) on stdin/stdout around the REAL Go connector,
// github.com/contenox/runtime/runtime/modelrepo/modeldconn at v0.36.0 (with its
// wire client runtime/transport/grpc). Every op is one call of that package;
// nothing of the connector is re-implemented here. Errors are typed with
// errors.Is against the real sentinels (runtime/transport, contextasm,
// context) and against the probe's own error values (captured at start-up
// from modeldconn itself, because runtime/internal/modeldprobe cannot be
// imported from outside the runtime module).
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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/contenox/runtime/liblease"
	"github.com/contenox/runtime/runtime/contextasm"
	"github.com/contenox/runtime/runtime/modelrepo/modeldconn"
	"github.com/contenox/runtime/runtime/transport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	protocolVersion = 1
	runtimeModule   = "github.com/contenox/runtime"
	leaseFileName   = "modeld.lease"
	binaryEnv       = "CONTENOX_MODELD_BIN"
	dataRootEnv     = "CONTENOX_DATA_ROOT"
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

// probeErrs: the probe's typed errors (modeldprobe.ErrNotInstalled, …), the
// very values modeldconn returns, captured by captureProbeErrors.
var probeErrs = []struct {
	state string
	text  string // the Go text, to check the capture
	err   error
}{
	{"not-installed", "modeld is not installed", nil},
	{"not-running", "modeld is not running", nil},
	{"stale", "modeld owner is stale (the daemon may have crashed)", nil},
	{"unreachable", "modeld holds a lease but does not answer a health probe", nil},
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

type driver struct {
	out      *bufio.Writer
	dataRoot string
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

// harnessError is an error of the driver itself (bad arguments, unknown op).
type harnessError struct{ msg string }

func (e harnessError) Error() string { return e.msg }

// typed maps a Go error to the protocol's error object.
func typed(err error) wireError {
	var he harnessError
	if errors.As(err, &he) {
		return wireError{Kind: "error", Message: he.msg, Tokens: []string{}}
	}
	for _, p := range probeErrs {
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
		d.dataRoot = a.DataRoot
		modeldconn.SetDataRoot(a.DataRoot)
		d.ok(req.ID, nil)
	case "available":
		d.ok(req.ID, modeldconn.Available())
	case "backend":
		d.ok(req.ID, modeldconn.Backend())
	case "serveable_backend":
		d.ok(req.ID, modeldconn.ServeableBackend())
	case "probe":
		d.ok(req.ID, d.probe(ctx))
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
		d.seq++
		sid := "go" + strconv.Itoa(d.seq)
		d.sessions[sid] = sess
		d.ok(req.ID, sid)
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
		d.fail(req.ID, harnessError{fmt.Sprintf("unknown op %q", req.Op)})
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

// probe: modeldconn has no exported Probe; LocalEndpointAddr is the exported
// function that runs detector().Probe(ctx) and returns its endpoint or its
// typed error. The instance is read from the same lease (liblease.Inspect, the
// reader modeldprobe uses); the backend from modeldconn.Backend().
func (d *driver) probe(ctx context.Context) map[string]any {
	out := map[string]any{"state": "running", "endpoint": "", "instance": "", "backend": ""}
	addr, err := modeldconn.LocalEndpointAddr(ctx)
	if err != nil {
		w := typed(err)
		out["state"] = w.Kind
		return out
	}
	out["endpoint"] = addr
	if rec, lerr := liblease.Inspect(filepath.Join(d.root(), leaseFileName)); lerr == nil {
		out["instance"] = rec.InstanceID
	}
	out["backend"] = modeldconn.Backend()
	return out
}

func (d *driver) root() string {
	if d.dataRoot != "" {
		return d.dataRoot
	}
	if r := os.Getenv(dataRootEnv); r != "" {
		return r
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".contenox"
	}
	return filepath.Join(home, ".contenox")
}

// ---------------------------------------------------------------- start-up

// captureProbeErrors obtains the probe's sentinel error values from modeldconn
// itself: four offline data-root states (no binary; a binary and no lease; a
// lapsed lease; a fresh lease without an endpoint — none dials) make
// LocalEndpointAddr return modeldprobe's ErrNotInstalled / ErrNotRunning /
// ErrStale / ErrUnreachable. Each captured value is checked against the Go text.
func captureProbeErrors() error {
	tmp, err := os.MkdirTemp("", "modeld-go-driver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	savedBin, hadBin := os.LookupEnv(binaryEnv)
	defer func() {
		if hadBin {
			_ = os.Setenv(binaryEnv, savedBin)
		} else {
			_ = os.Unsetenv(binaryEnv)
		}
		modeldconn.SetDataRoot("")
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	lease := filepath.Join(tmp, leaseFileName)
	writeLease := func(renewed time.Time, meta map[string]string) error {
		b, err := json.MarshalIndent(liblease.Record{
			InstanceID: "00000000-0000-4000-8000-000000000000", PID: os.Getpid(), Host: "driver",
			AcquiredAt: renewed, RenewedAt: renewed, TTL: 30 * time.Second, Meta: meta,
		}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(lease, b, 0o600)
	}
	steps := []func() error{
		func() error { return os.Setenv(binaryEnv, filepath.Join(tmp, "no-such", "modeld")) },
		func() error { return os.Setenv(binaryEnv, self) },
		func() error { return writeLease(time.Now().Add(-time.Hour), nil) },
		func() error { return writeLease(time.Now(), map[string]string{"backend": "none"}) },
	}
	modeldconn.SetDataRoot(tmp)
	for i, step := range steps {
		if err := step(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, got := modeldconn.LocalEndpointAddr(ctx)
		cancel()
		if got == nil || got.Error() != probeErrs[i].text {
			return fmt.Errorf("capturing the probe error %q: got %v", probeErrs[i].state, got)
		}
		probeErrs[i].err = got
	}
	return nil
}

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
func reexec(id json.RawMessage, origEnv []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append([]string{}, origEnv...)
	envJSON, _ := json.Marshal(origEnv)
	env = append(env, origEnvVar+"="+string(envJSON))
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
	if err := captureProbeErrors(); err != nil {
		fmt.Fprintf(os.Stderr, "modeld-go-driver: %v\n", err)
		os.Exit(3)
	}
	if resumeID != nil {
		d.ok(resumeID, nil)
	} else {
		d.send(map[string]any{"hello": "modeld-driver", "protocol": protocolVersion, "name": connectorName()})
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
			os.Exit(0)
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
