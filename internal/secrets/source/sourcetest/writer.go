package sourcetest

import (
	"bytes"
	"context"

	"github.com/veraticus/egoengine/internal/secrets/source"
)

var _ source.Writer = (*Scripted)(nil)

// Replace is source.Writer's compare and swap over the map. BeforeReplace,
// when set, runs first, outside the lock: a test puts another writer's
// copy there to lose the race on purpose.
func (s *Scripted) Replace(ctx context.Context, ref source.Ref, old, value []byte) error {
	if f := s.beforeReplace(); f != nil {
		f()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls += 2 // a fresh read, then the write
	if s.writeErr != nil {
		return s.writeErr
	}
	if s.err != nil {
		return s.err
	}
	cur, ok := s.values[ref.String()]
	if !ok {
		return &source.Error{Class: source.ClassNotFound, Ref: ref.String(), Msg: "not in the scripted source"}
	}
	if !bytes.Equal(cur, old) {
		return &source.Conflict{Ref: ref, Current: append([]byte(nil), cur...)}
	}
	s.values[ref.String()] = append([]byte(nil), value...)
	s.versions[ref.String()]++
	s.writes++
	return nil
}

// FailWrites makes every later Replace fail with a *source.Error of class
// c (ClassReadOnly: a token without write access); reads still work. An
// empty class lets writes through again.
func (s *Scripted) FailWrites(c source.Class) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = nil
	if c != "" {
		s.writeErr = &source.Error{Class: c, Msg: "scripted write failure: " + string(c)}
	}
}

// BeforeReplace sets a function that runs at the start of every Replace.
func (s *Scripted) BeforeReplace(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = f
}

// Writes counts the Replace calls that wrote.
func (s *Scripted) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Value returns what the source holds behind ref.
func (s *Scripted) Value(ref string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.values[ref]...)
}

func (s *Scripted) beforeReplace() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.before
}
