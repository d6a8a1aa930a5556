package engine

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
)

// A damaged state file does not stop secrets from arriving: the pass moves
// it aside, starts from an empty state and says so.
func TestDamagedStateFileIsSetAsideAndThePassGoesOn(t *testing.T) {
	for name, junk := range map[string]string{
		"garbage":    "not json at all",
		"truncated":  `{"version":1,"secrets":[{"name":"cfg"`,
		"wrong type": `{"secrets":5}`,
		"empty":      "",
		"nul bytes":  "\x00\x00\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, jsonSecret, map[string]string{"op://egoengine/Service/config.json": `{"v":1}`})
			stateFile := filepath.Join(h.eng.StateDir, statedir.StateFile)
			os.MkdirAll(h.eng.StateDir, 0o700)
			os.WriteFile(stateFile, []byte(junk), 0o600)

			rep, err := h.eng.Pass(context.Background(), Options{})
			if err != nil {
				t.Fatalf("the pass did not run: %v", err)
			}
			if !rep.OK() || h.read(".config/svc/config.json") != `{"v":1}` {
				t.Fatalf("the secret did not arrive: %+v", rep)
			}
			if len(rep.Notices) != 1 || !strings.Contains(rep.Notices[0], "damaged") || !strings.Contains(rep.Notices[0], stateFile+".damaged") {
				t.Fatalf("the report does not say what happened: %q", rep.Notices)
			}
			if b, _ := os.ReadFile(stateFile + ".damaged"); string(b) != junk {
				t.Fatalf("the damaged copy was not kept: %q", b)
			}
			if _, err := status.Load(h.eng.StateDir); err != nil {
				t.Fatalf("the new state file: %v", err)
			}
			if rep := h.pass(Options{}); len(rep.Notices) != 0 {
				t.Fatalf("a later pass still complains: %q", rep.Notices)
			}
		})
	}
}

// Comparing an unchanged secret with its installed file holds the secret
// in memory once (the fetched copy), not once more per comparison.
func TestUnchangedLargeSecretIsComparedWithoutCopies(t *testing.T) {
	const size = 16 << 20
	big := strings.Repeat("x", size-1) + "\n"
	h := newHarness(t, `
[[secret]]
name = "big"
ref = "op://egoengine/Big/file"
path = "~/big"
`, map[string]string{"op://egoengine/Big/file": big})
	h.pass(Options{})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep := h.pass(Options{})
	runtime.ReadMemStats(&after)
	if rep.Outcomes[0].Note != "unchanged" {
		t.Fatalf("%+v", rep.Outcomes[0])
	}
	// The scripted source hands out one copy (16 MiB); the old engine read
	// the installed file twice more (48 MiB in all).
	if got := after.TotalAlloc - before.TotalAlloc; got > size+size/2 {
		t.Fatalf("an unchanged pass allocated %d MiB for a %d MiB secret", got>>20, size>>20)
	}
}
