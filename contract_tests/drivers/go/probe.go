package main

// The probe the Go connector itself runs. modeldconn resolves the daemon with
// runtime/internal/modeldprobe (detector().Probe(ctx)), and Go's internal-package
// rule forbids importing that package from this module. The `probe` op must
// report what that very probe found — not a lease read of our own — so the
// driver links to the upstream symbols by name: modeldconn's own detector
// constructor (the data root the connector uses), Detector.Probe, State.String
// and the four typed errors. Nothing here re-implements discovery.
//
// probeStatus mirrors modeldprobe.Status field for field (State is an int
// enum); go.sum pins the module, and driver_test.go checks the mirror against
// the connector's own answers, so a layout change fails the driver's test
// instead of producing wrong answers.

import (
	"context"
	"unsafe"
)

type probeStatus struct {
	State    int
	Binary   string
	Endpoint string
	Instance string
	Backend  string
}

//go:linkname upstreamDetector github.com/contenox/runtime/runtime/modelrepo/modeldconn.detector
func upstreamDetector() unsafe.Pointer

//go:linkname detectorProbe github.com/contenox/runtime/runtime/internal/modeldprobe.(*Detector).Probe
func detectorProbe(d unsafe.Pointer, ctx context.Context) probeStatus

//go:linkname probeStateString github.com/contenox/runtime/runtime/internal/modeldprobe.State.String
func probeStateString(s int) string

//go:linkname errNotInstalled github.com/contenox/runtime/runtime/internal/modeldprobe.ErrNotInstalled
var errNotInstalled error

//go:linkname errNotRunning github.com/contenox/runtime/runtime/internal/modeldprobe.ErrNotRunning
var errNotRunning error

//go:linkname errStale github.com/contenox/runtime/runtime/internal/modeldprobe.ErrStale
var errStale error

//go:linkname errUnreachable github.com/contenox/runtime/runtime/internal/modeldprobe.ErrUnreachable
var errUnreachable error

// probeErrors: the probe's typed errors and the state each stands for
// (modeldprobe.Status.Err); errors.Is decides.
func probeErrors() []struct {
	state string
	err   error
} {
	return []struct {
		state string
		err   error
	}{
		{"not-installed", errNotInstalled},
		{"not-running", errNotRunning},
		{"stale", errStale},
		{"unreachable", errUnreachable},
	}
}

// realProbe runs the connector's probe: modeldprobe.New(<modeldconn's data
// root>).Probe(ctx), exactly what every lease-resolved call runs first.
func realProbe(ctx context.Context) probeStatus {
	return detectorProbe(upstreamDetector(), ctx)
}

// probeAnswer is the `probe` op's result: the probe's own fields.
func probeAnswer(st probeStatus) map[string]any {
	return map[string]any{
		"state":    probeStateString(st.State),
		"endpoint": st.Endpoint,
		"instance": st.Instance,
		"backend":  st.Backend,
	}
}
