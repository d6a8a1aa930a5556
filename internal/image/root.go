package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinkHops bounds symlink chains, as the kernel does (ELOOP after 40).
const maxLinkHops = 40

// root maps paths as the image sees them ("/etc/passwd") onto the host
// filesystem under a prefix, so that the same code runs in a container
// (prefix "/") and on a fixture tree in a test.
type root string

func newRoot(prefix string) (root, error) {
	if prefix == "" {
		prefix = "/"
	}
	abs, err := filepath.Abs(prefix)
	if err != nil {
		return "", fmt.Errorf("root %q: %w", prefix, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("root %q: %w", prefix, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("root %q is not a folder", prefix)
	}
	return root(abs), nil
}

// host returns the host path of an in-image path.
func (r root) host(p string) string {
	return filepath.Join(string(r), filepath.FromSlash(path.Clean("/"+p)))
}

// resolve follows every symlink in p the way the kernel would inside a
// chroot at r, and returns the in-image path of what p names. An absolute
// link target starts again at the image's root, never at the host's.
func (r root) resolve(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := "/"
	hops := 0
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, comp)
		fi, err := os.Lstat(r.host(next))
		if err != nil {
			return "", fmt.Errorf("%s: %w", next, unwrapPathError(err))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return "", fmt.Errorf("%s: not a folder", next)
			}
			cur = next
			continue
		}
		hops++
		if hops > maxLinkHops {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(r.host(next))
		if err != nil {
			return "", fmt.Errorf("%s: %w", next, unwrapPathError(err))
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
	}
	return cur, nil
}

// stat resolves p inside the root and stats what it names.
func (r root) stat(p string) (string, fs.FileInfo, error) {
	real, err := r.resolve(p)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Lstat(r.host(real))
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", real, unwrapPathError(err))
	}
	return real, fi, nil
}

// exists says whether p resolves to something inside the root.
func (r root) exists(p string) bool {
	_, _, err := r.stat(p)
	return err == nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
