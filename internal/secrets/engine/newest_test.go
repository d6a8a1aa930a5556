package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// The rule table of docs/egoagent.md ("Newest wins"), one row a test. The
// Codex CLI is left out (a path where none is), so the file's own rules and
// dates decide: what the CLI adds is tested in codex_test.go.

const authPath = ".codex/auth.json"

func newestHarness(t *testing.T, writeBack bool, in1Password []byte) *harness {
	t.Helper()
	wb := ""
	if writeBack {
		wb = "write_back = true\n"
	}
	h := newHarness(t, `
[[secret]]
name = "codex"
ref = "`+codexRef+`"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
`+wb, map[string]string{codexRef: string(in1Password)})
	h.eng.Checker = check.New(check.Options{CodexCommand: filepath.Join(t.TempDir(), "no-codex"), StageDir: t.TempDir()})
	return h
}

// renewal is a Codex file renewed minutes ago, as Codex writes it.
func renewal(minutesAgo int, rt string) []byte {
	lr := time.Now().Add(-time.Duration(minutesAgo) * time.Minute).Truncate(time.Second)
	return checktest.ChatGPT{LastRefresh: lr, Expires: lr.Add(10 * 24 * time.Hour), RefreshToken: rt}.JSON()
}

// codexWrites rewrites auth.json in place, as Codex does.
func (h *harness) codexWrites(content []byte) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.home, authPath), content, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) in1Password() string { return string(h.src.Value(codexRef)) }

func TestNewestNoLocalFileInstallsTheFetchedCopy(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	o := h.pass(Options{}).Outcomes[0]
	if !o.Written || h.read(authPath) != h.in1Password() || h.src.Writes() != 0 {
		t.Fatalf("%+v", o)
	}
}

func TestNewestFetchedNewerIsInstalled(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	h.codexWrites(renewal(30, "rt-2")) // this workspace renewed
	h.src.Set(codexRef, string(renewal(10, "rt-3")))
	o := h.pass(Options{}).Outcomes[0]
	if !o.Written || !strings.Contains(h.read(authPath), "rt-3") || !strings.HasPrefix(o.Note, "1Password's copy is newer: last_refresh") {
		t.Fatalf("%+v", o)
	}
	if s := h.state("codex"); s.Newer != status.NewerSource || s.RefreshAt.IsZero() || s.LastRefresh.IsZero() || s.WriteBack != nil {
		t.Fatalf("state %+v", s)
	}
	if h.src.Writes() != 0 {
		t.Fatal("an older copy was uploaded")
	}
}

func TestNewestLocalNewerIsKeptWithoutWriteBack(t *testing.T) {
	h := newestHarness(t, false, renewal(60, "rt-1"))
	h.pass(Options{})
	local := renewal(5, "rt-2")
	h.codexWrites(local)
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Kept || o.Written || h.read(authPath) != string(local) || !strings.Contains(o.Note, "write_back = true would upload it") {
		t.Fatalf("%+v", o)
	}
	if h.src.Writes() != 0 || strings.Contains(h.in1Password(), "rt-2") {
		t.Fatal("uploaded without write_back")
	}
	if s := h.state("codex"); s.Newer != status.NewerLocal {
		t.Fatalf("newer = %q", s.Newer)
	}
}

func TestNewestLocalNewerIsUploaded(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	local := renewal(5, "rt-2")
	h.codexWrites(local)
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Fresh || o.Written || h.in1Password() != string(local) || h.read(authPath) != string(local) {
		t.Fatalf("%+v; 1Password holds rt-2: %v", o, strings.Contains(h.in1Password(), "rt-2"))
	}
	s := h.state("codex")
	if s.WriteBack == nil || !s.WriteBack.OK || !strings.HasPrefix(s.WriteBack.Note, "uploaded: last_refresh") || s.Newer != status.NewerLocal {
		t.Fatalf("state %+v %+v", s, s.WriteBack)
	}
	// The next pass finds the two agree: nothing written, nothing uploaded.
	if o := h.pass(Options{}).Outcomes[0]; o.Written || o.Note != "unchanged" || h.src.Writes() != 1 {
		t.Fatalf("after upload: %+v, %d writes", o, h.src.Writes())
	}
}

// egoagent installed it from 1Password, and 1Password went back to an
// older version since: keep the newer file, upload nothing.
func TestNewestOwnCopyIsNeverUploaded(t *testing.T) {
	h := newestHarness(t, true, renewal(5, "rt-2"))
	h.pass(Options{})
	h.src.Set(codexRef, string(renewal(60, "rt-1")))
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Kept || !strings.Contains(h.read(authPath), "rt-2") || h.src.Writes() != 0 || !strings.Contains(o.Note, "older copy than the one egoagent installed") {
		t.Fatalf("%+v, %d writes", o, h.src.Writes())
	}
}

func TestNewestLocalNewerButFailingIsNotReplacedByAnOlderCopy(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	local := renewal(5, "rt-2")
	h.codexWrites(local)
	// Codex now says the file is no good (a stand-in that always says so).
	h.eng.Checker = check.New(check.Options{CodexCommand: failingCodex(t), StageDir: t.TempDir()})
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Stale || o.Class != ClassCheck || h.read(authPath) != string(local) || h.src.Writes() != 0 {
		t.Fatalf("%+v", o)
	}
	if !strings.Contains(o.Error, "newer than 1Password's copy") || !strings.Contains(o.Error, "refresh --force codex") {
		t.Fatalf("error does not say what to do: %q", o.Error)
	}
}

func TestNewestSameRenewalInOtherBytesIsKept(t *testing.T) {
	same := renewal(30, "rt-1")
	h := newestHarness(t, true, same)
	h.pass(Options{})
	reformatted := []byte(strings.ReplaceAll(string(same), "\n  ", "\n\t"))
	h.codexWrites(reformatted)
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Kept || h.read(authPath) != string(reformatted) || h.src.Writes() != 0 || !strings.Contains(o.Note, "same renewal") {
		t.Fatalf("%+v", o)
	}
}

// A file without dates (an API key) follows the rule for undated files:
// changed since egoagent wrote it and still good, it is kept.
func TestNewestUndatedFallsBackToConsumerRewrites(t *testing.T) {
	h := newestHarness(t, true, renewal(30, "rt-1"))
	h.pass(Options{})
	h.codexWrites(checktest.APIKey(""))
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Kept || !strings.Contains(o.Note, "changed since egoagent wrote it") || h.src.Writes() != 0 {
		t.Fatalf("%+v", o)
	}
}

func TestNewestForceInstallsTheOlderCopy(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	h.codexWrites(renewal(5, "rt-2"))
	o := h.pass(Options{Force: true}).Outcomes[0]
	if !o.Written || !strings.Contains(h.read(authPath), "rt-1") || !strings.HasPrefix(o.Note, "forced:") || h.src.Writes() != 0 {
		t.Fatalf("%+v", o)
	}
}

// Another workspace uploads a newer copy between this pass's fetch and its
// upload: the compare and swap fails, and that newer copy is installed.
func TestNewestLosesTheRaceToANewerUpload(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	h.codexWrites(renewal(10, "rt-2"))
	other := renewal(2, "rt-9")
	h.src.BeforeReplace(func() { h.src.Set(codexRef, string(other)) })
	o := h.pass(Options{}).Outcomes[0]
	if !o.Written || h.read(authPath) != string(other) || h.in1Password() != string(other) || !strings.Contains(o.Note, "changed during the upload and is newer") {
		t.Fatalf("%+v", o)
	}
}

// The copy that turned up meanwhile is older still: the upload is tried
// again against it, and wins.
func TestNewestRetriesAgainstAnOlderInterloper(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	local := renewal(10, "rt-2")
	h.codexWrites(local)
	once := false
	h.src.BeforeReplace(func() {
		if !once {
			once = true
			h.src.Set(codexRef, string(renewal(50, "rt-old")))
		}
	})
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Fresh || h.in1Password() != string(local) || h.src.Writes() != 1 {
		t.Fatalf("%+v", o)
	}
}

func TestNewestReadOnlyTokenKeepsTheFileAndSaysWhy(t *testing.T) {
	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	local := renewal(5, "rt-2")
	h.codexWrites(local)
	h.src.FailWrites(source.ClassReadOnly)
	rep := h.pass(Options{})
	o := rep.Outcomes[0]
	if o.State != status.Kept || o.Class != source.ClassReadOnly || !strings.HasPrefix(o.Error, "write-back: ") || h.read(authPath) != string(local) {
		t.Fatalf("%+v", o)
	}
	if !rep.OK() {
		t.Fatal("a failed upload made the pass fail: the file in place is good")
	}
	if s := h.state("codex"); s.WriteBack == nil || s.WriteBack.OK || s.WriteBack.Class != source.ClassReadOnly {
		t.Fatalf("state %+v", s.WriteBack)
	}
}

// Codex truncates auth.json and writes it again. A pass that comes in the
// middle judges nothing: no replace, no upload, and it says so.
func TestNewestMidWriteIsNeitherReplacedNorUploaded(t *testing.T) {
	settleQuiet, settleMax = 100*time.Millisecond, 600*time.Millisecond
	t.Cleanup(func() { settleQuiet, settleMax = 250*time.Millisecond, 5*time.Second })

	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	path := filepath.Join(h.home, authPath)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a slow writer, a byte every 5 ms, until stopped
		defer close(done)
		defer f.Close()
		next := renewal(1, "rt-2")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				f.Write(next[i%len(next) : i%len(next)+1])
			}
		}
	}()
	o := h.pass(Options{}).Outcomes[0]
	close(stop)
	<-done
	if o.Class != ClassBusy || o.Written || h.src.Writes() != 0 || !strings.Contains(o.Error, "kept changing") {
		t.Fatalf("%+v, %d writes", o, h.src.Writes())
	}
	if h.read(authPath) == h.in1Password() {
		t.Fatal("the half-written file was replaced with 1Password's copy")
	}
}

// A last_refresh far in the future is not believed: the expiry decides.
func TestNewestFutureDateDoesNotWin(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	forged := checktest.ChatGPT{LastRefresh: now.Add(365 * 24 * time.Hour), Expires: now.Add(time.Hour), RefreshToken: "rt-forged"}.JSON()
	h := newestHarness(t, true, forged)
	h.pass(Options{})
	h.codexWrites(forged) // as if Codex had it; egoagent did not write it
	h.src.Set(codexRef, string(checktest.ChatGPT{LastRefresh: now.Add(-time.Minute), Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-real"}.JSON()))
	o := h.pass(Options{}).Outcomes[0]
	if !o.Written || !strings.Contains(h.read(authPath), "rt-real") || !strings.Contains(o.Note, "access token's expiry") {
		t.Fatalf("%+v", o)
	}
}

func failingCodex(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "codex")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho 'Not logged in' >&2\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// A writer that pauses longer than the settle wait leaves a file that is
// still and half written: it is not taken for a broken file until it has
// been left alone for brokenGrace.
func TestNewestPausedWriterIsNotTakenForBroken(t *testing.T) {
	settleQuiet, settleMax = 20*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { settleQuiet, settleMax = 250*time.Millisecond, 5*time.Second })

	h := newestHarness(t, true, renewal(60, "rt-1"))
	h.pass(Options{})
	next := renewal(1, "rt-2")
	h.codexWrites(next[:len(next)/2]) // then the writer stalls
	o := h.pass(Options{}).Outcomes[0]
	if o.Class != ClassBusy || o.Written || h.read(authPath) != string(next[:len(next)/2]) || h.src.Writes() != 0 {
		t.Fatalf("%+v", o)
	}
	h.codexWrites(next) // the writer finishes
	if o := h.pass(Options{}).Outcomes[0]; o.State != status.Fresh || h.in1Password() != string(next) {
		t.Fatalf("after the write: %+v", o)
	}
}
