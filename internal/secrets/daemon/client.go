package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
)

// ErrNoDaemon means no daemon runs for the state folder: nothing answers on
// the control socket, or the daemon reached there died before it answered.
// Each command has a way on without a daemon, and takes it.
var ErrNoDaemon = errors.New("no egoagent daemon is running")

// errDied is ErrNoDaemon after a daemon was reached: it died before it
// answered.
var errDied = fmt.Errorf("%w: the daemon died before it answered", ErrNoDaemon)

// droppedError is an exchange the daemon ended before it answered: the
// connection reset, or closed before a whole answer.
type droppedError struct{ cause error }

func (e *droppedError) Error() string {
	return "the daemon closed the connection without answering: " + e.cause.Error()
}

// dyingGrace bounds how long a caller whose connection was dropped waits
// for the daemon lock to be let go. A killed process stops running before
// the kernel closes its files, so a caller can reach the socket of a daemon
// that is already dead and see the lock still held for a moment after.
const dyingGrace = 250 * time.Millisecond

// Call sends req to the daemon whose state folder is stateDir and returns
// its answer. When the daemon drops the connection without answering, Call
// looks at the daemon lock: let go, no daemon runs any more and Call
// returns an ErrNoDaemon, as when nothing answered; still held, it tries once
// more, and only then reports the daemon's failure.
func Call(ctx context.Context, stateDir string, req Request) (*Response, error) {
	var drop *droppedError
	for try := 0; try < 2; try++ {
		resp, err := exchange(ctx, stateDir, req)
		if !errors.As(err, &drop) {
			return resp, err
		}
		if !lockHeldAfter(ctx, stateDir, dyingGrace) {
			return nil, errDied
		}
	}
	return nil, fmt.Errorf("the daemon closed the connection twice without answering (%v), yet still holds its lock; its log %s may say why; if it does not, stop it (egoagent status shows its pid) and run egoagent start",
		drop.cause, filepath.Join(stateDir, statedir.LogFile))
}

// exchange is one connection: one request sent, one answer read.
func exchange(ctx context.Context, stateDir string, req Request) (*Response, error) {
	if err := checkSocketPath(socketPath(stateDir)); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath(stateDir))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNoDaemon
		}
		return nil, fmt.Errorf("cannot reach the daemon: %w", err)
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close() // unblocks the read below
	}()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		if ctx.Err() == nil && dropped(err) {
			return nil, &droppedError{err}
		}
		return nil, fmt.Errorf("cannot send to the daemon: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the daemon did not answer in time: %w", ctx.Err())
		}
		if dropped(err) {
			return nil, &droppedError{err}
		}
		return nil, fmt.Errorf("bad answer from the daemon: %w", err)
	}
	return &resp, nil
}

// dropped reports whether err is the other end going away mid-exchange, as
// opposed to an answer that came whole but made no sense.
func dropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// lockHeldAfter reports whether a daemon still holds the daemon lock of
// stateDir once it has had up to grace to let it go.
func lockHeldAfter(ctx context.Context, stateDir string, grace time.Duration) bool {
	end := time.Now().Add(grace)
	for statedir.DaemonAlive(stateDir) {
		if time.Now().After(end) {
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// Spawn starts a daemon (`egoagent run`, this same executable) detached: a
// session of its own, stdin from /dev/null, stdout and stderr on the log
// file, so that it never holds its caller's output pipes (Coder waits on
// them). It does not wait for the daemon to come up: CallStarting does.
func Spawn(configPath, logPath string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the log file: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(exe, "--config", configPath, "--log-format", "json", "run", "--no-initial-pass", "--log-file", logPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start the daemon: %w", err)
	}
	return cmd.Process.Release()
}

// startWait is how long a freshly spawned daemon has to take the daemon
// lock before CallStarting gives up on it.
const startWait = 3 * time.Second

// maxSpawns bounds CallStarting's spawns: the first, and one more for a
// daemon that died before it answered.
const maxSpawns = 2

// CallStarting calls the daemon of stateDir, starting one with spawn when
// none runs: at first, or when the one it reached died before answering.
// It waits for a daemon it started to open its socket, and gives up when
// that daemon never takes the daemon lock.
func CallStarting(ctx context.Context, stateDir string, spawn func() error, req Request) (*Response, error) {
	spawns := 0
	var spawnedAt time.Time
	seen := false // a daemon held the lock since the last spawn
	for {
		resp, err := Call(ctx, stateDir, req)
		if !errors.Is(err, ErrNoDaemon) {
			return resp, err
		}
		if errors.Is(err, errDied) {
			seen = true
		}
		switch {
		case statedir.DaemonAlive(stateDir):
			seen = true // starting up, or dying: ask again
		case spawns == 0 || seen:
			if spawns == maxSpawns {
				return nil, fmt.Errorf("the daemon died %d times before it answered", spawns)
			}
			if err := spawn(); err != nil {
				return nil, err
			}
			spawns, spawnedAt, seen = spawns+1, time.Now(), false
		case time.Since(spawnedAt) > startWait:
			return nil, errors.New("the daemon did not start")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
