package secretfile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteCreatesFileAndFolders(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, ".codex", "deep", "auth.json")
	if err := Write(home, path, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != `{"a":1}` {
		t.Fatalf("content = %q, %v", got, err)
	}
	assertMode(t, path, 0o600)
	assertMode(t, filepath.Join(home, ".codex"), 0o700|os.ModeDir)
	assertMode(t, filepath.Join(home, ".codex", "deep"), 0o700|os.ModeDir)
}

func TestWriteSetsModeOnReplace(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "token")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(home, path, []byte("new"), 0o400); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o400)
	// A read-only file is still replaceable: rename needs the folder, not the file.
	if err := Write(home, path, []byte("newer"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
}

func TestWriteRefusesSymlinks(t *testing.T) {
	home := t.TempDir()
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o600)

	// The destination itself is a link.
	link := filepath.Join(home, "auth.json")
	os.Symlink(victim, link)
	if err := Write(home, link, []byte("x"), 0o600); !errors.Is(err, ErrSymlink) {
		t.Fatalf("write through file link: err = %v, want ErrSymlink", err)
	}
	// A folder on the way is a link.
	os.Symlink(outside, filepath.Join(home, ".codex"))
	if err := Write(home, filepath.Join(home, ".codex", "victim"), []byte("x"), 0o600); !errors.Is(err, ErrSymlink) {
		t.Fatalf("write through folder link: err = %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Fatalf("victim changed to %q", b)
	}
	if _, _, err := Read(link); !errors.Is(err, ErrSymlink) {
		t.Fatalf("Read of a link: err = %v, want ErrSymlink", err)
	}
}

func TestWriteRefusesOutsideHome(t *testing.T) {
	home := t.TempDir()
	for _, p := range []string{filepath.Join(filepath.Dir(home), "elsewhere"), home, filepath.Join(home, "..", "x")} {
		if err := Write(home, p, []byte("x"), 0o600); !errors.Is(err, ErrOutsideHome) {
			t.Errorf("Write(%s): err = %v, want ErrOutsideHome", p, err)
		}
	}
}

func TestWriteRefusesFolderInTheWay(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "auth.json")
	os.Mkdir(path, 0o700)
	if err := Write(home, path, []byte("x"), 0o600); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("err = %v, want ErrNotRegular", err)
	}
}

func TestSame(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, "f")
	if Same(path, []byte("a"), 0o600) {
		t.Fatal("Same on a missing file")
	}
	Write(home, path, []byte("a"), 0o600)
	if !Same(path, []byte("a"), 0o600) {
		t.Fatal("not Same after Write")
	}
	if Same(path, []byte("b"), 0o600) || Same(path, []byte("a"), 0o400) {
		t.Fatal("Same ignores content or mode")
	}
}

func TestReadMissing(t *testing.T) {
	data, exists, err := Read(filepath.Join(t.TempDir(), "nope"))
	if data != nil || exists || err != nil {
		t.Fatalf("Read(missing) = %q, %v, %v", data, exists, err)
	}
}

// The crash test re-executes this test binary as a writer that replaces the
// file over and over, and kills it with SIGKILL at a random moment. Whatever
// the moment, the destination must hold one version in full, with its mode.
const crashChildEnv = "SECRETFILE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dest := os.Getenv(crashChildEnv); dest != "" {
		crashChild(dest)
		return
	}
	os.Exit(m.Run())
}

// versions are large enough that a write spans many syscalls.
func crashVersions() [2][]byte {
	return [2][]byte{
		bytes.Repeat([]byte("A"), 512<<10),
		bytes.Repeat([]byte("b"), 300<<10),
	}
}

func crashChild(dest string) {
	v := crashVersions()
	home := filepath.Dir(filepath.Dir(dest))
	os.Stdout.WriteString("ready\n")
	for i := 0; ; i++ {
		if err := Write(home, dest, v[i%2], 0o600); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
	}
}

func TestCrashSafety(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 40
	}
	home := t.TempDir()
	dest := filepath.Join(home, "sub", "secret")
	v := crashVersions()
	if err := Write(home, dest, v[0], 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < runs; i++ {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dest)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child runs its loop, then kill it somewhere inside a write.
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("child did not start: %v", err)
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: child ended on its own (%v), not by the kill", i, err)
		}

		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if !bytes.Equal(got, v[0]) && !bytes.Equal(got, v[1]) {
			t.Fatalf("run %d: torn file: %d bytes, starts %q", i, len(got), got[:min(8, len(got))])
		}
		assertMode(t, dest, 0o600)
	}
	// Leftover temporary files from the kills are cleared by the next write.
	if err := Write(home, dest, []byte("final"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dest))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("leftover temporary file %s", e.Name())
		}
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want 1", len(entries))
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModeDir | os.ModePerm); got != want {
		t.Fatalf("%s: mode %s (%s), want %s", path, got, strconv.FormatUint(uint64(got.Perm()), 8), want)
	}
}

// Same answers exactly, block boundaries included, and never blocks or
// follows a link.
func TestSameComparesExactly(t *testing.T) {
	dir := t.TempDir()
	block := 64 << 10
	data := make([]byte, 3*block+7)
	for i := range data {
		data[i] = byte(i * 31)
	}
	p := filepath.Join(dir, "f")
	write := func(b []byte, mode os.FileMode) {
		os.Remove(p)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	flip := func(i int) []byte {
		c := append([]byte(nil), data...)
		c[i] ^= 1
		return c
	}
	cases := []struct {
		name string
		file []byte
		mode os.FileMode
		want bool
	}{
		{"equal", data, 0o600, true},
		{"first byte differs", flip(0), 0o600, false},
		{"last byte of a block differs", flip(block - 1), 0o600, false},
		{"first byte of a block differs", flip(block), 0o600, false},
		{"last byte differs", flip(len(data) - 1), 0o600, false},
		{"shorter", data[:len(data)-1], 0o600, false},
		{"longer", append(append([]byte(nil), data...), 0), 0o600, false},
		{"other mode", data, 0o400, false},
	}
	for _, c := range cases {
		write(c.file, c.mode)
		if got := Same(p, data, 0o600); got != c.want {
			t.Errorf("%s: Same = %v", c.name, got)
		}
	}
	write(nil, 0o600)
	if !Same(p, nil, 0o600) || Same(p, []byte{0}, 0o600) {
		t.Error("empty file")
	}

	write(data, 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	if Same(link, data, 0o600) {
		t.Error("followed a symlink")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if Same(fifo, nil, 0o600) {
		t.Error("a FIFO is not a file")
	}
}
