// Command modeld-go-memserver is the reverse check's target: the REAL gRPC
// transport server of github.com/contenox/runtime v0.36.0
// (runtime/transport/grpc.Serve: its codec, fencing, session handles, error
// encoding) around the module's own in-memory transport.Service
// (transport.NewMemoryService, fenced to the lease's instance), discoverable
// through a lease written by the real lease library (liblease.Acquire, meta
// "endpoint" and "backend", renewed every ttl/3, released on exit).
//
// It prints one JSON line on stdout once it serves:
// {"endpoint": "127.0.0.1:PORT", "instance_id": "…", "lease": "<data root>/modeld.lease"}
// and stops (releasing the lease) on SIGTERM/SIGINT or when stdin closes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/contenox/runtime/liblease"
	"github.com/contenox/runtime/runtime/transport"
	transportgrpc "github.com/contenox/runtime/runtime/transport/grpc"
)

func main() {
	dataRoot := flag.String("data-root", "", "directory of modeld.lease (required)")
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	backend := flag.String("backend", "llama", "backend named in the lease and in Health")
	ttl := flag.Duration("ttl", 5*time.Second, "lease TTL")
	flag.Parse()
	if *dataRoot == "" {
		fmt.Fprintln(os.Stderr, "modeld-go-memserver: --data-root is required")
		os.Exit(2)
	}
	if err := run(*dataRoot, *listen, *backend, *ttl); err != nil {
		fmt.Fprintf(os.Stderr, "modeld-go-memserver: %v\n", err)
		os.Exit(1)
	}
}

func run(dataRoot, listen, backend string, ttl time.Duration) error {
	if err := os.MkdirAll(dataRoot, 0o700); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	endpoint := lis.Addr().String()
	leasePath := filepath.Join(dataRoot, "modeld.lease")
	lease, err := liblease.Acquire(leasePath, ttl, liblease.WithMeta(map[string]string{
		"endpoint": endpoint,
		"backend":  backend,
	}))
	if err != nil {
		return fmt.Errorf("acquire lease: %w", err)
	}
	defer func() { _ = lease.Release() }()
	instance := lease.InstanceID()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // stdin closing (the test process went away) stops the server too
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lease.Renew(); err != nil {
					fmt.Fprintf(os.Stderr, "modeld-go-memserver: renew: %v\n", err)
					cancel()
					return
				}
			}
		}
	}()

	svc := transport.NewMemoryService(transport.WithOwnerFence(instance))
	errc := make(chan error, 1)
	go func() { errc <- transportgrpc.Serve(ctx, lis, svc, instance, backend) }()

	line, _ := json.Marshal(map[string]string{"endpoint": endpoint, "instance_id": instance, "lease": leasePath})
	fmt.Println(string(line))

	select {
	case <-ctx.Done():
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}
