package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The rotation test runs in a child process, since Redirect takes over the
// process's stdout and stderr.
const rotateChildEnv = "EGOAGENT_TEST_ROTATE_LOG"

func TestMain(m *testing.M) {
	if p := os.Getenv(rotateChildEnv); p != "" {
		lf := &LogFile{Path: p, MaxSize: 1000}
		if err := lf.Redirect(); err != nil {
			panic(err)
		}
		// Write well past the cap, rotating as the daemon does after each pass.
		for i := 0; i < 50; i++ {
			fmt.Fprintf(os.Stderr, "line %02d %s\n", i, strings.Repeat("x", 90))
			if err := lf.RotateIfLarge(); err != nil {
				panic(err)
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLogFileStaysBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "egoagent.log")
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), rotateChildEnv+"="+p)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if len(cur) >= 1100 || len(old) < 1000 || len(old) > 1100 {
		t.Fatalf("sizes: current %d, previous %d; want both near the 1000-byte cap", len(cur), len(old))
	}
	if !bytes.Contains(cur, []byte("line 49")) {
		t.Fatal("the newest line is not in the current file")
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 2 {
		t.Fatalf("%d files: only the log and one old generation may exist", len(entries))
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
