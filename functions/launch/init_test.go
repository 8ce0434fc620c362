package main

import (
	"testing"

	"github.com/storecrypt/storecrypt/test/rie"
)

// TestInitCost: the launch function's start stays within its budget (5.06 MB allocated
// by all packages' init when it was set, 2026-12-07, aws-sdk-go-v2 v1.48.0).
func TestInitCost(t *testing.T) {
	rie.CheckInit(t, "launch", 5_600_000)
}
