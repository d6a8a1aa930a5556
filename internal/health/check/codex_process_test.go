package check

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
)

// These tests use stand-in commands (shell scripts written by checktest or
// here) for what the real CLI cannot be made to do: hang, or report how it was
// called.

func runVersion(p string) (string, error) {
	out, err := exec.Command(p, "--version").Output()
	return string(out), err
}

// A hanging check command is killed at the timeout, with the child it started,
// and the staging folder is gone when Check returns.
func TestCodexCheckTimesOut(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleeper.pid")
	cmd := filepath.Join(dir, "hanging-codex")
	// Stand-in: a shell that starts a long sleep, records its pid, and waits.
	body := "#!/bin/sh\nsleep 600 &\necho $! > '" + pidFile + "'\nwait\n"
	if err := os.WriteFile(cmd, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	stage := checktest.StageDir(t)
	c := New(Options{CodexCommand: cmd, StageDir: stage, Timeout: 500 * time.Millisecond})

	start := time.Now()
	r := c.Check(context.Background(), KindCodex, checktest.ValidChatGPT())
	elapsed := time.Since(start)
	if r.OK || r.Summary != "codex: codex login status timed out" {
		t.Fatalf("got %+v", r)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("Check took %v with a 500ms timeout", elapsed)
	}
	assertEmptyDir(t, stage)

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the stand-in never started its sleeper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// checktest.HangingCommand is the one other packages use: it must time out too.
func TestCodexCheckTimesOutWithCheckTestStandIn(t *testing.T) {
	stage := checktest.StageDir(t)
	c := New(Options{CodexCommand: checktest.HangingCommand(t), StageDir: stage, Timeout: 300 * time.Millisecond})
	if r := c.Check(context.Background(), KindCodex, checktest.APIKey("")); r.OK || !strings.Contains(r.Summary, "timed out") {
		t.Fatalf("got %+v", r)
	}
	assertEmptyDir(t, stage)
}

func TestCodexCheckCancelled(t *testing.T) {
	stage := checktest.StageDir(t)
	c := New(Options{CodexCommand: checktest.HangingCommand(t), StageDir: stage, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	r := c.Check(ctx, KindCodex, checktest.APIKey(""))
	if r.OK || r.Summary != "codex: check cancelled while codex ran" || time.Since(start) > 5*time.Second {
		t.Fatalf("got %+v after %v", r, time.Since(start))
	}
	assertEmptyDir(t, stage)
}

// waitGone waits for pid to be dead: gone, or a zombie nobody has reaped yet
// (a container's init may not reap).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("process %d outlived the check", pid)
}

// The recording stand-in: the child gets exactly `login status` as arguments,
// an environment of CODEX_HOME, HOME and PATH only, and a private staged
// folder holding auth.json and config.toml. The secret is in none of it.
func TestCodexChildArgumentsAndEnvironment(t *testing.T) {
	canary := checktest.Canary(t)
	t.Setenv("OP_SERVICE_ACCOUNT_TOKEN", "ops_"+canary)
	t.Setenv("CODEX_ACCESS_TOKEN", canary)
	cmd, record := checktest.RecordingCommand(t)
	stage := checktest.StageDir(t)
	c := New(Options{CodexCommand: cmd, StageDir: stage})

	content := checktest.ChatGPT{Expires: time.Now().Add(time.Hour), RefreshToken: "rt_" + canary}.JSON()
	if r := c.Check(context.Background(), KindCodex, content); !r.OK {
		t.Fatalf("got %+v", r)
	}
	assertEmptyDir(t, stage)

	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	rec := string(b)
	if piece := checktest.Leaks(rec, canary); piece != "" {
		t.Fatalf("the child saw %q of the secret or our token in its arguments or environment:\n%s", piece, rec)
	}
	var args, envNames, files []string
	var codexHome string
	for _, line := range strings.Split(strings.TrimSpace(rec), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "arg":
			args = append(args, rest)
		case "env":
			name, val, _ := strings.Cut(rest, "=")
			envNames = append(envNames, name)
			if name == "CODEX_HOME" {
				codexHome = val
			}
		case "file":
			files = append(files, rest)
		}
	}
	if want := []string{cmd, "login", "status"}; strings.Join(args, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("child arguments %q, want %q", args, want)
	}
	// The shell adds PWD, SHLVL and _ itself; everything else came from us.
	shellOwn := map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
	var ours []string
	for _, n := range envNames {
		if !shellOwn[n] {
			ours = append(ours, n)
		}
	}
	sort.Strings(ours)
	if strings.Join(ours, ",") != "CODEX_HOME,HOME,PATH" {
		t.Fatalf("child environment names %q, want CODEX_HOME, HOME and PATH only", ours)
	}
	if filepath.Dir(codexHome) != stage || !strings.HasPrefix(filepath.Base(codexHome), "codex-") {
		t.Fatalf("CODEX_HOME %q is not a staging folder under %s", codexHome, stage)
	}
	sort.Strings(files)
	if strings.Join(files, ",") != "auth.json,config.toml" {
		t.Fatalf("staged files %q", files)
	}
	if !strings.Contains(rec, "mode "+codexHome+" 700\n") || !strings.Contains(rec, "mode "+codexHome+"/auth.json 600\n") {
		t.Fatalf("staged modes not 0700/0600:\n%s", rec)
	}
}

// Canary: whatever the content and however the check ends, no part of the
// secret reaches Summary or Skipped. Runs without a CLI, with the stand-in,
// and with the real CLI when it is available.
func TestCodexSummaryNeverCarriesContent(t *testing.T) {
	canary := checktest.Canary(t)
	contents := map[string][]byte{
		"ChatGPT, canary refresh token": checktest.ChatGPT{Expires: time.Now().Add(time.Hour), RefreshToken: canary}.JSON(),
		"API key canary":                checktest.APIKey("sk-proj-" + canary),
		"canary in broken JSON":         []byte(`{"OPENAI_API_KEY": ` + canary + `}`),
		"canary as a bare value":        []byte(canary),
		"canary as a key":               []byte(`{"` + canary + `": 1}`),
		"canary as auth_mode":           []byte(`{"auth_mode":"` + canary + `","OPENAI_API_KEY":"sk-` + canary + `"}`),
		"canary as API key type error":  []byte(`{"OPENAI_API_KEY":{"k":"` + canary + `"}}`),
		"canary as exp":                 []byte(`{"tokens":{"id_token":"` + checktest.JWT(map[string]any{"exp": 1}) + `","access_token":"` + checktest.JWT(map[string]any{"exp": canary}) + `","refresh_token":"r"}}`),
		"canary as access token":        []byte(`{"tokens":{"id_token":"` + checktest.JWT(map[string]any{"exp": 1}) + `","access_token":"` + canary + `","refresh_token":"r"}}`),
		"canary as ID token":            []byte(`{"tokens":{"id_token":"` + canary + `","access_token":"` + canary + `","refresh_token":"r"}}`),
		"expired with canary":           checktest.ChatGPT{Expires: time.Now().Add(-time.Hour), RefreshToken: canary}.JSON(),
	}
	recording, _ := checktest.RecordingCommand(t)
	commands := map[string]string{
		"no CLI":     filepath.Join(t.TempDir(), "absent-codex"),
		"stand-in":   recording,
		"hanging":    checktest.HangingCommand(t),
		"real codex": os.Getenv("EGOAGENT_TEST_CODEX"),
	}
	for cname, cmd := range commands {
		if cmd == "" {
			continue // the real CLI is covered by the other tests' skip rules
		}
		c := New(Options{CodexCommand: cmd, StageDir: checktest.StageDir(t), Timeout: 300 * time.Millisecond})
		for name, content := range contents {
			for _, kind := range []Kind{KindCodex, KindJSON} {
				r := c.Check(context.Background(), kind, content)
				if piece := checktest.Leaks(r.Summary+"\n"+r.Skipped, canary); piece != "" {
					t.Errorf("%s, %s, %s: result carries %q of the content: %+v", cname, name, kind, piece, r)
				}
			}
		}
	}
}
