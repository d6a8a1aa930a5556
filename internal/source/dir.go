package source

import (
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

func (d *Dir) read(r Ref) ([]byte, error) {
	parts := []string{d.Root, r.Vault, r.Item}
	if r.Section != "" {
		parts = append(parts, r.Section)
	}
	if r.Field != "" {
		parts = append(parts, r.Field)
	}
	p := filepath.Join(parts...)
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
