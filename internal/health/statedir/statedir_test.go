package statedir

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A helper process for the lock tests: it takes the lock named in
// STATEDIR_HOLD, says so, and waits to be killed.
func TestMain(m *testing.M) {
	if which := os.Getenv("STATEDIR_HOLD"); which != "" {
		dir := os.Getenv("STATEDIR_DIR")
		var err error
		if which == "daemon" {
			_, err = LockDaemon(dir)
		} else {
			_, err = LockPass(context.Background(), dir)
		}
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// hold starts a process that holds the lock which ("pass" or "daemon") in
// dir, and returns a function that kills it the way Docker kills a
// container: SIGKILL, no chance to clean up.
func hold(t *testing.T, dir, which string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STATEDIR_HOLD="+which, "STATEDIR_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "held\n" {
		cmd.Process.Kill()
		t.Fatalf("the holder did not take the %s lock: %q", which, line)
	}
	kill = func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(kill)
	return kill
}

func TestOneDaemonPerFolderAndAliveOnlyWhileItLives(t *testing.T) {
	dir := t.TempDir()
	if DaemonAlive(dir) {
		t.Fatal("a daemon is alive in a new folder")
	}
	kill := hold(t, dir, "daemon")
	if !DaemonAlive(dir) {
		t.Fatal("the holder of the daemon lock is not seen as alive")
	}
	if _, err := LockDaemon(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("a second daemon took the lock: %v", err)
	}
	kill()
	if DaemonAlive(dir) {
		t.Fatal("a killed daemon is still seen as alive")
	}
	unlock, err := LockDaemon(dir)
	if err != nil {
		t.Fatalf("the lock of a killed daemon cannot be taken: %v", err)
	}
	unlock()
}

func TestPassLockWaitsForItsHolderEvenOneKilled(t *testing.T) {
	dir := t.TempDir()
	kill := hold(t, dir, "pass")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := LockPass(ctx, dir); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held pass lock was taken: %v", err)
	}
	go func() { time.Sleep(100 * time.Millisecond); kill() }()
	unlock, err := LockPass(context.Background(), dir)
	if err != nil {
		t.Fatalf("the pass lock of a killed pass: %v", err)
	}
	unlock()
}

func TestEnsureTightensTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o755)
	if err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

func TestFingerprintsAreKeyedPerHome(t *testing.T) {
	a, _ := NewFingerprinter(t.TempDir())
	b, _ := NewFingerprinter(t.TempDir())
	if a.Sum([]byte("1234")) == b.Sum([]byte("1234")) {
		t.Fatal("two homes give the same fingerprint: a short secret could be confirmed from the state file")
	}
	dir := t.TempDir()
	a1, _ := NewFingerprinter(dir)
	a2, _ := NewFingerprinter(dir)
	if a1.Sum([]byte("x")) != a2.Sum([]byte("x")) {
		t.Fatal("the key is not kept")
	}
	if fi, _ := os.Stat(filepath.Join(dir, keyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file has mode %v", fi.Mode().Perm())
	}
}
