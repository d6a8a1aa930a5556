package sourcetest

import (
	"context"
	"strconv"

	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Versioned is a Scripted source that keeps item versions, as 1Password
// does: every Set or Replace of a reference is a new version, and a value
// still at the version the caller knows comes back Unchanged, without its
// content. Sent counts the values it did send.
type Versioned struct{ *Scripted }

var _ source.Versioned = Versioned{}

// NewVersioned returns a Versioned source holding values.
func NewVersioned(values map[string]string) Versioned { return Versioned{New(values)} }

func (v Versioned) FetchKnown(ctx context.Context, refs []source.Ref, known source.Known) []source.Result {
	res := v.Fetch(ctx, refs)
	for i := range res {
		if res[i].Err == nil {
			res[i].Version, res[i].Unchanged = v.mark(refs[i].String(), known)
			if res[i].Unchanged {
				res[i].Value = nil
			}
		}
	}
	return res
}

func (v Versioned) DocumentsKnown(ctx context.Context, vault, prefix string, known source.Known) ([]source.Document, error) {
	docs, err := v.Documents(ctx, vault, prefix)
	for i := range docs {
		if docs[i].Err == nil {
			ref := source.Ref{Vault: vault, Item: docs[i].Title}.String()
			docs[i].Version, docs[i].Unchanged = v.mark(ref, known)
			if docs[i].Unchanged {
				docs[i].Content = nil
			}
		}
	}
	return docs, err
}

// mark returns ref's version, and whether known has it, counting a send
// when it does not.
func (v Versioned) mark(ref string, known source.Known) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ver := "v" + strconv.Itoa(v.versions[ref])
	if known[ref] == ver {
		return ver, true
	}
	v.sent++
	return ver, false
}

// Sent counts the values sent so far (those left Unchanged are not).
func (v Versioned) Sent() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sent
}
