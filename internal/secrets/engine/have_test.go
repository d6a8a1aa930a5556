package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/source/sourcetest"
)

const versionedConfig = jsonSecret + `
[[mirror]]
vault = "egoengine"
prefix = "home/"
`

// With a source that keeps item versions, a pass asks only for what the
// home does not already hold: nothing when nothing changed, the one item
// that did, a file deleted or changed here, everything with force.
func TestAPassSkipsWhatTheHomeAlreadyHolds(t *testing.T) {
	const cfgRef, docRef, doc2Ref = "op://egoengine/Service/config.json", "op://egoengine/home/.a", "op://egoengine/home/.b"
	h := newHarness(t, versionedConfig, map[string]string{cfgRef: `{"v":1}`, docRef: "a1", doc2Ref: "b1"})
	src := sourcetest.Versioned{Scripted: h.src}
	h.eng.Source = src
	sent := func(when string, opts Options, want int) *Report {
		t.Helper()
		before := src.Sent()
		rep := h.pass(opts)
		if got := src.Sent() - before; got != want || !rep.OK() {
			t.Fatalf("%s: %d values sent, want %d; report %+v", when, got, want, rep.Outcomes)
		}
		return rep
	}

	sent("first pass", Options{}, 3)
	rep := sent("unchanged", Options{}, 0)
	for _, o := range rep.Outcomes {
		if o.Written || o.State != status.Fresh || o.Note != "unchanged" {
			t.Fatalf("unchanged: %+v", o)
		}
	}

	h.src.Set(docRef, "a2")
	if rep := sent("one changed", Options{}, 1); h.read(".a") != "a2" || !outcome(rep, "home/.a").Written {
		t.Fatalf("a new version was not installed in the pass that saw it: %q", h.read(".a"))
	}

	os.Remove(filepath.Join(h.home, ".b"))
	os.WriteFile(filepath.Join(h.home, ".config/svc/config.json"), []byte(`{"edited":true}`), 0o600)
	sent("deleted and edited here", Options{}, 2)
	if h.read(".b") != "b1" || h.read(".config/svc/config.json") != `{"v":1}` {
		t.Fatal("a deleted or edited file was not put back")
	}

	sent("forced", Options{Force: true}, 3)

	// A state from an egoagent that kept no versions.
	st, _ := status.Load(h.eng.StateDir)
	for i := range st.Secrets {
		st.Secrets[i].Version = ""
	}
	if err := status.Save(h.eng.StateDir, st); err != nil {
		t.Fatal(err)
	}
	sent("old state", Options{}, 3)
	sent("after the old state", Options{}, 0)
}

// A consumer's rewrite is compared with 1Password's copy at every pass, so
// its value is always sent.
func TestARewrittenFileIsSentAgain(t *testing.T) {
	const ref = "op://egoengine/Tool/state.json"
	h := newHarness(t, rewrittenSecret, map[string]string{ref: `{"gen":1}`})
	src := sourcetest.Versioned{Scripted: h.src}
	h.eng.Source = src
	h.pass(Options{})
	os.WriteFile(filepath.Join(h.home, ".tool/state.json"), []byte(`{"gen":2}`), 0o600)
	before := src.Sent()
	if o := h.pass(Options{}).Outcomes[0]; o.State != status.Kept || src.Sent()-before != 1 {
		t.Fatalf("kept file: %+v, %d sent", o, src.Sent()-before)
	}
	before = src.Sent()
	h.pass(Options{})
	if src.Sent()-before != 1 {
		t.Fatal("a kept file's item was not sent for comparison")
	}
}

func outcome(rep *Report, name string) Outcome {
	for _, o := range rep.Outcomes {
		if o.Name == name {
			return o
		}
	}
	return Outcome{}
}
