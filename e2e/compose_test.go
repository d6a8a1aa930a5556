package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// The compose stack end to end (docs/e2e.md, "The compose stack"):
// compose/compose.yaml run by the real Docker Compose (built from the Go
// module proxy) through scripts/compose.sh on the run's Docker Engine, with
// local stand-ins for the images it names, given by an override file only
// this test writes. Coder is reached through Caddy over HTTPS, with a
// certificate from Caddy's local CA; the templates are pushed with
// scripts/push-templates.sh; a workspace is built by that Coder through the
// mounted Docker socket.

// stackHost is the access URL's host name. The workspace template maps it
// to the Docker host's gateway (host-gateway), where Caddy's ports are
// published, so the workspace's agent reaches Coder through Caddy with no
// DNS; the test and the coder CLI are given the same mapping.
const stackHost = "host.docker.internal"

// stackImages are the stand-in images scripts/e2e.sh built
// (scripts/standin-image.sh stack).
type stackImages struct{ coder, postgres, caddy string }

func stackFromEnv(t *testing.T) stackImages {
	return stackImages{
		coder:    mustEnv(t, "E2E_STACK_CODER_IMAGE", "the Coder stand-in image (scripts/standin-image.sh stack)"),
		postgres: mustEnv(t, "E2E_STACK_POSTGRES_IMAGE", "the PostgreSQL stand-in image (scripts/standin-image.sh stack)"),
		caddy:    mustEnv(t, "E2E_STACK_CADDY_IMAGE", "the Caddy stand-in image (scripts/standin-image.sh stack)"),
	}
}

// stack is one run of the compose stack, in a tree of its own.
type stack struct {
	h    *harness
	d    dockerRun
	tree string // a copy of what a user runs the stack from
	env  string // tree/compose/.env

	envText      string // what .env holds (prepare, then the test's changes)
	coderVersion string // CODER_VERSION: the stand-in's tag
	bridge       string // the stack network's bridge
}

// newStack copies what a user runs the stack from (compose/, scripts/,
// coder-templates/, docs/operations.md and the Makefile) into the run's
// folder, so that its .env and override file never touch the checkout's,
// and a developer's compose/.env is never read.
func newStack(h *harness, d dockerRun) *stack {
	t := h.t
	tree := filepath.Join(h.runDir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"compose", "scripts", "coder-templates", "Makefile", filepath.Join("docs", "operations.md")} {
		// cp -a: the templates' modules links must stay links.
		if _, err := h.run(time.Minute, h.childEnv(), "cp", "-a", filepath.Join(h.repo, p), filepath.Join(tree, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{".env", "compose.override.yaml"} {
		if err := os.RemoveAll(filepath.Join(tree, "compose", p)); err != nil {
			t.Fatal(err)
		}
	}
	// registry.coder.com cannot be reached: the IDE modules both templates
	// share become their local stand-ins, the one difference from what a
	// user pushes.
	h.swapIDEModules(filepath.Join(tree, "coder-templates", "modules", "egoengine-ides"))
	return &stack{h: h, d: d, tree: tree, env: filepath.Join(tree, "compose", ".env")}
}

// client reaches the access URL's host, trusting roots alone. The host name
// goes to the bridge's address, where Caddy's ports are published: no DNS,
// no /etc/hosts of this machine. Redirects are checked, not followed.
func (s *stack) client(roots *x509.CertPool) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != stackHost {
			return nil, fmt.Errorf("the test reaches only %s, not %s", stackHost, addr)
		}
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, net.JoinHostPort(s.d.gateway, port))
	}
	return &http.Client{
		Transport:     &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// composeEnv is the environment of scripts/compose.sh and of the docs'
// commands: the run's engine, nothing that would override compose/.env.
func (s *stack) composeEnv() []string {
	return s.h.childEnv("DOCKER_HOST="+s.d.host, "DOCKER_CONFIG="+s.d.config)
}

// sh runs a bash script in the stack's tree and returns stdout, stderr and
// the exit status (-1 when it could not run or timed out).
func (s *stack) sh(timeout time.Duration, script string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = s.composeEnv()
	cmd.Dir = s.tree
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if ctx.Err() != nil || (err != nil && code < 0) {
		code = -1
		errb.WriteString(fmt.Sprintf("\n(%v)", err))
	}
	return out.String(), errb.String(), code
}

// must runs a script that has to succeed.
func (s *stack) must(t *testing.T, timeout time.Duration, script string) string {
	t.Helper()
	out, errs, code := s.sh(timeout, script)
	if code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", script, code, tail(s.h.masked(out), 3000), tail(s.h.masked(errs), 3000))
	}
	return out
}

// service is one line of `docker compose ps --format json`.
type service struct {
	Service string
	State   string
	Health  string
	Image   string
}

func (s *stack) services(t *testing.T) map[string]service {
	t.Helper()
	out := s.must(t, time.Minute, "scripts/compose.sh ps --all --format json")
	got := map[string]service{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var sv service
		if err := json.Unmarshal([]byte(line), &sv); err != nil {
			t.Fatalf("compose ps: %v: %s", err, line)
		}
		got[sv.Service] = sv
	}
	return got
}

// userNames: the users Coder has, by name.
func (h *harness) userNames() []string {
	var users struct {
		Users []struct {
			Username string `json:"username"`
		} `json:"users"`
	}
	h.apiJSON("/api/v2/users", &users)
	var names []string
	for _, u := range users.Users {
		names = append(names, u.Username)
	}
	return names
}

// checkHealthy: every service of the stack runs and its healthcheck passes.
func (s *stack) checkHealthy(t *testing.T, want ...string) {
	t.Helper()
	got := s.services(t)
	for _, name := range want {
		if sv, ok := got[name]; !ok || sv.State != "running" || sv.Health != "healthy" {
			t.Errorf("service %s: %+v, want running and healthy", name, sv)
		}
	}
}

// saveLogs writes Coder's log (docker compose logs coder) to the harness's
// server log, which the token search and failure messages read.
func (s *stack) saveLogs() {
	out, errs, _ := s.sh(time.Minute, "scripts/compose.sh logs --no-color --no-log-prefix coder")
	_ = os.WriteFile(s.h.serverLog, []byte(out+errs), 0o600)
}

// block is the first ```sh block under heading in markdown: the commands
// docs/operations.md gives, run as written.
func block(t *testing.T, markdown, heading string) string {
	t.Helper()
	_, after, ok := strings.Cut(markdown, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/operations.md has no heading %q", heading)
	}
	_, code, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatalf("no ```sh block under %q in docs/operations.md", heading)
	}
	code, _, ok = strings.Cut(code, "```")
	if !ok || strings.Contains(after[:strings.Index(after, "```sh")], "\n## ") {
		t.Fatalf("the ```sh block under %q is not in its section", heading)
	}
	return code
}

// asTyped runs commands from the docs as an interactive shell would, where
// `... | head` is not a failure: without pipefail (a failed command still
// stops the script).
func asTyped(commands string) string { return "set +o pipefail\n" + commands }

// prepare makes the stack ready to start: Coder's stand-in image under the
// name compose.yaml gives it (coderImage, the stand-in or an image built on
// it), the override file with the other stand-ins and the stack's network,
// and the .env a user would write (s.envText, written by the caller), minus
// whatever a test adds. Whatever happens, the stack and the workspaces it
// made leave the engine at the end (the next test checks the engine is
// empty).
func (s *stack) prepare(images stackImages, coderImage string) {
	h, d, t := s.h, s.d, s.h.t
	h.serverLog = filepath.Join(h.runDir, "logs", "coder-compose.log")
	// The Coder image under the name compose.yaml gives it, at the version
	// .env sets: CODER_VERSION is what picks it.
	_, s.coderVersion, _ = strings.Cut(images.coder, ":")
	h.mustDocker(d, "tag", coderImage, "ghcr.io/coder/coder:"+s.coderVersion)
	s.bridge = d.bridge + "c"
	writeFile(t, filepath.Join(s.tree, "compose", "compose.override.yaml"), fmt.Sprintf(`# Test only (e2e/compose_test.go): local stand-ins for the images the stack
# names, which cannot be pulled here, and the stack's network on a bridge
# whose name the harness's firewall rules cover (%s+).
services:
  coder:
    pull_policy: never
    environment:
      # Nothing leaves the machine: no STUN servers in the DERP map that
      # agents and the CLI get, no update check.
      CODER_DERP_SERVER_STUN_ADDRESSES: disable
      CODER_BLOCK_DIRECT: "true"
      CODER_UPDATE_CHECK: "false"
  database:
    image: %s
    pull_policy: never
  caddy:
    image: %s
    pull_policy: never
networks:
  default:
    driver_opts:
      com.docker.network.bridge.name: %s
      # Published ports on a user network otherwise bind every address.
      com.docker.network.bridge.host_binding_ipv4: %s
`, d.bridge, images.postgres, images.caddy, s.bridge, d.gateway))

	socket := strings.TrimPrefix(d.host, "unix://")
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	gid := fi.Sys().(*syscall.Stat_t).Gid
	coderPublish := fmt.Sprintf("%s:%d", d.gateway, freePortOn(t, d.gateway))
	s.envText = strings.Join([]string{
		"# Test only (e2e/compose_test.go).",
		"CODER_ACCESS_URL=https://" + stackHost,
		"CODER_VERSION=" + s.coderVersion,
		"CODER_PUBLISH=" + coderPublish,
		"POSTGRES_PASSWORD=" + randomHex(t, 16),
		fmt.Sprintf("DOCKER_GROUP_ID=%d", gid),
		"DOCKER_SOCKET=" + socket,
		"COMPOSE_PROFILES=tls",
		"CADDY_TLS=internal",
		"CADDY_HTTP_PUBLISH=" + d.gateway + ":80",
		"CADDY_HTTPS_PUBLISH=" + d.gateway + ":443",
	}, "\n") + "\n"

	t.Cleanup(func() {
		_ = os.WriteFile(s.env, []byte(s.envText), 0o600)
		if t.Failed() {
			s.saveLogs()
			t.Logf("coder's log (tail):\n%s", h.masked(readTail(h.serverLog)))
		}
		for _, c := range strings.Fields(h.mustDocker(d, "ps", "-aq", "--filter", "label=coder.workspace_id")) {
			_, _ = h.docker(d, "", time.Minute, "rm", "-f", c)
		}
		if _, errs, code := s.sh(3*time.Minute, "scripts/compose.sh down --volumes --timeout 20"); code != 0 {
			t.Errorf("compose down in the cleanup: exit %d: %s", code, tail(errs, 1000))
		}
		for _, v := range strings.Fields(h.mustDocker(d, "volume", "ls", "-q")) {
			if strings.HasPrefix(v, "coder-") {
				_, _ = h.docker(d, "", time.Minute, "volume", "rm", "-f", v)
			}
		}
	})
}

// checkBlanksKeepDefaults: compose.yaml passes each Coder setting from .env
// with a default of its own (${NAME:-default}), because Coder takes an empty
// variable as an empty value, not as unset. For every such setting .env
// leaves out, the running Coder (its deployment config, as an owner reads
// it) has that value, and where compose.yaml's default is empty, Coder's own
// default is empty too: a blank never replaces one of Coder's defaults (an
// empty CODER_OIDC_SCOPES once made every OIDC sign-in fail).
func (s *stack) checkBlanksKeepDefaults(t *testing.T) {
	t.Helper()
	yaml := s.file(t, "compose", "compose.yaml")
	var cfg struct {
		Options []struct {
			Env     string          `json:"env"`
			Default string          `json:"default"`
			Value   json.RawMessage `json:"value"`
		} `json:"options"`
	}
	s.h.apiJSON("/api/v2/deployment/config", &cfg)
	text := func(raw json.RawMessage) string {
		var str string
		var list []string
		switch {
		case len(raw) == 0 || string(raw) == "null":
			return ""
		case json.Unmarshal(raw, &str) == nil:
			return str
		case json.Unmarshal(raw, &list) == nil:
			return strings.Join(list, ",")
		}
		return string(raw)
	}
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^\s+(CODER_[A-Z0-9_]+):\s*\$\{([A-Z0-9_]+):-([^}]*)\}\s*$`).FindAllStringSubmatch(string(yaml), -1) {
		name, from, def := m[1], m[2], m[3]
		if strings.Contains("\n"+s.envText, "\n"+from+"=") {
			continue // set by the test's .env
		}
		found := false
		for _, o := range cfg.Options {
			if o.Env != name {
				continue
			}
			found, n = true, n+1
			switch got := text(o.Value); {
			case def == "" && o.Default != "":
				t.Errorf("compose.yaml gives %s an empty default, which replaces Coder's default %q (running value %q): write ${%s:-%s}", name, o.Default, got, from, o.Default)
			case got != def:
				t.Errorf("%s: Coder runs with %q, compose.yaml's default is %q", name, got, def)
			}
		}
		if !found {
			t.Errorf("compose.yaml sets %s, which Coder's deployment config does not know", name)
		}
	}
	if n == 0 {
		t.Error("found no Coder setting with a default in compose.yaml: the check checks nothing")
	}
}

// file reads a file of the stack's tree (the user's copy of the checkout).
func (s *stack) file(t *testing.T, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{s.tree}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeEnv writes s.envText as compose/.env.
func (s *stack) writeEnv() {
	if err := os.WriteFile(s.env, []byte(s.envText), 0o600); err != nil {
		s.h.t.Fatal(err)
	}
}

// caddyRoot waits for Caddy's local CA and returns its root (PEM), which it
// also writes to caFile; from then on the test's client (h.client, h.url)
// reaches Coder through Caddy trusting that root alone, and the coder CLI
// runs in a mount namespace whose /etc/hosts maps the access URL's host to
// the bridge (h.cliWrap), trusting the same root (h.cliEnv).
func (s *stack) caddyRoot(t *testing.T, caFile string) []byte {
	h := s.h
	var caPEM []byte
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, code := s.sh(time.Minute, "scripts/compose.sh exec -T caddy cat /data/caddy/pki/authorities/local/root.crt")
		if code == 0 && strings.Contains(out, "BEGIN CERTIFICATE") {
			caPEM = []byte(out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy made no local CA within a minute (exit %d)", code)
		}
		time.Sleep(time.Second)
	}
	writeFile(t, caFile, string(caPEM))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("Caddy's root.crt holds no certificate")
	}
	h.client = s.client(pool)
	h.url = "https://" + stackHost
	hosts := filepath.Join(h.runDir, "hosts")
	writeFile(t, hosts, "127.0.0.1 localhost\n::1 localhost\n"+s.d.gateway+" "+stackHost+"\n")
	h.cliWrap = []string{"unshare", "--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		h.cliWrap = append(h.cliWrap, "--map-root-user")
	}
	h.cliWrap = append(h.cliWrap, "--", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts)
	h.cliEnv = []string{"SSL_CERT_FILE=" + caFile}
	return caPEM
}

func TestComposeStack(t *testing.T) {
	d := dockerFromEnv(t)
	images := stackFromEnv(t)
	h := newHarnessIn(t, "s")
	t.Cleanup(h.checkNothingLeft)
	h.startService()
	h.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{codexItem(secretV1)}})
	opAddr := h.forward(d.gateway, h.svc.Addr())
	s := newStack(h, d)
	s.prepare(images, images.coder)
	coderVersion, stackBridge := s.coderVersion, s.bridge

	step(t, "missing values in .env stop compose.sh up, and the real Compose names them too", func(t *testing.T) {
		if err := os.WriteFile(s.env, []byte("CODER_ACCESS_URL=https://"+stackHost+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errs, code := s.sh(time.Minute, "scripts/compose.sh up")
		if code != 2 {
			t.Errorf("compose.sh up with an incomplete .env: exit %d, want 2; stderr:\n%s", code, errs)
		}
		for _, want := range []string{"POSTGRES_PASSWORD is empty or missing in " + s.env, "DOCKER_GROUP_ID is empty or missing in " + s.env} {
			if !strings.Contains(errs, want) {
				t.Errorf("compose.sh's message lacks %q:\n%s", want, errs)
			}
		}
		// The real CLI, without compose.sh's checks: compose.yaml's own
		// required-variable messages.
		_, errs, code = s.sh(time.Minute, "docker compose --project-directory compose --env-file compose/.env --file compose/compose.yaml config")
		if code == 0 || !(strings.Contains(errs, "set POSTGRES_PASSWORD in compose/.env") || strings.Contains(errs, "set DOCKER_GROUP_ID in compose/.env")) {
			t.Errorf("docker compose config with no POSTGRES_PASSWORD or DOCKER_GROUP_ID: exit %d, want a failure naming one; stderr:\n%s", code, errs)
		}
		if left := strings.TrimSpace(h.mustDocker(d, "ps", "-aq")); left != "" {
			t.Errorf("a refused up left containers: %s", left)
		}
	})

	s.writeEnv()

	step(t, "compose.sh up: every service healthy, on the run's own bridge", func(t *testing.T) {
		t0 := time.Now()
		out := s.must(t, 8*time.Minute, "scripts/compose.sh up")
		t.Logf("compose.sh up took %s: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
		s.checkHealthy(t, "coder", "database", "caddy")
		// The database is the major release compose.yaml ships, so that the
		// backup and restore below are proven on it.
		yaml := s.file(t, "compose", "compose.yaml")
		pinned := regexp.MustCompile(`(?m)^\s*image:\s*postgres:(\d+)\.`).FindSubmatch(yaml)
		version := strings.TrimSpace(s.must(t, time.Minute, "scripts/compose.sh exec -T database psql --username coder --dbname coder -tAc 'show server_version'"))
		if pinned == nil {
			t.Errorf("compose.yaml pins no postgres:MAJOR.MINOR image")
		} else if !strings.HasPrefix(version, string(pinned[1])+".") {
			t.Errorf("the stack's database is PostgreSQL %q; compose.yaml pins major release %s", version, pinned[1])
		} else {
			t.Logf("the stack's database: PostgreSQL %s (compose.yaml ships %s)", version, pinned[1])
		}
		if img := s.services(t)["coder"].Image; img != "ghcr.io/coder/coder:"+coderVersion {
			t.Errorf("coder runs %q, want ghcr.io/coder/coder:%s (CODER_VERSION in .env)", img, coderVersion)
		}
		// The stack's network is a bridge the harness's firewall covers.
		br := strings.TrimSpace(h.mustDocker(d, "network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "egoengine_default"))
		if br != stackBridge {
			t.Errorf("the stack's network is on bridge %q, want %s", br, stackBridge)
		}
		if rules, err := h.runAsRoot(time.Minute, "iptables", "-w", "-S", "FORWARD"); err != nil {
			t.Error(err)
		} else if !strings.Contains(rules, "-i "+d.bridge+"+ ! -o "+d.bridge+"+ -j DROP") || !strings.Contains(rules, "! -i "+d.bridge+"+ -o "+d.bridge+"+ -j DROP") {
			t.Errorf("no FORWARD rule drops what would leave the run's bridges (%s+):\n%s", d.bridge, rules)
		}
	})

	var caPEM []byte
	caFile := filepath.Join(h.runDir, "caddy-root.pem")
	step(t, "Coder answers through Caddy over HTTPS, verified against Caddy's local CA", func(t *testing.T) {
		caPEM = s.caddyRoot(t, caFile)
		resp, err := h.client.Get(h.url + "/healthz")
		if err != nil {
			t.Fatalf("GET %s/healthz through Caddy: %v", h.url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
			t.Fatalf("GET %s/healthz: %s, TLS %v", h.url, resp.Status, resp.TLS != nil)
		}
		leaf := resp.TLS.PeerCertificates[0]
		if !slices.Contains(leaf.DNSNames, stackHost) || !strings.Contains(leaf.Issuer.CommonName, "Caddy Local Authority") {
			t.Errorf("the certificate names %v, issued by %q; want %s from Caddy's local CA", leaf.DNSNames, leaf.Issuer.CommonName, stackHost)
		}
		// The check can fail: without Caddy's CA the same request is refused.
		if _, err := s.client(x509.NewCertPool()).Get(h.url + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a client that does not trust Caddy's CA got through: %v", err)
		}
		// Plain HTTP is sent to HTTPS.
		resp, err = h.client.Get("http://" + stackHost + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://"+stackHost+"/") {
			t.Errorf("http://%s/healthz: %s to %q, want a redirect to https", stackHost, resp.Status, loc)
		}
	})

	step(t, "the first user is created through Caddy and stores the token as a user secret", func(t *testing.T) {
		h.login()
		if names := h.userNames(); !slices.Equal(names, []string{adminUser}) {
			t.Errorf("users: %v, want only %s", names, adminUser)
		}
		s.checkBlanksKeepDefaults(t)
		// The recommended path (docs/operations.md): .env has no token.
		ops := s.file(t, "docs", "operations.md")
		if !strings.Contains(string(ops), userSecretCreate) {
			t.Errorf("docs/operations.md does not give the command the test runs: %s", userSecretCreate)
		}
		h.storeToken(h.token)
		var secrets []struct {
			Name    string `json:"name"`
			EnvName string `json:"env_name"`
			Enabled bool   `json:"enabled"`
		}
		h.apiJSON("/api/v2/users/"+adminUser+"/secrets", &secrets)
		if len(secrets) != 1 || secrets[0].Name != userSecretName || secrets[0].EnvName != "OP_SERVICE_ACCOUNT_TOKEN" || !secrets[0].Enabled {
			t.Errorf("the owner's secrets: %+v, want %s enabled with env OP_SERVICE_ACCOUNT_TOKEN", secrets, userSecretName)
		}
	})

	tag := "e2e-stack-" + h.runID[:8]
	step(t, "both templates are pushed with scripts/push-templates.sh", func(t *testing.T) {
		t0 := time.Now()
		h.runImage(d, opAddr, tag, caPEM)
		t.Logf("workspace image %s:%s (trusting Caddy's CA) built in %s", imageRepo, tag, time.Since(t0).Round(time.Millisecond))
		bin := filepath.Join(h.runDir, "bin", "coder")
		if err := os.Symlink(h.coderBin, bin); err != nil {
			t.Fatal(err)
		}
		env := h.childEnv(append([]string{"CODER_CONFIG_DIR=" + h.cliDir, "NO_COLOR=1",
			"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")}, h.cliEnv...)...)
		argv := append(append([]string{}, h.cliWrap...), filepath.Join(s.tree, "scripts", "push-templates.sh"), "--image-tag", tag)
		t0 = time.Now()
		if _, err := h.run(10*time.Minute, env, argv[0], argv[1:]...); err != nil {
			s.saveLogs()
			t.Fatalf("%v\ncoder's log:\n%s", err, readTail(h.serverLog))
		}
		t.Logf("both templates pushed in %s", time.Since(t0).Round(time.Millisecond))
		for _, name := range []string{"egoengine-shell", "egoengine-envbuilder"} {
			var tpl struct {
				ActiveVersionID string `json:"active_version_id"`
			}
			h.apiJSON("/api/v2/organizations/default/templates/"+name, &tpl)
			if tpl.ActiveVersionID == "" {
				t.Errorf("template %s has no active version", name)
			}
		}
	})

	const ws = "stack"
	var w workspace
	var ag agent
	var c string
	secretPath := "/home/joshsymonds/.codex/auth.json"
	step(t, "a workspace built by the compose Coder through the mounted socket: agent connected, the user secret reaches egoagent only", func(t *testing.T) {
		t0 := time.Now()
		if _, err := h.coder(5*time.Minute, "create", ws, "--template", "egoengine-shell", "--yes"); err != nil {
			s.saveLogs()
			t.Fatalf("%v\ncoder's log:\n%s", err, readTail(h.serverLog))
		}
		w, ag = h.waitReady(ws, 4*time.Minute)
		t.Logf("workspace %s: create to agent ready in %s", w.ID, time.Since(t0).Round(time.Millisecond))
		c = h.containerOf(d, w.ID)
		if c == "" {
			t.Fatalf("no container carries label coder.workspace_id=%s", w.ID)
		}
		if img := strings.TrimSpace(h.mustDocker(d, "inspect", "-f", "{{.Config.Image}}", c)); img != imageRepo+":"+tag {
			t.Errorf("the workspace runs %q, want %s:%s", img, imageRepo, tag)
		}
		if timing := h.scriptTiming(w.LatestBuild.ID, "egoagent"); timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script: status %q exit %d; agent logs:\n%s", timing.Status, timing.ExitCode, h.agentLogText(ag.ID))
		}
		if ds := h.egoagentDaemons(d, c); len(ds) != 1 {
			t.Errorf("want one egoagent daemon in the container, found %d: %q", len(ds), ds)
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV1)
		h.checkSignedIn(t)
		s.saveLogs()
		h.checkDockerToken(t, d, ws, c)
	})

	step(t, "rotation: the owner updates the user secret and restarts; the old token revoked changes nothing", func(t *testing.T) {
		old, rotated := h.token, h.svc.NewToken()
		h.storeToken(rotated)
		if _, err := h.coder(5*time.Minute, "restart", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 4*time.Minute)
		c = h.containerOf(d, w.ID)
		signedOld := h.svc.SignIns(old)
		if n := h.svc.SignIns(rotated); n == 0 {
			t.Errorf("no sign-in with the new token after the restart")
		}
		h.svc.Revoke(old)
		signedNew := h.svc.SignIns(rotated)
		h.svc.PutItem("egoengine", codexItem(secretV2))
		out, err := h.coder(2*time.Minute, "ssh", ws, "--", "egoagent", "refresh")
		if err != nil || !strings.Contains(out, "codex: fresh (written)") {
			t.Fatalf("egoagent refresh with the old token revoked: %v: %s", err, h.masked(out))
		}
		if n := h.svc.SignIns(old); n != signedOld {
			t.Errorf("the old token signed in %d times after the restart", n-signedOld)
		}
		if n := h.svc.SignIns(rotated); n <= signedNew {
			t.Errorf("the refresh did not sign in with the new token")
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
		h.checkDockerToken(t, d, ws, c)
	})

	// kept: what the database holds is all there (after down and up, after
	// a restore).
	kept := func(t *testing.T) {
		t.Helper()
		if names := h.userNames(); !slices.Contains(names, adminUser) {
			t.Errorf("users %v lack %s", names, adminUser)
		}
		for _, name := range []string{"egoengine-shell", "egoengine-envbuilder"} {
			if _, err := h.api("/api/v2/organizations/default/templates/" + name); err != nil {
				t.Errorf("template %s: %v", name, err)
			}
		}
		if got := h.workspace(ws); got.ID != w.ID {
			t.Errorf("workspace %s is %q, want %s", ws, got.ID, w.ID)
		}
	}

	step(t, "compose down then up: the database keeps users, templates and the workspace", func(t *testing.T) {
		s.must(t, 3*time.Minute, "scripts/compose.sh down")
		if got := s.services(t); len(got) != 0 {
			t.Errorf("after down the stack still has %v", got)
		}
		if running := strings.TrimSpace(h.mustDocker(d, "inspect", "-f", "{{.State.Running}}", c)); running != "true" {
			t.Errorf("the workspace's container stopped with the stack (running %s)", running)
		}
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		s.checkHealthy(t, "coder", "database", "caddy")
		kept(t)
		// The workspace's agent finds the server again.
		w, ag = h.waitReady(ws, 3*time.Minute)
	})

	step(t, "backup and restore as docs/operations.md writes them, into a fresh database", func(t *testing.T) {
		ops := s.file(t, "docs", "operations.md")
		backup := block(t, string(ops), "### Back up")
		restore := block(t, string(ops), "### Restore")
		s.must(t, 3*time.Minute, asTyped(backup))
		dumps, _ := filepath.Glob(filepath.Join(s.tree, "coder-*.dump"))
		if len(dumps) != 1 {
			t.Fatalf("the backup commands made %v, want one coder-<date>.dump", dumps)
		}
		if fi, err := os.Stat(dumps[0]); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Fatalf("the dump %s: %v, want mode 600 and not empty", dumps[0], err)
		}
		// Something made after the backup, which the restore must undo.
		if _, err := h.coder(time.Minute, "users", "create", "--username", "later", "--email", "later@e2e.invalid", "--password", "E2e-"+randomHex(t, 8)+"!"); err != nil {
			t.Fatal(err)
		}
		// A fresh stack: the database's volume removed; only the database
		// started, as the docs say for a new host.
		s.must(t, 3*time.Minute, "scripts/compose.sh down")
		h.mustDocker(d, "volume", "rm", "egoengine_coder_db")
		s.must(t, 3*time.Minute, "scripts/compose.sh up database")
		restore = strings.ReplaceAll(restore, "coder-YYYY-MM-DD.dump", filepath.Base(dumps[0]))
		s.must(t, 8*time.Minute, asTyped(restore))
		s.checkHealthy(t, "coder", "database", "caddy")
		kept(t)
		if _, err := h.api("/api/v2/users/later"); err == nil {
			t.Errorf("the user made after the backup is there: the restore did not replace the database")
		}
		w, ag = h.waitReady(ws, 3*time.Minute)
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
	})

	step(t, "ACME through a real server: Caddy gets Coder's certificate from Pebble by a real challenge and keeps it across down and up", func(t *testing.T) {
		p := h.startPebble(mustEnv(t, "E2E_PEBBLE", "Pebble, the ACME test server (scripts/e2e.sh)"), d.gateway, h.cliWrap)
		// As docs/operations.md tells a user of a private ACME CA: its
		// root beside the Caddyfile, the directory and the root in .env.
		writeFile(t, filepath.Join(s.tree, "compose", "caddy", "acme-ca-root.pem"), string(p.tlsRoot))
		acmeEnv := strings.Replace(s.envText, "CADDY_TLS=internal\n", "CADDY_TLS=acme\nCADDY_ACME_CA="+p.dir+"\nCADDY_ACME_CA_ROOT=/etc/caddy/acme-ca-root.pem\n", 1)
		if acmeEnv == s.envText {
			t.Fatal("the test's .env has no CADDY_TLS=internal to replace")
		}
		s.envText = acmeEnv
		s.writeEnv()
		t0 := time.Now()
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		pebbleRoots := x509.NewCertPool()
		if !pebbleRoots.AppendCertsFromPEM(p.root) {
			t.Fatal("pebble's root is no certificate")
		}
		// Trusting Pebble's root alone: Caddy's answer is the first sign
		// that the order went through.
		serving := func(what string) *x509.Certificate {
			t.Helper()
			deadline := time.Now().Add(3 * time.Minute)
			for {
				resp, err := s.client(pebbleRoots).Get(h.url + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return resp.TLS.PeerCertificates[0]
					}
					err = fmt.Errorf("%s", resp.Status)
				}
				if time.Now().After(deadline) {
					s.saveLogs()
					t.Fatalf("%s: Coder not served with a certificate from Pebble within 3 minutes: %v\npebble's log:\n%s", what, err, readTail(p.log))
				}
				time.Sleep(time.Second)
			}
		}
		leaf := serving("after up")
		t.Logf("a certificate from Pebble %s after compose.sh up: %v, issued by %q, serial %x", time.Since(t0).Round(time.Millisecond), leaf.DNSNames, leaf.Issuer.CommonName, leaf.SerialNumber)
		if !slices.Contains(leaf.DNSNames, stackHost) || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
			t.Errorf("the certificate names %v, issued by %q; want %s from Pebble", leaf.DNSNames, leaf.Issuer.CommonName, stackHost)
		}
		if n := p.issued(t); n != 1 {
			t.Errorf("pebble issued %d certificates, want 1", n)
		}
		// Pebble's own words for a challenge it checked (by connecting to
		// the published port 80 for HTTP-01, which it logs, or 443 for
		// TLS-ALPN-01, which it does not), and its word that it checks for
		// real.
		if b, err := os.ReadFile(p.log); err == nil && (!strings.Contains(string(b), "set VALID by completed challenge") || strings.Contains(string(b), "VA always returns valid")) {
			t.Errorf("pebble's log shows no challenge validated; its end:\n%s", tail(string(b), 2000))
		} else if err == nil {
			t.Logf("challenge: %s", regexp.MustCompile(`Attempting to validate w/ \S+`).FindString(string(b)))
		}
		// The broken copies: a client trusting Caddy's local CA (the
		// stack's root until now) or nothing is refused.
		local := x509.NewCertPool()
		local.AppendCertsFromPEM(caPEM)
		for name, roots := range map[string]*x509.CertPool{"Caddy's local CA": local, "no root": x509.NewCertPool()} {
			if _, err := s.client(roots).Get(h.url + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("a client trusting %s got through: %v", name, err)
			}
		}

		// down and up: the certificate comes from Caddy's volume.
		s.must(t, 3*time.Minute, "scripts/compose.sh down")
		s.must(t, 8*time.Minute, "scripts/compose.sh up")
		again := serving("after down and up")
		if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("after down and up Caddy serves serial %x, was %x: a new certificate", again.SerialNumber, leaf.SerialNumber)
		}
		if n := p.issued(t); n != 1 {
			t.Errorf("after down and up pebble has issued %d certificates, want still 1", n)
		}
		// From here on the test and the CLI trust Pebble's root.
		writeFile(t, caFile, string(p.root))
		h.client = s.client(pebbleRoots)
	})

	step(t, "delete, then down --volumes: nothing of the run is left in the engine", func(t *testing.T) {
		h.deleteNow(ws)
		if left := h.containerOf(d, w.ID); left != "" {
			t.Errorf("the deleted workspace's container %s is still there", left)
		}
		s.must(t, 3*time.Minute, "scripts/compose.sh down --volumes")
		h.checkEngineEmpty(t, d)
		if _, err := net.InterfaceByName(stackBridge); err == nil {
			t.Errorf("the stack's bridge %s is still on this host", stackBridge)
		}
	})
}
