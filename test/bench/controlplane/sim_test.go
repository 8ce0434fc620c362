package controlplane

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestSim: goroutines run one at a time in the order their waits end, each seeing the
// time its own waits took; a semaphore holds back the one it has no slot for.
func TestSim(t *testing.T) {
	s := newSim()
	var got []string
	note := func(who string) { got = append(got, fmt.Sprintf("%s@%s", who, s.Now())) }
	slot := &semaphore{s: s, free: 1}
	s.Go(func() {
		s.Sleep(3 * time.Second)
		note("a")
		s.Sleep(time.Second)
		note("a")
	})
	s.Go(func() {
		s.Sleep(2 * time.Second)
		note("b")
		s.Sleep(5 * time.Second)
		note("b")
	})
	s.Go(func() {
		slot.Acquire()
		s.Sleep(10 * time.Second)
		note("c holds")
		slot.Release()
	})
	s.Go(func() {
		slot.Acquire()
		note("d acquires")
		slot.Release()
	})
	s.Run()
	want := []string{"b@2s", "a@3s", "a@4s", "b@7s", "c holds@10s", "d acquires@10s"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRetryWaitsItsOwnBackoff: eleven callers at once on a bucket of ten (KMS
// TagResource, 10 a second); the one throttled waits 200 ms and tries again. In its own
// time (sim) the bucket has refilled by then; on the shared timeline of 1,000 parallel
// invocations only a thousandth of its wait has passed, and it is throttled again: why
// the naive design, 1,000 invocations at once, runs on sim.
func TestRetryWaitsItsOwnBackoff(t *testing.T) {
	call := func(c *clock) error {
		err := c.hook("KMS", "TagResource", 0)
		if err != nil {
			c.wait(200 * time.Millisecond)
			err = c.hook("KMS", "TagResource", 0)
		}
		return err
	}
	own := &clock{sim: newSim()}
	var failed int
	for range 11 {
		own.sim.Go(func() {
			if call(own) != nil {
				failed++
			}
		})
	}
	own.sim.Run()
	if failed != 0 || own.throttled != 1 {
		t.Errorf("in its own time: %d callers failed, %d attempts throttled; want 0 and 1", failed, own.throttled)
	}
	shared := &clock{parallel: 1000}
	failed = 0
	for range 11 {
		if call(shared) != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("on the shared timeline: %d callers failed, want the 11th", failed)
	}
}
