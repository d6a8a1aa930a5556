// Package engine runs one ingestion pass: fetch every configured secret from
// the source in one batch, check each candidate against a staged copy, apply
// the secret's policy, install what passed, and record the outcome in the
// state file.
//
// The rule it never breaks: a failed fetch, a failed check or a refused write
// leaves the installed file exactly as it was. The state then says since when
// the file is stale and why.
//
// Open builds the engine for a configuration: `egoagent sync` and each of
// the daemon's passes go through it. Scheduling, watching and the control
// socket live in package daemon; this package knows nothing of time beyond
// "now".
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
	"github.com/veraticus/egoengine/internal/secrets/source"
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

	// Holder names this workspace in a renewal lease (renew = true): its
	// host name.
	Holder string
}

// Options narrow or steer one pass.
type Options struct {
	Trigger status.Trigger // why the pass runs
	Names   []string       // only these secrets; empty means all
	Exclude []string       // leave these out (they follow schedules of their own)
	Force   bool           // install the source's copy even where consumer-rewrites would keep the local file
	// Wait is for a pass nothing follows up (sync, refresh without a
	// daemon): a file still being written is waited for, as long as the
	// daemon would leave it alone, and then judged, rather than left to a
	// later look that nobody will take.
	Wait bool
	// Renew lets the pass renew logins with renew = true that are due
	// (the daemon's looks near renewal); RenewNow renews them even before
	// they are due (refresh --renew).
	Renew, RenewNow bool
}

// Outcome is what a pass did to one secret.
type Outcome struct {
	Name    string             `json:"name"`
	State   status.SecretState `json:"state"`
	Path    string             `json:"path,omitempty"` // where the file is, or "" (refused); the daemon watches it
	Note    string             `json:"note,omitempty"`
	Error   string             `json:"error,omitempty"`
	Class   source.Class       `json:"error_class,omitempty"`
	Written bool               `json:"written"`
	// For dated files: when the installed copy's program renews it, and
	// how long its token was issued for (the daemon looks for a newer copy
	// around then).
	RefreshAt time.Time     `json:"refresh_at,omitzero"`
	TokenLife time.Duration `json:"token_life,omitempty"`
	// RenewAt is when egoagent renews the installed login itself (renew =
	// true), ahead of RefreshAt.
	RenewAt time.Time `json:"renew_at,omitzero"`
}

// Report is the result of a pass.
type Report struct {
	Outcomes []Outcome `json:"outcomes"`
	Calls    int       `json:"calls"`
	// Notices are things about the pass as a whole that a person should
	// know (a damaged state file set aside).
	Notices []string `json:"notices,omitempty"`
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

// The failure classes a pass adds to the source's (see source.Class).
const (
	// ClassRefused marks a target egoagent will not write as it stands: a
	// Document mapping onto a configured secret, onto egoagent's own files,
	// onto another Document's path, or out of the home.
	ClassRefused source.Class = "refused"
	// ClassBusy marks a file that was still being written when the pass
	// came to judge it: nothing was decided (state status.Settling), and
	// the daemon looks again shortly.
	ClassBusy source.Class = "busy"
	// ClassLocal marks a failure on this machine: reading or writing the
	// file, or a source that cannot do what the secret asks of it.
	ClassLocal source.Class = "local"
	// ClassCheck marks a copy that failed its check.
	ClassCheck source.Class = "check"
	// ClassStopped marks a secret the pass did not reach because it was
	// stopped (SIGTERM, a deadline); the daemon tries again with backoff.
	ClassStopped source.Class = "stopped"
)

// How long a pass waits for a file its program is rewriting: a quiet spell
// of settleQuiet, for at most settleMax. Codex writes auth.json in one go,
// in well under a millisecond. A file that fails its check is replaced only
// once nothing has touched it for brokenGrace: a writer may pause longer
// than settleQuiet between two writes, and a half-written file must not be
// taken for a broken one. Variables only so that tests can shorten them.
var (
	settleQuiet = 250 * time.Millisecond
	settleMax   = 5 * time.Second
	brokenGrace = 10 * time.Second
)

// settleWait bounds how long a pass with Options.Wait waits for a file that
// is still being written: the grace a broken file gets, and one more
// settling spell.
func settleWait() time.Duration { return brokenGrace + settleMax }

// settle follows up an outcome that left a file because it was still being
// written. A daemon's pass leaves it: the daemon looks again shortly. A pass
// with Options.Wait has nobody to look again, so it waits until the file
// has been left alone for brokenGrace (at most settleWait) and judges it
// then; if it is still being written after that, the outcome says to run
// egoagent again, and never that something will.
func (e *Engine) settle(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, opts Options, o Outcome) Outcome {
	if !opts.Wait {
		sec.Error += "; the daemon judges it once it has been left alone for " + brokenGrace.String()
		o.Error = sec.Error
		return o
	}
	end := time.Now().Add(settleWait())
	for o.Class == ClassBusy && ctx.Err() == nil && time.Now().Before(end) {
		wait := 50 * time.Millisecond
		if fi, err := os.Lstat(t.path); err == nil {
			wait = max(wait, time.Until(fi.ModTime().Add(brokenGrace)))
		}
		wait = min(wait, time.Until(end))
		e.Log.Info("file still being written; waiting before judging it", zap.String("secret", sec.Name), zap.Duration("wait", wait))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() == nil {
			o = e.apply(ctx, t, sec, fp, opts.Force)
		}
	}
	if o.Class == ClassBusy {
		sec.Error += fmt.Sprintf("; it was still being written after egoagent waited %s: run egoagent refresh %s once its program has stopped writing it", settleWait(), sec.Name)
		o.Error = sec.Error
	}
	return o
}

// untouchedFor reports, as an error for the outcome, a file changed less
// than grace ago. The clock is the real one, as the file's time is (the
// engine's Now may be a test's).
func untouchedFor(path string, grace time.Duration) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // gone: nothing left to protect
	}
	if age := time.Since(fi.ModTime()); age < grace {
		return fmt.Errorf("%s fails its check and changed %s ago: it may still be being written, so it is judged once it has been left alone for %s", path, age.Round(time.Millisecond), grace)
	}
	return nil
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
	// writeBack uploads the installed file when it is the newer copy.
	writeBack bool
	// renew: egoagent renews the login itself ahead of its program.
	renew bool
	value []byte
	err   error
	// version names the source's item at the version value came from, or
	// "" when the source cannot tell (see source.Versioned).
	version string
	mirror  bool
	// refused, when set, says why this target must not be written; it is
	// reported with state refused and never retried automatically.
	refused string
	// shadows names the mirrored Documents that also map to this secret's
	// path: the configured secret wins, and its outcome says so.
	shadows []string
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
	if err := statedir.Ensure(e.StateDir); err != nil {
		return nil, err
	}
	unlock, err := statedir.LockPass(ctx, e.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	fp, err := statedir.NewFingerprinter(e.StateDir)
	if err != nil {
		return nil, err
	}

	report := &Report{}
	st, err := status.Load(e.StateDir)
	var damaged *status.DamagedError
	if errors.As(err, &damaged) {
		// A damaged record must not stop secrets from arriving. Without it
		// the pass knows no fingerprints, so consumer-rewrites keeps any
		// local file that passes its check: the safe side.
		moved, merr := status.MoveAside(damaged)
		if merr != nil {
			return nil, merr
		}
		st, err = &status.State{}, nil
		report.Notices = append(report.Notices, fmt.Sprintf("the state file was damaged (%v); it was moved to %s and this pass started from an empty state", damaged.Err, moved))
		e.Log.Warn("state file damaged; starting afresh", zap.String("moved_to", moved), zap.Error(damaged.Err))
	}
	if err != nil {
		return nil, err
	}
	if err := status.CheckHome(st, e.StateDir, e.Home); err != nil {
		return nil, err
	}
	st.Home = status.HomeID(e.Home)
	started := e.now()
	callsBefore := e.Source.Calls()

	have := e.have(st, fp, opts)
	targets, listed := e.targets(ctx, opts.Names, opts.Exclude, st, have)
	targets = e.claim(targets)
	e.fetch(ctx, targets, have)

	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			// Stopped (SIGTERM, deadline): what is installed stays as it is,
			// and the secrets not reached keep their previous state.
			report.Outcomes = append(report.Outcomes, Outcome{Name: t.name, State: status.Pending, Class: ClassStopped, Error: "the pass stopped before reaching this secret: " + err.Error()})
			continue
		}
		prev := st.Find(t.name)
		var sec status.Secret
		if prev != nil {
			sec = *prev
		}
		o := e.apply(ctx, t, &sec, fp, opts.Force)
		if o.Class == ClassBusy {
			o = e.settle(ctx, t, &sec, fp, opts, o)
		}
		if t.renew && (opts.Renew || opts.RenewNow) && o.State == status.Fresh && !o.Written && o.Error == "" && ctx.Err() == nil {
			o = e.renewLogin(ctx, t, &sec, fp, o, opts.RenewNow)
		}
		if t.renew {
			o.RenewAt = renew.At(o.RefreshAt, o.TokenLife)
		}
		// What the file looked like once judged, so that status can tell
		// when it has changed since.
		sec.File = nil
		if sec.Path != "" {
			sec.File = status.StampOf(sec.Path)
		}
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
func (e *Engine) targets(ctx context.Context, names, exclude []string, st *status.State, have *installed) ([]*target, map[string]bool) {
	var ts []*target
	for _, s := range e.Config.Secrets {
		if wanted(names, s.Name) && !slices.Contains(exclude, s.Name) {
			ts = append(ts, &target{name: s.Name, ref: s.Ref, path: s.Path, mode: s.Mode, check: s.Check, policy: s.Policy, writeBack: s.WriteBack, renew: s.Renew})
		}
	}
	listed := map[string]bool{}
	for _, m := range e.Config.Mirrors {
		key := mirrorKey(m)
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, m.Prefix) }) {
			continue
		}
		docs, err := source.DocumentsKnown(ctx, e.Source, m.Vault, m.Prefix, have.known)
		if err != nil {
			// Every Document seen before goes stale with the listing's error;
			// with none seen before, one entry stands for the whole mirror.
			n := 0
			for _, sec := range st.Secrets {
				if strings.HasPrefix(sec.Ref, key) && wanted(names, sec.Name) {
					// The title is the name; it can have any number of
					// segments, so the reference is rebuilt, not parsed.
					ts = append(ts, &target{name: sec.Name, path: sec.Path, mode: m.Mode, policy: config.PolicyReplace, err: err, mirror: true, ref: source.Ref{Vault: m.Vault, Item: sec.Name}})
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
			t := &target{name: d.Title, ref: source.Ref{Vault: m.Vault, Item: d.Title}, mode: m.Mode, check: check.KindNone, policy: config.PolicyReplace, mirror: true}
			// A Document left out as unchanged gets the installed copy.
			t.value, t.version, t.err = have.value(t.ref, d.Content, d.Version, d.Unchanged, d.Err)
			t.path, err = config.InHome(e.Home, strings.TrimPrefix(d.Title, m.Prefix))
			if err != nil {
				t.refused = fmt.Sprintf("Document %q in vault %q: %v; rename the item in 1Password", d.Title, m.Vault, err)
				t.path = ""
			}
			ts = append(ts, t)
		}
	}
	return ts, listed
}

// claim settles who may write each destination, before anything is
// fetched or written. A vault is input: its Document titles must not be
// able to overwrite a configured secret, egoagent's own files, or each
// other. So:
//   - a configured secret's path always belongs to that secret; a Document
//     mapping onto it is refused, and the secret's outcome names it;
//   - when several Documents map onto one path (the same title twice, or
//     two mirrors), none is written until only one does, since egoagent
//     cannot tell which is meant, and writing both would flip the file on
//     every pass;
//   - nothing lands in the state folder or on the configuration file
//     (apply checks that for every target, configured ones included).
//
// Same-named Documents become one target, so that the state keeps one
// entry per name.
func (e *Engine) claim(ts []*target) []*target {
	owner := map[string]*target{} // configured secret by path
	for _, t := range ts {
		if !t.mirror {
			owner[t.path] = t
		}
	}
	// Secrets outside this pass still own their paths.
	for _, s := range e.Config.Secrets {
		if owner[s.Path] == nil {
			owner[s.Path] = &target{name: s.Name}
		}
	}

	byPath := map[string][]*target{}
	var out []*target
	byName := map[string]*target{}
	for _, t := range ts {
		if !t.mirror {
			out = append(out, t)
			continue
		}
		if first := byName[t.name]; first != nil {
			// The same title listed twice (in one vault or two).
			first.refused = fmt.Sprintf("%d Documents are titled %q; none is installed until only one is: delete or rename the others in 1Password", countName(ts, t.name), t.name)
			first.value, first.err = nil, nil
			continue
		}
		byName[t.name] = t
		out = append(out, t)
		if t.path == "" || t.refused != "" {
			continue
		}
		if s := owner[t.path]; s != nil {
			t.refused = fmt.Sprintf("Document %q maps to %s, which secret %q owns; the configured secret wins: rename or delete the Document", t.name, t.path, s.name)
			s.shadows = append(s.shadows, t.name)
			continue
		}
		byPath[t.path] = append(byPath[t.path], t)
	}
	for p, same := range byPath {
		if len(same) < 2 {
			continue
		}
		var titles []string
		for _, t := range same {
			titles = append(titles, strconv.Quote(t.name))
		}
		for _, t := range same {
			t.refused = fmt.Sprintf("Documents %s all map to %s; none is installed until only one does: rename or delete the others", strings.Join(titles, ", "), p)
		}
	}
	for _, t := range out {
		if t.refused != "" {
			t.value, t.err, t.path = nil, nil, ""
		}
	}
	return out
}

func countName(ts []*target, name string) int {
	n := 0
	for _, t := range ts {
		if t.mirror && t.name == name {
			n++
		}
	}
	return n
}

// ownPath says why egoagent must never write path itself, or "".
func (e *Engine) ownPath(p string) string {
	p = filepath.Clean(p)
	if state := filepath.Clean(e.StateDir); config.Within(state, p) {
		return fmt.Sprintf("%s is inside egoagent's own state folder %s, which no secret may overwrite", p, state)
	}
	if e.Config.File != "" {
		if cf, err := filepath.Abs(e.Config.File); err == nil && cf == p {
			return fmt.Sprintf("%s is egoagent's configuration file, which no secret may overwrite", p)
		}
	}
	return ""
}

func mirrorKey(m config.Mirror) string { return "op://" + m.Vault + "/" + m.Prefix }

// fetch resolves every configured secret in one call to the source.
func (e *Engine) fetch(ctx context.Context, ts []*target, have *installed) {
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
	for j, r := range source.FetchKnown(ctx, e.Source, refs, have.known) {
		t := ts[idx[j]]
		t.value, t.version, t.err = have.value(t.ref, r.Value, r.Version, r.Unchanged, r.Err)
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
func (e *Engine) apply(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, force bool) Outcome {
	now := e.now()
	sec.Name, sec.Ref, sec.Policy = t.name, t.ref.String(), string(t.policy)
	if t.path != "" {
		sec.Path = t.path
	}
	sec.Attempted = now
	sec.Newer = ""
	out := func() Outcome {
		if len(t.shadows) > 0 {
			var titles []string
			for _, n := range t.shadows {
				titles = append(titles, strconv.Quote(n))
			}
			sec.Note = strings.TrimPrefix(sec.Note+"; ", "; ") + "Document " + strings.Join(titles, ", ") + " also maps to this path and was not installed"
		}
		e.date(t, sec)
		return Outcome{Name: sec.Name, State: sec.State, Path: sec.Path, Note: sec.Note, Error: sec.Error, Class: sec.ErrorClass, RefreshAt: sec.RefreshAt, TokenLife: sec.TokenLife}
	}
	if t.refused == "" && t.path != "" {
		t.refused = e.ownPath(t.path)
	}
	if t.refused != "" {
		e.refuse(sec, t.refused)
		return out()
	}
	if t.err != nil {
		e.fail(sec, t.err, source.ClassOf(t.err), now)
		return out()
	}
	sec.Fetched = now

	exists, err := secretfile.Exists(t.path)
	if err != nil {
		e.fail(sec, err, ClassLocal, now)
		return out()
	}
	if exists && secretfile.Same(t.path, t.value, t.mode) {
		// Nothing to write: the file already is the source's copy.
		e.unchanged(ctx, t, sec, fp, now)
		return out()
	}

	note := ""
	if t.policy == config.PolicyConsumerRewrites && exists {
		// Only this policy looks at the installed content, and only once it
		// has stopped changing: its program may be rewriting it right now.
		installed, _, err := secretfile.Settled(ctx, t.path, settleQuiet, settleMax)
		if errors.Is(err, secretfile.ErrUnsettled) {
			e.busy(sec, err)
			return out()
		}
		if err != nil {
			e.fail(sec, err, ClassLocal, now)
			return out()
		}
		if bytes.Equal(installed, t.value) {
			// It settled into the source's copy.
			e.unchanged(ctx, t, sec, fp, now)
			return out()
		}
		ours := sec.Written != "" && fp.Sum(installed) == sec.Written
		var done, undated bool
		note, done, undated = e.newest(ctx, t, sec, fp, installed, ours, force, now)
		if done {
			return out()
		}
		if undated && !ours {
			local := e.check(ctx, t.check, installed)
			switch {
			case local.OK && !force:
				e.succeed(sec, status.Kept, "kept the local file: it changed since egoagent wrote it and passes its check, so 1Password's copy was not installed (egoagent refresh --force "+sec.Name+" replaces it)")
				e.checked(sec, local, now)
				return out()
			case local.OK && force:
				note = "forced: replaced a local file that had changed since egoagent wrote it and still passed its check"
			default:
				// --force is a person's word that the file may go now.
				if err := untouchedFor(t.path, brokenGrace); err != nil && !force {
					e.busy(sec, err)
					return out()
				}
				note = "the local file fails its check (" + local.Summary + "), so 1Password's copy replaces it"
			}
		}
	}

	cand := e.check(ctx, t.check, t.value)
	if !cand.OK {
		e.fail(sec, fmt.Errorf("the fetched copy fails its check: %s; the file in place was left alone", cand.Summary), ClassCheck, now)
		return out()
	}
	if err := secretfile.Write(e.Home, t.path, t.value, t.mode); err != nil {
		e.fail(sec, err, ClassLocal, now)
		return out()
	}
	if note == "" {
		note = "written"
	}
	e.succeed(sec, status.Fresh, note)
	e.checked(sec, cand, now)
	sec.Changed = now
	sec.Written, sec.Version = fp.Sum(t.value), t.version
	sec.Verified = verified(t.check, sec.Written)
	o := out()
	o.Written = true
	e.Log.Info("installed", zap.String("secret", sec.Name), zap.String("path", t.path), zap.String("note", note))
	return o
}

// unchanged records an installed file that already is the source's copy
// t.value: fresh only if that copy passes its check (verify), and nothing
// written.
func (e *Engine) unchanged(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, now time.Time) {
	written := fp.Sum(t.value)
	if !e.verify(ctx, t, sec, written, now) {
		return
	}
	e.succeed(sec, status.Fresh, "unchanged")
	sec.Written, sec.Version = written, t.version
}

// verify reports whether the installed file, which is the source's copy
// t.value with fingerprint written, passes its check, and records a
// failure. The check runs once per content and kind: sec.Verified
// remembers the last that passed, so an unchanged file costs no check,
// while a check added to the configuration, or a file from an older
// egoagent, is judged at the next pass.
func (e *Engine) verify(ctx context.Context, t *target, sec *status.Secret, written string, now time.Time) bool {
	if t.check == "" || t.check == check.KindNone {
		return true
	}
	sum := verified(t.check, written)
	if sec.Verified == sum {
		return true
	}
	r := e.check(ctx, t.check, t.value)
	if !r.OK {
		e.fail(sec, fmt.Errorf("the installed file is 1Password's current copy, and it fails its check: %s; fix the item in 1Password", r.Summary), ClassCheck, now)
		sec.Verified = ""
		return false
	}
	e.checked(sec, r, now)
	sec.Verified = sum
	return true
}

// verified is what Secret.Verified holds for content with fingerprint sum
// that passed a check of kind.
func verified(kind check.Kind, sum string) string {
	if kind == "" || kind == check.KindNone {
		return ""
	}
	return string(kind) + ":" + sum
}

func (e *Engine) check(ctx context.Context, kind check.Kind, content []byte) check.Result {
	if kind == "" || kind == check.KindNone {
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

func (e *Engine) succeed(sec *status.Secret, state status.SecretState, note string) {
	sec.State, sec.Note = state, note
	sec.Error, sec.ErrorClass = "", ""
	sec.StaleSince = time.Time{}
	sec.Failures = 0
}

// busy records that the file was still being written: nothing was
// decided, so the secret is settling, not fresh, and the error says why.
// Who looks again is for the pass to say (settle).
func (e *Engine) busy(sec *status.Secret, err error) {
	sec.State = status.Settling
	sec.Note = ""
	sec.Error, sec.ErrorClass = err.Error(), ClassBusy
	e.Log.Info("file still being written; not judged", zap.String("secret", sec.Name))
}

// refuse records a target that must not be written as it stands. It is
// not a failure to fetch: nothing was asked of the source, nothing was
// written, and only a change in 1Password or the config can settle it.
func (e *Engine) refuse(sec *status.Secret, why string) {
	sec.State, sec.Path, sec.Note = status.Refused, "", ""
	sec.Error, sec.ErrorClass = why, ClassRefused
	sec.Failures++
	e.Log.Warn("refused", zap.String("secret", sec.Name), zap.String("why", why))
}

func (e *Engine) fail(sec *status.Secret, err error, class source.Class, now time.Time) {
	sec.State = status.Stale
	if exists, _ := secretfile.Exists(sec.Path); !exists {
		sec.State = status.Missing
	}
	if sec.StaleSince.IsZero() {
		sec.StaleSince = now
	}
	sec.Failures++
	sec.Note = ""
	sec.Error, sec.ErrorClass = err.Error(), class
	e.Log.Warn("not refreshed", zap.String("secret", sec.Name), zap.String("class", string(class)), zap.String("error", sec.Error))
}
