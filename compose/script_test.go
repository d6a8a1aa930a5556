package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
			tr := newScriptTree(t, true)
			tr.writeEnv(t, c.env, 0o600)
			code, stderr, calls := tr.run(t, nil, "up")
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("message lacks %q:\n%s", w, stderr)
				}
			}
			if calls != "" {
				t.Errorf("docker ran despite a broken .env: %s", calls)
			}
			if strings.Contains(stderr, "pa@ss/word") || strings.Contains(stderr, f.dbPassword) {
				t.Errorf("the database password appears in the message:\n%s", stderr)
			}
		})
	}
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
	code, stderr, _ := tr.run(t, []string{"EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN=from-the-shell"}, "up")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"chmod 600", "EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN is set in your shell"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("warnings lack %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "from-the-shell") || strings.Contains(stderr, f.opToken) {
		t.Errorf("a token value appears in the output:\n%s", stderr)
	}
}
