package compose

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// scriptTree lays out a copy of the repository's scripts/compose.sh and
// compose/ files in a temporary folder, so that each case controls .env and
// the commands on PATH. Docker cannot run here: where a case gets past the
// checks, a stand-in `docker` on PATH records its arguments instead.
type scriptTree struct {
	root string // temporary repository root
	bin  string // the only folder on PATH
}

func newScriptTree(t *testing.T, withDocker bool) scriptTree {
	t.Helper()
	root := t.TempDir()
	tr := scriptTree{root: root, bin: filepath.Join(root, "bin")}
	for _, d := range []string{"scripts", "compose", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "../scripts/compose.sh", filepath.Join(root, "scripts", "compose.sh"), 0o755)
	copyFile(t, "compose.yaml", filepath.Join(root, "compose", "compose.yaml"), 0o644)
	copyFile(t, ".env.example", filepath.Join(root, "compose", ".env.example"), 0o644)
	// Only the tools the script uses, so that a docker installed on the
	// machine running the test cannot take part.
	for _, tool := range []string{"bash", "dirname", "grep", "sed", "sort", "stat", "tail"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s is needed to run scripts/compose.sh: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(tr.bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	if withDocker {
		stub := "#!/bin/bash\nprintf '%s\\n' \"$*\" >> \"$DOCKER_STUB_LOG\"\n"
		if err := os.WriteFile(filepath.Join(tr.bin, "docker"), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func (tr scriptTree) writeEnv(t *testing.T, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tr.root, "compose", ".env"), []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// run executes the copied script with a clean environment plus extra.
func (tr scriptTree) run(t *testing.T, extra []string, args ...string) (code int, stderr, dockerCalls string) {
	t.Helper()
	log := filepath.Join(tr.root, "docker.log")
	cmd := exec.Command(filepath.Join(tr.root, "scripts", "compose.sh"), args...)
	cmd.Env = append([]string{"PATH=" + tr.bin, "DOCKER_STUB_LOG=" + log}, extra...)
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(log)
	return code, errb.String(), string(calls)
}

func filledEnv(f fixture) string {
	return "CODER_ACCESS_URL=" + f.accessURL + "\nPOSTGRES_PASSWORD=" + f.dbPassword +
		"\nDOCKER_GROUP_ID=" + f.groupID + "\nEGOENGINE_OP_SERVICE_ACCOUNT_TOKEN=" + f.opToken + "\nCOMPOSE_PROFILES=tls\n"
}

func TestScriptRefusesWithoutEnvFile(t *testing.T) {
	tr := newScriptTree(t, true)
	for _, cmd := range []string{"up", "down", "ps"} {
		code, stderr, calls := tr.run(t, nil, cmd)
		if code != 2 {
			t.Errorf("%s without compose/.env: exit %d, want 2", cmd, code)
		}
		for _, want := range []string{"compose/.env not found", "cp compose/.env.example compose/.env", "CODER_ACCESS_URL", "POSTGRES_PASSWORD", "DOCKER_GROUP_ID", "docs/operations.md"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s without compose/.env: message lacks %q:\n%s", cmd, want, stderr)
			}
		}
		if calls != "" {
			t.Errorf("%s without compose/.env still ran docker: %s", cmd, calls)
		}
	}
	if code, stderr, _ := tr.run(t, nil); code != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("no arguments: exit %d, %q; want 2 and the usage", code, stderr)
	}
}

func TestScriptListsEveryProblemInEnv(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		env  string
		want []string
	}{
		{"unedited example", mustRead(t, ".env.example"), []string{
			"CODER_ACCESS_URL is empty or missing", "POSTGRES_PASSWORD is empty or missing", "DOCKER_GROUP_ID is empty or missing",
		}},
		{"plain http", strings.Replace(filledEnv(f), f.accessURL, "http://egoengine.example.test", 1), []string{"use https://egoengine.<your domain>"}},
		{"path in URL", strings.Replace(filledEnv(f), f.accessURL, f.accessURL+"/coder", 1), []string{"no path"}},
		{"password unsafe in a URL", strings.Replace(filledEnv(f), f.dbPassword, "pa@ss/word", 1), []string{"not safe in a URL"}},
		{"group name instead of id", strings.Replace(filledEnv(f), "DOCKER_GROUP_ID="+f.groupID, "DOCKER_GROUP_ID=docker", 1), []string{"numeric group id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr := refusedUp(t, c.env, c.want)
			if strings.Contains(stderr, "pa@ss/word") || strings.Contains(stderr, f.dbPassword) {
				t.Errorf("the database password appears in the message:\n%s", stderr)
			}
		})
	}
}

// refusedUp runs `compose.sh up` with env as compose/.env and checks that it
// is refused before Docker runs (exit 2) with a message holding each of
// want. It returns that message.
func refusedUp(t *testing.T, env string, want []string) string {
	t.Helper()
	tr := newScriptTree(t, true)
	tr.writeEnv(t, env, 0o600)
	code, stderr, calls := tr.run(t, nil, "up")
	if code != 2 {
		t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("message lacks %q:\n%s", w, stderr)
		}
	}
	if calls != "" {
		t.Errorf("docker ran despite a broken .env: %s", calls)
	}
	return stderr
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScriptNeedsDockerCompose(t *testing.T) {
	tr := newScriptTree(t, false)
	tr.writeEnv(t, filledEnv(newFixture(t)), 0o600)
	code, stderr, _ := tr.run(t, nil, "up")
	if code != 2 || !strings.Contains(stderr, "Docker Compose v2 is not available") {
		t.Errorf("without docker: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestScriptRunsComposeWithTheStacksFiles(t *testing.T) {
	f := newFixture(t)
	tr := newScriptTree(t, true)
	// Quotes and a trailing comment must not end up in the values it checks.
	// The last assignment wins, as in Compose: the broken first one must not count.
	env := strings.Replace(filledEnv(f), "CODER_ACCESS_URL="+f.accessURL, `CODER_ACCESS_URL="`+f.accessURL+`"`, 1)
	env = strings.Replace(env, "DOCKER_GROUP_ID="+f.groupID, "DOCKER_GROUP_ID=not-a-number", 1) +
		"DOCKER_GROUP_ID=" + f.groupID + " # from stat\n"
	tr.writeEnv(t, env, 0o600)
	dir := filepath.Join(tr.root, "compose")
	base := "compose --project-directory " + dir + " --env-file " + dir + "/.env --file " + dir + "/compose.yaml "

	code, stderr, calls := tr.run(t, nil, "up")
	want := "compose version\n" + base + "up --detach --wait --wait-timeout 300\n"
	if code != 0 || calls != want {
		t.Fatalf("up: exit %d, docker calls:\n%s\nwant:\n%s\nstderr:\n%s", code, calls, want, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("a correct .env with mode 600 gave warnings:\n%s", stderr)
	}

	os.Remove(filepath.Join(tr.root, "docker.log"))
	code, _, calls = tr.run(t, nil, "logs", "-f", "coder")
	if code != 0 || calls != "compose version\n"+base+"logs -f coder\n" {
		t.Errorf("passthrough: exit %d, docker calls:\n%s", code, calls)
	}

	os.Remove(filepath.Join(tr.root, "docker.log"))
	code, _, calls = tr.run(t, nil, "up", "database")
	if code != 0 || calls != "compose version\n"+base+"up --detach --wait --wait-timeout 300 database\n" {
		t.Errorf("up database: exit %d, docker calls:\n%s", code, calls)
	}

	os.Remove(filepath.Join(tr.root, "docker.log"))
	code, _, calls = tr.run(t, nil, "down")
	if code != 0 || calls != "compose version\n"+base+"down\n" {
		t.Errorf("down: exit %d, docker calls:\n%s", code, calls)
	}
}

func TestScriptWarnsAboutLooseEnvAndShellOverrides(t *testing.T) {
	f := newFixture(t)
	tr := newScriptTree(t, true)
	tr.writeEnv(t, filledEnv(f), 0o644)
	// CADDY_TLS is not in .env: Compose would still take the shell's value
	// over compose.yaml's default, past every check of compose.sh.
	code, stderr, _ := tr.run(t, []string{"EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN=from-the-shell", "CADDY_TLS=internal"}, "up")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"chmod 600", "EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN is set in your shell", "CADDY_TLS is set in your shell"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("warnings lack %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "from-the-shell") || strings.Contains(stderr, f.opToken) {
		t.Errorf("a token value appears in the output:\n%s", stderr)
	}
}

// The settings with a shape: compose.sh refuses a value that Compose, Docker
// or Caddy would take and fail on later (or, for a port in the access URL,
// never fail on at all), with a message naming it.
func TestScriptRefusesMalformedSettings(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, extra string
		want        []string
	}{
		{"Coder version without v", "CODER_VERSION=2.27.0", []string{"CODER_VERSION=2.27.0: a Coder release tag is needed"}},
		{"Coder version latest", "CODER_VERSION=latest", []string{"CODER_VERSION=latest: a Coder release tag is needed"}},
		{"Coder version 1", "CODER_VERSION=v1.34.0", []string{"CODER_VERSION=v1.34.0: a Coder release tag is needed"}},
		{"Coder image instead of tag", "CODER_VERSION=ghcr.io/coder/coder:v2.27.0", []string{"a Coder release tag is needed"}},
		{"unknown TLS", "CADDY_TLS=letsencrypt", []string{"CADDY_TLS=letsencrypt: use acme", "or internal"}},
		{"TLS as a glob", "CADDY_TLS=*", []string{"CADDY_TLS=*: use acme"}},
		{"HTTPS publish with container port", "CADDY_HTTPS_PUBLISH=443:443", []string{"CADDY_HTTPS_PUBLISH=443:443: use [IP:]PORT"}},
		{"HTTP publish host name", "CADDY_HTTP_PUBLISH=egoengine.lan:80", []string{"CADDY_HTTP_PUBLISH=egoengine.lan:80: use [IP:]PORT"}},
		{"HTTPS publish out of range", "CADDY_HTTPS_PUBLISH=192.168.1.10:70000", []string{"CADDY_HTTPS_PUBLISH=192.168.1.10:70000: use [IP:]PORT"}},
		{"HTTPS publish port 0", "CADDY_HTTPS_PUBLISH=0", []string{"CADDY_HTTPS_PUBLISH=0: use [IP:]PORT"}},
		{"socket missing", "DOCKER_SOCKET=/nonexistent/docker.sock", []string{"DOCKER_SOCKET=/nonexistent/docker.sock is not a socket"}},
		{"socket a file", "DOCKER_SOCKET=/etc/hostname", []string{"DOCKER_SOCKET=/etc/hostname is not a socket"}},
		{"socket not expanded", "DOCKER_SOCKET=$XDG_RUNTIME_DIR/docker.sock", []string{"DOCKER_SOCKET=$XDG_RUNTIME_DIR/docker.sock: an absolute path is needed"}},
		{"access URL port under tls", "CODER_ACCESS_URL=https://egoengine.example.test:8443", []string{
			"CODER_ACCESS_URL=https://egoengine.example.test:8443: with COMPOSE_PROFILES=tls, Caddy listens on this URL's port", "CADDY_HTTPS_PUBLISH",
		}},
		{"ACME directory with the internal CA", "CADDY_TLS=internal\nCADDY_ACME_CA=https://acme.example.test/dir", []string{"CADDY_ACME_CA=https://acme.example.test/dir: an ACME directory applies to CADDY_TLS=acme only"}},
		{"ACME directory over http", "CADDY_ACME_CA=http://acme.example.test/dir", []string{"CADDY_ACME_CA=http://acme.example.test/dir: the ACME directory's https:// URL is needed"}},
		{"ACME directory not a URL", "CADDY_ACME_CA=acme.example.test", []string{"the ACME directory's https:// URL is needed"}},
		{"ACME root without a directory", "CADDY_ACME_CA_ROOT=/etc/caddy/root.pem", []string{"CADDY_ACME_CA_ROOT=/etc/caddy/root.pem is set but CADDY_ACME_CA is empty"}},
		{"ACME root not in compose/caddy", "CADDY_ACME_CA=https://acme.example.test/dir\nCADDY_ACME_CA_ROOT=/etc/caddy/root.pem", []string{"CADDY_ACME_CA_ROOT=/etc/caddy/root.pem: put the CA's root certificate (PEM) into", "/compose/caddy/ as root.pem"}},
		{"ACME root a host path", "CADDY_ACME_CA=https://acme.example.test/dir\nCADDY_ACME_CA_ROOT=./root.pem", []string{"CADDY_ACME_CA_ROOT=./root.pem: a path in Caddy's container is needed"}},
		{"access URL port under every profile", "CODER_ACCESS_URL=https://egoengine.example.test:8443/\nCOMPOSE_PROFILES=*", []string{"Caddy listens on this URL's port"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refusedUp(t, filledEnv(f)+c.extra+"\n", c.want)
		})
	}
}

// The same settings, well formed, pass to docker compose without a word.
// Values from .env are quoted in the messages: a control character in one
// (here an escape sequence that would turn the terminal red, and a carriage
// return that would hide what came before it) reaches the terminal as ?.
func TestScriptMessagesShowNoControlCharacters(t *testing.T) {
	f := newFixture(t)
	stderr := refusedUp(t, filledEnv(f)+"CADDY_TLS=\x1b[31mred\rx\n", []string{"CADDY_TLS=?[31mred?x: use acme"})
	if strings.ContainsAny(stderr, "\x1b\r") {
		t.Errorf("a control character from .env reached the message: %q", stderr)
	}
}

func TestScriptAcceptsSettings(t *testing.T) {
	f := newFixture(t)
	// A real socket with the fixture's group, as a rootless Docker's would be;
	// a short folder, as socket paths are limited to about 100 bytes.
	sockDir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	st, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	socketGroup := strconv.FormatUint(uint64(st.Sys().(*syscall.Stat_t).Gid), 10)
	withSocketGroup := strings.Replace(filledEnv(f), "DOCKER_GROUP_ID="+f.groupID, "DOCKER_GROUP_ID="+socketGroup, 1)

	for name, env := range map[string]string{
		"release candidate":          filledEnv(f) + "CODER_VERSION=v2.28.0-rc.1\n",
		"release":                    filledEnv(f) + "CODER_VERSION=v2.27.0\n",
		"internal CA, LAN address":   filledEnv(f) + "CADDY_TLS=internal\nCADDY_HTTP_PUBLISH=192.168.1.10:80\nCADDY_HTTPS_PUBLISH=192.168.1.10:443\n",
		"acme, ports alone, IPv6":    filledEnv(f) + "CADDY_TLS=acme\nCADDY_HTTP_PUBLISH=[::1]:8080\nCADDY_HTTPS_PUBLISH=443\n",
		"explicit 443 under tls":     strings.Replace(filledEnv(f), f.accessURL, f.accessURL+":443", 1),
		"any port without Caddy":     strings.Replace(filledEnv(f), f.accessURL, f.accessURL+":8443", 1) + "COMPOSE_PROFILES=\n",
		"socket of its own":          withSocketGroup + "DOCKER_SOCKET=" + socket + "\n",
		"empty values are defaults":  filledEnv(f) + "CODER_VERSION=\nCADDY_TLS=\nCADDY_HTTP_PUBLISH=\nCADDY_HTTPS_PUBLISH=\nDOCKER_SOCKET=\nCADDY_ACME_CA=\nCADDY_ACME_CA_ROOT=\n",
		"ACME staging, system roots": filledEnv(f) + "CADDY_ACME_CA=https://acme-staging-v02.api.letsencrypt.org/directory\n",
		"private ACME CA and root":   filledEnv(f) + "CADDY_TLS=acme\nCADDY_ACME_CA=https://10.0.0.5:14000/dir\nCADDY_ACME_CA_ROOT=/etc/caddy/acme-root.pem\n",
	} {
		t.Run(name, func(t *testing.T) {
			tr := newScriptTree(t, true)
			if err := os.MkdirAll(filepath.Join(tr.root, "compose", "caddy"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tr.root, "compose", "caddy", "acme-root.pem"), []byte(testRootPEM(t)), 0o644); err != nil {
				t.Fatal(err)
			}
			tr.writeEnv(t, env, 0o600)
			code, stderr, calls := tr.run(t, nil, "up")
			if code != 0 || !strings.Contains(calls, " up --detach ") {
				t.Errorf("exit %d, docker calls:\n%s\nstderr:\n%s", code, calls, stderr)
			}
			if stderr != "" && !strings.HasPrefix(stderr, "compose: Coder is up") {
				t.Errorf("unexpected messages:\n%s", stderr)
			}
		})
	}

	// The group check follows DOCKER_SOCKET.
	tr := newScriptTree(t, true)
	tr.writeEnv(t, strings.Replace(filledEnv(f), "DOCKER_GROUP_ID="+f.groupID, "DOCKER_GROUP_ID=4242", 1)+"DOCKER_SOCKET="+socket+"\n", 0o600)
	code, stderr, _ := tr.run(t, nil, "up")
	if want := "DOCKER_GROUP_ID=4242 but " + socket + " belongs to group " + socketGroup; code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("socket of another group: exit %d, want 0 and a warning %q:\n%s", code, want, stderr)
	}
}

// compose/compose.override.yaml, Compose's own place for local changes, is
// used when present, after compose.yaml, so that its settings win.
func TestScriptAddsTheOverrideFile(t *testing.T) {
	tr := newScriptTree(t, true)
	tr.writeEnv(t, filledEnv(newFixture(t)), 0o600)
	dir := filepath.Join(tr.root, "compose")
	if err := os.WriteFile(filepath.Join(dir, "compose.override.yaml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "compose --project-directory " + dir + " --env-file " + dir + "/.env --file " + dir + "/compose.yaml --file " + dir + "/compose.override.yaml "
	for _, args := range [][]string{{"up"}, {"down"}, {"config"}} {
		os.Remove(filepath.Join(tr.root, "docker.log"))
		code, stderr, calls := tr.run(t, nil, args...)
		want := "compose version\n" + base + args[0]
		if code != 0 || !strings.HasPrefix(calls, want) {
			t.Errorf("%s with an override file: exit %d, docker calls:\n%s\nwant them to start:\n%s\nstderr:\n%s", args[0], code, calls, want, stderr)
		}
	}
}

// The override file holds one host's changes: git must not pick it up.
func TestOverrideFileIsIgnoredByGit(t *testing.T) {
	cmd := exec.Command("git", "check-ignore", "--no-index", "--quiet", "compose/compose.override.yaml")
	cmd.Dir = ".."
	if err := cmd.Run(); err != nil {
		t.Fatalf("git check-ignore compose/compose.override.yaml: %v (the repository's .gitignore must list it)", err)
	}
}
