package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// The control socket speaks one JSON request and one JSON response per
// connection. It lives in the 0700 state folder, is itself 0600, and the
// server also checks the peer's uid: three locks on one door, because it
// can make egoagent spend 1Password quota.

// The requests the daemon answers.
const (
	OpRefresh = "refresh" // run a pass, reply with its report
	OpStatus  = "status"  // reply with the state
)

// Request asks the daemon to do something.
type Request struct {
	Op    string   `json:"op"`              // OpRefresh or OpStatus
	Names []string `json:"names,omitempty"` // refresh: only these; empty means all
	Force bool     `json:"force,omitempty"` // refresh: override consumer-rewrites
	Renew bool     `json:"renew,omitempty"` // refresh: renew logins with renew = true now
	// Trigger names who asked, for the state file: refresh (the default)
	// or start.
	Trigger status.Trigger `json:"trigger,omitempty"`
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

// ErrStopping is the answer, in Response.Error, to a caller whose pass the
// daemon did not run or finish because it is stopping.
var ErrStopping = errors.New("the daemon is stopping")

// call is a request handed to the loop, with where to send the answer.
type call struct {
	req   Request
	reply chan Response
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

// accept serves the control socket until the listener closes. Each
// connection gets its own goroutine, which hands the request to the loop
// and waits for the answer.
func (s *server) accept(ctx context.Context, l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			if !peerIsOwner(conn) {
				s.Log.Warn("control socket: refused a connection from another user")
				return
			}
			var req Request
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error(), Usage: true})
				return
			}
			reply := make(chan Response, 1)
			select {
			case s.calls <- call{req: req, reply: reply}:
			case <-ctx.Done():
				json.NewEncoder(conn).Encode(Response{Error: ErrStopping.Error()})
				return
			}
			json.NewEncoder(conn).Encode(<-reply)
		}()
	}
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

// handle answers a request, in the loop. A refresh is queued, and its
// caller answered when the pass that covers it ends.
func (s *server) handle(c call) {
	if err := s.serves(c.req); err != nil {
		c.reply <- Response{Error: err.Error(), Usage: true}
		return
	}
	switch c.req.Op {
	case OpStatus:
		st, err := status.Load(s.StateDir)
		if err != nil {
			c.reply <- Response{Error: err.Error()}
			return
		}
		c.reply <- Response{State: st}
	case OpRefresh:
		if err := engine.CheckNames(s.cur.Config, c.req.Names); err != nil {
			c.reply <- Response{Error: err.Error(), Usage: true}
			return
		}
		trigger := c.req.Trigger
		switch trigger {
		case "":
			trigger = status.TriggerRefresh
		case status.TriggerRefresh, status.TriggerStart:
		default:
			c.reply <- Response{Error: fmt.Sprintf("unknown trigger %q: a refresh is asked for as %q or %q", trigger, status.TriggerRefresh, status.TriggerStart), Usage: true}
			return
		}
		s.queue = append(s.queue, &job{
			opts:    engine.Options{Trigger: trigger, Names: c.req.Names, Force: c.req.Force, RenewNow: c.req.Renew},
			waiters: []waiter{{names: c.req.Names, reply: c.reply}},
		})
	default:
		c.reply <- Response{Error: fmt.Sprintf("unknown request %q", c.req.Op), Usage: true}
	}
}

// serves reports an error unless req comes from the home and names the
// configuration this daemon serves.
func (s *server) serves(req Request) error {
	if req.Home == "" || req.Config == "" {
		return errors.New("the request does not say which home and configuration it is for; use the egoagent binary that started this daemon")
	}
	if id := status.HomeID(req.Home); id != s.info.Home {
		return &status.ForeignError{Dir: statedir.Path(req.Home), Owner: s.info.Home, Home: id, PID: s.info.PID}
	}
	if !sameFile(req.Config, s.cur.Path) {
		return fmt.Errorf("the running daemon (pid %d) uses the configuration %s, not %s; run egoagent with --config %s (or EGOAGENT_CONFIG), or stop the daemon (kill %d) and run egoagent start with the configuration you want", s.info.PID, s.cur.Path, req.Config, s.cur.Path, s.info.PID)
	}
	return nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	return erra == nil && errb == nil && os.SameFile(fa, fb)
}
