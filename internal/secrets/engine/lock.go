package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/health/status"
)

// Lock takes the state folder's lock, waiting until it is free or ctx ends.
// It is an flock(2) lock on a file, so the kernel releases it when a holder
// dies, however it dies: a killed pass never wedges the next one.
func Lock(ctx context.Context, stateDir string) (unlock func(), err error) {
	p := filepath.Join(stateDir, status.LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file %s: %w", p, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another pass is still running (lock %s held): %w", p, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
