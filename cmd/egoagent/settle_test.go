package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A file its program rewrites (consumer-rewrites), with a check.
const rewrittenJSON = `
[schedule]
refresh = "@every 1h"
jitter = "0s"

[[secret]]
name = "tool"
ref = "op://v/tool/state"
path = "~/.tool/state.json"
check = "json"
policy = "consumer-rewrites"
`

// brokenRewrite installs the file with first (sync, or start, which leaves
// a daemon), then breaks it, as its program caught mid-write would.
func brokenRewrite(t *testing.T, first string) *workspace {
	t.Helper()
	if testing.Short() {
		t.Skip("waits out the 10 s a broken file is left alone; make test runs it")
	}
	w := newWorkspace(t, rewrittenJSON)
	w.put("op://v/tool/state", `{"gen":1}`)
	if out, errOut, code := w.egoagent(first); code != 0 {
		t.Fatalf("%s: %d %q %q", first, code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(w.home, ".tool/state.json"), []byte(`{"gen":`), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// egoagent sync right after the file was broken: there is no daemon to
// look again, so sync waits until the file has been left alone, then
// replaces it, and only then says fresh.
func TestSyncRightAfterABrokenRewriteReplacesIt(t *testing.T) {
	w := brokenRewrite(t, "sync")
	out, errOut, code := w.egoagent("sync")
	if code != 0 || !strings.Contains(out, "tool: fresh (the local file fails its check") || w.read(".tool/state.json") != `{"gen":1}` {
		t.Fatalf("sync after a broken rewrite: %d %q %q, file %q", code, out, errOut, w.read(".tool/state.json"))
	}
	if out, _, code := w.egoagent("status"); code != 0 || !strings.Contains(out, "fresh") {
		t.Fatalf("status: %d %q", code, out)
	}
}

// The daemon sees the broken rewrite, says settling (never fresh, never
// ok) while the file may still be being written, and replaces it once the
// settle rule allows.
func TestTheDaemonReplacesABrokenRewriteOnceLeftAlone(t *testing.T) {
	w := brokenRewrite(t, "start")
	broken := time.Now()
	var sawSettling bool
	eventually(t, 30*time.Second, "the broken rewrite replaced", func() bool {
		if w.read(".tool/state.json") == `{"gen":1}` {
			return true
		}
		// Until then, nothing says the file is fine.
		meta, _, _ := w.egoagent("metadata")
		status, _, code := w.egoagent("status")
		if w.read(".tool/state.json") == `{"gen":1}` {
			return true // replaced while we looked
		}
		if strings.HasPrefix(meta, "ok") || (code == 0 && w.state().LastPass.Finished.After(broken)) {
			t.Fatalf("the broken file is called fine: metadata %q, status exit %d\n%s", meta, code, status)
		}
		if strings.Contains(meta, "tool settling") && code == exitFailed {
			sawSettling = true
		}
		return false
	})
	if !sawSettling {
		t.Error("status and metadata never said settling while the broken file waited")
	}
	if since := time.Since(broken); since < 10*time.Second {
		t.Errorf("replaced %s after the rewrite, before the settle rule allows", since)
	}
	if out, _, code := w.egoagent("status"); code != 0 {
		t.Fatalf("status after the replacement: %d\n%s", code, out)
	}
}
