// Package secretfile puts secret files in place so that a reader never sees
// a half-written file, a crash never leaves one, and nothing is written
// through a symlink or outside the user's home.
//
// The order in Write is the whole point: a temporary file in the destination's
// own folder (rename is atomic only within one filesystem), its mode set
// before any byte is written, the data synced, the rename, then the folder
// synced so that the rename itself survives a power cut.
//
// Reading is the other half: Settled waits until a file its own program
// rewrites in place has stopped changing, so that nobody judges it half
// written.
package secretfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Errors callers may test for with errors.Is.
var (
	ErrSymlink     = errors.New("is a symbolic link")
	ErrOutsideHome = errors.New("is outside the home")
	ErrNotRegular  = errors.New("is not a regular file")
)

// tempPrefix marks our temporary files so that leftovers of a killed process
// can be recognised and removed.
const tempPrefix = ".egoagent-tmp-"

// Write atomically replaces the file at path with data and mode. path must be
// absolute and inside home; missing parent folders are created with mode
// 0700. Neither path nor any folder between home and path may be a symlink.
func Write(home, path string, data []byte, mode fs.FileMode) error {
	if err := prepareDir(home, path); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil {
		if err := regular(path, fi); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot inspect %s: %w", path, err)
	}
	return Replace(path, data, mode)
}

// Replace is the atomic replacement on its own, for files egoagent owns
// outright (its state file): a temporary file beside path, mode, data,
// fsync, rename, fsync of the folder. It applies no home or symlink policy.
func Replace(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	removeLeftovers(dir, filepath.Base(path))

	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Mode first: the file must never be readable by others, not even empty.
	if err := f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("cannot set mode of %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot move the new file into place at %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

// Read returns the content of the installed file at path. A missing file
// gives (nil, false, nil); a symlink or a non-regular file is an error,
// because egoagent never follows or replaces what it did not put there.
func Read(path string) (data []byte, exists bool, err error) {
	if exists, err = Exists(path); !exists || err != nil {
		return nil, exists, err
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, true, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return data, true, nil
}

// Exists reports whether an installed file is at path, without reading
// it. A symlink or a non-regular file is an error, as in Read.
func Exists(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot inspect %s: %w", path, err)
	}
	return true, regular(path, fi)
}

// Same reports whether the file at path holds exactly data with mode, so
// that an unchanged secret causes no write at all. It compares a block at
// a time: the secret is already in memory once, and a large unchanged file
// must not be held a second time just to find that nothing changed.
func Same(path string, data []byte, mode fs.FileMode) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != mode.Perm() || fi.Size() != int64(len(data)) {
		return false
	}
	buf := make([]byte, min(len(data), 64<<10)+1)
	rest := data
	for {
		n, err := io.ReadFull(f, buf[:min(len(buf), len(rest)+1)])
		if n > len(rest) || !bytes.Equal(buf[:n], rest[:n]) {
			return false // longer than data, or different
		}
		rest = rest[n:]
		if err != nil {
			// EOF exactly where data ends means equal; a read error means
			// we cannot tell, and rewriting is the safe answer.
			return len(rest) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
		}
	}
}

func regular(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s %w; egoagent does not write through links: remove the link or change the configured path", path, ErrSymlink)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s %w; remove it or change the configured path", path, ErrNotRegular)
	}
	return nil
}

// prepareDir checks that path lies inside home with no symlink on the way,
// creating missing folders 0700.
func prepareDir(home, path string) error {
	if !filepath.IsAbs(path) || !filepath.IsAbs(home) {
		return fmt.Errorf("%s: paths must be absolute", path)
	}
	home, path = filepath.Clean(home), filepath.Clean(path)
	rel, err := filepath.Rel(home, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s %w %s; secret files must live inside it", path, ErrOutsideHome, home)
	}
	dir := home
	parts := strings.Split(filepath.Dir(rel), string(filepath.Separator))
	for _, part := range parts {
		if part == "." {
			continue
		}
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cannot create folder %s: %w", dir, err)
			}
			// Mkdir is subject to the umask; the contract says 0700 exactly.
			if err := os.Chmod(dir, 0o700); err != nil {
				return fmt.Errorf("cannot set mode of folder %s: %w", dir, err)
			}
		case err != nil:
			return fmt.Errorf("cannot inspect folder %s: %w", dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("folder %s %w; egoagent does not write through links: make it a real folder or change the configured path", dir, ErrSymlink)
		case !fi.IsDir():
			return fmt.Errorf("%s is in the way: it should be a folder", dir)
		}
	}
	return nil
}

// removeLeftovers deletes temporary files that a killed egoagent left beside
// base. Passes never overlap (the engine holds a lock), so any such file is
// an orphan.
func removeLeftovers(dir, base string) {
	matches, _ := filepath.Glob(filepath.Join(dir, tempPrefix+globEscape(base)+"-*"))
	for _, m := range matches {
		os.Remove(m)
	}
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open folder %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync folder %s: %w", dir, err)
	}
	return nil
}
