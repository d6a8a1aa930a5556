// Package engine runs one ingestion pass: fetch every configured secret from
// the source in one batch, check each candidate against a staged copy, apply
// the secret's policy, install what passed, and record the outcome in the
// state file.
//
// The rule it never breaks: a failed fetch, a failed check or a refused write
// leaves the installed file exactly as it was. The state then says since when
// the file is stale and why.
//
// Scheduling, watching and the control socket live in package daemon; this
// package knows nothing of time beyond "now".
package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/check"
	"github.com/veraticus/egoengine/internal/config"
	"github.com/veraticus/egoengine/internal/secretfile"
	"github.com/veraticus/egoengine/internal/source"
	"github.com/veraticus/egoengine/internal/status"
)

// Engine runs passes. Its fields are set once by the caller.
type Engine struct {
	Config   *config.Config
	Source   source.Source
	Checker  *check.Checker
	Home     string
	StateDir string
	Log      *zap.Logger
	Now      func() time.Time // defaults to time.Now
}

// Options narrow or steer one pass.
type Options struct {
	Trigger string   // why the pass runs: sync, start, schedule, refresh, watch
	Names   []string // only these secrets; empty means all
	Exclude []string // leave these out (they follow schedules of their own)
	Force   bool     // install the source's copy even where consumer-rewrites would keep the local file
}

// Outcome is what a pass did to one secret.
type Outcome struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Note    string `json:"note,omitempty"`
	Error   string `json:"error,omitempty"`
	Class   string `json:"error_class,omitempty"`
	Written bool   `json:"written"`
}

// Report is the result of a pass.
type Report struct {
	Outcomes []Outcome `json:"outcomes"`
	Calls    int       `json:"calls"`
}

// OK reports whether every secret the pass touched is usable and up to date.
func (r *Report) OK() bool {
	for _, o := range r.Outcomes {
		if !status.OK(o.State) {
			return false
		}
	}
	return true
}

// UsageError is returned for a request that cannot be carried out as asked
// (an unknown secret name); nothing was attempted.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// target is one file to keep in place, from a [[secret]] or a mirrored
// Document.
type target struct {
	name   string
	ref    source.Ref
	path   string
	mode   os.FileMode
	check  check.Kind
	policy config.Policy
	value  []byte
	err    error
	mirror bool
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Pass runs one ingestion pass. It holds the state folder's lock for its
// whole length, so passes never overlap, whoever starts them. An error means
// the pass could not run at all; per-secret failures are in the Report.
func (e *Engine) Pass(ctx context.Context, opts Options) (*Report, error) {
	if err := e.validNames(opts.Names); err != nil {
		return nil, err
	}
	if err := status.EnsureDir(e.StateDir); err != nil {
		return nil, err
	}
	unlock, err := Lock(ctx, e.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := status.Load(e.StateDir)
	if err != nil {
		return nil, err
	}
	fp, err := status.NewFingerprinter(e.StateDir)
	if err != nil {
		return nil, err
	}
	started := e.now()
	callsBefore := e.Source.Calls()

	targets, listed := e.targets(ctx, opts.Names, opts.Exclude, st)
	e.fetch(ctx, targets)

	report := &Report{}
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			// Stopped (SIGTERM, deadline): what is installed stays as it is,
			// and the secrets not reached keep their previous state.
			report.Outcomes = append(report.Outcomes, Outcome{Name: t.name, State: status.Pending, Class: "stopped", Error: "the pass stopped before reaching this secret: " + err.Error()})
			continue
		}
		prev := st.Find(t.name)
		var sec status.Secret
		if prev != nil {
			sec = *prev
		}
		o := e.apply(ctx, t, &sec, fp, opts.Force)
		if prev != nil {
			*prev = sec
		} else {
			st.Secrets = append(st.Secrets, sec)
		}
		report.Outcomes = append(report.Outcomes, o)
	}
	if len(opts.Names) == 0 && len(opts.Exclude) == 0 && ctx.Err() == nil {
		e.forget(st, targets, listed)
	}

	report.Calls = e.Source.Calls() - callsBefore
	st.LastPass = &status.Pass{
		Trigger: opts.Trigger, Started: started, Finished: e.now(),
		Calls: report.Calls, OK: report.OK(),
	}
	st.UpdatedAt = st.LastPass.Finished
	if err := status.Save(e.StateDir, st); err != nil {
		return report, err
	}
	return report, nil
}

func (e *Engine) validNames(names []string) error { return CheckNames(e.Config, names) }

// CheckNames reports an error for any name that is neither a configured
// secret nor under a mirror's prefix.
func CheckNames(cfg *config.Config, names []string) error {
	for _, n := range names {
		if slices.ContainsFunc(cfg.Secrets, func(s config.Secret) bool { return s.Name == n }) {
			continue
		}
		if slices.ContainsFunc(cfg.Mirrors, func(m config.Mirror) bool { return strings.HasPrefix(n, m.Prefix) }) {
			continue
		}
		var known []string
		for _, s := range cfg.Secrets {
			known = append(known, s.Name)
		}
		for _, m := range cfg.Mirrors {
			known = append(known, m.Prefix+"...")
		}
		return &UsageError{Msg: fmt.Sprintf("no secret named %q in %s; configured: %s", n, cfg.File, strings.Join(known, ", "))}
	}
	return nil
}

func wanted(names []string, name string) bool {
	return len(names) == 0 || slices.Contains(names, name)
}

// targets lists what this pass covers. Mirrored Documents come with their
// content already (listing them is how they are fetched). listed records,
// per mirror, whether its listing succeeded, so that forget only drops
// entries of mirrors that answered.
func (e *Engine) targets(ctx context.Context, names, exclude []string, st *status.State) ([]*target, map[string]bool) {
	var ts []*target
	for _, s := range e.Config.Secrets {
		if wanted(names, s.Name) && !slices.Contains(exclude, s.Name) {
			ts = append(ts, &target{name: s.Name, ref: s.Ref, path: s.Path, mode: s.Mode, check: s.Check, policy: s.Policy})
		}
	}
	listed := map[string]bool{}
	for _, m := range e.Config.Mirrors {
		key := mirrorKey(m)
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, m.Prefix) }) {
			continue
		}
		docs, err := e.Source.Documents(ctx, m.Vault, m.Prefix)
		if err != nil {
			// Every Document seen before goes stale with the listing's error;
			// with none seen before, one entry stands for the whole mirror.
			n := 0
			for _, sec := range st.Secrets {
				if strings.HasPrefix(sec.Ref, key) && wanted(names, sec.Name) {
					ts = append(ts, &target{name: sec.Name, path: sec.Path, mode: m.Mode, policy: config.PolicyReplace, err: err, mirror: true, ref: mustRef(sec.Ref)})
					n++
				}
			}
			if n == 0 {
				ts = append(ts, &target{name: m.Prefix + "*", ref: source.Ref{Vault: m.Vault, Item: m.Prefix + "*"}, err: err, mirror: true})
			}
			continue
		}
		listed[key] = true
		for _, d := range docs {
			if !wanted(names, d.Title) {
				continue
			}
			t := &target{name: d.Title, ref: source.Ref{Vault: m.Vault, Item: d.Title}, mode: m.Mode, check: "none", policy: config.PolicyReplace, value: d.Content, err: d.Err, mirror: true}
			t.path, err = config.InHome(e.Home, strings.TrimPrefix(d.Title, m.Prefix))
			if err != nil {
				t.value, t.err = nil, &source.Error{Class: source.ClassOther, Ref: t.ref.String(),
					Msg: fmt.Sprintf("refused: Document %q: %v; rename the item in 1Password", d.Title, err)}
				t.path = ""
			}
			ts = append(ts, t)
		}
	}
	return ts, listed
}

func mirrorKey(m config.Mirror) string { return "op://" + m.Vault + "/" + m.Prefix }

func mustRef(s string) source.Ref {
	r, _ := source.ParseRef(s)
	return r
}

// fetch resolves every configured secret in one call to the source.
func (e *Engine) fetch(ctx context.Context, ts []*target) {
	var refs []source.Ref
	var idx []int
	for i, t := range ts {
		if !t.mirror {
			refs = append(refs, t.ref)
			idx = append(idx, i)
		}
	}
	if len(refs) == 0 {
		return
	}
	for j, r := range e.Source.Fetch(ctx, refs) {
		t := ts[idx[j]]
		t.value, t.err = r.Value, r.Err
	}
}

// forget drops state entries for secrets that are no longer configured, and
// for mirrored Documents that their mirror, listed in this pass, no longer
// has. Their files stay: egoagent only ever replaces files, it never deletes
// a secret someone may still need.
func (e *Engine) forget(st *status.State, ts []*target, listed map[string]bool) {
	seen := map[string]bool{}
	for _, t := range ts {
		seen[t.name] = true
	}
	keep := st.Secrets[:0]
	for _, sec := range st.Secrets {
		if seen[sec.Name] || (e.isMirrored(sec) && !listed[e.mirrorOf(sec)]) {
			keep = append(keep, sec)
		}
	}
	st.Secrets = keep
}

func (e *Engine) isMirrored(sec status.Secret) bool { return e.mirrorOf(sec) != "" }

func (e *Engine) mirrorOf(sec status.Secret) string {
	for _, m := range e.Config.Mirrors {
		if k := mirrorKey(m); strings.HasPrefix(sec.Ref, k) {
			return k
		}
	}
	return ""
}

// apply decides and carries out what happens to one secret, updating sec.
func (e *Engine) apply(ctx context.Context, t *target, sec *status.Secret, fp *status.Fingerprinter, force bool) Outcome {
	now := e.now()
	sec.Name, sec.Ref, sec.Policy = t.name, t.ref.String(), string(t.policy)
	if t.path != "" {
		sec.Path = t.path
	}
	sec.Attempted = now
	out := func() Outcome {
		return Outcome{Name: sec.Name, State: sec.State, Note: sec.Note, Error: sec.Error, Class: sec.ErrorClass}
	}
	if t.err != nil {
		e.fail(sec, t.err, string(source.ClassOf(t.err)), now)
		return out()
	}
	sec.Fetched = now

	installed, exists, err := secretfile.Read(t.path)
	if err != nil {
		e.fail(sec, err, "local", now)
		return out()
	}
	if exists && secretfile.Same(t.path, t.value, t.mode) {
		// Nothing to do, and nothing written: the file already is the source's copy.
		e.succeed(sec, status.Fresh, "unchanged")
		sec.Written = fp.Sum(t.value)
		return out()
	}

	note := ""
	if t.policy == config.PolicyConsumerRewrites && exists && !bytes.Equal(installed, t.value) {
		if sec.Written == "" || fp.Sum(installed) != sec.Written {
			local := e.check(ctx, t.check, installed)
			switch {
			case local.OK && !force:
				e.succeed(sec, status.Kept, "kept the local file: it changed since egoagent wrote it and passes its check, so 1Password's copy was not installed (egoagent refresh --force "+sec.Name+" replaces it)")
				e.checked(sec, local, now)
				return out()
			case local.OK && force:
				note = "forced: replaced a local file that had changed since egoagent wrote it and still passed its check"
			default:
				note = "the local file fails its check (" + local.Summary + "), so 1Password's copy replaces it"
			}
		}
	}

	cand := e.check(ctx, t.check, t.value)
	if !cand.OK {
		e.fail(sec, fmt.Errorf("the fetched copy fails its check: %s; the file in place was left alone", cand.Summary), "check", now)
		return out()
	}
	if err := secretfile.Write(e.Home, t.path, t.value, t.mode); err != nil {
		e.fail(sec, err, "local", now)
		return out()
	}
	if note == "" {
		note = "written"
	}
	e.succeed(sec, status.Fresh, note)
	e.checked(sec, cand, now)
	sec.Changed = now
	sec.Written = fp.Sum(t.value)
	o := out()
	o.Written = true
	e.Log.Info("installed", zap.String("secret", sec.Name), zap.String("path", t.path), zap.String("note", note))
	return o
}

func (e *Engine) check(ctx context.Context, kind check.Kind, content []byte) check.Result {
	if kind == "" || kind == "none" {
		return check.Result{OK: true}
	}
	return e.Checker.Check(ctx, kind, content)
}

func (e *Engine) checked(sec *status.Secret, r check.Result, now time.Time) {
	if r.Summary == "" && r.Skipped == "" {
		return // no check configured
	}
	sec.Checked, sec.Check, sec.Expires = now, r.Summary, r.Expires
	if r.Skipped != "" {
		sec.Check = strings.TrimSpace(sec.Check + " (" + r.Skipped + ")")
	}
}

func (e *Engine) succeed(sec *status.Secret, state, note string) {
	sec.State, sec.Note = state, note
	sec.Error, sec.ErrorClass = "", ""
	sec.StaleSince, sec.RetryAt = time.Time{}, time.Time{}
	sec.Failures = 0
}

func (e *Engine) fail(sec *status.Secret, err error, class string, now time.Time) {
	sec.State = status.Stale
	if _, exists, _ := secretfile.Read(sec.Path); !exists {
		sec.State = status.Missing
	}
	if sec.StaleSince.IsZero() {
		sec.StaleSince = now
	}
	sec.Failures++
	sec.Note = ""
	sec.Error, sec.ErrorClass = err.Error(), class
	e.Log.Warn("not refreshed", zap.String("secret", sec.Name), zap.String("class", class), zap.String("error", sec.Error))
}
