package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// runMarker is put in the environment of every process this run starts
// (PostgreSQL, Coder, and through Coder the agents and egoagent), so that
// teardown finds them all by one exact value, however they detached.
const runMarker = "EGOENGINE_E2E_RUN"

// workspaceMarker is what the template's workspace.sh gives each workspace's
// processes: the workspace's folder.
const workspaceMarker = "EGOENGINE_E2E_WORKSPACE"

const (
	templateName  = "egoengine-e2e"
	adminUser     = "admin"
	tokenVariable = "op_service_account_token"
)

// harness holds one run: the processes it started and how to reach them.
type harness struct {
	t      *testing.T
	runID  string
	runDir string
	repo   string

	coderBin    string
	egoagentBin string
	opHelperBin string // egoagent-op built with the tag egoagent_optest
	tofuBin     string
	tofuConfig  string

	// svc is the local 1Password service the workspace's egoagent signs in
	// to (through the tagged helper), and svcCert the file of its
	// certificate, which that helper trusts.
	svc     *opservice.Service
	svcCert string
	// token is the service-account token the workspace's egoagent is to
	// run with: the owner's user secret (userToken) when there is one, as
	// Coder's agent lets it override the container's environment, else the
	// token given as TF_VAR_op_service_account_token (tfVarToken). Every
	// token of the run is searched for everywhere, together with the
	// secrets inside it (tokenSecrets).
	token        string
	tfVarToken   string
	userToken    string
	tokenSecrets []string
	// noTFVar starts Coder without TF_VAR_op_service_account_token: the
	// token reaches workspaces only as the owner's user secret.
	noTFVar bool

	pgBin  string
	pgData string
	pgAs   []string // runuser prefix when running as root
	pgURL  string

	url       string
	cliDir    string
	session   string
	server    *exec.Cmd
	serverLog string
	serverEnd chan struct{}
	ports     []int

	// listenHost is where Coder listens and the address in its access URL:
	// 127.0.0.1, or for the Docker test its bridge's address on this host,
	// which the containers reach. agentBinaries makes the server serve its
	// own binary as the agent download (<cache>/site/orig/bin/coder-linux-amd64),
	// so that a container runs the template's real init script.
	listenHost    string
	agentBinaries bool
	coderPort     int

	// For a Coder behind the compose stack's Caddy (TestComposeStack):
	// client reaches h.url (nil: http.DefaultClient), and the coder CLI
	// runs under cliWrap (a command prefix, such as a mount namespace with
	// its own /etc/hosts) with cliEnv added to its environment.
	client  *http.Client
	cliWrap []string
	cliEnv  []string
	// coderEnv is added to the server's environment (the Kubernetes test's
	// KUBE_CONFIG_PATH, which the provider in its provisioner reads).
	coderEnv []string
}

func mustEnv(t *testing.T, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: %s. Run the end-to-end test with scripts/e2e.sh (make e2e), which sets it.", name, what)
	}
	return v
}

func newHarness(t *testing.T) *harness { return newHarnessIn(t, "") }

// newHarnessIn is newHarness with its files in the subfolder sub of the
// run's folder ("" for the folder itself), so that tests of one run do not
// share files.
func newHarnessIn(t *testing.T, sub string) *harness {
	runDir := filepath.Join(mustEnv(t, "E2E_RUN_DIR", "a fresh folder for this run (mode 0755: PostgreSQL runs as its own user)"), sub)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:           t,
		runID:       mustEnv(t, "E2E_RUN_ID", "a unique id of this run, put in every started process's environment"),
		runDir:      runDir,
		repo:        mustEnv(t, "E2E_REPO", "the repository root"),
		coderBin:    mustEnv(t, "E2E_CODER", "the coder binary (scripts/e2e.sh build-coder)"),
		egoagentBin: mustEnv(t, "E2E_EGOAGENT", "bin/egoagent (scripts/build.sh)"),
		opHelperBin: mustEnv(t, "E2E_OP_HELPER", "egoagent-op built with -tags egoagent_optest (scripts/e2e.sh)"),
		tofuBin:     mustEnv(t, "E2E_TOFU", "OpenTofu (scripts/tools.sh)"),
		tofuConfig:  mustEnv(t, "TF_CLI_CONFIG_FILE", "OpenTofu's CLI config with the provider mirror (scripts/tools.sh)"),
	}
	for _, d := range []string{"bin", "logs", "tmp", "cli", "home", "cache", "w", "op"} {
		if err := os.MkdirAll(filepath.Join(h.runDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Coder's provisioner runs `terraform` from PATH.
	if err := os.Symlink(h.tofuBin, filepath.Join(h.runDir, "bin", "terraform")); err != nil {
		t.Fatal(err)
	}
	h.cliDir = filepath.Join(h.runDir, "cli")
	return h
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int { return freePortOn(t, "127.0.0.1") }

// freePortOn asks the kernel for an unused port on one of this host's
// addresses.
func freePortOn(t *testing.T, host string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// childEnv is this process's environment without anything that would steer
// Coder, OpenTofu or egoagent from outside the run, plus the run marker.
func (h *harness) childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "CODER_"), strings.HasPrefix(name, "TF_"), strings.HasPrefix(name, "E2E_"),
			strings.HasPrefix(name, "EGOENGINE_"), strings.HasPrefix(name, "EGOAGENT_"), name == "OP_SERVICE_ACCOUNT_TOKEN",
			name == "HOME", name == "TMPDIR":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, runMarker+"="+h.runID, "HOME="+filepath.Join(h.runDir, "home"), "TMPDIR="+filepath.Join(h.runDir, "tmp"))
	return append(env, extra...)
}

// run runs a command to completion within timeout and returns its stdout;
// on failure the error carries stderr.
func (h *harness) run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	return h.runInput("", timeout, env, name, args...)
}

// runInput is run with stdin ("": none, /dev/null).
func (h *harness) runInput(stdin string, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = h.runDir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, ctx.Err())
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, tail(out.String(), 3000), tail(errb.String(), 3000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// ---- 1Password ----

// startService starts the local 1Password service on a loopback port and
// mints the token the workspace's egoagent will sign in with; it stops with
// the test's cleanups, after the workspaces.
func (h *harness) startService() {
	t := h.t
	svc, err := opservice.Start("")
	if err != nil {
		t.Fatalf("starting the local 1Password service: %v", err)
	}
	h.svc = svc
	t.Cleanup(svc.Close)
	_, port, _ := net.SplitHostPort(svc.Addr())
	p, _ := strconv.Atoi(port)
	h.ports = append(h.ports, p)
	// Each Token is minted anew (a fresh throttle seed): this one is the
	// token of the run.
	h.token = svc.Token()
	h.addToken(h.token)
	// Public: the certificate the tagged helper trusts, nothing else.
	h.svcCert = filepath.Join(h.runDir, "op", "service.pem")
	if err := os.WriteFile(h.svcCert, svc.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("1Password service: %s (host %s), a token of %d characters", svc.Addr(), svc.Host, len(h.token))
}

// addToken adds a token of the run's service, and the secrets inside it, to
// what the leak searches look for.
func (h *harness) addToken(token string) {
	t := h.t
	body := strings.TrimPrefix(token, "ops_")
	creds, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || body == token {
		t.Fatalf("the service minted a token of an unexpected shape (%d characters): %v", len(token), err)
	}
	// The secrets inside it (secret key, SRP x, unlock key) are searched for
	// too: a view that showed the decoded token would show them.
	mine := []string{token, body}
	all := h.svc.TokenSecretsOf(token)
	for _, s := range all {
		if strings.HasPrefix(s, "ops_") || slices.Contains(all, "ops_"+s) {
			continue // the token, or its body
		}
		if !bytes.Contains(creds, []byte(s)) {
			t.Fatalf("a secret the service names (%d characters) is not in the token it minted", len(s))
		}
		mine = append(mine, s)
	}
	if len(mine) < 4 {
		t.Fatalf("the service names %d secrets inside its token, want at least 2", len(mine)-2)
	}
	for _, s := range mine {
		if !slices.Contains(h.tokenSecrets, s) {
			h.tokenSecrets = append(h.tokenSecrets, s)
		}
	}
}

// userSecretName and userSecretCreate are what docs/operations.md tells
// the owner to run, and what egoagent's "no token" message names.
const (
	userSecretName   = "op-token"
	userSecretCreate = "coder secret create " + userSecretName + " --env OP_SERVICE_ACCOUNT_TOKEN"
)

// storeToken makes token the signed-in owner's user secret, created as
// docs/operations.md writes it or updated (rotation), the value on stdin,
// never an argument. It becomes the token egoagent runs with from the next
// start of a workspace.
func (h *harness) storeToken(token string) {
	t := h.t
	args := append(strings.Fields(userSecretCreate)[1:], "--description", "1Password service account for egoagent")
	if h.userToken != "" {
		args = []string{"secret", "update", userSecretName}
	}
	h.addToken(token)
	if _, err := h.coderInput(token, time.Minute, args...); err != nil {
		t.Fatal(h.masked(err.Error()))
	}
	h.userToken, h.token = token, token
}

// ---- PostgreSQL ----

// pgBinDir finds the newest Debian PostgreSQL server binaries.
func pgBinDir(t *testing.T) string {
	if d := os.Getenv("E2E_PG_BINDIR"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	t.Fatal("no PostgreSQL server found under /usr/lib/postgresql/*/bin: install Debian's postgresql package (scripts/deps.sh does), or set E2E_PG_BINDIR")
	return ""
}

func (h *harness) startPostgres() {
	t := h.t
	h.pgBin = pgBinDir(t)
	dir := filepath.Join(h.runDir, "pg")
	h.pgData = filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL refuses to run as root: as root, it runs as the package's
	// postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user (made by Debian's postgresql package): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		h.pgAs = []string{"runuser", "-u", "postgres", "--"}
	}
	port := freePort(t)
	h.ports = append(h.ports, port)
	env := h.childEnv()
	if _, err := h.pgRun(2*time.Minute, env, "initdb", "-D", h.pgData, "-U", "coder", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatal(err)
	}
	// A throwaway database: durability settings off for speed; loopback and
	// a socket folder of its own, so the system's cluster is never touched.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	t.Cleanup(h.stopPostgres)
	if _, err := h.pgRun(time.Minute, env, "pg_ctl", "-D", h.pgData, "-l", filepath.Join(dir, "postgres.log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		t.Fatalf("%v\npostgres.log:\n%s", err, readTail(filepath.Join(dir, "postgres.log")))
	}
	h.pgURL = fmt.Sprintf("postgres://coder@127.0.0.1:%d/postgres?sslmode=disable", port)
	t.Logf("postgres: %s on 127.0.0.1:%d", h.pgBin, port)
}

func (h *harness) pgRun(timeout time.Duration, env []string, tool string, args ...string) (string, error) {
	argv := append(append(append([]string{}, h.pgAs...), filepath.Join(h.pgBin, tool)), args...)
	return h.run(timeout, env, argv[0], argv[1:]...)
}

func (h *harness) stopPostgres() {
	b, err := os.ReadFile(filepath.Join(h.pgData, "postmaster.pid"))
	if err != nil {
		return
	}
	if _, err := h.pgRun(time.Minute, h.childEnv(), "pg_ctl", "-D", h.pgData, "-m", "fast", "-w", "stop"); err != nil {
		h.t.Errorf("stopping PostgreSQL: %v", err)
	}
	// pg_ctl returns once the postmaster has removed its pid file, which
	// it does just before it exits: wait for the process itself to go, or
	// the check for leftovers may still meet it.
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	for deadline := time.Now().Add(30 * time.Second); pid > 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
	}
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tail(string(b), 4000)
}

// ---- Coder server ----

func (h *harness) startCoder() {
	t := h.t
	host := h.listenHost
	if host == "" {
		host = "127.0.0.1"
	}
	port := freePortOn(t, host)
	h.ports = append(h.ports, port)
	h.coderPort = port
	h.url = fmt.Sprintf("http://%s:%d", host, port)
	if h.agentBinaries {
		// A server built without the web UI serves agent binaries from
		// its cache folder's site/orig/bin (site/bin before v2.3x; the
		// compressed copies it makes go to site/compressed), docs/e2e.md.
		bin := filepath.Join(h.runDir, "cache", "site", "orig", "bin", "coder-linux-amd64")
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(h.coderBin, bin); err != nil {
			if err := copyFile(h.coderBin, bin, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.serverLog = filepath.Join(h.runDir, "logs", "coder-server.log")
	logf, err := os.Create(h.serverLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	env := h.childEnv(
		"PATH="+filepath.Join(h.runDir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TF_CLI_CONFIG_FILE="+h.tofuConfig,
		"CODER_PG_CONNECTION_URL="+h.pgURL,
		"CODER_HTTP_ADDRESS="+fmt.Sprintf("%s:%d", host, port),
		"CODER_ACCESS_URL="+h.url,
		"CODER_CACHE_DIRECTORY="+filepath.Join(h.runDir, "cache"),
		"CODER_CONFIG_DIR="+filepath.Join(h.runDir, "server-config"),
		"CODER_TELEMETRY_ENABLE=false",
		"CODER_UPDATE_CHECK=false",
		"CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE=false",
		// Nothing outside this machine: no STUN, agents and clients meet
		// through the server's own DERP relay.
		"CODER_DERP_SERVER_STUN_ADDRESSES=disable",
		"CODER_BLOCK_DIRECT=true",
		"CODER_PROVISIONER_DAEMONS=1",
	)
	env = append(env, h.coderEnv...)
	if !h.noTFVar {
		// The one place the token is given, as the compose stack gives it
		// when .env sets EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN.
		h.tfVarToken = h.token
		env = append(env, "TF_VAR_"+tokenVariable+"="+h.tfVarToken)
	}
	cmd := exec.Command(h.coderBin, "server")
	cmd.Env = env
	cmd.Dir = h.runDir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: teardown signals the server and its provisioner
	// children together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting coder server: %v", err)
	}
	h.server = cmd
	h.serverEnd = make(chan struct{})
	go func() { _ = cmd.Wait(); close(h.serverEnd) }()
	t.Cleanup(h.stopCoder)

	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case <-h.serverEnd:
			t.Fatalf("coder server exited during start (%v); its log:\n%s", cmd.ProcessState, readTail(h.serverLog))
		default:
		}
		resp, err := http.Get(h.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("coder server not healthy at %s/healthz after 3m; its log:\n%s", h.url, readTail(h.serverLog))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("coder server: %s (log %s)", h.url, h.serverLog)
}

func (h *harness) stopCoder() {
	if h.server == nil || h.server.Process == nil {
		return
	}
	pgid := h.server.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-h.serverEnd:
	case <-time.After(30 * time.Second):
		h.t.Errorf("coder server did not stop within 30s of SIGTERM; killing it")
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-h.serverEnd
	}
	// Provisioner children left in the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// coder runs the coder CLI as the logged-in admin.
func (h *harness) coder(timeout time.Duration, args ...string) (string, error) {
	return h.coderInput("", timeout, args...)
}

// coderInput is coder with stdin.
func (h *harness) coderInput(stdin string, timeout time.Duration, args ...string) (string, error) {
	env := h.childEnv(append([]string{"CODER_CONFIG_DIR=" + h.cliDir, "NO_COLOR=1"}, h.cliEnv...)...)
	argv := append(append(append([]string{}, h.cliWrap...), h.coderBin), args...)
	return h.runInput(stdin, timeout, env, argv[0], argv[1:]...)
}

func (h *harness) httpClient() *http.Client {
	if h.client != nil {
		return h.client
	}
	return http.DefaultClient
}

func (h *harness) login() {
	t := h.t
	password := "E2e-" + randomHex(t, 12) + "!"
	if _, err := h.coder(2*time.Minute, "login", h.url,
		"--first-user-username", adminUser,
		"--first-user-email", "admin@e2e.invalid",
		"--first-user-full-name", "E2E Admin",
		"--first-user-password", password,
		"--first-user-trial=false"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.cliDir, "session"))
	if err != nil {
		t.Fatalf("coder login left no session file: %v", err)
	}
	h.session = strings.TrimSpace(string(b))
}

// ---- API ----

// api GETs a Coder API path and returns the body; non-2xx is an error.
func (h *harness) api(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Coder-Session-Token", h.session)
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, &statusError{code: resp.StatusCode, msg: fmt.Sprintf("GET %s: %s: %s", path, resp.Status, tail(string(b), 500))}
	}
	return b, nil
}

// statusError is a non-2xx answer of the API.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func (h *harness) apiJSON(path string, v any) {
	h.t.Helper()
	b, err := h.api(path)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
}

// The parts of Coder's API answers this test reads.
type (
	workspace struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		LatestBuild build  `json:"latest_build"`
	}
	build struct {
		ID                string     `json:"id"`
		Transition        string     `json:"transition"`
		Status            string     `json:"status"`
		TemplateVersionID string     `json:"template_version_id"`
		Resources         []resource `json:"resources"`
		Job               struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		} `json:"job"`
	}
	resource struct {
		Name   string  `json:"name"`
		Type   string  `json:"type"`
		Agents []agent `json:"agents"`
	}
	agent struct {
		ID                string            `json:"id"`
		Name              string            `json:"name"`
		Status            string            `json:"status"`
		LifecycleState    string            `json:"lifecycle_state"`
		Directory         string            `json:"expanded_directory"`
		EnvironmentVars   map[string]string `json:"environment_variables"`
		Scripts           []agentScript     `json:"scripts"`
		StartupScriptBehv string            `json:"startup_script_behavior"`
	}
	agentScript struct {
		DisplayName      string `json:"display_name"`
		Script           string `json:"script"`
		RunOnStart       bool   `json:"run_on_start"`
		StartBlocksLogin bool   `json:"start_blocks_login"`
	}
	scriptTiming struct {
		DisplayName string `json:"display_name"`
		Status      string `json:"status"`
		ExitCode    int    `json:"exit_code"`
		Stage       string `json:"stage"`
	}
	metadataItem struct {
		Result struct {
			CollectedAt time.Time `json:"collected_at"`
			Value       string    `json:"value"`
			Error       string    `json:"error"`
		} `json:"result"`
		Description struct {
			Key      string `json:"key"`
			Script   string `json:"script"`
			Interval int    `json:"interval"`
		} `json:"description"`
	}
)

func (h *harness) workspace(name string) workspace {
	var ws workspace
	h.apiJSON("/api/v2/users/"+adminUser+"/workspace/"+name, &ws)
	return ws
}

func (w workspace) agent() (agent, bool) {
	for _, r := range w.LatestBuild.Resources {
		for _, a := range r.Agents {
			return a, true
		}
	}
	return agent{}, false
}

// waitReady waits for the workspace's latest build to be running with its
// agent connected and its start scripts done.
func (h *harness) waitReady(name string, timeout time.Duration) (workspace, agent) {
	t := h.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ws := h.workspace(name)
		a, ok := ws.agent()
		last = fmt.Sprintf("build %s %s (job %s %s)", ws.LatestBuild.Transition, ws.LatestBuild.Status, ws.LatestBuild.Job.Status, ws.LatestBuild.Job.Error)
		if ok {
			last += fmt.Sprintf(", agent %s %s", a.Status, a.LifecycleState)
		}
		switch {
		case ws.LatestBuild.Status == "failed":
			t.Fatalf("workspace %s: %s\nserver log:\n%s", name, last, readTail(h.serverLog))
		case ok && (a.LifecycleState == "start_error" || a.LifecycleState == "start_timeout"):
			t.Fatalf("workspace %s: %s; agent logs:\n%s", name, last, h.agentLogText(a.ID))
		case ok && ws.LatestBuild.Status == "running" && a.Status == "connected" && a.LifecycleState == "ready":
			return ws, a
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace %s not ready after %s: %s", name, timeout, last)
		}
		time.Sleep(time.Second)
	}
}

// agentLogText is what Coder shows as the agent's startup logs.
func (h *harness) agentLogText(agentID string) string {
	b, err := h.api("/api/v2/workspaceagents/" + agentID + "/logs")
	if err != nil {
		return err.Error()
	}
	var logs []struct {
		Output string `json:"output"`
	}
	if err := json.Unmarshal(b, &logs); err != nil {
		return string(b)
	}
	var sb strings.Builder
	for _, l := range logs {
		sb.WriteString(l.Output)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// watchMetadata reads the agent's metadata stream (server-sent events)
// until the item key has a value for which ok is true, or timeout. It
// returns the value, how long it took and every value seen.
func (h *harness) watchMetadata(agentID, key string, timeout time.Duration, ok func(string) bool) (string, time.Duration, []string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/api/v2/workspaceagents/"+agentID+"/watch-metadata", nil)
	if err != nil {
		return "", 0, nil, err
	}
	req.Header.Set("Coder-Session-Token", h.session)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return "", 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", 0, nil, fmt.Errorf("watch-metadata: %s: %s", resp.Status, b)
	}
	var seen []string
	event := ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "data":
			var items []metadataItem
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &items); err != nil {
				return "", 0, seen, fmt.Errorf("watch-metadata: %w: %s", err, line)
			}
			for _, it := range items {
				if it.Description.Key != key {
					continue
				}
				v := it.Result.Value
				if len(seen) == 0 || seen[len(seen)-1] != v {
					seen = append(seen, v)
				}
				if ok(v) {
					return v, time.Since(start), seen, nil
				}
			}
		}
	}
	if ctx.Err() != nil {
		return "", time.Since(start), seen, fmt.Errorf("metadata %s: no matching value within %s", key, timeout)
	}
	return "", time.Since(start), seen, fmt.Errorf("watch-metadata stream ended: %v", sc.Err())
}

// ---- processes ----

type process struct {
	pid  int
	argv []string
	env  []string
}

// processesWith lists the processes whose environment holds exactly the
// entry kv ("NAME=value").
func processesWith(kv string) []process {
	var out []process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		envb, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		env := splitNUL(envb)
		found := false
		for _, x := range env {
			if x == kv {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		cmdb, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := splitNUL(cmdb)
		if len(argv) == 0 {
			continue // a zombie: nothing left to end
		}
		out = append(out, process{pid: pid, argv: argv, env: env})
	}
	return out
}

func splitNUL(b []byte) []string {
	var out []string
	for _, s := range bytes.Split(b, []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s))
		}
	}
	return out
}

// daemons are the `egoagent run` processes among ps (exe: the egoagent
// binary, which the daemon was started from).
func daemons(ps []process, exe string) []process {
	var out []process
	for _, p := range ps {
		if filepath.Base(p.argv[0]) != filepath.Base(exe) {
			continue
		}
		for _, a := range p.argv[1:] {
			if a == "run" {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// killRun ends every process of this run that is still there.
func (h *harness) killRun() []process {
	left := processesWith(runMarker + "=" + h.runID)
	for _, p := range left {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesWith(runMarker+"="+h.runID)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return left
}

// portOpen says whether something accepts connections on a loopback port.
func portOpen(port int) bool { return portOpenOn("127.0.0.1", port) }

func portOpenOn(host string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ---- files ----

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			if fi.Name() == "tests" || (strings.HasPrefix(fi.Name(), ".") && rel != ".") {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: only regular files belong in a template upload", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}

var longRun = regexp.MustCompile(`[A-Za-z0-9+/=_-]{12,}`)

// leakIn reports where one of secrets occurs in text, as
// "name: ...context..." with every secret masked.
func leakIn(name string, text []byte, secrets ...string) (string, bool) {
	for _, secret := range secrets {
		i := bytes.Index(text, []byte(secret))
		if i < 0 {
			continue
		}
		lo, hi := max(0, i-40), min(len(text), i+len(secret)+40)
		ctx := string(text[lo:hi])
		for _, s := range secrets {
			ctx = strings.ReplaceAll(ctx, s, "<TOKEN>")
		}
		// A secret cut by the window's edge is not masked above: no long
		// run of token-like characters with a digit in it is shown at all.
		ctx = longRun.ReplaceAllStringFunc(ctx, func(run string) string {
			if strings.ContainsAny(run, "0123456789") {
				return "<...>"
			}
			return run
		})
		return fmt.Sprintf("%s: ...%s...", name, ctx), true
	}
	return "", false
}
