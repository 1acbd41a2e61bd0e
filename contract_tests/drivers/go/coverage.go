package main

import (
	"fmt"
	"os"
	"runtime/coverage"
)

// flushCoverage writes this process image's coverage counters to $GOCOVERDIR
// (a `go build -cover` binary, bench/gocoverage.py). A cover binary writes its
// counters from an exit hook, and syscall.Exec (the `reset` op) runs no exit
// hooks: without this every image but the last would leave no counters. In an
// ordinary build, or without GOCOVERDIR, it does nothing.
func flushCoverage() {
	dir := os.Getenv("GOCOVERDIR")
	if dir == "" {
		return
	}
	if err := coverage.WriteCountersDir(dir); err != nil {
		fmt.Fprintf(os.Stderr, "modeld-go-driver: coverage counters not written: %v\n", err)
	}
}
