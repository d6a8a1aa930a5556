// Package statedir owns egoagent's state folder, ~/.local/state/egoagent:
// the names of what lives there, the folder's mode, the two locks (one pass
// at a time, one daemon per home), whether a daemon is alive, and the
// per-home key that fingerprints installed files.
//
// Both locks are flock(2) locks, so the kernel releases them when a holder
// dies however it dies: a killed pass never wedges the next one, and a
// stale PID is never taken for a live daemon.
package statedir

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/secretfile"
)

// Path returns the state folder for home.
func Path(home string) string { return filepath.Join(home, ".local", "state", "egoagent") }

// Names inside the state folder.
const (
	StateFile  = "state.json"  // each secret's record (package status)
	DaemonFile = "daemon.json" // the daemon's report on itself
	LogFile    = "egoagent.log"
	Socket     = "control.sock" // the daemon's control socket
	StageDir   = "stage"        // large values staged on their way to the home
	passLock   = "lock"
	daemonLock = "daemon.lock"
	keyFile    = "fingerprint.key"
)

// Ensure creates the state folder with mode 0700, and tightens it if it
// exists: it holds the control socket and the fingerprint key.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the state folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("cannot set mode 0700 on the state folder %s: %w", dir, err)
	}
	return nil
}

// ErrHeld means another process holds the lock.
var ErrHeld = errors.New("lock held by another process")

// LockPass takes the pass lock, waiting until it is free or ctx ends.
func LockPass(ctx context.Context, dir string) (unlock func(), err error) {
	p := filepath.Join(dir, passLock)
	f, err := openLock(p)
	if err != nil {
		return nil, err
	}
	for {
		err := tryLock(f, p, syscall.LOCK_EX)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, ErrHeld) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another pass is still running (lock %s held): %w", p, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LockDaemon takes the daemon lock, which the daemon holds for its whole
// life, or returns ErrHeld at once.
func LockDaemon(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, daemonLock)
	f, err := openLock(p)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f, p, syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// DaemonAlive reports whether a daemon holds the daemon lock in dir.
func DaemonAlive(dir string) bool {
	f, err := os.Open(filepath.Join(dir, daemonLock))
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// openLock opens (creating it if need be) the lock file at p. Closing it
// releases any lock taken on it.
func openLock(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file %s: %w", p, err)
	}
	return f, nil
}

// tryLock takes a lock of kind how on f, the file at p, without waiting.
func tryLock(f *os.File, p string, how int) error {
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return ErrHeld
	default:
		return fmt.Errorf("cannot lock %s: %w", p, err)
	}
}

// Fingerprinter computes keyed fingerprints of file contents, so that the
// state file can tell whether an installed file is the one egoagent wrote
// without being usable to confirm a guess of a short secret.
type Fingerprinter struct{ key []byte }

// NewFingerprinter loads the per-home key (HMAC-SHA256) from dir, creating
// it on first use.
func NewFingerprinter(dir string) (*Fingerprinter, error) {
	p := filepath.Join(dir, keyFile)
	key, err := os.ReadFile(p)
	if err == nil && len(key) == 32 {
		return &Fingerprinter{key: key}, nil
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := secretfile.Replace(p, key, 0o600); err != nil {
		return nil, fmt.Errorf("cannot create the fingerprint key: %w", err)
	}
	return &Fingerprinter{key: key}, nil
}

// Sum returns the fingerprint of data.
func (f *Fingerprinter) Sum(data []byte) string {
	m := hmac.New(sha256.New, f.key)
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil)[:16])
}
