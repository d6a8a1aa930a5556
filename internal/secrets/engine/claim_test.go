package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

func outcomes(rep *Report) map[string]Outcome {
	m := map[string]Outcome{}
	for _, o := range rep.Outcomes {
		m[o.Name] = o
	}
	return m
}

// A vault's Document titles must never reach egoagent's own files: the
// fingerprint key, the state, the locks, the staging folder, the config.
func TestMirrorNeverWritesEgoagentsOwnFiles(t *testing.T) {
	titles := []string{
		"home/.local/state/egoagent/fingerprint.key",
		"home/.local/state/egoagent/state.json",
		"home/.local/state/egoagent/lock",
		"home/.local/state/egoagent/daemon.lock",
		"home/.local/state/egoagent/stage/auth.json",
		"home/.local/state/egoagent",
		"home/.config/egoagent/config.toml",
	}
	values := map[string]string{"op://egoengine/home/.ok": "fine"}
	for _, title := range titles {
		values["op://egoengine/"+title] = "planted by the vault"
	}
	h := newHarness(t, mirrorConfig, values)
	h.eng.Config.File = filepath.Join(h.home, ".config/egoagent/config.toml")

	// A first pass creates the key and the state; the second must leave them be.
	h.pass(Options{})
	key := h.read(".local/state/egoagent/fingerprint.key")
	rep := h.pass(Options{})

	got := outcomes(rep)
	for _, title := range titles {
		o := got[title]
		if o.State != status.Refused || o.Class != ClassRefused || o.Written {
			t.Errorf("%s: %+v", title, o)
		}
	}
	if o := got["home/.ok"]; o.State != status.Fresh {
		t.Fatalf("an ordinary Document was not installed: the test proves nothing: %+v", o)
	}
	if h.read(".local/state/egoagent/fingerprint.key") != key {
		t.Fatal("the fingerprint key was replaced")
	}
	filepath.WalkDir(filepath.Join(h.home, ".local/state/egoagent"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "planted") {
				t.Errorf("%s holds the vault's content", p)
			}
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(h.home, ".config/egoagent/config.toml")); err == nil {
		t.Fatal("the configuration file was written")
	}
}

// A configured secret whose path is inside the state folder is refused by
// the engine too, whatever the config loader let through.
func TestConfiguredSecretInTheStateFolderIsRefused(t *testing.T) {
	for _, p := range []string{"~/.local/state/egoagent/state.json", "~/.local/state/egoagent/fingerprint.key", "~/.local/state/egoagent/stage/x"} {
		h := newHarness(t, `
[[secret]]
name = "bad"
ref = "op://egoengine/Bad/field"
path = "`+p+`"
`, map[string]string{"op://egoengine/Bad/field": "planted"})
		o := h.pass(Options{}).Outcomes[0]
		if o.State != status.Refused || o.Written || !strings.Contains(o.Error, "state folder") {
			t.Errorf("%s: %+v", p, o)
		}
		if s := h.state("bad"); s.State != status.Refused {
			t.Errorf("%s: the state file was not kept: %+v", p, s)
		}
	}
}

// A configured secret's path belongs to it: a Document mapping there is
// refused, on every pass and in passes that name only the Document, and
// both outcomes say so.
func TestConfiguredSecretWinsOverAMirroredDocument(t *testing.T) {
	h := newHarness(t, jsonSecret+mirrorConfig, map[string]string{
		"op://egoengine/Service/config.json":          `{"from":"secret"}`,
		"op://egoengine/home/.config/svc/config.json": `{"from":"document"}`,
	})
	for i := 0; i < 3; i++ {
		got := outcomes(h.pass(Options{}))
		doc := got["home/.config/svc/config.json"]
		if doc.State != status.Refused || doc.Written || !strings.Contains(doc.Error, `secret "cfg"`) {
			t.Fatalf("pass %d: the Document: %+v", i, doc)
		}
		sec := got["cfg"]
		if !status.OK(sec.State) || !strings.Contains(sec.Note, `"home/.config/svc/config.json"`) {
			t.Fatalf("pass %d: the secret does not report the collision: %+v", i, sec)
		}
		if i > 0 && sec.Written {
			t.Fatalf("pass %d: the secret was written again: the two fight", i)
		}
		if h.read(".config/svc/config.json") != `{"from":"secret"}` {
			t.Fatalf("pass %d: the Document replaced the secret", i)
		}
	}
	rep := h.pass(Options{Names: []string{"home/.config/svc/config.json"}})
	if o := rep.Outcomes[0]; o.State != status.Refused || h.read(".config/svc/config.json") != `{"from":"secret"}` {
		t.Fatalf("a pass naming only the Document: %+v", o)
	}
}

// Documents that land on one path are all refused, and none is written,
// until only one does: the same title twice in a vault, the same title in
// two vaults, and two titles that two mirrors map to one path.
func TestDocumentsThatShareAPathAreNotWritten(t *testing.T) {
	t.Run("same title twice", func(t *testing.T) {
		h := newHarness(t, mirrorConfig, map[string]string{"op://egoengine/home/.dup": "first"})
		if o := h.pass(Options{}).Outcomes[0]; !o.Written {
			t.Fatalf("a single Document was not installed: %+v", o)
		}
		h.src.AddDocument("egoengine", "home/.dup", "second")
		for i := 0; i < 2; i++ {
			rep := h.pass(Options{})
			if len(rep.Outcomes) != 1 {
				t.Fatalf("one name, one outcome: %+v", rep.Outcomes)
			}
			o := rep.Outcomes[0]
			if o.State != status.Refused || o.Written || !strings.Contains(o.Error, "2 Documents") {
				t.Fatalf("pass %d: %+v", i, o)
			}
			if h.read(".dup") != "first" {
				t.Fatal("a duplicate was written")
			}
		}
		if st, _ := status.Load(h.eng.StateDir); len(st.Secrets) != 1 {
			t.Fatalf("state entries: %+v", st.Secrets)
		}
	})
	t.Run("same title in two vaults", func(t *testing.T) {
		h := newHarness(t, mirrorConfig+"[[mirror]]\nvault = \"other\"\n", map[string]string{
			"op://egoengine/home/.both": "a", "op://other/home/.both": "b",
		})
		o := h.pass(Options{}).Outcomes
		if len(o) != 1 || o[0].State != status.Refused {
			t.Fatalf("%+v", o)
		}
		if _, err := os.Stat(filepath.Join(h.home, ".both")); err == nil {
			t.Fatal("written")
		}
	})
	t.Run("two titles, one path", func(t *testing.T) {
		h := newHarness(t, mirrorConfig+"[[mirror]]\nvault = \"other\"\nprefix = \"dots/\"\n", map[string]string{
			"op://egoengine/home/.x": "a", "op://other/dots/.x": "b", "op://other/dots/.y": "y",
		})
		got := outcomes(h.pass(Options{}))
		for _, n := range []string{"home/.x", "dots/.x"} {
			if o := got[n]; o.State != status.Refused || !strings.Contains(o.Error, `"home/.x"`) || !strings.Contains(o.Error, `"dots/.x"`) {
				t.Errorf("%s: %+v", n, o)
			}
		}
		if got["dots/.y"].State != status.Fresh {
			t.Fatalf("an unrelated Document: %+v", got["dots/.y"])
		}
		if _, err := os.Stat(filepath.Join(h.home, ".x")); err == nil {
			t.Fatal("written")
		}
	})
}

// fileStamp is what changes when a file or folder is written, replaced or
// has entries added or removed.
type fileStamp struct {
	ino          uint64
	mtime, ctime int64
	size         int64
	mode         fs.FileMode
}

func snapshot(t *testing.T, root string, skip ...string) map[string]fileStamp {
	t.Helper()
	m := map[string]fileStamp{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range skip {
			if p == s {
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[p] = fileStamp{st.Ino, st.Mtim.Nano(), st.Ctim.Nano(), fi.Size(), fi.Mode()}
		return nil
	})
	return m
}

// Over an unchanged vault, with configured secrets, mirrors, a Document
// colliding with a secret, duplicate titles and refused titles, a pass
// writes nothing but its own record (state.json).
func TestPassOverAnUnchangedVaultWritesNothing(t *testing.T) {
	h := newHarness(t, jsonSecret+rewrittenSecret+mirrorConfig, map[string]string{
		"op://egoengine/Service/config.json":             `{"v":1}`,
		"op://egoengine/Tool/state.json":                 `{"gen":1}`,
		"op://egoengine/home/.ssh/config":                "Host *\n",
		"op://egoengine/home/.config/svc/config.json":    `{"from":"document"}`,
		"op://egoengine/home/.dup":                       "one",
		"op://egoengine/home/.local/state/egoagent/lock": "x",
		"op://egoengine/home/../escape":                  "x",
	})
	h.src.AddDocument("egoengine", "home/.dup", "two")
	h.pass(Options{})
	stateFile := filepath.Join(h.eng.StateDir, statedir.StateFile)
	before := snapshot(t, h.home, stateFile, h.eng.StateDir)
	for i := 0; i < 3; i++ {
		rep := h.pass(Options{})
		for _, o := range rep.Outcomes {
			if o.Written {
				t.Fatalf("pass %d wrote %s", i, o.Name)
			}
		}
		after := snapshot(t, h.home, stateFile, h.eng.StateDir)
		for p, s := range after {
			if before[p] != s {
				t.Fatalf("pass %d changed %s", i, p)
			}
		}
		if len(after) != len(before) {
			t.Fatalf("pass %d added or removed files: %d → %d", i, len(before), len(after))
		}
	}
	if h.read(".ssh/config") != "Host *\n" {
		t.Fatal("the mirror did not install: the test proves nothing")
	}
}

// A mirrored Document stays in the state, with its reference, when a later
// listing fails, whatever the depth of its title.
func TestDeepDocumentTitlesSurviveAFailedListing(t *testing.T) {
	h := newHarness(t, mirrorConfig, map[string]string{
		"op://egoengine/home/a1":            "1",
		"op://egoengine/home/a/b/c/d/e/f.x": "2",
	})
	h.pass(Options{})
	h.src.Fail(source.ClassUnreachable)
	got := outcomes(h.pass(Options{}))
	for _, n := range []string{"home/a1", "home/a/b/c/d/e/f.x"} {
		if o := got[n]; o.State != status.Stale || o.Class != source.ClassUnreachable {
			t.Errorf("%s: %+v", n, o)
		}
		if s := h.state(n); s.Ref != "op://egoengine/"+n {
			t.Errorf("%s: ref %q", n, s.Ref)
		}
	}
}
