package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/secrets/codexsim"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// The simulation of the owner's day: several workspaces share one Codex
// login, kept in one 1Password item, and Codex renews it wherever it is
// used. Each renewal spends the refresh token every other copy holds. Three
// workspaces (three homes, three egoagent daemons, the real helper and SDK
// against the local 1Password service) and the real Codex CLI against
// codexsim's token endpoint, all in a network namespace with loopback only.
//
// Codex is used in a random workspace, at random moments spaced further
// apart than a renewal takes to travel (simGap: the renewing daemon's
// upload, then the others' next look near renewal, every tokenLife/30).
// With write-back, no workspace may ever present a spent refresh token,
// 1Password must end holding the newest copy, and no workspace may ever
// install an older copy over a newer one. Without write-back the same run
// must fail, which shows the simulation can.
//
// A renewal takes 10 to 30 s to reach every workspace here (a cold helper
// pass is 5 to 12 s on two busy cores, and the others look every 10 s), so
// uses come 45 to 60 s apart. scripts/test-go.sh runs these tests on their
// own, after the rest, so that other packages' tests do not slow the
// passes.
//
// EGOAGENT_SIM_USES sets the number of uses (default 6), and
// EGOAGENT_SIM_REPORT a file to which the propagation times are appended
// (make bench uses both).

var simGap = [2]time.Duration{45 * time.Second, 60 * time.Second}

func TestCodexSimulationWithWriteBack(t *testing.T) {
	codex := simCodex(t)
	if !codexsim.InNetns(t) {
		return
	}
	uses := 6
	if n, err := fmt.Sscan(os.Getenv("EGOAGENT_SIM_USES"), &uses); n == 1 && err == nil && uses < 2 {
		t.Fatalf("EGOAGENT_SIM_USES=%d: at least 2", uses)
	}
	sim := newSimulation(t, codex, true)
	sim.play(uses, false)

	if reused := sim.iss.Reused(); len(reused) > 0 {
		t.Fatalf("a workspace presented a spent refresh token %d time(s): %v", len(reused), reused)
	}
	if got := sim.renewals(); got < uses {
		t.Fatalf("%d renewals in %d uses: the simulation did not exercise renewal", got, uses)
	}
	newest := sim.iss.Newest()
	eventually(t, 2*time.Minute, "every workspace and 1Password hold the newest copy", func() bool {
		if sim.inVault() != newest {
			return false
		}
		for _, w := range sim.ws {
			if g, _ := codexsim.Gen([]byte(w.read(".codex/auth.json"))); g != newest {
				return false
			}
		}
		return true
	})
	sim.stop()
	if v := sim.violations(); len(v) > 0 {
		t.Fatalf("an older copy was installed over a newer one:\n%s", strings.Join(v, "\n"))
	}
	sim.report(t)
}

func TestCodexSimulationWithoutWriteBackFails(t *testing.T) {
	codex := simCodex(t)
	if !codexsim.InNetns(t) {
		return
	}
	sim := newSimulation(t, codex, false)
	sim.play(4, true)
	sim.stop()
	if len(sim.iss.Reused()) == 0 {
		t.Fatal("without write-back no workspace presented a spent refresh token: the simulation cannot fail")
	}
}

func simCodex(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("minutes of real time with the real Codex CLI and three daemons")
	}
	return checktest.CodexPath(t)
}

// simulation is three workspaces sharing the item "Codex Auth".
type simulation struct {
	t     *testing.T
	codex string
	iss   *codexsim.Issuer
	svc   *opservice.Service
	ws    []*workspace
	env   []string // the helper and the service, for every egoagent

	mu      sync.Mutex
	seen    []map[int]time.Time // per workspace: when each generation first appeared
	last    []int               // per workspace: the generation last seen
	bad     []string            // older copies installed over newer ones
	renewed map[int]time.Time   // generation: when Codex wrote it
	vault   map[int]time.Time   // generation: when 1Password first held it
	done    chan struct{}
	stopped sync.WaitGroup
}

const simConfig = `[source]
kind = "1password"

[schedule]
refresh = "@every 6h"
jitter = "0s"

[check]
codex_command = %q

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
write_back = %t
`

func newSimulation(t *testing.T, codex string, writeBack bool) *simulation {
	t.Helper()
	helper, err := buildTestHelper()
	if err != nil {
		t.Fatal(err)
	}
	s := &simulation{t: t, codex: codex, iss: codexsim.NewIssuer(), renewed: map[int]time.Time{}, vault: map[int]time.Time{}, done: make(chan struct{})}
	t.Cleanup(s.iss.Close)
	if s.svc, err = opservice.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.svc.Close)
	seed := s.iss.Seed(codexsim.DefaultLifetime)
	s.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{{
		Title: "Codex Auth", Category: opservice.SecureNote,
		Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: seed}}}},
	}}})
	cert := filepath.Join(t.TempDir(), "service.pem")
	if err := os.WriteFile(cert, s.svc.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = []string{"EGOAGENT_OP_HELPER=" + helper, "EGOAGENT_OPTEST_ADDR=" + s.svc.Addr(), "EGOAGENT_OPTEST_CERT=" + cert}
	token := s.svc.Token()
	for range 3 {
		w := newWorkspace(t, "")
		w.token = token
		if err := os.WriteFile(w.config, fmt.Appendf(nil, simConfig, codex, writeBack), 0o600); err != nil {
			t.Fatal(err)
		}
		s.ws = append(s.ws, w)
		s.seen = append(s.seen, map[int]time.Time{})
		s.last = append(s.last, -1)
	}
	for i, w := range s.ws {
		if out, code := s.egoagent(w, "start"); code != 0 {
			t.Fatalf("workspace %d: egoagent start: %d\n%s", i, code, out)
		}
	}
	s.stopped.Add(1)
	go s.watch()
	return s
}

func (s *simulation) egoagent(w *workspace, args ...string) (string, int) {
	c := w.cmd(args...)
	c.Env = append(c.Env, s.env...)
	out, err := c.CombinedOutput()
	if err != nil {
		if c.ProcessState == nil {
			s.t.Fatal(err)
		}
		return string(out), c.ProcessState.ExitCode()
	}
	return string(out), 0
}

// watch reads every workspace's auth.json every 50 ms and records each
// generation's first appearance, and any step back.
func (s *simulation) watch() {
	defer s.stopped.Done()
	for {
		select {
		case <-s.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if g := s.inVault(); g >= 0 {
			s.mu.Lock()
			if _, ok := s.vault[g]; !ok {
				s.vault[g] = time.Now()
			}
			s.mu.Unlock()
		}
		for i, w := range s.ws {
			g, err := codexsim.Gen([]byte(w.read(".codex/auth.json")))
			if err != nil {
				continue // absent, or caught mid-write by Codex
			}
			s.mu.Lock()
			if _, ok := s.seen[i][g]; !ok {
				s.seen[i][g] = time.Now()
			}
			if g < s.last[i] {
				s.bad = append(s.bad, fmt.Sprintf("workspace %d went from generation %d to %d", i, s.last[i], g))
			}
			s.last[i] = g
			s.mu.Unlock()
		}
	}
}

// play uses Codex uses times, each in a random workspace other than the
// last one's, simGap apart. stopAtReuse ends the run at the first spent
// token presented.
func (s *simulation) play(uses int, stopAtReuse bool) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	last := -1
	for n := range uses {
		if n > 0 {
			time.Sleep(simGap[0] + time.Duration(rng.Int64N(int64(simGap[1]-simGap[0]))))
		}
		k := rng.IntN(len(s.ws))
		for k == last {
			k = rng.IntN(len(s.ws))
		}
		last = k
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		ex, err := s.iss.Run(ctx, s.codex, s.ws[k].home)
		cancel()
		if err != nil {
			s.t.Fatalf("use %d in workspace %d: %v", n, k, err)
		}
		s.t.Logf("use %d: workspace %d, renewed to %v, reused %v, took %s", n, k, ex.RefreshedGens(), ex.Reused, ex.Took.Round(time.Millisecond))
		for _, r := range ex.Refreshes {
			if r.Outcome == codexsim.OK {
				s.mu.Lock()
				s.renewed[r.Gen] = r.At
				s.mu.Unlock()
			}
		}
		if ex.Reused && stopAtReuse {
			return
		}
	}
}

// stop ends the watch, shows each workspace's status, and stops the
// daemons with SIGTERM, waiting until no process of theirs is left to write
// in the homes that are about to be removed.
func (s *simulation) stop() {
	close(s.done)
	s.stopped.Wait()
	for i, w := range s.ws {
		out, code := s.egoagent(w, "status")
		s.t.Logf("workspace %d status (exit %d):\n%s", i, code, out)
		if pid := w.daemonPID(); pid != 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, w := range s.ws {
		eventually(s.t, 10*time.Second, "the workspace's egoagent processes end", func() bool {
			return daemonGone(w.stateDir()) && homeProcs(w.home, func([]byte) bool { return true }) == 0
		})
	}
}

func (s *simulation) renewals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.renewed)
}

func (s *simulation) violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bad)
}

// inVault is the generation of the copy 1Password holds.
func (s *simulation) inVault() int {
	it, ok := s.svc.Item("egoengine", "Codex Auth")
	if !ok || len(it.Sections) == 0 || len(it.Sections[0].Files) == 0 {
		return -1
	}
	g, err := codexsim.Gen(it.Sections[0].Files[0].Content)
	if err != nil {
		return -1
	}
	return g
}

// report logs, and appends to EGOAGENT_SIM_REPORT, how long each renewal
// took to reach every other workspace.
func (s *simulation) report(t *testing.T) {
	s.mu.Lock()
	var spread, upload []time.Duration
	for g, at := range s.renewed {
		if up, ok := s.vault[g]; ok {
			upload = append(upload, up.Sub(at))
		}
		var last time.Time
		for i := range s.ws {
			if seen, ok := s.seen[i][g]; ok && seen.After(last) {
				last = seen
			}
		}
		if !last.IsZero() {
			spread = append(spread, last.Sub(at))
		}
	}
	s.mu.Unlock()
	if len(spread) == 0 || len(upload) == 0 {
		t.Fatalf("no renewal reached every workspace (%d) or 1Password (%d)", len(spread), len(upload))
	}
	ms := func(d []time.Duration, i int) time.Duration { return d[i].Round(time.Millisecond) }
	slices.Sort(spread)
	slices.Sort(upload)
	line := fmt.Sprintf("renewals %d everywhere-median %s everywhere-max %s upload-median %s upload-max %s",
		len(spread), ms(spread, len(spread)/2), ms(spread, len(spread)-1), ms(upload, len(upload)/2), ms(upload, len(upload)-1))
	t.Log("propagation: " + line)
	if p := os.Getenv("EGOAGENT_SIM_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
}
