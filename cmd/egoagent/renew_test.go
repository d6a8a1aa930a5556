package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/codexsim"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// One renewer (renew = true): workspaces agree through a lease item in the
// local 1Password service which one of them calls the token endpoint
// (codexsim's, the one Codex would call). These tests need no Codex CLI:
// the check falls back on the file's own rules, and `refresh --renew` asks
// for the renewal at a moment the test picks. The login lives two hours,
// so no look near renewal comes during a test.

const renewLife = 2 * time.Hour

func renewSim(t *testing.T, workspaces int) *simulation {
	t.Helper()
	if testing.Short() {
		t.Skip("several daemons and helpers against the local 1Password service, and a lease that expires in real time")
	}
	// Each test has a service, an endpoint and homes of its own, and
	// spends most of its time waiting out a claim or a lease.
	t.Parallel()
	return newSimulation(t, "/nonexistent/codex", simOptions{writeBack: true, renew: true, workspaces: workspaces, life: renewLife})
}

// lease is the record in the lease item beside "Codex Auth".
func (s *simulation) lease() renew.Lease {
	var l renew.Lease
	it, ok := s.svc.Item("egoengine", onepassword.LeaseTitle("Codex Auth"))
	if !ok {
		return l
	}
	for _, sec := range it.Sections {
		for _, f := range sec.Fields {
			if f.Title == "lease" {
				json.Unmarshal([]byte(f.Value), &l)
			}
		}
	}
	return l
}

// gen is the generation of the login in workspace w's home, -1 when none.
func (s *simulation) gen(w *workspace) int {
	g, err := codexsim.Gen([]byte(w.read(".codex/auth.json")))
	if err != nil {
		return -1
	}
	return g
}

func (s *simulation) renewal(w *workspace) string {
	sec := w.state().Find("codex")
	if sec == nil || sec.Renewal == nil {
		return ""
	}
	return sec.Renewal.Note
}

// noTokenLeaked fails if any token of any login the endpoint saw, or any
// home holds, appears where egoagent writes for people and machines: each
// workspace's log, state and daemon report, status and metadata output, and
// the lease record in 1Password. The refresh tokens are the canaries (each
// "rt-<generation>-<24 hex digits>"), with the access tokens' signatures.
func (s *simulation) noTokenLeaked(t *testing.T) {
	t.Helper()
	var canaries []string
	for _, w := range s.ws {
		var f struct {
			Tokens struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			} `json:"tokens"`
		}
		json.Unmarshal([]byte(w.read(".codex/auth.json")), &f)
		canaries = append(canaries, f.Tokens.RefreshToken)
		if parts := strings.Split(f.Tokens.AccessToken, "."); len(parts) == 3 {
			canaries = append(canaries, parts[2])
		}
	}
	for _, r := range s.iss.Refreshes() {
		canaries = append(canaries, r.Token)
	}
	var places []string
	for _, w := range s.ws {
		for _, name := range []string{"egoagent.log", "state.json", "daemon.json"} {
			b, _ := os.ReadFile(filepath.Join(w.stateDir(), name))
			places = append(places, w.home+" "+name+": "+string(b))
		}
		for _, cmd := range []string{"status", "metadata"} {
			out, _ := s.egoagent(w, cmd)
			places = append(places, w.home+" "+cmd+": "+out)
		}
	}
	l := s.lease()
	places = append(places, "lease: "+l.Holder+" "+l.Login+" "+string(l.State))
	for _, c := range canaries {
		if len(c) < 16 {
			t.Fatalf("canary %q is too short to prove anything", c)
		}
		for _, p := range places {
			if strings.Contains(p, c) {
				t.Fatalf("a token reached %s", p[:min(len(p), 120)])
			}
		}
	}
}

// spentOnce fails unless every refresh token reached the endpoint at most
// once, and returns how many calls it saw.
func (s *simulation) spentOnce(t *testing.T) int {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range s.iss.Refreshes() {
		if seen[r.Token] || r.Outcome != codexsim.OK {
			t.Fatalf("refresh token of generation %d presented again (%s): %+v", r.TokenGen, r.Outcome, s.iss.Refreshes())
		}
		seen[r.Token] = true
	}
	return len(seen)
}

func TestRenewOnceWhenTwoWorkspacesAskAtOnce(t *testing.T) {
	s := renewSim(t, 2)
	defer s.stop()
	var wg sync.WaitGroup
	out := make([]string, len(s.ws))
	start := make(chan struct{})
	for i, w := range s.ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			o, code := s.egoagent(w, "refresh", "--renew", "codex")
			out[i] = o
			if code != 0 {
				t.Errorf("workspace %d: refresh --renew: exit %d\n%s", i, code, o)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := s.spentOnce(t); n != 1 {
		t.Fatalf("%d calls to the token endpoint; want one for both workspaces", n)
	}
	renewed, held := 0, 0
	for i, w := range s.ws {
		switch note := s.renewal(w); {
		case note == "renewed here and uploaded":
			renewed++
			if s.gen(w) != 1 {
				t.Errorf("workspace %d renewed, yet holds generation %d", i, s.gen(w))
			}
		case strings.Contains(note, "renews it (lease until"):
			held++
		default:
			t.Errorf("workspace %d: renewal %q\n%s", i, note, out[i])
		}
	}
	if renewed != 1 || held != 1 {
		t.Fatalf("%d renewed, %d left it to the other", renewed, held)
	}
	if s.inVault() != 1 || s.lease().State != renew.Done {
		t.Fatalf("1Password holds generation %d, lease %+v", s.inVault(), s.lease())
	}
	// The other workspace takes the new login at its next look; a refresh
	// is one.
	for i, w := range s.ws {
		if o, code := s.egoagent(w, "refresh", "codex"); code != 0 || s.gen(w) != 1 {
			t.Fatalf("workspace %d after a refresh: generation %d, exit %d\n%s", i, s.gen(w), code, o)
		}
	}
	s.spentOnce(t)
	s.noTokenLeaked(t)
}

// A renewer killed while it waits out its claim has sent nothing: its
// lease binds the others until it expires, and then one of them renews.
// The refresh token is presented once.
func TestRenewerKilledBeforeTheCall(t *testing.T) {
	s := renewSim(t, 2)
	defer s.stop()
	a, b := s.ws[0], s.ws[1]
	// The workspace dies whole: its daemon and the person's refresh (a
	// caller that outlives its daemon would do the pass itself).
	client := a.cmd("refresh", "--renew", "codex")
	client.Env = append(client.Env, s.env...)
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "workspace a claims the lease", func() bool {
		return s.lease().State == renew.Claimed
	})
	client.Process.Kill()
	client.Wait()
	a.killDaemon()
	claim := s.lease()
	if claim.State != renew.Claimed {
		t.Fatalf("a got past its claim before the kill: %+v", claim)
	}

	if o, _ := s.egoagent(b, "refresh", "--renew", "codex"); !strings.Contains(s.renewal(b), "renews it (lease until") {
		t.Fatalf("b renewed past a live claim: %q\n%s", s.renewal(b), o)
	}
	if n := len(s.iss.Refreshes()); n != 0 {
		t.Fatalf("%d calls while a's claim was live", n)
	}
	time.Sleep(time.Until(claim.Until) + time.Second)
	if o, code := s.egoagent(b, "refresh", "--renew", "codex"); code != 0 || s.renewal(b) != "renewed here and uploaded" {
		t.Fatalf("b after the claim expired: exit %d, renewal %q\n%s", code, s.renewal(b), o)
	}
	if n := s.spentOnce(t); n != 1 || s.inVault() != 1 || s.gen(b) != 1 {
		t.Fatalf("%d calls; 1Password generation %d, b's %d", n, s.inVault(), s.gen(b))
	}
	// a comes back and takes the new login.
	if o, code := s.egoagent(a, "start"); code != 0 || s.gen(a) != 1 {
		t.Fatalf("a restarted: generation %d, exit %d\n%s", s.gen(a), code, o)
	}
}

// A renewer killed after the endpoint answered, before its upload: the new
// login is already in its home, its lease says it was calling, and no
// other workspace presents the spent token. When the workspace comes back,
// its egoagent uploads the login (write-back), and the others get it.
func TestRenewerKilledAfterTheAnswer(t *testing.T) {
	s := renewSim(t, 2)
	defer s.stop()
	a, b := s.ws[0], s.ws[1]
	pid := a.daemonPID()
	// The person's refresh is killed too: a caller that outlives its
	// daemon does the pass itself, which would upload at once.
	client := a.cmd("refresh", "--renew", "codex")
	client.Env = append(client.Env, s.env...)
	killed := make(chan struct{})
	s.svc.Before(opservice.RouteUpload, func() {
		// The upload is held here until the daemon and its helper are
		// gone: a helper that outlived the kill by a millisecond would
		// finish the upload.
		procs := append(childrenOf(t, pid), pid, client.Process.Pid)
		syscall.Kill(pid, syscall.SIGKILL)
		client.Process.Kill()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			alive := 0
			for _, p := range procs {
				if syscall.Kill(p, 0) == nil && !zombie(p) {
					alive++
				}
			}
			if alive == 0 {
				break
			}
		}
		close(killed)
	})
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Wait()
	select {
	case <-killed:
	case <-time.After(time.Minute):
		t.Fatal("workspace a never began its upload")
	}
	eventually(t, 10*time.Second, "a's daemon gone", func() bool { return daemonGone(a.stateDir()) })
	if s.gen(a) != 1 || s.inVault() != 0 || s.lease().State != renew.Calling {
		t.Fatalf("after the kill: a holds generation %d, 1Password %d, lease %+v", s.gen(a), s.inVault(), s.lease())
	}

	// b must not present generation 0's token: not while the lease is
	// live, and not once it has expired either.
	s.egoagent(b, "refresh", "--renew", "codex")
	time.Sleep(time.Until(s.lease().Until) + time.Second)
	o, _ := s.egoagent(b, "refresh", "--renew", "codex")
	if note := s.renewal(b); !strings.Contains(note, "did not finish") {
		t.Fatalf("b's renewal after the lease expired: %q\n%s", note, o)
	}
	if n := s.spentOnce(t); n != 1 {
		t.Fatalf("%d calls to the endpoint", n)
	}

	if o, code := s.egoagent(a, "start"); code != 0 {
		t.Fatalf("a restarted: exit %d\n%s", code, o)
	}
	eventually(t, 30*time.Second, "a's login uploaded", func() bool { return s.inVault() == 1 })
	if o, code := s.egoagent(b, "refresh", "codex"); code != 0 || s.gen(b) != 1 {
		t.Fatalf("b after a's upload: generation %d, exit %d\n%s", s.gen(b), code, o)
	}
	s.spentOnce(t)
	s.noTokenLeaked(t)
}

// zombie reports whether process pid has exited and waits to be reaped (or
// is gone).
func zombie(pid int) bool {
	f := statFields(fmt.Sprintf("/proc/%d", pid))
	return len(f) == 0 || f[0] == "Z"
}

// When the renewal cannot be made, nothing else changes: the file stays as
// it was, Codex can still renew by itself, and status says what happened.
// An endpoint that cannot be reached leaves the lease free (nothing was
// spent); one that refuses the token marks the login refused, so that no
// workspace tries it again.
func TestRenewalThatFailsLeavesTheFile(t *testing.T) {
	s := renewSim(t, 1)
	defer s.stop()
	w := s.ws[0]
	before := w.read(".codex/auth.json")

	// Spend the login's refresh token behind egoagent's back, as a copy
	// outside egoengine would: the endpoint now refuses it.
	var f struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	json.Unmarshal([]byte(before), &f)
	body := fmt.Sprintf(`{"grant_type":"refresh_token","refresh_token":%q}`, f.Tokens.RefreshToken)
	resp, err := http.Post(s.iss.TokenURL(), "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("spending the token: %v %v", resp, err)
	}
	resp.Body.Close()
	o, code := s.egoagent(w, "refresh", "--renew", "codex")
	sec := w.state().Find("codex")
	if code != 0 || w.read(".codex/auth.json") != before || sec.Renewal == nil || !sec.Renewal.Failed ||
		!strings.Contains(sec.Renewal.Note, "refresh_token_reused") || !strings.Contains(sec.Renewal.Note, "codex login") {
		t.Fatalf("a refused renewal: exit %d, renewal %+v\n%s", code, sec.Renewal, o)
	}
	if l := s.lease(); l.State != renew.Refused {
		t.Fatalf("lease after a refusal: %+v", l)
	}
	if meta, _ := s.egoagent(w, "metadata"); !strings.Contains(meta, "codex renewal failing") {
		t.Fatalf("metadata: %q", meta)
	}

	// A new login arrives (the owner signed in again); the endpoint is
	// down: nothing was sent, so the lease is left free.
	fresh := s.iss.Seed(renewLife)
	cur, _ := s.svc.Item("egoengine", "Codex Auth")
	s.svc.PutItem("egoengine", opservice.Item{ID: cur.ID, Title: "Codex Auth", Category: opservice.SecureNote,
		Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: fresh}}}}})
	if o, code := s.egoagent(w, "refresh", "codex"); code != 0 || w.read(".codex/auth.json") != string(fresh) {
		t.Fatalf("the new login: exit %d\n%s", code, o)
	}
	s.iss.Close()
	o, code = s.egoagent(w, "refresh", "--renew", "codex")
	sec = w.state().Find("codex")
	if code != 0 || w.read(".codex/auth.json") != string(fresh) || sec.Renewal == nil || !sec.Renewal.Failed || sec.Renewal.Class != "unreachable" {
		t.Fatalf("an unreachable endpoint: exit %d, renewal %+v\n%s", code, sec.Renewal, o)
	}
	if l := s.lease(); l.State != renew.Free {
		t.Fatalf("lease after an unreachable endpoint: %+v", l)
	}
	s.noTokenLeaked(t)
}
