package main

import (
	"testing"

	"github.com/storecrypt/storecrypt/test/rie"
)

// TestInitCost: the result function's start stays within its budget (3.48 MB allocated
// by all packages' init when it was set, 2026-12-07, aws-sdk-go-v2 v1.48.0).
func TestInitCost(t *testing.T) {
	rie.CheckInit(t, "result", 3_800_000)
}
