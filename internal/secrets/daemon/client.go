package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
)

// ErrNoDaemon means nothing answers on the control socket.
var ErrNoDaemon = errors.New("no egoagent daemon is running")

// Call sends req to the daemon whose state folder is stateDir.
func Call(ctx context.Context, stateDir string, req Request) (*Response, error) {
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
		return nil, fmt.Errorf("cannot send to the daemon: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the daemon did not answer in time: %w", ctx.Err())
		}
		return nil, fmt.Errorf("bad answer from the daemon: %w", err)
	}
	return &resp, nil
}

// Spawn starts a daemon (`egoagent run`, this same executable) detached: a
// session of its own, stdin from /dev/null, stdout and stderr on the log
// file, so that it never holds its caller's output pipes (Coder waits on
// them). It does not wait for the daemon to come up: CallWhenUp does.
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

// CallWhenUp calls the daemon, waiting for a freshly spawned one to open
// its socket, and giving up early if it died instead.
func CallWhenUp(ctx context.Context, stateDir string, req Request) (*Response, error) {
	begin := time.Now()
	for {
		resp, err := Call(ctx, stateDir, req)
		if !errors.Is(err, ErrNoDaemon) {
			return resp, err
		}
		if time.Since(begin) > 3*time.Second && !statedir.DaemonAlive(stateDir) {
			return nil, errors.New("the daemon did not start")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
