package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Two homes, one state folder: the second home's state folder is a link
// to the first's, whose daemon runs. Nothing the second home runs may
// answer with the first home's secrets.
func TestAStateFolderSharedWithAnotherHomeIsRefused(t *testing.T) {
	b := newWorkspace(t, oneSecret)
	b.put("op://v/api/token", "b's")
	if out, errOut, code := b.egoagent("start"); code != 0 {
		t.Fatalf("start in b: %d %q %q", code, out, errOut)
	}

	a := newWorkspace(t, oneSecret)
	a.put("op://v/api/token", "a's")
	os.MkdirAll(filepath.Dir(a.stateDir()), 0o700)
	if err := os.Symlink(b.stateDir(), a.stateDir()); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"start"}, {"refresh"}, {"status"}, {"sync"}, {"run"}} {
		out, errOut, code := a.egoagent(args...)
		if code != exitUsage || !strings.Contains(errOut, "symbolic link to "+b.stateDir()) || !strings.Contains(errOut, b.home) {
			t.Errorf("%s in a: exit %d\nstdout: %q\nstderr: %q", args[0], code, out, errOut)
		}
		if strings.Contains(out, "fresh") {
			t.Errorf("%s in a reports b's secrets: %q", args[0], out)
		}
	}
	if out, _, _ := a.egoagent("metadata"); !strings.Contains(out, "another home") {
		t.Errorf("metadata in a: %q", out)
	}
	if a.read(".config/api/token") != "" {
		t.Error("something wrote a's secret from b's daemon")
	}
	// b goes on as before.
	if out, _, code := b.egoagent("refresh"); code != 0 || !strings.Contains(out, "api: fresh") {
		t.Fatalf("refresh in b: %d %q", code, out)
	}
	if n := countDaemons(t, b.home) + countDaemons(t, a.home); n != 1 {
		t.Fatalf("%d daemons", n)
	}
	// With b's daemon gone, a still gets the answer, not a daemon of its own.
	b.killDaemon()
	for _, args := range [][]string{{"start"}, {"refresh"}} {
		if _, errOut, code := a.egoagent(args...); code != exitUsage || !strings.Contains(errOut, "symbolic link to "+b.stateDir()) {
			t.Errorf("%s in a without b's daemon: exit %d %q", args[0], code, errOut)
		}
	}
	if n := countDaemons(t, a.home); n != 0 {
		t.Fatalf("a started %d daemon(s) on b's state folder", n)
	}
}

// A caller that means another configuration than the daemon's is told so,
// rather than answered from the daemon's.
func TestADaemonOnAnotherConfigurationIsRefused(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	if _, errOut, code := w.egoagent("start"); code != 0 {
		t.Fatalf("start: %d %q", code, errOut)
	}
	other := filepath.Join(t.TempDir(), "other.toml")
	os.WriteFile(other, []byte("[source]\nkind = \"dir\"\ndir = \""+w.vault+"\"\n"+oneSecret), 0o600)
	c := w.cmd("--config", other, "refresh")
	out, err := c.CombinedOutput()
	if err == nil || c.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "uses the configuration "+w.config) {
		t.Fatalf("refresh with another config: %v\n%s", err, out)
	}
	// The same file named another way is the same configuration.
	rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(w.config)), w.config)
	c = w.cmd("--config", rel, "refresh")
	c.Dir = filepath.Dir(filepath.Dir(w.config))
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("refresh with a relative path to the same config: %v\n%s", err, out)
	}
}

// hangingSource makes the next read of op://v/api/token block forever: a
// FIFO with no writer, a source that ignores its context.
func hangingSource(t *testing.T, w *workspace) {
	p := filepath.Join(w.vault, "v/api/token")
	os.MkdirAll(filepath.Dir(p), 0o700)
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitingOnFIFO reports whether a thread of process pid is blocked
// opening a FIFO that has no writer (the kernel's wait_for_partner).
func waitingOnFIFO(pid int) bool {
	chans, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, p := range chans {
		if b, _ := os.ReadFile(p); string(b) == "wait_for_partner" {
			return true
		}
	}
	return false
}

// silentHelper points w at 1Password through a stand-in helper that never
// answers, and returns the helper's path.
func silentHelper(t *testing.T, w *workspace) string {
	t.Helper()
	cfg := "[source]\nkind = \"1password\"\n" + oneSecret
	os.WriteFile(w.config, []byte(cfg), 0o600)
	helper := filepath.Join(t.TempDir(), "egoagent-op")
	os.WriteFile(helper, []byte("#!/bin/sh\nexec sleep 600\n"), 0o700)
	return helper
}

// A pass that waits on a source still ends on SIGTERM or SIGINT (a person's
// Ctrl-C, a daemon that died), within its grace, leaving files as they were.
func TestSyncStopsOnASignalWhileTheSourceHangs(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		w := newWorkspace(t, oneSecret)
		hangingSource(t, w)
		for _, args := range [][]string{{"sync"}, {"refresh"}} {
			c := w.cmd(args...)
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			// Signalled once the pass hangs in the source (a thread waits
			// for the FIFO's writer), not after a fixed pause: a loaded
			// machine can take longer than any pause to get there, and a
			// pass signalled before it reads stops cleanly instead.
			eventually(t, 10*time.Second, args[0]+" hanging in the source", func() bool { return waitingOnFIFO(c.Process.Pid) })
			c.Process.Signal(sig)
			exited := make(chan error, 1)
			go func() { exited <- c.Wait() }()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				c.Process.Kill()
				t.Fatalf("%s ignored %v while its source hung", args[0], sig)
			}
			if c.ProcessState.ExitCode() != exitFailed || !strings.Contains(out.String(), "abandoned") {
				t.Fatalf("%s after %v: exit %d %q", args[0], sig, c.ProcessState.ExitCode(), out.String())
			}
		}
	}
}

// The 1Password helper never outlives its egoagent, even one killed with
// SIGKILL mid-request. (The leftover check in TestMain is what fails.)
func TestTheHelperDiesWithItsEgoagent(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	helper := silentHelper(t, w)
	c := w.cmd("sync")
	c.Env = append(c.Env, "EGOAGENT_OP_HELPER="+helper)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "helper started", func() bool { return len(childrenOf(t, c.Process.Pid)) > 0 })
	kid := childrenOf(t, c.Process.Pid)[0]
	c.Process.Kill()
	c.Wait()
	eventually(t, 5*time.Second, "helper gone", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid))
		return err != nil || bytes.Contains(st, []byte(") Z "))
	})
}

// The same for the daemon, which runs its passes in its own process: a
// daemon killed outright mid-pass takes the pass's helper with it.
func TestTheHelperDiesWithItsDaemon(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	helper := silentHelper(t, w)
	c := w.cmd("start", "--deadline", "1s")
	c.Env = append(c.Env, "EGOAGENT_OP_HELPER="+helper)
	if err := c.Run(); c.ProcessState.ExitCode() != exitFailed {
		t.Fatalf("start with a helper that never answers: %v", err)
	}
	pid := w.daemonPID()
	if pid == 0 {
		t.Fatal("no daemon")
	}
	eventually(t, 5*time.Second, "helper started by the daemon", func() bool { return len(childrenOf(t, pid)) > 0 })
	kid := childrenOf(t, pid)[0]
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 5*time.Second, "helper gone", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid))
		return err != nil || bytes.Contains(st, []byte(") Z "))
	})
}

// egoagent's own restores do not count against the watch limits: a file
// deleted or overwritten every 6 s (more than the 5 s between watch passes)
// is back within about a second, every time.
func TestWatchRestoresAtTheDocumentedPace(t *testing.T) {
	if testing.Short() {
		t.Skip("25 s of real time at the watcher's pace; make test runs it")
	}
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	if _, errOut, code := w.egoagent("start"); code != 0 {
		t.Fatalf("start: %d %q", code, errOut)
	}
	p := filepath.Join(w.home, ".config/api/token")
	last := time.Now()
	for i := 0; i < 4; i++ {
		time.Sleep(time.Until(last.Add(6 * time.Second)))
		last = time.Now()
		if i%2 == 0 {
			os.Remove(p)
		} else {
			os.WriteFile(p, []byte("someone else's"), 0o600)
		}
		eventually(t, 1500*time.Millisecond, fmt.Sprintf("change %d undone", i+1), func() bool { return w.read(".config/api/token") == "t1" })
	}
}

// status tells of a broken configuration, with or without a daemon, and
// exits 2: the next start, sync or refresh would refuse to run.
func TestStatusReportsABrokenConfig(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	w.egoagent("sync")
	for _, broken := range []string{"[[secret]]\nname = \"x\"\n", "refresh = [", "jitter = 10\n"} {
		w.writeConfig(broken)
		out, errOut, code := w.egoagent("status")
		if code != exitUsage || !strings.Contains(errOut, w.config+":") || !strings.Contains(errOut, "refuse to run until it is fixed") {
			t.Errorf("config %q: status exit %d\nstdout: %s\nstderr: %s", broken, code, out, errOut)
		}
		if !strings.Contains(out, "api") {
			t.Errorf("config %q: status no longer shows the state: %q", broken, out)
		}
	}
}

// A damaged state file does not stop sync: it says what happened, keeps
// the damaged copy, and the secret arrives.
func TestSyncStartsAfreshFromADamagedStateFile(t *testing.T) {
	w := newWorkspace(t, oneSecret)
	w.put("op://v/api/token", "t1")
	os.MkdirAll(w.stateDir(), 0o700)
	os.WriteFile(filepath.Join(w.stateDir(), "state.json"), []byte("{\"secrets\": [tru"), 0o600)
	if _, errOut, code := w.egoagent("status"); code == 0 || !strings.Contains(errOut, "moves it aside") {
		t.Fatalf("status: %d %q", code, errOut)
	}
	out, errOut, code := w.egoagent("sync")
	if code != 0 || !strings.Contains(out, "api: fresh") || !strings.Contains(out, "note: the state file was damaged") {
		t.Fatalf("sync: %d %q %q", code, out, errOut)
	}
	if _, _, code := w.egoagent("status"); code != 0 {
		t.Fatalf("status after sync: %d", code)
	}
}
