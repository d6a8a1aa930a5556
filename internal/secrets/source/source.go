// Package source fetches secret values from where they are kept: 1Password
// through its Go SDK, or a local directory laid out like a vault (for the demo,
// offline use and tests).
//
// A Source reads; some can also put a value back where they read it
// (Writer), which is how a file its consumer refreshed reaches the other
// workspaces. A Source never writes local files and never logs values: what
// it returns goes straight to the engine, which stages, checks and installs
// it.
// Errors carry a Class so that callers can decide how soon to try again
// without parsing strings, and their messages never contain a secret value.
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Ref is a parsed secret reference of the form op://vault/item[/section]/field.
// Field may name a text field or a file attached to the item. A reference with
// only a vault and an item (op://vault/item) names a Document item: its file.
type Ref struct {
	Vault   string
	Item    string
	Section string // optional
	Field   string // empty for a Document item
}

// ParseRef parses an op:// reference. It accepts exactly two, three or four
// non-empty path segments after the scheme.
func ParseRef(s string) (Ref, error) {
	const scheme = "op://"
	if !strings.HasPrefix(s, scheme) {
		return Ref{}, fmt.Errorf("reference %q must start with %q (for example op://egoengine/Codex Auth/auth.json)", s, scheme)
	}
	parts := strings.Split(strings.TrimPrefix(s, scheme), "/")
	for _, p := range parts {
		if p == "" {
			return Ref{}, fmt.Errorf("reference %q has an empty segment; write op://vault/item/field, op://vault/item/section/field or op://vault/item", s)
		}
		if p == "." || p == ".." {
			return Ref{}, fmt.Errorf("reference %q has a %q segment; vault, item, section and field names cannot be \".\" or \"..\"", s, p)
		}
	}
	switch len(parts) {
	case 2:
		return Ref{Vault: parts[0], Item: parts[1]}, nil
	case 3:
		return Ref{Vault: parts[0], Item: parts[1], Field: parts[2]}, nil
	case 4:
		return Ref{Vault: parts[0], Item: parts[1], Section: parts[2], Field: parts[3]}, nil
	default:
		return Ref{}, fmt.Errorf("reference %q has %d segments; write op://vault/item/field, op://vault/item/section/field or op://vault/item", s, len(parts))
	}
}

// IsDocument reports whether r names a whole Document item rather than a field.
func (r Ref) IsDocument() bool { return r.Field == "" }

// String returns the reference in op:// form. References name where a secret
// is kept, not the secret, so they are safe to log.
func (r Ref) String() string {
	parts := []string{r.Vault, r.Item}
	if r.Section != "" {
		parts = append(parts, r.Section)
	}
	if r.Field != "" {
		parts = append(parts, r.Field)
	}
	return "op://" + strings.Join(parts, "/")
}

// Result is the outcome of fetching one reference.
type Result struct {
	Ref   Ref
	Value []byte // the secret; nil when Err is set or Unchanged
	Err   error  // a *Error when the source could classify it
	// Version names the item the value came from, at its version, when
	// the source can tell (see Versioned); "" otherwise.
	Version string
	// Unchanged: the item is still at the version the caller said it had
	// (Known), so the value was not read. Only a Versioned source sets it.
	Unchanged bool
}

// Document is one Document item found by Documents.
type Document struct {
	Title     string // the item's title, for example "home/.ssh/config"
	Content   []byte // nil when Err is set or Unchanged
	Err       error  // set when the item was listed but its file could not be read
	Version   string // as in Result
	Unchanged bool   // as in Result
}

// Known maps a reference (in op:// form) to the version of the item its
// installed copy came from: what the caller already has, and need not be
// sent again while the item stays at that version.
type Known map[string]string

// Versioned is a Source that can tell an item's version, and so skip
// reading files and Documents whose item has not changed since the caller
// installed them: each costs requests of its own (1Password: two), while
// the item's version comes with the reads a pass makes anyway. A value
// that is Unchanged comes back without content; everything else comes back
// as from Fetch and Documents, with its Version.
type Versioned interface {
	FetchKnown(ctx context.Context, refs []Ref, known Known) []Result
	DocumentsKnown(ctx context.Context, vault, prefix string, known Known) ([]Document, error)
}

// Source is where secret values come from.
type Source interface {
	// Fetch resolves every reference, in as few backend calls as the source
	// allows (1Password: one batched call for all field references). It returns
	// one Result per reference, in the same order. An error that affects the
	// whole batch (no token, service unreachable) is repeated in every Result.
	Fetch(ctx context.Context, refs []Ref) []Result

	// Documents returns every Document item of vault whose title starts with
	// prefix, with its content. An error here means the listing itself failed.
	Documents(ctx context.Context, vault, prefix string) ([]Document, error)

	// Calls reports how many backend requests this source has made so far,
	// so that status can show what a pass cost against the rate limits.
	Calls() int
}

// FetchKnown fetches refs from src, telling it what the caller has when src
// is Versioned; any other source sends every value, without versions.
func FetchKnown(ctx context.Context, src Source, refs []Ref, known Known) []Result {
	if v, ok := src.(Versioned); ok {
		return v.FetchKnown(ctx, refs, known)
	}
	return src.Fetch(ctx, refs)
}

// DocumentsKnown is Documents, with known, as FetchKnown is Fetch.
func DocumentsKnown(ctx context.Context, src Source, vault, prefix string, known Known) ([]Document, error) {
	if v, ok := src.(Versioned); ok {
		return v.DocumentsKnown(ctx, vault, prefix, known)
	}
	return src.Documents(ctx, vault, prefix)
}

// Writer is a Source that can replace a value it fetched.
type Writer interface {
	// Replace writes value where ref points (a text field, a file attached
	// to the item, or a Document's file), but only when ref still holds old:
	// it reads the item afresh right before writing. When ref holds
	// something else, nothing is written and the error is a *Conflict with
	// what ref holds now. A token that may read but not write gives an
	// *Error of ClassReadOnly.
	Replace(ctx context.Context, ref Ref, old, value []byte) error
}

// Leaser is a Source that keeps a small record beside an item, which every
// workspace can read and write: how workspaces agree, through the source
// alone, which one of them renews a login they share (package renew). The
// record is text; the source neither reads nor checks it, and it holds
// nothing secret.
type Leaser interface {
	// Current returns the value at ref read afresh, whatever the pass read
	// before: agreeing on a lease takes seconds, and the value may have
	// changed meanwhile.
	Current(ctx context.Context, ref Ref) ([]byte, error)
	// ReadLease returns the record kept for ref's item, read afresh; ""
	// when there is none.
	ReadLease(ctx context.Context, ref Ref) (string, error)
	// WriteLease replaces that record.
	WriteLease(ctx context.Context, ref Ref, record string) error
}

// Refresher is a Source whose process can also renew a login at its token
// endpoint (package renew): the helper egoagent-op, which has an HTTP client
// anyway, so that egoagent itself links none. The error is a
// *renew.CallError, which says whether the refresh token may be spent.
type Refresher interface {
	RefreshLogin(ctx context.Context, current []byte) ([]byte, error)
}

// Conflict says that a value changed in the source since it was read, so a
// Replace did not write. Current is what the source holds now; like every
// value, it never appears in the message.
type Conflict struct {
	Ref     Ref
	Current []byte
}

func (c *Conflict) Error() string {
	return c.Ref.String() + ": changed in the source since egoagent read it; nothing was written"
}

// Class says what kind of failure an Error is, which decides how soon it is
// worth trying again. It is the one vocabulary of failure classes: the
// source's are here; a pass adds its own (package engine: local, check,
// busy, refused, stopped), and the state file and the daemon's planner use
// the same type. The strings are what state.json holds, so they never change.
type Class string

const (
	ClassMissingToken Class = "missing-token" // OP_SERVICE_ACCOUNT_TOKEN unset: fix the environment
	ClassInvalidToken Class = "invalid-token" // token rejected or malformed: replace it
	ClassUnreachable  Class = "unreachable"   // network or service down: try again soon
	ClassRateLimited  Class = "rate-limited"  // quota used up: wait long
	ClassNotFound     Class = "not-found"     // vault, item or field missing: fix 1Password or the config
	ClassReadOnly     Class = "read-only"     // the token may read but not write: grant write access or turn write-back off
	ClassOther        Class = "other"
)

// Error is a classified failure to fetch. Msg says what happened and what to
// do; it must never contain a secret value or the token.
type Error struct {
	Class Class
	Ref   string // the reference concerned, if any
	Msg   string
	Err   error // the underlying error, already free of secrets
}

func (e *Error) Error() string {
	if e.Ref != "" {
		return e.Ref + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the Class of err, or ClassOther when err is not a *Error.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassOther
}
