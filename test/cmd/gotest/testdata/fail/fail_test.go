package fail

import "testing"

func TestPasses(t *testing.T) { t.Log("a passing test's log, which go test hides") }

func TestFails(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Errorf("got %d, want %d", 1, 2) })
}
