package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// uploadTries bounds the compare-and-swap loop of one write-back: each try
// that loses to another writer learns what the source holds now.
const uploadTries = 3

// newest settles a consumer-rewrites file that carries its own dates (a
// Codex auth.json with ChatGPT tokens) by which copy is newer, in either
// direction: the source's newer copy goes in, the installed newer copy
// stays, and with write-back goes up. An older copy is never installed over
// a newer one, except with force.
//
// It returns done when it has settled the secret. Otherwise t.value is to be
// installed (note says why), or, when undated, the copies carry no dates to
// compare and the caller applies the rule for undated files. installed is
// the settled local file; ours says egoagent wrote it from the source.
func (e *Engine) newest(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, installed []byte, ours, force bool, now time.Time) (note string, done, undated bool) {
	local, lok := check.Date(t.check, installed)
	fetched, fok := check.Date(t.check, t.value)
	if !lok || !fok {
		sec.Newer = ""
		return "", false, true
	}
	order, why := check.Compare(local, fetched, now)
	switch {
	case force:
		return "forced: installed 1Password's copy over the local file (local copy " + order.String() + ": " + why + ")", false, false
	case order == check.Unknown:
		sec.Newer = ""
		return "", false, true
	case order == check.Older:
		sec.Newer = status.NewerSource
		return "1Password's copy is newer: " + why, false, false
	case order == check.Same:
		sec.Newer = status.NewerNeither
		if ours {
			// egoagent's own copy of this renewal, which 1Password now holds
			// in other bytes: follow the source.
			return "1Password holds the same renewal in other bytes", false, false
		}
		lc := e.check(ctx, t.check, installed)
		if !lc.OK {
			if err := untouchedFor(t.path, brokenGrace); err != nil {
				e.busy(sec, err)
				return "", true, false
			}
			return "the local file fails its check (" + lc.Summary + "), so 1Password's copy of the same renewal replaces it", false, false
		}
		e.succeed(sec, status.Kept, "kept the local file: it is the same renewal as 1Password's copy")
		e.checked(sec, lc, now)
		return "", true, false
	}

	// The installed file is the newer copy.
	sec.Newer = status.NewerLocal
	lc := e.check(ctx, t.check, installed)
	if !lc.OK {
		e.fail(sec, fmt.Errorf("the local file is newer than 1Password's copy (%s) but fails its check: %s; the older copy was not installed, since its refresh token is most likely spent: log in again with codex, or run egoagent refresh --force %s", why, lc.Summary, sec.Name), ClassCheck, now)
		return "", true, false
	}
	e.checked(sec, lc, now)
	switch {
	case ours:
		// It came from 1Password, which has since gone back to an older
		// copy (a restored item version, say). It is not uploaded: only a
		// renewal made here goes up.
		e.succeed(sec, status.Kept, "kept the local file: 1Password now holds an older copy than the one egoagent installed from it ("+why+")")
		return "", true, false
	case !t.writeBack:
		e.succeed(sec, status.Kept, "kept the local file: it is newer than 1Password's copy ("+why+"); write_back = true would upload it for other workspaces")
		return "", true, false
	}
	return e.upload(ctx, t, sec, fp, installed, local, why, now)
}

// upload writes the installed file back to the source, only where the
// source still holds the older copy this pass fetched. When another writer
// got there first with a newer copy, that copy is installed instead.
func (e *Engine) upload(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, installed []byte, local check.Stamp, why string, now time.Time) (note string, done, undated bool) {
	kept := "kept the local file: it is newer than 1Password's copy (" + why + ")"
	failed := func(err error, class source.Class) (string, bool, bool) {
		sec.WriteBack = &status.WriteBack{At: now, Note: err.Error(), Class: class}
		e.succeed(sec, status.Kept, kept+"; uploading it failed")
		// Kept is fresh, but the error stays visible, and the planner
		// retries what can heal by itself.
		sec.Error, sec.ErrorClass = "write-back: "+err.Error(), class
		e.Log.Warn("write-back failed", zap.String("secret", sec.Name), zap.String("class", string(class)), zap.String("error", err.Error()))
		return "", true, false
	}
	w, ok := e.Source.(source.Writer)
	if !ok {
		return failed(errors.New("this source cannot write; set write_back = false for this secret"), ClassLocal)
	}
	old := t.value
	for range uploadTries {
		err := w.Replace(ctx, t.ref, old, installed)
		var conflict *source.Conflict
		switch {
		case err == nil:
			sec.WriteBack = &status.WriteBack{At: now, OK: true, Note: "uploaded: " + why}
			e.succeed(sec, status.Fresh, "uploaded the local file to 1Password: it is newer ("+why+")")
			// The file and the source agree again; a later rewrite by its
			// program is told from this copy by the fingerprint. The item's
			// new version is not known here: the next pass reads it.
			sec.Written, sec.Version = fp.Sum(installed), ""
			e.Log.Info("uploaded", zap.String("secret", sec.Name), zap.String("ref", t.ref.String()))
			return "", true, false
		case errors.As(err, &conflict):
			if bytes.Equal(conflict.Current, installed) {
				e.succeed(sec, status.Fresh, "1Password already holds the local file (another writer uploaded the same copy)")
				sec.Written, sec.Version = fp.Sum(installed), ""
				return "", true, false
			}
			if cur, ok := check.Date(t.check, conflict.Current); ok {
				if order, why2 := check.Compare(local, cur, now); order == check.Older {
					t.value = conflict.Current
					sec.Newer = status.NewerSource
					return "1Password's copy changed during the upload and is newer: " + why2, false, false
				}
			}
			old = conflict.Current // still older (or undated): try again against it
		default:
			return failed(err, source.ClassOf(err))
		}
	}
	return failed(fmt.Errorf("1Password's copy changed %d times while uploading; trying again at the next pass", uploadTries), source.ClassUnreachable)
}

// date records the dates of the installed file of a dated secret, for
// status and for the daemon's checks near renewal.
func (e *Engine) date(t *target, sec *status.Secret) {
	if !check.Dated(t.check) || sec.Path == "" {
		return
	}
	sec.LastRefresh, sec.RefreshAt, sec.TokenLife = time.Time{}, time.Time{}, 0
	content, exists, err := secretfile.Read(sec.Path)
	if !exists || err != nil {
		return
	}
	if s, ok := check.Date(t.check, content); ok {
		sec.LastRefresh, sec.RefreshAt, sec.TokenLife = s.LastRefresh, s.RefreshAt(), s.Lifetime()
	}
}
