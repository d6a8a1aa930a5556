package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/secrets/codexsim"
	"github.com/veraticus/egoengine/internal/secrets/renew"
)

func refreshToken(t *testing.T, auth []byte) string {
	t.Helper()
	var f struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(auth, &f); err != nil {
		t.Fatal(err)
	}
	return f.Tokens.RefreshToken
}

func TestRefreshRenewsOnceThroughTheEndpoint(t *testing.T) {
	iss := codexsim.NewIssuer()
	defer iss.Close()
	seed := iss.Seed(time.Minute)
	now := time.Now()

	got, err := Refresh(context.Background(), http.DefaultClient, iss.TokenURL(), seed, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if g, err := codexsim.Gen(got); err != nil || g != 1 {
		t.Fatalf("renewed generation %d, %v:\n%s", g, err, got)
	}
	if codexsim.TokenGen(refreshToken(t, got)) != 1 {
		t.Fatalf("refresh token not renewed:\n%s", got)
	}
	recs := iss.Refreshes()
	if len(recs) != 1 || recs[0].Token != refreshToken(t, seed) || recs[0].Reason != "proactive_expiry" || recs[0].Outcome != codexsim.OK {
		t.Fatalf("endpoint saw %+v", recs)
	}
	s, ok := check.Date(check.KindCodex, got)
	if !ok || !s.LastRefresh.Equal(now.UTC()) {
		t.Fatalf("last_refresh %v, want %v", s.LastRefresh, now.UTC())
	}
	if r := check.New(check.Options{}).Check(context.Background(), check.KindCodex, got); !r.OK {
		t.Fatalf("renewed file fails the codex check: %s", r.Summary)
	}

	// The same token again: the endpoint refuses it for good, and the
	// error says so without the token.
	_, err = Refresh(context.Background(), http.DefaultClient, iss.TokenURL(), seed, time.Now)
	var ce *renew.CallError
	if !errors.As(err, &ce) || ce.Fate != renew.Spent || !strings.Contains(ce.Msg, "refresh_token_reused") {
		t.Fatalf("reuse: %v", err)
	}
	if strings.Contains(err.Error(), refreshToken(t, seed)) {
		t.Fatalf("error names the token: %v", err)
	}
}

// Keys come in Codex's order; keys Codex does not know stay, after them.
func TestRefreshKeepsOtherFieldsInCodexOrder(t *testing.T) {
	iss := codexsim.NewIssuer()
	defer iss.Close()
	var f map[string]any
	if err := json.Unmarshal(iss.Seed(time.Minute), &f); err != nil {
		t.Fatal(err)
	}
	rt := f["tokens"].(map[string]any)["refresh_token"].(string)
	in := `{"zeta":{"keep":[1,2]},"tokens":{"account_id":"acct-x","refresh_token":"` + rt + `","extra":true},"OPENAI_API_KEY":null}`
	got, err := Refresh(context.Background(), http.DefaultClient, iss.TokenURL(), []byte(in), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`"([a-zA-Z_]+)":`).FindAllStringSubmatch(string(got), -1)
	var order []string
	for _, k := range keys {
		order = append(order, k[1])
	}
	want := "OPENAI_API_KEY tokens id_token access_token refresh_token account_id extra last_refresh zeta keep"
	if strings.Join(order, " ") != want {
		t.Fatalf("keys %v, want %s:\n%s", order, want, got)
	}
}

func TestRefreshSaysWhetherTheTokenMayBeSpent(t *testing.T) {
	iss := codexsim.NewIssuer()
	defer iss.Close()
	seed := iss.Seed(time.Minute)

	// Nothing listens: the request never left.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/oauth/token"
	l.Close()
	if _, err := Refresh(context.Background(), http.DefaultClient, dead, seed, time.Now); fate(err) != renew.Unsent {
		t.Fatalf("refused connection: %v", err)
	}

	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want renew.Fate
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }, renew.Unknown},
		{"ok without tokens", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"access_token":"a"}`)) }, renew.Unknown},
		{"invalid grant", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_grant\u001b[31m"}`))
		}, renew.Spent},
		{"closed mid-answer", func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, renew.Unknown},
	} {
		srv := httptest.NewServer(tc.h)
		_, err := Refresh(context.Background(), http.DefaultClient, srv.URL, seed, time.Now)
		srv.Close()
		if fate(err) != tc.want {
			t.Errorf("%s: %v, want fate %s", tc.name, err, tc.want)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\x1b") {
			t.Errorf("%s: the endpoint's text reaches the message unfiltered: %q", tc.name, err)
		}
	}
	if len(iss.Refreshes()) != 0 {
		t.Fatalf("the issuer saw %d refreshes", len(iss.Refreshes()))
	}
}

func fate(err error) renew.Fate {
	var ce *renew.CallError
	if errors.As(err, &ce) {
		return ce.Fate
	}
	return ""
}

// The file egoagent writes is the file Codex writes: the real CLI renews
// one login, Refresh another of the same shape, and the two files agree in
// everything but the token values and the time (keys, their order, layout,
// the format of last_refresh, mode aside: the engine writes 0600). Codex
// then accepts egoagent's file: `codex login status` passes, and `codex
// exec` uses it without renewing.
func TestRefreshWritesWhatCodexWrites(t *testing.T) {
	codex := checktest.CodexPath(t)
	if !codexsim.InNetns(t) {
		return
	}
	iss := codexsim.NewIssuer()
	defer iss.Close()

	home := t.TempDir()
	auth := filepath.Join(home, ".codex", "auth.json")
	if err := os.MkdirAll(filepath.Dir(auth), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth, iss.Seed(time.Minute), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if e, err := iss.Run(ctx, codex, home); err != nil || e.ExitCode != 0 || len(e.RefreshedGens()) != 1 {
		t.Fatalf("codex exec: %v, exit %d, refreshes %+v\n%s", err, e.ExitCode, e.Refreshes, e.Output)
	}
	byCodex, err := os.ReadFile(auth)
	if err != nil {
		t.Fatal(err)
	}

	ours, err := Refresh(ctx, http.DefaultClient, iss.TokenURL(), iss.Seed(time.Minute), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := skeleton(byCodex), skeleton(ours); a != b {
		t.Fatalf("layouts differ:\ncodex:   %s\negoagent: %s", a, b)
	}

	if err := os.WriteFile(auth, ours, 0o600); err != nil {
		t.Fatal(err)
	}
	st := exec.Command(codex, "login", "status")
	st.Env = codexsim.Env(home, iss.URL())
	if out, err := st.CombinedOutput(); err != nil || !strings.Contains(string(out), "Logged in using ChatGPT") {
		t.Fatalf("codex login status on egoagent's file: %v\n%s", err, out)
	}
	e, err := iss.Run(ctx, codex, home)
	if err != nil || e.ExitCode != 0 || len(e.Refreshes) != 0 || len(e.ModelCalls) != 1 || e.ModelCalls[0].Gen != 1 {
		t.Fatalf("codex exec on egoagent's file: %v, exit %d, refreshes %+v, calls %+v\n%s", err, e.ExitCode, e.Refreshes, e.ModelCalls, e.Output)
	}
}

// skeleton is a JSON document with every string value replaced by its
// kind: a JWT, a refresh token, a time in RFC 3339 with nanoseconds, or
// other text. What is left is the layout.
func skeleton(b []byte) string {
	s := regexp.MustCompile(`"ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"`).ReplaceAllString(string(b), `JWT`)
	s = regexp.MustCompile(`"rt-[0-9a-f-]+"`).ReplaceAllString(s, `RT`)
	s = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"`).ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, ".") {
			return "TIME.NANOS" + m[len(m)-2:]
		}
		return "TIME" + m[len(m)-2:]
	})
	return s
}
