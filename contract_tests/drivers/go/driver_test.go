package main

// The probe the driver reports (probe.go) is reached by symbol name with a
// mirrored result type. These tests pin that mirror to the connector's own
// behaviour: for each discovery state the probe's fields are compared with an
// independent source (the lease written here, the served endpoint) and its
// typed error with what a lease-resolved call of modeldconn returns.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/contenox/runtime/liblease"
	"github.com/contenox/runtime/runtime/modelrepo/modeldconn"
	"github.com/contenox/runtime/runtime/transport"
	transportgrpc "github.com/contenox/runtime/runtime/transport/grpc"
)

const testInstance = "11111111-2222-4333-8444-555555555555"

func writeLease(t *testing.T, root string, renewed time.Time, meta map[string]string) {
	t.Helper()
	b, err := json.MarshalIndent(liblease.Record{
		InstanceID: testInstance, PID: os.Getpid(), Host: "test",
		AcquiredAt: renewed, RenewedAt: renewed, TTL: 30 * time.Second, Meta: meta,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "modeld.lease"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func probeIn(t *testing.T, root string) (probeStatus, error) {
	t.Helper()
	modeldconn.SetDataRoot(root)
	t.Cleanup(func() { modeldconn.SetDataRoot("") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := realProbe(ctx)
	_, err := modeldconn.LocalEndpointAddr(ctx)
	return st, err
}

func TestProbeMirrorOfflineStates(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		binary  string
		lease   func(t *testing.T, root string)
		state   string
		wantErr error
		fields  probeStatus
	}{
		{"not installed", "/nonexistent/modeld", nil, "not-installed", errNotInstalled, probeStatus{}},
		{"not running", self, nil, "not-running", errNotRunning, probeStatus{Binary: self}},
		{"stale", self, func(t *testing.T, root string) {
			writeLease(t, root, time.Now().Add(-time.Hour), map[string]string{"endpoint": "127.0.0.1:1"})
		}, "stale", errStale, probeStatus{Binary: self, Instance: testInstance}},
		{"unreachable", self, func(t *testing.T, root string) {
			writeLease(t, root, time.Now(), map[string]string{"backend": "none"})
		}, "unreachable", errUnreachable, probeStatus{Binary: self, Instance: testInstance, Backend: "none"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			t.Setenv("CONTENOX_MODELD_BIN", c.binary)
			if c.lease != nil {
				c.lease(t, root)
			}
			st, err := probeIn(t, root)
			if got := probeStateString(st.State); got != c.state {
				t.Fatalf("state %q, want %q", got, c.state)
			}
			want := c.fields
			want.State = st.State
			if st != want {
				t.Fatalf("probe status %+v, want %+v", st, want)
			}
			if err != c.wantErr || !errors.Is(err, c.wantErr) {
				t.Fatalf("LocalEndpointAddr error %v, want the linked %v", err, c.wantErr)
			}
		})
	}
}

func TestProbeMirrorRunning(t *testing.T) {
	root := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTENOX_MODELD_BIN", self)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := transport.NewMemoryService(transport.WithOwnerFence(testInstance))
	done := make(chan error, 1)
	go func() { done <- transportgrpc.Serve(ctx, lis, svc, testInstance, "llama") }()
	defer func() { cancel(); <-done }()
	addr := lis.Addr().String()
	writeLease(t, root, time.Now(), map[string]string{"endpoint": addr, "backend": "llama"})

	st, err := probeIn(t, root)
	if err != nil {
		t.Fatalf("LocalEndpointAddr: %v", err)
	}
	want := probeStatus{State: st.State, Binary: self, Endpoint: addr, Instance: testInstance, Backend: "llama"}
	if probeStateString(st.State) != "running" || st != want {
		t.Fatalf("probe status %+v (%s), want %+v running", st, probeStateString(st.State), want)
	}
	if ans := probeAnswer(st); ans["endpoint"] != addr || ans["instance"] != testInstance || ans["backend"] != "llama" {
		t.Fatalf("probe answer %v", ans)
	}
}
