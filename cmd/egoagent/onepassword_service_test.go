package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// These tests run egoagent with kind = "1password" and the real helper,
// egoagent-op, with the real SDK, against opservice: a local stand-in for
// the 1Password service that the unmodified SDK signs in to. The helper is
// built with the tag egoagent_optest, which adds one file to it
// (cmd/egoagent-op/optest.go) sending its connections to the service on
// loopback; everything else is the shipped helper.

// buildTestHelper builds egoagent-op with the test-only dialer, once.
var buildTestHelper = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "egoagent-op-test")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "egoagent-op")
	cmd := exec.Command("go", "build", "-tags", "egoagent_optest", "-o", out, "github.com/veraticus/egoengine/cmd/egoagent-op")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, msg)
	}
	return out, nil
})

// opWorkspace is a workspace whose source is the service.
type opWorkspace struct {
	*workspace
	svc    *opservice.Service
	helper string
	cert   string
}

func newOpWorkspace(t *testing.T, body string) *opWorkspace {
	t.Helper()
	if testing.Short() {
		t.Skip("builds egoagent-op and loads the 1Password SDK's core")
	}
	helper, err := buildTestHelper()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := opservice.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	w := &opWorkspace{workspace: newWorkspace(t, ""), svc: svc, helper: helper}
	w.token = svc.Token() // the real token is the canary now
	w.cert = filepath.Join(t.TempDir(), "service.pem")
	if err := os.WriteFile(w.cert, svc.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.config, []byte("[source]\nkind = \"1password\"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// sync runs `egoagent sync` with the test helper.
func (w *opWorkspace) sync() (string, int) {
	w.t.Helper()
	return w.run("sync")
}

const opServiceConfig = `
[schedule]
refresh = "@every 1h"
jitter = "0s"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"

[[secret]]
name = "password"
ref = "op://egoengine/Login/password"
path = "~/.config/login/password"

[[secret]]
name = "api-key"
ref = "op://egoengine/Login/api/key"
path = "~/.config/login/key"

[[secret]]
name = "github"
ref = "op://work/GitHub/token"
path = "~/.config/gh/token"

[[secret]]
name = "binary"
ref = "op://egoengine/Files/nul.bin"
path = "~/files/nul.bin"

[[secret]]
name = "crlf"
ref = "op://egoengine/Files/blobs/crlf.txt"
path = "~/files/crlf.txt"

[[secret]]
name = "no-newline"
ref = "op://egoengine/Files/no-newline.txt"
path = "~/files/no-newline.txt"

[[secret]]
name = "empty"
ref = "op://egoengine/Files/empty"
path = "~/files/empty"

[[secret]]
name = "big"
ref = "op://egoengine/Files/big.bin"
path = "~/files/big.bin"

[[secret]]
name = "deploy-key"
ref = "op://egoengine/Deploy Key"
path = "~/.ssh/id_deploy"

[[mirror]]
vault = "egoengine"
`

// TestOnePasswordServiceSync: a sync through the real helper and SDK
// installs every kind of secret and the home/ mirror byte for byte; each
// class of failure leaves the installed files as they were; the next pass,
// with a new helper, works once the service recovers and brings a changed
// value; a missing item fails that secret alone.
func TestOnePasswordServiceSync(t *testing.T) {
	w := newOpWorkspace(t, opServiceConfig)
	bin := []byte("\x00\x01\xff\xfe\r\n\x00 end")
	big := make([]byte, 1<<20)
	rand.Read(big)
	codex := `{"tokens":{"refresh_token":"r1"}}` + "\n"
	w.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{
		{Title: "Codex Auth", Category: opservice.SecureNote, Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: []byte(codex)}}}}},
		{Title: "Login", Fields: []opservice.Field{{Title: "password", Value: "hunter2", Concealed: true}},
			Sections: []opservice.Section{{Title: "api", Fields: []opservice.Field{{Title: "key", Value: "k-123"}}}}},
		{Title: "Files", Sections: []opservice.Section{{Title: "blobs", Files: []opservice.File{
			{Name: "nul.bin", Content: bin}, {Name: "crlf.txt", Content: []byte("a\r\nb\r\n")},
			{Name: "no-newline.txt", Content: []byte("no newline")}, {Name: "empty", Content: []byte{}}, {Name: "big.bin", Content: big},
		}}}},
		{Title: "Deploy Key", Category: opservice.Document, Document: &opservice.File{Name: "id", Content: bin}},
		{Title: "home/.ssh/config", Category: opservice.Document, Document: &opservice.File{Name: "config", Content: []byte("Host *\r\n")}},
		{Title: "home/.config/a/b/c/deep.txt", Category: opservice.Document, Document: &opservice.File{Name: "deep.txt", Content: []byte("deep")}},
		{Title: "notes/not-mirrored", Category: opservice.Document, Document: &opservice.File{Name: "n", Content: []byte("n")}},
	}})
	w.svc.AddVault(opservice.Vault{Name: "work", Items: []opservice.Item{
		{Title: "GitHub", Fields: []opservice.Field{{Title: "token", Value: "ghp_1", Concealed: true}}},
	}})
	want := map[string][]byte{
		".codex/auth.json":       []byte(codex),
		".config/login/password": []byte("hunter2"),
		".config/login/key":      []byte("k-123"),
		".config/gh/token":       []byte("ghp_1"),
		"files/nul.bin":          bin,
		"files/crlf.txt":         []byte("a\r\nb\r\n"),
		"files/no-newline.txt":   []byte("no newline"),
		"files/empty":            {},
		"files/big.bin":          big,
		".ssh/id_deploy":         bin,
		".ssh/config":            []byte("Host *\r\n"),
		".config/a/b/c/deep.txt": []byte("deep"),
	}
	check := func(when string) {
		t.Helper()
		for rel, b := range want {
			got, err := os.ReadFile(filepath.Join(w.home, rel))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: ~/%s: %v, %d bytes, want %d", when, rel, err, len(got), len(b))
			}
			if st, _ := os.Stat(filepath.Join(w.home, rel)); st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: ~/%s has mode %v", when, rel, st.Mode().Perm())
			}
		}
		if _, err := os.Stat(filepath.Join(w.home, "not-mirrored")); err == nil {
			t.Fatalf("%s: a Document outside home/ was mirrored", when)
		}
	}

	start := time.Now()
	out, code := w.sync()
	if code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	t.Logf("first sync (a cold helper) took %s", time.Since(start).Round(time.Millisecond))
	check("first sync")
	st := w.state()
	if st.LastPass == nil || st.LastPass.Calls != w.svc.Total() {
		t.Errorf("status counts %v request(s), the service saw %d: %v", st.LastPass, w.svc.Total(), w.svc.Requests())
	}
	t.Logf("a pass over %d secrets and 2 mirrored Documents: %d requests: %v", 10, w.svc.Total(), w.svc.Requests())
	w.svc.ResetCounts()
	if out, code := w.sync(); code != 0 {
		t.Fatalf("unchanged sync: exit %d\n%s", code, out)
	}
	t.Logf("the same pass, nothing changed: %d requests", w.svc.Total())

	for _, tc := range []struct {
		route string
		fault opservice.Fault
		class string
	}{
		{opservice.RouteAuthStart, opservice.Fault{Status: 401}, "invalid-token"},
		{opservice.RouteVaults, opservice.Fault{Status: 403}, "invalid-token"},
		{opservice.RouteBatch, opservice.Fault{Status: 429, RetryAfter: "3600"}, "rate-limited"},
		{opservice.RouteVaults, opservice.Fault{Status: 500}, "unreachable"},
		{opservice.RouteOverviews, opservice.Fault{Reset: true}, "unreachable"},
		{opservice.RouteVaults, opservice.Fault{Malformed: true}, "other"},
	} {
		w.svc.Clear()
		w.svc.ResetCounts()
		w.svc.Fail(tc.route, tc.fault)
		out, code := w.sync()
		if code != exitFailed || !strings.Contains(out, "codex: stale ("+tc.class+")") {
			t.Fatalf("%s %+v: exit %d, want %d and codex stale (%s):\n%s", tc.route, tc.fault, code, exitFailed, tc.class, out)
		}
		if w.svc.Requests()[tc.route] == 0 {
			t.Fatalf("%s: the fault was never met", tc.route)
		}
		if n := w.svc.Requests()[opservice.RouteAuthStart]; n != 1 {
			t.Errorf("%s failing: %d sign-ins in one pass, want 1", tc.route, n)
		}
		if strings.Contains(out, w.token) {
			t.Fatal("the token is in the output")
		}
		check(tc.route + " failing")
	}

	// Recovery, with a value changed in 1Password meanwhile, and an item
	// gone: that secret alone fails.
	w.svc.Clear()
	w.svc.PutItem("work", opservice.Item{Title: "GitHub", Fields: []opservice.Field{{Title: "token", Value: "ghp_2", Concealed: true}}})
	w.svc.DeleteItem("egoengine", "Deploy Key")
	out, code = w.sync()
	if code != exitFailed || !strings.Contains(out, "deploy-key: stale (not-found)") {
		t.Fatalf("after recovery: exit %d\n%s", code, out)
	}
	want[".config/gh/token"] = []byte("ghp_2")
	check("after recovery")
	assertNoCanary(t, w.workspace)
}

// The shipped helper has no way to the test service: the loopback dialer is
// only in the egoagent_optest build, and no binary links the service.
func TestOnePasswordTestDialerIsNotShipped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds egoagent-op")
	}
	shipped, err := buildHelper()
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := buildTestHelper()
	if err != nil {
		t.Fatal(err)
	}
	const marker = "EGOAGENT_OPTEST_ADDR"
	for path, want := range map[string]bool{shipped: false, tagged: true} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, []byte(marker)); got != want {
			t.Errorf("%s holds the test dialer: %v, want %v", path, got, want)
		}
	}
	for _, args := range [][]string{
		{"list", "-deps", "github.com/veraticus/egoengine/cmd/egoagent-op", "github.com/veraticus/egoengine/cmd/egoagent"},
		{"list", "-deps", "-tags", "egoagent_optest", "github.com/veraticus/egoengine/cmd/egoagent-op"},
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
		if strings.Contains(string(out), "/opservice") {
			t.Errorf("go %v: a binary links the test service", args)
		}
	}
}

// run runs one egoagent command with the test helper and the service.
func (w *opWorkspace) run(args ...string) (string, int) {
	w.t.Helper()
	c := w.cmd(args...)
	c.Env = append(c.Env, "EGOAGENT_OP_HELPER="+w.helper, "EGOAGENT_OPTEST_ADDR="+w.svc.Addr(), "EGOAGENT_OPTEST_CERT="+w.cert)
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		w.t.Fatal(err)
	}
	return string(out), 0
}

// A value changed in 1Password reaches the file on the next
// `egoagent refresh`, through the daemon, its pass and a new helper.
func TestOnePasswordServiceRefresh(t *testing.T) {
	w := newOpWorkspace(t, `
[schedule]
refresh = "@every 6h"
jitter = "0s"

[[secret]]
name = "github"
ref = "op://work/GitHub/token"
path = "~/.config/gh/token"
`)
	w.svc.AddVault(opservice.Vault{Name: "work", Items: []opservice.Item{
		{Title: "GitHub", Fields: []opservice.Field{{Title: "token", Value: "ghp_1", Concealed: true}}},
	}})
	if out, code := w.run("start"); code != 0 || w.read(".config/gh/token") != "ghp_1" {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	w.svc.PutItem("work", opservice.Item{Title: "GitHub", Fields: []opservice.Field{{Title: "token", Value: "ghp_2", Concealed: true}}})
	w.svc.ResetCounts()
	if out, code := w.run("refresh", "github"); code != 0 || w.read(".config/gh/token") != "ghp_2" {
		t.Fatalf("refresh: exit %d, file %q\n%s", code, w.read(".config/gh/token"), out)
	}
	if st := w.state(); st.LastPass == nil || st.LastPass.Calls != w.svc.Total() {
		t.Errorf("status counts %+v, the service saw %d requests", st.LastPass, w.svc.Total())
	}
	t.Logf("refresh of one field: %d requests: %v", w.svc.Total(), w.svc.Requests())
	assertNoCanary(t, w.workspace)
}

// A token that may read the vault but not write to it: the renewed file
// stays where it is (it is the good copy), sync still succeeds, and status
// and the metadata line say what to grant, on which vault.
func TestWriteBackWithAReadOnlyToken(t *testing.T) {
	w := newOpWorkspace(t, `
[check]
codex_command = "/nonexistent/codex"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
write_back = true
`)
	now := time.Now().Truncate(time.Second)
	old := checktest.ChatGPT{LastRefresh: now.Add(-time.Hour), Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-old"}.JSON()
	w.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{{Title: "Codex Auth", Category: opservice.SecureNote,
		Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: old}}}}}}})
	w.svc.SetReadOnly("egoengine", true)
	if out, code := w.sync(); code != 0 {
		t.Fatalf("first sync: %d\n%s", code, out)
	}
	renewed := checktest.ChatGPT{LastRefresh: now, Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-new"}.JSON()
	if err := os.WriteFile(filepath.Join(w.home, ".codex/auth.json"), renewed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := w.sync()
	if code != 0 || !strings.Contains(out, "codex: kept") {
		t.Fatalf("sync with a read-only token: exit %d\n%s", code, out)
	}
	if w.read(".codex/auth.json") != string(renewed) {
		t.Fatal("the renewed file was replaced")
	}
	if it, _ := w.svc.Item("egoengine", "Codex Auth"); string(it.Sections[0].Files[0].Content) != string(old) {
		t.Fatal("1Password's copy changed")
	}
	status, _ := w.run("status")
	for _, want := range []string{"write-back: failed", "(read-only)", `vault "egoengine"`, "write access"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if meta, _ := w.run("metadata"); !strings.Contains(meta, "codex write-back failing (read-only)") {
		t.Errorf("metadata: %q", meta)
	}
	if strings.Contains(status+out, w.token) {
		t.Fatal("the token reached the output")
	}
}

// egoagent carries no HTTP client: the token endpoint's call (renew = true)
// is the helper's. zap links net/http, but only a program that sends a
// request keeps its client, which would add 2 MB and milliseconds to every
// start, `metadata` every 30 s included (docs/performance.md). The helper
// has the client; the check can tell.
func TestEgoagentLinksNoHTTPClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds egoagent and egoagent-op with symbols")
	}
	dir := t.TempDir()
	for pkg, want := range map[string]bool{"../egoagent": false, "../egoagent-op": true} {
		bin := filepath.Join(dir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		syms, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(syms), "net/http.(*Transport).roundTrip"); got != want {
			t.Errorf("%s holds an HTTP client: %v, want %v", pkg, got, want)
		}
	}
}
