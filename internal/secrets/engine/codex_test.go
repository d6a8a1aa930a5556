package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/source/sourcetest"
)

const codexRef = "op://egoengine/Codex Auth/auth.json"

// codexHarness keeps ~/.codex/auth.json the way the image does, checked by
// the real Codex CLI.
func codexHarness(t *testing.T, in1Password []byte) *harness {
	t.Helper()
	codex := checktest.CodexPath(t)
	home := t.TempDir()
	cfg, err := config.Parse("test.toml", []byte(`
[[secret]]
name = "codex"
ref = "`+codexRef+`"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
`), config.Env{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, home: home, src: sourcetest.New(map[string]string{codexRef: string(in1Password)})}
	h.eng = &Engine{
		Config: cfg, Source: h.src, Home: home, StateDir: statedir.Path(home), Log: zap.NewNop(),
		Checker: check.New(check.Options{CodexCommand: codex, StageDir: checktest.StageDir(t), Timeout: 20 * time.Second}),
	}
	return h
}

func TestCodexAuthIsCheckedByTheRealCLI(t *testing.T) {
	for name, file := range map[string][]byte{
		"chatgpt": checktest.ValidChatGPT(),
		"api key": checktest.APIKey(""),
	} {
		t.Run(name, func(t *testing.T) {
			h := codexHarness(t, file)
			o := h.pass(Options{}).Outcomes[0]
			if !o.Written || o.State != status.Fresh || h.read(".codex/auth.json") != string(file) {
				t.Fatalf("%+v", o)
			}
			s := h.state("codex")
			if !strings.HasPrefix(s.Check, "codex: ") || strings.Contains(s.Check, "not checked") {
				t.Fatalf("check summary %q: the CLI did not run", s.Check)
			}
			if name == "chatgpt" && s.Expires.Before(time.Now().Add(29*24*time.Hour)) {
				t.Fatalf("expiry %v not recorded", s.Expires)
			}
			fi, _ := os.Stat(filepath.Join(h.home, ".codex/auth.json"))
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", fi.Mode())
			}
		})
	}
}

// Codex refreshed its tokens itself: the copy in 1Password is older and its
// refresh token spent. egoagent must keep Codex's file, and say so.
func TestCodexRefreshedFileIsKept(t *testing.T) {
	old := checktest.ChatGPT{Expires: time.Now().Add(2 * 24 * time.Hour), RefreshToken: "rt_spent"}.JSON()
	h := codexHarness(t, old)
	h.pass(Options{})

	refreshed := checktest.ChatGPT{Expires: time.Now().Add(10 * 24 * time.Hour), RefreshToken: "rt_new"}.JSON()
	os.WriteFile(filepath.Join(h.home, ".codex/auth.json"), refreshed, 0o600) // Codex writes in place
	o := h.pass(Options{}).Outcomes[0]
	if o.State != status.Kept || o.Written || h.read(".codex/auth.json") != string(refreshed) {
		t.Fatalf("Codex's refreshed file was not kept: %+v", o)
	}
	if !strings.Contains(h.state("codex").Note, "kept the local file") {
		t.Fatalf("status does not say why: %q", h.state("codex").Note)
	}

	// Once a newer copy is in 1Password (another workspace renewed, or a new
	// login), it goes in, whatever state Codex's file is in.
	expired := checktest.ChatGPT{Expires: time.Now().Add(-time.Hour), RefreshToken: "rt_new"}.JSON()
	os.WriteFile(filepath.Join(h.home, ".codex/auth.json"), expired, 0o600)
	fresh := checktest.ChatGPT{Expires: time.Now().Add(20 * 24 * time.Hour), RefreshToken: "rt_fresh"}.JSON()
	h.src.Set(codexRef, string(fresh))
	o = h.pass(Options{}).Outcomes[0]
	if !o.Written || h.read(".codex/auth.json") != string(fresh) || !strings.HasPrefix(o.Note, "1Password's copy is newer") {
		t.Fatalf("an older local file was not replaced: %+v", o)
	}
}

// An older copy in 1Password never replaces a newer working file, even when
// Codex would accept it; --force does, and an expired access token alone is
// no reason to refuse a copy (Codex renews it on first use).
func TestOlderCodexCopyGoesInOnlyWithForce(t *testing.T) {
	h := codexHarness(t, checktest.ValidChatGPT())
	h.pass(Options{})
	before := h.read(".codex/auth.json")
	older := checktest.ExpiredChatGPT()
	h.src.Set(codexRef, string(older))
	o := h.pass(Options{Names: []string{"codex"}}).Outcomes[0]
	if o.Written || o.State != status.Kept || h.read(".codex/auth.json") != before {
		t.Fatalf("an older copy replaced a newer file: %+v", o)
	}
	o = h.pass(Options{Force: true, Names: []string{"codex"}}).Outcomes[0]
	if !o.Written || o.State != status.Fresh || h.read(".codex/auth.json") != string(older) || !strings.Contains(h.state("codex").Check, "Codex renews it on first use") {
		t.Fatalf("--force did not install the older copy: %+v", o)
	}
}
