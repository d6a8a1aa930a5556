package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/status"
)

// shortGrace shortens the settle rule for one test.
func shortGrace(t *testing.T, grace time.Duration) {
	oldGrace, oldMax := brokenGrace, settleMax
	brokenGrace, settleMax = grace, grace/2
	t.Cleanup(func() { brokenGrace, settleMax = oldGrace, oldMax })
}

// breakRewrite installs {"gen":1} through a pass, then rewrites the file
// broken, as a consumer caught mid-write would leave it.
func breakRewrite(t *testing.T) (*harness, string) {
	const ref = "op://egoengine/Tool/state.json"
	h := newHarness(t, rewrittenSecret, map[string]string{ref: `{"gen":1}`})
	h.pass(Options{})
	p := filepath.Join(h.home, ".tool/state.json")
	if err := os.WriteFile(p, []byte(`{"gen":`), 0o600); err != nil {
		t.Fatal(err)
	}
	return h, p
}

// A file that fails its check but was written a moment ago is left alone,
// and nothing anywhere calls it fresh or ok: not the outcome, not the
// report, not the state, not status's exit rule, not metadata.
func TestAJustBrokenFileIsSettlingNotFresh(t *testing.T) {
	h, _ := breakRewrite(t)
	rep := h.pass(Options{})
	o := rep.Outcomes[0]
	if o.Written || o.State != status.Settling || o.Class != ClassBusy || rep.OK() {
		t.Fatalf("outcome %+v (report ok %v)", o, rep.OK())
	}
	if !strings.Contains(o.Error, "the daemon judges it once it has been left alone") {
		t.Fatalf("a daemon's pass should say the daemon looks again: %q", o.Error)
	}
	st, err := status.Load(h.eng.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Find("tool"); s.State != status.Settling || status.OK(s.State) || st.LastPass.OK {
		t.Fatalf("state %+v, last pass ok %v", s, st.LastPass.OK)
	}
	if line := status.Metadata(st, time.Now()); strings.HasPrefix(line, "ok") || !strings.Contains(line, "tool settling") {
		t.Fatalf("metadata %q", line)
	}
}

// A pass nobody follows up (sync, refresh without a daemon) waits for the
// file to be left alone, then judges it: the broken rewrite is replaced.
func TestAWaitingPassJudgesTheFileOnceLeftAlone(t *testing.T) {
	shortGrace(t, 600*time.Millisecond)
	h, _ := breakRewrite(t)
	begin := time.Now()
	rep := h.pass(Options{Wait: true})
	o := rep.Outcomes[0]
	if !o.Written || o.State != status.Fresh || !rep.OK() || h.read(".tool/state.json") != `{"gen":1}` {
		t.Fatalf("outcome %+v", o)
	}
	if waited := time.Since(begin); waited < brokenGrace/2 {
		t.Fatalf("judged after %s: it did not wait for the file to be left alone", waited)
	}
	if !strings.Contains(o.Note, "fails its check") {
		t.Fatalf("note %q", o.Note)
	}
}

// A file whose program never stops writing it is not waited for past the
// bound; the outcome says to run egoagent again, and promises nothing.
func TestAWaitingPassGivesUpOnAFileThatKeepsChanging(t *testing.T) {
	shortGrace(t, 400*time.Millisecond)
	h, p := breakRewrite(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				os.WriteFile(p, []byte(`{"gen":`), 0o600)
			}
		}
	}()
	rep := h.pass(Options{Wait: true})
	close(stop)
	<-done
	o := rep.Outcomes[0]
	if o.Written || o.State != status.Settling || rep.OK() {
		t.Fatalf("outcome %+v", o)
	}
	if !strings.Contains(o.Error, "run egoagent refresh tool once its program has stopped writing it") || strings.Contains(o.Error, "daemon") {
		t.Fatalf("error %q", o.Error)
	}
}

// The installed file is 1Password's copy and unchanged, but the copy fails
// the check the configuration now asks for: not fresh.
func TestAnUnchangedFileThatFailsItsCheckIsNotFresh(t *testing.T) {
	const ref = "op://egoengine/Service/config.json"
	unchecked := strings.Replace(jsonSecret, `check = "json"`, "", 1)
	h := newHarness(t, unchecked, map[string]string{ref: `not json`})
	if rep := h.pass(Options{}); !rep.OK() || !rep.Outcomes[0].Written {
		t.Fatalf("first pass, no check: %+v", rep.Outcomes[0])
	}
	h2 := newHarnessAt(t, h.home, jsonSecret, map[string]string{ref: `not json`})
	rep := h2.pass(Options{})
	if o := rep.Outcomes[0]; rep.OK() || o.State == status.Fresh || o.Class != ClassCheck || !strings.Contains(o.Error, "fails its check") {
		t.Fatalf("outcome %+v", o)
	}
	// Fixed in 1Password: fresh again.
	h2.src.Set(ref, `{"ok":true}`)
	if rep := h2.pass(Options{}); !rep.OK() || !rep.Outcomes[0].Written {
		t.Fatalf("after the fix: %+v", rep.Outcomes[0])
	}
}

// The check of an unchanged file runs once per content: a pass over a file
// that already passed costs no check.
func TestAnUnchangedFileIsCheckedOnce(t *testing.T) {
	h := newHarness(t, jsonSecret, map[string]string{"op://egoengine/Service/config.json": `{"v":1}`})
	h.pass(Options{})
	before := h.state("cfg")
	if before.Verified == "" {
		t.Fatal("a written file that passed its check is not recorded as verified")
	}
	h.pass(Options{})
	if after := h.state("cfg"); !after.Checked.Equal(before.Checked) || after.State != status.Fresh {
		t.Fatalf("the check ran again on an unchanged file: %v then %v", before.Checked, after.Checked)
	}
}
