package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
)

const twoSecondSchedule = `
[schedule]
refresh = "@every 2s"
jitter = "0s"
start_deadline = "20s"

[[secret]]
name = "api"
ref = "op://v/api/token"
path = "~/.config/api/token"

[[secret]]
name = "cfg"
ref = "op://v/cfg/file"
path = "~/.cfg.json"
check = "json"
`

func TestStartLeavesOneDaemonThatKeepsSecretsFresh(t *testing.T) {
	w := newWorkspace(t, twoSecondSchedule)
	w.put("op://v/api/token", "t1")
	w.put("op://v/cfg/file", `{"v":1}`)

	out, errOut, code := w.egoagent("start")
	if code != 0 || !strings.Contains(out, "api: fresh") || !strings.Contains(out, "cfg: fresh") {
		t.Fatalf("start: %d %q %q", code, out, errOut)
	}
	pid := w.daemonPID()
	if pid == 0 {
		t.Fatal("no daemon after start")
	}
	if w.read(".config/api/token") != "t1" {
		t.Fatal("start did not ingest")
	}
	// A second start finds the daemon and starts no other.
	if _, _, code := w.egoagent("start"); code != 0 {
		t.Fatalf("second start: %d", code)
	}
	if got := w.daemonPID(); got != pid {
		t.Fatalf("daemon pid %d after the second start, want %d", got, pid)
	}
	if n := countDaemons(t, w.home); n != 1 {
		t.Fatalf("%d daemons for one home", n)
	}
	if out, _, _ := w.egoagent("metadata"); !strings.HasPrefix(out, "ok: 2 fresh") {
		t.Fatalf("metadata with a daemon: %q", out)
	}

	// Scheduled passes happen, and pick up a change in the source.
	w.put("op://v/api/token", "t2")
	eventually(t, 6*time.Second, "scheduled pass installs the new value", func() bool {
		return w.read(".config/api/token") == "t2"
	})
	// The pass saves its state after installing, so the state may lag the
	// file by a moment.
	eventually(t, 2*time.Second, "the state counts the scheduled pass", func() bool {
		st := w.state()
		return st.LastPass != nil && st.Daemon != nil && st.Daemon.Passes >= 2
	})

	// A deleted secret file is back within 2 s (the schedule is slower than
	// that half the time, so this is the watcher's doing).
	os.Remove(filepath.Join(w.home, ".config/api/token"))
	eventually(t, 2*time.Second, "deleted file restored", func() bool {
		return w.read(".config/api/token") == "t2"
	})
	// So is one replaced by something that fails its check.
	os.WriteFile(filepath.Join(w.home, ".cfg.json"), []byte("{broken"), 0o600)
	eventually(t, 2*time.Second, "broken file restored", func() bool {
		return w.read(".cfg.json") == `{"v":1}`
	})

	// A config edit reloads: a new secret appears.
	w.put("op://v/new/field", "n1")
	w.writeConfig(twoSecondSchedule + "\n[[secret]]\nname = \"new\"\nref = \"op://v/new/field\"\npath = \"~/new\"\n")
	eventually(t, 4*time.Second, "new secret from a reloaded config", func() bool { return w.read("new") == "n1" })

	// A broken config keeps the old one running and says so.
	w.writeConfig(twoSecondSchedule + "\n[[secret]]\nname = \"bad\"\nref = \"nope\"\npath = \"~/bad\"\n")
	eventually(t, 4*time.Second, "config error in status", func() bool {
		st := w.state()
		return st.Daemon != nil && strings.Contains(st.Daemon.ConfigError, "must start with")
	})
	out, _, _ = w.egoagent("status")
	if !strings.Contains(out, "config error") || !strings.Contains(out, `config.toml:23: secret "bad"`) {
		t.Fatalf("status does not show the config error:\n%s", out)
	}
	if out, _, _ := w.egoagent("metadata"); !strings.Contains(out, "config error") {
		t.Fatalf("metadata does not show the config error: %q", out)
	}
	os.Remove(filepath.Join(w.home, "new"))
	eventually(t, 2*time.Second, "old config still serves", func() bool { return w.read("new") == "n1" })

	// SIGHUP reloads too; with the config fixed the error goes away.
	w.writeConfig(twoSecondSchedule)
	syscall.Kill(pid, syscall.SIGHUP)
	eventually(t, 4*time.Second, "config error cleared", func() bool {
		st := w.state()
		return st.Daemon != nil && st.Daemon.ConfigError == ""
	})

	// refresh goes through the daemon.
	w.put("op://v/api/token", "t3")
	out, errOut, code = w.egoagent("refresh", "api")
	// (A scheduled pass may have beaten refresh to it: then it says unchanged.)
	if code != 0 || !strings.HasPrefix(out, "api: fresh (") || w.read(".config/api/token") != "t3" {
		t.Fatalf("refresh: %d %q %q", code, out, errOut)
	}
	if _, errOut, code := w.egoagent("refresh", "nope"); code != exitUsage || !strings.Contains(errOut, `no secret named "nope"`) {
		t.Fatalf("refresh of an unknown name: %d %q", code, errOut)
	}
	assertNoCanary(t, w)
}

func TestStartReturnsWithinItsDeadlineWhenTheSourceHangs(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	// Reading a FIFO with no writer blocks forever: a source that hangs.
	p := filepath.Join(w.vault, "v/api")
	os.MkdirAll(p, 0o700)
	if err := syscall.Mkfifo(filepath.Join(p, "token"), 0o600); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	out, errOut, code := w.egoagent("start", "--deadline", "1500ms")
	took := time.Since(begin)
	if code != exitFailed || !strings.Contains(errOut, "did not finish within 1.5s") {
		t.Fatalf("start: %d %q %q", code, out, errOut)
	}
	if took > 10*time.Second {
		t.Fatalf("start took %s with a 1.5s deadline", took)
	}
	// The daemon reports itself once up, which on a loaded machine can
	// come after start's deadline.
	eventually(t, 10*time.Second, "the daemon start left behind", func() bool { return w.daemonPID() != 0 })
}

// SIGTERM in the middle of a pass: the daemon (and with it the pass, which
// runs in its process) ends, the installed file whole, the caller answered.
// The daemon gives a stuck pass stopGrace (2 s); the test's bound is far
// above it so that a loaded machine does not fail it: it catches a daemon
// that never ends, not a slow one.
func TestSIGTERMStopsCleanly(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	if _, _, code := w.egoagent("start"); code != 0 {
		t.Fatal("start failed")
	}
	pid := w.daemonPID()
	// Make the next pass hang inside the source, then ask for it.
	fifo := filepath.Join(w.vault, "v/api/token")
	os.Remove(fifo)
	syscall.Mkfifo(fifo, 0o600)
	refresh := w.cmd("refresh")
	refresh.Start()
	// A running pass holds the pass lock.
	eventually(t, 5*time.Second, "pass running", func() bool { return passLockHeld(w.stateDir()) })

	syscall.Kill(pid, syscall.SIGTERM)
	eventually(t, 10*stopGrace, "daemon gone", func() bool { return syscall.Kill(pid, 0) != nil })
	if refresh.Wait(); refresh.ProcessState.ExitCode() == 0 {
		t.Fatal("refresh reported success for a pass the daemon never finished")
	}
	if passLockHeld(w.stateDir()) {
		t.Fatal("the pass lock is still held")
	}
	if w.read(".config/api/token") != "t1" {
		t.Fatal("the installed file changed")
	}
	entries, _ := os.ReadDir(filepath.Join(w.home, ".config/api"))
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries after the stop", len(entries))
	}
	if _, err := os.Stat(filepath.Join(w.stateDir(), statedir.Socket)); err == nil {
		t.Fatal("the socket was left behind")
	}
}

// A caller that reaches the daemon just as it is killed gets the answer it
// would get with no daemon: refresh does the pass itself, start starts a
// new daemon. The daemon is stopped (SIGSTOP) so that the caller's
// connection waits in its socket's queue, then killed under it.
func TestACallerMeetingAKilledDaemonGoesOnWithout(t *testing.T) {
	for _, cmd := range []string{"refresh", "start"} {
		t.Run(cmd, func(t *testing.T) {
			w := newWorkspace(t, oneSecret)
			w.put("op://v/api/token", "t1")
			if _, errOut, code := w.egoagent("start"); code != 0 {
				t.Fatalf("start: %d %q", code, errOut)
			}
			pid := w.daemonPID()
			w.put("op://v/api/token", "t2")
			syscall.Kill(pid, syscall.SIGSTOP)
			c := w.cmd(cmd)
			var out, errOut bytes.Buffer
			c.Stdout, c.Stderr = &out, &errOut
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(w.stateDir(), statedir.Socket)
			eventually(t, 10*time.Second, "the caller waits in the daemon's queue", func() bool { return unixSockets(sock) >= 2 })
			syscall.Kill(pid, syscall.SIGKILL)
			c.Wait()
			if code := c.ProcessState.ExitCode(); code != 0 || !strings.Contains(out.String(), "api: fresh") {
				t.Fatalf("%s meeting a killed daemon: exit %d\nstdout: %q\nstderr: %q", cmd, code, out.String(), errOut.String())
			}
			if got := w.read(".config/api/token"); got != "t2" {
				t.Fatalf("the file holds %q, want t2", got)
			}
			switch now := w.daemonPID(); {
			case cmd == "start" && (now == 0 || now == pid):
				t.Fatalf("start left daemon %d (the killed one was %d)", now, pid)
			case cmd == "refresh" && !daemonGone(w.stateDir()):
				t.Fatal("refresh started a daemon")
			}
		})
	}
}

// unixSockets counts the Unix sockets bound to path: a listener, and each
// connection to it, accepted or still in its queue.
func unixSockets(path string) int {
	b, _ := os.ReadFile("/proc/net/unix")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(line, " "+path) {
			n++
		}
	}
	return n
}

// Twenty people run refresh at once while the schedule fires every second:
// every caller is answered, passes never overlap, no file is ever torn.
func TestConcurrentRefreshes(t *testing.T) {
	w := newWorkspace(t, strings.Replace(twoSecondSchedule, "@every 2s", "@every 1s", 1))
	big := func(c byte) string { return strings.Repeat(string(c), 256<<10) }
	w.put("op://v/api/token", big('a'))
	w.put("op://v/cfg/file", `{"v":1}`)
	if _, _, code := w.egoagent("start"); code != 0 {
		t.Fatal("start failed")
	}
	var wg, bg sync.WaitGroup
	errs := make(chan string, 100)
	stop := make(chan struct{})
	// Both background goroutines are waited for before errs closes: one
	// still reading when the test ends would read a removed home, and send
	// on a closed channel (a loaded machine once kept one waiting that long).
	bg.Add(2)
	go func() { // the source keeps changing
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
				w.put("op://v/api/token", big("ab"[i%2]))
			}
		}
	}()
	go func() { // the file is never torn
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if got := w.read(".config/api/token"); got != big('a') && got != big('b') {
				errs <- fmt.Sprintf("torn file: %d bytes", len(got))
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := w.egoagent("refresh")
			if code != 0 || !strings.Contains(out, "api: fresh") {
				errs <- fmt.Sprintf("refresh: %d %q %q", code, out, errOut)
			}
		}()
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // a scheduled pass or two more
	close(stop)
	bg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// The daemon logs the start and end of each pass: they must alternate.
	f, err := os.Open(filepath.Join(w.stateDir(), statedir.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	open, passes, scheduled := false, 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, `"pass starting"`):
			if open {
				t.Fatal("a pass started while another was running")
			}
			open = true
			if strings.Contains(line, `"trigger":"schedule"`) {
				scheduled++
			}
		case strings.Contains(line, `"pass finished"`):
			open = false
			passes++
		}
	}
	// The schedule adds a pass a second on top: those are not the
	// refreshes' doing.
	if passes < 2 || passes-scheduled > 21 {
		t.Fatalf("%d passes (%d of them scheduled) for 20 refreshes and a start", passes, scheduled)
	}
	assertNoCanary(t, w)
}

// assertNoCanary checks that the token given to egoagent appears in none of
// its files: state, daemon report, log.
func assertNoCanary(t *testing.T, w *workspace) {
	t.Helper()
	entries, _ := os.ReadDir(w.stateDir())
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(w.stateDir(), e.Name()))
		if bytes.Contains(b, []byte(w.token)) {
			t.Errorf("the token appears in %s", e.Name())
		}
	}
}

// countDaemons counts `run` processes whose environment has this home.
func countDaemons(t *testing.T, home string) int {
	return homeProcs(home, func(cmdline []byte) bool { return bytes.Contains(cmdline, []byte("\x00run\x00")) })
}

// homeProcs counts the processes that run with HOME=home and whose command
// line (NUL-separated) passes keep. A killed process shows neither once the
// kernel has freed its memory, while its files may still be open: that it
// is not counted does not mean it let go of them (daemonGone tells).
func homeProcs(home string, keep func(cmdline []byte) bool) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p + "/cmdline")
		env, _ := os.ReadFile(p + "/environ")
		if keep(cmdline) && bytes.Contains(env, []byte("HOME="+home+"\x00")) {
			n++
		}
	}
	return n
}

// passLockHeld reports whether a pass holds the state folder's pass lock
// (no state folder yet: no pass has begun).
func passLockHeld(stateDir string) bool {
	if _, err := os.Stat(stateDir); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	unlock, err := statedir.LockPass(ctx, stateDir)
	if err != nil {
		return true
	}
	unlock()
	return false
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may hold spaces): state first, then ppid;
// nil when the process is gone.
func statFields(proc string) []string {
	st, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return nil
	}
	return strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
}

func childrenOf(t *testing.T, pid int) []int {
	var kids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		f := statFields(p)
		if len(f) < 2 {
			continue
		}
		var ppid, child int
		fmt.Sscan(f[1], &ppid)
		fmt.Sscan(filepath.Base(p), &child)
		if ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids
}
