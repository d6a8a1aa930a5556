package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/health/statedir"
)

// A Codex secret with write-back over the directory source, the Codex
// check without a CLI (the file's own rules decide), and a schedule far off:
// only the watcher acts.
const writeBackSecret = `
[schedule]
refresh = "@every 24h"
jitter = "0s"

[check]
codex_command = "/nonexistent/codex"

[[secret]]
name = "codex"
ref = "op://v/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
write_back = true
`

// Codex rewrites auth.json in place, truncating it first, and here slowly:
// longer than a pass waits for a file to settle. The daemon must neither put
// 1Password's older copy over the half-written file nor upload it; once the
// file is whole and newer, it goes up, whole.
func TestDaemonWaitsOutASlowRewriteThenUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("7 s of a slow writer in real time; make test runs it")
	}
	w := newWorkspace(t, writeBackSecret)
	now := time.Now().Truncate(time.Second)
	old := checktest.ChatGPT{LastRefresh: now.Add(-time.Hour), Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-old"}.JSON()
	renewed := checktest.ChatGPT{LastRefresh: now, Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-new"}.JSON()
	w.put("op://v/Codex Auth/auth.json", string(old))
	if out, errOut, code := w.egoagent("start"); code != 0 {
		t.Fatalf("start: %d %s %s", code, out, errOut)
	}
	auth := filepath.Join(w.home, ".codex", "auth.json")
	vault := filepath.Join(w.vault, "v", "Codex Auth", "auth.json")

	// Watch both files every 10 ms while Codex writes: the vault only ever
	// holds one whole copy or the other, and the installed file never goes
	// back to the old copy once Codex has begun.
	stop := make(chan struct{})
	done := make(chan struct{}) // the watch has ended: none outlives the test
	bad := make(chan string, 1)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if v, _ := os.ReadFile(vault); string(v) != string(old) && string(v) != string(renewed) {
				bad <- "1Password held a partial copy: " + string(v)
				return
			}
			if h, _ := os.ReadFile(auth); string(h) == string(old) {
				bad <- "the old copy was put back over the file Codex was writing"
				return
			}
		}
	}()
	began := time.Now()
	f, err := os.OpenFile(auth, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(renewed); i += 64 { // about 7 s in all
		time.Sleep(300 * time.Millisecond)
		f.Write(renewed[i:min(i+64, len(renewed))])
	}
	f.Close()

	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(w.stateDir(), statedir.LogFile))
			t.Logf("log:\n%s", log)
			out, _, _ := w.egoagent("status")
			t.Logf("status:\n%s", out)
		}
	}()
	eventually(t, 20*time.Second, "the renewed file is uploaded", func() bool {
		v, _ := os.ReadFile(vault)
		return string(v) == string(renewed)
	})
	close(stop)
	<-done
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	// The pass saves its state after the upload, so the state may lag the
	// vault by a moment. Only the write-back record is looked at: which copy
	// is newer is what the pass saw, and the next pass (a retry already
	// planned while the file was being written may follow at once) finds
	// the two the same.
	uploaded := func() bool {
		sec := w.state().Find("codex")
		return sec != nil && sec.WriteBack != nil && sec.WriteBack.OK && !sec.WriteBack.At.Before(began.Truncate(time.Second)) &&
			strings.HasPrefix(sec.WriteBack.Note, "uploaded")
	}
	eventually(t, 10*time.Second, "the state records the upload", uploaded)
	if w.read(".codex/auth.json") != string(renewed) {
		t.Fatalf("installed file after upload: %q", w.read(".codex/auth.json"))
	}
	log, _ := os.ReadFile(filepath.Join(w.stateDir(), statedir.LogFile))
	if !strings.Contains(string(log), "file still being written; not judged") {
		t.Fatal("no pass met the file mid-write: the test did not test the wait")
	}
}
