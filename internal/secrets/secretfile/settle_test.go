package secretfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// slowWriter rewrites path the way Codex does, in place: truncate, then
// the new content a few bytes at a time, pausing between writes.
func slowWriter(t *testing.T, path string, content []byte, chunk int, pause time.Duration) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		defer f.Close()
		for i := 0; i < len(content); i += chunk {
			time.Sleep(pause)
			if _, err := f.Write(content[i:min(i+chunk, len(content))]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return done
}

func TestSettledWaitsForARewriteInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(`{"old": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	next := []byte(`{"tokens": {"refresh_token": "rt-2"}, "last_refresh": "2030-01-01T00:00:00Z"}`)
	done := slowWriter(t, path, next, 8, 20*time.Millisecond)

	// The quiet time is 25 pauses: a loaded machine (CI runs packages side
	// by side on two cores) can stall the writer for several.
	got, exists, err := Settled(context.Background(), path, 500*time.Millisecond, 5*time.Second)
	<-done
	if err != nil || !exists || string(got) != string(next) {
		t.Fatalf("Settled = %q, %v, %v; want the whole new content", got, exists, err)
	}
}

// A writer that never stops is never judged: the caller gets ErrUnsettled,
// not a snapshot of a half-written file.
func TestSettledGivesUpOnAFileThatKeepsChanging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 300) // 1.5 s of writing, longer than the wait
	done := slowWriter(t, path, big, 1, 5*time.Millisecond)
	defer func() { <-done }()

	got, exists, err := Settled(context.Background(), path, 250*time.Millisecond, 800*time.Millisecond)
	if !errors.Is(err, ErrUnsettled) || !exists || got != nil {
		t.Fatalf("Settled = %d bytes, %v, %v; want ErrUnsettled", len(got), exists, err)
	}
}

func TestSettledMissingFileAndSymlink(t *testing.T) {
	dir := t.TempDir()
	if _, exists, err := Settled(context.Background(), filepath.Join(dir, "none"), time.Millisecond, time.Second); exists || err != nil {
		t.Fatalf("missing: %v %v", exists, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Settled(context.Background(), link, time.Millisecond, time.Second); !errors.Is(err, ErrSymlink) {
		t.Fatalf("symlink: %v", err)
	}
}
