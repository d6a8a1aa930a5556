package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
)

// Dir is a Source backed by a local folder laid out like a vault: the
// reference op://vault/item/field reads the file <root>/vault/item/field,
// op://vault/item/section/field reads <root>/vault/item/section/field, and
// the Document item op://vault/item reads the file <root>/vault/item.
// Document titles are paths below <root>/vault, so the Document titled
// "home/.ssh/config" is <root>/vault/home/.ssh/config.
//
// It serves the README's demo, offline use and tests; it never makes a
// network call.
type Dir struct {
	Root  string
	calls atomic.Int64
}

var _ Writer = (*Dir)(nil)

// NewDir returns a Dir source reading below root.
func NewDir(root string) *Dir { return &Dir{Root: root} }

func (d *Dir) Calls() int { return int(d.calls.Load()) }

func (d *Dir) Fetch(ctx context.Context, refs []Ref) []Result {
	out := make([]Result, len(refs))
	for i, r := range refs {
		out[i] = Result{Ref: r}
		if err := ctx.Err(); err != nil {
			out[i].Err = &Error{Class: ClassUnreachable, Ref: r.String(), Msg: "gave up: " + err.Error(), Err: err}
			continue
		}
		d.calls.Add(1)
		out[i].Value, out[i].Err = d.read(r)
	}
	return out
}

// path is the file that r names.
func (d *Dir) path(r Ref) string {
	parts := []string{d.Root, r.Vault, r.Item}
	if r.Section != "" {
		parts = append(parts, r.Section)
	}
	if r.Field != "" {
		parts = append(parts, r.Field)
	}
	return filepath.Join(parts...)
}

func (d *Dir) read(r Ref) ([]byte, error) {
	p := d.path(r)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, &Error{Class: ClassNotFound, Ref: r.String(), Msg: fmt.Sprintf("not found in the directory source (no file %s); create it or fix the reference", p)}
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{Class: ClassOther, Ref: r.String(), Msg: fmt.Sprintf("cannot read %s: %v", p, err), Err: err}
	}
}

func (d *Dir) Documents(ctx context.Context, vault, prefix string) ([]Document, error) {
	d.calls.Add(1)
	base := filepath.Join(d.Root, vault)
	if _, err := os.Stat(base); err != nil {
		return nil, &Error{Class: ClassNotFound, Ref: "op://" + vault, Msg: fmt.Sprintf("vault not found in the directory source (no folder %s)", base)}
	}
	var docs []Document
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		title := filepath.ToSlash(rel)
		if !strings.HasPrefix(title, prefix) {
			return nil
		}
		doc := Document{Title: title}
		doc.Content, doc.Err = os.ReadFile(p)
		docs = append(docs, doc)
		return nil
	})
	if err != nil {
		return nil, &Error{Class: ClassOther, Ref: "op://" + vault, Msg: "cannot list the directory source: " + err.Error(), Err: err}
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].Title < docs[j].Title })
	return docs, nil
}

// Replace writes value into the file r names when it still holds old. The
// new content goes to a temporary file beside it, which then takes its
// place in one rename, so that a reader sees the old file or the new one,
// never a part; the file keeps its mode. Like 1Password's item versions,
// the comparison and the write are not one step: a writer in the gap
// between the two wins over this one.
func (d *Dir) Replace(ctx context.Context, r Ref, old, value []byte) error {
	if err := ctx.Err(); err != nil {
		return &Error{Class: ClassUnreachable, Ref: r.String(), Msg: "gave up: " + err.Error(), Err: err}
	}
	d.calls.Add(1)
	p := d.path(r)
	if rel, err := filepath.Rel(d.Root, p); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		// A Ref built from a Document's title, not parsed, may hold "..":
		// reads outside the folder are harmless, writes are not.
		return &Error{Class: ClassOther, Ref: r.String(), Msg: "the reference leads out of the directory source; nothing was written"}
	}
	cur, rerr := d.read(r)
	if rerr != nil {
		return rerr
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		// A rename would replace a link itself, not what it points to.
		return &Error{Class: ClassOther, Ref: r.String(), Msg: fmt.Sprintf("%s is not a regular file (a link?); write-back replaces regular files only", p)}
	}
	if !bytes.Equal(cur, old) {
		return &Conflict{Ref: r, Current: cur}
	}
	if err := writeAtomic(p, value, fi.Mode().Perm()); err != nil {
		class, hint := ClassOther, ""
		if errors.Is(err, fs.ErrPermission) {
			class, hint = ClassReadOnly, ": make the folder writable, or set write_back = false for this secret"
		}
		return &Error{Class: class, Ref: r.String(), Msg: fmt.Sprintf("cannot write %s: %v%s", p, err, hint), Err: err}
	}
	return nil
}

// writeAtomic replaces the file at p with value, through a temporary file
// in the same folder (a rename is atomic only within one file system).
func writeAtomic(p string, value []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".egoagent-*")
	if err != nil {
		return unwrapPath(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(value); err != nil {
		return unwrapPath(err)
	}
	if err = f.Chmod(mode); err != nil {
		return unwrapPath(err)
	}
	if err = f.Sync(); err != nil {
		return unwrapPath(err)
	}
	if err = f.Close(); err != nil {
		return unwrapPath(err)
	}
	return unwrapPath(os.Rename(f.Name(), p))
}

// unwrapPath drops the path from an fs error: callers name the file
// themselves, and the temporary name would only confuse.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
