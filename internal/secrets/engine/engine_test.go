package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/sourcetest"
)

// harness is an engine over a scripted source in a throwaway home, with
// its log captured so tests can search it.
type harness struct {
	t    *testing.T
	home string
	src  *sourcetest.Scripted
	eng  *Engine
	logs *bytes.Buffer
}

func newHarness(t *testing.T, configTOML string, values map[string]string) *harness {
	t.Helper()
	return newHarnessAt(t, t.TempDir(), configTOML, values)
}

// newHarnessAt is newHarness on an existing home: another configuration
// for the files and state of an earlier harness.
func newHarnessAt(t *testing.T, home, configTOML string, values map[string]string) *harness {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(configTOML), config.Env{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zapcore.DebugLevel)
	h := &harness{t: t, home: home, src: sourcetest.New(values), logs: logs}
	stateDir := statedir.Path(home)
	h.eng = &Engine{
		Config: cfg, Source: h.src, Home: home, StateDir: stateDir, Log: zap.New(core),
		Checker: check.New(check.Options{StageDir: filepath.Join(stateDir, statedir.StageDir), Timeout: 10 * time.Second}),
	}
	return h
}

func (h *harness) pass(opts Options) *Report {
	h.t.Helper()
	rep, err := h.eng.Pass(context.Background(), opts)
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func (h *harness) state(name string) status.Secret {
	h.t.Helper()
	st, err := status.Load(h.eng.StateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	s := st.Find(name)
	if s == nil {
		h.t.Fatalf("no state for %q", name)
	}
	return *s
}

func (h *harness) read(rel string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.home, rel))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

const jsonSecret = `
[[secret]]
name = "cfg"
ref = "op://egoengine/Service/config.json"
path = "~/.config/svc/config.json"
check = "json"
`

func TestPassWritesThenLeavesUnchangedFilesAlone(t *testing.T) {
	h := newHarness(t, jsonSecret, map[string]string{"op://egoengine/Service/config.json": `{"v":1}`})
	rep := h.pass(Options{Trigger: status.TriggerSync})
	if !rep.OK() || !rep.Outcomes[0].Written || rep.Calls != 1 {
		t.Fatalf("first pass: %+v", rep)
	}
	p := filepath.Join(h.home, ".config/svc/config.json")
	fi1, _ := os.Stat(p)
	if fi1.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi1.Mode())
	}

	rep = h.pass(Options{Trigger: status.TriggerSync})
	fi2, _ := os.Stat(p)
	if rep.Outcomes[0].Written || !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("an unchanged secret was written again: %+v", rep.Outcomes[0])
	}
	if s := h.state("cfg"); s.State != status.Fresh || s.Note != "unchanged" {
		t.Fatalf("state %+v", s)
	}

	h.src.Set("op://egoengine/Service/config.json", `{"v":2}`)
	if rep = h.pass(Options{}); !rep.Outcomes[0].Written || h.read(".config/svc/config.json") != `{"v":2}` {
		t.Fatalf("a changed secret was not installed: %+v", rep.Outcomes[0])
	}
}

func TestFailedFetchKeepsTheInstalledFile(t *testing.T) {
	h := newHarness(t, jsonSecret, map[string]string{"op://egoengine/Service/config.json": `{"v":1}`})
	h.pass(Options{})
	for _, class := range []source.Class{source.ClassUnreachable, source.ClassRateLimited, source.ClassInvalidToken} {
		h.src.Fail(class)
		rep := h.pass(Options{})
		if rep.OK() || rep.Outcomes[0].Class != class {
			t.Fatalf("%s: outcome %+v", class, rep.Outcomes[0])
		}
		if got := h.read(".config/svc/config.json"); got != `{"v":1}` {
			t.Fatalf("%s: installed file became %q", class, got)
		}
	}
	s := h.state("cfg")
	if s.State != status.Stale || s.StaleSince.IsZero() || s.Failures != 3 || s.Fetched.IsZero() {
		t.Fatalf("state after failures: %+v", s)
	}
	first := s.StaleSince
	h.pass(Options{})
	if h.state("cfg").StaleSince != first {
		t.Fatal("stale-since moved during one run of failures")
	}
	h.src.Fail("")
	h.pass(Options{})
	if s := h.state("cfg"); s.State != status.Fresh || !s.StaleSince.IsZero() || s.Error != "" {
		t.Fatalf("state after recovery: %+v", s)
	}
}

func TestFailureWithNothingInstalledIsMissing(t *testing.T) {
	h := newHarness(t, jsonSecret, nil)
	rep := h.pass(Options{})
	if rep.OK() || rep.Outcomes[0].State != status.Missing || rep.Outcomes[0].Class != source.ClassNotFound {
		t.Fatalf("%+v", rep.Outcomes[0])
	}
}

func TestCandidateFailingItsCheckIsNotInstalled(t *testing.T) {
	h := newHarness(t, jsonSecret, map[string]string{"op://egoengine/Service/config.json": `{"v":1}`})
	h.pass(Options{})
	h.src.Set("op://egoengine/Service/config.json", `{"v":`)
	rep := h.pass(Options{})
	if rep.OK() || rep.Outcomes[0].Class != ClassCheck {
		t.Fatalf("%+v", rep.Outcomes[0])
	}
	if got := h.read(".config/svc/config.json"); got != `{"v":1}` {
		t.Fatalf("installed file became %q", got)
	}
}

const rewrittenSecret = `
[[secret]]
name = "tool"
ref = "op://egoengine/Tool/state.json"
path = "~/.tool/state.json"
check = "json"
policy = "consumer-rewrites"
`

func TestConsumerRewritesPolicy(t *testing.T) {
	const ref = "op://egoengine/Tool/state.json"
	h := newHarness(t, rewrittenSecret, map[string]string{ref: `{"gen":1}`})
	h.pass(Options{})

	// The consumer rewrites its file; the 1Password copy is now older.
	p := filepath.Join(h.home, ".tool/state.json")
	os.WriteFile(p, []byte(`{"gen":2}`), 0o600)
	rep := h.pass(Options{})
	if o := rep.Outcomes[0]; o.State != status.Kept || o.Written || h.read(".tool/state.json") != `{"gen":2}` {
		t.Fatalf("the consumer's newer file was not kept: %+v", o)
	}
	if !rep.OK() {
		t.Fatal("a kept file should count as fine")
	}

	// --force replaces it and says so.
	rep = h.pass(Options{Names: []string{"tool"}, Force: true})
	if o := rep.Outcomes[0]; !o.Written || !strings.Contains(o.Note, "forced") || h.read(".tool/state.json") != `{"gen":1}` {
		t.Fatalf("force: %+v", o)
	}

	// A broken local file is left alone while it may still be being
	// written, then replaced by the 1Password copy.
	os.WriteFile(p, []byte(`garbage`), 0o600)
	rep = h.pass(Options{})
	if o := rep.Outcomes[0]; o.Written || o.Class != ClassBusy || h.read(".tool/state.json") != `garbage` {
		t.Fatalf("a file broken just now was judged: %+v", o)
	}
	if o := h.pass(Options{Force: true}).Outcomes[0]; !o.Written || h.read(".tool/state.json") != `{"gen":1}` {
		t.Fatalf("--force did not replace a file broken just now: %+v", o)
	}
	os.WriteFile(p, []byte(`garbage`), 0o600)
	past := time.Now().Add(-brokenGrace)
	os.Chtimes(p, past, past)
	rep = h.pass(Options{})
	if o := rep.Outcomes[0]; !o.Written || !strings.Contains(o.Note, "fails its check") || h.read(".tool/state.json") != `{"gen":1}` {
		t.Fatalf("broken local file: %+v", o)
	}

	// A missing one comes back.
	os.Remove(p)
	if rep = h.pass(Options{}); !rep.Outcomes[0].Written {
		t.Fatalf("missing file: %+v", rep.Outcomes[0])
	}

	// A file egoagent did not write (a home from before egoagent) is kept too.
	h2 := newHarness(t, rewrittenSecret, map[string]string{ref: `{"gen":1}`})
	os.MkdirAll(filepath.Join(h2.home, ".tool"), 0o700)
	os.WriteFile(filepath.Join(h2.home, ".tool/state.json"), []byte(`{"gen":9}`), 0o600)
	if o := h2.pass(Options{}).Outcomes[0]; o.State != status.Kept {
		t.Fatalf("pre-existing file: %+v", o)
	}
}

const mirrorConfig = `
[[mirror]]
vault = "egoengine"
`

func TestMirrorWritesHomeDocumentsAndRefusesEscapes(t *testing.T) {
	h := newHarness(t, mirrorConfig, map[string]string{
		"op://egoengine/home/.ssh/config":   "Host *\n",
		"op://egoengine/home/../etc/passwd": "evil",
		"op://egoengine/home/link/x":        "through a link",
		"op://egoengine/notes":              "not under home/",
	})
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(h.home, "link"))

	rep := h.pass(Options{})
	got := map[string]Outcome{}
	for _, o := range rep.Outcomes {
		got[o.Name] = o
	}
	if len(got) != 3 {
		t.Fatalf("outcomes %+v", rep.Outcomes)
	}
	if o := got["home/.ssh/config"]; !o.Written || h.read(".ssh/config") != "Host *\n" {
		t.Fatalf("mirror: %+v", o)
	}
	if o := got["home/../etc/passwd"]; o.Written || !strings.Contains(o.Error, `"home/../etc/passwd"`) || !strings.Contains(o.Error, "..") {
		t.Fatalf("escape by ..: %+v", o)
	}
	if o := got["home/link/x"]; o.Written || !strings.Contains(o.Error, "link") {
		t.Fatalf("escape through a symlink: %+v", o)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("something was written through the link")
	}
}

func TestUnknownNameIsAUsageError(t *testing.T) {
	h := newHarness(t, jsonSecret, nil)
	_, err := h.eng.Pass(context.Background(), Options{Names: []string{"nope"}})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "cfg") {
		t.Fatalf("err = %v", err)
	}
}

// A canary value must never reach the log, the state file or a report,
// whether the pass succeeds or a check rejects it.
func TestCanaryNeverLeaks(t *testing.T) {
	const canary = "CANARY-7f3a9c-secret-value"
	h := newHarness(t, jsonSecret+rewrittenSecret+mirrorConfig, map[string]string{
		"op://egoengine/Service/config.json": `{"token":"` + canary + `"}`,
		"op://egoengine/Tool/state.json":     `not json ` + canary,
		"op://egoengine/home/.netrc":         canary,
	})
	var reports []*Report
	reports = append(reports, h.pass(Options{}))
	h.src.Fail(source.ClassUnreachable)
	reports = append(reports, h.pass(Options{}))

	st, _ := os.ReadFile(filepath.Join(h.eng.StateDir, statedir.StateFile))
	rj, _ := json.Marshal(reports)
	for what, b := range map[string][]byte{"log": h.logs.Bytes(), "state": st, "report": rj} {
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("the canary appears in the %s", what)
		}
	}
	if !strings.Contains(h.read(".config/svc/config.json"), canary) {
		t.Fatal("the canary secret itself was not installed: the test proves nothing")
	}
}
