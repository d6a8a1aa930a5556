package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/text/language"
)

// The OpenID provider of TestComposeOIDC: zitadel/oidc's example provider
// (github.com/zitadel/oidc/v3, an OpenID Foundation certified library; the
// example's provider and storage packages, served by the Go module proxy),
// run in the test's process over TLS on the bridge's address, which the
// stack's Coder reaches. It has a real authorization endpoint with a login
// page, token, userinfo and discovery endpoints, and one confidential client:
// Coder's, with the test's secret and Coder's callback as its only redirect.
// Chosen over ORY Hydra, which needs a login and consent application of its
// own beside it, and over mockoidc, which has no login page to submit.

// idp is one running provider.
type idp struct {
	issuer         string
	caPEM          []byte // the root of its HTTPS certificate
	clientID       string
	clientSecret   string
	tokenFailures  func() int // token requests answered with an error
	passwordOfUser map[string]string
}

// idpUsers is the provider's user directory (storage.UserStore).
type idpUsers map[string]*storage.User

func (u idpUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u idpUsers) GetUserByUsername(name string) *storage.User {
	for _, user := range u {
		if user.Username == name {
			return user
		}
	}
	return nil
}
func (u idpUsers) ExampleClientID() string { return "e2e-unused-service-client" }

// startIdP serves the provider on host with a client for redirect, and the
// users named (username ada signs in as ada@e2e.invalid), each with a
// password of the test's.
func (h *harness) startIdP(host, redirect string, names ...string) *idp {
	t := h.t
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	h.ports = append(h.ports, p)
	caPEM, certPEM, keyPEM := serverCert(t, net.ParseIP(host))
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	d := &idp{
		issuer:         "https://" + l.Addr().String(),
		caPEM:          caPEM,
		clientID:       "egoengine-coder",
		clientSecret:   randomHex(t, 24),
		passwordOfUser: map[string]string{},
	}
	users := idpUsers{}
	for i, name := range names {
		d.passwordOfUser[name] = "pw-" + randomHex(t, 8)
		users[strconv.Itoa(i+1)] = &storage.User{
			ID: strconv.Itoa(i + 1), Username: name, Password: d.passwordOfUser[name],
			FirstName: name, LastName: "E2E", Email: name + "@e2e.invalid", EmailVerified: true,
			PreferredLanguage: language.English,
		}
	}
	clients := map[string]*storage.Client{d.clientID: storage.WebClient(d.clientID, d.clientSecret, redirect)}
	logf, err := os.Create(filepath.Join(h.runDir, "logs", "idp.log"))
	if err != nil {
		t.Fatal(err)
	}
	// The example sets its logger as the process's default; the previous
	// one comes back with the cleanup.
	prev := slog.Default()
	router := exampleop.SetupServer(d.issuer, storage.NewStorageWithClients(users, clients), slog.New(slog.NewTextHandler(logf, nil)), false)
	var failures atomic.Int64
	d.tokenFailures = func() int { return int(failures.Load()) }
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/oauth/token" {
				router.ServeHTTP(w, r)
				return
			}
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			router.ServeHTTP(rec, r)
			if rec.status >= 400 {
				failures.Add(1)
			}
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		logf.Close()
		slog.SetDefault(prev)
	})
	// Its discovery document names it as configured.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(d.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var disc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil || disc.Issuer != d.issuer || !strings.HasSuffix(disc.TokenEndpoint, "/oauth/token") {
		t.Fatalf("the provider's discovery: issuer %q, token endpoint %q, %v; want issuer %s", disc.Issuer, disc.TokenEndpoint, err, d.issuer)
	}
	t.Logf("OpenID provider: %s, client %s", d.issuer, d.clientID)
	return d
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

// signIn goes through Coder's OIDC sign-in as a browser does: Coder's
// start, the provider's login page, its form submitted with the user's
// password, the redirects back to Coder's callback. It returns Coder's
// session token ("" when none was set), and the last answer's status and
// body.
func (s *stack) signIn(t *testing.T, d *idp, caddyRoot []byte, user string) (token string, status int, body string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caddyRoot)
	roots.AppendCertsFromPEM(d.caPEM)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{
		Jar:     jar,
		Timeout: time.Minute,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				switch {
				case host == stackHost:
					addr = net.JoinHostPort(s.d.gateway, port)
				case host != s.d.gateway:
					return nil, fmt.Errorf("the test reaches only %s and the provider, not %s", stackHost, addr)
				}
				return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
			},
		},
	}
	get := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s's sign-in: %v", user, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// Coder's start sends the browser to the provider, which shows its login page.
	resp, page := get(client.Get("https://" + stackHost + "/api/v2/users/oidc/callback"))
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || !strings.HasPrefix(resp.Request.URL.String(), d.issuer+"/login/") {
		t.Fatalf("%s's sign-in: Coder's start did not lead to the provider's login page: %s at %s:\n%s", user, resp.Status, resp.Request.URL, tail(page, 1500))
	}
	form := url.Values{"id": {m[1]}, "username": {user}, "password": {d.passwordOfUser[user]}}
	resp, body = get(client.PostForm(d.issuer+"/login/username", form))
	coder, _ := url.Parse("https://" + stackHost + "/")
	for _, c := range jar.Cookies(coder) {
		if c.Name == "coder_session_token" {
			token = c.Value
		}
	}
	return token, resp.StatusCode, body
}

// me is the user a session token belongs to.
func (s *stack) me(t *testing.T, token string) (name string, roles []string) {
	t.Helper()
	var u struct {
		Username  string `json:"username"`
		LoginType string `json:"login_type"`
		Roles     []struct {
			Name string `json:"name"`
		} `json:"roles"`
	}
	code, body := s.send(t, http.MethodGet, "/api/v2/users/me", token, nil)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &u) != nil {
		t.Fatalf("GET /api/v2/users/me with the session: %d %s", code, tail(body, 500))
	}
	if u.LoginType != "oidc" {
		t.Errorf("user %s signs in by %q, want oidc", u.Username, u.LoginType)
	}
	for _, r := range u.Roles {
		roles = append(roles, r.Name)
	}
	return u.Username, roles
}

// send sends a request to Coder with a session token ("": none) and v as
// its JSON body (nil: none), and returns the status and body.
func (s *stack) send(t *testing.T, method, path, token string, v any) (int, string) {
	t.Helper()
	var in io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		in = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, s.h.url+path, in)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Coder-Session-Token", token)
	}
	resp, err := s.h.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// addUser: the owner (a session token) adds a user to the default
// organization, as Users → Add user does.
func (s *stack) addUser(t *testing.T, owner string, user map[string]any) {
	t.Helper()
	var org struct {
		ID string `json:"id"`
	}
	s.h.apiJSON("/api/v2/organizations/default", &org)
	user["organization_ids"] = []string{org.ID}
	if code, body := s.send(t, http.MethodPost, "/api/v2/users", owner, user); code != http.StatusCreated {
		t.Fatalf("the owner adding %v: %d %s", user["username"], code, body)
	}
}

// coderTrusting builds an image on Coder's stand-in whose system roots hold
// caPEM: the stand-in for a provider whose certificate is publicly trusted,
// as a real one's is by the real image. Nothing of it is in .env.
func (h *harness) coderTrusting(d dockerRun, base string, caPEM []byte) string {
	t := h.t
	ctx := filepath.Join(h.runDir, "coder-image")
	writeFile(t, filepath.Join(ctx, "e2e-idp.crt"), string(caPEM))
	writeFile(t, filepath.Join(ctx, "Dockerfile"), "FROM "+base+"\nUSER root\nCOPY e2e-idp.crt /usr/local/share/ca-certificates/e2e-idp.crt\nRUN /usr/sbin/update-ca-certificates\nUSER 1000:1000\n")
	image := "egoengine-e2e/coder-trusting-idp:" + h.runID[:8]
	if _, err := h.docker(d, "", 5*time.Minute, "build", "--force-rm", "--network", "none", "--tag", image, ctx); err != nil {
		t.Fatal(err)
	}
	return image
}

// oidcEnv is the .env block docs/operations.md ("Register Coder with your
// identity provider") tells the owner to fill in, filled in for the
// provider, with secret as the client secret.
func (s *stack) oidcEnv(t *testing.T, d *idp, secret string) string {
	t.Helper()
	ops := s.file(t, "docs", "operations.md")
	values := map[string]string{
		"CODER_OIDC_ISSUER_URL":    d.issuer,
		"CODER_OIDC_CLIENT_ID":     d.clientID,
		"CODER_OIDC_CLIENT_SECRET": secret,
		"CODER_OIDC_EMAIL_DOMAIN":  "e2e.invalid",
		"CODER_OIDC_SIGN_IN_TEXT":  "Sign in with the e2e provider",
	}
	var out strings.Builder
	for _, line := range strings.Split(block(t, string(ops), "### Register Coder with your identity provider"), "\n") {
		key, _, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v, known := values[key]
		if !known {
			t.Fatalf("docs/operations.md's OIDC block sets %s, which the test does not know how to fill in", key)
		}
		delete(values, key)
		out.WriteString(key + "=" + v + "\n")
	}
	if len(values) > 0 {
		t.Fatalf("docs/operations.md's OIDC block lacks %v", values)
	}
	return out.String()
}

// passwordsOff is docs/operations.md's "Switch password sign-in off" block.
func (s *stack) passwordsOff(t *testing.T) string {
	t.Helper()
	ops := s.file(t, "docs", "operations.md")
	b := strings.TrimSpace(block(t, string(ops), "### Switch password sign-in off"))
	if b != "CODER_DISABLE_PASSWORD_AUTH=true" {
		t.Fatalf("docs/operations.md's block to switch passwords off is %q", b)
	}
	return b + "\n"
}

// TestComposeOIDC: the compose stack configured for a real OpenID provider
// through .env alone, as docs/operations.md tells the owner; sign-in through
// the provider's login page, as a browser does it.
func TestComposeOIDC(t *testing.T) {
	d := dockerFromEnv(t)
	images := stackFromEnv(t)
	h := newHarnessIn(t, "o")
	t.Cleanup(h.checkNothingLeft)
	s := newStack(h, d)
	p := h.startIdP(d.gateway, "https://"+stackHost+"/api/v2/users/oidc/callback", "ada", "bob", "eve")
	s.prepare(images, h.coderTrusting(d, images.coder, p.caPEM))
	h.tokenSecrets = []string{p.clientSecret}
	base := s.envText
	s.envText = base + s.oidcEnv(t, p, p.clientSecret)
	s.writeEnv()

	var caddyRoot []byte
	step(t, "compose.sh up with the provider in .env: Coder healthy, OIDC offered", func(t *testing.T) {
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		s.checkHealthy(t, "coder", "database", "caddy")
		caddyRoot = s.caddyRoot(t, filepath.Join(h.runDir, "caddy-root.pem"))
		var methods struct {
			Password struct{ Enabled bool } `json:"password"`
			OIDC     struct {
				Enabled bool   `json:"enabled"`
				Text    string `json:"signInText"`
			} `json:"oidc"`
		}
		h.apiJSON("/api/v2/users/authmethods", &methods)
		if !methods.OIDC.Enabled || methods.OIDC.Text != "Sign in with the e2e provider" || !methods.Password.Enabled {
			t.Errorf("sign-in methods %+v: want OIDC with the .env's text, and passwords", methods)
		}
	})
	if caddyRoot == nil {
		t.FailNow()
	}

	var owner string
	step(t, "the first OIDC user signs in through the provider's login page and becomes the owner", func(t *testing.T) {
		tok, status, body := s.signIn(t, p, caddyRoot, "ada")
		if tok == "" {
			t.Fatalf("no session after ada's sign-in: %d\n%s", status, tail(body, 1500))
		}
		name, roles := s.me(t, tok)
		if name != "ada" || !slices.Contains(roles, "owner") {
			t.Errorf("the first OIDC user is %q with roles %v, want ada, owner", name, roles)
		}
		owner = tok
		h.session = tok
	})
	if owner == "" {
		t.FailNow()
	}

	step(t, "sign-ups closed: a second identity is refused with Coder's message, and let in once the owner adds it", func(t *testing.T) {
		tok, status, body := s.signIn(t, p, caddyRoot, "bob")
		if tok != "" || status != http.StatusForbidden || !strings.Contains(body, "Signups are disabled") {
			t.Errorf("bob's sign-in with sign-ups closed: session %v, %d, want 403 with Coder's \"Signups are disabled\":\n%s", tok != "", status, tail(body, 1500))
		}
		s.addUser(t, owner, map[string]any{"email": "bob@e2e.invalid", "username": "bob", "login_type": "oidc"})
		tok, status, body = s.signIn(t, p, caddyRoot, "bob")
		if tok == "" {
			t.Fatalf("bob added by the owner gets no session: %d\n%s", status, tail(body, 1500))
		}
		if name, roles := s.me(t, tok); name != "bob" || slices.Contains(roles, "owner") {
			t.Errorf("the added user is %q with roles %v, want bob, no owner", name, roles)
		}
	})

	step(t, "CODER_DISABLE_PASSWORD_AUTH=true: a password user's right password is refused; OIDC goes on", func(t *testing.T) {
		password := "E2e-" + randomHex(t, 12) + "!"
		s.addUser(t, owner, map[string]any{"email": "pat@e2e.invalid", "username": "pat", "password": password, "login_type": "password"})
		login := map[string]string{"email": "pat@e2e.invalid", "password": password}
		// The credentials are right: while passwords are on, they sign in.
		if code, body := s.send(t, http.MethodPost, "/api/v2/users/login", "", login); code != http.StatusCreated {
			t.Fatalf("pat's password sign-in with passwords on: %d %s", code, body)
		}
		s.envText = base + s.oidcEnv(t, p, p.clientSecret) + s.passwordsOff(t)
		s.writeEnv()
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		s.checkHealthy(t, "coder", "database", "caddy")
		code, body := s.send(t, http.MethodPost, "/api/v2/users/login", "", login)
		if code != http.StatusForbidden || !strings.Contains(strings.ToLower(body), "password authentication is disabled") {
			t.Errorf("pat's password sign-in with CODER_DISABLE_PASSWORD_AUTH=true: %d %s; want 403 saying password authentication is disabled", code, body)
		}
		if tok, status, body := s.signIn(t, p, caddyRoot, "ada"); tok == "" {
			t.Errorf("ada's OIDC sign-in with passwords off: %d\n%s", status, tail(body, 1500))
		}
	})

	step(t, "the client secret is in no log, API view or container listing", func(t *testing.T) {
		s.saveLogs()
		logs, _, _ := s.sh(time.Minute, "scripts/compose.sh logs --no-color")
		views := map[string]string{"docker compose logs": logs}
		for _, c := range []string{"scripts/compose.sh ps --all", "scripts/compose.sh ps --all --format json", "docker ps --all --no-trunc"} {
			out, _, _ := s.sh(time.Minute, c)
			views[c] = out
		}
		for _, path := range []string{"/api/v2/deployment/config", "/api/v2/users/authmethods", "/api/v2/users/me", "/api/v2/users", "/api/v2/buildinfo", "/api/v2/deployment/ssh"} {
			b, err := h.api(path)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
			}
			views["GET "+path] = string(b)
		}
		for name, text := range views {
			if where, found := leakIn(name, []byte(text), p.clientSecret); found {
				t.Errorf("the client secret leaked: %s", where)
			}
		}
		// The search can fail: the secret is in the container's
		// configuration, where Compose puts what .env sets.
		inspect, _, _ := s.sh(time.Minute, "docker inspect egoengine-coder-1")
		if _, found := leakIn("docker inspect", []byte(inspect), p.clientSecret); !found {
			t.Errorf("the search does not find the client secret in the coder container's configuration, where it must be")
		}
	})

	step(t, "a wrong client secret in .env: the provider refuses Coder's code exchange and nobody gets a session", func(t *testing.T) {
		s.envText = base + s.oidcEnv(t, p, "wrong-"+randomHex(t, 8))
		s.writeEnv()
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		s.checkHealthy(t, "coder", "database", "caddy")
		before := p.tokenFailures()
		tok, status, body := s.signIn(t, p, caddyRoot, "ada")
		if tok != "" || status < 400 {
			t.Errorf("ada's sign-in with a wrong client secret: session %v, %d; want none and an error:\n%s", tok != "", status, tail(body, 1500))
		}
		if p.tokenFailures() == before {
			t.Errorf("the provider refused no token request: Coder did not send the wrong secret")
		}
		t.Logf("Coder's answer with the wrong secret: %d %s", status, tail(strings.Join(strings.Fields(body), " "), 300))
	})

	step(t, "down --volumes: nothing of the run is left in the engine", func(t *testing.T) {
		s.envText = base
		s.writeEnv()
		s.must(t, 3*time.Minute, "scripts/compose.sh down --volumes")
		h.mustDocker(d, "rmi", "egoengine-e2e/coder-trusting-idp:"+h.runID[:8])
		h.checkEngineEmpty(t, d)
	})
}
