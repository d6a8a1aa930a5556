package main

import (
	"cmp"
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

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/secrets/codexsim"
	"github.com/veraticus/egoengine/internal/secrets/renew"
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
	sim := newSimulation(t, codex, simOptions{writeBack: true})
	sim.play(uses, false)

	if reused := sim.iss.Reused(); len(reused) > 0 {
		t.Fatalf("a workspace presented a spent refresh token %d time(s): %v", len(reused), reused)
	}
	if got := sim.renewals(); got < uses {
		t.Fatalf("%d renewals in %d uses: the simulation did not exercise renewal", got, uses)
	}
	sim.settle()
	sim.report(t)
}

func TestCodexSimulationWithoutWriteBackFails(t *testing.T) {
	codex := simCodex(t)
	if !codexsim.InNetns(t) {
		return
	}
	sim := newSimulation(t, codex, simOptions{})
	sim.play(4, true)
	sim.stop()
	if len(sim.iss.Reused()) == 0 {
		t.Fatal("without write-back no workspace presented a spent refresh token: the simulation cannot fail")
	}
}

// The concurrent case: right after each refresh point, Codex runs in
// every workspace within a few seconds of the others, as when the owner
// (or agents he left running) works in several at once. Every copy holds
// the same refresh token then, so without one renewer ahead of them all,
// each Codex renews with it and all but one get refresh_token_reused.
//
// Tokens here live 420 s: Codex's refresh point is 120 s after each renewal,
// and egoagent renews 84 s before it (six looks of 14 s), a renewal about
// every minute.
const (
	simRenewLife   = 420 * time.Second
	simRenewRounds = 3
	simTogether    = 3 * time.Second // the spread of one round's uses
)

func TestCodexSimulationConcurrentWithRenewer(t *testing.T) {
	codex := simCodex(t)
	if !codexsim.InNetns(t) {
		return
	}
	sim := newSimulation(t, codex, simOptions{writeBack: true, renew: true, life: simRenewLife})
	for round := range simRenewRounds {
		point := sim.refreshPoint()
		time.Sleep(time.Until(point) + time.Second)
		for i, ex := range sim.together() {
			t.Logf("round %d, workspace %d: exit %d, refreshes %d, model calls %+v, took %s", round, i, ex.ExitCode, len(ex.Refreshes), ex.ModelCalls, ex.Took.Round(time.Millisecond))
			if ex.ExitCode != 0 || !strings.Contains(ex.Output, codexsim.Reply) {
				t.Errorf("round %d: Codex failed in workspace %d (exit %d):\n%s", round, i, ex.ExitCode, ex.Output)
			}
			if len(ex.Refreshes) > 0 {
				t.Errorf("round %d: Codex renewed the login itself in workspace %d: %+v", round, i, ex.Refreshes)
			}
		}
	}
	refreshes := sim.iss.Refreshes()
	seen := map[string]bool{}
	for _, r := range refreshes {
		if seen[r.Token] || r.Outcome != codexsim.OK {
			t.Errorf("refresh token of generation %d presented again (%s)", r.TokenGen, r.Outcome)
		}
		seen[r.Token] = true
		if r.Run != "" {
			t.Errorf("a Codex process renewed (run %s): only egoagent's renewer may", r.Run)
		}
	}
	if len(refreshes) < simRenewRounds {
		t.Fatalf("%d renewals in %d rounds: egoagent did not renew ahead of each point", len(refreshes), simRenewRounds)
	}
	sim.settle()
}

// The same use without the renewer (write-back alone): the round right
// after the point sees the reuse, so the case above can fail.
func TestCodexSimulationConcurrentWithoutRenewerFails(t *testing.T) {
	codex := simCodex(t)
	if !codexsim.InNetns(t) {
		return
	}
	sim := newSimulation(t, codex, simOptions{writeBack: true, life: simRenewLife, seedLeft: codexsim.RefreshWindow + 20*time.Second})
	time.Sleep(time.Until(sim.refreshPoint()) + time.Second)
	sim.together()
	sim.stop()
	if len(sim.iss.Reused()) == 0 {
		t.Fatal("Codex in every workspace at once, without the renewer, and no refresh token was presented twice: the concurrent case cannot fail")
	}
}

// refreshPoint is when Codex renews the login 1Password holds now.
func (s *simulation) refreshPoint() time.Time {
	it, ok := s.svc.Item("egoengine", "Codex Auth")
	if !ok || len(it.Sections) == 0 || len(it.Sections[0].Files) == 0 {
		s.t.Fatal("no login in 1Password")
	}
	st, ok := check.Date(check.KindCodex, it.Sections[0].Files[0].Content)
	if !ok {
		s.t.Fatal("the login in 1Password carries no dates")
	}
	return st.RefreshAt()
}

// together runs Codex once in every workspace, each starting within
// simTogether of the first, and returns what each run did.
func (s *simulation) together() []codexsim.Exec {
	out := make([]codexsim.Exec, len(s.ws))
	var wg sync.WaitGroup
	for i, w := range s.ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(simTogether))))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ex, err := s.iss.Run(ctx, s.codex, w.home)
			if err != nil {
				s.t.Errorf("workspace %d: %v", i, err)
			}
			out[i] = ex
		}()
	}
	wg.Wait()
	return out
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
renew = %t
`

// simOptions shape a simulation: what the workspaces' egoagent does with
// the login, how many workspaces share it, and the login's tokens.
type simOptions struct {
	writeBack, renew bool
	workspaces       int           // 3 when 0
	life             time.Duration // of every token issued; codexsim.DefaultLifetime when 0
	seedLeft         time.Duration // how long the first login's access token has left; life when 0
}

func newSimulation(t *testing.T, codex string, o simOptions) *simulation {
	t.Helper()
	o.workspaces = cmp.Or(o.workspaces, 3)
	o.life = cmp.Or(o.life, codexsim.DefaultLifetime)
	o.seedLeft = cmp.Or(o.seedLeft, o.life)
	helper, err := buildTestHelper()
	if err != nil {
		t.Fatal(err)
	}
	s := &simulation{t: t, codex: codex, iss: codexsim.NewIssuer(), renewed: map[int]time.Time{}, vault: map[int]time.Time{}, done: make(chan struct{})}
	t.Cleanup(s.iss.Close)
	s.iss.Lifetime = o.life
	if s.svc, err = opservice.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.svc.Close)
	seed := s.iss.Seed(o.seedLeft)
	s.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{{
		Title: "Codex Auth", Category: opservice.SecureNote,
		Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: seed}}}},
	}}})
	cert := filepath.Join(t.TempDir(), "service.pem")
	if err := os.WriteFile(cert, s.svc.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = []string{"EGOAGENT_OP_HELPER=" + helper, "EGOAGENT_OPTEST_ADDR=" + s.svc.Addr(), "EGOAGENT_OPTEST_CERT=" + cert,
		renew.TokenURLEnv + "=" + s.iss.TokenURL()}
	token := s.svc.Token()
	for range o.workspaces {
		w := newWorkspace(t, "")
		w.token = token
		if err := os.WriteFile(w.config, fmt.Appendf(nil, simConfig, codex, o.writeBack, o.renew), 0o600); err != nil {
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

// settle waits until every workspace and 1Password hold the newest login
// issued, stops the simulation, and fails if any workspace ever stepped
// back to an older copy.
func (s *simulation) settle() {
	s.t.Helper()
	newest := s.iss.Newest()
	eventually(s.t, 2*time.Minute, "every workspace and 1Password hold the newest login", func() bool {
		if s.inVault() != newest {
			return false
		}
		for _, w := range s.ws {
			if g, _ := codexsim.Gen([]byte(w.read(".codex/auth.json"))); g != newest {
				return false
			}
		}
		return true
	})
	s.stop()
	if v := s.violations(); len(v) > 0 {
		s.t.Fatalf("an older copy was installed over a newer one:\n%s", strings.Join(v, "\n"))
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
