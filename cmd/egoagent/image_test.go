package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// egoagent runs the command as a real process (see TestMain) and returns
// its stdout, stderr and exit code.
func egoagent(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe, args...)
	c.Env = append(os.Environ(), asMainEnv+"=1")
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err = c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestImageVerifyReportsAndExitsOne(t *testing.T) {
	// An empty root keeps none of the image's promises.
	out, _, code := egoagent(t, "image", "verify", "--root", t.TempDir())
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	for _, want := range []string{"FAIL  user", "FAIL  /tmp", "FAIL  tool git", "checks failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestImageUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"image"},
		{"image", "bogus"},
		{"image", "verify", "extra"},
		{"image", "verify", "--root", "/nonexistent/egoengine-root"},
		{"image", "verify", "--no-such-flag"},
	} {
		_, stderr, code := egoagent(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr)
		}
		if strings.TrimSpace(stderr) == "" {
			t.Errorf("%v: no message on stderr", args)
		}
	}
}

func TestImageLinkHome(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) string {
		h := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := os.WriteFile(mk("/nix/store/aaaa-zshrc"), []byte("# zshrc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nix/store/aaaa-zshrc", mk("/nix/store/bbbb-home-manager-files/.zshrc")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mk("/nix/store/cccc-home-manager-path/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "home/joshsymonds"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"image", "link-home", "--root", root,
		"--home-files", "/nix/store/bbbb-home-manager-files", "--home-path", "/nix/store/cccc-home-manager-path"}

	out, stderr, code := egoagent(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if target, err := os.Readlink(filepath.Join(root, "home/joshsymonds/.zshrc")); err != nil || target != "/nix/store/bbbb-home-manager-files/.zshrc" {
		t.Errorf("~/.zshrc -> %q, %v", target, err)
	}
	if !strings.Contains(out, "2 linked") {
		t.Errorf("output:\n%s", out)
	}

	// A file of the user's where a link belongs: reported, kept, exit 1.
	zshrc := filepath.Join(root, "home/joshsymonds/.zshrc")
	if err := os.Remove(zshrc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zshrc, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = egoagent(t, args...)
	if code != exitFailed || !strings.Contains(out, "conflict  ~/.zshrc") {
		t.Errorf("exit %d, want %d with a conflict:\n%s", code, exitFailed, out)
	}
	if data, _ := os.ReadFile(zshrc); string(data) != "mine\n" {
		t.Errorf("user's .zshrc is now %q", data)
	}
}
