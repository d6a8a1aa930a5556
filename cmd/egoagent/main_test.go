package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
)

// These tests run egoagent as real processes: the test binary re-executes
// itself as the egoagent command (asMainEnv), so the daemon, its children
// and `start`'s detached daemon are real processes with real signals,
// sockets and files, without a separate build step.
const asMainEnv = "EGOAGENT_TEST_AS_MAIN"

// runMarkEnv marks every process this test run starts (they inherit it),
// so that the run can tell its own leftovers from anyone else's.
const runMarkEnv = "EGOAGENT_TEST_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(os.Args))
	}
	mark := fmt.Sprintf("%s=%d-%d", runMarkEnv, os.Getpid(), time.Now().UnixNano())
	os.Setenv(runMarkEnv, strings.TrimPrefix(mark, runMarkEnv+"="))
	code := m.Run()
	if left := leftovers(mark, 10*time.Second); len(left) > 0 {
		// A daemon, a pass or a helper that outlived the test that
		// started it: in a workspace, that would be a process the
		// container never reaps.
		fmt.Fprintf(os.Stderr, "FAIL: %d process(es) outlived the tests:\n%s", len(left), strings.Join(left, ""))
		code = 1
	}
	os.Exit(code)
}

// leftovers waits up to within for every process carrying mark to end,
// then kills and describes those that did not.
func leftovers(mark string, within time.Duration) []string {
	find := func() map[int]string {
		found := map[int]string{}
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			env, _ := os.ReadFile(p + "/environ")
			if !bytes.Contains(env, []byte("\x00"+mark+"\x00")) && !bytes.HasPrefix(env, []byte(mark+"\x00")) {
				continue
			}
			var pid int
			fmt.Sscan(filepath.Base(p), &pid)
			if pid == os.Getpid() {
				continue
			}
			if st, _ := os.ReadFile(p + "/stat"); bytes.Contains(st, []byte(") Z ")) {
				continue // a zombie has ended; its parent has yet to reap it
			}
			cmdline, _ := os.ReadFile(p + "/cmdline")
			found[pid] = fmt.Sprintf("  pid %d: %s\n", pid, bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
		}
		return found
	}
	end := time.Now().Add(within)
	for {
		found := find()
		if len(found) == 0 {
			return nil
		}
		if time.Now().After(end) {
			var out []string
			for pid, desc := range found {
				syscall.Kill(pid, syscall.SIGKILL)
				out = append(out, desc)
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// workspace is a throwaway home with a directory source and a config.
type workspace struct {
	t      *testing.T
	home   string
	vault  string // the directory source's root
	config string
	token  string // OP_SERVICE_ACCOUNT_TOKEN given to every process: a canary
}

func newWorkspace(t *testing.T, configBody string) *workspace {
	t.Helper()
	w := &workspace{t: t, home: t.TempDir(), vault: t.TempDir(), token: "ops_CANARYTOKEN_" + strings.Repeat("x", 20)}
	w.config = filepath.Join(t.TempDir(), "config.toml")
	w.writeConfig(configBody)
	t.Cleanup(w.killDaemon)
	return w
}

func (w *workspace) writeConfig(body string) {
	w.t.Helper()
	cfg := "[source]\nkind = \"dir\"\ndir = \"" + w.vault + "\"\n" + body
	// Written by rename, as editors do.
	tmp := w.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, w.config); err != nil {
		w.t.Fatal(err)
	}
}

// put sets a value in the directory source.
func (w *workspace) put(ref, value string) {
	w.t.Helper()
	p := filepath.Join(w.vault, filepath.FromSlash(strings.TrimPrefix(ref, "op://")))
	os.MkdirAll(filepath.Dir(p), 0o700)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(value), 0o600); err != nil {
		w.t.Fatal(err)
	}
	os.Rename(tmp, p)
}

func (w *workspace) cmd(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		w.t.Fatal(err)
	}
	c := exec.Command(exe, args...)
	c.Env = append(os.Environ(), asMainEnv+"=1", "HOME="+w.home, "EGOAGENT_CONFIG="+w.config, "OP_SERVICE_ACCOUNT_TOKEN="+w.token)
	return c
}

// egoagent runs one command to completion.
func (w *workspace) egoagent(args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	c := w.cmd(args...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		w.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func (w *workspace) stateDir() string { return statedir.Path(w.home) }

func (w *workspace) state() *status.State {
	w.t.Helper()
	st, err := status.Load(w.stateDir())
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func (w *workspace) daemonPID() int {
	st := w.state()
	if st.Daemon == nil || !st.Daemon.Running {
		return 0
	}
	return st.Daemon.PID
}

// killDaemon kills the daemon with SIGKILL and waits until it is gone.
func (w *workspace) killDaemon() {
	if pid := w.daemonPID(); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		eventually(w.t, 10*time.Second, "the killed daemon gone", func() bool { return daemonGone(w.stateDir()) })
	}
}

// daemonGone reports whether the daemon of stateDir has let go of what it
// held: its lock, and its socket. A killed process is not gone when /proc
// stops naming it: the kernel frees its memory first, and closes its files
// (releasing both) a moment later.
func daemonGone(stateDir string) bool {
	if statedir.DaemonAlive(stateDir) {
		return false
	}
	c, err := net.Dial("unix", filepath.Join(stateDir, statedir.Socket))
	if err != nil {
		return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return false
}

func (w *workspace) read(rel string) string {
	b, _ := os.ReadFile(filepath.Join(w.home, rel))
	return string(b)
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, within)
}

const oneSecret = `
[schedule]
refresh = "@every 1h"
jitter = "0s"

[[secret]]
name = "api"
ref = "op://v/api/token"
path = "~/.config/api/token"
`

func TestExitCodes(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	if out, errOut, code := w.egoagent("sync"); code != 0 || !strings.Contains(out, "api: fresh (written)") {
		t.Fatalf("sync: %d %q %q", code, out, errOut)
	}
	if _, _, code := w.egoagent("sync", "nope"); code != exitUsage {
		t.Fatalf("unknown name: exit %d", code)
	}
	if _, errOut, code := w.egoagent("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d %q", code, errOut)
	}
	if _, _, code := w.egoagent("status", "--bogus"); code != exitUsage {
		t.Fatalf("bad flag: exit %d", code)
	}
	os.Remove(filepath.Join(w.vault, "v/api/token"))
	if out, _, code := w.egoagent("sync"); code != exitFailed || !strings.Contains(out, "api: stale") || !strings.Contains(out, "not-found") {
		t.Fatalf("failing source: exit %d %q", code, out)
	}
	if w.read(".config/api/token") != "t1" {
		t.Fatal("a failed sync damaged the installed file")
	}
	w.writeConfig("[[secret]]\nname = \"x\"\n")
	if _, errOut, code := w.egoagent("sync"); code != exitUsage || !strings.Contains(errOut, `config.toml:4: secret "x" has no ref`) {
		t.Fatalf("bad config: exit %d %q", code, errOut)
	}
}

func TestStatusAndMetadata(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	if out, _, code := w.egoagent("metadata"); code != 0 || out != "not synced yet: run egoagent sync\n" {
		t.Fatalf("metadata before sync: %d %q", code, out)
	}
	w.put("op://v/api/token", "t1")
	w.egoagent("sync")
	out, _, code := w.egoagent("metadata")
	if code != 0 || !strings.HasPrefix(out, "ok: 1 fresh, synced") || strings.Count(out, "\n") != 1 || len(out) > 80 {
		t.Fatalf("metadata: %d %q", code, out)
	}
	out, _, code = w.egoagent("status")
	if code != 0 || !strings.Contains(out, "api") || !strings.Contains(out, "~/.config/api/token") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	out, _, _ = w.egoagent("status", "--json")
	var st status.State
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Secrets[0].State != status.Fresh || st.Secrets[0].Written != "" {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
}

// buildHelper builds the real 1Password helper, egoagent-op, once.
var buildHelper = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "egoagent-op")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "egoagent-op")
	cmd := exec.Command("go", "build", "-o", out, "github.com/veraticus/egoengine/cmd/egoagent-op")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, msg)
	}
	return out, nil
})

// With the 1Password source and no usable token, a sync fails with the
// right class, says what to do, and leaves the installed file alone; the
// token never shows up anywhere.
func TestOnePasswordWithoutAUsableToken(t *testing.T) {
	helper, err := buildHelper()
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, oneSecret)
	cfg := "[source]\nkind = \"1password\"\n" + oneSecret
	os.WriteFile(w.config, []byte(cfg), 0o600)
	os.MkdirAll(filepath.Join(w.home, ".config/api"), 0o700)
	os.WriteFile(filepath.Join(w.home, ".config/api/token"), []byte("old"), 0o600)

	// The metadata line after each: with no token at all, the command that
	// gives the workspace one.
	cases := []struct{ token, class, metadata string }{
		{"", "missing-token", "no 1Password token: coder secret create op-token --env OP_SERVICE_ACCOUNT_TOKEN"},
		{w.token, "invalid-token", "api stale"},
	}
	for _, tc := range cases {
		token, class := tc.token, tc.class
		c := w.cmd("sync")
		c.Env = append(c.Env, "EGOAGENT_OP_HELPER="+helper, "OP_SERVICE_ACCOUNT_TOKEN="+token)
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "api: stale ("+class+")") {
			t.Fatalf("token %q: %v\n%s", token, err, out)
		}
		if strings.Contains(string(out), w.token) {
			t.Fatal("the token is in the output")
		}
		if w.read(".config/api/token") != "old" {
			t.Fatal("the installed file changed")
		}
		if out, _, _ := w.egoagent("metadata"); !strings.Contains(out, tc.metadata) {
			t.Fatalf("metadata with %s: %q", class, out)
		}
	}
	assertNoCanary(t, w)
}

// A home so deep that the control socket's path cannot fit in a Unix socket
// address gets a message saying so, not the kernel's "invalid argument".
func TestTooLongHomeIsExplained(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	w.home = filepath.Join(w.home, strings.Repeat("h", 100))
	os.MkdirAll(w.home, 0o700)
	_, errOut, code := w.egoagent("start")
	if code == 0 || !strings.Contains(errOut, "a Unix socket path may have; give egoagent a shorter HOME") {
		t.Fatalf("start: %d %q", code, errOut)
	}
	if _, errOut, _ := w.egoagent("refresh"); !strings.Contains(errOut, "shorter HOME") {
		t.Fatalf("refresh: %q", errOut)
	}
}
