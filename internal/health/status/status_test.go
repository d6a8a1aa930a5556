package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestMetadataLines(t *testing.T) {
	fresh := Secret{Name: "codex", State: Fresh}
	synced := &Pass{Finished: now.Add(-5 * time.Minute)}
	cases := []struct {
		name string
		st   *State
		want string
	}{
		{"nothing yet", &State{}, "not synced yet: run egoagent sync"},
		{"all fresh", &State{LastPass: synced, Secrets: []Secret{fresh, {Name: "gh", State: Kept}}}, "ok: 2 fresh, synced 5m ago"},
		{"expiry soon", &State{LastPass: synced, Secrets: []Secret{{Name: "codex", State: Fresh, Expires: now.Add(30 * time.Hour)}}},
			"ok: 1 fresh, synced 5m ago; codex expires in 30h"},
		{"expiry far", &State{LastPass: synced, Secrets: []Secret{{Name: "codex", State: Fresh, Expires: now.Add(9 * 24 * time.Hour)}}},
			"ok: 1 fresh, synced 5m ago"},
		{"expired", &State{LastPass: synced, Secrets: []Secret{{Name: "codex", State: Fresh, Expires: now.Add(-2 * time.Hour)}}},
			"ok: 1 fresh, synced 5m ago; codex expired 2h ago"},
		{"one stale", &State{LastPass: synced, Secrets: []Secret{fresh, {Name: "gh", State: Stale, ErrorClass: "unreachable", StaleSince: now.Add(-3 * time.Hour)}}},
			"gh stale 3h (unreachable)"},
		{"no token", &State{LastPass: synced, Secrets: []Secret{{Name: "codex", State: Missing, ErrorClass: source.ClassMissingToken}}},
			"no 1Password token: coder secret create op-token --env OP_SERVICE_ACCOUNT_TOKEN"},
		{"two bad", &State{LastPass: synced, Secrets: []Secret{{Name: "a", State: Missing, ErrorClass: "not-found"}, {Name: "b", State: Stale, ErrorClass: "rate-limited"}}},
			"2 of 2 not fresh: a missing (not-found)"},
		{"daemon died", &State{LastPass: synced, Secrets: []Secret{fresh}, Daemon: &Daemon{PID: 42}},
			"ok: 1 fresh, synced 5m ago; daemon not running"},
		{"config error", &State{LastPass: synced, Secrets: []Secret{fresh}, Daemon: &Daemon{PID: 42, Running: true, ConfigError: "x"}},
			"ok: 1 fresh, synced 5m ago; config error (old config in use)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Metadata(tc.st, now); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMetadataNeverExceedsCodersCap(t *testing.T) {
	st := &State{}
	for i := 0; i < 500; i++ {
		st.Secrets = append(st.Secrets, Secret{Name: strings.Repeat("n", 300), State: Stale, ErrorClass: source.Class(strings.Repeat("c", 300))})
	}
	if got := Metadata(st, now); len(got) > MetadataMax || strings.Contains(got, "\n") {
		t.Fatalf("%d bytes", len(got))
	}
}

func TestSaveLoadKeepsDaemonApart(t *testing.T) {
	dir := t.TempDir()
	st := &State{Secrets: []Secret{{Name: "a", State: Fresh, Written: "abc", NextRefresh: now}}, Daemon: &Daemon{PID: 1}}
	if err := Save(dir, st); err != nil {
		t.Fatal(err)
	}
	if st.Secrets[0].NextRefresh.IsZero() {
		t.Fatal("Save changed the caller's state")
	}
	b, _ := os.ReadFile(filepath.Join(dir, statedir.StateFile))
	if bytes.Contains(b, []byte(`"daemon"`)) || bytes.Contains(b, []byte(`next_refresh`)) {
		t.Fatalf("state file holds the daemon's part:\n%s", b)
	}
	fi, _ := os.Stat(filepath.Join(dir, statedir.StateFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode())
	}
	// A daemon report whose daemon is dead: loaded, marked not running,
	// and its next-refresh times not believed.
	SaveDaemon(dir, &Daemon{PID: 99999, Next: map[string]time.Time{"a": now}})
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Daemon == nil || got.Daemon.Running || !got.Secrets[0].NextRefresh.IsZero() {
		t.Fatalf("loaded %+v %+v", got.Daemon, got.Secrets[0])
	}
}

func TestDamagedStateSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, statedir.StateFile), []byte("{"), 0o600)
	_, err := Load(dir)
	var d *DamagedError
	if !errors.As(err, &d) || !strings.Contains(err.Error(), "the next pass (egoagent sync or refresh) moves it aside") {
		t.Fatalf("err = %v", err)
	}
	moved, err := MoveAside(d)
	if err != nil || moved != filepath.Join(dir, statedir.StateFile)+".damaged" {
		t.Fatalf("MoveAside = %q, %v", moved, err)
	}
	if st, err := Load(dir); err != nil || len(st.Secrets) != 0 {
		t.Fatalf("after moving aside: %v", err)
	}
}

// A damaged daemon report is as good as none: status still shows the
// state.
func TestDamagedDaemonReportIsIgnored(t *testing.T) {
	dir := t.TempDir()
	Save(dir, &State{Secrets: []Secret{{Name: "a", State: Fresh}}})
	os.WriteFile(filepath.Join(dir, statedir.DaemonFile), []byte("{\x00"), 0o600)
	st, err := Load(dir)
	if err != nil || st.Daemon != nil || len(st.Secrets) != 1 {
		t.Fatalf("%+v, %v", st, err)
	}
}

// A state folder reached from another home is refused, whatever route
// leads there; the same home through a link is the same home.
func TestCheckHome(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	os.Mkdir(a, 0o700)
	os.Mkdir(b, 0o700)
	link := filepath.Join(base, "link-to-a")
	os.Symlink(a, link)
	st := &State{Home: HomeID(a)}
	for home, ok := range map[string]bool{a: true, link: true, a + "/": true, b: false, base: false} {
		err := CheckHome(st, statedir.Path(home), home)
		var fe *ForeignError
		if ok != (err == nil) || (!ok && !errors.As(err, &fe)) {
			t.Errorf("home %s: %v", home, err)
		}
	}
	if err := CheckHome(&State{}, statedir.Path(b), b); err != nil {
		t.Errorf("a state with no owner yet: %v", err)
	}
	os.MkdirAll(filepath.Join(a, ".local/state/egoagent"), 0o700)
	os.MkdirAll(filepath.Join(b, ".local/state"), 0o700)
	os.Symlink(filepath.Join(a, ".local/state/egoagent"), statedir.Path(b))
	err := CheckHome(st, statedir.Path(b), b)
	if err == nil || !strings.Contains(err.Error(), "symbolic link to "+filepath.Join(a, ".local/state/egoagent")) || !strings.Contains(err.Error(), a) {
		t.Fatalf("err = %v", err)
	}
}

func TestJSONLeavesOutFingerprints(t *testing.T) {
	var b bytes.Buffer
	JSON(&b, &State{Secrets: []Secret{{Name: "a", Written: "deadbeef"}}})
	var back State
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Secrets[0].Name != "a" || strings.Contains(b.String(), "deadbeef") {
		t.Fatalf("%v\n%s", err, b.String())
	}
}

func TestHumanShowsErrorsAndDaemon(t *testing.T) {
	var b bytes.Buffer
	Human(&b, &State{
		Secrets: []Secret{{Name: "codex", Path: "/home/u/.codex/auth.json", State: Stale, Error: "1Password unreachable", ErrorClass: "unreachable", StaleSince: now.Add(-time.Hour),
			NextRefresh: now.Add(30 * time.Second), NextWhy: "retry"}},
		Daemon: &Daemon{PID: 7, Running: true, Started: now.Add(-time.Hour), Passes: 3},
	}, now, "/home/u")
	out := b.String()
	for _, want := range []string{"~/.codex/auth.json", "stale", "error (unreachable): 1Password unreachable", "failing since", "next attempt in 30s", "in 30s (retry)", "daemon: running, pid 7"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// What a pass judged fresh stops being claimed once the file changes under
// it: modified when rewritten, missing when deleted; an untouched file, and
// a secret recorded before stamps existed, stay as the state says.
func TestLookAtFilesTakesBackWhatChangedSinceThePass(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) (string, *FileStamp) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p, StampOf(p)
	}
	same, sameStamp := file("same", "v1")
	rewritten, rewrittenStamp := file("rewritten", "v1")
	deleted, deletedStamp := file("deleted", "v1")
	old, _ := file("old", "v1")
	later := time.Now().Add(time.Second)
	os.WriteFile(rewritten, []byte("v2"), 0o600)
	os.Chtimes(rewritten, later, later)
	os.Remove(deleted)
	st := &State{LastPass: &Pass{Finished: now}, Secrets: []Secret{
		{Name: "same", State: Fresh, Path: same, File: sameStamp},
		{Name: "rewritten", State: Kept, Path: rewritten, File: rewrittenStamp},
		{Name: "deleted", State: Fresh, Path: deleted, File: deletedStamp},
		{Name: "old", State: Fresh, Path: old},
	}}
	st.LookAtFiles()
	want := map[string]SecretState{"same": Fresh, "rewritten": Modified, "deleted": Missing, "old": Fresh}
	for _, sec := range st.Secrets {
		if sec.State != want[sec.Name] {
			t.Errorf("%s: %s, want %s", sec.Name, sec.State, want[sec.Name])
		}
	}
	if line := Metadata(st, now); line != "2 of 4 not fresh: rewritten modified since the last pass" {
		t.Errorf("metadata %q", line)
	}
}
