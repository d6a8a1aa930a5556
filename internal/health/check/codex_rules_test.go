package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
)

// These tests cover the rules egoagent applies before codex runs; they need no
// Codex CLI. codex_cli_test.go runs the real one.

func TestParseCodexAuth(t *testing.T) {
	exp := time.Date(2031, 5, 6, 7, 8, 0, 0, time.UTC)
	id := checktest.JWT(map[string]any{"exp": exp.Add(-29 * 24 * time.Hour).Unix()})
	access := checktest.JWT(map[string]any{"exp": exp.Unix()})
	tok := func(id, access, refresh string) string {
		return `"tokens":{"id_token":"` + id + `","access_token":"` + access + `","refresh_token":"` + refresh + `","account_id":"a"}`
	}
	tests := []struct {
		name    string
		content string
		mode    string
		expires time.Time
		wantErr string
	}{
		{"ChatGPT file from checktest", string(checktest.ChatGPT{Expires: exp}.JSON()), "ChatGPT tokens", exp, ""},
		{"ChatGPT, compact", `{"OPENAI_API_KEY":null,` + tok(id, access, "rt") + `}`, "ChatGPT tokens", exp, ""},
		{"ChatGPT with unknown keys", `{"future":{"x":1},` + tok(id, access, "rt") + `}`, "ChatGPT tokens", exp, ""},
		{"expiry from the ID token when the access token is empty", `{` + tok(id, "", "rt") + `}`, "ChatGPT tokens", exp.Add(-29 * 24 * time.Hour), ""},
		{"API key", string(checktest.APIKey("sk-proj-x")), "API key", time.Time{}, ""},
		{"API key wins over tokens without auth_mode, as in codex", `{"OPENAI_API_KEY":"sk-x",` + tok(id, access, "rt") + `}`, "API key", time.Time{}, ""},
		{"auth_mode chatgpt wins over an API key", `{"auth_mode":"chatgpt","OPENAI_API_KEY":"sk-x",` + tok(id, access, "rt") + `}`, "ChatGPT tokens", exp, ""},
		{"unknown auth_mode left to codex", `{"auth_mode":"future",` + tok(id, access, "rt") + `}`, "an auth_mode this check does not know", exp, ""},

		{"empty object", `{}`, "", time.Time{}, "holds no credentials"},
		{"all null", `{"OPENAI_API_KEY":null,"tokens":null}`, "", time.Time{}, "holds no credentials"},
		{"unknown auth_mode and nothing else", `{"auth_mode":"future"}`, "", time.Time{}, "holds no credentials"},
		{"empty API key", `{"OPENAI_API_KEY":""}`, "", time.Time{}, `"OPENAI_API_KEY" is empty`},
		{"auth_mode apikey without a key", `{"auth_mode":"apikey","OPENAI_API_KEY":null,` + tok(id, access, "rt") + `}`, "", time.Time{}, `"OPENAI_API_KEY" is empty`},
		{"auth_mode chatgpt without tokens", `{"auth_mode":"chatgpt"}`, "", time.Time{}, `no "tokens" object`},
		{"not JSON", `{"OPENAI_API_KEY":`, "", time.Time{}, "not valid JSON"},
		{"empty file", ``, "", time.Time{}, "file is empty"},
		{"an array", `[]`, "", time.Time{}, "must be a JSON object"},
		{"API key a number", `{"OPENAI_API_KEY":5}`, "", time.Time{}, `"OPENAI_API_KEY" must be a string or null`},
		{"tokens a string", `{"tokens":"x"}`, "", time.Time{}, `"tokens" must be an object or null`},
		{"tokens empty", `{"tokens":{}}`, "", time.Time{}, "tokens.id_token is missing"},
		{"no refresh token", `{"tokens":{"id_token":"` + id + `","access_token":"` + access + `"}}`, "", time.Time{}, "tokens.refresh_token is missing"},
		{"empty refresh token", `{` + tok(id, access, "") + `}`, "", time.Time{}, "tokens.refresh_token is empty"},
		{"account_id a number", `{"tokens":{"id_token":"` + id + `","access_token":"` + access + `","refresh_token":"r","account_id":5}}`, "", time.Time{}, "tokens.account_id"},
		{"ID token not a JWT", `{` + tok("garbage", access, "rt") + `}`, "", time.Time{}, "tokens.id_token is not a JWT"},
		{"access token not a JWT", `{` + tok(id, "opaque", "rt") + `}`, "", time.Time{}, "tokens.access_token is not a JWT"},
		{"access token without exp", `{` + tok(id, checktest.JWT(map[string]any{"sub": "x"}), "rt") + `}`, "", time.Time{}, "tokens.access_token has no exp claim"},
		{"bad last_refresh", `{"last_refresh":"yesterday",` + tok(id, access, "rt") + `}`, "", time.Time{}, `"last_refresh" is not an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCodexAuth([]byte(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCodexAuth: %v", err)
			}
			if got.mode != tt.mode || !got.expires.Equal(tt.expires) {
				t.Fatalf("got mode %q expires %v, want %q %v", got.mode, got.expires, tt.mode, tt.expires)
			}
		})
	}
}

func TestParseCodexAuthRefusesHugeFiles(t *testing.T) {
	big := append([]byte(`{"OPENAI_API_KEY":"sk-x","pad":"`), make([]byte, maxCodexAuthSize)...)
	if _, err := parseCodexAuth(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}

// With no codex on PATH the file's own rules still decide, and Skipped says
// that the login status was not checked.
func TestCodexCheckWithoutCLI(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // an empty folder: no codex to find
	stage := t.TempDir()
	c := New(Options{StageDir: stage})
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)

	r := c.Check(context.Background(), KindCodex, checktest.ChatGPT{Expires: exp}.JSON())
	if !r.OK || r.Skipped != "codex CLI not found on PATH: login status not checked" {
		t.Fatalf("ChatGPT without CLI: %+v", r)
	}
	if !r.Expires.Equal(exp) || r.Summary != "codex: ChatGPT tokens, access token expires "+fmtTime(exp) {
		t.Fatalf("ChatGPT without CLI: %+v", r)
	}

	r = c.Check(context.Background(), KindCodex, checktest.APIKey(""))
	if !r.OK || r.Skipped == "" || r.Summary != "codex: API key, no expiry" || !r.Expires.IsZero() {
		t.Fatalf("API key without CLI: %+v", r)
	}

	r = c.Check(context.Background(), KindCodex, []byte(`{}`))
	if r.OK || r.Skipped != "" || !strings.Contains(r.Summary, "holds no credentials") {
		t.Fatalf("empty file without CLI: %+v", r)
	}

	missing := filepath.Join(t.TempDir(), "no-such-codex")
	r = New(Options{StageDir: stage, CodexCommand: missing}).Check(context.Background(), KindCodex, checktest.APIKey(""))
	if !r.OK || r.Skipped != "codex CLI not found at "+missing+": login status not checked" {
		t.Fatalf("explicit missing path: %+v", r)
	}
	assertEmptyDir(t, stage)
}

// An expired access token does not fail the check: Codex renews it with
// the refresh token on first use. The summary says so, and codex still runs.
func TestCodexCheckExpiredPassesAndSaysSo(t *testing.T) {
	cmd, record := checktest.RecordingCommand(t)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	c := New(Options{StageDir: t.TempDir(), CodexCommand: cmd, Now: func() time.Time { return now }})

	exp := now.Add(-time.Minute)
	r := c.Check(context.Background(), KindCodex, checktest.ChatGPT{Expires: exp}.JSON())
	if !r.OK || r.Summary != "codex: logged in with ChatGPT, access token expired 2030-01-01T11:59Z (Codex renews it on first use)" || !r.Expires.Equal(exp) {
		t.Fatalf("expired: %+v", r)
	}
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("codex did not run for an expired file: %v", err)
	}
	// Expiring exactly now counts as expired; a minute left does not.
	if r := c.Check(context.Background(), KindCodex, checktest.ChatGPT{Expires: now}.JSON()); !r.OK || !strings.Contains(r.Summary, "expired") {
		t.Fatalf("expiring now: %+v", r)
	}
	if r := c.Check(context.Background(), KindCodex, checktest.ChatGPT{Expires: now.Add(time.Minute)}.JSON()); !r.OK || !strings.Contains(r.Summary, "expires 2030-01-01T12:01Z") {
		t.Fatalf("one minute left: %+v", r)
	}
}

func TestCodexCheckStageDirRefusals(t *testing.T) {
	cmd, _ := checktest.RecordingCommand(t)
	content := checktest.APIKey("")

	target := t.TempDir()
	link := filepath.Join(t.TempDir(), "stage")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r := New(Options{StageDir: link, CodexCommand: cmd}).Check(context.Background(), KindCodex, content)
	if r.OK || !strings.Contains(r.Summary, "is not a directory (a symlink or a file)") {
		t.Fatalf("symlinked stage dir: %+v", r)
	}
	assertEmptyDir(t, target)

	// An existing folder open to others is made private before use.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := New(Options{StageDir: open, CodexCommand: cmd}).Check(context.Background(), KindCodex, content); !r.OK {
		t.Fatalf("open stage dir: %+v", r)
	}
	if fi, err := os.Stat(open); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stage dir mode after check: %v %v", fi.Mode(), err)
	}

	// A missing one is created 0700, parents included.
	fresh := filepath.Join(t.TempDir(), "a", "b", "stage")
	if r := New(Options{StageDir: fresh, CodexCommand: cmd}).Check(context.Background(), KindCodex, content); !r.OK {
		t.Fatalf("fresh stage dir: %+v", r)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created stage dir: %v %v", fi, err)
	}
	assertEmptyDir(t, fresh)

	// Someone else's folder is refused (needs root to set up).
	if os.Getuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		r := New(Options{StageDir: other, CodexCommand: cmd}).Check(context.Background(), KindCodex, content)
		if r.OK || !strings.Contains(r.Summary, "belongs to uid 65534") {
			t.Fatalf("foreign stage dir: %+v", r)
		}
	}
}

func TestCodexCheckUnrunnableCommand(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "codex")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stage := t.TempDir()
	r := New(Options{StageDir: stage, CodexCommand: notExec}).Check(context.Background(), KindCodex, checktest.APIKey(""))
	if r.OK || r.Skipped != "" || !strings.Contains(r.Summary, "cannot be run") {
		t.Fatalf("non-executable codex: %+v", r)
	}
	assertEmptyDir(t, stage)
}

// A relative CodexCommand means relative to our working directory, not to
// the staging folder codex runs in.
func TestCodexCheckRelativeCommand(t *testing.T) {
	cmd, record := checktest.RecordingCommand(t)
	t.Chdir(filepath.Dir(cmd))
	rel := filepath.Join(".", filepath.Base(cmd))
	r := New(Options{StageDir: t.TempDir(), CodexCommand: "./" + rel}).Check(context.Background(), KindCodex, checktest.APIKey(""))
	if !r.OK || r.Summary != "codex: logged in with ChatGPT, no expiry" {
		t.Fatalf("got %+v", r)
	}
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("the relative command did not run: %v", err)
	}
}

func TestClassifyLoginStatus(t *testing.T) {
	tests := []struct {
		ok     bool
		out    string
		want   string
		wantOK bool
	}{
		{true, "Logged in using ChatGPT\n", "logged in with ChatGPT", true},
		{true, "WARNING: proceeding, even though we could not create PATH aliases: ...\nLogged in using ChatGPT\n", "logged in with ChatGPT", true},
		{true, "API key configured - sk-proj-***ABCDE\nAuthentication is checked when you send a request.\n", "API key configured", true},
		{true, "something new\n", "login status passed", true},
		{false, "Not logged in\n", "codex says not logged in", false},
		{false, "Error checking login status: failed to deserialize CLI auth from file: key must be a string at line 1 column 2\n", "codex cannot read this auth.json", false},
		{false, "Error checking login status: API key auth is missing a key.\n", "codex says the API key is missing", false},
		{false, "Error loading configuration: CODEX_HOME points to \"/x\", but that path does not exist\n", "codex could not load its configuration", false},
		{false, "Error checking login status: failed to load CLI auth from keyring: ...\n", "codex could not check the login", false},
		// A success word with a failing exit is a failure: the exit decides.
		{false, "Logged in using ChatGPT\n", "codex login status failed", false},
	}
	for _, tt := range tests {
		got := classifyLoginStatus(tt.ok, nil, []byte(tt.out))
		if got.ok != tt.wantOK || got.phrase != tt.want {
			t.Errorf("classify(%v, %q) = %+v, want %q ok=%v", tt.ok, tt.out, got, tt.want, tt.wantOK)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	w := &cappedBuffer{max: 10}
	for _, s := range []string{"hello ", "world, ", "and more"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(w.b) != "hello worl" {
		t.Fatalf("kept %q", w.b)
	}
	kept := w.b
	w.wipe()
	if w.b != nil || strings.Trim(string(kept), "\x00") != "" {
		t.Fatalf("wipe left %q", kept)
	}
}

// assertEmptyDir fails unless dir exists and holds nothing: every staging
// folder made under it has been removed.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("stage dir: %v", err)
	}
	for _, e := range ents {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}
