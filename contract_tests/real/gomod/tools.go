//go:build tools

// Package realmodeld pins the real modeld daemon (github.com/contenox/runtime v0.36.0, cmd/modeld)
// so that its dependencies stay in this module's go.sum. contract_tests/real/build.py builds it with
// `go build github.com/contenox/runtime/cmd/modeld` from this folder.
package realmodeld

import (
	_ "github.com/contenox/runtime/cmd/modeld"
)
