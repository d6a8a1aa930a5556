package secretfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrUnsettled reports a file that kept changing for as long as Settled
// waited.
var ErrUnsettled = errors.New("kept changing while egoagent waited for it to settle")

// Settled reads the installed file at path once it has stopped changing:
// two reads quiet apart that agree on content, size, modification time and
// inode. A program that rewrites its own file in place (Codex truncates
// auth.json, then writes it) leaves it empty or half-written for a moment;
// a file judged in that moment would be replaced, or uploaded, on the
// strength of a state that was about to pass. After max it gives up with
// ErrUnsettled, and the caller judges the file another time.
func Settled(ctx context.Context, path string, quiet, max time.Duration) (data []byte, exists bool, err error) {
	deadline := time.Now().Add(max)
	prev, ok, err := snapshot(path)
	if !ok || err != nil {
		return nil, ok, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, true, ctx.Err()
		case <-time.After(quiet):
		}
		cur, ok, err := snapshot(path)
		if !ok || err != nil {
			return nil, ok, err
		}
		if cur.same(prev) {
			return cur.data, true, nil
		}
		if time.Now().After(deadline) {
			return nil, true, fmt.Errorf("%s %w (%s)", path, ErrUnsettled, max)
		}
		prev = cur
	}
}

type fileState struct {
	data  []byte
	size  int64
	mtime time.Time
	ino   uint64
}

func (a fileState) same(b fileState) bool {
	return a.size == b.size && a.mtime.Equal(b.mtime) && a.ino == b.ino && bytes.Equal(a.data, b.data)
}

func snapshot(path string) (fileState, bool, error) {
	data, exists, err := Read(path)
	if !exists || err != nil {
		return fileState{}, exists, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fileState{}, false, fmt.Errorf("cannot inspect %s: %w", path, err)
	}
	s := fileState{data: data, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s, true, nil
}
