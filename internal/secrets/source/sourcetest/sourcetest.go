// Package sourcetest provides a scripted stand-in for source.Source, for
// tests that need failures on demand (1Password cannot be reached here) and
// an exact count of the calls a caller makes.
package sourcetest

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Scripted answers from an in-memory map of references to values. Set Err to
// make every call fail with it. Safe for concurrent use.
type Scripted struct {
	mu     sync.Mutex
	values map[string][]byte
	extra  []extraDoc
	err    error
	calls  int

	writeErr error  // see FailWrites
	before   func() // see BeforeReplace
	writes   int

	// versions counts the changes to each reference, for Versioned.
	versions map[string]int
	sent     int
}

// extraDoc is a Document listed besides those in values: 1Password allows
// two items with one title, which a map cannot hold.
type extraDoc struct {
	vault string
	doc   source.Document
}

// New returns a Scripted source holding values, keyed by op:// reference.
func New(values map[string]string) *Scripted {
	s := &Scripted{values: map[string][]byte{}, versions: map[string]int{}}
	for k, v := range values {
		s.values[k] = []byte(v)
	}
	return s
}

// Set changes the value behind ref.
func (s *Scripted) Set(ref, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[ref] = []byte(value)
	s.versions[ref]++
}

// AddDocument lists one more Document in vault, even when one with the
// same title exists already.
func (s *Scripted) AddDocument(vault, title, content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = append(s.extra, extraDoc{vault, source.Document{Title: title, Content: []byte(content)}})
}

// Fail makes every later call fail with a *source.Error of class c; an
// empty class makes calls succeed again.
func (s *Scripted) Fail(c source.Class) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = nil
	if c != "" {
		s.err = &source.Error{Class: c, Msg: "scripted failure: " + string(c)}
	}
}

func (s *Scripted) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *Scripted) Fetch(_ context.Context, refs []source.Ref) []source.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++ // one batched call, as 1Password's ResolveAll
	out := make([]source.Result, len(refs))
	for i, r := range refs {
		out[i].Ref = r
		switch v, ok := s.values[r.String()]; {
		case s.err != nil:
			out[i].Err = s.err
		case !ok:
			out[i].Err = &source.Error{Class: source.ClassNotFound, Ref: r.String(), Msg: "not in the scripted source"}
		default:
			out[i].Value = append([]byte(nil), v...)
		}
	}
	return out
}

func (s *Scripted) Documents(_ context.Context, vault, prefix string) ([]source.Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	var docs []source.Document
	base := "op://" + vault + "/"
	for k, v := range s.values {
		if title, ok := strings.CutPrefix(k, base); ok && strings.HasPrefix(title, prefix) {
			docs = append(docs, source.Document{Title: title, Content: append([]byte(nil), v...)})
		}
	}
	for _, x := range s.extra {
		if x.vault == vault && strings.HasPrefix(x.doc.Title, prefix) {
			docs = append(docs, source.Document{Title: x.doc.Title, Content: append([]byte(nil), x.doc.Content...)})
		}
	}
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].Title < docs[j].Title })
	return docs, nil
}
