package lock

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondRunWaitsThenGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "lock", "storecrypt.lock")
	var progress bytes.Buffer
	release, err := Acquire(context.Background(), path, time.Second, &progress)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), path, 300*time.Millisecond, &progress)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: got %v, want ErrBusy", err)
	}
	if !strings.Contains(progress.String(), "waiting up to 300ms") {
		t.Errorf("progress %q does not say it waits", progress.String())
	}
	done := make(chan error, 1)
	go func() {
		r, err := Acquire(context.Background(), path, 5*time.Second, &progress)
		if err == nil {
			r()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	release()
	if err := <-done; err != nil {
		t.Fatalf("after release: got %v, want the lock", err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	release, err := Acquire(context.Background(), path, time.Second, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Acquire(ctx, path, time.Minute, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
