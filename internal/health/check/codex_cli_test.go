package check

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
)

// These tests run the real Codex CLI (npm @openai/codex, pinned by
// scripts/ensure-codex.sh). They skip when EGOAGENT_TEST_CODEX is unset,
// unless EGOAGENT_REQUIRE_CODEX=1.

func realChecker(t *testing.T) (*Checker, string) {
	t.Helper()
	stage := checktest.StageDir(t)
	return New(Options{CodexCommand: checktest.CodexPath(t), StageDir: stage, Timeout: 20 * time.Second}), stage
}

func TestRealCodexAcceptsChatGPTFile(t *testing.T) {
	c, stage := realChecker(t)
	exp := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	r := c.Check(context.Background(), KindCodex, checktest.ChatGPT{Expires: exp}.JSON())
	want := "codex: logged in with ChatGPT, access token expires " + fmtTime(exp)
	if !r.OK || r.Summary != want || r.Skipped != "" || !r.Expires.Equal(exp) {
		t.Fatalf("got %+v, want OK with summary %q", r, want)
	}
	assertEmptyDir(t, stage)
}

func TestRealCodexAcceptsAPIKeyFile(t *testing.T) {
	c, stage := realChecker(t)
	key := "sk-proj-" + checktest.Canary(t)
	r := c.Check(context.Background(), KindCodex, checktest.APIKey(key))
	if !r.OK || r.Summary != "codex: API key configured, no expiry" || r.Skipped != "" || !r.Expires.IsZero() {
		t.Fatalf("got %+v", r)
	}
	// Codex prints the key's last five characters; none may come through.
	if strings.Contains(r.Summary, key[len(key)-5:]) {
		t.Fatalf("summary carries the end of the key: %q", r.Summary)
	}
	assertEmptyDir(t, stage)
}

// Through Check, a file that our rules pass but codex cannot read fails on
// codex's word: auth_mode values are codex's to define, so an unknown one is
// left to it (0.169.0 rejects "future").
func TestRealCodexRejectsWhatOnlyCodexKnows(t *testing.T) {
	c, stage := realChecker(t)
	r := c.Check(context.Background(), KindCodex, []byte(`{"auth_mode":"future","OPENAI_API_KEY":"sk-proj-abcdefgh12345"}`))
	if r.OK || r.Summary != "codex: codex cannot read this auth.json" {
		t.Fatalf("got %+v", r)
	}
	assertEmptyDir(t, stage)
}

// The codex stage on its own, to show what the real CLI says about the files
// our rules refuse before it runs: it rejects unparsable and key-less files,
// and it passes an empty object and an expired token (it makes no network call
// and fills in ChatGPT mode by default), which is why those rules exist.
func TestRealCodexLoginStatusAlone(t *testing.T) {
	c, stage := realChecker(t)
	tests := []struct {
		name    string
		content string
		ok      bool
		phrase  string
	}{
		{"unparsable", `{"OPENAI_API_KEY": sk-`, false, "codex cannot read this auth.json"},
		{"empty file", ``, false, "codex cannot read this auth.json"},
		{"ID token not a JWT", `{"tokens":{"id_token":"garbage","access_token":"x","refresh_token":"y"}}`, false, "codex cannot read this auth.json"},
		{"API-key mode without a key", `{"auth_mode":"apikey","OPENAI_API_KEY":null}`, false, "codex says the API key is missing"},
		{"valid ChatGPT", string(checktest.ValidChatGPT()), true, "logged in with ChatGPT"},
		{"expired ChatGPT: codex still says logged in", string(checktest.ExpiredChatGPT()), true, "logged in with ChatGPT"},
		{"empty object: codex still says logged in", `{}`, true, "logged in with ChatGPT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.loginStatus(context.Background(), []byte(tt.content))
			if got.ok != tt.ok || got.phrase != tt.phrase || got.skipped != "" {
				t.Fatalf("loginStatus = %+v, want ok=%v %q", got, tt.ok, tt.phrase)
			}
		})
	}
	assertEmptyDir(t, stage)
}

func TestRealCodexCheckRejections(t *testing.T) {
	c, stage := realChecker(t)
	tests := map[string]struct {
		content []byte
		want    string
	}{
		"unparsable":          {[]byte(`{"OPENAI_API_KEY": sk-`), "codex: auth.json: not valid JSON"},
		"without credentials": {[]byte(`{"OPENAI_API_KEY":null,"tokens":null}`), "codex: auth.json holds no credentials"},
		"empty object":        {[]byte(`{}`), "codex: auth.json holds no credentials"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := c.Check(context.Background(), KindCodex, tt.content)
			if r.OK || !strings.HasPrefix(r.Summary, tt.want) || r.Skipped != "" {
				t.Fatalf("got %+v, want a failure starting %q", r, tt.want)
			}
		})
	}
	assertEmptyDir(t, stage)
}

// Our environment must not reach codex. CODEX_ACCESS_TOKEN is one codex reads
// in place of auth.json (0.169.0 fails on a malformed one), so a leak would
// turn this passing check into a failure; OP_SERVICE_ACCOUNT_TOKEN stands for
// every other secret egoagent holds.
func TestRealCodexGetsNoneOfOurEnvironment(t *testing.T) {
	c, _ := realChecker(t)
	t.Setenv("CODEX_ACCESS_TOKEN", "not-a-jwt")
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("CODEX_HOME", t.TempDir())
	t.Setenv("OP_SERVICE_ACCOUNT_TOKEN", "ops_"+checktest.Canary(t))
	if r := c.Check(context.Background(), KindCodex, checktest.ValidChatGPT()); !r.OK || !strings.Contains(r.Summary, "logged in with ChatGPT") {
		t.Fatalf("got %+v", r)
	}
}

// Codex warns about a CODEX_HOME under /tmp (it will not create its helper
// links there) but still answers; the warning must not change the verdict.
func TestRealCodexStagedUnderTmp(t *testing.T) {
	stage := t.TempDir() // under $TMPDIR, normally /tmp
	c := New(Options{CodexCommand: checktest.CodexPath(t), StageDir: stage})
	if r := c.Check(context.Background(), KindCodex, checktest.ValidChatGPT()); !r.OK || !strings.Contains(r.Summary, "logged in with ChatGPT") {
		t.Fatalf("got %+v", r)
	}
	assertEmptyDir(t, stage)
}

func TestRealCodexConcurrentChecks(t *testing.T) {
	c, stage := realChecker(t)
	var wg sync.WaitGroup
	results := make([]Result, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := checktest.ValidChatGPT()
			if i%2 == 1 {
				content = checktest.APIKey("")
			}
			results[i] = c.Check(context.Background(), KindCodex, content)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if !r.OK {
			t.Errorf("check %d: %+v", i, r)
		}
	}
	assertEmptyDir(t, stage)
}

// The checktest helpers themselves: the CLI they point at is the pinned one.
func TestRealCodexIsThePinnedVersion(t *testing.T) {
	p := checktest.CodexPath(t)
	out, err := runVersion(p)
	if err != nil || !strings.Contains(out, "0.169.0") {
		t.Fatalf("%s --version = %q, %v", p, out, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("%s is not the native binary: %v", p, err)
	}
}
