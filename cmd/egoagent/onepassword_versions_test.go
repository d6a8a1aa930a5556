package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// The image's configuration (nix/egoagent/settings.nix), with the json
// check standing in for Codex's so that no Codex CLI runs.
const imageLikeConfig = `
[schedule]
refresh = "@every 1h"
jitter = "0s"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "json"
policy = "consumer-rewrites"

[[mirror]]
vault = "egoengine"
prefix = "home/"
`

// A pass over items 1Password still holds at the versions egoagent
// installed downloads nothing: the item list and batch read tell the
// versions, and each file or Document it skips saves two requests. Anything
// that differs (a new version, a local copy changed or deleted, --force, a
// state that kept no versions) is downloaded as before, in the same pass.
func TestUnchangedItemsAreNotDownloadedAgain(t *testing.T) {
	w := newOpWorkspace(t, imageLikeConfig)
	codex := `{"tokens":{"refresh_token":"r1"}}` + "\n"
	items := []opservice.Item{{Title: "Codex Auth", Category: opservice.SecureNote,
		Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: []byte(codex)}}}}}}
	doc := func(i int) string { return fmt.Sprintf(".config/docs/doc%d.conf", i) }
	docItem := func(i int, content string) opservice.Item {
		return opservice.Item{Title: "home/" + doc(i), Category: opservice.Document,
			Document: &opservice.File{Name: filepath.Base(doc(i)), Content: []byte(content)}}
	}
	for i := range 5 {
		items = append(items, docItem(i, fmt.Sprintf("doc %d, first\n", i)))
	}
	w.svc.AddVault(opservice.Vault{Name: "egoengine", Items: items})

	// pass runs sync and returns its downloads and its requests.
	pass := func(when string, args ...string) (downloads, requests int) {
		t.Helper()
		w.svc.ResetCounts()
		out, code := w.run(append([]string{"sync"}, args...)...)
		if code != 0 {
			t.Fatalf("%s: sync exit %d\n%s", when, code, out)
		}
		r := w.svc.Requests()
		return r[opservice.RouteFile] + r[opservice.RouteSignedFile], w.svc.Total()
	}
	has := func(when string, i int, want string) {
		t.Helper()
		if got := w.read(doc(i)); got != want {
			t.Fatalf("%s: ~/%s holds %q, want %q", when, doc(i), got, want)
		}
	}

	if d, r := pass("first pass"); d != 6 {
		t.Fatalf("first pass: %d downloads (%d requests), want 6", d, r)
	}
	d, r := pass("unchanged")
	if d != 0 || r > 12 {
		t.Fatalf("a pass over unchanged items: %d downloads, %d requests; want none and at most 12", d, r)
	}
	t.Logf("the image's configuration with 5 Documents, unchanged: %d requests a pass", r)
	for i := range 5 {
		has("unchanged", i, fmt.Sprintf("doc %d, first\n", i))
	}
	if w.read(".codex/auth.json") != codex {
		t.Fatal("unchanged: auth.json changed")
	}

	// A new version of one Document: that one alone, installed now.
	w.svc.PutItem("egoengine", docItem(2, "doc 2, second\n"))
	if d, _ := pass("one changed"); d != 1 {
		t.Fatalf("one Document changed: %d downloads, want 1", d)
	}
	has("one changed", 2, "doc 2, second\n")

	// A local copy deleted, another changed by hand: both come back.
	os.Remove(filepath.Join(w.home, doc(3)))
	os.WriteFile(filepath.Join(w.home, doc(4)), []byte("edited here\n"), 0o600)
	if d, _ := pass("local copies gone and changed"); d != 2 {
		t.Fatalf("a deleted and a changed local copy: %d downloads, want 2", d)
	}
	has("local copies gone and changed", 3, "doc 3, first\n")
	has("local copies gone and changed", 4, "doc 4, first\n")

	// --force downloads everything.
	if d, _ := pass("forced", "--force"); d != 6 {
		t.Fatalf("--force: %d downloads, want 6", d)
	}

	// A state written by an egoagent that kept no versions: everything once.
	p := filepath.Join(w.stateDir(), statedir.StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := regexp.MustCompile(`(?m)^\s*"version": "[^"]*",\n`).ReplaceAll(b, nil)
	if strings.Contains(string(old), `"version": "`) || len(old) == len(b) {
		t.Fatal("could not take the versions out of the state")
	}
	os.WriteFile(p, old, 0o600)
	if d, _ := pass("old state"); d != 6 {
		t.Fatalf("a state without versions: %d downloads, want 6", d)
	}
	if d, _ := pass("after the old state"); d != 0 {
		t.Fatalf("the pass after: %d downloads, want none", d)
	}
	// The versions the state now keeps are item IDs and numbers: the token
	// is in none of its files.
	assertNoCanary(t, w.workspace)
}
