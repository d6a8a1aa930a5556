// Package check decides whether a candidate secret file is fit to install.
//
// A check looks at the bytes a source returned before they replace anything on
// disk. The json kind asks whether the bytes parse; the codex kind reads a
// Codex auth.json (its credentials and token expiry) and then asks the real
// Codex CLI, `codex login status`, against a private staged copy.
//
// Files whose program renews them carry dates; Date and Compare (fresh.go)
// put two copies of such a file in order, so that the newer one wins.
//
// Nothing in this package returns, logs or keeps the content it is given, or
// any part of it: a Result holds only fixed phrases, times and counts. That is
// also why the output of child processes is never copied into a Result (Codex
// prints the tail of an API key when it reports one).
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind names a check. The zero value is not a valid kind; use ParseKind.
type Kind string

// The checks this package knows.
const (
	KindNone  Kind = "none"  // install without checking
	KindJSON  Kind = "json"  // any well-formed JSON value
	KindCodex Kind = "codex" // a Codex auth.json, verified with `codex login status`
)

var kinds = []Kind{KindNone, KindJSON, KindCodex}

// ParseKind turns a configured check name into a Kind. An empty name means
// KindNone, because a check is optional in the configuration.
func ParseKind(s string) (Kind, error) {
	if s == "" {
		return KindNone, nil
	}
	for _, k := range kinds {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = fmt.Sprintf("%q", string(k))
	}
	return "", fmt.Errorf("unknown check %q: valid checks are %s", s, strings.Join(names, ", "))
}

// Defaults for Options fields left zero. They are also the configuration's
// defaults for [check] (package config uses these, and
// docs/configuration.md states them), so they are declared here alone.
const (
	DefaultCodexCommand = "codex"
	DefaultTimeout      = 20 * time.Second
)

// Options configures a Checker. Zero fields take the defaults described.
type Options struct {
	// CodexCommand is the Codex CLI to run: a name looked up on PATH or a
	// path. Default DefaultCodexCommand.
	CodexCommand string
	// Timeout bounds one check, child process included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// StageDir is a private folder (created 0700 when missing) in which each
	// codex check makes its own staging folder, removed when the check ends.
	// Keep it off /tmp: Codex will not create its helper links under a
	// temporary directory and warns about it. No default: the state
	// folder's layout is not this package's to know (egoagent passes the
	// stage folder inside it); a codex check without one fails.
	StageDir string
	// Now tells the time for expiry decisions. Default time.Now.
	Now func() time.Time
}

// Checker runs checks. It holds no state between checks and is safe for
// concurrent use.
type Checker struct {
	opts Options
}

// New returns a Checker with opts, defaults filled in.
func New(opts Options) *Checker {
	if opts.CodexCommand == "" {
		opts.CodexCommand = DefaultCodexCommand
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Checker{opts: opts}
}

// Result is the outcome of one check. Every field is safe to show and to store:
// none holds any part of the content checked.
type Result struct {
	// OK is true when the candidate may be installed.
	OK bool
	// Summary says in a short line what was found, e.g.
	// "codex: logged in with ChatGPT, token expires 2026-12-01T10:00Z".
	Summary string
	// Expires is when the credentials in the file stop working, zero when
	// the file carries no expiry. It is set even when the check fails on it.
	Expires time.Time
	// Skipped is non-empty when part of the check could not run, and says
	// which part and why; OK then rests on the parts that did run.
	Skipped string
}

// Check examines content as a candidate for a file checked with kind. It never
// returns or stores the content or any part of it. It returns within the
// Checker's timeout (plus the moment it takes to reap a killed child).
func (c *Checker) Check(ctx context.Context, kind Kind, content []byte) Result {
	switch kind {
	case KindNone:
		return Result{OK: true, Summary: "no check"}
	case KindJSON:
		return checkJSON(content)
	case KindCodex:
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		return c.checkCodex(ctx, content)
	default:
		return Result{Summary: fmt.Sprintf("unknown check kind %q", string(kind))}
	}
}

// checkJSON accepts any single JSON value, not only objects: RFC 8259 allows
// any value at the top level, and a file that must have a particular shape
// deserves a kind of its own (as codex has), not a guess here.
func checkJSON(content []byte) Result {
	if err := validJSON(content); err != "" {
		return Result{Summary: "json: " + err}
	}
	return Result{OK: true, Summary: "json: well-formed"}
}

// validJSON returns "" for well-formed JSON, else a description that holds no
// byte of content. encoding/json's own messages quote the offending character,
// which may be a piece of a secret, so only the offset is kept.
func validJSON(content []byte) string {
	if len(strings.TrimSpace(string(content))) == 0 {
		return "file is empty"
	}
	var v any
	err := json.Unmarshal(content, &v)
	if err == nil {
		return ""
	}
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("not valid JSON (syntax error at byte %d of %d)", se.Offset, len(content))
	}
	return "not valid JSON"
}
