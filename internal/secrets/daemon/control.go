package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// The control socket speaks one JSON request and one JSON response per
// connection. It lives in the 0700 state folder, is itself 0600, and the
// server also checks the peer's uid: three locks on one door, because it
// can make egoagent spend 1Password quota.

// Request asks the daemon to do something.
type Request struct {
	Op    string   `json:"op"`              // "refresh" or "status"
	Names []string `json:"names,omitempty"` // refresh: only these; empty means all
	Force bool     `json:"force,omitempty"` // refresh: override consumer-rewrites
	// Trigger names who asked, for the state file ("refresh", "start").
	Trigger string `json:"trigger,omitempty"`
	// Home and Config say which home and configuration the caller means.
	// The daemon answers only when they are its own: a state folder
	// shared between homes, or a caller with another config, must not get
	// a report about secrets it did not ask for.
	Home   string `json:"home"`
	Config string `json:"config"`
}

// Response is the daemon's answer.
type Response struct {
	Report *engine.Report `json:"report,omitempty"`
	State  *status.State  `json:"state,omitempty"`
	Error  string         `json:"error,omitempty"`
	Usage  bool           `json:"usage,omitempty"` // Error is the caller's mistake (unknown name)
}

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

func socketPath(stateDir string) string { return stateDir + "/" + statedir.Socket }

// maxSocketPath is what fits in sockaddr_un.sun_path, less its final NUL.
const maxSocketPath = 107

// CheckSocket reports whether the control socket of stateDir can exist.
func CheckSocket(stateDir string) error { return checkSocketPath(socketPath(stateDir)) }

// checkSocketPath explains the kernel's limit before the kernel answers
// "invalid argument".
func checkSocketPath(p string) error {
	if len(p) > maxSocketPath {
		return fmt.Errorf("the control socket %s is %d bytes long, over the %d a Unix socket path may have; give egoagent a shorter HOME", p, len(p), maxSocketPath)
	}
	return nil
}

// listen opens the control socket. The caller holds the daemon lock, so a
// socket file already there is a dead daemon's and can go.
func listen(stateDir string) (net.Listener, error) {
	p := socketPath(stateDir)
	if err := checkSocketPath(p); err != nil {
		return nil, err
	}
	os.Remove(p)
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("cannot open the control socket %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// peerIsOwner reports whether the process at the other end of conn runs as
// the same user as this one.
func peerIsOwner(conn net.Conn) bool {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return cerr == nil && cred != nil && int(cred.Uid) == os.Getuid()
}
