package codexsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
)

// The tests named TestRealCodex* run the real Codex CLI (pinned by
// scripts/ensure-codex.sh) in a network namespace of their own. They skip
// when EGOAGENT_TEST_CODEX is unset, unless EGOAGENT_REQUIRE_CODEX=1.

// refresh posts one refresh request the way Codex does.
func refresh(t *testing.T, iss *Issuer, token string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{
		"client_id": ClientID, "grant_type": "refresh_token", "refresh_reason": "test", "refresh_token": token,
	})
	resp, err := http.Post(iss.TokenURL(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return resp.StatusCode, v
}

func refreshToken(t *testing.T, authJSON []byte) string {
	t.Helper()
	var f struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(authJSON, &f); err != nil {
		t.Fatal(err)
	}
	return f.Tokens.RefreshToken
}

func errorCode(v map[string]any) string {
	e, _ := v["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestIssuerRotatesEachTokenOnce(t *testing.T) {
	iss := NewIssuer()
	defer iss.Close()
	seed := iss.Seed(time.Minute)
	if g, err := Gen(seed); err != nil || g != 0 {
		t.Fatalf("seed generation %d, %v", g, err)
	}
	rt0 := refreshToken(t, seed)
	if TokenGen(rt0) != 0 {
		t.Fatalf("seed refresh token %q does not say generation 0", rt0)
	}

	code, v := refresh(t, iss, rt0)
	if code != http.StatusOK {
		t.Fatalf("first use: %d %v", code, v)
	}
	rt1, _ := v["refresh_token"].(string)
	access, _ := v["access_token"].(string)
	if TokenGen(rt1) != 1 {
		t.Fatalf("new refresh token %q is not generation 1", rt1)
	}
	if g, ok := iss.checkAccess(access); !ok || g != 1 {
		t.Fatalf("new access token: generation %d, valid %v", g, ok)
	}
	claims, _ := payload(access)
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != DefaultLifetime.Seconds() {
		t.Fatalf("lifetime %v s, want %v", exp-iat, DefaultLifetime.Seconds())
	}

	if code, v := refresh(t, iss, rt0); code != http.StatusUnauthorized || errorCode(v) != "refresh_token_reused" {
		t.Fatalf("second use: %d %v", code, v)
	}
	if code, v := refresh(t, iss, "rt-0-forged"); code != http.StatusUnauthorized || errorCode(v) != "refresh_token_invalidated" {
		t.Fatalf("unknown token: %d %v", code, v)
	}
	if code, _ := refresh(t, iss, rt1); code != http.StatusOK {
		t.Fatalf("the newer token must still work after a reuse, got %d", code)
	}

	var got []string
	for _, r := range iss.Refreshes() {
		got = append(got, string(r.Outcome))
	}
	if strings.Join(got, " ") != "ok reused unknown ok" {
		t.Fatalf("records %v", got)
	}
	if r := iss.Refreshes()[1]; r.Token != rt0 || r.TokenGen != 0 || r.Gen != -1 || r.Reason != "test" {
		t.Fatalf("reuse record %+v", r)
	}
}

// The seed must be a file egoagent's own rules and the real CLI accept.
func TestSeedIsACodexFile(t *testing.T) {
	var f map[string]any
	iss := NewIssuer()
	defer iss.Close()
	if err := json.Unmarshal(iss.Seed(time.Hour), &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tokens", "last_refresh", "OPENAI_API_KEY"} {
		if _, ok := f[k]; !ok {
			t.Errorf("seed lacks %s", k)
		}
	}
}

func TestNetnsHasOnlyLoopback(t *testing.T) {
	if !InNetns(t) {
		return
	}
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) != 1 || ifs[0].Name != "lo" || ifs[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces %+v, %v", ifs, err)
	}
	iss := NewIssuer()
	defer iss.Close()
	if code, _ := refresh(t, iss, "rt-0-none"); code != http.StatusUnauthorized {
		t.Fatalf("the Issuer is not reachable on loopback: %d", code)
	}
}

// newHome makes a workspace home whose .codex/auth.json holds content.
func newHome(t *testing.T, content []byte) string {
	t.Helper()
	home := checktest.StageDir(t)
	if err := os.Mkdir(filepath.Join(home, ".codex"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authPath(home), content, 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

func authPath(home string) string { return filepath.Join(home, ".codex", "auth.json") }

func readAuth(t *testing.T, home string) []byte {
	t.Helper()
	b, err := os.ReadFile(authPath(home))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, iss *Issuer, codex, home string) Exec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e, err := iss.Run(ctx, codex, home)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.Output)
	}
	for _, r := range e.Refreshes {
		t.Logf("refresh %s: token gen %d -> %s gen %d, %v after exec start (reason %s)",
			r.Run, r.TokenGen, r.Outcome, r.Gen, r.At.Sub(e.Started).Round(time.Millisecond), r.Reason)
	}
	t.Logf("codex exec: exit %d in %v, %d model call(s)", e.ExitCode, e.Took.Round(time.Millisecond), len(e.ModelCalls))
	return e
}

func expiry(t *testing.T, authJSON []byte) time.Time {
	t.Helper()
	var f struct {
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(authJSON, &f); err != nil {
		t.Fatal(err)
	}
	claims, err := payload(f.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := claims["exp"].(float64)
	return time.Unix(int64(exp), 0)
}

func lastRefresh(t *testing.T, authJSON []byte) time.Time {
	t.Helper()
	var f struct {
		LastRefresh time.Time `json:"last_refresh"`
	}
	if err := json.Unmarshal(authJSON, &f); err != nil {
		t.Fatal(err)
	}
	return f.LastRefresh
}

// (a) An access token that expires within 5 minutes is refreshed through the
// Issuer before the model call, and Codex rewrites auth.json with the new
// generation, a new last_refresh, mode 0600.
func TestRealCodexRefreshesThroughIssuer(t *testing.T) {
	codex := checktest.CodexPath(t)
	if !InNetns(t) {
		return
	}
	iss := NewIssuer()
	defer iss.Close()
	seed := iss.Seed(2 * time.Minute)
	home := newHome(t, seed)

	e := run(t, iss, codex, home)
	if e.ExitCode != 0 || !strings.Contains(e.Output, Reply) {
		t.Fatalf("codex exec: exit %d\n%s", e.ExitCode, e.Output)
	}
	if len(e.Refreshes) != 1 || e.Refreshes[0].Outcome != OK || e.Refreshes[0].Token != refreshToken(t, seed) ||
		e.Refreshes[0].Reason != "proactive_expiry" {
		t.Fatalf("refreshes %+v", e.Refreshes)
	}
	if len(e.ModelCalls) != 1 || !e.ModelCalls[0].Accepted || e.ModelCalls[0].Gen != 1 {
		t.Fatalf("model calls %+v: want one, made with generation 1", e.ModelCalls)
	}

	after := readAuth(t, home)
	if g, err := Gen(after); err != nil || g != 1 {
		t.Fatalf("auth.json generation %d, %v:\n%s", g, err, after)
	}
	if TokenGen(refreshToken(t, after)) != 1 {
		t.Fatalf("auth.json keeps refresh token %q", refreshToken(t, after))
	}
	if !lastRefresh(t, after).After(lastRefresh(t, seed)) {
		t.Fatalf("last_refresh %v not after the seed's %v", lastRefresh(t, after), lastRefresh(t, seed))
	}
	fi, err := os.Stat(authPath(home))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth.json mode %v, %v", fi.Mode(), err)
	}
}

// (b) Two homes hold the same generation-0 copy. The first to run spends the
// refresh token; the second presents it again and gets refresh_token_reused:
// the failure egoagent must prevent. Whether the user notices at once depends
// on the stale copy's access token: while it is still valid, the model call
// goes through with it and exec exits 0 (the break shows at the next due
// refresh); once it has expired, exec fails.
func TestRealCodexStaleCopyGetsReused(t *testing.T) {
	codex := checktest.CodexPath(t)
	if !InNetns(t) {
		return
	}
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		exitOK    bool
	}{
		{"access token still valid", 2 * time.Minute, true},
		{"access token expired", -time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := NewIssuer()
			defer iss.Close()
			seed := iss.Seed(tc.expiresIn)
			first, second := newHome(t, seed), newHome(t, seed)

			if e := run(t, iss, codex, first); e.ExitCode != 0 || e.Reused || len(e.RefreshedGens()) != 1 {
				t.Fatalf("first home: exit %d, refreshes %+v\n%s", e.ExitCode, e.Refreshes, e.Output)
			}
			e := run(t, iss, codex, second)
			if !e.Reused || len(e.RefreshedGens()) != 0 {
				t.Fatalf("second home: refreshes %+v, want only refresh_token_reused\n%s", e.Refreshes, e.Output)
			}
			if !e.ReusedSaid {
				t.Errorf("Codex's output does not mention the reused token:\n%s", e.Output)
			}
			accepted := 0
			for _, c := range e.ModelCalls {
				if c.Accepted {
					accepted++
				}
			}
			if (e.ExitCode == 0) != tc.exitOK || (accepted > 0) != tc.exitOK {
				t.Errorf("second home: exit %d with %d accepted model call(s); want success %v\n%s",
					e.ExitCode, accepted, tc.exitOK, e.Output)
			}
			t.Logf("second home: %d refresh attempt(s), %d model call(s); output ends:\n%s",
				len(e.Refreshes), len(e.ModelCalls), tail(e.Output, 4))
			if g, _ := Gen(readAuth(t, second)); g != 0 {
				t.Errorf("second home's auth.json is generation %d, want the stale 0", g)
			}
			if g, _ := Gen(readAuth(t, first)); g != 1 {
				t.Errorf("first home's auth.json is generation %d, want 1", g)
			}
		})
	}
}

// (c) With tokens living just over 5 minutes, each exec that finds its token
// due refreshes it exactly once (no loop on the token it just received), an
// exec right after finds nothing due, and once the window is reached again the
// next exec refreshes once more.
func TestRealCodexRefreshesOncePerExec(t *testing.T) {
	codex := checktest.CodexPath(t)
	if !InNetns(t) {
		return
	}
	iss := NewIssuer()
	defer iss.Close()
	home := newHome(t, iss.Seed(time.Minute))

	e := run(t, iss, codex, home)
	if e.ExitCode != 0 || len(e.Refreshes) != 1 || e.Refreshes[0].Gen != 1 {
		t.Fatalf("first exec: exit %d, refreshes %+v\n%s", e.ExitCode, e.Refreshes, e.Output)
	}
	if e := run(t, iss, codex, home); e.ExitCode != 0 || len(e.Refreshes) != 0 {
		t.Fatalf("exec right after: exit %d, refreshes %+v (the token has over 5 minutes left)", e.ExitCode, e.Refreshes)
	}

	due := expiry(t, readAuth(t, home)).Add(-RefreshWindow + time.Second)
	t.Logf("waiting %v for generation 1 to come within %v of its expiry", time.Until(due).Round(time.Millisecond), RefreshWindow)
	time.Sleep(time.Until(due))
	e = run(t, iss, codex, home)
	if e.ExitCode != 0 || len(e.Refreshes) != 1 || e.Refreshes[0].Gen != 2 {
		t.Fatalf("exec once due again: exit %d, refreshes %+v\n%s", e.ExitCode, e.Refreshes, e.Output)
	}
	if g, _ := Gen(readAuth(t, home)); g != 2 {
		t.Fatalf("auth.json generation %d, want 2", g)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
