package daemon

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LogFile is the daemon's log: its stdout and stderr, and those of the
// processes its passes start (the 1Password helper, checks), which inherit
// them. A workspace lives for weeks, so the
// file is rotated once it passes MaxSize, keeping one old generation:
// at most about twice MaxSize on disk.
type LogFile struct {
	Path    string
	MaxSize int64
}

// DefaultLogSize is where the log is rotated.
const DefaultLogSize = 4 << 20

// RotateIfLarge moves the log to Path+".1" when it is too large and points
// this process's stdout and stderr at a fresh file.
func (l *LogFile) RotateIfLarge() error {
	fi, err := os.Stat(l.Path)
	if err != nil || fi.Size() < l.MaxSize {
		return nil
	}
	if err := os.Rename(l.Path, l.Path+".1"); err != nil {
		return err
	}
	return l.Redirect()
}

// Redirect opens the log (appending, 0600) and makes it this process's
// stdout and stderr, so that the logger and child processes write there.
func (l *LogFile) Redirect() error {
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the log file %s: %w", l.Path, err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("cannot redirect output to %s: %w", l.Path, err)
		}
	}
	return nil
}
